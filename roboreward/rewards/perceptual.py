"""Unsupervised perceptual reward: a dense reward for the steps of a task, learned from a few videos.

From "Unsupervised Perceptual Rewards for Imitation Learning" (Sermanet, Xu, Levine, RSS 2017). No
labels, no reward network training: a frozen pretrained image network, a handful of successful
demonstrations (videos of one camera) and four simple steps.

1. **Features.** Every frame ``x`` becomes a vector ``φ(x) ∈ R^D`` of frozen ImageNet features:
   EfficientNet-Lite0 cut after ``blocks`` of its 16 blocks, the feature map average-pooled to a
   ``grid x grid`` map, unit-normalised (:class:`~roboreward.rewards.features.EfficientNetLite0Features`;
   the paper used Inception's intermediate layers). A feature is one channel in one grid cell, so a
   selected feature can say *where* something is ("arm in the upper right").

2. **Steps.** Each demonstration ``φ_1..φ_T`` is cut into ``K`` contiguous steps by the split points
   ``0 = b_0 < b_1 < ... < b_K = T`` that minimise the within-step feature variance::

       J(b) = Σ_k Σ_{b_{k-1} <= t < b_k} ‖φ_t - m_k‖²,     m_k = the mean of step k's frames

   (the paper searches split points for the lowest average standard deviation within segments; the
   sum of squares is its length-weighted form, which does not favour tiny segments). The minimum is
   exact, by dynamic programming over split points: with prefix sums ``P_j = Σ_{t<j} φ_t`` and
   ``Q_j = Σ_{t<j} ‖φ_t‖²`` a segment's cost is ``C(i, j) = Q_j - Q_i - ‖P_j - P_i‖² / (j - i)``, and
   ``D_k(j) = min_i D_{k-1}(i) + C(i, j)`` — O(T²·D) for the costs, O(K·T²) for the recursion
   (:func:`segment_sequence`). Steps hold at least ``min_step_frames`` frames. Each demo has its own
   split points (demos differ in speed), so minimising the objective averaged over the demos is
   segmenting each demo alone (:func:`segment_demos`); step k of every demo then pools into step k.

3. **Discriminative features.** For step k, with ``μ⁺, σ⁺`` the mean and standard deviation of each
   feature over the frames of step k (all demos) and ``μ⁻, σ⁻`` over the other frames, every feature
   is scored and the ``M`` best are kept (:func:`select_features`)::

       paper:   z = α·|μ⁺ - μ⁻| - (σ⁺ + σ⁻)             (α = selection_alpha)
       fisher:  z = (μ⁺ - μ⁻)² / (σ⁺² + σ⁻²)            (scale-free alternative)

   Standard deviations get a floor, ``σ ← sqrt(σ² + (std_floor·s)²)`` with ``s`` the feature's
   standard deviation over all demo frames, so a step of near-identical frames is not infinitely sure.

4. **Step classifiers and the reward.** Step k's classifier is a Gaussian model of its ``M`` features
   inside the step, ``N(μ⁺, σ⁺)``, against one outside it, ``N(μ⁻, σ⁻)``, with equal priors. The
   log-likelihood ratio is *averaged* over the features rather than summed (neighbouring CNN features
   are strongly correlated; summing them as if independent makes a step function), which keeps the
   probability smooth (the paper scores a step by the squared z-distance of the features to the
   step's Gaussian; the out-of-step Gaussian turns that distance into a probability)::

       ℓ_k(x) = (1/M) Σ_j [ log N(φ_j(x); μ⁺_kj, σ⁺_kj) - log N(φ_j(x); μ⁻_kj, σ⁻_kj) ]
       p_k(x) = sigmoid(ℓ_k(x))                                  probability that x is in step k

   and the reward weighs later steps more, with weights that sum to one so ``r ∈ [0, 1]``::

       r(x) = Σ_k w_k·p_k(x),      w_k = 2^(k-1) / (2^K - 1)     (step_weights: exponential, the paper's)
                                   w_k = k / (K(K+1)/2)           (step_weights: linear)

   A frame that looks like step k scores about ``w_k`` (``K = 3``: 1/7, 2/7, 4/7), one between two
   steps scores between them, and a frame like no step of the demos scores about 0.

The fitted model is plain arrays in an ``.npz`` file (:meth:`PerceptualReward.save`, read back with
``allow_pickle=False``), so a config can point at it with ``reward.model_path``; or the model is
fitted when built, from ``reward.demos`` (a LeRobot v3 dataset folder, e.g. recorded with
``roboreward demos record``) and ``reward.camera``. Reward frames must be rendered like the demos'
(same camera, same size), or resized to one ``input_size``.

Example::

    model = PerceptualReward(PerceptualRewardConfig(steps=3, features=32))
    model.fit(DatasetReader("demos/drawer-open"), camera="corner3")   # or a list of uint8 [T, H, W, 3]
    model.save("drawer_open_reward.npz")
    rewards = model(RewardBatch(frames=frames))                       # float32 [B], in [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from roboreward.config import bounded
from roboreward.errors import CheckpointError, ConfigError, DatasetError
from roboreward.io import atomic_write_npz
from roboreward.rewards.base import RewardBatch, RewardConfig, RewardModel
from roboreward.rewards.features import (
    FeatureSettings,
    feature_settings_arrays,
    feature_settings_from_arrays,
    feature_settings_mismatch,
    features_for,
)

FORMAT_VERSION = 1


@RewardConfig.register_subclass("perceptual")
@dataclass(kw_only=True)
class PerceptualRewardConfig(RewardConfig, FeatureSettings):
    """Where the demonstrations or the fitted model are, and the method's knobs (see the module docstring).

    The feature fields (``blocks``, ``grid``, ...) and their defaults are :class:`FeatureSettings`'.
    """

    demos: str | None = None  # a LeRobot v3 dataset folder: the model is fitted from it when built
    camera: str | None = None  # the dataset camera to learn from; null = the dataset's only camera
    episodes: list[int] = field(default_factory=list)  # dataset episodes to learn from; [] = every successful one
    # An .npz written by PerceptualReward.save, loaded instead of fitting: K, M and the classifiers come
    # from the file; blocks, grid, input_size and weights must be those it was fitted with.
    model_path: str | None = None
    steps: int = bounded(3, "K: intermediate steps the demos are cut into", ge=2, le=16)
    features: int = bounded(32, "M: discriminative features kept per step (at most D)", ge=1)
    min_step_frames: int = bounded(4, "fewest frames a step may have in each demo", ge=1)
    selection: Literal["paper", "fisher"] = "paper"  # feature score: α|μ⁺-μ⁻| - (σ⁺+σ⁻), or Fisher's ratio
    selection_alpha: float = bounded(5.0, "α of the paper's feature score", gt=0)
    std_floor: float = bounded(0.1, "σ floor, as a fraction of the feature's std over all demo frames", ge=0)
    step_weights: Literal["exponential", "linear"] = "exponential"  # w_k ∝ 2^(k-1) or ∝ k

    def __post_init__(self) -> None:
        if self.demos is not None and self.model_path is not None:
            raise ValueError(
                "set reward.demos (fit from a dataset) or reward.model_path (load a fitted .npz), not both"
            )
        if any(e < 0 for e in self.episodes):
            raise ValueError(f"episodes {self.episodes} must be dataset episode indices (>= 0)")


# --------------------------------------------------------------------------------------------
# Step 2: segmentation (pure functions)


def segment_cost_matrix(features: np.ndarray) -> np.ndarray:
    """``C[i, j]``: the within-segment sum of squares of frames ``i..j-1`` (``[T+1, T+1]``, 0 where ``j <= i``).

    ``C(i, j) = Σ_{i<=t<j} ‖φ_t - mean‖² = Q_j - Q_i - ‖P_j - P_i‖² / (j - i)`` from prefix sums, with
    ``‖P_j - P_i‖²`` read off the Gram matrix of the prefix sums: O(T²·D) time, O(T²) memory.
    """
    x = _as_sequence(features)
    x = x - x.mean(axis=0)  # centring keeps the prefix sums small: less cancellation
    t = len(x)
    p = np.zeros((t + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=p[1:])
    q = np.concatenate([[0.0], np.cumsum((x * x).sum(axis=1))])
    gram = p @ p.T
    sq = np.diag(gram)
    n = np.arange(t + 1)
    length = n[None, :] - n[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = (q[None, :] - q[:, None]) - (sq[None, :] + sq[:, None] - 2 * gram) / length
    cost[length <= 0] = 0.0
    return np.maximum(cost, 0.0)  # rounding can leave -1e-16 on constant segments


def optimal_partition(cost: np.ndarray, steps: int, min_length: int = 1) -> np.ndarray:
    """Exact DP: the split points of ``0..T`` into ``steps`` contiguous segments of lowest total cost.

    ``D_k(j) = min_{i <= j - min_length} D_{k-1}(i) + cost[i, j]``, ``D_0 = [0, inf, ...]``: O(K·T²).

    :param cost: ``[T+1, T+1]``, ``cost[i, j]`` the cost of frames ``i..j-1`` forming one segment.
    :param min_length: fewest frames per segment.
    :returns: int64 boundaries ``[0, b_1, ..., b_{K-1}, T]`` (``K + 1`` values).
    """
    length = len(cost) - 1
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    if min_length < 1:
        raise ValueError(f"min_length={min_length} must be >= 1")
    if length < steps * min_length:
        raise ValueError(
            f"a sequence of {length} frames cannot be cut into {steps} steps of >= {min_length} frames; "
            "use longer demonstrations, fewer steps or a smaller min_step_frames"
        )
    j = np.arange(length + 1)
    allowed = (j[None, :] - j[:, None]) >= min_length  # [i, j]: segment i..j-1 is long enough
    best = np.full(length + 1, np.inf)
    best[0] = 0.0
    back = np.zeros((steps, length + 1), dtype=np.int64)
    for k in range(steps):
        total = np.where(allowed, best[:, None] + cost, np.inf)  # [i, j]
        back[k] = np.argmin(total, axis=0)
        best = total[back[k], j]
    bounds = [length]
    for k in range(steps - 1, -1, -1):
        bounds.append(int(back[k, bounds[-1]]))
    return np.array(bounds[::-1], dtype=np.int64)


def segment_sequence(features: np.ndarray, steps: int, min_length: int = 1) -> np.ndarray:
    """Split one feature sequence ``[T, D]`` into ``steps`` contiguous segments of least within-segment variance.

    Exact (dynamic programming over all split points, O(K·T²) after O(T²·D) costs).

    :returns: int64 boundaries ``[0, b_1, ..., T]``; segment k is frames ``b_k .. b_{k+1}-1``.
    """
    x = _as_sequence(features)
    cost = segment_cost_matrix(x)
    return optimal_partition(cost, steps, min_length)


def segment_demos(demos: Sequence[np.ndarray], steps: int, min_length: int = 1) -> list[np.ndarray]:
    """Segment each demonstration ``[T_i, D]`` into ``steps`` steps (:func:`segment_sequence`).

    Split points are per demo, so the objective summed over demos is minimised demo by demo.

    :returns: one boundaries array ``[0, b_1, ..., T_i]`` per demo.
    """
    seqs = [_as_sequence(d) for d in demos]
    if not seqs:
        raise ValueError("segment_demos needs at least one demonstration")
    if len({s.shape[1] for s in seqs}) != 1:
        raise ValueError(f"demonstrations have different feature sizes {sorted({s.shape[1] for s in seqs})}")
    return [segment_sequence(s, steps, min_length) for s in seqs]


def labels_from_bounds(bounds: np.ndarray) -> np.ndarray:
    """Boundaries ``[0, b_1, ..., T]`` -> the step index of every frame, int64 ``[T]``."""
    bounds = np.asarray(bounds)
    return np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))


# --------------------------------------------------------------------------------------------
# Step 3: feature selection (pure function)


def select_features(
    features: np.ndarray,
    in_step: np.ndarray,
    count: int,
    criterion: Literal["paper", "fisher"] = "paper",
    alpha: float = 5.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` features that best tell the frames of a step from the others.

    :param features: all demo frames' features ``[N, D]``.
    :param in_step: bool ``[N]``, True for the step's frames (both sides need frames).
    :param criterion: ``paper``: ``α·|μ⁺ - μ⁻| - (σ⁺ + σ⁻)``; ``fisher``: ``(μ⁺ - μ⁻)² / (σ⁺² + σ⁻²)``.
    :returns: the selected feature indices (best first, int64 ``[count]``) and every feature's score ``[D]``.
    """
    x = np.asarray(features, dtype=np.float64)
    mask = np.asarray(in_step, dtype=bool)
    if x.ndim != 2 or mask.shape != (len(x),):
        raise ValueError(f"features must be [N, D] and in_step [N]; got {x.shape} and {mask.shape}")
    if mask.all() or not mask.any():
        raise ValueError("select_features needs frames both inside and outside the step")
    if not 1 <= count <= x.shape[1]:
        raise ValueError(f"count={count} features asked for, but frames have {x.shape[1]}")
    mu_in, sd_in = x[mask].mean(axis=0), x[mask].std(axis=0)
    mu_out, sd_out = x[~mask].mean(axis=0), x[~mask].std(axis=0)
    if criterion == "paper":
        score = alpha * np.abs(mu_in - mu_out) - (sd_in + sd_out)
    elif criterion == "fisher":
        score = (mu_in - mu_out) ** 2 / (sd_in**2 + sd_out**2 + 1e-12)
    else:
        raise ValueError(f"criterion={criterion!r} is not allowed; choose 'paper' or 'fisher'")
    order = np.argsort(-score, kind="stable")[:count]
    return order.astype(np.int64), score


