"""Post-processing of a learned reward stream: smoothing over recent frames and running normalisation.

Both are off by default and work for any :class:`~roboreward.rewards.base.RewardModel`. A reward
config opts in by inheriting :class:`RewardPostprocessConfig` (as ``ClipRewardConfig`` does)::

    reward:
      type: clip
      smoothing_window: 4     # each env's reward = mean of its last 4 learned rewards in the episode
      normalize: true         # then (r - running mean) / running std, clipped to ±normalize_clip

Smoothing
    A per-env moving average over the last ``smoothing_window`` steps *of the current episode*:
    at step ``t`` of an episode the reward is ``mean(r[max(0, t - N + 1)], ..., r[t])``, so the
    first steps average over fewer frames and nothing leaks across an episode boundary. A
    frame-based reward such as CLIP's jitters from frame to frame with rendering details the policy
    does not control; averaging a few frames keeps the trend and drops that noise. It delays the
    signal by about ``(N - 1) / 2`` steps, so keep ``N`` small next to the episode length.

Normalisation
    Welford's running mean and variance of the learned reward stream — one set of statistics per
    wrapped (vector) env, shared by all its envs so they stay on one scale, updated with each
    step's batch before it is normalised (as SB3's ``VecNormalize`` does) — then
    ``clip((r - mean) / sqrt(var + eps), -normalize_clip, normalize_clip)``. Unlike
    ``VecNormalize(norm_reward=True)`` it applies to the learned reward only and keeps the raw
    value: the wrappers put the model's output in ``info["learned_reward_raw"]``, and the env's own
    reward stays in ``info["true_reward"]``. Subtracting the mean shifts every step's reward by the
    same amount, which leaves the optimal policy unchanged for fixed-length episodes (VLM-RM's
    humanoid) but not where an episode can end early: there a constant shift rewards or punishes
    survival. The statistics are saved in every checkpoint's ``state.json`` and restored on
    ``--resume`` and by ``roboreward eval`` (:mod:`roboreward.policies.checkpoints`).

Where the state lives
    In the reward wrappers (:class:`~roboreward.rewards.wrappers.VecLearnedReward`,
    :class:`~roboreward.rewards.wrappers.LearnedReward`), each owning one
    :class:`RewardPostprocessor` built from the reward config. The reward model stays a stateless
    function of a batch — the same frames always score the same, whoever calls it (evaluation,
    datasets, benchmarks) — while the wrapper is the one place that sees which env each reward
    belongs to and where episodes end (``dones``, SB3's auto-reset), which is what smoothing needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from roboreward.config import bounded


@dataclass(kw_only=True)
class RewardPostprocessConfig:
    """Fields a reward config inherits to offer smoothing and normalisation (both off by default)."""

    smoothing_window: int = bounded(
        0, "average each env's learned reward over its last N steps within the episode; 0 or 1 = off", ge=0
    )
    normalize: bool = bounded(False, "standardise the learned reward with its running mean and std (Welford)")
    normalize_clip: float = bounded(10.0, "normalised rewards are clipped to [-normalize_clip, normalize_clip]", gt=0.0)

    def __post_init__(self) -> None:
        if self.smoothing_window < 0:
            raise ValueError(f"smoothing_window={self.smoothing_window} must be >= 0 (0 turns smoothing off)")
        if not self.normalize_clip > 0:
            raise ValueError(f"normalize_clip={self.normalize_clip} must be > 0")


class MovingAverage:
    """Per-env mean of the last ``window`` rewards of the current episode.

    >>> avg = MovingAverage(n_envs=1, window=2)
    >>> [float(avg(np.array([r]), np.array([d]))[0]) for r, d in [(1, 0), (3, 0), (5, 1), (7, 0)]]
    [1.0, 2.0, 4.0, 7.0]
    """

    def __init__(self, n_envs: int, window: int):
        if window < 1:
            raise ValueError(f"window={window} must be >= 1")
        self.window = window
        self._buffer = np.zeros((n_envs, window), dtype=np.float64)
        self._count = np.zeros(n_envs, dtype=np.int64)  # rewards seen in each env's current episode

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Smoothed ``rewards [n_envs]``; envs with ``dones`` start their next episode empty."""
        rows = np.arange(len(self._count))
        self._buffer[rows, self._count % self.window] = rewards
        self._count += 1
        smoothed = self._buffer.sum(axis=1) / np.minimum(self._count, self.window)  # unused slots hold 0
        self.reset(np.flatnonzero(np.asarray(dones)))
        return smoothed

    def reset(self, envs: np.ndarray | list[int] | None = None) -> None:
        """Forget the history of ``envs`` (all when None): their episodes start over."""
        index = slice(None) if envs is None else np.asarray(envs, dtype=np.int64)
        self._buffer[index] = 0.0
        self._count[index] = 0


class RunningNormalizer:
    """Running mean and variance of a scalar stream (Welford, merged a batch at a time), and clipping.

    >>> norm = RunningNormalizer(clip=10.0)
    >>> out = norm(np.array([1.0, 3.0]))    # mean 2, std 1
    >>> [round(float(v), 6) for v in out]
    [-1.0, 1.0]
    """

    def __init__(self, clip: float = 10.0, epsilon: float = 1e-8):
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0  # sum of squared differences from the mean

    @property
    def var(self) -> float:
        return self._m2 / self.count if self.count else 1.0

    def update(self, values: np.ndarray) -> None:
        """Merge a batch into the statistics (Chan et al.'s parallel form of Welford's update)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        if x.size == 0:
            return
        n_b, mean_b = x.size, float(x.mean())
        m2_b = float(np.square(x - mean_b).sum())
        n = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self._m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n

    def normalize(self, values: np.ndarray) -> np.ndarray:
        z = (np.asarray(values, dtype=np.float64) - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(z, -self.clip, self.clip)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Update with ``values``, then return them normalised."""
        self.update(values)
        return self.normalize(values)

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self._m2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.mean, self._m2 = int(state["count"]), float(state["mean"]), float(state["m2"])


class RewardPostprocessor:
    """Smoothing, then normalisation, of the learned rewards of ``n_envs`` envs, a step at a time."""

    def __init__(self, n_envs: int, smoothing_window: int = 0, normalize: bool = False, normalize_clip: float = 10.0):
        self.n_envs = n_envs
        self.smoothing = MovingAverage(n_envs, smoothing_window) if smoothing_window > 1 else None
        self.normalizer = RunningNormalizer(normalize_clip) if normalize else None

    @classmethod
    def from_config(cls, config: Any, n_envs: int) -> RewardPostprocessor | None:
        """The post-processing a reward config asks for, or None when it asks for none."""
        if not isinstance(config, RewardPostprocessConfig):
            return None
        if config.smoothing_window <= 1 and not config.normalize:
            return None
        return cls(n_envs, config.smoothing_window, config.normalize, config.normalize_clip)

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """``float32 [n_envs]`` processed rewards of one step; ``dones`` ends those envs' episodes."""
        out = np.asarray(rewards, dtype=np.float64)
        if out.shape != (self.n_envs,):
            raise ValueError(f"expected {self.n_envs} rewards, one per env; got shape {out.shape}")
        if self.smoothing is not None:
            out = self.smoothing(out, dones)
        if self.normalizer is not None:
            out = self.normalizer(out)
        return out.astype(np.float32)

    def reset(self, envs: np.ndarray | list[int] | None = None) -> None:
        """New episodes in ``envs`` (all when None); the normalisation statistics are kept."""
        if self.smoothing is not None:
            self.smoothing.reset(envs)
