"""How well the progress reward model orders held-out demonstrations after 1-shot and 5-shot fits.

For each Meta-World task this records a small dataset of the scripted expert (two cameras, 64 px)
into a temporary folder, then fits :class:`~roboreward.rewards.progress.ProgressReward`:

- **1-shot**: on one expert trajectory (repeated for each of the first ``--train`` demos in turn);
- **5-shot**: on the first ``--train`` demos together;
- **1-shot from a multi-task head**: the head is first trained on the ``--train`` demos of every *other*
  task, then adapted to one trajectory of this one (Robo-Dopamine's one-shot adaptation);
- the same 1-shot and 5-shot fits with one camera only (``corner3``), to see what the second view adds.

Each fit is scored on the held-out demos by :meth:`ProgressReward.report`: Spearman's rank correlation
of predicted progress with time over each demo's frames up to its first success (mean, and min in
brackets). Times: the head's training, features cached (features are computed once per frame and
timed separately). Prints a table; asserts nothing::

    python benchmarks/progress_one_shot.py                      # all six tasks (~10-20 min on 2 cores)
    python benchmarks/progress_one_shot.py --tasks reach drawer-open --train 3 --held-out 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

TASKS = ["reach", "push", "door-open", "drawer-open", "button-press", "pick-place"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--train", type=int, default=5, help="demos of the k-shot fit (1-shot uses each in turn)")
    parser.add_argument("--held-out", type=int, default=3, help="held-out demos each fit is scored on")
    parser.add_argument("--cameras", nargs="+", default=["corner3", "topview"])
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels")
    parser.add_argument("--max-steps", type=int, default=150, help="steps recorded per demo")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="keep the datasets here (default: a temp folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from roboreward.datasets import DatasetReader
    from roboreward.datasets.record import record_scripted_demos
    from roboreward.rewards.progress import ProgressReward, ProgressRewardConfig

    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="progress_one_shot-")
        args.out = Path(tmp.name)
    wanted = args.train + args.held_out
    splits: dict[str, tuple[DatasetReader, list[int], list[int]]] = {}
    for task in args.tasks:
        started = time.perf_counter()
        folder = args.out / task
        good: list[int] = []
        for attempt in range(4):  # a folder given with --out is reused; top up if the expert failed episodes
            if (folder / "meta" / "info.json").is_file():
                reader = DatasetReader(folder)
                good = [e.index for e in reader.episodes if e.success][:wanted]
            if len(good) == wanted or attempt == 3:
                break
            record_scripted_demos(
                task, folder, episodes=wanted - len(good), cameras=args.cameras, width=args.size, height=args.size,
                max_steps=args.max_steps, progress=False,
            )
        if len(good) < wanted:
            print(f"{task}: only {len(good)} of {reader.num_episodes} expert demos succeed; skipped")
            continue
        splits[task] = (reader, good[: args.train], good[args.train :])
        print(f"recorded {task}: {reader.num_episodes} demos, {reader.num_frames} frames, "
              f"{time.perf_counter() - started:.0f} s", flush=True)

    # One model per view set; each keeps every frame's features in its cache, so refits cost the head only.
    cache = sum(r.num_frames for r, _, _ in splits.values()) * len(args.cameras) + 1
    multi = ProgressReward(ProgressRewardConfig(cameras=list(args.cameras), cache_size=cache))
    single = ProgressReward(ProgressRewardConfig(cameras=[args.cameras[0]], cache_size=cache))
    single.features = multi.features  # same network, same cache
    started = time.perf_counter()
    for reader, train, held in splits.values():
        for i in train + held:
            multi._view_features([reader.frames(i, c) for c in args.cameras])
    frames = len(multi.features)
    seconds = time.perf_counter() - started
    print(f"features: {frames} distinct view-frames in {seconds:.0f} s ({frames / seconds:.0f} frames/s, decoding included)\n")

    def fit_and_score(model: ProgressReward, reader: DatasetReader, train: list[int], held: list[int], init=None):
        model.fit(reader, episodes=train, init=init)
        report = model.report(reader, episodes=held)
        return report, model.fit_seconds

    def one_shot(model: ProgressReward, reader, train, held, init=None):
        rhos, times = [], []
        for i in train:
            report, seconds = fit_and_score(model, reader, [i], held, init)
            rhos += report.spearman
            times.append(seconds)
        return rhos, float(np.mean(times))

    k = f"{args.train}-shot"
    header = (f"{'task':<13} {'1-shot':>13} {k:>13} {'1-shot+multi':>13} {'1 view 1-shot':>14} "
              f"{'1 view ' + k:>14} {f'fit s (1/{args.train}/multi)':>18}")
    rows = [header, "-" * len(header)]
    for task, (reader, train, held) in splits.items():
        rho_1, t_1 = one_shot(multi, reader, train, held)
        report_k, t_k = fit_and_score(multi, reader, train, held)
        others = [(r, tr) for name, (r, tr, _) in splits.items() if name != task]
        rho_m, t_m = [float("nan")], float("nan")
        if others:
            started = time.perf_counter()
            pretrain = _fit_many(multi, others)
            t_pre = time.perf_counter() - started
            rho_m, t_m = one_shot(multi, reader, train, held, init=pretrain)
            t_m += t_pre / len(train)  # pretraining amortised over this task's 1-shot fits
        rho_s1, _ = one_shot(single, reader, train, held)
        report_s, _ = fit_and_score(single, reader, train, held)
        rows.append(
            f"{task:<13} {_fmt(rho_1):>13} {_fmt(report_k.spearman):>13} {_fmt(rho_m):>13} {_fmt(rho_s1):>14} "
            f"{_fmt(report_s.spearman):>14} {f'{t_1:.1f}/{t_k:.1f}/{t_m:.1f}':>18}"
        )
        print(rows[-1], flush=True)
    print()
    print("\n".join(rows))
    print(f"\nSpearman of predicted progress with time on {args.held_out} held-out demos per task (mean, min in "
          f"brackets); {args.train} demos for k-shot; cameras {args.cameras}, {args.size} px; torch threads "
          f"{args.threads}. 1-shot: mean over fitting on each of the {args.train} demos.")
    if tmp is not None:
        tmp.cleanup()


def _fit_many(model, sources):
    """A head trained on several tasks' demos at once (for adaptation), left out of ``model``."""
    from roboreward.rewards.progress import HeadSettings, fit_head

    feats, labels = [], []
    for reader, episodes in sources:
        for t in model._trajectories(reader, episodes, successful=True):
            feats.append(model._view_features(t.views))
            labels.append(model._labels(t))
    return fit_head(feats, labels, HeadSettings.from_config(model.config))


def _fmt(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ({v.min():.2f})"


if __name__ == "__main__":
    main()
