"""Potential-based reward shaping for any potential, and bounded variants of learned process rewards.

## Potential-based shaping

From Ng, Harada & Russell, "Policy invariance under reward transformations" (ICML 1999), and the
shaping of Dopamine-RL in "Robo-Dopamine: General Process Reward Modeling for High-Precision Robotic
Manipulation" (2025)::

    r'(s, a, s') = r(s, a, s') + γ·Φ(s') − Φ(s),        Φ(s') := 0 when s' is terminal

``r`` is the task's own reward (often sparse: success), ``Φ`` a potential on states — typically a
learned progress estimator, any :class:`~roboreward.rewards.base.RewardModel` whose output means
"how far along the task is" — and ``γ`` the learner's discount. Over an episode the shaping terms
telescope: ``Σ_t γ^t (γΦ(s_{t+1}) − Φ(s_t)) = γ^T Φ(s_T)·[s_T not terminal] − Φ(s_0)``, so the
shaped return differs from the true one by a quantity no action can change, and every policy's value
moves by the same ``−Φ(s)``: ``Q'(s, a) = Q(s, a) − Φ(s)``. The optimal policy is unchanged while the
dense ``Φ`` still tells the agent where progress lies.

Adding a raw progress score as a reward (``r + Φ(s')``) is *not* the same: it pays for every step
spent near the goal, so an agent can earn more by hovering close to success than by finishing (which
ends the payments) — the "semantic trap" Robo-Dopamine describes. ``tests/rewards/test_shaping.py``
builds such an MDP and solves it exactly.

Two conditions keep the guarantee, and the wrappers below follow both:

- ``γ`` must be the discount of the algorithm that learns from the shaped reward (SB3's
  ``model.gamma``). With another ``γ̃`` the per-step term is ``γ̃Φ(s') − Φ(s) = [γΦ(s') − Φ(s)] +
  (γ̃ − γ)Φ(s')``: a potential-based part plus a plain reward ``(γ̃ − γ)Φ(s')`` that pays for
  *being in* high-potential states — the semantic trap again, and the optimal policy can change.
- ``Φ(s') = 0`` only when the episode *terminated* (an MDP terminal state: success, failure), never
  when it was merely *truncated* by a time limit. Truncation is not part of the MDP — the state goes
  on and has a value — and SB3 bootstraps through it (``TimeLimit.truncated``: PPO adds
  ``γ·V(terminal_observation)`` to the last reward, off-policy buffers keep ``done = False``). The
  learner's shaped value is ``V'(s') = V(s') − Φ(s')``, so the last shaping term must use the real
  ``Φ(s')`` for the sum to stay consistent; zeroing it at a time limit would make the potential
  itself a reward at the last step.

:class:`PotentialShaping` shapes one gymnasium env; :class:`VecPotentialShaping` shapes an SB3
vector env with **one** potential call per step for all envs. Both leave the incoming reward in
``info["unshaped_reward"]`` and add ``info["shaping"] = γΦ(s') − Φ(s)`` and ``info["potential"] =
Φ(s')`` (0 at a terminal state; at reset, ``Φ(s_0)`` goes into the reset info). A potential that
reads frames takes them from ``info["frame"]`` as put there by
:class:`~roboreward.rewards.wrappers.RenderInInfo` (and goal images from ``info["goal_frame"]``),
never rendering again.

Example, the Robo-Dopamine stack: the env's success reward shaped by a progress model::

    progress = make_reward_model(...)        # a RewardModel whose output is task progress
    make = lambda: RenderInInfo(gym.make("roboreward/ArmReach-v0", render_mode="rgb_array"))
    venv = VecPotentialShaping(DummyVecEnv([make] * 4), progress, gamma=0.99)   # γ = SAC(gamma=0.99)

## Bounded process-reward variants

Pure numpy functions, vectorised over a batch, for learned per-step rewards that a policy could
otherwise exploit by repeating rewarded steps: :func:`clipped_process_reward` and
:func:`delta_process_reward` (Gao et al., "On Designing Effective RL Reward at Training Time for LLM
Reasoning", 2024), :func:`sigmoid_centred_reward` (Fu et al., "Reward Shaping to Mitigate Reward
Hacking in RLHF", PAR, 2025) and :func:`gated_accumulation` (Sun et al., "Stabilizing Long-term
Multi-turn Reinforcement Learning with Gated Rewards", G-RA, 2025). Sequences lie along the last
axis.
"""

