"""The episodes a reward model is evaluated on: what is kept of each, and where they come from.

An :class:`EpisodeRecord` holds, per state ``s_0 .. s_{L-1}``, the model's learned reward ``r̂_t`` (its
raw output on the state's frame, without the wrappers' smoothing or normalisation) and the env's
reward of the step that reached ``s_t``. Episodes come from a dataset (:func:`load_dataset_episodes`:
frame ``t`` is state ``s_t``, ``next.reward[t-1]`` the reward of reaching it) or from rollouts of
uniform random actions in the experiment's env (:func:`random_rollouts`, reset with seeds
``seed + ROLLOUT_SEED_OFFSET + i``, never a demo's). A multi-view model sees its cameras tiled side
by side (:func:`choose_cameras`, :func:`tile_frames`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from roboreward.errors import ConfigError, NonFiniteError
from roboreward.rewards.base import RewardBatch, RewardModel
from roboreward.rewards.metrics import spearman, value_order_correlation

ROLLOUT_SEED_OFFSET = 2_000_000  # random rollouts never replay a demo's (or an evaluation's) seed
DEMOS, ROLLOUTS = "demos", "rollouts"
SCORE_KINDS = ("max", "final", "mean")
ScoreKind = Literal["max", "final", "mean"]


@dataclass
class EpisodeRecord:
    """One evaluated episode: its states' learned rewards and what is known to be true about them.

    Arrays are per state ``s_0 .. s_{L-1}``; ``true_reward[t]`` is the env's reward of the step that
    reached ``s_t`` (NaN at ``t = 0`` and where not recorded).
    """

    source: str  # "demos" or "rollouts"
    index: int  # episode index in its dataset, or rollout number
    success: bool
    learned: np.ndarray  # float64 [L]
    true_reward: np.ndarray  # float64 [L]
    voc: float | None = None  # successful demos: VOC from shuffled frames
    frames: np.ndarray | None = None  # uint8 [L, H, W, 3], kept for the video only

    def __len__(self) -> int:
        return len(self.learned)

    @property
    def label(self) -> str:
        return f"{'demo' if self.source == DEMOS else 'rollout'} {self.index}"

    @property
    def has_true_reward(self) -> bool:
        return bool(np.isfinite(self.true_reward).any())

    @property
    def time(self) -> np.ndarray:
        """Normalised time ``t / (L - 1)``."""
        return np.arange(len(self)) / max(len(self) - 1, 1)

    @property
    def spearman_time(self) -> float | None:
        """Learned reward vs normalised time: the true progress of a successful demo (None otherwise)."""
        return spearman(self.learned, self.time) if self.source == DEMOS and self.success else None

    @property
    def spearman_true_reward(self) -> float | None:
        return spearman(self.learned, self.true_reward) if self.has_true_reward else None

    def score(self, kind: ScoreKind) -> float:
        return episode_score(self.learned, kind)


def episode_score(values: np.ndarray, kind: ScoreKind = "max") -> float:
    """One number per episode for telling success from failure: the ``max``, ``final`` or ``mean`` learned reward."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"episode_score needs a non-empty 1-d sequence of rewards; got shape {values.shape}")
    if kind == "max":
        return float(values.max())
    if kind == "final":
        return float(values[-1])
    if kind == "mean":
        return float(values.mean())
    raise ValueError(f"score={kind!r} is not allowed; choose one of {list(SCORE_KINDS)}")


# --------------------------------------------------------------------------------------------
# Scoring


def score_frames(
    model: RewardModel,
    frames: np.ndarray | None,
    observations: np.ndarray | None = None,
    goal_frame: np.ndarray | None = None,
    chunk: int = 256,
) -> np.ndarray:
    """The model's reward of each state, ``float64 [L]``, in batches of ``chunk``."""
    length = len(frames) if frames is not None else len(observations)  # type: ignore[arg-type]
    out = np.empty(length)
    for i in range(0, length, chunk):
        j = min(i + chunk, length)
        goals = None if goal_frame is None else np.broadcast_to(goal_frame, (j - i, *goal_frame.shape))
        batch = RewardBatch(
            frames=None if frames is None else frames[i:j],
            observations=None if observations is None else observations[i:j],
            goal_frames=goals,
        )
        out[i:j] = model(batch)
    if not np.isfinite(out).all():
        raise NonFiniteError(f"{type(model).__name__} returned NaN or inf rewards; the reward model is broken")
    return out


