"""One Meta-World v3 manipulation task (a Sawyer arm at a table) with a new goal every episode.

## Description
Wraps a single task of `Meta-World <https://metaworld.farama.org>`_ 3.1 (``reach-v3``,
``push-v3``, ``door-open-v3``, ...) as a plain gymnasium env with roboreward's conventions: fixed
length episodes, ``info["is_success"]``, seeded resets, and frames from
:class:`roboreward.envs.rendering.FrameRenderer` so render options work as for every other env.

The object and goal positions are drawn afresh each episode from the task's own random-reset box
(what Meta-World's MT1 samples its 50 fixed goals from), with this env's seeded ``np_random``
rather than NumPy's global RNG. ``reset(seed=s)`` therefore gives the same object and goal
positions and the same first observation whatever ran before, and ``reset()`` without a seed
continues the seeded stream.

:meth:`MetaWorldEnv.scripted_action` is Meta-World's bundled hand-written expert for the task
(``metaworld.policies``), for recording demonstrations. :meth:`MetaWorldEnv.render_cameras`
renders the current state from several cameras at once, for multi-view datasets.

## Action space
``Box(-1, 1, (4,), float32)``: the end-effector's (x, y, z) displacement, 1 cm per unit per step
(a mocap target), and the gripper effort (-1 open, +1 closed).

## Observation space
``Box((39,), float64)`` with Meta-World's bounds: finite for the hand, the gripper and the goal,
infinite for the objects. The goal is observable (as in Meta-World's MT benchmarks), since it
changes every episode and the scripted expert reads it.

| idx   | observation                                                  | unit |
|-------|--------------------------------------------------------------|------|
| 0-2   | end-effector position (x, y, z)                              | m    |
| 3     | gripper opening, normalised to [0, 1]                        |      |
| 4-17  | object positions and quaternions (7 per object, zero-padded) | m, - |
| 18-35 | indices 0-17 of the previous step                            |      |
| 36-38 | goal position (x, y, z)                                      | m    |

## Rewards
``reward`` is Meta-World's own shaped reward (``reward_function_version="v2"``), between 0 and 10,
or with ``reward="sparse"`` its success flag alone (1 at a step where the task is done, else 0: the
baseline a learned reward has to beat when nobody writes a shaped one).
It is not a sum of parts, so it is reported whole as the one term ``reward_task``
(``reward == reward_task``). Meta-World's diagnostics come along in ``info`` as floats:
``success``, ``near_object``, ``grasp_success``, ``grasp_reward``, ``in_place_reward``,
``obj_to_target`` and ``unscaled_reward``, and ``is_success`` is ``bool(success)``. Step infos
carry these; the reset info is empty.

## Starting state
The arm starts at the task's home pose; objects and the goal are placed as described above.

## Episode end
No termination, not even on success: the registered ids truncate after 200 steps, so every
episode has the same length and learned-reward returns stay comparable. 200 rather than
Meta-World's ``max_path_length`` of 500 because the scripted experts first succeed after
35-110 steps on these six tasks, and with a learned reward every step costs a rendered frame.
``is_success`` is Meta-World's success *at that step*, and it can be lost again: the door-open
expert swings the door past its goal, so it succeeds around step 80-110 and no longer at step 200.
Meta-World's benchmarks count an episode as a success if ``success`` held at any step; roboreward's
evaluation reads the last step's ``is_success``. Used directly, without the registered time limit,
the env allows at most 500 steps between resets (Meta-World refuses more).

## Rendering
The goal and object marker sites stay visible in frames (for ``reach-v3`` the red sphere is the
only sign of the goal). Meta-World's fixed ``corner`` cameras are mounted upside down in its XML;
they are turned 180 degrees about their optical axis here, so frames come out upright. Cameras:
``corner3`` (the default: it sees the whole table, goals at its far end included, with the arm
in front of rather than over the objects), ``corner``, ``corner2``, ``corner4``, ``topview``,
``behindGripper`` and ``gripperPOV`` (the last two ride on the hand).

## Arguments
``task``: a Meta-World v3 task name (``metaworld.MT1.ENV_NAMES``); ``reward``: ``"dense"`` (Meta-World's
shaped reward) or ``"sparse"`` (the success flag); render options (``width``,
``height``, ``camera``, ``shadows``, ``reflections``, ``multisample``), see
:class:`roboreward.envs.rendering.RenderOptions`.

## Version history
- v3: first version (the number follows Meta-World's task version).
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# Import order matters: rendering chooses the GL backend (and loads Triton) before MuJoCo loads.
from roboreward.envs.rendering import FrameRenderer, RenderOptions, mujoco
from roboreward.errors import ConfigError

# isort: split
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.policies import ENV_POLICY_MAP

DEFAULT_CAMERA = "corner3"


def _turn_upside_down_cameras_upright(model: mujoco.MjModel, data: mujoco.MjData) -> None:
    """Rotate fixed world cameras whose image 'up' points at the floor by 180 deg about their view axis."""
    mujoco.mj_forward(model, data)
    half_turn = np.array([0.0, 0.0, 0.0, 1.0])  # pi about the camera's own z (its optical axis)
    for cam in range(model.ncam):
        if model.cam_bodyid[cam] != 0 or model.cam_mode[cam] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED:
            continue
        up = data.cam_xmat[cam].reshape(3, 3)[:, 1]  # camera y axis = image up, in world coordinates
        if up[2] < 0:
            turned = np.empty(4)
            mujoco.mju_mulQuat(turned, model.cam_quat[cam], half_turn)
            model.cam_quat[cam] = turned
    mujoco.mj_forward(model, data)


class MetaWorldEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}  # Meta-World: 5 x 2.5 ms per step
    default_camera = DEFAULT_CAMERA  # used when camera is None

    def __init__(
        self,
        task: str = "reach-v3",
        render_mode: str | None = None,
        width: int = 64,
        height: int = 64,
        camera: str | None = DEFAULT_CAMERA,
        shadows: bool = False,
        reflections: bool = False,
        multisample: int = 0,
        reward: str = "dense",
    ):
        if task not in ALL_V3_ENVIRONMENTS:
            raise ConfigError(f"task={task!r} is not a Meta-World v3 task; choose one of {sorted(ALL_V3_ENVIRONMENTS)}")
        if reward not in ("dense", "sparse"):
            raise ConfigError(f"reward={reward!r}: choose dense (Meta-World's shaped reward) or sparse (its success flag)")
        self.sparse = reward == "sparse"
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        self.task = task
        self.render_mode = render_mode
        self.render_options = RenderOptions(
            width=width, height=height, camera=camera, shadows=shadows, reflections=reflections, multisample=multisample
        )

        # The bare task class, set up the way Meta-World's goal-observable envs are, except that goals
        # are drawn from self.np_random (seeded_rand_vec) instead of NumPy's global RNG.
        mw = ALL_V3_ENVIRONMENTS[task](render_mode=None)
        mw._partially_observable = False
        del mw.sawyer_observation_space  # a cached property: recompute it with the goal's bounds
        mw._set_task_called = True
        mw._freeze_rand_vec = False
        mw.seeded_rand_vec = True
        self._mw = mw
        self.model: mujoco.MjModel = mw.model
        self.data: mujoco.MjData = mw.data
        _turn_upside_down_cameras_upright(self.model, self.data)
        self.cameras: list[str] = [
            mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(self.model.ncam)
        ]
        self._check_cameras([self.render_options.camera or DEFAULT_CAMERA])

        space = mw.sawyer_observation_space
        self.observation_space = spaces.Box(space.low.copy(), space.high.copy(), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._expert = ENV_POLICY_MAP[task]()
        self._renderers: dict[str, FrameRenderer] = {}

    # ---------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._mw.np_random = self.np_random  # one stream: a seed fixes every draw of the episode
        obs, _ = self._mw.reset()
        return self._clip(obs), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        obs, reward, _, _, mw_info = self._mw.step(action)
        info: dict[str, Any] = {key: float(value) for key, value in mw_info.items()}
        info["is_success"] = bool(mw_info["success"])
        reward = float(mw_info["success"]) if self.sparse else float(reward)
        info["reward_task"] = reward
        return self._clip(obs), reward, False, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            raise RuntimeError("MetaWorldEnv was made without render_mode='rgb_array'; pass it to gym.make to render")
        return self._frame_renderer(self.render_options.camera or DEFAULT_CAMERA).render(self.data)

    def render_cameras(self, cameras: list[str]) -> dict[str, np.ndarray]:
        """The current state seen from each of ``cameras``, with this env's size and realism options."""
        self._check_cameras(cameras)
        return {camera: self._frame_renderer(camera).render(self.data) for camera in cameras}

    def scripted_action(self, obs: np.ndarray) -> np.ndarray:
        """Meta-World's scripted expert's action for ``obs`` (an observation of this env)."""
        with warnings.catch_warnings():
            # The experts' gains saturate far from the target and they warn about it every step.
            warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
            action = self._expert.get_action(np.asarray(obs, dtype=np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def close(self):
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._mw.close()

    # ---------------------------------------------------------------------------------- helpers
    def _check_cameras(self, cameras: list[str]) -> None:
        unknown = [c for c in cameras if c not in self.cameras]
        if unknown:
            raise ConfigError(f"camera {unknown[0]!r} is not in the Meta-World model; choose one of {self.cameras}")

    def _frame_renderer(self, camera: str) -> FrameRenderer:
        if camera not in self._renderers:
            options = RenderOptions(
                width=self.render_options.width,
                height=self.render_options.height,
                camera=camera,
                shadows=self.render_options.shadows,
                reflections=self.render_options.reflections,
                multisample=self.render_options.multisample,
            )
            self._renderers[camera] = FrameRenderer(self.model, options)
        return self._renderers[camera]

    def _clip(self, obs: np.ndarray) -> np.ndarray:
        # Meta-World clips step observations to its bounds but not the first one; do both alike.
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float64)
