"""The embedded default job end to end: train (wall time) and evaluate (success rate).

Trains exactly what `roboreward train` runs with no arguments — SAC on roboreward/ArmReach-v0 with
the offline goal-image reward — then evaluates the final policy on fresh seeds and prints the wall
time and the task's own success rate (fingertip within 2 cm of the target at the episode's end).

    python benchmarks/default_job.py [--episodes 50] [--run-dir runs/bench-default] [overrides...]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from roboreward.config import apply_override, from_dict
from roboreward.experiment import ExperimentConfig
from roboreward.policies.evaluate import evaluate
from roboreward.policies.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / f"bench-default-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("overrides", nargs="*", help="key.sub=value, to measure a variant of the default")
    args = parser.parse_args()

    data: dict = {}
    for override in args.overrides:
        apply_override(data, override)
    config = from_dict(ExperimentConfig, data)

    start = time.perf_counter()
    train(config, args.run_dir)
    train_s = time.perf_counter() - start
    metrics = evaluate(args.run_dir, episodes=args.episodes, video=True)
    total_s = time.perf_counter() - start

    print(f"machine: {os.cpu_count()} CPUs")
    print(f"default job: {config.train.total_timesteps} steps, {config.env.n_envs} envs, reward {config.reward.type_name}")
    print(f"train wall time: {train_s:.0f} s ({train_s / 60:.1f} min)")
    print(f"train + eval wall time: {total_s:.0f} s ({total_s / 60:.1f} min)")
    print(f"success rate: {metrics['success_rate']:.2f} over {metrics['episodes']} episodes (deterministic policy)")
    print(f"true return {metrics['true_return']['mean']:.2f}, learned return {metrics['learned_return']['mean']:.2f}, "
          f"learned-vs-true step correlation {metrics['reward_correlation']['pearson']:.3f}")


if __name__ == "__main__":
    main()