def _shuffled_voc(
    model: RewardModel, frames: np.ndarray | None, observations: np.ndarray | None, goal: np.ndarray | None, seed: int
) -> float | None:
    """GVL's VOC: score the frames in a random order, put the values back in time order, rank-correlate with time."""
    length = len(frames) if frames is not None else len(observations)  # type: ignore[arg-type]
    perm = np.random.default_rng(seed).permutation(length)
    shuffled = score_frames(
        model, None if frames is None else frames[perm], None if observations is None else observations[perm], goal
    )
    values = np.empty(length)
    values[perm] = shuffled
    return value_order_correlation(values)


# --------------------------------------------------------------------------------------------
# Cameras


def model_cameras(model: RewardModel) -> list[str]:
    """The cameras a multi-view model reads, tiled side by side in this order; [] for a one-view model.

    A multi-view model says so with ``required_cameras`` (a property or a method returning camera names),
    as :class:`~roboreward.rewards.progress.ProgressReward` does.
    """
    required = getattr(model, "required_cameras", None)
    if callable(required):
        required = required()
    return [str(c) for c in required] if isinstance(required, (list, tuple)) else []


def choose_cameras(
    cameras: Sequence[str],
    explicit: Sequence[str] | None = None,
    required: Sequence[str] = (),
    hints: Sequence[str | None] = (),
    where: str = "the dataset",
) -> list[str]:
    """The dataset cameras whose frames the model sees (several are tiled side by side, in this order).

    ``explicit`` (``--camera``) if given, else the views a multi-view model ``required``, else the first
    of ``hints`` (the reward's and the env's camera) the dataset has, else its only camera.
    """
    for chosen, why in ((explicit, "--camera"), (required, "the reward model's cameras")):
        if chosen:
            missing = [c for c in chosen if c not in cameras]
            if missing:
                raise ConfigError(
                    f"camera {missing[0]!r} ({why}) is not in {where}; its cameras are {list(cameras)} "
                    "(choose with --camera)"
                )
            return list(chosen)
    for hint in hints:
        if hint is not None and hint in cameras:
            return [hint]
    if len(cameras) == 1:
        return [cameras[0]]
    raise ConfigError(f"{where} has cameras {list(cameras)}; say which the reward model sees with --camera")


def tile_frames(views: Sequence[np.ndarray]) -> np.ndarray:
    """Views ``uint8 [T, H, W, 3]`` side by side, ``[T, H, V·W, 3]``: how multi-view models take their frames."""
    return views[0] if len(views) == 1 else np.concatenate(list(views), axis=-2)


# --------------------------------------------------------------------------------------------
# Sources


