"""A process (progress) reward model: how far along its task a robot is, from several cameras at once.

In the spirit of the General Reward Model of "Robo-Dopamine: General Process Reward Modeling for
High-Precision Robotic Manipulation" (Tan et al., 2025), at the size of a CPU: frozen pretrained
image features, a small trained head, a handful of demonstrations. Its output ``Φ(s) ∈ [0, 1]`` is
meant to be a *potential* — the policy-invariant shaping ``r' = r + γΦ(s') − Φ(s)`` of
:mod:`roboreward.rewards.shaping`, selected in an experiment file with ``shaping.potential`` — or,
where no task reward exists, a reward of its own.

1. **Views and features.** Each state is seen from ``V`` cameras, one or more (one camera may see the
   gripper, another the drawer, where a single view hides one or the other). Every view's frame goes
   through the same frozen EfficientNet-Lite0 (:func:`~roboreward.rewards.features.cached_features`:
   cut after ``blocks``, pooled to a ``grid x grid`` map, unit-normalised, memoised by frame bytes), giving
   ``x ∈ R^{V x D}``. Features are standardised with the training frames' per-view mean and standard
   deviation (the latter floored, so a feature that never moves in the demos cannot explode).

2. **Step-aware labels.** Progress is *discretised* into ``K`` bins (steps) and learned as a
   classification, as Robo-Dopamine's step-wise reward discretisation does: a successful
   demonstration's frame ``t`` has progress ``y_t = min(t / t*, 1)`` with ``t*`` the frame of its first
   successful state (``progress_label: success``; frames after success are "done"), or ``t / (T − 1)``
   (``progress_label: time``). The target is a distribution over bins: a Gaussian of width
   ``label_sigma`` bins centred on ``y_t`` (``0``: one-hot on bin ``⌊y_t·K⌋``) — neighbouring bins are
   nearly right, so they share the mass. Frames are weighted so that every bin counts the same
   (a demo that holds still after success would otherwise teach mostly "done").

3. **Fusion and head.** ``fusion: concat`` — the views' features side by side into an MLP;
   ``fusion: attention`` — each view projected to ``hidden`` (plus a learned per-view embedding),
   pooled with softmax attention weights ``a_v = softmax_v(w·tanh(h_v))``, then a linear layer.
   Either way the head outputs ``K`` logits; the readout is the **expected progress**
   ``Φ(x) = Σ_k p_k(x)·c_k`` with bin centres ``c_k = (k + ½)/K``, smooth where an argmax would jump.

4. **Failed rollouts** (optional: ``failures``, e.g. the agent's own unsuccessful episodes). How far
   a failure got is unknown; only that it did not finish. So each of its frames is a *partial* label
   — its progress lies in ``[0, failure_ceiling]`` — trained with ``−log P(y ≤ ceiling) =
   −log Σ_{c_k ≤ ceiling} p_k``: mass is pushed out of the "done" bins (the false positives a policy
   would exploit) without claiming any particular progress.

   While a policy trains, its own failed episodes can be those rollouts (``refit_every``): the reward or shaping
   wrapper hands the model what it scored in each finished episode (:class:`~roboreward.rewards.wrappers.EpisodeFeed`),
   the failures are kept (the newest ``refit_keep``) and the head is fitted again on the demos plus them every
   ``refit_every`` env steps, so the states a policy learns to reach without finishing stop looking done
   (Robo-Dopamine's negatives). A failed episode's states at which the env said the task was done are left
   out: a policy that presses the button and then lets go has failed, but the pressed states were right, and
   pushing them down would flatten the very difference between done and not done that the reward must keep
   (seen: the pressed state's progress fell from 0.84 to 0.59 over ten refits). The refitted head is saved in
   each checkpoint and restored on resume.

5. **Training** is full-batch AdamW on the cached features for ``train_steps`` steps, seeded
   (``seed``) inside a forked torch RNG so it neither depends on nor disturbs the caller's random
   state. On one (shared) CPU core a 1-shot fit takes ~1.5 s and a 5-shot fit ~6 s once the features exist
   (`benchmarks/progress_one_shot.py`).

**One-shot adaptation.** :meth:`ProgressReward.fit` works from a single expert trajectory of a new
task; ``init_path`` (or ``fit(init=...)``) starts from a head trained on other tasks, keeping its
feature standardisation. :meth:`ProgressReward.report` scores a fit on held-out demonstrations: the
Spearman rank correlation of predicted progress with time on each (over its frames up to first
success: the part whose progress the labels define) — the "value-order correlation" of a progress
estimator — with the start and end progress and the error against the labels.

**Frames from several cameras.** A :class:`RewardBatch` carries one frame per transition, so the
views travel *tiled side by side*: ``[B, H, V·W, 3]``, cameras in the model's order
(:func:`~roboreward.envs.views.tile_views` / :func:`~roboreward.envs.views.split_views`). An env renders that with
:class:`~roboreward.envs.views.MultiViewRender`, which
an experiment file asks for with ``env.render.cameras: [corner3, topview]``; every frame wrapper
(``RenderInInfo``, ``VecLearnedReward``, ``VecPotentialShaping``) then passes the views along
unchanged.

**State instead of frames** (``inputs: state``). Where the env's observation already says how far along the
task is — a crowd's goal, people and lidar in the robot's frame — the head reads the observation itself
(a dataset's ``observation.state`` when fitting; a ``Dict`` observation flattened key by key in sorted order,
:func:`~roboreward.rewards.base.flat_observations`) as one "view", standardised the same way. Nothing is
rendered and no image network runs, so training with it costs the head alone.

**Keypoints** (``keypoints``, with ``inputs: state``). A raw state says where things are; progress is about
how they stand to one another — the hand near the handle, the drawer away from its closed position. Fitted on
one demo, a head on the raw state also reads the drawer's own position (the same in every frame of that demo)
as a sign of progress, and a new episode with the drawer elsewhere looks done before it starts. Given named 3-D
points of the observation, the head reads the distances between every pair of them instead, which are the same
wherever the scene is placed: on Meta-World's push, button-press and drawer-open a head fitted on one scripted
demo ranks the frames of four held-out demos by time with Spearman 0.98–0.99 (raw state: −0.00 / 0.98 / 0.82,
and held-out button-press demos start at 0.94 progress instead of 0.41).

The fitted head is plain arrays in an ``.npz`` (:meth:`ProgressReward.save`, written atomically,
read back with ``allow_pickle=False``); ``reward.model_path`` loads it.

Example::

    from roboreward.envs.views import tile_views

    model = ProgressReward(ProgressRewardConfig(cameras=["corner3", "topview"]))
    model.fit(DatasetReader("demos/drawer-open"), episodes=[0])            # one-shot
    print(model.report(DatasetReader("demos/drawer-open"), episodes=[5, 6, 7]))
    model.save("drawer_open_progress.npz")
    phi = model(RewardBatch(frames=tile_views([corner3_frames, topview_frames])))   # float32 [B] in [0, 1]
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from roboreward.config import bounded
from roboreward.envs.views import split_views
from roboreward.errors import CheckpointError, ConfigError, DatasetError
from roboreward.io import atomic_write_npz
from roboreward.rewards.base import RewardBatch, RewardConfig, RewardModel, flat_observations
from roboreward.rewards.features import (
    FEATURE_SETTINGS,
    FeatureSettings,
    feature_settings_arrays,
    feature_settings_from_arrays,
    feature_settings_mismatch,
    features_for,
)
from roboreward.rewards.metrics import spearman

FORMAT_VERSION = 1


@RewardConfig.register_subclass("progress")
@dataclass(kw_only=True)
class ProgressRewardConfig(RewardConfig, FeatureSettings):
    """Where the demonstrations or the fitted head are, and the head's knobs (see the module docstring).

    The feature fields (``blocks``, ``grid``, ...) and their defaults are :class:`FeatureSettings`', as the
    perceptual reward's; ``device`` is the feature network's (the head runs on the CPU).
    """

    demos: str | None = None  # a LeRobot v3 dataset folder: the head is fitted from it when built
    # frames: camera views through the image network; state: the env's observation (observation.state in a dataset)
    inputs: Literal["frames", "state"] = "frames"
    cameras: list[str] = field(default_factory=list)  # views to fuse, in this order; [] = every dataset camera
    # inputs: state — named points of the observation, three indices (x, y, z) each, e.g. Meta-World's
    # {hand: [0, 1, 2], object: [4, 5, 6], goal: [36, 37, 38]}: the head reads the distance between every pair
    # instead of the raw state (see "Keypoints" in the module docstring). {} = the raw state.
    keypoints: dict[str, list[int]] = field(default_factory=dict)
    episodes: list[int] = field(default_factory=list)  # demo episodes to learn from; [] = every successful one
    # A dataset of failed rollouts (e.g. the agent's own): its unsuccessful episodes teach "not done".
    failures: str | None = None
    failure_ceiling: float = bounded(0.5, "a failed rollout's frames are labelled 'progress <= this'", gt=0, lt=1)
    failure_weight: float = bounded(1.0, "weight of the failed-rollout loss next to the demos'", ge=0)
    # Robo-Dopamine's negatives while training: the agent's own failed episodes (what the model scored in them) are
    # kept, and every refit_every env steps the head is fitted again on the demos plus them, so states the policy
    # reaches without succeeding stop looking "done". Needs reward.demos; the model in this process (server: local).
    refit_every: int = bounded(0, "env steps between refits on the agent's failed episodes (0: never)", ge=0)
    refit_keep: int = bounded(200, "the agent's newest failed episodes kept for refits", ge=1, le=100_000)
    # An .npz written by ProgressReward.save, loaded instead of fitting (cameras, bins and the head come
    # from the file; blocks, grid, input_size and weights must be those it was fitted with).
    model_path: str | None = None
    # An .npz head to start the fit from (one-shot adaptation from a head trained on other tasks).
    init_path: str | None = None
    progress_label: Literal["success", "time"] = "success"  # y = min(t / first success, 1), or t / (T-1)
    bins: int = bounded(10, "K: progress steps the head classifies into", ge=2, le=100)
    label_sigma: float = bounded(2.0, "width of the soft target over bins, in bins (0 = one-hot)", ge=0)
    fusion: Literal["concat", "attention"] = "concat"  # how the views' features are combined
    hidden: int = bounded(128, "hidden units of the head", ge=4, le=4096)
    dropout: float = bounded(0.2, "dropout on the standardised features while training", ge=0, lt=1)
    train_steps: int = bounded(200, "full-batch optimiser steps", ge=1)
    lr: float = bounded(3e-3, "AdamW learning rate", gt=0)
    weight_decay: float = bounded(1.0, "AdamW (decoupled) weight decay", ge=0)
    seed: int = bounded(0, "seeds the head's initialisation and dropout", ge=0)
    std_floor: float = bounded(0.1, "standardisation floor, as a fraction of the mean feature std", ge=0)
    # The reward (or potential) is scale·Φ. A larger scale makes the reward count more against SAC's
    # entropy bonus; progress(), report() and saved heads stay in [0, 1].
    scale: float = bounded(1.0, "reward = scale * (progress - offset)", gt=0)
    # offset 1 makes the reward a cost, -(1 - Φ) a step: where reaching the goal ends the episode, a reward of Φ
    # pays for lingering near the goal instead (every step there earns ~1); a cost is cut short by arriving.
    # Keep 0 for a potential (shaping.potential): shaping needs Φ itself.
    offset: float = bounded(0.0, "subtracted from progress before scaling (1: a cost to go)", ge=0, le=1)

    def __post_init__(self) -> None:
        if self.demos is not None and self.model_path is not None:
            raise ValueError(
                "set reward.demos (fit from a dataset) or reward.model_path (load a fitted .npz), not both"
            )
        if self.refit_every and self.demos is None:
            raise ValueError("reward.refit_every refits on reward.demos plus the agent's failures; set reward.demos")
        if self.refit_every and self.server != "local":
            raise ValueError("reward.refit_every refits the model in the training process; set reward.server: local")
        if self.model_path is not None and self.init_path is not None:
            raise ValueError("reward.init_path starts a fit; with reward.model_path nothing is fitted, so drop one")
        if any(e < 0 for e in self.episodes):
            raise ValueError(f"episodes {self.episodes} must be dataset episode indices (>= 0)")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras {self.cameras} name a camera twice; list each view once")
        if self.keypoints:
            if self.inputs != "state":
                raise ValueError("keypoints are indices of the observation; set inputs: state, or drop keypoints")
            if len(self.keypoints) < 2:
                raise ValueError(f"keypoints {self.keypoints}: name at least two points (their distance is the input)")
            for name, index in self.keypoints.items():
                if len(index) != 3 or any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in index):
                    raise ValueError(f"keypoints.{name}: {index} must be three observation indices (x, y, z), "
                                     "e.g. [0, 1, 2]")


# --------------------------------------------------------------------------------------------
# Labels and readout (pure functions)


def bin_centres(bins: int) -> np.ndarray:
    """``c_k = (k + ½) / K``, the progress each of ``K`` bins stands for."""
    return (np.arange(bins) + 0.5) / bins


def progress_labels(length: int, success_step: int | None = None) -> np.ndarray:
    """Progress of each frame of a successful demonstration, float64 ``[length]`` in ``[0, 1]``.

    :param success_step: the frame index of the first successful state: frames get ``t / success_step``
        up to it and 1 after. ``None``: ``t / (length − 1)``.
    """
    if length < 1:
        raise ValueError(f"a demonstration needs frames; got length {length}")
    t = np.arange(length, dtype=np.float64)
    if success_step is None:
        return t / max(length - 1, 1)
    if success_step <= 0:
        return np.ones(length)
    return np.minimum(t / success_step, 1.0)


def bin_targets(progress: np.ndarray, bins: int, sigma: float = 0.0) -> np.ndarray:
    """Soft classification targets ``[N, K]`` for progress values ``[N]``.

    ``sigma = 0``: one-hot on bin ``min(⌊y·K⌋, K − 1)``. Otherwise a Gaussian over the bin centres,
    centred on ``y`` with standard deviation ``sigma`` bins, normalised to sum to 1.
    """
    y = np.asarray(progress, dtype=np.float64)
    if y.ndim != 1 or np.any((y < 0) | (y > 1)) or not np.all(np.isfinite(y)):
        raise ValueError("progress must be a vector of values in [0, 1]")
    if sigma < 0:
        raise ValueError(f"sigma={sigma} must be >= 0")
    if sigma == 0:
        out = np.zeros((len(y), bins))
        out[np.arange(len(y)), np.minimum((y * bins).astype(np.int64), bins - 1)] = 1.0
        return out
    z = (bin_centres(bins)[None, :] - y[:, None]) * bins / sigma
    out = np.exp(-0.5 * z * z)
    return out / out.sum(axis=1, keepdims=True)


def expected_progress(probabilities: np.ndarray) -> np.ndarray:
    """The readout ``Σ_k p_k·c_k`` of bin probabilities ``[N, K]`` -> ``[N]`` in ``[½K⁻¹, 1 − ½K⁻¹]``."""
    p = np.asarray(probabilities, dtype=np.float64)
    return p @ bin_centres(p.shape[-1])


# --------------------------------------------------------------------------------------------
# The head


class ProgressHead(torch.nn.Module):
    """Standardised multi-view features ``[B, V, D]`` -> logits over ``K`` progress bins.

    :param fusion: ``concat`` (views side by side into an MLP) or ``attention`` (per-view projection
        plus view embedding, softmax-attention pooled over views, then a linear layer).
    """

    def __init__(
        self, views: int, dim: int, bins: int, hidden: int = 128, fusion: str = "concat", dropout: float = 0.0
    ):
        super().__init__()
        if fusion not in ("concat", "attention"):
            raise ValueError(f"fusion={fusion!r} is not allowed; choose 'concat' or 'attention'")
        self.views, self.dim, self.bins, self.hidden, self.fusion = views, dim, bins, hidden, fusion
        self.register_buffer("mean", torch.zeros(views, dim))
        self.register_buffer("std", torch.ones(views, dim))
        self.drop = torch.nn.Dropout(dropout)
        if fusion == "concat":
            self.net = torch.nn.Sequential(
                torch.nn.Linear(views * dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, bins)
            )
        else:
            self.project = torch.nn.Linear(dim, hidden)
            self.view_embedding = torch.nn.Parameter(torch.zeros(views, hidden))
            self.score = torch.nn.Linear(hidden, 1)
            self.out = torch.nn.Sequential(torch.nn.GELU(), torch.nn.Linear(hidden, bins))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.drop((features - self.mean) / self.std)
        if self.fusion == "concat":
            return self.net(x.flatten(1))
        h = torch.tanh(self.project(x) + self.view_embedding)  # [B, V, hidden]
        a = torch.softmax(self.score(h), dim=1)  # [B, V, 1]
        return self.out((a * h).sum(dim=1))

    def view_weights(self, features: torch.Tensor) -> torch.Tensor:
        """Attention weights ``[B, V]`` over the views (``attention`` fusion only)."""
        if self.fusion != "attention":
            raise ValueError("view weights exist for fusion='attention' only")
        x = (features - self.mean) / self.std
        return torch.softmax(self.score(torch.tanh(self.project(x) + self.view_embedding)), dim=1)[..., 0]


@dataclass
class HeadSettings:
    """How a head is built and trained (the config's fields, without the dataset and feature parts)."""

    bins: int = 10
    label_sigma: float = 2.0
    fusion: str = "concat"
    hidden: int = 128
    dropout: float = 0.2
    train_steps: int = 200
    lr: float = 3e-3
    weight_decay: float = 1.0
    seed: int = 0
    std_floor: float = 0.1
    failure_ceiling: float = 0.5
    failure_weight: float = 1.0

    @classmethod
    def from_config(cls, config: ProgressRewardConfig) -> HeadSettings:
        return cls(**{f: getattr(config, f) for f in cls.__dataclass_fields__})


def fit_head(
    features: Sequence[np.ndarray],
    progress: Sequence[np.ndarray],
    settings: HeadSettings,
    *,
    failures: Sequence[np.ndarray] = (),
    init: ProgressHead | None = None,
) -> ProgressHead:
    """Train a head on per-demo feature sequences ``[T_i, V, D]`` and their progress ``[T_i]`` in [0, 1].

    :param failures: feature sequences ``[T_j, V, D]`` of failed rollouts (partial labels, see the module
        docstring).
    :param init: a head to start from (copied, not changed); its standardisation is kept. Its views,
        feature size and bins must match.
    """
    if not features:
        raise ValueError("fit_head needs at least one demonstration")
    x = np.concatenate([_as_views(f) for f in features])
    y = np.concatenate([np.asarray(p, dtype=np.float64) for p in progress])
    if len(y) != len(x):
        raise ValueError(f"{len(x)} frames of features but {len(y)} progress labels")
    fail = np.concatenate([_as_views(f) for f in failures]) if failures else np.zeros((0, *x.shape[1:]))
    if fail.shape[1:] != x.shape[1:]:
        raise ValueError(f"failed rollouts have features {fail.shape[1:]}, demonstrations {x.shape[1:]}")
    views, dim = x.shape[1:]
    s = settings
    targets = bin_targets(y, s.bins, s.label_sigma)
    # Every bin weighs the same in the loss, however many frames fall into it.
    hard = np.minimum((y * s.bins).astype(np.int64), s.bins - 1)
    counts = np.bincount(hard, minlength=s.bins).astype(np.float64)
    weight = 1.0 / counts[hard]
    weight /= weight.sum()
    allowed = bin_centres(s.bins) <= s.failure_ceiling
    if not allowed.any():
        raise ConfigError(f"failure_ceiling={s.failure_ceiling} is below the first bin's centre {0.5 / s.bins}")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        if init is not None:
            if (init.views, init.dim, init.bins) != (views, dim, s.bins):
                raise ConfigError(
                    f"the initial head reads {init.views} views x {init.dim} features into {init.bins} bins, "
                    f"but this fit has {views} x {dim} and bins={s.bins}; use a head fitted with the same cameras, "
                    "features and bins"
                )
            head = ProgressHead(views, dim, s.bins, init.hidden, init.fusion, s.dropout)
            head.load_state_dict(init.state_dict())
        else:
            head = ProgressHead(views, dim, s.bins, s.hidden, s.fusion, s.dropout)
            both = np.concatenate([x, fail]) if len(fail) else x
            sd = both.std(axis=0)
            head.mean.copy_(torch.as_tensor(both.mean(axis=0), dtype=torch.float32))
            head.std.copy_(torch.as_tensor(np.sqrt(sd**2 + (s.std_floor * sd.mean()) ** 2) + 1e-8, dtype=torch.float32))
        xt = torch.as_tensor(x, dtype=torch.float32)
        qt = torch.as_tensor(targets, dtype=torch.float32)
        wt = torch.as_tensor(weight, dtype=torch.float32)
        ft = torch.as_tensor(fail, dtype=torch.float32)
        mask = torch.as_tensor(allowed)
        optimiser = torch.optim.AdamW(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        head.train()
        for _ in range(s.train_steps):
            optimiser.zero_grad()
            log_p = torch.log_softmax(head(xt), dim=1)
            loss = -((qt * log_p).sum(dim=1) * wt).sum()
            if len(ft) and s.failure_weight > 0:
                log_pf = torch.log_softmax(head(ft), dim=1)
                loss = loss - s.failure_weight * torch.logsumexp(log_pf[:, mask], dim=1).mean()
            loss.backward()
            optimiser.step()
    head.eval()
    head.drop.p = 0.0
    return head.requires_grad_(False)


def head_progress(head: ProgressHead, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin probabilities ``[B, K]`` and expected progress ``[B]`` of features ``[B, V, D]``."""
    with torch.inference_mode():
        logits = head(torch.as_tensor(_as_views(features), dtype=torch.float32))
        probs = torch.softmax(logits.double(), dim=1).numpy()
    return probs, expected_progress(probs)


def _as_views(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(f"features must be [T, V, D] with T >= 1; got shape {x.shape}")
    return x


# --------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class ProgressReport:
    """How well a progress model orders held-out demonstrations (see :meth:`ProgressReward.report`).

    ``spearman`` is each demo's rank correlation of predicted progress with time (frames up to first
    success), the value-order correlation (:func:`~roboreward.rewards.metrics.spearman`); 1 = perfectly
    increasing, 0 for a constant prediction, which orders no frame.
    """

    episodes: list[int]  # held-out demos, by dataset episode index (or position in the list given)
    spearman: list[float]
    start_progress: float  # mean prediction over the first 10 % of those frames
    end_progress: float  # ... over the last 10 %
    mae: float  # mean |prediction − label| over those frames
    train_demos: int = 0  # of the last fit
    train_frames: int = 0
    fit_seconds: float = 0.0  # the last fit, features included

    @property
    def spearman_mean(self) -> float:
        return float(np.mean(self.spearman)) if self.spearman else float("nan")

    @property
    def spearman_min(self) -> float:
        return float(np.min(self.spearman)) if self.spearman else float("nan")

    def __str__(self) -> str:
        return (
            f"progress on {len(self.episodes)} held-out demos: Spearman vs time mean {self.spearman_mean:.3f} "
            f"(min {self.spearman_min:.3f}), start {self.start_progress:.2f} -> end {self.end_progress:.2f}, "
            f"MAE {self.mae:.3f}; fitted on {self.train_demos} demos ({self.train_frames} frames) "
            f"in {self.fit_seconds:.1f} s"
        )


# --------------------------------------------------------------------------------------------
# The reward model


@dataclass
class _Trajectory:
    views: list[np.ndarray]  # one uint8 [T, H, W, 3] per camera; or one float32 [T, D] of states
    success_step: int | None  # frame of the first successful state, or None if unknown / never


class ProgressReward(RewardModel):
    """Expected task progress ``Φ ∈ [0, 1]`` from tiled multi-view frames, by a head on frozen features."""

    name = "progress"
    config_class = ProgressRewardConfig

    def __init__(self, config: ProgressRewardConfig):
        super().__init__(config)
        self.config: ProgressRewardConfig = config
        self.reads_state = config.inputs == "state"
        self.keypoints: dict[str, list[int]] = dict(config.keypoints)
        self.requires_frames = not self.reads_state
        self.features = None if self.reads_state else features_for(config)
        self.head: ProgressHead | None = None
        self.cameras: list[str] = [] if self.reads_state else list(config.cameras)  # the views, as frames tile them
        self.frame_size: tuple[int, int] | None = None  # (H, W) of one view
        self.train_demos = self.train_frames = self.failure_frames = 0
        self.fit_seconds = self.feature_seconds = 0.0  # the last fit's time, and the features' part of it
        self.agent_failures: deque[_Trajectory] = deque(maxlen=config.refit_keep)  # for refit()
        self.refits = 0
        self._fit_args: dict[str, Any] | None = None
        if config.model_path is not None:
            self.load(config.model_path)
        elif config.demos is not None:
            from roboreward.datasets.lerobot_v3 import DatasetReader

            failures = None
            if config.failures is not None:
                failures = DatasetReader(_dataset_dir(config.failures, "failures", config.cameras))
            init = ProgressReward.from_file(config.init_path, device=config.device) if config.init_path else None
            self._fit_args = {"demos": DatasetReader(_dataset_dir(config.demos, "demos", config.cameras)),
                              "episodes": config.episodes or None, "failures": failures, "init": init}
            self.fit(**self._fit_args)

    @property
    def required_cameras(self) -> list[str]:
        """The cameras every frame must show, tiled in this order (``env.render.cameras``)."""
        return list(self.cameras)

    @classmethod
    def from_file(cls, path: str | Path, device: str = "auto", cache_size: int = 4096) -> ProgressReward:
        """A model loaded from ``path``, with the feature settings it was fitted with."""
        path = _model_file(path)
        with np.load(path, allow_pickle=False) as data:
            settings = feature_settings_from_arrays(data)
            settings["inputs"] = str(data["inputs"]) if "inputs" in data else "frames"
        return cls(ProgressRewardConfig(model_path=str(path), device=device, cache_size=cache_size, **settings))

    # ---------------------------------------------------------------------------------- fit
    def fit(
        self,
        demos: object,
        *,
        episodes: Sequence[int] | None = None,
        failures: object | None = None,
        init: ProgressReward | ProgressHead | None = None,
    ) -> ProgressReward:
        """Train the head on successful demonstrations (one is enough: one-shot adaptation).

        :param demos: a :class:`~roboreward.datasets.lerobot_v3.DatasetReader` (its ``cameras``, or this
            config's ``cameras``, are the views), or a list of demos, each a mapping ``camera -> uint8
            [T, H, W, 3]`` (the config's cameras, or the mapping's order, say which) or a list of
            per-view arrays in camera order. Progress labels follow ``progress_label``; for arrays, which
            carry no success flags, ``success`` falls back to ``t / (T − 1)``.
        :param episodes: dataset episodes to learn from (default: every successful one). Datasets only.
        :param failures: failed rollouts, in the same forms (a dataset's *unsuccessful* episodes are used).
        :param init: a fitted model or head to start from (one-shot adaptation from other tasks).
        """
        started = time.perf_counter()
        trajectories = self._trajectories(demos, episodes, successful=True)
        failed = self._trajectories(failures, None, successful=False) if failures is not None else []
        failed += list(self.agent_failures)
        shapes = {v.shape[1:] if self.reads_state else v.shape[1:3] for t in trajectories + failed for v in t.views}
        if len(shapes) != 1:
            what = "state sizes" if self.reads_state else "frame sizes"
            raise DatasetError(f"demonstrations have different {what} {sorted(shapes)}; record them with one env")
        labels = [self._labels(t) for t in trajectories]
        if isinstance(init, ProgressReward):
            if init.cameras != self.cameras:
                raise ConfigError(
                    f"the initial model reads cameras {init.cameras}, this fit {self.cameras}; use the same views"
                )
            wanted = feature_settings_mismatch(self.config, {k: getattr(init.config, k) for k in FEATURE_SETTINGS})
            if wanted:
                raise ConfigError(f"the initial model was fitted on other features; set {wanted}")
            init = init._fitted()
        features_started = time.perf_counter()
        feats = [self._view_features(t.views) for t in trajectories]
        fail_feats = [self._view_features(t.views) for t in failed]
        self.feature_seconds = time.perf_counter() - features_started
        self.head = fit_head(feats, labels, HeadSettings.from_config(self.config), failures=fail_feats, init=init)
        shape = tuple(int(s) for s in shapes.pop())
        self.frame_size = None if self.reads_state else shape  # type: ignore[assignment]
        self.train_demos = len(trajectories)
        self.train_frames = sum(len(y) for y in labels)
        self.failure_frames = sum(len(t.views[0]) for t in failed)
        self.fit_seconds = time.perf_counter() - started
        return self

    # ---------------------------------------------------------------------------------- refits
    def episode_inputs(self, batch: RewardBatch) -> np.ndarray:
        """What this model reads of each transition of ``batch``: state rows, or the tiled frames."""
        return flat_observations(batch.observations) if self.reads_state else np.asarray(batch.frames)

    def add_episode(self, inputs: np.ndarray, success: bool, step_success: np.ndarray | None = None) -> None:
        """One of the agent's finished episodes (:meth:`episode_inputs` of its steps); a failed one is kept for
        :meth:`refit` (the newest ``refit_keep``). ``step_success`` (bool per step) marks the states where the
        env said the task was done: an episode that got there and lost it again (pressed the button, then let
        go) is a failure, but those states of it are not, and they are left out of its negatives."""
        inputs = np.asarray(inputs)
        if step_success is not None:
            inputs = inputs[~np.asarray(step_success, dtype=bool)]
        if success or len(inputs) == 0:
            return
        views = [inputs.astype(np.float32)] if self.reads_state else self._split(inputs)
        self.agent_failures.append(_Trajectory(views, None))

    def refit(self) -> None:
        """Fit the head again on the demonstrations it was built from plus the agent's failed episodes."""
        if self._fit_args is None:
            raise ConfigError("refit needs the demonstrations the model was fitted on (reward.demos)")
        self.fit(**self._fit_args)
        self.refits += 1

    def _labels(self, trajectory: _Trajectory) -> np.ndarray:
        length = len(trajectory.views[0])
        if self.config.progress_label == "success" and trajectory.success_step is not None:
            return progress_labels(length, trajectory.success_step)
        return progress_labels(length)

    def _trajectories(self, source: object, episodes: Sequence[int] | None, successful: bool) -> list[_Trajectory]:
        """Demos (``successful``) or failed rollouts, as per-camera frame arrays in :attr:`cameras` order."""
        from roboreward.datasets.lerobot_v3 import DatasetReader

        what = "demonstration" if successful else "failed rollout"
        if isinstance(source, DatasetReader):
            cameras = [] if self.reads_state else self._choose_cameras(list(source.cameras), f"{source.root}")
            if episodes is None:
                episodes = [e.index for e in source.episodes if e.success == successful]
                if not episodes and successful:
                    raise DatasetError(
                        f"{source.root} has no successful episode; learn from demos that succeed, or list "
                        "episodes explicitly with reward.episodes"
                    )
            out = []
            for i in episodes:
                ep = source.episode(int(i))
                hits = np.flatnonzero(ep.step_success)
                # Frames are rendered before acting, so step t's success is the state of frame t + 1.
                success_step = int(hits[0]) + 1 if successful and len(hits) else None
                views = [ep.state.astype(np.float32)] if self.reads_state else [source.frames(int(i), c) for c in cameras]
                out.append(_Trajectory(views, success_step))
            return out
        if episodes is not None:
            raise ValueError("episodes select from a DatasetReader; pass the demonstrations you want as arrays")
        if isinstance(source, np.ndarray) or isinstance(source, Mapping):
            raise ValueError(f"pass a list of {what}s (each a mapping camera -> frames, or a list of views)")
        items = list(source)  # type: ignore[call-overload]
        if not items and successful:
            raise ValueError("fit needs at least one demonstration")
        out = []
        for item in items:
            if self.reads_state:
                states = np.asarray(item, dtype=np.float32)
                if states.ndim != 2:
                    raise ValueError(f"a {what} for inputs: state must be states [T, D]; got shape {states.shape}")
                out.append(_Trajectory([states], None))
                continue
            if isinstance(item, Mapping):
                cameras = self._choose_cameras(list(item), f"a {what}")
                views = [np.asarray(item[c]) for c in cameras]
            else:
                views = [np.asarray(v) for v in item]
                if not self.cameras:
                    self.cameras = [f"view{i}" for i in range(len(views))]
                if len(views) != len(self.cameras):
                    raise ValueError(
                        f"a {what} has {len(views)} views; this model reads {len(self.cameras)} ({self.cameras})"
                    )
            for v in views:
                if v.ndim != 4 or v.shape[-1] != 3 or v.dtype != np.uint8:
                    raise ValueError(f"a {what}'s view must be uint8 [T, H, W, 3] frames; got {v.dtype} {v.shape}")
            if len({len(v) for v in views}) != 1:
                raise ValueError(f"a {what}'s views have different lengths {[len(v) for v in views]}")
            out.append(_Trajectory(views, None))
        return out

    def _choose_cameras(self, available: list[str], where: str) -> list[str]:
        if not self.cameras:
            self.cameras = list(available)
        missing = [c for c in self.cameras if c not in available]
        if missing:
            raise ConfigError(f"camera {missing[0]!r} is not in {where}; it has {available} (set reward.cameras)")
        return self.cameras

    def _state_features(self, states: np.ndarray) -> np.ndarray:
        """What the head reads of state rows ``[T, D]``: the rows, or the distances between every pair of keypoints."""
        states = np.asarray(states, dtype=np.float32)
        if not self.keypoints:
            return states
        index = np.array(list(self.keypoints.values()))
        if index.max() >= states.shape[1]:
            raise ConfigError(f"reward.keypoints index {int(index.max())}, but the observations have "
                              f"{states.shape[1]} numbers; give indices of this env's observation")
        points = states[:, index]  # [T, P, 3]
        i, j = np.triu_indices(len(index), k=1)
        return np.linalg.norm(points[:, i] - points[:, j], axis=-1)

    def _view_features(self, views: Sequence[np.ndarray], chunk: int = 256) -> np.ndarray:
        """Features ``[T, V, D]`` of per-camera frame arrays, all views of a chunk in one network call (states:
        :meth:`_state_features`, one view)."""
        if self.reads_state:
            return self._state_features(views[0])[:, None, :]
        length = len(views[0])
        out = []
        for i in range(0, length, chunk):
            stacked = np.concatenate([v[i : i + chunk] for v in views])
            f = self.features(stacked)
            out.append(f.reshape(len(views), -1, f.shape[-1]).transpose(1, 0, 2))
        return np.concatenate(out)

    # ---------------------------------------------------------------------------------- progress
    def progress(self, frames: np.ndarray) -> np.ndarray:
        """Expected progress ``[B]`` (float64) of tiled multi-view frames ``uint8 [B, H, V·W, 3]``."""
        return self.distribution(frames)[1]

    def distribution(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bin probabilities ``[B, K]`` and expected progress ``[B]`` of tiled frames."""
        head = self._fitted()
        views = self._split(frames)
        return head_progress(head, self._view_features(views))

    def progress_of_states(self, states) -> np.ndarray:
        """Expected progress ``[B]`` (float64) of a batch of observations (``inputs: state``)."""
        features = flat_observations(states)
        if self.keypoints:
            features = self._state_features(features)
        head = self._fitted()
        if features.shape[1] != head.dim:
            raise ConfigError(f"observations have {features.shape[1]} numbers but this model was fitted on states of "
                              f"{head.dim}; fit it on demonstrations of this env (same sensing, same crowd size)")
        return head_progress(head, features[:, None, :])[1]

    def compute(self, batch: RewardBatch) -> np.ndarray:
        if self.reads_state:
            if batch.observations is None:
                raise ValueError("the progress reward (inputs: state) needs the observations in the RewardBatch")
            phi = self.progress_of_states(batch.observations)
        elif batch.frames is None:
            raise ValueError(
                "the progress reward needs rendered frames; make the env with render_mode='rgb_array' "
                f"and env.render.cameras: {self.cameras}"
            )
        else:
            phi = self.progress(batch.frames)
        return (self.config.scale * (phi - self.config.offset)).astype(np.float32)

    def _split(self, frames: np.ndarray) -> list[np.ndarray]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [B, H, V*W, 3]; got {frames.dtype} {frames.shape}")
        views = len(self.cameras)
        h, w = frames.shape[1:3]
        if self.config.input_size is None and self.frame_size is not None:
            fh, fw = self.frame_size
            if (h, w) != (fh, views * fw):
                raise ConfigError(
                    f"frames are {h}x{w} but this model reads {views} views of {fh}x{fw} side by side "
                    f"({fh}x{views * fw}): "
                    f"render cameras {self.cameras} at {fw}x{fh} (env.render.cameras, env.render.width/height)"
                )
        return split_views(frames, views)

    def check_ready(self) -> None:
        self._fitted()

    def _fitted(self) -> ProgressHead:
        if self.head is None:
            raise ConfigError(
                "the progress reward is not fitted: set reward.demos (a dataset folder), or reward.model_path "
                "(a saved .npz), or call fit(demos)"
            )
        return self.head

    # ---------------------------------------------------------------------------------- report
    def report(self, demos: object, *, episodes: Sequence[int] | None = None) -> ProgressReport:
        """Score the fit on held-out successful demonstrations (same forms as :meth:`fit`).

        Each demo is judged over its frames up to its first successful state (all frames when that is
        unknown): the Spearman correlation of predicted progress with time, the mean prediction over
        the first and last 10 % of them, and the mean absolute error against the labels.
        """
        from roboreward.datasets.lerobot_v3 import DatasetReader

        head = self._fitted()
        trajectories = self._trajectories(demos, episodes, successful=True)
        if isinstance(demos, DatasetReader):
            ids = list(episodes) if episodes is not None else [e.index for e in demos.episodes if e.success]
        else:
            ids = list(range(len(trajectories)))
        rhos, starts, ends, errors = [], [], [], []
        for t in trajectories:
            labels = self._labels(t)
            end = len(labels) if t.success_step is None else min(t.success_step + 1, len(labels))
            _, predicted = head_progress(head, self._view_features([v[:end] for v in t.views]))
            tenth = max(1, end // 10)
            rho = spearman(predicted, np.arange(end))
            rhos.append(0.0 if rho is None else rho)  # undefined for a constant prediction: it orders nothing
            starts.append(predicted[:tenth].mean())
            ends.append(predicted[-tenth:].mean())
            errors.append(np.abs(predicted - labels[:end]))
        return ProgressReport(
            episodes=[int(i) for i in ids],
            spearman=[float(r) for r in rhos],
            start_progress=float(np.mean(starts)),
            end_progress=float(np.mean(ends)),
            mae=float(np.concatenate(errors).mean()),
            train_demos=self.train_demos,
            train_frames=self.train_frames,
            fit_seconds=self.fit_seconds,
        )

    # ---------------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write the fitted head and its settings as plain arrays to ``path`` (an ``.npz``, atomically)."""
        head = self._fitted()
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "cameras": np.array(self.cameras, dtype=np.str_),
            "frame_size": np.array(self.frame_size if self.frame_size is not None else (-1, -1), dtype=np.int64),
            "views": np.array(head.views),
            "dim": np.array(head.dim),
            "bins": np.array(head.bins),
            "hidden": np.array(head.hidden),
            "fusion": np.array(head.fusion),
            "inputs": np.array(self.config.inputs),
            "keypoint_names": np.array(list(self.keypoints), dtype=np.str_),
            "keypoint_index": np.array(list(self.keypoints.values()), dtype=np.int64).reshape(-1, 3),
            **feature_settings_arrays(self.config),
        }
        for key, value in head.state_dict().items():
            arrays[f"head.{key}"] = value.cpu().numpy()
        path = Path(path)
        atomic_write_npz(path, arrays)
        return path

    def load(self, path: str | Path) -> ProgressReward:
        """Read a head written by :meth:`save`; its feature settings must match this model's config."""
        path = _model_file(path)
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format_version"]) if "format_version" in data else -1
            if version != FORMAT_VERSION:
                raise CheckpointError(
                    f"{path}: format version {version}, this roboreward reads progress heads of {FORMAT_VERSION}"
                )
            inputs = str(data["inputs"]) if "inputs" in data else "frames"
            if inputs != self.config.inputs:
                raise ConfigError(f"{path} was fitted on {inputs}; set reward.inputs: {inputs}")
            wanted = "" if inputs == "state" else feature_settings_mismatch(self.config, feature_settings_from_arrays(data))
            if wanted:
                raise ConfigError(f"{path} was fitted on other features; set {wanted} (or use ProgressReward.from_file)")
            keypoints = ({str(n): [int(i) for i in idx] for n, idx in zip(data["keypoint_names"], data["keypoint_index"])}
                         if "keypoint_names" in data else {})
            if self.config.keypoints and self.config.keypoints != keypoints:
                raise ConfigError(f"{path} reads keypoints {keypoints}, but reward.keypoints is {self.config.keypoints}; "
                                  "drop or fix it")
            cameras = [str(c) for c in data["cameras"]]
            if self.config.cameras and self.config.cameras != cameras:
                raise ConfigError(
                    f"{path} reads cameras {cameras}, but reward.cameras is {self.config.cameras}; drop or fix it"
                )
            head = ProgressHead(
                int(data["views"]), int(data["dim"]), int(data["bins"]), int(data["hidden"]), str(data["fusion"])
            )
            state = {k.removeprefix("head."): torch.as_tensor(data[k]) for k in data.files if k.startswith("head.")}
            head.load_state_dict(state)
            size = tuple(int(s) for s in data["frame_size"])
        self.head = head.eval().requires_grad_(False)
        self.cameras = cameras
        self.keypoints = keypoints
        self.frame_size = None if size == (-1, -1) else size  # type: ignore[assignment]
        return self


def _model_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"progress model {str(path)!r} does not exist; fit one and save it (ProgressReward.save), "
            "or set reward.demos to fit from a dataset"
        )
    return path


def _dataset_dir(path: str, key: str, cameras: Sequence[str]) -> str:
    if not Path(path).is_dir():
        raise ConfigError(
            f"reward.{key}={path!r} is not a folder; record demonstrations first, e.g. `roboreward demos record "
            f"TASK --episodes 5 --cameras {' '.join(cameras or ['corner3'])} --size 64 --out {path}` "
            "(`make demo` records the default job's)"
        )
    return path
