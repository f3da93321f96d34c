"""Replayed rewards from the reward models as they are now, not as they were when the step was taken.

An off-policy learner (SAC) replays a transition long after it was collected. When the reward model changes
while the policy trains — the progress model refitted on the agent's own failures (``reward.refit_every``) —
a stored reward says what the *old* model thought: the states a refit has just marked "not done" keep paying
from the buffer for as long as they stay in it. PEBBLE (Lee et al., 2021) relabels its whole buffer after
each reward update; here each sampled batch is relabelled as it is drawn, which costs one small forward pass
per gradient step for models that read the state (``inputs: state``) and keeps every sample current, the
demos put in the buffer included. ``algo.relabel_rewards: true`` turns it on.

A replayed transition ``(s, a, s', terminated)`` gets what the env wrappers would give it now:

    r = R(s')                                  the reward model on the state reached, or the env's own
                                               reward as stored (``reward.type: env``), and with a
    r += γ·Φ(s')·(1 − terminated) − Φ(s)       shaping potential (``shaping.potential``)

so the buffer's reward column holds only what cannot be recomputed: the env's reward *before* shaping
(``info["unshaped_reward"]``). Frames are not stored, so both models must read states, and a post-processed
reward (smoothing, running normalisation) depends on more than one transition; both are refused with the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from roboreward.errors import ConfigError
from roboreward.rewards.base import RewardBatch, RewardModel
from roboreward.rewards.postprocess import RewardPostprocessor
from roboreward.rewards.shaping import UNSHAPED_KEY, shaping_term


@dataclass
class Relabeller:
    """The reward of replayed transitions under the current models (see the module docstring).

    :param reward_model: the reward section's model; None when training on the env's reward (kept as stored).
    :param potential: the shaping potential Φ, or None.
    :param gamma: the learner's discount, which the shaping term must use.
    """

    reward_model: RewardModel | None
    potential: RewardModel | None
    gamma: float

    def __post_init__(self) -> None:
        for role, model in (("reward", self.reward_model), ("shaping.potential", self.potential)):
            if model is None:
                continue
            if getattr(model, "requires_frames", True):
                raise ConfigError(
                    f"algo.relabel_rewards: the {role} model ({model.name}) reads frames, which the replay buffer does "
                    f"not keep; give it the state ({role}.inputs: state) or set algo.relabel_rewards: false"
                )
            if RewardPostprocessor.from_config(model.config, n_envs=1) is not None:
                raise ConfigError(
                    f"algo.relabel_rewards: {role}.normalize / smoothing_window make a reward depend on the steps "
                    f"around it, which one replayed transition cannot recompute; turn them off or the relabelling"
                )
        if self.reward_model is None and self.potential is None:
            raise ConfigError("algo.relabel_rewards: there is nothing to relabel (env reward, no shaping); "
                              "set algo.relabel_rewards: false")

    def __call__(self, observations: Any, next_observations: Any, terminated: np.ndarray,
                 stored: np.ndarray) -> np.ndarray:
        """Rewards ``float32 [B]`` of a batch; ``stored`` is the buffer's reward column (the unshaped env reward)."""
        rewards = (stored.astype(np.float64) if self.reward_model is None
                   else self.reward_model(RewardBatch(observations=next_observations)).astype(np.float64))
        if self.potential is not None:
            batch = RewardBatch(observations=concatenate(observations, next_observations))
            phi = self.potential(batch)
            rewards += shaping_term(phi[: len(terminated)], phi[len(terminated):], terminated, self.gamma)
        return rewards.astype(np.float32)


def concatenate(a: Any, b: Any) -> Any:
    """Batch ``a`` then batch ``b`` along the first axis: arrays, tensors, or dicts of them; None stays None
    (a field a replay buffer does not fill, such as SB3's n-step discounts)."""
    if a is None:
        return None
    if isinstance(a, dict):
        return {key: concatenate(a[key], b[key]) for key in a}
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    return np.concatenate([a, b])


def _numpy(x: Any) -> Any:
    if isinstance(x, dict):
        return {key: value.detach().cpu().numpy() for key, value in x.items()}
    return x.detach().cpu().numpy()


class _Relabelling:
    """Replay buffer behaviour: store the unshaped reward, relabel each sampled batch (when a relabeller is set)."""

    relabeller: Relabeller | None = None

    def add(self, obs, next_obs, action, reward, done, infos: list[dict[str, Any]]) -> None:
        if self.relabeller is not None:
            reward = np.array([info.get(UNSHAPED_KEY, r) for info, r in zip(infos, np.asarray(reward).reshape(-1))],
                              dtype=np.float32)
        super().add(obs, next_obs, action, reward, done, infos)

    def _get_samples(self, batch_inds: np.ndarray, env=None):
        samples = super()._get_samples(batch_inds, env)
        if self.relabeller is None:
            return samples
        if env is not None:
            raise ConfigError("algo.relabel_rewards: cannot relabel with VecNormalize's normalised rewards; "
                              "drop VecNormalize or the relabelling")
        stored = _numpy(samples.rewards).reshape(-1)
        terminated = _numpy(samples.dones).reshape(-1)
        rewards = self.relabeller(_numpy(samples.observations), _numpy(samples.next_observations), terminated, stored)
        return samples._replace(rewards=torch.as_tensor(rewards.reshape(-1, 1), device=samples.rewards.device))


class RelabellingReplayBuffer(_Relabelling, ReplayBuffer):
    """SB3's :class:`ReplayBuffer`, relabelled as sampled (see the module docstring)."""


class RelabellingDictReplayBuffer(_Relabelling, DictReplayBuffer):
    """SB3's :class:`DictReplayBuffer` (``Dict`` observations), relabelled as sampled."""
