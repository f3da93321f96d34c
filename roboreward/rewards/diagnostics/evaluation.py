"""The reward evaluation: score a model on demos and rollouts, summarise the metrics, write the results.

:func:`evaluate_reward_model` ties the parts together — episodes from
:mod:`~roboreward.rewards.diagnostics.episodes`, rank correlations and success detection from
:mod:`roboreward.rewards.metrics`, the STARC distance from :mod:`~roboreward.rewards.diagnostics.starc`,
the figure and video from :mod:`~roboreward.rewards.diagnostics.plots` — and returns a
:class:`RewardEvaluation` whose :meth:`~RewardEvaluation.to_dict` is ``metrics.json``. What each metric
means is in :mod:`roboreward.rewards.diagnostics`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.errors import ConfigError
from roboreward.io import atomic_write
from roboreward.rewards.base import RewardModel
from roboreward.rewards.diagnostics.episodes import (
    DEMOS,
    ROLLOUT_SEED_OFFSET,
    ROLLOUTS,
    SCORE_KINDS,
    EpisodeRecord,
    ScoreKind,
    load_dataset_episodes,
    parse_rollouts,
    random_rollouts,
)
from roboreward.rewards.diagnostics.plots import plot_reward_vs_progress, write_reward_video
from roboreward.rewards.diagnostics.starc import starc_distance_of_state_rewards
from roboreward.rewards.metrics import best_threshold, cross_validated_accuracy, roc_auc


@dataclass(frozen=True)
class Summary:
    """Mean and standard deviation of a per-episode metric; ``undefined`` episodes are not in them."""

    mean: float | None
    std: float | None
    n: int
    undefined: int = 0

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Summary:
        defined = np.array([v for v in values if v is not None], dtype=np.float64)
        if len(defined) == 0:
            return cls(None, None, 0, len(values))
        return cls(float(defined.mean()), float(defined.std()), len(defined), len(values) - len(defined))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "undefined": self.undefined}

    def __str__(self) -> str:
        if self.mean is None:
            return "-" if self.undefined == 0 else f"undefined ({self.undefined})"
        return f"{self.mean:+.3f} ± {self.std:.3f} ({self.n})"


@dataclass
class SuccessDetection:
    """How well per-episode scores tell successful episodes from failed ones."""

    score: str
    n_success: int
    n_failure: int
    auc: float | None
    accuracy: float | None  # cross-validated
    folds: int | None
    threshold: float | None  # fitted on all episodes, for reference
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RewardEvaluation:
    """What :func:`evaluate_reward_model` measured; :meth:`to_dict` is ``metrics.json``."""

    reward: str
    demos: dict[str, Any]
    rollouts: dict[str, Any] | None
    spearman: dict[str, Summary]
    voc: Summary
    success: SuccessDetection
    starc: dict[str, dict[str, Any] | None]
    gamma: float
    episodes: list[EpisodeRecord]
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        score_kind = self.success.score
        return {
            "reward": self.reward,
            "demos": self.demos,
            "rollouts": self.rollouts,
            "true_progress": {
                "demos": "normalised time t/(T-1) on successful demos; the env's next.reward where stored",
                "rollouts": "the env's own dense reward of the step that reached each state",
            },
            "spearman": {k: v.to_dict() for k, v in self.spearman.items()},
            "voc": self.voc.to_dict(),
            "success_detection": self.success.to_dict(),
            "starc": {"gamma": self.gamma, **self.starc},
            "notes": self.notes,
            "files": self.files,
            "episodes": [
                {
                    "source": e.source,
                    "index": e.index,
                    "success": e.success,
                    "length": len(e),
                    "spearman_time": e.spearman_time,
                    "spearman_true_reward": e.spearman_true_reward,
                    "voc": e.voc,
                    "score": e.score(score_kind),  # type: ignore[arg-type]
                    "learned": {"min": float(e.learned.min()), "max": float(e.learned.max()),
                                "final": float(e.learned[-1])},
                }
                for e in self.episodes
            ],
        }

    def table(self) -> str:
        """A compact text table of the headline numbers."""

        def starc(key: str) -> str:
            entry = self.starc.get(key)
            return "-" if entry is None else f"{entry['distance']:.3f} ({entry['transitions']} tr.)"

        s = self.success
        rows = [
            ("metric", "demos", "rollouts"),
            ("Spearman vs time (successful demos)", str(self.spearman["demos_time"]), "-"),
            ("Spearman vs true reward", str(self.spearman["demos_true_reward"]),
             str(self.spearman["rollouts_true_reward"])),
            ("VOC (shuffled frames)", str(self.voc), "-"),
            (f"STARC distance (gamma {self.gamma:g})", starc("demos"), starc("rollouts")),
        ]
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)).rstrip() for r in rows]
        lines.append(f"STARC distance, all transitions: {starc('all')}")
        accuracy = "-" if s.accuracy is None else f"{s.accuracy:.3f} ({s.folds}-fold CV)"
        auc = "-" if s.auc is None else f"{s.auc:.3f}"
        lines.append(
            f"success vs failure ({s.n_success} vs {s.n_failure} episodes, score = {s.score} learned reward): "
            f"accuracy {accuracy}, ROC-AUC {auc}"
        )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def evaluate_reward_model(
    model: RewardModel,
    demos: str | Path | None,
    *,
    episodes: Sequence[int] | None = None,
    rollouts: str | None = None,
    env_config: Any = None,
    cameras: Sequence[str] | None = None,
    camera_hints: Sequence[str | None] = (),
    out_dir: str | Path | None = None,
    gamma: float = 0.99,
    seed: int = 0,
    max_steps: int | None = None,
    score: ScoreKind = "max",
    folds: int = 5,
    video: bool = True,
    video_episodes: int = 2,
    video_size: int = 256,
    fps: int = 20,
    plot_episodes: int = 12,
    starc_transitions: int = 5000,
    starc_samples: int = 512,
    reward_name: str | None = None,
    held_out: bool | None = None,
    notes: Sequence[str] = (),
    progress: bool = False,
) -> RewardEvaluation:
    """Score ``model`` on demos and rollouts, compute the metrics, write them (:mod:`roboreward.rewards.diagnostics`).

    :param demos: a LeRobot v3 dataset of demonstrations (None: rollouts only).
    :param episodes: demo episodes to evaluate (None: all of them).
    :param rollouts: ``random:N`` (needs ``env_config``), a dataset folder, or None.
    :param env_config: the experiment's :class:`~roboreward.experiment.EnvConfig`, for ``random:N``.
    :param cameras: the dataset cameras the model sees (tiled side by side); else a multi-view model's
        own cameras, then ``camera_hints`` (e.g. the reward's and the env's camera), then a dataset's only one.
    :param out_dir: where ``metrics.json``, the PNG and the mp4 go (None: write nothing).
    :param gamma: the discount of the STARC canonicalisation (the learner's).
    :param max_steps: cut random rollouts after this many steps (default: the env's limit).
    :param score: per-episode score for success detection: ``max``, ``final`` or ``mean`` learned reward.
    :param held_out: whether the demos were kept out of the reward model's fitting (recorded in metrics).
    :param notes: remarks to record in the metrics and print.
    """
    if score not in SCORE_KINDS:
        raise ValueError(f"score={score!r} is not allowed; choose one of {list(SCORE_KINDS)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma} must be in [0, 1]")
    plan = parse_rollouts(rollouts)
    if demos is None and plan is None:
        raise ConfigError("nothing to evaluate: give demonstrations (--demos DATASET) and/or rollouts (--rollouts)")
    if demos is not None and not Path(demos).is_dir():
        raise ConfigError(
            f"demos {str(demos)!r} is not a dataset folder; record one first, e.g. `roboreward demos record reach "
            f"--episodes 10 --cameras corner3 --size 64 --out {demos}`"
        )
    keep = video_episodes if video and out_dir is not None else 0
    notes = list(notes)
    records: list[EpisodeRecord] = []
    demo_info: dict[str, Any] = {"path": None if demos is None else str(demos), "episodes": [], "held_out": held_out}
    if demos is not None:
        demo_records = load_dataset_episodes(
            model, demos, DEMOS, episodes=episodes, cameras=cameras, camera_hints=camera_hints, keep_frames=keep,
            seed=seed, progress=progress,
        )
        demo_info["episodes"] = [r.index for r in demo_records]
        demo_info["successful"] = sum(r.success for r in demo_records)
        if not any(r.success for r in demo_records):
            notes.append("no successful demo among the evaluated episodes: no Spearman vs time and no VOC")
        records += demo_records
    rollout_info: dict[str, Any] | None = None
    if plan is not None:
        kind, arg = plan
        if kind == "random":
            if env_config is None:
                raise ValueError("random rollouts need the experiment's env config (env_config)")
            rollout_records = random_rollouts(
                model, env_config, int(arg), seed=seed, max_steps=max_steps, keep_frames=keep, progress=progress
            )
            rollout_info = {"source": f"random:{arg}", "env": env_config.id, "max_steps": max_steps,
                            "seeds": f"{seed + ROLLOUT_SEED_OFFSET}..{seed + ROLLOUT_SEED_OFFSET + int(arg) - 1}"}
        else:
            rollout_records = load_dataset_episodes(
                model, str(arg), ROLLOUTS, cameras=cameras, camera_hints=camera_hints, keep_frames=keep, voc=False,
                seed=seed, progress=progress,
            )
            rollout_info = {"source": str(arg)}
        rollout_info["episodes"] = len(rollout_records)
        rollout_info["successful"] = sum(r.success for r in rollout_records)
        records += rollout_records

    demo_records = [r for r in records if r.source == DEMOS]
    rollout_records = [r for r in records if r.source == ROLLOUTS]
    spearman_summaries = {
        "demos_time": Summary.of([r.spearman_time for r in demo_records if r.success]),
        "demos_true_reward": Summary.of([r.spearman_true_reward for r in demo_records if r.has_true_reward]),
        "rollouts_true_reward": Summary.of([r.spearman_true_reward for r in rollout_records if r.has_true_reward]),
    }
    voc = Summary.of([r.voc for r in demo_records if r.success])
    success = _success_detection(records, score, folds, seed)
    if success.note:
        notes.append(success.note)
    starc = {
        "all": _starc(records, gamma, starc_transitions, starc_samples, seed),
        "demos": _starc(demo_records, gamma, starc_transitions, starc_samples, seed),
        "rollouts": _starc(rollout_records, gamma, starc_transitions, starc_samples, seed),
    }
    if starc["all"] is None:
        notes.append("no STARC distance: no evaluated episode records the env's reward")
    result = RewardEvaluation(
        reward=reward_name or type(model).name,
        demos=demo_info,
        rollouts=rollout_info,
        spearman=spearman_summaries,
        voc=voc,
        success=success,
        starc=starc,
        gamma=gamma,
        episodes=records,
        notes=notes,
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        result.out_dir = out
        plot_reward_vs_progress(records, out / "reward_vs_progress.png", result.reward, plot_episodes)
        result.files.append("reward_vs_progress.png")
        if keep and any(r.frames is not None for r in records):
            write_reward_video(records, out / "rewards.mp4", result.reward, size=video_size, fps=fps)
            result.files.append("rewards.mp4")
        # last: its presence means the folder is complete
        atomic_write(out / "metrics.json", json.dumps(result.to_dict(), indent=2, allow_nan=False).encode())
        result.files.insert(0, "metrics.json")
    return result


def _success_detection(records: list[EpisodeRecord], score: ScoreKind, folds: int, seed: int) -> SuccessDetection:
    scores = np.array([r.score(score) for r in records], dtype=np.float64)
    labels = np.array([r.success for r in records], dtype=bool)
    n_success, n_failure = int(labels.sum()), int((~labels).sum())
    note = None
    auc = roc_auc(scores, labels) if len(records) else None
    cv = cross_validated_accuracy(scores, labels, folds, seed) if len(records) else None
    threshold = best_threshold(scores, labels)[0] if n_success and n_failure else None
    if threshold is not None and not np.isfinite(threshold):  # "every episode" or "none": no threshold to report
        threshold = None
    if cv is None:
        note = (
            f"no success/failure accuracy: it needs >= 2 successful and >= 2 failed episodes, got {n_success} and "
            f"{n_failure}; add failures with --rollouts random:N (or a dataset of failed rollouts)"
        )
    return SuccessDetection(
        score=score, n_success=n_success, n_failure=n_failure, auc=auc,
        accuracy=None if cv is None else cv[0], folds=None if cv is None else cv[1],
        threshold=threshold, note=note,
    )


def _starc(records: list[EpisodeRecord], gamma: float, max_transitions: int, samples: int, seed: int) -> dict | None:
    if not records:
        return None
    learned = np.concatenate([r.learned for r in records])
    true = np.concatenate([r.true_reward for r in records])
    starts = np.cumsum([0] + [len(r) for r in records[:-1]])
    transitions = np.concatenate(
        [np.stack([s + np.arange(len(r) - 1), s + np.arange(1, len(r))], axis=1) for s, r in zip(starts, records)]
    )
    out = starc_distance_of_state_rewards(
        learned, true, transitions, gamma, max_transitions=max_transitions, samples=samples, seed=seed
    )
    if out is None:
        return None
    distance, used = out
    return {"distance": distance, "transitions": used, "samples": min(samples, used)}


__all__ = ["RewardEvaluation", "SuccessDetection", "Summary", "evaluate_reward_model"]
