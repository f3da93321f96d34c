"""A planar two-link arm that reaches a target on a table, seen from a camera above.

## Description
A two-joint arm (shoulder, elbow) on a table must bring its yellow fingertip onto the red target
and hold it there. It is the smallest manipulation task whose success is unambiguous in pixels,
which makes it the embedded default for learned visual rewards: a policy learns it on a 2-core CPU
in minutes while its reward is computed from rendered frames.

The target is drawn from *joint space*: a goal configuration ``q_goal`` is sampled and the target
is put where that configuration puts the fingertip. :meth:`ArmReachEnv.render_goal` renders the arm
in ``q_goal``, which is the goal image a learned reward compares frames against. The elbow bends
one way only (``0 <= q_elbow``), so each target has exactly one arm pose that reaches it and the
goal image is unambiguous.

## Action space
``Box(-1, 1, (2,), float32)``: the change of each joint's position target, scaled by
``max_joint_step`` radians per step. Position servos then track the targets, so a zero action holds.

## Observation space
``Box(-inf, inf, (10,), float64)``:

| idx | observation                           | unit       |
|-----|---------------------------------------|------------|
| 0-1 | cos(shoulder), cos(elbow)             |            |
| 2-3 | sin(shoulder), sin(elbow)             |            |
| 4-5 | joint velocities                      | rad/s      |
| 6-7 | target position (x, y)                | m          |
| 8-9 | fingertip - target (x, y)             | m          |

## Rewards
``reward = reward_dist + reward_ctrl`` with ``reward_dist = -‖fingertip - target‖`` and
``reward_ctrl = -ctrl_cost_weight · ‖action‖²``. Both terms are in ``info``, as are ``distance``
and ``is_success`` (``distance < success_tolerance``). A learned reward replaces ``reward``; this
one stays as the ground truth it is compared with.

## Episode end
No termination: episodes are truncated after ``max_episode_steps`` (50) steps, so every episode has
the same length, which keeps learned-reward returns comparable. ``is_success`` at the last step is
the episode's success (the fingertip must end on the target, not just pass by it).

## Arguments
``goal``: ``"random"`` (a new goal each episode) or ``"fixed"`` (``fixed_goal`` joint angles);
``max_joint_step``; ``success_tolerance``; ``ctrl_cost_weight``; ``frame_skip``; render options
(``width``, ``height``, ``camera`` in {``"top"``, ``"side"``}, ``shadows``, ``reflections``,
``multisample``), see :class:`roboreward.envs.rendering.RenderOptions`.

## Version history
- v0: first version.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from roboreward.envs.rendering import FrameRenderer, RenderOptions, mujoco
from roboreward.errors import ConfigError

LINK_LENGTH = 0.1  # metres, both links
ELBOW_RANGE = (0.0, 2.7)  # one-sided: unique inverse kinematics, so goal images are unambiguous
GOAL_ELBOW_RANGE = (0.4, 2.4)  # goals avoid the stretched and the folded singular poses

ARM_REACH_XML = f"""
<mujoco model="arm_reach">
  <compiler angle="radian"/>
  <option timestep="0.01" integrator="implicitfast"/>
  <visual>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.55 0.55 0.55" specular="0 0 0"/>
    <quality shadowsize="1024"/>
  </visual>
  <asset>
    <texture name="wood" type="2d" builtin="checker" rgb1="0.80 0.74 0.62" rgb2="0.74 0.68 0.56"
             width="256" height="256"/>
    <material name="table" texture="wood" texrepeat="3 3" reflectance="0.15"/>
  </asset>
  <default>
    <geom contype="0" conaffinity="0"/>
    <joint damping="0.3" armature="0.01"/>
    <position kp="6" ctrlrange="-3.2 3.2"/>
  </default>
  <worldbody>
    <light pos="0.2 -0.2 1.2" dir="-0.15 0.15 -1" castshadow="true" diffuse="0.5 0.5 0.5"/>
    <geom name="table" type="plane" size="0.4 0.4 0.01" material="table"/>
    <camera name="top" pos="0 0 0.62" xyaxes="1 0 0 0 1 0" fovy="46"/>
    <camera name="side" pos="0 -0.55 0.45" xyaxes="1 0 0 0 0.64 0.77" fovy="45"/>
    <body name="base" pos="0 0 0.02">
      <geom type="cylinder" size="0.03 0.02" rgba="0.2 0.2 0.25 1"/>
      <body name="upper_arm" pos="0 0 0.03">
        <joint name="shoulder" type="hinge" axis="0 0 1" range="-3.1416 3.1416"/>
        <geom type="capsule" fromto="0 0 0 {LINK_LENGTH} 0 0" size="0.014" rgba="0.15 0.35 0.85 1"/>
        <body name="forearm" pos="{LINK_LENGTH} 0 0">
          <joint name="elbow" type="hinge" axis="0 0 1" range="{ELBOW_RANGE[0]} {ELBOW_RANGE[1]}" limited="true"/>
          <geom type="capsule" fromto="0 0 0 {LINK_LENGTH} 0 0" size="0.011" rgba="0.1 0.65 0.35 1"/>
          <site name="fingertip" pos="{LINK_LENGTH} 0 0.01" size="0.016" rgba="1 0.8 0.05 1"/>
        </body>
      </body>
    </body>
    <body name="target" mocap="true" pos="0.1 0.1 0.022">
      <geom type="sphere" size="0.018" rgba="0.9 0.1 0.1 1"/>
    </body>
  </worldbody>
  <actuator>
    <position name="shoulder" joint="shoulder"/>
    <position name="elbow" joint="elbow"/>
  </actuator>
