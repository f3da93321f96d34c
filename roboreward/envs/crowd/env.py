"""``roboreward/CrowdNav-v0``: a robot crossing a crowd, as a gymnasium env and as a batched SB3 VecEnv.

:class:`CrowdNavVecEnv` steps ``n_envs`` worlds in one call (:class:`~roboreward.envs.crowd.sim.CrowdSim`)
with SubprocVecEnv's semantics: finished envs reset themselves, their last observation in
``info["terminal_observation"]``, a time limit marked ``info["TimeLimit.truncated"]``. :class:`CrowdNavEnv`
is one such world behind the plain gymnasium API (``gym.make``). Env ``i`` of a VecEnv seeded ``s`` runs
exactly as a ``CrowdNavEnv`` reset with seed ``s + i``.

Observations (a ``Dict``, float32, everything in the robot's frame: x ahead, y to the left):

- ``robot`` ``[8]``: goal x, y; velocity x, y; cos and sin of the heading in the world; radius; max speed.
- ``humans`` ``[H, 5]``: each seen person's position x, y, velocity x, y, radius; nearest first, rows of
  people not seen are zeros; ``humans_mask`` ``[H]`` says which rows are people. A person is seen within
  ``sensing.sensor_range`` (surface to surface) and the field of view, optionally not behind obstacles
  (``occlusion``), with position noise and random misses as options.
- ``lidar`` ``[R]``: distances (m) along ``sensing.lidar_rays`` rays from straight behind, counter-clockwise
  (:func:`~roboreward.envs.crowd.lidar.ray_angles`), to walls and obstacles (and people if ``lidar_sees_humans``).
- ``obstacles`` ``[T, 8]``: each box as its 4 corners (x, y), each wall as a segment (its 2 ends, repeated);
  ``obstacles_mask`` ``[T]``. Present when the scenario has walls or boxes.

``info`` has every reward term (``reward_success``, ``reward_collision``, ... : the reward is their sum), ``event`` ("", "success", "collision_human",
"collision_obstacle", "collision_wall"), ``is_success`` (the goal reached this step), and the episode's
``metrics`` (:mod:`~roboreward.envs.crowd.metrics`) on its last step. ``render()`` draws the world from above
(RGB); rendering reads the state and draws no random numbers, so it never changes the simulation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from roboreward.envs.crowd import scenarios
from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.lidar import lidar_scan, line_of_sight
from roboreward.envs.crowd.metrics import EpisodeMetrics
from roboreward.envs.crowd.orca import Obstacles
from roboreward.envs.crowd.render import draw_topdown, view_half_width
from roboreward.envs.crowd.rewards import CrowdReward
from roboreward.envs.crowd.sensors import observe_kernel
from roboreward.envs.crowd.sim import EVENT_NAMES, SUCCESS, CrowdSim
from roboreward.errors import ConfigError
from roboreward.rewards.base import flat_observations

ROBOT_FEATURES = 8
HUMAN_FEATURES = 5


class CrowdNavBatch:
    """``n_envs`` crowd worlds: the simulator, the reward, the sensors and the episode metrics together."""

    def __init__(self, config: CrowdNavConfig, n_envs: int) -> None:
        self.config = config
        self.n_envs = n_envs
        self.sim = CrowdSim(config, n_envs)
        self.reward = CrowdReward(config, n_envs)
        self.metrics = EpisodeMetrics(config, n_envs)
        s = config.sensing
        self.n_humans = s.max_humans or max(config.scenario.max_humans, 1)  # one masked row when nobody is there
        most = scenarios.token_capacity(config.scenario)
        if s.max_obstacle_tokens is not None and s.max_obstacle_tokens < most:
            raise ConfigError(f"sensing.max_obstacle_tokens: {s.max_obstacle_tokens} rows cannot hold the {most} "
                              f"obstacle tokens a {config.scenario.name} layout can have; raise it to >= {most} or "
                              f"leave it null")
        self.n_tokens = s.max_obstacle_tokens or most
        self.tokens = np.zeros((n_envs, max(self.n_tokens, 1), 4, 2))
        self.token_mask = np.zeros((n_envs, max(self.n_tokens, 1)), dtype=bool)
        self.observation_space = self._observation_space()
        self._no_noise = np.zeros((n_envs, config.scenario.max_humans, 2))
        self.discrete = discrete_action_table(config) if config.robot.actions == "discrete" else None
        if self.discrete is None:
            self.action_space: spaces.Space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        else:
            self.action_space = spaces.Discrete(len(self.discrete))

    def _observation_space(self) -> spaces.Dict:
        c, s = self.config, self.config.sensing
        # No two points can be further apart than the view plus what the fastest body covers in an episode.
        far = np.float32(2 * view_half_width(c.scenario) * np.sqrt(2) + 2 * (c.robot.max_speed + 3.0) * c.time_limit)
        space: dict[str, spaces.Space] = {
            "robot": spaces.Box(-far, far, (ROBOT_FEATURES,), np.float32),
            "humans": spaces.Box(-far, far, (self.n_humans, HUMAN_FEATURES), np.float32),
            "humans_mask": spaces.MultiBinary(self.n_humans),
        }
        if s.lidar_rays:
            space["lidar"] = spaces.Box(0.0, s.lidar_range, (s.lidar_rays,), np.float32)
        if self.n_tokens:
            space["obstacles"] = spaces.Box(-far, far, (self.n_tokens, 8), np.float32)
            space["obstacles_mask"] = spaces.MultiBinary(self.n_tokens)
        return spaces.Dict(space)

    # --- episodes ------------------------------------------------------------------------------------------

    def reset(self, b: int, seed: int | None = None) -> dict[str, Any]:
        """Start a new episode in env ``b`` (reseeding its generator when ``seed`` is given); its reset info."""
        if seed is not None:
            self.sim.seed(b, seed)
        self.sim.reset(b)
        layout = self.sim.layouts[b]
        assert layout is not None
        self.reward.reset(b, float(self.sim.goal_distance()[b]))
        self.metrics.reset(b, self.sim)
        # Tokens: each box its 4 corners; each wall edge its 2 ends, repeated (p, q, q, p).
        tokens = [p[None] for p, wall in zip(layout.polygons, layout.is_wall) if not wall]
        for polygon, wall in zip(layout.polygons, layout.is_wall):
            if wall:
                ends = polygon[1:] if len(polygon) == 2 else np.roll(polygon, -1, axis=0)
                starts = polygon[: len(ends)]
                tokens.append(np.stack([starts, ends, ends, starts], axis=1))
        tokens_arr = np.concatenate(tokens) if tokens else np.zeros((0, 4, 2))
        self.token_mask[b] = False
        self.tokens[b, : len(tokens_arr)] = tokens_arr
        self.token_mask[b, : len(tokens_arr)] = True
        return {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One step of every env: rewards, terminated, truncated ``[B]`` and the infos (no auto-reset here)."""
        actions = np.asarray(actions)
        if self.discrete is not None and actions.size == self.n_envs:  # indices; [B, 2] actions are taken as they are
            actions = self._continuous(actions.reshape(self.n_envs))
        actions = np.asarray(actions, dtype=np.float64).reshape(self.n_envs, 2)
        if not np.isfinite(actions).all():
            raise ValueError(f"actions must be finite numbers; got {actions[~np.isfinite(actions).all(1)][0]}")
        result = self.sim.step(actions)
        terms = self.reward(result)
        rewards = np.sum(list(terms.values()), axis=0)
        finished = self.metrics.step(self.sim, result)
        terminated, truncated = result.terminated, result.truncated
        infos: list[dict[str, Any]] = []
        for b in range(self.n_envs):
            info: dict[str, Any] = {f"reward_{k}": float(v[b]) for k, v in terms.items()}
            info["event"] = EVENT_NAMES[result.event[b]]
            info["is_success"] = bool(result.event[b] == SUCCESS)
            if terminated[b] or truncated[b]:
                info["metrics"] = finished[b]
            infos.append(info)
        return rewards.astype(np.float32), terminated, truncated, infos

    def _continuous(self, indices: np.ndarray) -> np.ndarray:
        """Discrete actions as the continuous ones they stand for (unicycle: changes of the current speed and turn)."""
        if not (np.issubdtype(indices.dtype, np.integer) and (indices >= 0).all() and (indices < len(self.discrete)).all()):
            raise ValueError(f"discrete actions are integers in [0, {len(self.discrete)}); got {indices}")
        table = self.discrete[indices]
        robot = self.config.robot
        if robot.kinematics == "holonomic":
            return table
        speed = np.clip(self.sim.forward_speed + table[:, 0], -robot.max_reverse, robot.max_speed)
        turn = np.clip(self.sim.turn_rate + table[:, 1], -robot.max_angular, robot.max_angular)
        forward = np.where(speed >= 0, speed / robot.max_speed, speed / max(robot.max_reverse, 1e-9))
        return np.stack([forward, turn / robot.max_angular], axis=-1)

    # --- sensing -------------------------------------------------------------------------------------------

    def observe(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The observations of envs ``rows`` (default: all), as a dict of ``[len(rows), ...]`` arrays."""
        sim, s = self.sim, self.config.sensing
        rows = np.arange(self.n_envs) if rows is None else np.asarray(rows, dtype=np.int64)
        n = len(rows)
        people = sim.positions[:, 1:]
        allowed = np.ones(people.shape[:2], dtype=bool)
        if s.occlusion:
            allowed[rows] = line_of_sight(sim.positions[rows, 0], people[rows], self._obstacles(rows))
        if s.dropout > 0:
            for b in rows:
                allowed[b] &= sim.rngs[b].random(people.shape[1]) >= s.dropout
        noise = self._no_noise
        if s.position_noise > 0:
            noise = np.zeros_like(people)
            for b in rows:
                noise[b] = sim.rngs[b].normal(0.0, s.position_noise, people.shape[1:])
        robot = np.empty((n, ROBOT_FEATURES), dtype=np.float32)
        humans = np.empty((n, self.n_humans, HUMAN_FEATURES), dtype=np.float32)
        mask = np.empty((n, self.n_humans), dtype=np.int8)
        tokens = np.empty((n, self.n_tokens, 8), dtype=np.float32)
        observe_kernel(rows, sim.positions, sim.velocities, sim.goals, sim.radii, sim.speeds, sim.active, sim.heading,
                       noise, allowed, s.sensor_range, s.fov, self.tokens, self.token_mask, robot, humans, mask, tokens)
        obs = {"robot": robot, "humans": humans, "humans_mask": mask}
        if s.lidar_rays:
            lidar = lidar_scan(sim.positions[rows, 0], sim.heading[rows], self._obstacles(rows), people[rows],
                               sim.radii[rows, 1:], sim.active[rows, 1:] & s.lidar_sees_humans,
                               n_rays=s.lidar_rays, fov=s.lidar_fov, max_range=s.lidar_range)
            obs["lidar"] = lidar.astype(np.float32)
        if self.n_tokens:
            obs["obstacles"] = tokens
            obs["obstacles_mask"] = self.token_mask[rows, : self.n_tokens].astype(np.int8)
        return obs

    def _obstacles(self, rows: np.ndarray) -> Obstacles:
        o = self.sim.obstacles
        return o if len(rows) == self.n_envs else o.rows(rows)

    def render(self, b: int) -> np.ndarray:
        return draw_topdown(self.sim, b, self.config.render_size)


class CrowdNavVecEnv(VecEnv):
    """``n_envs`` crowd-navigation envs stepped in one call, with SubprocVecEnv's semantics.

    :param n_envs: how many worlds.
    :param render_mode: ``"rgb_array"`` to render (``get_images``); frames are also put in each step's
        ``info["frame"]`` (and the reset infos) when ``frames_in_info`` is set, for reward models that read pixels.
    :param kwargs: the env's configuration (:class:`~roboreward.envs.crowd.config.CrowdNavConfig`'s keys).
    """

    def __init__(self, n_envs: int = 1, render_mode: str | None = None, frames_in_info: bool = False,
                 width: int | None = None, height: int | None = None, camera: str | None = None, shadows: bool = False,
                 reflections: bool = False, multisample: int = 0, **kwargs: Any) -> None:
        if not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs must be an integer >= 1, got {n_envs!r}")
        kwargs = _render_size(kwargs, width, height, camera)
        self.config = CrowdNavConfig.from_kwargs(kwargs)
        self.batch = CrowdNavBatch(self.config, n_envs)
        self.render_mode = render_mode
        self.frames_in_info = frames_in_info
        super().__init__(n_envs, self.batch.observation_space, self.batch.action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seeds = self._seeds
        self.reset_infos = [self._with_frame(self.batch.reset(b, seeds[b]), b) for b in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return self.batch.observe()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        assert self._actions is not None, "step_async first"
        rewards, terminated, truncated, infos = self.batch.step(self._actions)
        done = terminated | truncated
        obs = self.batch.observe()
        if done.any():
            for b in np.nonzero(done)[0]:
                infos[b]["terminal_observation"] = {k: v[b].copy() for k, v in obs.items()}
                infos[b]["TimeLimit.truncated"] = bool(truncated[b] and not terminated[b])
                if self.frames_in_info:
                    infos[b]["frame"] = self.batch.render(b)  # the state reached, before the reset
                self.reset_infos[b] = self.batch.reset(b)
            fresh = self.batch.observe(np.nonzero(done)[0])
            for k in obs:
                obs[k][done] = fresh[k]
            for b in np.nonzero(done)[0]:
                self._with_frame(self.reset_infos[b], b)
        if self.frames_in_info:
            for b in np.nonzero(~done)[0]:
                infos[b]["frame"] = self.batch.render(b)
        return obs, rewards, done, infos

    def _with_frame(self, info: dict[str, Any], b: int) -> dict[str, Any]:
        if self.frames_in_info:
            info["frame"] = self.batch.render(b)
        return info

    def close(self) -> None:
        pass

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        if options and any(options if isinstance(options, list) else [options]):
            raise ValueError(f"the crowd env takes no reset options; got {options!r}")

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self.batch.render(b) for b in range(self.num_envs)]

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        raise AttributeError(f"the crowd envs share one configuration; cannot set {attr_name!r} per env")

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name == "render":
            return [self.batch.render(b) for b in self._get_indices(indices)]
        raise AttributeError(f"CrowdNavVecEnv has no per-env method {method_name!r}")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def orca_actions(self) -> np.ndarray:
        """What ORCA would command as the robot this step, as actions (the ORCA-as-robot baseline)."""
        from roboreward.envs.crowd.baselines import orca_actions

        return orca_actions(self.batch)


class CrowdNavEnv(gym.Env):
    """One crowd-navigation world behind the gymnasium API (``gym.make("roboreward/CrowdNav-v0")``).

    The time limit is the config's ``time_limit`` (``truncated`` at the last step, never ``terminated``).
    ``width``/``height``/``camera`` are the render options every roboreward env takes (see ``_render_size``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, width: int | None = None, height: int | None = None,
                 camera: str | None = None, shadows: bool = False, reflections: bool = False, multisample: int = 0,
                 **kwargs: Any) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        kwargs = _render_size(kwargs, width, height, camera)
        self.config = CrowdNavConfig.from_kwargs(kwargs)
        self.batch = CrowdNavBatch(self.config, 1)
        self.observation_space = self.batch.observation_space
        self.action_space = self.batch.action_space
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": round(1 / self.config.time_step)}
        self.max_steps = self.config.max_steps

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None and self.batch.sim.layouts[0] is None:
            seed = int(self.np_random.integers(2**63))  # a first reset without a seed draws one, as gymnasium does
        info = self.batch.reset(0, seed)
        return self._first(self.batch.observe()), info

    def step(self, action):
        if self.batch.sim.layouts[0] is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        rewards, terminated, truncated, infos = self.batch.step(np.asarray(action)[None])
        return self._first(self.batch.observe()), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), infos[0]

    def render(self):
        return self.batch.render(0) if self.render_mode == "rgb_array" else None

    def render_at(self, size: int) -> np.ndarray:
        """The world from above at ``size`` pixels, whatever the render size (videos for people)."""
        return draw_topdown(self.batch.sim, 0, size)

    def orca_action(self) -> np.ndarray:
        """What ORCA would command as the robot now, as an action (the ORCA-as-robot baseline)."""
        from roboreward.envs.crowd.baselines import orca_actions

        return orca_actions(self.batch)[0]

    # --- recording demonstrations (roboreward demos record crowd) ------------------------------------------

    cameras: ClassVar[tuple[str, ...]] = ("topdown",)

    def scripted_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The expert of ``roboreward demos record``: ORCA as the robot, from the true state."""
        return self.orca_action()

    def render_cameras(self, cameras: list[str]) -> dict[str, np.ndarray]:
        """The current state from each of ``cameras`` (the crowd world has one: ``topdown``)."""
        if any(c != "topdown" for c in cameras):
            raise ValueError(f"the crowd world has one view, 'topdown'; got {cameras}")
        return {camera: self.batch.render(0) for camera in cameras}

    def demo_layout(self) -> dict[str, Any]:
        """How a recorded step stores this env: the names of the flattened observation (its keys in sorted order,
        as :func:`~roboreward.rewards.base.flat_observations` joins them) and of the action."""
        n, tokens = self.batch.n_humans, self.batch.n_tokens
        names_of = {
            "robot": ["goal_x", "goal_y", "velocity_x", "velocity_y", "heading_cos", "heading_sin", "radius",
                      "max_speed"],
            "humans": [f"human{i}_{f}" for i in range(n) for f in ("x", "y", "vx", "vy", "radius")],
            "humans_mask": [f"human{i}_seen" for i in range(n)],
            "lidar": [f"lidar{j}" for j in range(self.config.sensing.lidar_rays)],
            "obstacles": [f"obstacle{t}_{c}{v}" for t in range(tokens) for v in range(4) for c in "xy"],
            "obstacles_mask": [f"obstacle{t}_present" for t in range(tokens)],
        }
        names = [name for key in sorted(self.observation_space.spaces) for name in names_of[key]]
        action = ["vx", "vy"] if self.config.robot.kinematics == "holonomic" else ["v", "omega"]
        return {"state_names": names, "action_names": action, "robot_type": f"{self.config.robot.kinematics}_base",
                "task_text": "reach the goal through the crowd"}

    def demo_state(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The observation flattened in :meth:`demo_layout`'s order."""
        return flat_observations({key: np.asarray(value)[None] for key, value in obs.items()})[0]

    @staticmethod
    def _first(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in obs.items()}


