"""STARC distance (Skalse et al., 2023) between two rewards, estimated on sampled transitions.

The distance between a learned reward ``R_L`` and the true reward ``R_T`` on transitions
``(s, a, s')``, in three steps:

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

The reward diagnostics treat both rewards as functions of the state reached, ``R(s, a, s') = r(s')``
(:func:`starc_distance_of_state_rewards`): true of every roboreward model (it scores the frame of the
reached state) and of Meta-World's reward (computed from the next observation; its grasping terms
also read the gripper command of the action, which is ignored). For such rewards canonicalisation
centres ``r`` over the sampled states, and the distance equals ``sqrt((1 − ρ) / 2)`` with ``ρ`` the
Pearson correlation of the two rewards over the sampled transitions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RewardFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


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


__all__ = ["RewardFunction", "epic_canonicalize", "standardise", "starc_distance", "starc_distance_of_state_rewards"]