# --------------------------------------------------------------------------------------------
# Step 4: step classifiers and the reward


@dataclass
class StepModels:
    """The fitted arrays: per step ``k``, its ``M`` features and their Gaussians in and out of the step."""

    indices: np.ndarray  # int64 [K, M]   selected feature indices
    mu_in: np.ndarray  # float64 [K, M]
    sd_in: np.ndarray  # float64 [K, M]
    mu_out: np.ndarray  # float64 [K, M]
    sd_out: np.ndarray  # float64 [K, M]
    weights: np.ndarray  # float64 [K]   step weights, summing to 1

    @property
    def steps(self) -> int:
        return len(self.weights)

    def step_probabilities(self, features: np.ndarray) -> np.ndarray:
        """``p_k(x)`` for features ``[B, D]`` -> ``[B, K]``."""
        x = np.asarray(features, dtype=np.float64)[:, self.indices]  # [B, K, M]
        z_in = (x - self.mu_in) / self.sd_in
        z_out = (x - self.mu_out) / self.sd_out
        llr = (0.5 * (z_out**2 - z_in**2) + np.log(self.sd_out / self.sd_in)).mean(axis=2)
        return 0.5 * (1.0 + np.tanh(0.5 * llr))  # sigmoid, without overflow

    def reward(self, features: np.ndarray) -> np.ndarray:
        return self.step_probabilities(features) @ self.weights


