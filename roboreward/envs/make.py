"""Build envs from an :class:`~roboreward.experiment.EnvConfig`: one for evaluation, a vector for training.

The training stack, outermost first::

    VecMonitor              episode stats of the reward the agent optimises (SB3's rollout/ep_rew_mean)
    VecLearnedReward        one batched reward-model call per step; env reward kept in info
    DummyVecEnv | SubprocVecEnv
      RenderInInfo          frame of each reached state (and the goal image at reset) into info
        TimeLimit(env)      from gym.make
"""

from __future__ import annotations

from typing import Callable

import gymnasium as gym
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

import roboreward.envs  # noqa: F401  (registers the ids)
from roboreward.experiment import EnvConfig
from roboreward.rewards.base import RewardModel
from roboreward.rewards.wrappers import RenderInInfo, VecLearnedReward


def make_env(config: EnvConfig, render: bool = True, **overrides) -> gym.Env:
    """One env, with the configured render options when ``render`` is set."""
    if config.id not in gym.registry:
        ours = sorted(k for k in gym.registry if k.startswith("roboreward/"))
        raise ValueError(f"env.id {config.id!r} is not registered; roboreward's envs are {ours} (see `roboreward envs`)")
    kwargs = dict(config.kwargs)
    if render:
        r = config.render
        kwargs.update(
            render_mode="rgb_array", width=r.width, height=r.height, camera=r.camera,
            shadows=r.shadows, reflections=r.reflections, multisample=r.multisample,
        )
    kwargs.update(overrides)
    try:
        return gym.make(config.id, **kwargs)
    except TypeError as e:
        raise ValueError(f"env {config.id!r} rejected its arguments {sorted(kwargs)}: {e}; check env.kwargs") from e


def make_vec_env(config: EnvConfig, reward_model: RewardModel | None, seed: int) -> VecEnv:
    """The training vector env; ``reward_model=None`` trains on the env's own reward."""
    render = reward_model is not None and reward_model.requires_frames

    def factory(rank: int) -> Callable[[], gym.Env]:
        def _init() -> gym.Env:
            env = make_env(config, render=render)
            env.action_space.seed(seed + rank)
            return RenderInInfo(env) if render else env

        return _init

    fns = [factory(i) for i in range(config.n_envs)]
    venv: VecEnv = SubprocVecEnv(fns, start_method="forkserver") if config.vectorization == "subproc" else DummyVecEnv(fns)
    venv.seed(seed)  # each env is reset with seed + its index
    return VecMonitor(VecLearnedReward(venv, reward_model))
