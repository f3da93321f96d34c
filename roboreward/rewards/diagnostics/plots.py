"""The pictures of a reward evaluation: learned reward against true progress, as a figure and as a video.

- :func:`plot_reward_vs_progress` (``reward_vs_progress.png``): per episode, the learned reward against
  true progress (demos blue, rollouts red), and all episodes overlaid against normalised time;
- :func:`write_reward_video` (``rewards.mp4``): the episodes that kept their frames, each frame enlarged
  with a live curve of the learned reward and true progress so far and the current values written on it.

matplotlib, OpenCV and imageio load when a picture is made.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from roboreward.rewards.diagnostics.episodes import DEMOS, ROLLOUTS, EpisodeRecord

COLOURS = {DEMOS: "tab:blue", ROLLOUTS: "tab:red"}
TRUE_COLOUR = "tab:orange"


def plot_reward_vs_progress(records: list[EpisodeRecord], path: Path, reward_name: str, max_episodes: int = 12) -> None:
    """Per episode: learned reward (left axis) against true progress (right axis); then all episodes overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    demos = [r for r in records if r.source == DEMOS]
    rollouts = [r for r in records if r.source == ROLLOUTS]
    half = max(1, max_episodes // 2)
    shown = demos[: max(half, max_episodes - len(rollouts))]
    shown += rollouts[: max_episodes - len(shown)]
    panels = len(shown) + 1
    cols = min(4, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, r in zip(axes.flat, shown):
        steps = np.arange(len(r))
        ax.plot(steps, r.learned, color=COLOURS[r.source], lw=1.5, label=f"learned ({reward_name})")
        ax.set_xlabel("step")
        ax.set_ylabel("learned reward", color=COLOURS[r.source])
        twin = ax.twinx()
        if r.has_true_reward:
            twin.plot(steps, r.true_reward, color=TRUE_COLOUR, lw=1.0, label="true reward (env)")
        if r.source == DEMOS and r.success:  # normalised time, drawn across the true reward's range
            lo, hi = (np.nanmin(r.true_reward), np.nanmax(r.true_reward)) if r.has_true_reward else (0.0, 1.0)
            twin.plot(steps, lo + r.time * (hi - lo), color="black", ls="--", lw=0.8, label="normalised time")
        twin.set_ylabel("true progress", color=TRUE_COLOUR)
        if ax is axes.flat[0]:
            handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
            ax.legend(handles=handles, fontsize=7, loc="upper left")
        rho = r.spearman_time if r.spearman_time is not None else r.spearman_true_reward
        rho_text = "" if rho is None else f", ρ = {rho:+.2f}"
        ax.set_title(f"{r.label} ({'success' if r.success else 'failure'}{rho_text})", fontsize=9)
    overlay = axes.flat[len(shown)]
    for r in records:
        overlay.plot(r.time, r.learned, color=COLOURS[r.source], lw=0.8, alpha=0.6)
    for source, colour in COLOURS.items():
        overlay.plot([], [], color=colour, label=source)
    overlay.set_xlabel("normalised time t / (T-1)")
    overlay.set_ylabel("learned reward")
    overlay.set_title(f"all {len(records)} episodes", fontsize=9)
    overlay.legend(fontsize=8)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle(f"{reward_name}: learned reward against true progress", fontsize=11)
    # fixed margins (tight_layout costs seconds with twin axes); room for both y labels of every panel
    height = 3.0 * rows  # inches
    fig.subplots_adjust(left=0.06, right=0.95, bottom=0.55 / height, top=1 - 0.7 / height, wspace=0.55, hspace=0.5)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def _curve_panel(width: int, height: int, values: np.ndarray, lo: float, hi: float, t: int) -> np.ndarray:
    """Pixel coordinates ``int32 [t+1, 2]`` of values[0..t] in a ``width x height`` panel scaled to [lo, hi]."""
    n = len(values)
    xs = 6 + np.arange(t + 1) * (width - 12) / max(n - 1, 1)
    span = hi - lo if hi > lo else 1.0
    ys = height - 6 - (values[: t + 1] - lo) / span * (height - 12)
    return np.stack([xs, ys], axis=1).round().astype(np.int32)


def write_reward_video(
    records: list[EpisodeRecord], path: Path, reward_name: str, size: int = 256, fps: int = 20
) -> None:
    """The episodes that kept frames, enlarged, with the learned reward and true progress drawn live beneath."""
    import cv2
    import imageio.v2 as imageio

    episodes = [r for r in records if r.frames is not None]
    lo = min(float(r.learned.min()) for r in records)
    hi = max(float(r.learned.max()) for r in records)
    true_all = np.concatenate([r.true_reward for r in records])
    known = np.isfinite(true_all).any()
    true_lo, true_hi = (float(np.nanmin(true_all)), float(np.nanmax(true_all))) if known else (0.0, 1.0)
    panel_h = size * 3 // 8 // 2 * 2
    white, learned_rgb, true_rgb = (255, 255, 255), {DEMOS: (80, 150, 255), ROLLOUTS: (255, 90, 90)}, (255, 170, 40)
    scale = size / 256
    video_width = max(max(2, round(size * r.frames.shape[2] / r.frames.shape[1] / 2) * 2) for r in episodes)
    tmp = path.with_name(path.stem + ".tmp.mp4")
    with imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1, quality=7) as writer:
        for r in episodes:
            h, w = r.frames.shape[1:3]  # several views tiled side by side are wider than high
            width = max(2, round(size * w / h / 2) * 2)
            true = r.true_reward.copy()
            if r.source == DEMOS and r.success and not r.has_true_reward:
                true, t_lo, t_hi, true_name = r.time, 0.0, 1.0, "time"
            else:
                t_lo, t_hi, true_name = true_lo, true_hi, "true"
            for t in range(len(r)):
                image = cv2.resize(r.frames[t], (width, size), interpolation=cv2.INTER_NEAREST)
                panel = np.full((panel_h, width, 3), 24, dtype=np.uint8)
                if np.isfinite(true[: t + 1]).sum() >= 2:
                    finite = np.isfinite(true[: t + 1])
                    pts = _curve_panel(width, panel_h, np.nan_to_num(true, nan=t_lo), t_lo, t_hi, t)[finite]
                    cv2.polylines(panel, [pts], False, true_rgb, 1, cv2.LINE_AA)
                pts = _curve_panel(width, panel_h, r.learned, lo, hi, t)
                cv2.polylines(panel, [pts], False, learned_rgb[r.source], max(1, int(2 * scale)), cv2.LINE_AA)
                cv2.circle(panel, tuple(int(v) for v in pts[-1]), max(2, int(3 * scale)), white, -1, cv2.LINE_AA)
                cv2.putText(panel, "learned", (6, int(12 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                            0.35 * scale, learned_rgb[r.source], 1, cv2.LINE_AA)
                cv2.putText(panel, true_name, (6, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                            0.35 * scale, true_rgb, 1, cv2.LINE_AA)
                frame = np.concatenate([image, panel], axis=0)
                lines = [f"{r.label} ({'success' if r.success else 'failure'})  t {t}/{len(r) - 1}",
                         f"{reward_name} {r.learned[t]:+.3f}"]
                if np.isfinite(r.true_reward[t]):
                    lines[-1] += f"  true {r.true_reward[t]:+.3f}"
                line = int(14 * scale)
                frame[: line * len(lines) + int(6 * scale), : int(size * 0.9)] //= 3
                if frame.shape[1] != video_width:  # one video size: pad narrower episodes on the right
                    frame = np.pad(frame, ((0, 0), (0, video_width - frame.shape[1]), (0, 0)))
                for k, text in enumerate(lines):
                    cv2.putText(frame, text, (4, line * (k + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, white, 1,
                                cv2.LINE_AA)
                writer.append_data(frame)
    os.replace(tmp, path)


__all__ = ["plot_reward_vs_progress", "write_reward_video"]