def step_weights(steps: int, kind: Literal["exponential", "linear"] = "exponential") -> np.ndarray:
    """``w_k`` (k = 1..K), increasing and summing to 1: ``∝ 2^(k-1)`` or ``∝ k``."""
    if kind == "exponential":
        w = 2.0 ** np.arange(steps)
    elif kind == "linear":
        w = np.arange(1, steps + 1, dtype=np.float64)
    else:
        raise ValueError(f"step_weights={kind!r} is not allowed; choose 'exponential' or 'linear'")
    return w / w.sum()


def fit_step_models(
    demos: Sequence[np.ndarray],
    steps: int,
    features: int,
    *,
    min_length: int = 1,
    criterion: Literal["paper", "fisher"] = "paper",
    alpha: float = 5.0,
    std_floor: float = 0.1,
    weights: Literal["exponential", "linear"] = "exponential",
) -> tuple[StepModels, list[np.ndarray]]:
    """Steps 2-4 on demo feature sequences ``[T_i, D]``: segment, select features, fit the classifiers.

    :returns: the fitted :class:`StepModels` and each demo's step boundaries.
    """
    seqs = [_as_sequence(d) for d in demos]
    bounds = segment_demos(seqs, steps, min_length)
    x = np.concatenate(seqs)
    labels = np.concatenate([labels_from_bounds(b) for b in bounds])
    count = min(features, x.shape[1])
    floor = std_floor * x.std(axis=0) + 1e-8
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("indices", "mu_in", "sd_in", "mu_out", "sd_out")}
    for k in range(steps):
        mask = labels == k
        idx, _ = select_features(x, mask, count, criterion, alpha)
        inside, outside = x[mask][:, idx], x[~mask][:, idx]
        rows["indices"].append(idx)
        rows["mu_in"].append(inside.mean(axis=0))
        rows["sd_in"].append(np.sqrt(inside.var(axis=0) + floor[idx] ** 2))
        rows["mu_out"].append(outside.mean(axis=0))
        rows["sd_out"].append(np.sqrt(outside.var(axis=0) + floor[idx] ** 2))
    arrays = {k: np.stack(v) for k, v in rows.items()}
    return StepModels(**arrays, weights=step_weights(steps, weights)), bounds


