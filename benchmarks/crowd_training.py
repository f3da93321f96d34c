"""Success against wall time and env steps for crowd-navigation training runs, as a table and a plot.

Reads each run's ``progress.csv`` and those of its resumed sessions (SB3's logs, written by ``roboreward train``):
``rollout/success_rate`` is the success of the last 100 finished training episodes (stochastic policy),
``time/time_elapsed`` the wall time, summed over sessions. Prints a row at every ``--every`` env steps and writes ``crowd_training.png`` (success against
minutes and against millions of steps) next to the first run, or to ``--plot``.

    python benchmarks/crowd_training.py runs/crowd_circle-... [runs/...] [--every 500000] [--plot curve.png]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from _machine import describe_machine


def session_logs(run: Path) -> list[Path]:
    """The run's logs in session order: ``progress.csv``, then ``progress-resume1.csv``, ``-resume2``, ..."""
    resumed = sorted(run.glob("progress-resume*.csv"), key=lambda p: int(p.stem.removeprefix("progress-resume") or 0))
    return [run / "progress.csv", *resumed]


def read_curve(run: Path) -> list[tuple[int, float, float]]:
    """``(env steps, seconds, success rate)`` per logged iteration of ``run``, over all its sessions: a resumed
    session's clock (SB3's ``time_elapsed`` starts again at 0) continues from the end of the one before."""
    curve: list[tuple[int, float, float]] = []
    offset = 0.0
    for log in session_logs(run):
        with open(log) as f:
            rows = [row for row in csv.DictReader(f) if row.get("rollout/success_rate")]
        for row in rows:
            curve.append((int(row["time/total_timesteps"]), offset + float(row["time/time_elapsed"]),
                          float(row["rollout/success_rate"])))
        if rows:
            offset = curve[-1][1]
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=500_000, help="a table row every this many env steps")
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    print(describe_machine())
    curves = {run: read_curve(run) for run in args.runs}
    for run, curve in curves.items():
        print(f"\n{run.name}: {len(curve)} iterations, {curve[-1][0]:,} env steps in {curve[-1][1] / 60:.1f} min")
        print(f"{'env steps':>12} {'minutes':>8} {'success':>8}")
        mark = 0
        for steps, seconds, success in curve:
            if steps >= mark:
                print(f"{steps:>12,} {seconds / 60:>8.1f} {success:>8.2f}")
                mark = (steps // args.every + 1) * args.every
        best = max(curve, key=lambda point: point[2])
        print(f"best {best[2]:.2f} at {best[0]:,} steps ({best[1] / 60:.1f} min)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_steps) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for run, curve in curves.items():
        steps, seconds, success = zip(*curve)
        by_time.plot([s / 60 for s in seconds], success, label=run.name)
        by_steps.plot([s / 1e6 for s in steps], success, label=run.name)
    by_time.set_xlabel("wall time (min)")
    by_steps.set_xlabel("env steps (millions)")
    by_time.set_ylabel("success rate (last 100 training episodes)")
    for ax in (by_time, by_steps):
        ax.grid(alpha=0.3)
        ax.set_ylim(0, 1)
    by_steps.legend(fontsize=7)
    fig.tight_layout()
    path = args.plot or args.runs[0].parent / "crowd_training.png"
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
