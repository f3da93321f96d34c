"""A walking policy as the deploy node's controller: the robot walks on ``/cmd_vel`` while the teleop session moves its arms.

``roboreward deploy --locomotion g1_holosoma --robot g1_walking`` runs a
:class:`~roboreward.policies.locomotion.LocomotionPolicy` on the robot side, in the deploy node's
loop (the joint-state callback at the control rate, then the safety layer, then the command topic),
so a humanoid keeps its balance however late the operator's commands arrive::

    teleop session --/cmd_vel (geometry_msgs/Twist)----------------> deploy node --joint targets--> robot
                   --/teleop/joint_targets (sensor_msgs/JointState)-->   (policy + safety layer)

Each control period :meth:`LocomotionController.command_for` builds the policy's state from the
robot's joint state and IMU (orientation and gyro in the IMU body, the pelvis on the G1), runs the
policy on the newest walking command, and makes one command in the robot file's joint order:

- joints the teleop session sends on ``targets_topic`` (the arms) get the operator's targets; the
  policy sees its own targets for them (``arm_observation: commanded``, as the cockpit's walking
  robot: :mod:`roboreward.teleop.walking`) or their measured state (``measured``). Before the first
  message, and whenever the stream pauses, they keep their last targets (the policy's default pose
  at first): an arm never snaps back when a sender goes quiet.
- every other joint of the policy gets the policy's target; a robot joint the policy does not know
  (none on the G1) holds its home position.

``/cmd_vel``: ``linear.x`` forward, ``linear.y`` left (m/s), ``angular.z`` yaw rate (rad/s,
counter-clockwise), in the robot's base frame (REP 103); ``linear.z`` is read as the base height (m)
by a policy that takes one (holosoma's squats by its reference pose), 0 meaning "stand tall". A
command older than ``command_timeout_s`` is replaced by standing still (zero velocity), the
convention of ROS base controllers, so a crashed teleop session leaves the robot standing, not
walking. Non-finite numbers in either topic are dropped and counted.

The robot file is checked against the policy when the deploy starts: every policy joint must be a
robot joint, the control rate must be the policy's, the robot must report an IMU, and where the
file gives a joint's simulated servo gains (``kp``/``kv``) they must be the policy's, which a
walking policy needs (a real robot's driver must be set to them too).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from roboreward.config import bounded
from roboreward.errors import ConfigError
from roboreward.hardware.robot import RobotConfig, RobotState
from roboreward.policies.locomotion import LocomotionPolicy, LocomotionState


@dataclass(kw_only=True)
class LocomotionDeployConfig:
    """The topics and timeouts of a locomotion deploy (``locomotion.*`` keys of ``roboreward deploy``)."""

    cmd_vel_topic: str = bounded("/cmd_vel", "geometry_msgs/Twist walking commands (base frame)")
    targets_topic: str = bounded("/teleop/joint_targets", "sensor_msgs/JointState: targets for joints by name (arms)")
    command_timeout_s: float = bounded(0.5, "a walking command older than this is replaced by standing still",
                                       gt=0.0, le=10.0)
    arm_observation: Literal["commanded", "measured"] = bounded(
        "commanded", "what the policy reads of the joints the teleop session drives: its own targets, or the state"
    )


class LocomotionController:
    """Commands for a robot from a locomotion policy plus targets from the teleop session; see the module docstring.

    :param policy: the walking policy.
    :param robot: the robot file (joint order of the commands).
    :param config: topics and timeouts.
    """

    def __init__(self, policy: LocomotionPolicy, robot: RobotConfig, config: LocomotionDeployConfig | None = None):
        self.policy = policy
        self.robot = robot
        self.config = config = config if config is not None else LocomotionDeployConfig()
        names = robot.joint_names
        self._check_robot()
        index = {n: i for i, n in enumerate(names)}
        self._to_robot = np.array([index[n] for n in policy.joint_names])  # policy joint i -> robot joint
        self._robot_index = index
        self._command = np.array(robot.home_position, dtype=np.float64)
        self._teleop = np.zeros(len(names), dtype=bool)  # robot joints the session has sent targets for
        self._teleop_targets = np.array(robot.home_position, dtype=np.float64)
        self._lock = threading.Lock()
        self._velocity = (0.0, 0.0, 0.0)
        self._height = math.nan
        self._velocity_at = -math.inf
        self.counts = {"cmd_vel": 0, "targets": 0, "rejected": 0, "command_timeouts": 0}
        self._timed_out = True
        self._subscriptions: list[Any] = []

    def _check_robot(self) -> None:
        robot, policy = self.robot, self.policy
        names = robot.joint_names
        missing = [n for n in policy.joint_names if n not in names]
        if missing:
            raise ConfigError(
                f"the locomotion policy {policy.config.name!r} drives joints {missing} that robot {robot.name!r} "
                f"does not have; its joints: {names}"
            )
        if robot.control.mode != "position" or robot.action_kind != "joint_targets":
            raise ConfigError(f"robot {robot.name!r}: a locomotion policy sends joint position targets; "
                              f"the robot file takes {robot.control.mode} {robot.action_kind}")
        if not math.isclose(float(robot.control.rate_hz), policy.config.control_hz, rel_tol=1e-6):
            raise ConfigError(
                f"robot {robot.name!r}: control.rate_hz is {robot.control.rate_hz:g} but the locomotion policy "
                f"{policy.config.name!r} runs at {policy.config.control_hz:g} Hz; set control.rate_hz="
                f"{policy.config.control_hz:g}"
            )
        if robot.state.imu is None:
            raise ConfigError(f"robot {robot.name!r} reports no IMU (state.imu); a walking policy needs the base's "
                              "orientation and angular velocity")
        wrong = []
        for joint in robot.joints:
            if joint.name not in self.policy.joint_names:
                continue
            i = policy.joint_names.index(joint.name)
            for key, value, theirs in (("kp", joint.kp, policy.kp[i]), ("kv", joint.kv, policy.kd[i])):
                if value is not None and not math.isclose(value, theirs, rel_tol=1e-6):
                    wrong.append(f"{joint.name}.{key} {value:g} (the policy's: {theirs:.9g})")
        if wrong:
            raise ConfigError(
                f"robot {robot.name!r}: the simulated servo gains differ from those the locomotion policy "
                f"{policy.config.name!r} was trained with: {'; '.join(wrong[:4])}"
                + (f" and {len(wrong) - 4} more" if len(wrong) > 4 else "")
                + "; set the joints' kp/kv to the policy's"
            )

    # -- ROS ---------------------------------------------------------------------------------------

    def attach(self, node: Any) -> None:
        """Subscribe the walking-command and joint-target topics on ``node`` (the deploy node's)."""
        from geometry_msgs.msg import Twist
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._subscriptions = [
            node.create_subscription(Twist, self.config.cmd_vel_topic, self._on_cmd_vel, qos),
            node.create_subscription(JointState, self.config.targets_topic, self._on_targets, qos),
        ]

    def _on_cmd_vel(self, msg: Any) -> None:
        self.set_velocity(msg.linear.x, msg.linear.y, msg.angular.z, msg.linear.z)

    def _on_targets(self, msg: Any) -> None:
        self.set_targets(list(msg.name), msg.position)

    # -- commands in -----------------------------------------------------------------------------

    def set_velocity(self, vx: float, vy: float, yaw_rate: float, height: float = 0.0, now: float | None = None) -> bool:
        """Take a walking command (what ``/cmd_vel`` carries); False (counted) if a number is not finite."""
        values = (float(vx), float(vy), float(yaw_rate), float(height))
        if not all(math.isfinite(v) for v in values):
            self.counts["rejected"] += 1
            return False
        with self._lock:
            self._velocity = values[:3]
            self._height = values[3] if values[3] > 0 else math.nan
            self._velocity_at = time.monotonic() if now is None else now
            self.counts["cmd_vel"] += 1
        return True

    def set_targets(self, names: list[str], positions: Any) -> bool:
        """Targets for robot joints by name (what the teleop session sends); False (counted) if refused.

        Names that are not robot joints are ignored (the session may also send hand joints a robot
        without hands lacks); a message whose positions do not match its names, or hold a non-finite
        number, is refused whole.
        """
        values = np.asarray(positions, dtype=np.float64).reshape(-1)
        if values.size != len(names) or not np.all(np.isfinite(values)):
            self.counts["rejected"] += 1
            return False
        with self._lock:
            for name, value in zip(names, values):
                i = self._robot_index.get(name)
                if i is not None:
                    self._teleop[i] = True
                    self._teleop_targets[i] = value
            self.counts["targets"] += 1
        return True

    # -- the control step ------------------------------------------------------------------------

    @staticmethod
    def check_state(state: RobotState) -> None:
        """Raise ``ValueError`` for a state the policy cannot run on (the deploy node holds instead)."""
        if state.imu is None:
            raise ValueError("no IMU reading yet; a walking policy needs the base's orientation and gyro")

    def command_for(self, state: RobotState, now: float | None = None) -> np.ndarray:
        """The robot's joint targets (robot file order) for this control period, from ``state``."""
        self.check_state(state)
        now = time.monotonic() if now is None else now
        with self._lock:
            fresh = now - self._velocity_at <= self.config.command_timeout_s
            vx, vy, wz = self._velocity if fresh else (0.0, 0.0, 0.0)
            height = self._height
            teleop = self._teleop.copy()
            teleop_targets = self._teleop_targets.copy()
        if not fresh and not self._timed_out and math.isfinite(self._velocity_at):
            self.counts["command_timeouts"] += 1
        self._timed_out = not fresh
        policy = self.policy
        q = np.asarray(state.position, dtype=np.float64)[self._to_robot]
        dq = np.asarray(state.velocity, dtype=np.float64)[self._to_robot]
        shared = teleop[self._to_robot]  # policy joints the session drives
        if self.config.arm_observation == "commanded" and shared.any():
            q[shared] = policy.last_targets[shared]
            dq[shared] = 0.0
        dq = np.where(np.isfinite(dq), dq, 0.0)  # JointState's velocity is optional
        if not math.isfinite(height):  # no height commanded: stand tall
            span = policy.config.command_ranges.base_height
            height = span[1] if span is not None else 0.75
        targets = policy.act(
            (vx, vy, wz, height),
            LocomotionState(joint_positions=q, joint_velocities=dq,
                            base_angular_velocity=np.asarray(state.imu.angular_velocity, dtype=np.float64),
                            base_quaternion=np.asarray(state.imu.orientation, dtype=np.float64)),
        )
        command = self._command
        command[self._to_robot] = targets
        command[teleop] = teleop_targets[teleop]
        return command.copy()

    def describe(self) -> str:
        c = self.config
        return (f"locomotion policy {self.policy.config.name!r} (walking commands on {c.cmd_vel_topic}, "
                f"joint targets on {c.targets_topic})")

    def close(self) -> None:
        self._subscriptions.clear()


__all__ = ["LocomotionController", "LocomotionDeployConfig"]