from __future__ import annotations

from typing import Any, Callable, Union

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from roboreward.rewards.base import RewardBatch, observation_at, stack_frames, stack_observations
from roboreward.rewards.wrappers import FRAME_KEY, GOAL_FRAME_KEY, EpisodeFeed, RenderInInfo, _put

Potential = Callable[[RewardBatch], np.ndarray]
"""Anything that maps a :class:`RewardBatch` of ``B`` states to ``B`` potentials, e.g. a RewardModel."""

ArrayLike = Union[float, np.ndarray]

UNSHAPED_KEY = "unshaped_reward"  # the info key of the reward before shaping (the wrappers' default)


# ------------------------------------------------------------------------------------- shaping
def shaping_term(potential: ArrayLike, next_potential: ArrayLike, terminated: ArrayLike, gamma: float) -> np.ndarray:
    """The potential-based shaping term ``F = γ·Φ(s')·[not terminated] − Φ(s)``, elementwise.

    :param potential: ``Φ(s)``, the potential of the state the step started from.
    :param next_potential: ``Φ(s')``, the potential of the state reached (ignored where terminated).
    :param terminated: whether ``s'`` is a terminal state of the MDP (not a time-limit truncation).
    :param gamma: the learner's discount.
    :return: ``F`` as float64; the shaped reward is ``r + F``.
    """
    next_potential = np.where(np.asarray(terminated, dtype=bool), 0.0, np.asarray(next_potential, dtype=np.float64))
    return gamma * next_potential - np.asarray(potential, dtype=np.float64)


def _check_gamma(gamma: float) -> float:
    if not 0.0 < gamma <= 1.0:
        raise ValueError(
            f"gamma={gamma} must lie in (0, 1]; pass the discount of the algorithm that learns (model.gamma)"
        )
    return float(gamma)


def _requires_frames(potential: Potential, requires_frames: bool | None) -> bool:
    if requires_frames is not None:
        return requires_frames
    return bool(getattr(potential, "requires_frames", False))


def _is_wrapped(env: gym.Env, wrapper_class: type[gym.Wrapper]) -> bool:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, wrapper_class):
            return True
        env = env.env
    return False


def _evaluate(
    potential: Potential,
    observations,
    frames: list[np.ndarray | None],
    goal_frames: list[np.ndarray | None],
    requires_frames: bool,
    scored: list[RewardBatch] | None = None,
) -> np.ndarray:
    """Potentials of ``B`` states in one call, as float64 ``[B]`` (the batch appended to ``scored`` when given)."""
    if requires_frames and any(f is None for f in frames):
        raise RuntimeError("the potential reads frames but the envs render none: wrap each env in RenderInInfo")
    has_goals = all(g is not None for g in goal_frames)
    batch = RewardBatch(
        frames=stack_frames(frames) if requires_frames else None,  # type: ignore[arg-type]
        observations=observations,
        goal_frames=stack_frames(goal_frames) if has_goals else None,  # type: ignore[arg-type]
    )
    values = np.asarray(potential(batch), dtype=np.float64)
    if scored is not None:
        scored.append(batch)
    n = len(batch)
    if values.shape != (n,):
        raise RuntimeError(f"the potential returned shape {values.shape} for {n} states; expected ({n},)")
    return values


