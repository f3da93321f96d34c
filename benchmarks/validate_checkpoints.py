"""Replay validation on a run's checkpoints: what ``train.validate_every`` would have kept, for runs trained without it.

Each checkpoint's policy plays the validation episodes (seeds ``seed + 2 000 000 + k``, deterministic, scored by
the run's reward model with that checkpoint's refitted head), exactly as :class:`roboreward.policies.callbacks.
BestPolicy` plays them while training; the checkpoint it would keep is printed last. Evaluate that one on the test
episodes with ``roboreward eval RUN --checkpoint step_N``.

    python benchmarks/validate_checkpoints.py RUN [--episodes 20]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _machine import describe_machine

from roboreward.policies.callbacks import play_validation, validation_env
from roboreward.policies.checkpoints import list_checkpoints, load_weights
from roboreward.policies.evaluate import evaluation_reward_model
from roboreward.policies.train import build_algorithm, load_run_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--episodes", type=int, default=20, help="validation episodes per checkpoint")
    args = parser.parse_args()

    config = load_run_config(args.run)
    policy = build_algorithm(config)
    print(describe_machine())
    scores = {}
    for checkpoint in list_checkpoints(args.run):
        load_weights(policy, checkpoint / "model.zip")
        env = validation_env(config, evaluation_reward_model(config, checkpoint))
        result = play_validation(env, policy, config.seed, args.episodes)
        env.close()
        scores[checkpoint.name] = (result["success_rate"], result["learned_return"])
        print(f"{checkpoint.name}: success {scores[checkpoint.name][0]:.2f}, learned return {scores[checkpoint.name][1]:.1f}",
              flush=True)
    if scores:
        print(f"kept: {max(scores, key=scores.get)}")


if __name__ == "__main__":
    main()
