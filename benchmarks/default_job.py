"""The embedded default job end to end, and what each part of it buys.

Runs what `make demo` runs — record the scripted expert's demos, `roboreward train` with no file, evaluate
on fresh episodes (Meta-World's success flag at the last step) — then the same training (same demos, seed,
budget and SAC) with one thing changed:

- the reward: ``dense`` (Meta-World's shaped reward, which the default job never sees), ``sparse`` (its
  success flag alone), ``sparse_shaped`` (the success flag shaped by the default job's progress model as
  the potential, ``r + γΦ(s') − Φ(s)``, refitted and relabelled as in the default job), ``goal_image``
  (the goal-image reward, the goal being the demos' final frames);
- one ingredient of the default job's recipe switched off: ``no_refit`` (the progress model is never refitted
  on the agent's failures), ``no_relabel`` (replayed rewards stay as they were when collected),
  ``no_demo_fraction`` (the demos are ordinary replay), ``no_anneal`` (the BC term never fades),
  ``no_bc_term`` (cloning starts the actor, nothing holds it near the demos).

``bc`` is the behaviour-cloned start alone: every run starts from it, cloning does not look at the reward.
Where the config validates while training (``train.validate_every``), the success column is the policy that
`roboreward eval` scores (``eval.policy``: the best on validation episodes) and ``final`` the last policy's.
An ablation that changes nothing in the default job (its ingredient is off already) is skipped and said so.
One run is one seed: ``--seeds`` repeats every variant with each (networks, sampling, the envs' placements
and the evaluation episodes all follow the seed), and the table gives each seed's success and their mean.
Runs go ``--jobs`` at a time (one core each: the default job trains on one thread); the default job with the
config's own seed runs first and alone, so its wall time is the figure `make demo` gives. The learned reward's diagnostics
(`roboreward rewards evaluate`: Spearman / VOC on held-out demos, ROC-AUC success vs failure, STARC to the
task reward) close the report.

Every variant at one seed takes hours on two cores. ``--resume`` continues a stopped benchmark in its
``--out`` folder with the arguments it was started with: finished runs are read back, stopped ones resume
from their last checkpoint (``roboreward train --resume``), the rest start. A resumed run's ``train``
column is the training time its checkpoints recorded (the lost steps after the last one are not in it) and
is marked ``resumed``.

    python benchmarks/default_job.py [--episodes 50] [--variants learned dense ...] [--seeds 0 1 2] [--jobs 2]
                                     [--out bench_out/default_job] [--resume]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _machine import describe_machine

from roboreward.config import from_dict, to_dict
from roboreward.experiment import DEFAULT_JOB, ExperimentConfig, load_experiment
from roboreward.io import atomic_write

RESULT = "benchmark_result.json"  # in a run's folder, once it is trained and evaluated
STATE = "benchmark.json"  # in --out: the arguments it was started with, the demo recording time

# What `make demo` records (Makefile: DEMOS, `roboreward demos record`), so both measure the same job.
DEMO_TASK, DEMO_EPISODES = "button-press", 1

# Replayed rewards are relabelled only for a model that changes while training; these rewards do not.
_NO_RELABEL = {"algo": {"relabel_rewards": False}}
_SPARSE = {"reward": {"type": "env"}, "env": {"kwargs": {"reward": "sparse"}}}
REWARDS: dict[str, dict[str, Any]] = {
    "dense": {"reward": {"type": "env"}, **_NO_RELABEL},
    "sparse": {**_SPARSE, **_NO_RELABEL},
    "sparse_shaped": {},  # the sparse flag shaped by the default job's own reward section: filled in below
    "goal_image": {},  # filled in once the goal frames exist
}
ABLATIONS: dict[str, dict[str, Any]] = {
    "no_refit": {"reward": {"refit_every": 0}},
    "no_relabel": {"algo": {"relabel_rewards": False}},
    "no_demo_fraction": {"bc": {"demo_fraction": 0.0}},
    "no_anneal": {"bc": {"anneal_steps": 0}},
    "no_bc_term": {"bc": {"weight": 0.0}},
}
VARIANTS = ("learned", *REWARDS, *ABLATIONS)
NAMES = {"learned": "learned (default job)", "dense": "dense (Meta-World's)", "sparse": "sparse (success flag)",
         "sparse_shaped": "sparse + learned shaping", "goal_image": "goal image"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per policy (fresh seeds)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", help="train and evaluate every variant with each seed "
                        "(default: the config's seed)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time after the default job (one core each)")
    parser.add_argument("--out", type=Path, default=Path("bench_out") / "default_job")
    parser.add_argument("--demos", type=Path, help="use these demos instead of recording the default job's")
    parser.add_argument("--resume", action="store_true", help="continue the benchmark stopped in --out")
    parser.add_argument("overrides", nargs="*", help="key.sub=value over the default job, for every variant")
    args = parser.parse_args()
    record_s = _start_or_resume(args)

    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.rewards.base import make_reward_model
    from roboreward.rewards.diagnostics.evaluation import evaluate_reward_model

    base = to_dict(load_experiment(DEFAULT_JOB, args.overrides))
    render = base["env"]["render"]
    camera, size = render.get("camera") or "corner3", render["width"]
    demos = args.demos or args.out / "demos" / DEMO_TASK
    if args.demos is None and record_s is None:  # what `make demo` does before training
        start = time.perf_counter()
        if _record_once(demos, DEMO_EPISODES, cameras=[camera], width=size, height=size, seed=0):
            record_s = time.perf_counter() - start
            _save_state(args, record_s)
    held_out = args.out / "demos" / "held-out"  # other seeds: never trained on
    _record_once(held_out, 10, cameras=[camera], width=size, height=size, seed=10_000, progress=False)
    reader = DatasetReader(demos)
    trained_on = base["bc"]["episodes"] or list(range(reader.num_episodes))
    goal = args.out / "goal_frames.npy"
    np.save(goal, np.stack([reader.frames(i, camera)[-1] for i in trained_on]))
    REWARDS["sparse_shaped"] = {**_SPARSE, "shaping": {"potential": base["reward"]}}
    REWARDS["goal_image"] = {
        "reward": {"type": "goal_image", "goal_source": "images", "goal_images": [str(goal)]},
        "env": {"render": {"width": size, "height": size, "camera": camera}}, **_NO_RELABEL,
    }

    configs, skipped = {}, []
    for variant in args.variants:
        data = _with_demos(base, str(demos))
        if variant != "learned":
            data = _merged(data, {**REWARDS, **ABLATIONS}[variant])
            if variant in ABLATIONS and data == _with_demos(base, str(demos)):
                skipped.append(variant)
                continue
        kwargs = data["env"].get("kwargs") or {}
        if kwargs and data["reward"]["type"] == "env" and data["bc"].get("demos_in_buffer", True):
            # The demos enter the replay with the reward they were recorded with: record them again in this
            # variant's env (same seed and expert, so the same states and actions, with this env's reward).
            render = data["env"]["render"]
            variant_demos = args.out / "demos" / f"{DEMO_TASK}-{variant}"
            _record_once(variant_demos, DEMO_EPISODES, cameras=[render.get("camera") or camera],
                         width=render["width"], height=render["height"], seed=0, env_kwargs=kwargs, progress=False)
            data = _with_demos(data, str(variant_demos))
        data["name"] = f"bench_{variant}"
        configs[variant] = data

    seeds = args.seeds or [base["seed"]]
    runs = [(v, seed) for seed in seeds for v in configs]  # seed by seed: each finished seed compares all
    default_run = ("learned", base["seed"])
    results: dict[tuple[str, int], dict] = {}
    if default_run in runs:  # the default job first, alone: its wall time is what `make demo` takes
        runs.remove(default_run)
        results[default_run] = _run(*default_run, configs["learned"], args.out, args.episodes)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        futures = {run: pool.submit(_run, *run, configs[run[0]], args.out, args.episodes) for run in runs}
        for run, future in futures.items():
            results[run] = future.result()

    diagnostics = None
    learned = [seed for v, seed in results if v == "learned"]
    if learned:
        config = load_experiment(args.out / "learned" / f"seed_{learned[0]}" / "config.yaml")
        model = make_reward_model(config.reward)
        diagnostics = evaluate_reward_model(model, held_out, rollouts="random:10", env_config=config.env,
                                            out_dir=args.out / "diagnostics", gamma=config.shaping_gamma, seed=0)

    cpu = describe_machine()
    print(f"\n{cpu}\n{base['env']['id']}, {len(trained_on)} demos, {args.episodes} evaluation episodes per policy; "
          "success = the flag at the last step")
    if record_s is not None:
        print(f"record {DEMO_EPISODES} scripted demos ({camera}, {size}x{size}): {record_s:.0f} s")
    print("success: the policy `roboreward eval` scores (eval.policy; 'best' = kept by validation, at the step in "
          "brackets); final: the last policy")
    print(f"{'trained on':<26}{'seed':>5}{'train':>9}{'eval':>8}{'success':>9}{'any-step':>10}{'true return':>13}"
          f"{'final':>8}  load")
    for variant in configs:
        rows = [(seed, results[(variant, seed)]) for seed in seeds if (variant, seed) in results]
        for seed, r in rows:
            final = f"{r['final']['success_rate']:>8.0%}" if "final" in r else f"{'':>8}"
            kept = f"  (best at {r['best_step'] // 1000} k)" if "best_step" in r else ""
            kept += "  resumed" if r.get("resumed") else ""
            print(f"{NAMES.get(variant, variant):<26}{seed:>5}{r['train_s'] / 60:>7.1f} m{r['eval_s'] / 60:>6.1f} m"
                  f"{r['success_rate']:>9.0%}{r['success_any_step_rate']:>10.0%}{r['true_return']['mean']:>13.1f}"
                  f"{final}  {r['load']:.1f}{kept}")
            if "bc" in r:
                b = r["bc"]
                print(f"{'  its BC start alone':<26}{'':>22}{b['success_rate']:>9.0%}"
                      f"{b['success_any_step_rate']:>10.0%}{b['true_return']['mean']:>13.1f}")
        if len(rows) > 1:
            rates = [r["success_rate"] for _, r in rows]
            finals = [r["final"]["success_rate"] for _, r in rows if "final" in r]
            final = f"{'':>13}{np.mean(finals):>8.0%}" if len(finals) == len(rows) else ""
            print(f"{'  mean over ' + str(len(rows)) + ' seeds':<26}{'':>22}{np.mean(rates):>9.0%}"
                  f"{np.mean([r['success_any_step_rate'] for _, r in rows]):>10.0%}{final}"
                  f"   (min {min(rates):.0%}, max {max(rates):.0%})")
    for variant in skipped:
        print(f"{variant}: skipped, the default job does not use that ingredient")
    if default_run in results:
        r = results[default_run]
        total = r["train_s"] + r["eval_s"] + (record_s or 0)
        print(f"default job: record + train + eval {total / 60:.1f} min (goal: >= 80% success within 30 min, "
              f"where BC alone is <= 30%)")
    if diagnostics is not None:
        print("\nlearned reward on 10 held-out demos and 10 random rollouts:")
        print(diagnostics.table())
    (args.out / "summary.json").write_text(json.dumps({
        "cpu": cpu, "record_s": record_s, "results": {f"{v}/seed_{seed}": r for (v, seed), r in results.items()},
        "skipped": skipped,
        "diagnostics": diagnostics.to_dict() if diagnostics is not None else None,
    }, indent=2, default=str))
    print(f"\nruns, videos and plots: {args.out}")


def _run(variant: str, seed: int, data: dict, out: Path, episodes: int) -> dict:
    """Train one variant with ``seed`` and evaluate it (and, for the default job, its behaviour-cloned start).

    A run finished earlier (``RESULT`` in its folder) is read back; one stopped with a checkpoint is resumed.
    """
    from roboreward.policies.bc import BC_POLICY
    from roboreward.policies.callbacks import BEST_POLICY
    from roboreward.policies.checkpoints import read_state
    from roboreward.policies.evaluate import evaluate
    from roboreward.policies.train import CONFIG_FILE, FINAL_MODEL, TRAIN_SUMMARY, resume, train

    run = out / variant / f"seed_{seed}"
    if (run / RESULT).is_file():
        return json.loads((run / RESULT).read_text())
    resumed = (run / CONFIG_FILE).is_file()
    start = time.perf_counter()
    if resumed:
        resume(run)
    else:
        train(from_dict(ExperimentConfig, {**data, "seed": seed}), run)
    train_s = time.perf_counter() - start
    if resumed:  # the training time its checkpoints add up to, over every session
        train_s = json.loads((run / TRAIN_SUMMARY).read_text())["train_seconds"]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    metrics = evaluate(run, episodes=episodes, video=variant == "learned")
    result = {"train_s": train_s, "eval_s": time.perf_counter() - start, "load": load, "resumed": resumed, **metrics}
    if (run / BEST_POLICY / "state.json").is_file():  # the policy validation kept; the final one beside it
        result["best_step"] = read_state(run / BEST_POLICY)["validation"]["step"]
        result["final"] = evaluate(run, episodes=episodes, checkpoint=FINAL_MODEL, out_dir=run / "eval_final",
                                   video=False)
    if variant == "learned":
        result["bc"] = evaluate(run, episodes=episodes, checkpoint=BC_POLICY, out_dir=run / "eval_bc", video=False)
    atomic_write(run / RESULT, json.dumps(result, indent=2, default=str).encode())
    return result


def _start_or_resume(args: argparse.Namespace) -> float | None:
    """Empty ``--out`` for a new benchmark, or check that ``--resume`` continues it with the same arguments;
    returns the demo recording time of the benchmark resumed (None: not recorded yet)."""
    state_file = args.out / STATE
    if not args.resume:
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.mkdir(parents=True)
        _save_state(args, None)
        return None
    if not state_file.is_file():
        raise SystemExit(f"--resume: {args.out} holds no benchmark ({STATE} missing); start one without --resume")
    state, now = json.loads(state_file.read_text()), _arguments(args)
    mismatched = {k: (v, now[k]) for k, v in state["arguments"].items() if now[k] != v}
    if mismatched:
        raise SystemExit(f"--resume: {args.out} was started with other arguments (started, now): {mismatched}; "
                         f"resume with the same ones or start a new --out")
    return state["record_s"]


def _arguments(args: argparse.Namespace) -> dict:
    return {"episodes": args.episodes, "variants": args.variants, "seeds": args.seeds,
            "demos": str(args.demos) if args.demos else None, "overrides": args.overrides}


def _save_state(args: argparse.Namespace, record_s: float | None) -> None:
    atomic_write(args.out / STATE, json.dumps({"arguments": _arguments(args), "record_s": record_s}).encode())


def _record_once(demos: Path, episodes: int, **kwargs) -> bool:
    """Record the scripted expert's ``episodes`` into ``demos`` unless a complete recording is there already
    (recorded beside it and renamed, so a stopped recording is never taken for one); True if it recorded."""
    from roboreward.datasets.record import record_scripted_demos

    if demos.is_dir():
        return False
    partial = demos.with_name(demos.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    record_scripted_demos(DEMO_TASK, partial, episodes, **kwargs)
    partial.rename(demos)
    return True


def _with_demos(base: dict, demos: str) -> dict:
    data = json.loads(json.dumps(base))  # a deep copy
    data["bc"]["demos"] = demos
    for section in (data["reward"], (data.get("shaping") or {}).get("potential") or {}):
        if section.get("demos") is not None:
            section["demos"] = demos
    return data


def _merged(data: dict, change: dict) -> dict:
    """The config ``data`` with ``change`` laid over it; a reward of another type replaces the reward section."""
    out = _deep_merged(data, {k: v for k, v in change.items() if k != "reward"})
    reward = change.get("reward")
    if reward is not None:
        same = reward.get("type", out["reward"]["type"]) == out["reward"]["type"]
        out["reward"] = {**out["reward"], **reward} if same else reward
    return out


def _deep_merged(data: dict, change: dict) -> dict:
    out = json.loads(json.dumps(data))
    for key, value in change.items():
        out[key] = _deep_merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


if __name__ == "__main__":
    main()
