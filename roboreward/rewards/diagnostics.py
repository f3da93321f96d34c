"""Reward diagnostics: how well a learned reward tracks task progress, before any policy is trained on it.

Training a policy is the expensive way to find out that a reward is wrong. These diagnostics score a
:class:`~roboreward.rewards.base.RewardModel` (any of them: it is only called on batches) on held-out
demonstrations and on random or failed rollouts, and compare it with what is known to be true. Run it
with ``roboreward rewards evaluate`` (:mod:`roboreward.rewards.cli`) or :func:`evaluate_reward_model`.

## What is scored

Every episode is a sequence of states ``s_0 .. s_{L-1}``, each with a frame (and an observation). The
learned reward of state ``s_t`` is the model's output on its frame, ``r̂_t`` — the reward the wrappers
give for *reaching* ``s_t``. The model's raw output is used: the wrappers' optional smoothing and
normalisation (:mod:`roboreward.rewards.postprocess`) are left out, as they belong to a training run.

- **Demos** (``--demos DATASET``): dataset episodes, frame ``t`` = state ``s_t`` (rendered before
  acting). By default only *held-out* episodes: when the reward config learns from the same dataset
  (a ``demos`` field, with ``episodes``; ``[]`` = its successful episodes), those are left out.
- **Rollouts** (``--rollouts``): ``random:N`` runs N episodes of uniform random actions in the
  config's env, rendered with the config's render options, reset with seeds ``seed + 2_000_000 + i``
  (never a demo's seed); or a dataset path (e.g. failed demonstrations), read like the demos.

## True progress

- **Demos:** on a *successful* demo, normalised time ``t / (L - 1)`` — an expert that succeeds makes
  progress at every step. Where the dataset stores the env's reward (``next.reward``), also the env's
  true dense reward (see below).
- **Rollouts:** the env's own dense reward, never normalised time (a random arm makes no steady
  progress): for ``random:N`` the reward the env returns from ``step`` (for Meta-World its own shaped
  reward, also ``info["reward_task"]``); for a dataset its ``next.reward`` column. The reward of the
  step that *reached* ``s_t`` is paired with ``r̂_t``; ``s_0`` has none.
- **Success labels:** the episode's ``success`` in a dataset, and for random rollouts
  ``info["is_success"]`` at any step (Meta-World's convention, as ``roboreward demos record``).

## Metrics

- **Spearman correlation** per episode between ``r̂`` and true progress, then mean ± std over
  episodes (episodes where it is undefined — a constant sequence — are counted apart):
  ``spearman.demos_time`` (successful demos vs normalised time), ``spearman.demos_true_reward`` and
  ``spearman.rollouts_true_reward`` (vs the env's dense reward). Ties get their average rank.
- **VOC** (value-order correlation, GVL / Robo-Dopamine): the Spearman correlation between predicted
  values and chronological order on successful demos, with GVL's protocol: the demo's frames are
  shuffled before the model scores them and the values put back in time order, so a model cannot
  lean on the order it was shown. For a model that scores each frame on its own (every built-in
  one) VOC equals ``spearman.demos_time``; a difference means the model looks across its batch.
- **Success vs failure** over all episodes (demos and rollouts): each episode gets a score from its
  learned rewards — ``max`` (default: the best state reached, which matches success-at-any-step
  labels), ``final`` (the last state) or ``mean``. **ROC-AUC** needs no threshold: the chance that a
  successful episode outscores a failed one (ties count half). **Accuracy** is cross-validated:
  episodes are split into ``k = min(5, successes, failures)`` stratified folds, a threshold is fitted
  on ``k - 1`` folds (the midpoint between scores with the best accuracy there; score ≥ threshold
  means success) and tested on the held-out fold; accuracy is the fraction of episodes classified
  right when held out. It needs at least two episodes of each class.
- **STARC distance** (Skalse et al., 2023) between the learned reward ``R_L`` and the true reward
  ``R_T`` on sampled transitions ``(s, a, s')`` of the episodes (at most ``starc_transitions``):

  1. EPIC canonicalisation, with ``S, S'`` drawn from the sampled reached states and ``A`` from the
     actions, all independent::

         C(R)(s, a, s') = R(s, a, s') + E[γ R(s', A, S') − R(s, A, S') − γ R(S, A, S')]

     The expectations use one fixed sample ``Y_1..Y_M`` of states (and ``B_1..B_M`` of actions):
     ``E[R(x, A, S')] = mean_j R(x, B_j, Y_j)`` and ``E[R(S, A, S')] = mean_j R(Y_j, B_j, Y_{j+1})``.
     Because ``S`` and ``S'`` average over the same ``Y``, potential shaping ``γΦ(s') − Φ(s)`` and
     constants cancel *exactly* on the sample, not only in expectation.
  2. Normalisation by the L2 norm over the sampled transitions: ``s(R) = C(R) / ‖C(R)‖`` (0 when
     ``C(R)`` is 0, i.e. ``R`` is a constant plus shaping; the distance to it is then 0.5).
  3. Distance ``‖s(R_L) − s(R_T)‖ / 2`` in ``[0, 1]``: 0 for a positive rescaling or reshaping of the
     same reward, 1 for its negation.

  Both rewards are treated as functions of the state reached, ``R(s, a, s') = r(s')``: true of every
  roboreward model (it scores the frame of the reached state) and of Meta-World's reward (computed from
  the next observation; its grasping terms also read the gripper command of the action, which is
  ignored). For such rewards canonicalisation centres ``r`` over the sampled states, and the distance
  equals ``sqrt((1 − ρ) / 2)`` with ``ρ`` the Pearson correlation of the two rewards over the sampled
  transitions. Reported for demos, rollouts and both together, with ``γ`` from the config
  (``algo.hyperparams.gamma``).

## Outputs (``out_dir``)

- ``metrics.json``: the metrics above, what was evaluated, and one row per episode;
- ``reward_vs_progress.png``: per episode, the learned reward against true progress (demos blue,
  rollouts red), and all episodes overlaid against normalised time;
- ``rewards.mp4``: the first episodes of each kind, each frame enlarged with a live curve of the
  learned reward and true progress so far and the current values written on it.

Example::

    model = make_reward_model(config.reward)
    result = evaluate_reward_model(model, "demos/reach", rollouts="random:10", env_config=config.env,
                                   out_dir="runs/reach/reward_eval", gamma=0.95)
    print(result.table())
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from roboreward.io import atomic_write
from roboreward.rewards.base import RewardBatch, RewardModel

ROLLOUT_SEED_OFFSET = 2_000_000  # random rollouts never replay a demo's (or an evaluation's) seed
SCORE_KINDS = ("max", "final", "mean")
ScoreKind = Literal["max", "final", "mean"]
DEMOS, ROLLOUTS = "demos", "rollouts"
RewardFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# ============================================================================================
# Metric functions (pure)


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks ``0..n-1`` of ``x``, ties sharing their average rank (as ``scipy.stats.rankdata - 1``)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return np.bincount(inverse, weights=ranks)[inverse] / counts[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation of two sequences; None where it is undefined (a constant, or < 2 values)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"spearman needs two 1-d sequences of one length; got shapes {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return None
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    if denominator == 0:
        return None
    return float(np.clip((ra * rb).sum() / denominator, -1.0, 1.0))


def value_order_correlation(values: np.ndarray) -> float | None:
    """VOC: Spearman correlation between values (in time order) and their chronological order."""
    values = np.asarray(values, dtype=np.float64)
    return spearman(values, np.arange(len(values), dtype=np.float64))


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


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"scores and labels must be 1-d of one length; got shapes {scores.shape} and {labels.shape}")
    if labels.dtype != bool and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be booleans (True = success) or 0/1")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite; the reward model returned NaN or inf")
    return scores, labels.astype(bool)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve: P(a success outscores a failure), ties counting ½ (Mann-Whitney U / n⁺n⁻).

    None when either class is empty.
    """
    scores, labels = _check_scores(scores, labels)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores) + 1.0  # 1-based, ties averaged
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold (score ≥ it means success) of best accuracy on these episodes, and that accuracy.

    Candidates are the midpoints between consecutive distinct scores and ±inf (all success / all
    failure); among equally accurate ones the middle one is taken, for the widest margin.
    """
    scores, labels = _check_scores(scores, labels)
    if len(scores) == 0:
        raise ValueError("best_threshold needs at least one episode")
    distinct = np.unique(scores)
    candidates = np.concatenate([[-np.inf], (distinct[:-1] + distinct[1:]) / 2, [np.inf]])
    accuracy = np.array([np.mean((scores >= c) == labels) for c in candidates])
    best = np.flatnonzero(accuracy == accuracy.max())
    pick = best[len(best) // 2]
    return float(candidates[pick]), float(accuracy[pick])


def cross_validated_accuracy(
    scores: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[float, int] | None:
    """Accuracy of a threshold chosen on other episodes: stratified ``k``-fold cross-validation.

    ``k = min(folds, successes, failures)``; each fold's threshold is :func:`best_threshold` on the
    other folds. Returns (accuracy over all held-out predictions, ``k``), or None with fewer than two
    episodes of either class.
    """
    scores, labels = _check_scores(scores, labels)
    if folds < 2:
        raise ValueError(f"folds={folds} must be >= 2")
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    k = min(folds, len(positives), len(negatives))
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    fold = np.empty(len(scores), dtype=np.int64)
    for group in (positives, negatives):
        fold[rng.permutation(group)] = np.arange(len(group)) % k
    correct = 0
    for f in range(k):
        test = fold == f
        threshold, _ = best_threshold(scores[~test], labels[~test])
        correct += int(((scores[test] >= threshold) == labels[test]).sum())
    return correct / len(scores), k


def epic_canonicalize(
    reward: RewardFunction,
    states: np.ndarray,
    actions: np.ndarray,
    next_states: np.ndarray,
    gamma: float,
    *,
    state_pool: np.ndarray | None = None,
    action_pool: np.ndarray | None = None,
    samples: int = 512,
    seed: int = 0,
) -> np.ndarray:
    """EPIC's canonical form of ``reward`` on transitions ``(s_i, a_i, s'_i)``, ``float64 [N]``.

    ``C(R)(s, a, s') = R(s, a, s') + E[γ R(s', A, S') − R(s, A, S') − γ R(S, A, S')]`` with ``S, S'``
    from ``state_pool`` (default: ``next_states``) and ``A`` from ``action_pool`` (default: ``actions``),
    estimated on one sample of ``M = min(samples, pool size)`` states ``Y`` and actions ``B`` (see the
    module docstring), so shaping by any potential and adding a constant leave the result unchanged.

    :param reward: ``reward(s, a, s') -> [K]`` on batches of states, actions and next states (arrays
        whose first axis is the batch: vectors, or indices into a table of states).
    :param samples: ``M``; the cost is ``2·N·M + M`` reward evaluations (batched in chunks).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma={gamma} must be in [0, 1]")
    if samples < 1:
        raise ValueError(f"samples={samples} must be >= 1")
    states, actions, next_states = np.asarray(states), np.asarray(actions), np.asarray(next_states)
    n = len(states)
    if n == 0 or len(actions) != n or len(next_states) != n:
        raise ValueError(
            f"states, actions and next_states must be non-empty and of one length; got {n}, {len(actions)}, "
            f"{len(next_states)}"
        )
    state_pool = next_states if state_pool is None else np.asarray(state_pool)
    action_pool = actions if action_pool is None else np.asarray(action_pool)
    if len(state_pool) == 0 or len(action_pool) == 0:
        raise ValueError("state_pool and action_pool must not be empty")
    rng = np.random.default_rng(seed)
    m = min(samples, len(state_pool))
    ys = state_pool[rng.choice(len(state_pool), size=m, replace=False)]
    bs = action_pool[rng.choice(len(action_pool), size=m, replace=len(action_pool) < m)]

    def evaluate(s: np.ndarray, a: np.ndarray, s2: np.ndarray) -> np.ndarray:
        out = np.asarray(reward(s, a, s2), dtype=np.float64)
        if out.shape != (len(s),):
            raise ValueError(
                f"the reward function returned shape {out.shape} for {len(s)} transitions; expected ({len(s)},)"
            )
        return out

    def expected_from(origins: np.ndarray) -> np.ndarray:  # E[R(x, A, S')] for each origin x
        out = np.empty(n)
        chunk = max(1, 65536 // m)
        for i in range(0, n, chunk):
            o = origins[i : i + chunk]
            c = len(o)
            tiled_b = np.tile(bs, (c,) + (1,) * (bs.ndim - 1))
            tiled_y = np.tile(ys, (c,) + (1,) * (ys.ndim - 1))
            out[i : i + c] = evaluate(np.repeat(o, m, axis=0), tiled_b, tiled_y).reshape(c, m).mean(axis=1)
        return out

    direct = evaluate(states, actions, next_states)
    baseline = evaluate(ys, bs, np.roll(ys, -1, axis=0)).mean()  # S and S' independent draws of Y
    return direct + gamma * expected_from(next_states) - expected_from(states) - gamma * baseline


def standardise(canonical: np.ndarray, reference: np.ndarray | None = None, rtol: float = 1e-9) -> np.ndarray:
    """``c / ‖c‖₂``, or zeros where ``‖c‖`` is rounding error next to ``‖reference‖`` (the raw reward)."""
    c = np.asarray(canonical, dtype=np.float64)
    norm = np.linalg.norm(c)
    scale = np.linalg.norm(reference) if reference is not None else 0.0
    if norm <= rtol * max(scale, 1e-300) or norm == 0.0:
        return np.zeros_like(c)
    return c / norm


def starc_distance(
    reward_a: RewardFunction,
    reward_b: RewardFunction,
    states: np.ndarray,
    actions: np.ndarray,
    next_states: np.ndarray,
    gamma: float,
    *,
    state_pool: np.ndarray | None = None,
    action_pool: np.ndarray | None = None,
    samples: int = 512,
    seed: int = 0,
) -> float:
    """STARC distance in ``[0, 1]`` between two rewards on sampled transitions (module docstring).

    ``‖s(R_a) − s(R_b)‖₂ / 2`` with ``s(R) = C(R) / ‖C(R)‖₂`` and ``C`` :func:`epic_canonicalize`
    (both with the same samples). 0 for ``R`` and ``λR + γΦ(s') − Φ(s) + c`` (``λ > 0``), 1 for ``R``
    and ``−R``.
    """
    kwargs = dict(state_pool=state_pool, action_pool=action_pool, samples=samples, seed=seed)
    ca = epic_canonicalize(reward_a, states, actions, next_states, gamma, **kwargs)
    cb = epic_canonicalize(reward_b, states, actions, next_states, gamma, **kwargs)
    ua = standardise(ca, np.asarray(reward_a(states, actions, next_states), dtype=np.float64))
    ub = standardise(cb, np.asarray(reward_b(states, actions, next_states), dtype=np.float64))
    return float(np.clip(np.linalg.norm(ua - ub) / 2.0, 0.0, 1.0))


def starc_distance_of_state_rewards(
    learned: np.ndarray,
    true: np.ndarray,
    transitions: np.ndarray,
    gamma: float,
    *,
    max_transitions: int = 5000,
    samples: int = 512,
    seed: int = 0,
) -> tuple[float, int] | None:
    """STARC distance between two rewards of the state reached, known on a table of states.

    :param learned: ``[S]`` learned reward of each state (NaN where unknown).
    :param true: ``[S]`` true reward of reaching each state (NaN where unknown, e.g. first states).
    :param transitions: int ``[N, 2]`` rows ``(state, next state)`` into the tables.
    :returns: (distance, transitions used), or None when no transition reaches a state with both rewards.
    """
    learned, true = np.asarray(learned, dtype=np.float64), np.asarray(true, dtype=np.float64)
    transitions = np.asarray(transitions, dtype=np.int64).reshape(-1, 2)
    known = np.isfinite(learned[transitions[:, 1]]) & np.isfinite(true[transitions[:, 1]])
    transitions = transitions[known]
    if len(transitions) == 0:
        return None
    if len(transitions) > max_transitions:
        rng = np.random.default_rng(seed)
        transitions = transitions[np.sort(rng.choice(len(transitions), size=max_transitions, replace=False))]
    s, s2 = transitions[:, 0], transitions[:, 1]
    no_actions = np.zeros(len(s))  # functions of the state reached: actions play no part

    def reward_of(table: np.ndarray) -> RewardFunction:
        return lambda _s, _a, nxt: table[nxt]

    d = starc_distance(reward_of(learned), reward_of(true), s, no_actions, s2, gamma, samples=samples, seed=seed)
    return d, len(transitions)


# ============================================================================================
# Episodes


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
        raise ValueError(f"{type(model).__name__} returned NaN or inf rewards; the reward model is broken")
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
                raise ValueError(
                    f"camera {missing[0]!r} ({why}) is not in {where}; its cameras are {list(cameras)} "
                    "(choose with --camera)"
                )
            return list(chosen)
    for hint in hints:
        if hint is not None and hint in cameras:
            return [hint]
    if len(cameras) == 1:
        return [cameras[0]]
    raise ValueError(f"{where} has cameras {list(cameras)}; say which the reward model sees with --camera")


def tile_frames(views: Sequence[np.ndarray]) -> np.ndarray:
    """Views ``uint8 [T, H, W, 3]`` side by side, ``[T, H, V·W, 3]``: how multi-view models take their frames."""
    return views[0] if len(views) == 1 else np.concatenate(list(views), axis=-2)


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
            raise ValueError(f"episode {i} is not in {root}; it has episodes 0..{len(reader) - 1}")
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
        raise ValueError(f"random rollouts: {count} episodes asked for; give random:N with N >= 1")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps={max_steps} must be >= 1")
    env = make_env(env_config, render=True)
    records = []
    try:
        env.action_space.seed(seed)
        has_goal = callable(getattr(env.unwrapped, "render_goal", None))
        views = model_cameras(model)
        if len(views) > 1 and not callable(getattr(env.unwrapped, "render_cameras", None)):
            raise ValueError(
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
            raise ValueError(f"--rollouts {spec!r}: write random:N with N >= 1 episodes, e.g. random:10")
        return "random", int(count)
    if not Path(spec).is_dir():
        raise FileNotFoundError(
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


# ============================================================================================
# The evaluation


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
    """Score ``model`` on demos and rollouts, compute the metrics, and write them (module docstring).

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
        raise ValueError("nothing to evaluate: give demonstrations (--demos DATASET) and/or rollouts (--rollouts)")
    if demos is not None and not Path(demos).is_dir():
        raise FileNotFoundError(
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
        atomic_write(out / "metrics.json", json.dumps(result.to_dict(), indent=2).encode())
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


# ============================================================================================
# Files


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


__all__ = [
    "EpisodeRecord",
    "RewardEvaluation",
    "SuccessDetection",
    "Summary",
    "best_threshold",
    "choose_cameras",
    "cross_validated_accuracy",
    "epic_canonicalize",
    "episode_score",
    "evaluate_reward_model",
    "load_dataset_episodes",
    "model_cameras",
    "parse_rollouts",
    "random_rollouts",
    "rankdata",
    "roc_auc",
    "spearman",
    "standardise",
    "starc_distance",
    "starc_distance_of_state_rewards",
    "tile_frames",
    "training_episodes",
    "value_order_correlation",
]