def discrete_action_table(config: CrowdNavConfig) -> np.ndarray:
    """``robot.actions: discrete``: holonomic, ``[81, 2]`` continuous actions (stop, 5 speeds x 16 directions);
    unicycle and diff-drive, ``[9, 2]`` changes (m/s, rad/s) of the current speed and turn rate."""
    if config.robot.kinematics == "holonomic":
        speeds = (np.exp((np.arange(5) + 1) / 5) - 1) / (np.e - 1)  # CrowdNav's exponential spacing, up to 1
        angles = np.arange(16) * 2 * np.pi / 16
        moves = [[s * np.cos(a), s * np.sin(a)] for s in speeds for a in angles]
        return np.array([[0.0, 0.0], *moves])
    return np.array([[dv, dw] for dv in (0.05, 0.0, -0.05) for dw in (0.1, 0.0, -0.1)])


def _render_size(kwargs: dict[str, Any], width: int | None, height: int | None, camera: str | None) -> dict[str, Any]:
    """The render options every roboreward env takes (``env.render``): width = height sets ``render_size``; the
    view is always from above (``camera`` None or "topdown"), and MuJoCo's shadows, reflections and
    multisampling do not apply to a 2-D world."""
    if camera not in (None, "topdown"):
        raise ValueError(f"the crowd world has one view, 'topdown'; got camera={camera!r}")
    if width is not None or height is not None:
        if width != height:
            raise ValueError(f"the crowd world renders square images; got width={width}, height={height}: make them equal")
        kwargs = {**kwargs, "render_size": width}
    return kwargs
