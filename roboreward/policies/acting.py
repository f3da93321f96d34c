"""Acting with a trained SB3 model one step at a time, recurrent or not.

``model.predict(obs)`` is all a feed-forward policy needs. A recurrent one (``algo.name: recurrent_ppo``) also
needs its LSTM state from the step before and to be told where episodes start, or it acts on a memory of
another episode. :class:`Actor` carries both, so evaluation, the crowd test set and deployment call every policy
the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.utils import is_vectorized_observation


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


__all__ = ["Actor"]