class PotentialShaping(gym.Wrapper):
    """Shape one env's reward: ``r' = r + γΦ(s') − Φ(s)``, ``Φ(s') = 0`` when ``terminated``.

    See the module docstring for why ``gamma`` must be the learner's discount and why a truncated
    (time-limit) step keeps ``Φ(s')``.

    :param env: the env whose reward (the task reward, or a learned reward from a wrapper below)
        is shaped.
    :param potential: ``Φ``, a callable on a :class:`RewardBatch` returning ``[B]`` values — a
        :class:`RewardModel` whose output is a potential (task progress), or any function.
    :param gamma: the discount of the algorithm that trains on the shaped reward (e.g. ``SAC.gamma``);
        any other value can change the optimal policy.
    :param requires_frames: whether ``Φ`` reads frames; by default the potential's own
        ``requires_frames`` attribute (False for a plain function). If True and the env is not
        already wrapped in :class:`RenderInInfo`, it is wrapped here.
    :param shaping_key: info key of ``γΦ(s') − Φ(s)``.
    :param potential_key: info key of ``Φ(s')`` (0 at a terminal state) and, at reset, ``Φ(s_0)``.
    :param unshaped_key: info key of the reward before shaping.

    >>> minus_distance = lambda batch: -np.linalg.norm(batch.observations[:, 8:10], axis=1)  # ArmReach obs
    >>> env = PotentialShaping(gym.make("roboreward/ArmReach-v0"), minus_distance, gamma=0.99)
    >>> obs, info = env.reset(seed=0)
    >>> obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    >>> bool(np.isclose(r, info["unshaped_reward"] + info["shaping"]))
    True
    """

    def __init__(
        self,
        env: gym.Env,
        potential: Potential,
        gamma: float,
        *,
        requires_frames: bool | None = None,
        shaping_key: str = "shaping",
        potential_key: str = "potential",
        unshaped_key: str = UNSHAPED_KEY,
    ):
        self.requires_frames = _requires_frames(potential, requires_frames)
        if self.requires_frames and not _is_wrapped(env, RenderInInfo):
            env = RenderInInfo(env)
        super().__init__(env)
        self.potential = potential
        self.gamma = _check_gamma(gamma)
        self.shaping_key, self.potential_key, self.unshaped_key = shaping_key, potential_key, unshaped_key
        self._phi: float | None = None
        self._goal_frame: np.ndarray | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._goal_frame = info.get(GOAL_FRAME_KEY)
        self._phi = self._potential_of(obs, info)
        _put(info, self.potential_key, self._phi)
        return obs, info

    def step(self, action):
        if self._phi is None:
            raise RuntimeError("PotentialShaping: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        next_phi = 0.0 if terminated else self._potential_of(obs, info)  # a terminal state's value is 0
        shaping = float(shaping_term(self._phi, next_phi, terminated, self.gamma))
        _put(info, self.unshaped_key, float(reward))
        _put(info, self.shaping_key, shaping)
        _put(info, self.potential_key, next_phi)
        self._phi = next_phi
        return obs, float(reward) + shaping, terminated, truncated, info

    def _potential_of(self, obs: Any, info: dict[str, Any]) -> float:
        frame = info.get(FRAME_KEY)
        values = _evaluate(self.potential, stack_observations([obs]), [frame], [self._goal_frame], self.requires_frames)
        return float(values[0])


class VecPotentialShaping(VecEnvWrapper):
    """Shape a vector env's rewards with **one** potential call per step for all envs.

    Each step scores, in one batch, the state every env reached (its ``terminal_observation`` and the
    frame rendered before the auto-reset, for an env that finished) — except envs that *terminated*,
    whose ``Φ(s')`` is 0 — followed by the first state of each episode that just began, whose
    potential is remembered as that env's ``Φ(s)`` for the next step. An env counts as terminated
    when it is done and SB3 did not flag ``TimeLimit.truncated``: the same rule SB3 uses to decide
    whether to bootstrap.

    Frames (``info["frame"]`` from :class:`RenderInInfo` in each env) are removed from the step and
    reset infos once scored, as :class:`~roboreward.rewards.wrappers.VecLearnedReward` does; goal
    images (``info["goal_frame"]``) are taken at each reset and passed in
    :attr:`RewardBatch.goal_frames`. Reset infos, with ``Φ(s_0)`` added, stay readable as this
    wrapper's ``reset_infos``.

    Parameters as in :class:`PotentialShaping`.
    """

    def __init__(
        self,
        venv: VecEnv,
        potential: Potential,
        gamma: float,
        *,
        requires_frames: bool | None = None,
        shaping_key: str = "shaping",
        potential_key: str = "potential",
        unshaped_key: str = UNSHAPED_KEY,
    ):
        super().__init__(venv)
        self.potential = potential
        self.gamma = _check_gamma(gamma)
        self.requires_frames = _requires_frames(potential, requires_frames)
        self.shaping_key, self.potential_key, self.unshaped_key = shaping_key, potential_key, unshaped_key
        self._phi = np.zeros(self.num_envs)  # Φ of each env's current state
        self._goal_frames: list[np.ndarray | None] = [None] * self.num_envs
        self.feed = EpisodeFeed(potential, self.num_envs)  # the agent's episodes, for a potential that refits on them

    def reset(self):
        obs = self.venv.reset()
        reset_infos = self.venv.reset_infos
        frames = [info.pop(FRAME_KEY, None) for info in reset_infos]
        self._goal_frames = [info.pop(GOAL_FRAME_KEY, None) for info in reset_infos]
        scored: list[RewardBatch] = []
        self._phi = _evaluate(self.potential, stack_observations([observation_at(obs, i) for i in range(self.num_envs)]),
                              frames, self._goal_frames, self.requires_frames, scored)
        self.feed.restarted()
        self.feed.scored(range(self.num_envs), scored[0])
        for i, info in enumerate(reset_infos):
            _put(info, self.potential_key, float(self._phi[i]))
        self.reset_infos = reset_infos
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        reset_infos = self.venv.reset_infos
        dones = np.asarray(dones, dtype=bool)
        truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos], dtype=bool)
        terminated = dones & ~truncated  # SB3's rule: done and not cut by a time limit
        reached_frames = [info.pop(FRAME_KEY, None) for info in infos]
        live = np.flatnonzero(~terminated)  # envs whose reached state needs Φ(s')
        new = np.flatnonzero(dones)  # envs that began a new episode: Φ(s_0) for the next step
        old_goals = list(self._goal_frames)
        for i in new:
            self._goal_frames[i] = reset_infos[i].pop(GOAL_FRAME_KEY, None)

        # One batch: reached states (a finished env's obs is already its next episode's first), then new first states.
        observations = ([infos[i]["terminal_observation"] if dones[i] else observation_at(obs, i) for i in live]
                        + [observation_at(obs, i) for i in new])
        frames = [reached_frames[i] for i in live] + [reset_infos[i].pop(FRAME_KEY, None) for i in new]
        goals = [old_goals[i] for i in live] + [self._goal_frames[i] for i in new]
        scored: list[RewardBatch] = []
        values = _evaluate(self.potential, stack_observations(observations), frames, goals, self.requires_frames, scored)
        # The reached states belong to the episodes that ran; new first states to the episodes that begin.
        self.feed.scored(live, scored[0], infos=infos)
        for i in new:
            self.feed.ended(int(i), infos[i])
        self.feed.scored(new, scored[0], first=len(live))
        self.feed.stepped()

        next_phi = np.zeros(self.num_envs)
        next_phi[live] = values[: len(live)]
        shaping = shaping_term(self._phi, next_phi, terminated, self.gamma)
        for i, info in enumerate(infos):
            _put(info, self.unshaped_key, float(rewards[i]))
            _put(info, self.shaping_key, float(shaping[i]))
            _put(info, self.potential_key, float(next_phi[i]))
        self._phi = next_phi
        self._phi[new] = values[len(live) :]
        for i in new:
            _put(reset_infos[i], self.potential_key, float(self._phi[i]))
        self.reset_infos = reset_infos
        return obs, (np.asarray(rewards, dtype=np.float64) + shaping).astype(np.float32), dones, infos


