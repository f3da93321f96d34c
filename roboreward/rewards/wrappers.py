"""Put a :class:`RewardModel` in place of an env's reward, for one env or a vectorised set.

The env's own reward is never lost: it stays in ``info["true_reward"]`` (and the episode's sum in
``info["true_episode"]``), so every run can be scored against the ground truth it replaces.

The vectorised path has two halves, because SB3's vector envs reset finished envs *inside*
``step``: by the time the vector wrapper sees a step, a finished env already shows its next episode.

1. :class:`RenderInInfo` runs inside each env (and so inside each subprocess) and renders the frame
   of the state just reached into ``info["frame"]`` — before any auto-reset — and, at reset, the
   goal image of a goal-conditioned env into ``info["goal_frame"]``.
2. :class:`VecLearnedReward` gathers those frames from all envs and scores them with **one** batched
   call per step.

Example::

    model = make_reward_model(GoalImageRewardConfig())
    make = lambda: RenderInInfo(gym.make("roboreward/ArmReach-v0", render_mode="rgb_array"))
    venv = VecLearnedReward(DummyVecEnv([make] * 4), model)   # 4 frames scored per call
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from roboreward.rewards.base import RewardBatch, RewardModel

FRAME_KEY = "frame"
GOAL_FRAME_KEY = "goal_frame"


def _put(info: dict[str, Any], key: str, value: Any) -> None:
    if key in info:
        raise KeyError(f"info already has a {key!r} entry; refusing to overwrite it (wrap the env only once)")
    info[key] = value


class RenderInInfo(gym.Wrapper):
    """Render each reached state into ``info["frame"]`` and, at reset, the goal into ``info["goal_frame"]``.

    The goal is rendered only for envs that define ``render_goal()`` (goal-conditioned envs).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"{env.spec.id if env.spec else env}: make the env with render_mode='rgb_array' to render frames")
        self._has_goal = callable(getattr(env.unwrapped, "render_goal", None))

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        _put(info, FRAME_KEY, self.env.render())
        if self._has_goal:
            _put(info, GOAL_FRAME_KEY, self.env.unwrapped.render_goal())
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        _put(info, FRAME_KEY, self.env.render())
        return obs, reward, terminated, truncated, info


class LearnedReward(gym.Wrapper):
    """Replace one env's reward by a reward model's; keep the env's in ``info["true_reward"]``."""

    def __init__(self, env: gym.Env, model: RewardModel):
        super().__init__(RenderInInfo(env) if model.requires_frames else env)
        self.model = model
        self._goal_frame: np.ndarray | None = None

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._goal_frame = info.get(GOAL_FRAME_KEY)
        return obs, info

    def step(self, action):
        obs, true_reward, terminated, truncated, info = self.env.step(action)
        frame = info.get(FRAME_KEY)
        batch = RewardBatch(
            frames=None if frame is None else frame[None],
            observations=np.asarray(obs)[None],
            goal_frames=None if self._goal_frame is None else self._goal_frame[None],
        )
        reward = float(self.model(batch)[0])
        _put(info, "true_reward", float(true_reward))
        _put(info, "learned_reward", reward)
        return obs, reward, terminated, truncated, info


class VecLearnedReward(VecEnvWrapper):
    """Score all envs of a vector env with one reward-model call per step.

    Envs must be wrapped in :class:`RenderInInfo` when the model reads frames. Adds to each info
    ``true_reward`` (the env's reward for this step) and, at an episode's end, ``true_episode``:
    ``{"r": true return, "l": length}``. Frames are removed from the infos once scored, so they are
    not carried into callbacks and buffers.

    With ``model=None`` the env's reward passes through unchanged but the same info keys are added,
    so training on the true reward is logged and evaluated exactly like training on a learned one.
    """

    def __init__(self, venv: VecEnv, model: RewardModel | None):
        super().__init__(venv)
        self.model = model
        self._goal_frames: list[np.ndarray | None] = [None] * self.num_envs
        self._true_returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self):
        obs = self.venv.reset()
        for i, info in enumerate(self.venv.reset_infos):
            self._take_reset_info(i, info)
        self._true_returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_wait(self):
        obs, true_rewards, dones, infos = self.venv.step_wait()
        frames = [info.pop(FRAME_KEY, None) for info in infos]
        rewards = true_rewards if self.model is None else self._score(obs, frames, dones, infos)

        self._true_returns += true_rewards
        self._lengths += 1
        for i, (info, done) in enumerate(zip(infos, dones)):
            _put(info, "true_reward", float(true_rewards[i]))
            if done:
                _put(info, "true_episode", {"r": float(self._true_returns[i]), "l": int(self._lengths[i])})
                self._true_returns[i] = 0.0
                self._lengths[i] = 0
                self._take_reset_info(i, self.venv.reset_infos[i])
        return obs, rewards, dones, infos

    def _score(self, obs: np.ndarray, frames: list, dones: np.ndarray, infos: list[dict]) -> np.ndarray:
        assert self.model is not None
        # A finished env's obs is already its next episode's first; score the state it ended in.
        observations = np.stack([info["terminal_observation"] if d else o for o, d, info in zip(obs, dones, infos)])
        if self.model.requires_frames and any(f is None for f in frames):
            raise RuntimeError("the reward model reads frames but the envs render none: wrap each env in RenderInInfo")
        goals = self._goal_frames
        batch = RewardBatch(
            frames=np.stack(frames) if self.model.requires_frames else None,
            observations=observations,
            goal_frames=np.stack(goals) if all(g is not None for g in goals) else None,  # type: ignore[arg-type]
        )
        return self.model(batch)

    def _take_reset_info(self, i: int, info: dict[str, Any]) -> None:
        info.pop(FRAME_KEY, None)
        self._goal_frames[i] = info.pop(GOAL_FRAME_KEY, None)