# --------------------------------------------------------------------------------------------
# The reward model


class PerceptualReward(RewardModel):
    """The perceptual reward: ``r(x) = Σ_k w_k·p_k(x)`` from per-step classifiers on frozen features."""

    name = "perceptual"
    config_class = PerceptualRewardConfig

    def __init__(self, config: PerceptualRewardConfig):
        super().__init__(config)
        self.features = features_for(config)
        self.model: StepModels | None = None
        self.boundaries: list[np.ndarray] = []  # each demo's step boundaries, from the last fit
        self.frame_size: tuple[int, int] | None = None  # (H, W) of the demo frames
        if config.model_path is not None:
            self.load(config.model_path)
        elif config.demos is not None:
            from roboreward.datasets.lerobot_v3 import DatasetReader

            if not Path(config.demos).is_dir():
                raise ConfigError(
                    f"reward.demos={config.demos!r} is not a folder; record demonstrations first, e.g. "
                    "`roboreward demos record drawer-open --episodes 5 --cameras corner3 --size 64 "
                    f"--out {config.demos}`"
                )
            self.fit(DatasetReader(config.demos), camera=config.camera, episodes=config.episodes or None)

    @classmethod
    def from_file(cls, path: str | Path, device: str = "auto", cache_size: int = 4096) -> PerceptualReward:
        """A model loaded from ``path``, with the feature settings it was fitted with."""
        with np.load(path, allow_pickle=False) as data:
            settings = feature_settings_from_arrays(data)
        return cls(PerceptualRewardConfig(model_path=str(path), device=device, cache_size=cache_size, **settings))

    # ---------------------------------------------------------------------------------- fit
    def fit(
        self,
        demos: Sequence[np.ndarray] | object,
        camera: str | None = None,
        episodes: Sequence[int] | None = None,
    ) -> PerceptualReward:
        """Learn the steps and their classifiers from demonstrations.

        :param demos: a list of frame arrays ``uint8 [T, H, W, 3]`` (one per demo), or a
            :class:`~roboreward.datasets.lerobot_v3.DatasetReader` read with ``camera``.
        :param camera: the dataset camera (None: the dataset's only camera). Datasets only.
        :param episodes: dataset episodes to use (None: every episode marked successful). Datasets only.
        """
        videos = self._demo_videos(demos, camera, episodes)
        cfg = self.config
        shapes = {v.shape[1:3] for v in videos}
        if len(shapes) != 1:
            raise DatasetError(f"demonstrations have different frame sizes {sorted(shapes)}; record them at one size")
        short = [len(v) for v in videos if len(v) < cfg.steps * cfg.min_step_frames]
        if short:
            raise ConfigError(
                f"a demonstration of {short[0]} frames cannot hold steps={cfg.steps} steps of "
                f"min_step_frames={cfg.min_step_frames}; use longer demos, fewer steps or fewer frames per step"
            )
        feats = [self._features(v) for v in videos]
        self.model, self.boundaries = fit_step_models(
            feats,
            cfg.steps,
            cfg.features,
            min_length=cfg.min_step_frames,
            criterion=cfg.selection,
            alpha=cfg.selection_alpha,
            std_floor=cfg.std_floor,
            weights=cfg.step_weights,
        )
        self.frame_size = tuple(int(s) for s in videos[0].shape[1:3])  # type: ignore[assignment]
        return self

    def _demo_videos(self, demos: object, camera: str | None, episodes: Sequence[int] | None) -> list[np.ndarray]:
        from roboreward.datasets.lerobot_v3 import DatasetReader

        if isinstance(demos, DatasetReader):
            if camera is None:
                if len(demos.cameras) != 1:
                    raise ConfigError(f"{demos.root} has cameras {demos.cameras}; say which one with reward.camera")
                camera = demos.cameras[0]
            if episodes is None:
                episodes = [e.index for e in demos.episodes if e.success]
                if not episodes:
                    raise DatasetError(
                        f"{demos.root} has no successful episode; learn from demos that succeed, or list "
                        "episodes explicitly with reward.episodes"
                    )
            return [demos.frames(int(i), camera) for i in episodes]
        if camera is not None or episodes is not None:
            raise ValueError("camera and episodes select from a DatasetReader; pass frame arrays alone")
        if isinstance(demos, np.ndarray) and demos.ndim == 4:
            raise ValueError("pass a list of demonstrations (each uint8 [T, H, W, 3]), not one array")
        videos = [np.asarray(v) for v in demos]  # type: ignore[union-attr]
        if not videos:
            raise ValueError("fit needs at least one demonstration")
        for v in videos:
            if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
                raise ValueError(f"a demonstration must be uint8 [T, H, W, 3] frames; got {v.dtype} {v.shape}")
        return videos

    def _features(self, frames: np.ndarray, chunk: int = 256) -> np.ndarray:
        return np.concatenate([self.features(frames[i : i + chunk]) for i in range(0, len(frames), chunk)])

    # ---------------------------------------------------------------------------------- reward
    def step_probabilities(self, frames: np.ndarray) -> np.ndarray:
        """``p_k`` of each frame, ``[B, K]``: how much it looks like each step of the demos."""
        model = self._fitted()
        self._check_frames(frames)
        return model.step_probabilities(self._features(frames))

    def compute(self, batch: RewardBatch) -> np.ndarray:
        if batch.frames is None:
            raise ValueError("the perceptual reward needs rendered frames; make the env with render_mode='rgb_array'")
        model = self._fitted()
        self._check_frames(batch.frames)
        return model.reward(self._features(batch.frames)).astype(np.float32)

    def check_ready(self) -> None:
        self._fitted()

    def _fitted(self) -> StepModels:
        if self.model is None:
            raise ConfigError(
                "the perceptual reward is not fitted: set reward.demos (a dataset folder) and reward.camera, "
                "or reward.model_path (a saved .npz), or call fit(demos)"
            )
        return self.model

    def _check_frames(self, frames: np.ndarray) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [B, H, W, 3]; got {frames.dtype} {frames.shape}")
        size = tuple(frames.shape[1:3])
        if self.config.input_size is None and self.frame_size is not None and size != self.frame_size:
            raise ValueError(
                f"frames are {size[0]}x{size[1]} but the demos were {self.frame_size[0]}x{self.frame_size[1]}; "
                "render at the demos' size (env.render.width/height) or set reward.input_size"
            )

    # ---------------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write the fitted model as plain arrays to ``path`` (an ``.npz``; written atomically)."""
        model = self._fitted()
        bounds = self.boundaries
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "indices": model.indices,
            "mu_in": model.mu_in,
            "sd_in": model.sd_in,
            "mu_out": model.mu_out,
            "sd_out": model.sd_out,
            "weights": model.weights,
            "frame_size": np.array(self.frame_size if self.frame_size is not None else (-1, -1), dtype=np.int64),
            "boundaries": np.stack(bounds) if bounds else np.zeros((0, model.steps + 1), dtype=np.int64),
            **feature_settings_arrays(self.config),
        }
        path = Path(path)
        atomic_write_npz(path, arrays)
        return path

    def load(self, path: str | Path) -> PerceptualReward:
        """Read a model written by :meth:`save`; its feature settings must match this model's config."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"perceptual reward model {str(path)!r} does not exist; fit one and save it, "
                "or set reward.demos to fit from a dataset"
            )
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"]) if "format_version" in data else -1
            if version != FORMAT_VERSION:
                raise CheckpointError(f"{path}: format version {version}, this roboreward reads {FORMAT_VERSION}")
            wanted = feature_settings_mismatch(self.config, feature_settings_from_arrays(data))
            if wanted:
                raise ConfigError(
                    f"{path} was fitted on other features; set {wanted} (or use PerceptualReward.from_file)"
                )
            self.model = StepModels(
                indices=data["indices"].astype(np.int64),
                mu_in=data["mu_in"],
                sd_in=data["sd_in"],
                mu_out=data["mu_out"],
                sd_out=data["sd_out"],
                weights=data["weights"],
            )
            size = tuple(int(s) for s in data["frame_size"])
            self.frame_size = None if size[0] < 0 else size  # type: ignore[assignment]
            self.boundaries = list(data["boundaries"].astype(np.int64))
        return self


def _as_sequence(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"a feature sequence must be [T, D] with T >= 1; got shape {x.shape}")
    return x
