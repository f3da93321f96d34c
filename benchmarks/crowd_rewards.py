"""Hand-written, sparse, learned and shaped rewards for crowd navigation, trained at one budget and tested alike.

Every variant trains PPO with the same network, seed and number of env steps on one shipped crowd config
(default ``crowd_diff_drive``: the diff-drive base among 6 people) and is tested on the same seeded test set
(``roboreward.envs.crowd.evaluation``), where success and collisions are the env's own events whatever reward
the policy learned from:

- ``crowdnav_pp`` — CrowdNav++'s hand-written reward (exclusive discomfort / progress branches);
- ``corrected`` — progress and discomfort added, progress as exact potential shaping with PPO's γ, a time cost;
- ``sparse`` — success +10, collision −20, nothing else;
- ``learned`` — the progress reward model fitted on ``--demos`` ORCA-as-robot demonstrations (top-down frames,
  recorded here with ``roboreward demos record crowd``'s code); the policy never sees the env's reward;
- ``sparse+shaped`` — the sparse reward plus potential-based shaping ``γΦ(s') − Φ(s)`` by that learned model;
- ``learned-state``, ``sparse+shaped-state`` — the same with the progress model reading the observation
  (``inputs: state``) instead of frames: nothing rendered, no image network;
- ``learned-state-cost`` — that model's progress as a cost to go, ``Φ − 1`` a step (``reward.offset: 1``);
- ``...+refit`` — the same, the model refitted every 16 384 env steps on the demos plus the agent's own failed
  episodes (``refit_every``: Robo-Dopamine's negatives).

    python benchmarks/crowd_rewards.py [--config crowd_diff_drive] [--steps 150000] [--demos 20] [--episodes 200]
                                       [--variants crowdnav_pp,sparse,...] [--out DIR]

Prints one row per variant: test success, collisions, timeouts, navigation time, training wall time (SB3's, after
the reward model is fitted: ~5-10 s more for the learned ones), and the train-time success curve's first step at
90 % (from its progress.csv).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe_machine
from crowd_training import read_curve

from roboreward.envs.crowd.evaluation import evaluate_crowd_policy, sb3_policy
from roboreward.experiment import load_experiment
from roboreward.policies.export import load_run_model

FRAME = 64  # pixels of the top-down frames the learned reward reads (recorded and rendered alike)
SPARSE = ["env.kwargs.reward.preset=corrected", "env.kwargs.reward.progress_factor=0",
          "env.kwargs.reward.discomfort_factor=0", "env.kwargs.reward.time_factor=0",
          "env.kwargs.reward.spin_factor=0"]
RENDER = [f"env.render.width={FRAME}", f"env.render.height={FRAME}"]
REFIT_EVERY = 16384  # env steps between refits on the agent's failed episodes (8 of PPO's 2048-step rollouts)


def variants(demos: Path) -> dict[str, list[str]]:
    """Each variant's overrides of the config."""
    return {
        "crowdnav_pp": ["env.kwargs.reward.preset=crowdnav_pp"],
        "corrected": ["env.kwargs.reward.preset=corrected"],
        "sparse": SPARSE,
        "learned": ["reward.type=progress", f"reward.demos={demos}", *RENDER],
        "sparse+shaped": [*SPARSE, "shaping.potential.type=progress", f"shaping.potential.demos={demos}", *RENDER],
        "learned-state": ["reward.type=progress", f"reward.demos={demos}", "reward.inputs=state"],
        "learned-state-cost": ["reward.type=progress", f"reward.demos={demos}", "reward.inputs=state",
                               "reward.offset=1"],
        "sparse+shaped-state": [*SPARSE, "shaping.potential.type=progress", f"shaping.potential.demos={demos}",
                                "shaping.potential.inputs=state"],
        "learned-state-cost+refit": ["reward.type=progress", f"reward.demos={demos}", "reward.inputs=state",
                                     "reward.offset=1", f"reward.refit_every={REFIT_EVERY}"],
        "sparse+shaped-state+refit": [*SPARSE, "shaping.potential.type=progress", f"shaping.potential.demos={demos}",
                                      "shaping.potential.inputs=state", f"shaping.potential.refit_every={REFIT_EVERY}"],
    }


def record_demos(config: str, out: Path, episodes: int) -> None:
    from roboreward.datasets.record import record_scripted_demos

    kwargs = load_experiment(config).env.kwargs
    record_scripted_demos("crowd", out, episodes=episodes, width=FRAME, height=FRAME, seed=500_000,
                          env_kwargs=kwargs, progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="crowd_diff_drive")
    parser.add_argument("--steps", type=int, default=150_000, help="env steps per variant (the one budget)")
    parser.add_argument("--demos", type=int, default=20, help="ORCA demonstrations for the learned reward")
    parser.add_argument("--episodes", type=int, default=200, help="test episodes per variant")
    parser.add_argument("--variants", default=None, help="comma-separated subset (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="folder for demos and runs (default: a temp dir); runs "
                        "already trained there are tested again, not retrained")
    args = parser.parse_args()
    print(describe_machine())
    out = args.out or Path(tempfile.mkdtemp(prefix="crowd_rewards-"))
    demos = out / "demos"
    if not demos.exists():
        start = time.perf_counter()
        record_demos(args.config, demos, args.demos)
        print(f"recorded {args.demos} ORCA demos in {time.perf_counter() - start:.0f} s -> {demos}", flush=True)
    table = variants(demos)
    chosen = args.variants.split(",") if args.variants else list(table)
    print(f"config {args.config}, {args.steps} env steps each, {args.episodes} test episodes; runs in {out}")
    print(f"{'reward':<16} {'success':>8} {'coll.':>6} {'timeout':>8} {'nav s':>6} {'train s':>8} {'90% at':>8}")
    for name in chosen:
        run = out / name
        if not (run / "model.zip").is_file():  # else trained by an earlier call with this --out: tested again only
            done = subprocess.run([sys.executable, "-m", "roboreward.cli", "train", args.config, "--run-dir", str(run),
                                   f"train.total_timesteps={args.steps}", "train.progress_bar=false", *table[name]],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
                print(f"{name:<16} failed: {why}")
                continue
        curve = read_curve(run)  # (env steps, seconds, training success) per iteration
        seconds = curve[-1][1]
        first = next((steps for steps, _, success in curve if success >= 0.9), None)
        config, model, _ = load_run_model(run, flat=False)
        metrics = evaluate_crowd_policy(config.env.kwargs, sb3_policy(model), episodes=args.episodes)["metrics"]
        nav = metrics.get("nav_time")
        collision = sum(metrics[k] for k in ("collision_human", "collision_obstacle", "collision_wall"))
        print(f"{name:<16} {metrics['success']:>8.3f} {collision:>6.3f} {metrics['timeout']:>8.3f} "
              f"{nav if nav is None else round(nav, 2)!s:>6} {seconds:>8.0f} {first if first else '-'!s:>8}", flush=True)


if __name__ == "__main__":
    main()
