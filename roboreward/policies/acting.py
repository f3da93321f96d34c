"""Acting with a trained SB3 model one step at a time, recurrent or not.

``model.predict(obs)`` is all a feed-forward policy needs. A recurrent one (``algo.name: recurrent_ppo``) also
needs its LSTM state from the step before and to be told where episodes start, or it acts on a memory of
another episode. :class:`Actor` carries both, so evaluation, the crowd test set and deployment call every policy
the same way. :func:`run_episode` plays one seeded episode with it and keeps what evaluation and validation
score: the learned and the true reward of every step, success at the last step and at any step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.utils import is_vectorized_observation

from roboreward.errors import NonFiniteError


class Actor:
    """Actions of ``model`` for observations given one step at a time (one env, or a batch of envs).

    :param deterministic: the policy's mean action (evaluation, deployment) rather than a sample.
    """

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        self.model = model
        self.deterministic = deterministic
        self.recurrent = hasattr(model.policy, "lstm_actor")  # sb3-contrib's RecurrentActorCriticPolicy
        self._state: Any = None

    def reset(self) -> None:
        """A new episode starts (every env): the next call begins from a fresh LSTM state."""
        self._state = None

    def __call__(self, observation: Any, episode_start: np.ndarray | None = None) -> np.ndarray:
        """The action(s) for ``observation``; ``episode_start`` ``[n_envs]`` marks envs whose episode begins now
        (default: all of them on the first call after :meth:`reset`, none after)."""
        if not self.recurrent:
            return self.model.predict(observation, deterministic=self.deterministic)[0]
        if episode_start is None:
            episode_start = np.full(self._n_envs(observation), self._state is None)
        action, self._state = self.model.predict(observation, state=self._state, episode_start=episode_start,
                                                 deterministic=self.deterministic)
        return action

    def _n_envs(self, observation: Any) -> int:
        space = self.model.observation_space
        if not is_vectorized_observation(observation, space):
            return 1
        first = next(iter(observation.values())) if isinstance(observation, dict) else observation
        return len(first)


@dataclass
class Episode:
    learned: list[float] = field(default_factory=list)
    true: list[float] = field(default_factory=list)
    success: bool = False  # at the last step: the task is done and stays done
    success_any: bool = False  # at any step (Meta-World's benchmark convention)
    metrics: dict[str, float] | None = None  # the env's own episode metrics (info["metrics"]), if it has any


def run_episode(env: Any, actor: Actor, seed: int, on_step: Callable[[dict, Episode], None] | None = None) -> Episode:
    """One episode of ``env`` (a gymnasium env; a :class:`~roboreward.rewards.wrappers.LearnedReward` one gives the
    learned reward, its ``info["true_reward"]`` the env's) reset with ``seed``, acted in by ``actor``;
    ``on_step(info, episode)`` after every step (a video recorder). A reward that is not finite stops it."""
    obs, info = env.reset(seed=seed)
    actor.reset()
    episode = Episode()
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(actor(obs))
        done = terminated or truncated
        episode.learned.append(float(reward))
        episode.true.append(float(info.get("true_reward", reward)))
        if not (math.isfinite(episode.learned[-1]) and math.isfinite(episode.true[-1])):
            raise NonFiniteError(
                f"episode seeded {seed}, step {len(episode.true)}: the reward is not finite (learned "
                f"{episode.learned[-1]}, true {episode.true[-1]}); check the policy and the config's reward section"
            )
        episode.success = bool(info.get("is_success", False))
        episode.success_any |= episode.success
        if done and isinstance(info.get("metrics"), dict):
            episode.metrics = info["metrics"]
        if on_step is not None:
            on_step(info, episode)
    return episode


__all__ = ["Actor", "Episode", "run_episode"]
