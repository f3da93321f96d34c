"""Where behaviour cloning from a few demos is weak: BC alone on Meta-World tasks, by number of demos.

A learned reward earns its keep only where imitation alone fails, so the default job is chosen from this
table. For each task the scripted expert records demos (seeds 0, 1, ...; its successful episodes are used,
in order); for each demo count the default job's behaviour cloning (:func:`roboreward.policies.bc.pretrain_actor`,
the same SAC actor, epochs and losses that ``bc_policy.zip`` comes from) is fitted on the first ``n`` and the
cloned policy is run deterministically on fresh episodes (seeded as ``roboreward eval`` seeds them, never a demo
seed). Success is Meta-World's own flag at the last of the 200 steps (what ``roboreward eval`` reports); the
any-step rate (Meta-World's benchmark convention) is printed beside it.

    python benchmarks/bc_tasks.py [--tasks drawer-open push ...] [--demos 1 3 5 10] [--episodes 50] [--bc-seeds 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from _machine import describe_machine
from tqdm.auto import tqdm

from roboreward.config import from_dict, to_dict
from roboreward.experiment import DEFAULT_JOB, ExperimentConfig, load_experiment

TASKS = ("reach", "push", "door-open", "drawer-open", "button-press", "pick-place")  # every registered one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), help="Meta-World task names")
    parser.add_argument("--demos", nargs="+", type=int, default=[1, 3, 5, 10], help="demo counts to clone from")
    parser.add_argument("--episodes", type=int, default=50, help="fresh evaluation episodes per cell")
    parser.add_argument("--bc-seeds", type=int, default=1, help="cloning seeds per cell (success is their mean)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args()
    if min(args.demos) < 1 or args.episodes < 1 or args.bc_seeds < 1:
        raise SystemExit("--demos, --episodes and --bc-seeds must be positive")

    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.datasets.record import record_scripted_demos, resolve_env_id

    print(describe_machine())
    base = to_dict(load_experiment(DEFAULT_JOB))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            env_id = resolve_env_id(task)
            demos = Path(tmp) / task
            start = time.perf_counter()
            record_scripted_demos(task, demos, max(args.demos) + 5, width=16, height=16, progress=False)
            successful = [e.index for e in DatasetReader(demos).episodes if e.success]
            record_s = time.perf_counter() - start
            for n in args.demos:
                if len(successful) < n:
                    print(f"{task}: only {len(successful)} of the expert's episodes succeed; skipping {n} demos")
                    continue
                cells = [_clone_and_run(base, env_id, demos, successful[:n], seed, args.episodes)
                         for seed in range(args.bc_seeds)]
                row = {"task": task, "demos": n, "record_s": record_s,
                       "success": float(np.mean([c["success"] for c in cells])),
                       "success_any": float(np.mean([c["success_any"] for c in cells])),
                       "seconds": float(np.sum([c["seconds"] for c in cells]))}
                rows.append(row)
                print(f"{task:<22} {n:>3} demos  success {row['success']:>5.0%}  any step {row['success_any']:>5.0%}"
                      f"  ({row['seconds']:.0f} s)", flush=True)

    print(f"\nBC alone, {args.episodes} fresh episodes, deterministic, mean of {args.bc_seeds} cloning seed(s):")
    print(f"{'task':<22}" + "".join(f"{f'{n} demos':>10}" for n in args.demos))
    for task in args.tasks:
        cells = {r["demos"]: r for r in rows if r["task"] == task}
        print(f"{task:<22}" + "".join(f"{cells[n]['success']:>10.0%}" if n in cells else f"{'-':>10}"
                                      for n in args.demos))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _clone_and_run(base: dict, env_id: str, demos: Path, episodes: list[int], seed: int, n_eval: int) -> dict:
    """BC on ``episodes`` of ``demos`` exactly as a run's ``bc_policy.zip`` is made; its success on fresh seeds."""
    from roboreward.policies.bc import load_demonstrations, pretrain_actor
    from roboreward.policies.evaluate import EVAL_SEED_OFFSET
    from roboreward.policies.train import build_algorithm

    data = json.loads(json.dumps(base))
    data["env"] = {"id": env_id, "n_envs": 1}  # no rendering: cloning reads states only
    data["reward"] = {"type": "env"}
    data["bc"] = {**data["bc"], "demos": str(demos), "episodes": episodes}
    data["seed"] = seed
    config = from_dict(ExperimentConfig, data)
    start = time.perf_counter()
    demonstrations = load_demonstrations(config.bc, config.env)
    model = build_algorithm(config, demos=demonstrations)
    pretrain_actor(model, demonstrations, config.bc, seed=seed, progress=False)
    env = gym.make(env_id)
    last, any_step = [], []
    try:
        for k in tqdm(range(n_eval), desc=f"{env_id} {len(episodes)} demos", leave=False, dynamic_ncols=True):
            obs, _ = env.reset(seed=seed + EVAL_SEED_OFFSET + k)
            done, success, ever = False, False, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
                success = bool(info["is_success"])
                ever |= success
            last.append(success)
            any_step.append(ever)
    finally:
        env.close()
    return {"success": float(np.mean(last)), "success_any": float(np.mean(any_step)),
            "seconds": time.perf_counter() - start}


if __name__ == "__main__":
    main()
