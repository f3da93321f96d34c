"""Build envs from an :class:`~roboreward.experiment.EnvConfig`: one for evaluation, a vector for training.

The training stack, outermost first::

    VecMonitor              episode stats of the reward the agent optimises (SB3's rollout/ep_rew_mean)
    VecPotentialShaping     with a shaping potential Φ only: r' = r + γΦ(s') − Φ(s), one Φ call per step
      _VecRelayFrames       hands the frames VecLearnedReward consumed back to the shaping wrapper
    VecLearnedReward        one batched reward-model call per step; env reward kept in info
    DummyVecEnv | SubprocVecEnv | RayVecEnv    env.backend: ray puts the envs (and what wraps each) in Ray actors
      _RelayFrames          with shaping only: a second reference to each frame, for the wrapper above
        RenderInInfo        frame of each reached state (and the goal image at reset) into info
          MultiViewRender   with env.render.cameras only: the cameras side by side in each frame
            TimeLimit(env)  from gym.make
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import gymnasium as gym
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper, VecMonitor

import roboreward.envs  # noqa: F401  (registers the ids)
from roboreward.errors import ConfigError
from roboreward.experiment import EnvConfig, RayConfig
from roboreward.rewards.base import RewardModel
from roboreward.rewards.shaping import VecPotentialShaping
from roboreward.rewards.wrappers import FRAME_KEY, GOAL_FRAME_KEY, RenderInInfo, VecLearnedReward

# Info keys under which _RelayFrames keeps the frames for the shaping wrapper.
_RELAYED = {FRAME_KEY: "shaping_frame", GOAL_FRAME_KEY: "shaping_goal_frame"}


def make_env(config: EnvConfig, render: bool = True, **overrides) -> gym.Env:
    """One env, with the configured render options when ``render`` is set."""
    if config.id not in gym.registry:
        ours = sorted(k for k in gym.registry if k.startswith("roboreward/"))
        raise ConfigError(f"env.id {config.id!r} is not registered; roboreward's envs are {ours} (see `roboreward envs`)")
    kwargs = dict(config.kwargs)
    if render:
        r = config.render
        kwargs.update(
            render_mode="rgb_array", width=r.width, height=r.height, camera=r.camera,
            shadows=r.shadows, reflections=r.reflections, multisample=r.multisample,
        )
    kwargs.update(overrides)
    try:
        env = gym.make(config.id, **kwargs)
    except TypeError as e:
        raise ConfigError(f"env {config.id!r} rejected its arguments {sorted(kwargs)}: {e}; check env.kwargs") from e
    if render and config.render.cameras:
        from roboreward.envs.views import MultiViewRender

        env = MultiViewRender(env, config.render.cameras)
    return env


def make_vec_env(
    config: EnvConfig,
    reward_model: RewardModel | None,
    seed: int,
    *,
    potential: RewardModel | None = None,
    gamma: float | None = None,
    ray: RayConfig | None = None,
) -> VecEnv:
    """The training vector env.

    :param reward_model: the reward trained on; ``None`` = the env's own reward.
    :param potential: ``Φ`` of potential-based shaping (``shaping.potential``), or ``None`` for none.
    :param gamma: the learner's discount, used by the shaping term; required with ``potential``.
    :param ray: the cluster of ``env.backend: ray`` (default: Ray on this machine).
    """
    models = [m for m in (reward_model, potential) if m is not None]
    render = any(m.requires_frames for m in models)
    for model in models:
        model.check_ready()  # a model with nothing to score with stops here, before the envs start
        _check_views(model, config)
    if potential is not None and gamma is None:
        raise ValueError("shaping needs the learner's discount: pass gamma (the algorithm's gamma)")
    relay = potential is not None and render

    def factory(rank: int) -> Callable[[], gym.Env]:
        def _init() -> gym.Env:
            env = make_env(config, render=render)
            env.action_space.seed(seed + rank)
            if not render:
                return env
            env = RenderInInfo(env)
            return _RelayFrames(env) if relay else env

        return _init

    fns = [factory(i) for i in range(config.n_envs)]
    if config.vectorization == "batched":
        venv: VecEnv = batched_vec_env(config, render)
        if relay:
            venv = _VecKeepFrames(venv)
    elif config.backend == "ray":
        # Frames stay in the object store when every model that reads them fetches them from there itself.
        apart = render and all(getattr(m, "fetches_frames", False) for m in models if m.requires_frames)
        venv = ray_vec_env(fns, ray or RayConfig(), frames_apart=apart)
    elif config.vectorization == "subproc":
        venv = SubprocVecEnv(fns, start_method="forkserver")
    else:
        venv = DummyVecEnv(fns)
    venv.seed(seed)  # each env is reset with seed + its index
    venv = VecLearnedReward(venv, reward_model)
    if potential is not None:
        assert gamma is not None
        venv = VecPotentialShaping(_VecRelayFrames(venv) if relay else venv, potential, gamma)
    return VecMonitor(venv)


def batched_vec_env(config: EnvConfig, render: bool) -> VecEnv:
    """The env's own batched VecEnv (``env.vectorization: batched``), frames in the infos when ``render``."""
    from roboreward.envs import BATCHED_ENVS

    if config.id not in BATCHED_ENVS:
        raise ConfigError(f"env.vectorization: batched needs an env with a batched simulator ({sorted(BATCHED_ENVS)}); "
                          f"{config.id} has none: use dummy or subproc")
    if config.backend != "local":
        raise ConfigError("env.vectorization: batched steps every env in this process; set env.backend: local")
    module, name = BATCHED_ENVS[config.id].split(":")
    cls = getattr(importlib.import_module(module), name)
    r = config.render
    size = {"width": r.width, "height": r.height, "camera": r.camera} if render else {}  # else the env's own
    try:
        return cls(config.n_envs, render_mode="rgb_array" if render else None, frames_in_info=render, **size,
                   **config.kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"env {config.id!r} rejected its arguments: {e}; check env.kwargs and env.render") from e