# ------------------------------------------------------------------------ bounded process rewards
def clipped_process_reward(r: ArrayLike, centre: ArrayLike | None = None) -> np.ndarray:
    """Clip: centre each step's process reward, then bound it above by zero.

    From "On Designing Effective RL Reward at Training Time for LLM Reasoning" (Gao et al., 2024)::

        r_clip(s_k) = min(r(s_k) − η, 0)

    Every step's reward is ``≤ 0``, so no trajectory's process return exceeds 0 however many rewarded
    steps it repeats: the reward can only point out steps worse than ``η``, never pay for padding.
    Pair it with a task reward (success) that carries the incentive to finish.

    :param r: per-step process rewards, any shape.
    :param centre: ``η``; a scalar or an array broadcastable to ``r``. ``None`` uses the mean of
        ``r`` (the batch's average step reward).
    :return: the clipped rewards, float64, shaped like ``r``.
    """
    r = np.asarray(r, dtype=np.float64)
    eta = r.mean() if centre is None else np.asarray(centre, dtype=np.float64)
    return np.minimum(r - eta, 0.0)


def delta_process_reward(r_seq: ArrayLike, *, keep_last: bool = False) -> np.ndarray:
    """Delta: each step is paid the difference between its process reward and the next one's.

    From "On Designing Effective RL Reward at Training Time for LLM Reasoning" (Gao et al., 2024)::

        r_Δ(s_k) = r(s_k) − r(s_{k+1})   for k < K−1,        r_Δ(s_{K−1}) = 0

    The return from any step telescopes, ``Σ_{t≥k} r_Δ(s_t) = r(s_k) − r(s_{K−1})``, so it stays within
    the range of ``r`` whatever the length: repeating a high-reward step earns nothing. As in the
    paper, the last step's own reward is dropped (the task/success reward judges the end);
    ``keep_last=True`` pays it, making the return from step ``k`` exactly ``r(s_k)``.

    :param r_seq: process rewards ``[..., K]`` of sequences along the last axis (``K ≥ 1``).
    :param keep_last: pay ``r(s_{K−1})`` at the last step instead of 0.
    :return: the delta rewards, float64 ``[..., K]``.
    """
    r = np.asarray(r_seq, dtype=np.float64)
    if r.ndim == 0 or r.shape[-1] == 0:
        raise ValueError(f"r_seq must hold sequences along its last axis, got shape {r.shape}")
    out = np.zeros_like(r)
    out[..., :-1] = r[..., :-1] - r[..., 1:]
    if keep_last:
        out[..., -1] = r[..., -1]
    return out


