"""Crowd-navigation policies on one fixed test set: the hand-written baselines and trained runs, by crowd density.

Every policy drives the same 500 seeded episodes (``roboreward.envs.crowd.evaluation``; test episode k starts
from seed 1 000 000 + k, as ``roboreward eval`` seeds its episodes for a run with seed 0) of a shipped
config's env — by default ``crowd_circle``, CrowdNav++'s setting — at the trained density and at lower and
higher ones (``--humans``). Baselines: ORCA as the robot, social force as the robot, straight to the goal.
Trained runs (``--runs``) are loaded from their final model or newest checkpoint and tested on their own
env (their config's ``env.kwargs``), with the same densities and seeds.

    python benchmarks/crowd_policies.py [--config crowd_circle] [--runs runs/crowd_circle-...] [--episodes 500]
                                        [--humans 10,20,30] [--seed 2000000]

``--seed`` moves the episodes off the test set: pick among runs or checkpoints on such a validation set, so the
test set's figures stay an unbiased estimate for the one picked.

Prints one row per policy and density: success, collisions (people / obstacles / walls), timeouts, navigation
time (successful episodes), path length, SPL, intrusion ratio, minimum separation, and seconds taken.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _machine import describe_machine

from roboreward.envs.crowd.baselines import BASELINES
from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.evaluation import TEST_SEED, evaluate_crowd_policy, sb3_policy, with_observation_rows
from roboreward.experiment import load_experiment
from roboreward.policies.export import load_run_model

COLUMNS = ("success", "collision_human", "collision_obstacle", "collision_wall", "timeout", "nav_time",
           "path_length", "spl", "intrusion_ratio", "min_separation")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="crowd_circle", help="the shipped config whose env is tested")
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="trained run folders to test too")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--humans", default=None, help="walking people per episode, comma-separated (default: the "
                                                         "config's, half and 1.5 times it)")
    parser.add_argument("--seed", type=int, default=TEST_SEED,
                        help=f"first episode's seed (default {TEST_SEED}: the test set; another, e.g. 2000000, "
                             "gives a validation set for choosing among runs)")
    args = parser.parse_args()

    print(describe_machine())
    base = load_experiment(args.config).env.kwargs
    trained = CrowdNavConfig.from_kwargs(base).scenario.n_humans
    densities = [int(h) for h in args.humans.split(",")] if args.humans else [trained // 2, trained, trained * 3 // 2]
    policies = [(name, name, base) for name in BASELINES]
    for run in args.runs:
        config, model, path = load_run_model(run, flat=False)
        if config.env.id != "roboreward/CrowdNav-v0":
            raise SystemExit(f"{run} trained {config.env.id}, not the crowd env")
        label = f"{run.name} ({path.parent.name if path.name == 'model.zip' else path.name})"
        # The rows the policy was trained on, whatever the density tested.
        policies.append((label, sb3_policy(model), with_observation_rows(config.env.kwargs, model.observation_space)))
    episodes = "test episodes" if args.seed == TEST_SEED else "validation episodes (not the test set)"
    print(f"config {args.config}, {args.episodes} {episodes} from seed {args.seed}, trained density {trained}")
    header = f"{'policy':<44} {'people':>6} " + " ".join(f"{c[:10]:>10}" for c in COLUMNS) + f" {'seconds':>8}"
    print(header)
    for humans in densities:
        for name, policy, env_kwargs in policies:
            kwargs = {**env_kwargs, "scenario": {**env_kwargs["scenario"], "n_humans": humans}}
            start = time.perf_counter()
            metrics = evaluate_crowd_policy(kwargs, policy, episodes=args.episodes, seed=args.seed)["metrics"]
            cells = " ".join(f"{metrics[c]:>10.3f}" if metrics.get(c) is not None else f"{'-':>10}" for c in COLUMNS)
            print(f"{name:<44} {humans:>6} {cells} {time.perf_counter() - start:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