def load_dataset_episodes(
    model: RewardModel,
    root: str | Path,
    source: str,
    *,
    episodes: Sequence[int] | None = None,
    cameras: Sequence[str] | None = None,
    camera_hints: Sequence[str | None] = (),
    keep_frames: int = 0,
    voc: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> list[EpisodeRecord]:
    """Score dataset episodes: frame ``t`` is state ``s_t``; ``next.reward[t-1]`` is the true reward of reaching it.

    :param cameras: the cameras the model sees (:func:`choose_cameras`; several are tiled side by side).
    :param keep_frames: keep the frames of the first this-many episodes (for the video).
    :param voc: also score successful episodes with shuffled frames (VOC).
    """
    from tqdm.auto import tqdm

    from roboreward.datasets.lerobot_v3 import DatasetReader

    reader = DatasetReader(root)
    indices = [e.index for e in reader.episodes] if episodes is None else [int(i) for i in episodes]
    for i in indices:
        if not 0 <= i < len(reader):
            raise ConfigError(f"episode {i} is not in {root}; it has episodes 0..{len(reader) - 1}")
    use_frames = bool(reader.cameras) or model.requires_frames
    views = []
    if use_frames:
        views = choose_cameras(reader.cameras, cameras, model_cameras(model), camera_hints, where=str(root))
    records = []
    bar = tqdm(indices, desc=f"score {source}", unit="episode", disable=not progress, dynamic_ncols=True)
    for n, i in enumerate(bar):
        ep = reader.episode(i)
        frames = tile_frames([reader.frames(i, c) for c in views]) if views else None
        learned = score_frames(model, frames, ep.state)
        true = np.full(len(ep), np.nan)
        true[1:] = ep.reward[:-1]
        record = EpisodeRecord(source=source, index=i, success=ep.success, learned=learned, true_reward=true)
        if voc and ep.success and source == DEMOS:
            record.voc = _shuffled_voc(model, frames, ep.state, None, seed + i)
        if n < keep_frames:
            record.frames = frames
        records.append(record)
    return records


def random_rollouts(
    model: RewardModel,
    env_config: Any,
    count: int,
    *,
    seed: int = 0,
    max_steps: int | None = None,
    keep_frames: int = 0,
    progress: bool = False,
) -> list[EpisodeRecord]:
    """``count`` episodes of uniform random actions in the configured env, rendered with its render options.

    States are ``s_0`` (after reset) to ``s_T``; ``true_reward[t]`` is the env's reward of step ``t - 1``,
    success is ``info["is_success"]`` at any step. Episodes end at termination, truncation or ``max_steps``.
    A multi-view model (:func:`model_cameras`) gets its cameras side by side, from an env that can
    ``render_cameras`` (the Meta-World envs).
    """
    from tqdm.auto import tqdm

    from roboreward.envs.make import make_env

    if count < 1:
        raise ConfigError(f"random rollouts: {count} episodes asked for; give random:N with N >= 1")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps={max_steps} must be >= 1")
    env = make_env(env_config, render=True)
    records = []
    try:
        env.action_space.seed(seed)
        has_goal = callable(getattr(env.unwrapped, "render_goal", None))
        views = model_cameras(model)
        if len(views) > 1 and not callable(getattr(env.unwrapped, "render_cameras", None)):
            raise ConfigError(
                f"the reward model reads cameras {views} side by side, but {env_config.id} cannot render several "
                "cameras (no render_cameras); evaluate it on datasets (--rollouts DATASET) instead"
            )

        def render() -> np.ndarray:
            if len(views) > 1:
                frames = env.unwrapped.render_cameras(views)
                return tile_frames([frames[c] for c in views])
            return env.render()

        for i in tqdm(range(count), desc="random rollouts", unit="episode", disable=not progress, dynamic_ncols=True):
            obs, info = env.reset(seed=seed + ROLLOUT_SEED_OFFSET + i)
            goal = env.unwrapped.render_goal() if has_goal else None
            frames, observations, rewards = [render()], [obs], [np.nan]
            success = bool(info.get("is_success", False))
            done = False
            while not done and (max_steps is None or len(rewards) <= max_steps):
                obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
                frames.append(render())
                observations.append(obs)
                rewards.append(float(reward))
                success |= bool(info.get("is_success", False))
                done = terminated or truncated
            frames_arr = np.stack(frames)
            learned = score_frames(model, frames_arr, np.stack(observations), goal)
            record = EpisodeRecord(
                source=ROLLOUTS, index=i, success=success, learned=learned,
                true_reward=np.array(rewards, dtype=np.float64),
            )
            if i < keep_frames:
                record.frames = frames_arr
            records.append(record)
    finally:
        env.close()
    return records


def parse_rollouts(spec: str | None) -> tuple[str, int | str] | None:
    """``random:N`` -> ("random", N); a dataset folder -> ("dataset", path); None / ``none`` -> None."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    if spec.startswith("random"):
        _, sep, count = spec.partition(":")
        if not sep or not count.isdigit() or int(count) < 1:
            raise ConfigError(f"--rollouts {spec!r}: write random:N with N >= 1 episodes, e.g. random:10")
        return "random", int(count)
    if not Path(spec).is_dir():
        raise ConfigError(
            f"--rollouts {spec!r} is neither random:N nor a dataset folder; record one with `roboreward demos record` "
            "or use random:N"
        )
    return "dataset", spec


def training_episodes(reward_config: Any, demos: str | Path) -> list[int] | None:
    """The episodes of ``demos`` the reward model learns from, when its config learns from that dataset.

    Reads the config's ``demos`` (a dataset folder) and ``episodes`` (``[]`` = the dataset's successful
    episodes), as the perceptual reward's config has them; None when the model does not learn from ``demos``.
    """
    source = getattr(reward_config, "demos", None)
    if not isinstance(source, (str, Path)) or not Path(source).is_dir():
        return None
    if Path(source).resolve() != Path(demos).resolve():
        return None
    chosen = list(getattr(reward_config, "episodes", None) or [])
    if chosen:
        return sorted(int(i) for i in chosen)
    from roboreward.datasets.lerobot_v3 import DatasetReader

    return [e.index for e in DatasetReader(demos).episodes if e.success]


__all__ = [
    "DEMOS",
    "ROLLOUTS",
    "ROLLOUT_SEED_OFFSET",
    "SCORE_KINDS",
    "EpisodeRecord",
    "ScoreKind",
    "choose_cameras",
    "episode_score",
    "load_dataset_episodes",
    "model_cameras",
    "parse_rollouts",
    "random_rollouts",
    "score_frames",
    "tile_frames",
    "training_episodes",
]