def sigmoid_centred_reward(r: ArrayLike, r_reference: ArrayLike) -> np.ndarray:
    """PAR: a sigmoid of the reward centred on a reference reward.

    From "Reward Shaping to Mitigate Reward Hacking in RLHF" (Fu et al., 2025, Preference As Reward)::

        r_PAR = σ(r − r_ref) = 1 / (1 + exp(−(r − r_ref)))

    Bounded in ``(0, 1)``, steepest (slope ¼) at ``r = r_ref`` and saturating above it, so pushing a
    learned reward ever higher stops paying — the paper's three principles: bounded, fast initial
    growth then convergence, centred. ``r_ref`` is the reward of a reference (e.g. the SFT / base
    policy's response, a demonstration's score). With ``M`` references PAR averages:
    ``sigmoid_centred_reward(r[..., None], refs).mean(-1)`` for ``refs`` of shape ``[..., M]``.

    :param r: rewards, any shape.
    :param r_reference: reference reward(s), broadcastable to ``r``.
    :return: ``σ(r − r_ref)``, float64, computed without overflow for any magnitude.
    """
    x = np.asarray(r, dtype=np.float64) - np.asarray(r_reference, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def gated_accumulation(immediate: ArrayLike, long_term: ArrayLike, threshold: float) -> np.ndarray:
    """G-RA: keep immediate rewards only while the long-term reward clears a threshold.

    From "Stabilizing Long-term Multi-turn Reinforcement Learning with Gated Rewards" (Sun et al., 2025,
    Gated Reward Accumulation)::

        r̃_t = r_imm(t) · [r_long ≥ δ]

    so a trajectory's return is ``r_long + Σ_t r̃_t``: dense step rewards (a step critic, progress)
    count only for trajectories whose high-level outcome is good enough, and cannot be farmed by ones
    that never achieve it.

    :param immediate: per-step immediate rewards ``[..., T]``.
    :param long_term: the long-term reward, either one per sequence ``[...]`` (the episode outcome,
        gating the whole sequence) or one per step ``[..., T]`` (gating step by step).
    :param threshold: ``δ``; a step is kept when the long-term reward is ``≥ δ``.
    :return: the gated per-step rewards, float64 ``[..., T]``; sum over the last axis to accumulate.
    """
    imm = np.asarray(immediate, dtype=np.float64)
    gate = np.asarray(long_term, dtype=np.float64)
    if gate.ndim == imm.ndim - 1:
        gate = gate[..., None]  # one outcome per sequence gates all its steps
    try:
        np.broadcast_shapes(gate.shape, imm.shape)
    except ValueError:
        raise ValueError(
            f"long_term of shape {np.shape(long_term)} fits neither immediate {imm.shape} (per step) "
            f"nor {imm.shape[:-1]} (per sequence)"
        ) from None
    return np.where(gate >= threshold, imm, 0.0)
