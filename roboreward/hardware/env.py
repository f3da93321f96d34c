"""Robots as gymnasium envs: :class:`RosRobotEnv` over ROS 2 topics, :class:`RobotSimEnv` in MuJoCo.

Both take a robot file (``configs/robots/<name>.yaml``) and share its observation and action
mapping (:meth:`RobotConfig.observation_from_state`, :meth:`RobotConfig.command_from_action`), so a
policy trained on ``roboreward/RobotSim-v0`` runs unchanged on :class:`RosRobotEnv` — against
``roboreward sim-robot`` first, then the robot.

## RosRobotEnv
Each ``step(action)``:

1. maps the action to targets and publishes the robot's command message — no earlier than one
   control period (``control.rate_hz``) after the previous command;
2. lets the control period pass, then waits for a state that arrived *after* the command went out
   (every topic the observation reads), at most ``control.state_timeout_s``;
3. returns that state's observation. If none came in time it raises
   :class:`~roboreward.hardware.ros.StaleStateError` (topic, age, timeout) instead of returning old
   data; the step did not happen and the env must be reset.

``reset()`` waits the same way (the first one up to ``control.connect_timeout_s``, for DDS discovery,
and also until the robot subscribes the command topic). It does not move the robot.

``info`` of every reset and step: ``state_age_s`` (since the newest joint state arrived),
``state_wait_s`` (how long the step waited for it after the control period), ``stale`` (the state
was older, or the wait longer, than ``control.stale_after_periods`` joint-state periods: the state
stream stalled), ``dropped`` (joint-state
messages missing from the stamp sequence so far) and ``dropped_since_last_step``,
``command_delay_s`` (how late the command went out: the policy's and the env's overhead),
``ros`` (received/dropped/stale/ignored per state topic), ``state_stamp`` (the robot's header
time), and the task terms below.

## RobotSimEnv (``roboreward/RobotSim-v0``)
The simulated robot (:class:`~roboreward.hardware.sim.RobotSimulation`) stepped one control period
per env step. Task: from a random start (``home`` + U(-``init_noise``, ``init_noise``) per joint; a
base starts within ``init_noise`` m of ``base.home``, any heading), bring the joints (or the base)
to the robot file's ``home``.

- Observation / action: the robot file's (e.g. Franka: 7 joint positions + 7 velocities; 7
  position targets in [-1, 1] mapped onto the joint limits).
- Reward: ``reward_distance = -distance``, the joint-space distance (rad) to ``home`` or the base's
  distance (m) to ``base.home``. ``info["is_success"]``: ``distance < simulation.success_tolerance``.
  :class:`RosRobotEnv` reports the same terms, so real and simulated episodes compare.
- Episodes: fixed length (100 steps), never terminated.
- Arguments: ``robot`` (name or path), ``overrides`` (``key=value`` on the robot file),
  ``render_mode="rgb_array"`` with ``width``/``height``/``camera`` (default: the robot's image topic).

Version history: v0, first version.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from roboreward.errors import ConfigError
from roboreward.hardware.robot import RobotConfig, RobotState, load_robot_config


def _task_terms(robot: RobotConfig, state: RobotState) -> tuple[float, dict[str, Any]]:
    """Reward and info terms of the drive-to-home task (shared by both envs)."""
    try:
        distance = robot.home_distance(state)
    except ValueError:  # e.g. a base without odometry: no task measure
        return 0.0, {}
    return -distance, {
        "distance": distance,
        "is_success": bool(distance < robot.simulation.success_tolerance),
        "reward_distance": -distance,
    }


class RosRobotEnv(gym.Env):
    """A robot over ROS 2 topics as a gymnasium env; see the module docstring.

    :param robot: a robot name in ``configs/robots``, a YAML path, or a :class:`RobotConfig`.
    :param overrides: ``key.sub=value`` overrides of the robot file.
    :param domain_id: ROS_DOMAIN_ID (None: the environment's).
    :param discovery: ``"localhost"`` (default) or ``"subnet"`` for a robot on the LAN.
    :param max_episode_steps: truncate after this many steps (None: never).
    :param render_mode: ``"rgb_array"``: ``render()`` returns the newest camera image.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        robot: str | Path | RobotConfig = "franka",
        *,
        overrides: list[str] | tuple[str, ...] = (),
        domain_id: int | None = None,
        discovery: str = "localhost",
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        node_name: str | None = None,
    ):
        from roboreward.hardware.ros import CommandPublisher, RosSession, StateSubscriber

        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        self.robot = load_robot_config(robot, overrides)
        if render_mode == "rgb_array" and self.robot.state.image is None:
            raise ConfigError(f"{self.robot.name} has no image topic (state.image) to render; leave render_mode out")
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.observation_space = self.robot.observation_space
        self.action_space = self.robot.action_space
        self.period = 1.0 / self.robot.control.rate_hz
        self.session = RosSession(
            node_name or f"ros_robot_env_{self.robot.name}", domain_id=domain_id, discovery=discovery
        )
        self.subscriber = StateSubscriber(self.session.node, self.robot)
        self.publisher = CommandPublisher(self.session.node, self.robot)
        self._connected = False
        self._last_command_at: float | None = None
        self._last_dropped = 0
        self._steps = 0
        self._closed = False

    # ---------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._require_open()
        control = self.robot.control
        if not self._connected:
            self._wait_for_command_subscriber(max(control.connect_timeout_s, control.state_timeout_s))
            state = self.subscriber.wait_for_fresh(
                time.monotonic(), max(control.connect_timeout_s, control.state_timeout_s)
            )
            self._connected = True
        else:
            state = self.subscriber.wait_for_fresh(time.monotonic(), control.state_timeout_s)
        self._last_command_at = None
        self._steps = 0
        _, terms = _task_terms(self.robot, state)
        return self.robot.observation_from_state(state), self._info(state, 0.0, terms)

    def step(self, action):
        self._require_open()
        if not self._connected:
            raise RuntimeError("call reset() before step(): it waits for the robot to appear")
        targets = self.robot.command_from_action(action)
        now = time.monotonic()
        delay = 0.0
        if self._last_command_at is not None:
            due = self._last_command_at + self.period
            if now < due:
                time.sleep(due - now)
            else:
                delay = now - due
        sent_at = time.monotonic()
        self.publisher.publish(targets)
        self._last_command_at = sent_at
        remaining = sent_at + self.period - time.monotonic()
        if remaining > 0:  # let the command act for one control period
            time.sleep(remaining)
        wait_start = time.monotonic()
        try:
            state = self.subscriber.wait_for_fresh(sent_at, self.robot.state_timeout_s)
        except Exception:
            self._connected = False  # the next reset waits for the robot again
            raise
        self._steps += 1
        reward, terms = _task_terms(self.robot, state)
        info = self._info(state, delay, terms, waited=time.monotonic() - wait_start)
        info["command"] = targets
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        return self.robot.observation_from_state(state), reward, False, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            raise RuntimeError("RosRobotEnv was made without render_mode='rgb_array'")
        state = self.subscriber.state
        if state is None or state.image is None:
            raise RuntimeError(f"no image has arrived on {self.robot.state.image.topic} yet")
        return state.image.data

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self.subscriber.destroy()
            self.publisher.destroy()
        finally:
            self.session.close()

    # ---------------------------------------------------------------------------------- helpers
    @property
    def state(self) -> RobotState | None:
        """The newest state received (None before the first)."""
        return self.subscriber.state

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("this RosRobotEnv is closed")

    def _wait_for_command_subscriber(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.publisher.subscription_count() == 0:
            if time.monotonic() >= deadline:
                from roboreward.hardware.ros import StaleStateError

                cmd = self.robot.command
                raise StaleStateError(
                    f"nothing subscribes to {cmd.topic} ({cmd.type}) after {timeout:.1f} s: is the robot (or "
                    f"`roboreward sim-robot {self.robot.name}`) running on ROS_DOMAIN_ID={self.session.domain_id} "
                    "with the same discovery range and QoS?",
                    topic=cmd.topic,
                    age=None,
                    timeout=timeout,
                )
            time.sleep(0.01)

    def _info(self, state: RobotState, delay: float, terms: dict[str, Any], waited: float = 0.0) -> dict[str, Any]:
        age = time.monotonic() - state.received_at
        counters = self.subscriber.counters()
        dropped = counters["joint_state"]["dropped"]
        info = {
            "state_age_s": age,
            "state_wait_s": waited,
            # The state is old, or the stream stalled: the step had to wait past the stale limit for it.
            "stale": bool(age > self.robot.stale_after_s or waited > self.robot.stale_after_s),
            "dropped": dropped,
            "dropped_since_last_step": dropped - self._last_dropped,
            "command_delay_s": delay,
            "state_stamp": state.stamp,
            "ros": counters,
        }
        self._last_dropped = dropped
        info.update(terms)
        return info


class RobotSimEnv(gym.Env):
    """``roboreward/RobotSim-v0``: a robot file's robot in MuJoCo, driven to its home pose; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        robot: str | Path | RobotConfig = "franka",
        overrides: list[str] | tuple[str, ...] = (),
        render_mode: str | None = None,
        width: int | None = None,
        height: int | None = None,
        camera: str | None = None,
    ):
        from roboreward.hardware.sim import RobotSimulation

        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        self.robot = load_robot_config(robot, overrides)
        self.sim = RobotSimulation(self.robot)
        self.render_mode = render_mode
        self._render_args = (camera, width, height)
        self.observation_space = self.robot.observation_space
        self.action_space = self.robot.action_space
        self.metadata = {**self.metadata, "render_fps": int(round(self.robot.control.rate_hz))}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        robot, rng = self.robot, self.np_random
        noise = robot.simulation.init_noise
        if robot.action_kind == "twist":
            x, y = np.asarray(robot.base.home) + rng.uniform(-noise, noise, size=2)
            self.sim.reset(base_pose=(float(x), float(y), float(rng.uniform(-np.pi, np.pi))))
        else:
            q = robot.home_position + rng.uniform(-noise, noise, size=robot.n_joints)
            self.sim.reset(position=np.clip(q, robot.position_lower, robot.position_upper))
        state = self.sim.state()
        _, terms = _task_terms(robot, state)
        terms.pop("reward_distance", None)
        return robot.observation_from_state(state), terms

    def step(self, action):
        self.sim.apply(self.robot.command_from_action(action))
        self.sim.step()
        state = self.sim.state()
        reward, info = _task_terms(self.robot, state)
        return self.robot.observation_from_state(state), reward, False, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            raise RuntimeError("RobotSimEnv was made without render_mode='rgb_array'; pass it to gym.make to render")
        return self.sim.render(*self._render_args)

    def close(self):
        self.sim.close()


__all__ = ["RobotSimEnv", "RosRobotEnv"]