class _VecKeepFrames(VecEnvWrapper):
    """:class:`_RelayFrames` for a batched VecEnv: a second reference to each frame, for the shaping wrapper."""

    def reset(self):
        obs = self.venv.reset()
        for info in self.venv.reset_infos:
            _keep(info)
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            _keep(info)
        for info, done in zip(self.venv.reset_infos, dones):
            if done:
                _keep(info)
        return obs, rewards, dones, infos


def ray_vec_env(fns: list[Callable[[], gym.Env]], ray: RayConfig, frames_apart: bool = False) -> VecEnv:
    """The envs of ``fns`` in Ray rollout actors on the cluster ``ray`` names (started here when it names none)."""
    from roboreward.distributed.cluster import connect
    from roboreward.distributed.vec_env import RayVecEnv

    connect(ray, cpus_needed=ray.actors(len(fns)) * ray.cpus_per_actor + 1)  # + 1: a reward server's CPU
    return RayVecEnv(
        fns, envs_per_actor=ray.envs_per_actor, cpus_per_actor=ray.cpus_per_actor, max_restarts=ray.max_restarts,
        frame_keys=(*_RELAYED, *_RELAYED.values()) if frames_apart else None,
        state_frame_keys=(FRAME_KEY, _RELAYED[FRAME_KEY]),
    )


def _check_views(model: RewardModel, config: EnvConfig) -> None:
    """A multi-view model needs its cameras tiled in its order: say so before any step is taken."""
    cameras = list(getattr(model, "required_cameras", None) or [])
    if len(cameras) > 1 and cameras != list(config.render.cameras):
        raise ConfigError(
            f"the {model.name} model reads the views {cameras} side by side, but env.render.cameras is "
            f"{list(config.render.cameras)}; set env.render.cameras: [{', '.join(cameras)}]"
        )


class _RelayFrames(gym.Wrapper):
    """Keep a second reference to ``info["frame"]`` (and ``info["goal_frame"]``) under another key.

    :class:`VecLearnedReward` takes the frames out of the infos once it has scored them; the shaping
    wrapper above it needs them too. The copy is a reference, not a second image (and pickled once when
    a subprocess sends the info).
    """

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, _keep(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, _keep(info)


def _keep(info: dict[str, Any]) -> dict[str, Any]:
    for key, relayed in _RELAYED.items():
        if key in info:
            info[relayed] = info[key]
    return info


class _VecRelayFrames(VecEnvWrapper):
    """Put the frames :class:`_RelayFrames` kept back under their own keys, in step and reset infos.

    Reset infos are read from the innermost vector env, as :class:`VecLearnedReward` leaves them there.
    """

    def reset(self):
        obs = self.venv.reset()
        self.reset_infos = [_restore(info) for info in self.venv.unwrapped.reset_infos]
        return obs

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            _restore(info)
        self.reset_infos = [_restore(info) for info in self.venv.unwrapped.reset_infos]
        return obs, rewards, dones, infos


def _restore(info: dict[str, Any]) -> dict[str, Any]:
    for key, relayed in _RELAYED.items():
        if relayed in info:
            value = info.pop(relayed)
            info.setdefault(key, value)
    return info
