"""The embedded default job end to end, against the same training on other rewards.

Runs what `make demo` runs — record the scripted expert's demos, then `roboreward train` with no file
(Meta-World drawer-open from demonstrations only: progress reward + behaviour-cloned SAC) — and the
same training (same demos, same BC, same SAC, same seed) with the reward swapped for
- `task`: Meta-World's own dense reward (the reward the default job never sees),
- `goal_image`: the foundation's goal-image reward, the goal being the demos' final frames.
Each run is evaluated on fresh seeds with Meta-World's own success flag. The behaviour-cloned starting
policy (identical in all three: cloning does not look at the reward) is evaluated alone, so each
reward's own contribution shows. The learned reward's diagnostics (`roboreward rewards evaluate`) are
computed on held-out demos and random rollouts.

    python benchmarks/default_job.py [--episodes 20] [--variants learned task goal_image] [--out bench_out/default_job]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from roboreward.config import from_dict, to_dict
from roboreward.experiment import DEFAULT_JOB, ExperimentConfig, load_experiment

VARIANTS = ("learned", "task", "goal_image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per policy (fresh seeds)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("bench_out") / "default_job")
    parser.add_argument("--demos", type=Path, help="use these demos instead of recording the default job's")
    parser.add_argument("overrides", nargs="*", help="key.sub=value over the default job, for every variant")
    args = parser.parse_args()

    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.datasets.record import record_scripted_demos
    from roboreward.policies.bc import BC_POLICY
    from roboreward.policies.evaluate import evaluate
    from roboreward.policies.train import train
    from roboreward.rewards.base import make_reward_model
    from roboreward.rewards.diagnostics.evaluation import evaluate_reward_model

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    base = to_dict(load_experiment(DEFAULT_JOB, args.overrides))
    n_demos = 20
    camera, size = base["env"]["render"]["camera"], base["env"]["render"]["width"]
    demos = args.demos or args.out / "demos" / "drawer-open"
    record_s = None
    if args.demos is None:  # what `make demo` does before training
        start = time.perf_counter()
        record_scripted_demos("drawer-open", demos, n_demos, cameras=[camera], width=size, height=size, seed=0)
        record_s = time.perf_counter() - start
    held_out = args.out / "demos" / "held-out"  # other seeds: never trained on
    record_scripted_demos("drawer-open", held_out, 5, cameras=[camera], width=size, height=size, seed=10_000, progress=False)
    reader = DatasetReader(demos)
    goal = args.out / "goal_frames.npy"
    np.save(goal, np.stack([reader.frames(i, camera)[-1] for i in range(min(5, reader.num_episodes))]))

    rewards = {
        "learned": None,  # the default job's own reward section
        "task": {"type": "env"},
        "goal_image": {"type": "goal_image", "goal_source": "images", "goal_images": [str(goal)]},
    }
    results: dict[str, dict] = {}
    bc_alone = None
    for variant in args.variants:
        data = json.loads(json.dumps(base))  # a deep copy
        data["reward"] = rewards[variant] or {**data["reward"], "demos": str(demos)}
        data["bc"]["demos"] = str(demos)
        data["name"] = f"bench_{variant}"
        config = from_dict(ExperimentConfig, data)
        run = args.out / variant
        start = time.perf_counter()
        train(config, run)
        train_s = time.perf_counter() - start
        metrics = evaluate(run, episodes=args.episodes, video=variant == "learned")
        results[variant] = {"train_s": train_s, "load": os.getloadavg()[0], **metrics}
        if bc_alone is None:
            bc_alone = evaluate(run, episodes=args.episodes, checkpoint=BC_POLICY, out_dir=run / "eval_bc", video=False)

    diagnostics = None
    if "learned" in args.variants:
        config = load_experiment(args.out / "learned" / "config.yaml")
        model = make_reward_model(config.reward)
        diagnostics = evaluate_reward_model(model, held_out, rollouts="random:10", env_config=config.env,
                                            out_dir=args.out / "diagnostics", gamma=config.shaping_gamma, seed=0)

    print(f"\nmachine: {os.cpu_count()} CPUs; Meta-World drawer-open, {args.episodes} evaluation episodes per policy")
    if record_s is not None:
        print(f"record {n_demos} scripted demos ({camera}, {size}x{size}): {record_s:.0f} s")
    print(f"{'reward trained on':<22}{'train wall':>12}{'success':>9}{'any-step':>10}{'true return':>13}  load")
    names = {"learned": "learned (default job)", "task": "task (Meta-World's)", "goal_image": "goal image"}
    for variant, r in results.items():
        print(f"{names[variant]:<22}{r['train_s'] / 60:>10.1f} m{r['success_rate']:>9.0%}{r['success_any_step_rate']:>10.0%}"
              f"{r['true_return']['mean']:>13.1f}  {r['load']:.1f}")
    if bc_alone is not None:
        print(f"{'BC start alone':<22}{'':>12}{bc_alone['success_rate']:>9.0%}{bc_alone['success_any_step_rate']:>10.0%}"
              f"{bc_alone['true_return']['mean']:>13.1f}")
    if "learned" in results:
        total = results["learned"]["train_s"] + (record_s or 0)
        print(f"default job: record + train {total / 60:.1f} min (goal: >= 80% success within 30 min)")
    if diagnostics is not None:
        print("\nlearned reward on 5 held-out demos and 10 random rollouts:")
        print(diagnostics.table())
    (args.out / "summary.json").write_text(json.dumps({
        "record_s": record_s, "results": results, "bc_alone": bc_alone,
        "diagnostics": diagnostics.to_dict() if diagnostics is not None else None,
    }, indent=2, default=str))
    print(f"\nruns, videos and plots: {args.out}")


if __name__ == "__main__":
    main()