</mujoco>
"""


def fingertip_position(q: np.ndarray) -> np.ndarray:
    """Forward kinematics of the planar arm: joint angles -> fingertip (x, y)."""
    a, b = q[0], q[0] + q[1]
    return LINK_LENGTH * np.array([np.cos(a) + np.cos(b), np.sin(a) + np.sin(b)])


class ArmReachEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    default_camera = "top"  # used when camera is None

    def __init__(
        self,
        goal: str = "random",
        fixed_goal: tuple[float, float] = (0.8, 1.2),
        max_joint_step: float = 0.2,
        success_tolerance: float = 0.02,
        ctrl_cost_weight: float = 0.01,
        frame_skip: int = 5,
        render_mode: str | None = None,
        width: int = 64,
        height: int = 64,
        camera: str | None = "top",
        shadows: bool = False,
        reflections: bool = False,
        multisample: int = 0,
    ):
        if goal not in ("random", "fixed"):
            raise ConfigError(f"goal={goal!r} is not allowed; choose 'random' or 'fixed'")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        if not GOAL_ELBOW_RANGE[0] <= fixed_goal[1] <= GOAL_ELBOW_RANGE[1]:
            raise ConfigError(f"fixed_goal elbow angle {fixed_goal[1]} must lie in {GOAL_ELBOW_RANGE} radians")
        self.goal_mode = goal
        self.fixed_goal = np.asarray(fixed_goal, dtype=np.float64)
        self.max_joint_step = max_joint_step
        self.success_tolerance = success_tolerance
        self.ctrl_cost_weight = ctrl_cost_weight
        self.frame_skip = frame_skip
        self.render_mode = render_mode
        self.render_options = RenderOptions(
            width=width, height=height, camera=camera, shadows=shadows, reflections=reflections, multisample=multisample
        )

        self.model = mujoco.MjModel.from_xml_string(ARM_REACH_XML)
        self.data = mujoco.MjData(self.model)
        self._fingertip = self.model.site("fingertip").id
        self._target_mocap = self.model.body("target").mocapid[0]
        self._joint_low = self.model.jnt_range[:, 0].copy()
        self._joint_high = self.model.jnt_range[:, 1].copy()
        self._renderer: FrameRenderer | None = None

        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(10,), dtype=np.float64)
        self.goal_qpos = self.fixed_goal.copy()

    # ---------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        rng = self.np_random
        qpos = np.array([rng.uniform(-0.1, 0.1), 0.5 + rng.uniform(-0.1, 0.1)])
        self.data.qpos[:] = qpos
        self.data.ctrl[:] = qpos
        if self.goal_mode == "random":
            self.goal_qpos = np.array([rng.uniform(-np.pi, np.pi), rng.uniform(*GOAL_ELBOW_RANGE)])
        else:
            self.goal_qpos = self.fixed_goal.copy()
        self.data.mocap_pos[self._target_mocap, :2] = fingertip_position(self.goal_qpos)
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs(), self._get_info()

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        target = self.data.ctrl + action * self.max_joint_step
        self.data.ctrl[:] = np.clip(target, self._joint_low, self._joint_high)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        reward, terms = self._get_rew(action)
        info = self._get_info()
        info.update(terms)
        return self._get_obs(), reward, False, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            raise RuntimeError("ArmReachEnv was made without render_mode='rgb_array'; pass it to gym.make to render")
        return self._frame_renderer().render(self.data)

    def render_goal(self) -> np.ndarray:
        """Render the arm in the goal configuration: the goal image for learned rewards."""
        qpos, qvel = self.data.qpos.copy(), self.data.qvel.copy()
        self.data.qpos[:] = self.goal_qpos
        self.data.qvel[:] = 0.0
        mujoco.mj_forward(self.model, self.data)
        frame = self._frame_renderer().render(self.data)
        self.data.qpos[:], self.data.qvel[:] = qpos, qvel
        mujoco.mj_forward(self.model, self.data)
        return frame

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ---------------------------------------------------------------------------------- helpers
    def _frame_renderer(self) -> FrameRenderer:
        if self._renderer is None:
            self._renderer = FrameRenderer(self.model, self.render_options, default_camera=self.default_camera)
        return self._renderer

    def _fingertip_to_target(self) -> np.ndarray:
        return self.data.site_xpos[self._fingertip, :2] - self.data.mocap_pos[self._target_mocap, :2]

    def _get_obs(self) -> np.ndarray:
        q = self.data.qpos
        return np.concatenate(
            [np.cos(q), np.sin(q), self.data.qvel, self.data.mocap_pos[self._target_mocap, :2], self._fingertip_to_target()]
        )

    def _get_rew(self, action: np.ndarray) -> tuple[float, dict[str, float]]:
        reward_dist = -float(np.linalg.norm(self._fingertip_to_target()))
        reward_ctrl = -self.ctrl_cost_weight * float(np.square(action).sum())
        return reward_dist + reward_ctrl, {"reward_dist": reward_dist, "reward_ctrl": reward_ctrl}

    def _get_info(self) -> dict[str, Any]:
        distance = float(np.linalg.norm(self._fingertip_to_target()))
        return {"distance": distance, "is_success": distance < self.success_tolerance}
