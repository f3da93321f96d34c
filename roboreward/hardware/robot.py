"""Robot descriptions: one YAML file per robot (shipped in ``roboreward/configs/robots/``), read into
:class:`RobotConfig`.

A robot's interface to the rest of roboreward is what this file says, and nothing else: the joints
(names, order, limits), how the robot is commanded (position / velocity / torque targets at a rate),
which ROS 2 topics carry its state and its commands (with their message types and QoS), and how
those messages become the flat ``float32`` observation and the ``[-1, 1]`` action a policy sees.
The same mapping serves the simulated robot (``roboreward/RobotSim-v0``), the MuJoCo simulation
behind ROS 2 topics (``roboreward sim-robot``) and the real robot (:class:`RosRobotEnv`), which is
why a policy trained on the first deploys unchanged on the last.

Loading is strict (see :mod:`roboreward.config`): a robot file with a typo must stop before a
command reaches a motor, so every problem is a :class:`ConfigError` naming the field::

    robot = load_robot_config("franka")                  # roboreward/configs/robots/franka.yaml
    robot = load_robot_config("my_robot.yaml", ["control.rate_hz=200"])
    # -> ConfigError: my_robot.yaml: joints[2].position: lower 1.0 > upper 0.5; ...

Conventions:

- Joint order is the order of ``joints:``. Arrays (limits, states, targets) are in that order;
  JointState messages are reordered *by name*, whatever order they arrive in.
- Actions are in ``[-1, 1]`` and scaled to the limits of the control mode: position targets map
  ``-1 -> lower``, ``+1 -> upper``; velocity targets to ``+-velocity``; torques to ``+-effort``. A base
  commanded with ``geometry_msgs/Twist`` takes ``(linear x, angular z)`` scaled to ``base.max_linear``
  and ``base.max_angular``.
- Quaternions are ``(w, x, y, z)`` (MuJoCo's order) in observations and states; ROS messages carry
  ``(x, y, z, w)`` and the conversion happens in :mod:`roboreward.hardware.ros`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from roboreward.config import apply_override, bounded, find_named, from_dict, read_yaml, shipped_names
from roboreward.errors import ConfigError

# Message types per state slot and for commands ("package/Type", as `ros2 topic` writes them).
STATE_MESSAGE_TYPES: dict[str, str] = {
    "joint_state": "sensor_msgs/JointState",
    "imu": "sensor_msgs/Imu",
    "odometry": "nav_msgs/Odometry",
    "image": "sensor_msgs/Image",
}
COMMAND_MESSAGE_TYPES = ("trajectory_msgs/JointTrajectory", "std_msgs/Float64MultiArray", "geometry_msgs/Twist")

# Observation terms: name -> (state slot it reads, size; None = one per joint).
OBSERVATION_TERMS: dict[str, tuple[str, int | None]] = {
    "joint_position": ("joint_state", None),
    "joint_velocity": ("joint_state", None),
    "joint_effort": ("joint_state", None),
    "imu_orientation": ("imu", 4),  # (w, x, y, z)
    "imu_angular_velocity": ("imu", 3),  # rad/s, IMU frame
    "imu_linear_acceleration": ("imu", 3),  # m/s^2, IMU frame, gravity included (what an accelerometer reads)
    "imu_projected_gravity": ("imu", 3),  # unit gravity direction in the IMU frame (legged-robot policies)
    "odom_position": ("odometry", 3),
    "odom_orientation": ("odometry", 4),  # (w, x, y, z)
    "odom_pose_2d": ("odometry", 4),  # (x, y, cos yaw, sin yaw): no wrap-around at +-pi
    "odom_linear_velocity": ("odometry", 3),  # body frame
    "odom_angular_velocity": ("odometry", 3),  # body frame
    "odom_twist_2d": ("odometry", 2),  # (forward velocity, yaw rate)
}

_TOPIC_NAME = re.compile(r"^/?[A-Za-z_~][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


# --------------------------------------------------------------------------------------------
# Config dataclasses (the YAML schema). Required fields default to None and are checked by
# RobotConfig.__post_init__, which knows each field's full key for the error message.


@dataclass(kw_only=True)
class QosConfig:
    """ROS 2 QoS of one topic. Publisher and subscriber must be compatible: a ``reliable``
    subscription gets nothing from a ``best_effort`` publisher, so both sides read this same file."""

    reliability: Literal["reliable", "best_effort"] = "reliable"
    durability: Literal["volatile", "transient_local"] = "volatile"
    history: Literal["keep_last", "keep_all"] = "keep_last"
    depth: int = bounded(1, "queue depth (keep_last); 1 = only the newest message matters", ge=1, le=1000)


@dataclass(kw_only=True)
class StateTopicConfig:
    """A state topic the robot publishes."""

    topic: str | None = None
    type: str | None = None
    rate_hz: float | None = bounded(None, "how often the robot publishes it", gt=0, le=5000)
    qos: QosConfig = field(default_factory=QosConfig)
    frame_id: str = ""  # header.frame_id the simulated robot writes (e.g. imu_link)


@dataclass(kw_only=True)
class ImageTopicConfig(StateTopicConfig):
    """A camera topic; the simulation renders ``camera`` at ``width`` x ``height``."""

    width: int = bounded(224, "pixels", ge=8, le=4096)
    height: int = bounded(224, "pixels", ge=8, le=4096)
    encoding: Literal["rgb8", "bgr8"] = "rgb8"
    camera: str | None = None  # a camera of the simulation's MuJoCo model (sim-robot and RobotSim-v0 only)


@dataclass(kw_only=True)
class StateConfig:
    joint_state: StateTopicConfig | None = None  # required
    imu: StateTopicConfig | None = None
    odometry: StateTopicConfig | None = None
    image: ImageTopicConfig | None = None

    def topics(self) -> dict[str, StateTopicConfig]:
        """The configured state topics by slot name."""
        slots = {"joint_state": self.joint_state, "imu": self.imu, "odometry": self.odometry, "image": self.image}
        return {slot: cfg for slot, cfg in slots.items() if cfg is not None}


@dataclass(kw_only=True)
class CommandTopicConfig:
    topic: str | None = None
    type: str | None = None
    qos: QosConfig = field(default_factory=QosConfig)


@dataclass(kw_only=True)
class JointConfig:
    """One joint. Limits are the robot's own (data sheet), not a policy's comfort zone."""

    name: str | None = None  # required: the name in JointState / JointTrajectory messages
    mjcf_joint: str | None = None  # the joint's name in the simulation's MuJoCo model; default: name
    # [lower, upper] in rad (m for prismatic joints); null for a continuous joint (a wheel).
    position: list[float] | None = None
    velocity: float | None = bounded(None, "velocity limit, rad/s (required)", gt=0)
    effort: float | None = bounded(None, "effort limit, Nm or N (required)", gt=0)
    home: float = 0.0  # the pose RobotSim-v0 drives to and that reset poses refer to
    # Gains of the *simulated* servo (sim-robot, RobotSim-v0); a real robot's driver has its own.
    # Left out: the MuJoCo model's own position-actuator gains.
    kp: float | None = bounded(None, "simulated position gain, Nm/rad", ge=0)
    kv: float | None = bounded(None, "simulated velocity gain (damping in position mode), Nm s/rad", ge=0)

    @property
    def model_joint(self) -> str:
        return self.mjcf_joint or self.name or ""


@dataclass(kw_only=True)
class ControlConfig:
    mode: Literal["position", "velocity", "torque"] = "position"
    rate_hz: float = bounded(50.0, "how often a new command goes out", gt=0, le=2000)
    # A step waits at most this long for a state newer than its command, then raises StaleStateError.
    state_timeout_s: float = bounded(0.5, "seconds a step waits for fresh state", gt=0, le=60)
    # A state older than this many joint-state periods is reported stale in info (and counted).
    stale_after_periods: float = bounded(3.0, "joint-state periods after which a state is stale", gt=0, le=1000)
    # The first reset also waits for DDS discovery, which takes longer than one state period.
    connect_timeout_s: float = bounded(10.0, "seconds the first reset waits for the robot to appear", gt=0, le=600)
    # A simulated robot zeroes velocity/torque targets (and twists) when commands stop this long.
    command_timeout_s: float = bounded(0.5, "seconds without commands before the sim stops the robot", gt=0, le=60)


@dataclass(kw_only=True)
class BaseConfig:
    """A differential-drive base commanded with geometry_msgs/Twist."""

    left_wheel: str | None = None  # joint names (in joints:)
    right_wheel: str | None = None
    wheel_radius: float = bounded(0.05, "m", gt=0)
    wheel_separation: float = bounded(0.3, "m, between the wheel contact points", gt=0)
    max_linear: float = bounded(0.5, "m/s at action +1", gt=0)
    max_angular: float = bounded(1.5, "rad/s at action +1", gt=0)
    home: list[float] = bounded([0.0, 0.0], "(x, y) in the odometry frame that RobotSim-v0 drives to")

    def wheel_speeds(self, linear: float, angular: float) -> tuple[float, float]:
        """``(left, right)`` wheel rates (rad/s) that move the base at ``linear`` m/s and turn it at ``angular`` rad/s."""
        half = 0.5 * self.wheel_separation * angular
        return (linear - half) / self.wheel_radius, (linear + half) / self.wheel_radius


@dataclass(kw_only=True)
class SimulationConfig:
    """How the MuJoCo stand-in is built (``roboreward.hardware.sim``); a real robot ignores it."""

    model: Literal["franka", "g1", "diff_drive"] | None = None
    # Pin a floating base to the world (the G1 hangs from a gantry: no balance controller needed).
    fix_base: bool = False
    base_height: float | None = None  # height of a pinned base, m (default: the model's)
    # Cancel gravity on the robot's bodies, as Franka's controllers do inside the robot.
    gravity_compensation: bool = False
    imu_body: str | None = None  # body whose motion the IMU topic reports
    odometry_body: str | None = None  # body with a free joint whose pose the odometry topic reports
    # A legged robot starts standing: each reset lowers the floating base until the lowest collision
    # point is on the floor (z = 0), rather than dropping it from the model's pose.
    stand_on_floor: bool = False
    # A humanoid hangs from a gantry until its balance controller runs: the floating base is held still
    # (its joints move) until the first command arrives (sim-robot), so a deploy started a few seconds
    # after the simulation finds the robot standing, not lying on the floor.
    release_on_first_command: bool = False
    timestep: float | None = bounded(None, "physics step, s (default: the model's)", gt=0, le=0.05)
    init_noise: float = bounded(0.5, "RobotSim-v0: start = home + U(-x, x) per joint (rad), or base (m)", ge=0)
    success_tolerance: float = bounded(0.05, "RobotSim-v0: success when the distance to home is below this", gt=0)


@dataclass(kw_only=True)
class RobotConfig:
    """A robot's interface; see the module docstring and ``configs/robots/*.yaml``."""

    name: str | None = None
    description: str = ""
    joints: list[JointConfig] = field(default_factory=list)
    control: ControlConfig = field(default_factory=ControlConfig)
    state: StateConfig = field(default_factory=StateConfig)
    command: CommandTopicConfig | None = None
    # Observation terms in order (see OBSERVATION_TERMS); concatenated into one float32 vector.
    observation: list[str] = field(default_factory=lambda: ["joint_position", "joint_velocity"])
    base: BaseConfig | None = None
    simulation: SimulationConfig = field(default_factory=SimulationConfig)

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------------------ arrays
    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def n_joints(self) -> int:
        return len(self.joints)

    @property
    def position_lower(self) -> np.ndarray:
        return np.array([j.position[0] if j.position else -np.inf for j in self.joints], dtype=np.float64)

    @property
    def position_upper(self) -> np.ndarray:
        return np.array([j.position[1] if j.position else np.inf for j in self.joints], dtype=np.float64)

    @property
    def velocity_limit(self) -> np.ndarray:
        return np.array([j.velocity for j in self.joints], dtype=np.float64)

    @property
    def effort_limit(self) -> np.ndarray:
        return np.array([j.effort for j in self.joints], dtype=np.float64)

    @property
    def home_position(self) -> np.ndarray:
        return np.array([j.home for j in self.joints], dtype=np.float64)

    @property
    def state_timeout_s(self) -> float:
        return self.control.state_timeout_s

    @property
    def stale_after_periods(self) -> float:
        return self.control.stale_after_periods

    @property
    def stale_after_s(self) -> float:
        """Age (s) past which the newest joint state counts as stale."""
        return self.control.stale_after_periods / self.state.joint_state.rate_hz

    @property
    def action_kind(self) -> Literal["joint_targets", "twist"]:
        """``twist`` for a base commanded with geometry_msgs/Twist, else one target per joint."""
        return "twist" if self.command is not None and self.command.type == "geometry_msgs/Twist" else "joint_targets"

    # ------------------------------------------------------------------------------ spaces
    @property
    def observation_size(self) -> int:
        return sum(size for _, size in self.observation_layout())

    def observation_layout(self) -> list[tuple[str, int]]:
        """``(term, size)`` in observation order."""
        return [(term, OBSERVATION_TERMS[term][1] or self.n_joints) for term in self.observation]

    @property
    def observation_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, shape=(self.observation_size,), dtype=np.float32)

    @property
    def action_space(self) -> spaces.Box:
        size = 2 if self.action_kind == "twist" else self.n_joints
        return spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)

    @property
    def observed_slots(self) -> list[str]:
        """State slots the observation reads (``joint_state`` always: it paces the steps)."""
        slots = ["joint_state"]
        for term in self.observation:
            slot = OBSERVATION_TERMS[term][0]
            if slot not in slots:
                slots.append(slot)
        return slots

    # ------------------------------------------------------------------------------ mapping
    def observation_from_state(self, state: RobotState) -> np.ndarray:
        """The policy's observation (``float32``, :meth:`observation_layout` order) from a state."""
        parts = []
        for term in self.observation:
            value = _observation_term(term, state)
            if value is None:
                slot = OBSERVATION_TERMS[term][0]
                raise ValueError(f"observation term {term!r} needs the {slot} state, which this RobotState lacks")
            value = np.asarray(value, dtype=np.float64).ravel()
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"observation term {term!r} is not finite ({value}); a JointState without velocity or effort "
                    "arrays leaves them NaN: remove the term from the robot's observation or publish the field"
                )
            parts.append(value)
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)

    def command_from_action(self, action: np.ndarray) -> np.ndarray:
        """Targets for the control mode (config joint order), or ``(linear x, angular z)`` for a twist base.

        The action is clipped to ``[-1, 1]``; a non-finite action is refused rather than clipped.
        """
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        expected = self.action_space.shape[0]
        if action.shape != (expected,):
            raise ValueError(f"{self.name}: expected an action of shape ({expected},), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"{self.name}: the action has non-finite values {action}; refusing to command them")
        a = np.clip(action, -1.0, 1.0)
        if self.action_kind == "twist":
            return a * np.array([self.base.max_linear, self.base.max_angular])
        if self.control.mode == "position":
            lower, upper = self.position_lower, self.position_upper
            return lower + (a + 1.0) * 0.5 * (upper - lower)
        if self.control.mode == "velocity":
            return a * self.velocity_limit
        return a * self.effort_limit

    def action_from_command(self, targets: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`command_from_action` (for recording commands as actions), clipped to [-1, 1]."""
        targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        if self.action_kind == "twist":
            a = targets / np.array([self.base.max_linear, self.base.max_angular])
        elif self.control.mode == "position":
            lower, upper = self.position_lower, self.position_upper
            a = 2.0 * (targets - lower) / (upper - lower) - 1.0
        elif self.control.mode == "velocity":
            a = targets / self.velocity_limit
        else:
            a = targets / self.effort_limit
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def home_distance(self, state: RobotState) -> float:
        """The RobotSim-v0 task's error: joint-space distance to ``home`` (rad), or the base's distance
        (m) to ``base.home`` for a twist-commanded base."""
        if self.action_kind == "twist":
            if state.odometry is None:
                raise ValueError(f"{self.name}: the base's distance to home needs odometry")
            return float(np.linalg.norm(state.odometry.position[:2] - np.asarray(self.base.home)))
        return float(np.linalg.norm(state.position - self.home_position))


# --------------------------------------------------------------------------------------------
# State


@dataclass
class ImuState:
    orientation: np.ndarray  # (w, x, y, z)
    angular_velocity: np.ndarray  # rad/s
    linear_acceleration: np.ndarray  # m/s^2, gravity included
    stamp: float = 0.0  # header time, s
    received_at: float = 0.0  # time.monotonic() on arrival


@dataclass
class OdometryState:
    position: np.ndarray  # (x, y, z) in the odometry frame
    orientation: np.ndarray  # (w, x, y, z)
    linear_velocity: np.ndarray  # body frame (ROS: twist in child_frame_id)
    angular_velocity: np.ndarray  # body frame
    stamp: float = 0.0
    received_at: float = 0.0


@dataclass
class ImageFrame:
    data: np.ndarray  # uint8 [H, W, 3], RGB
    stamp: float = 0.0
    received_at: float = 0.0


@dataclass
class RobotState:
    """One snapshot of the robot. Joint arrays are in the config's joint order.

    ``stamp`` is the joint state's header time (the robot's clock), ``received_at`` the
    ``time.monotonic()`` at which it arrived here (this machine's clock; staleness uses it).
    ``seq`` counts joint-state messages received so far and ``dropped`` the ones missing from the
    sequence (gaps in the header stamps).
    """

    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    stamp: float = 0.0
    received_at: float = 0.0
    seq: int = 0
    dropped: int = 0
    imu: ImuState | None = None
    odometry: OdometryState | None = None
    image: ImageFrame | None = None

    def age(self, now: float) -> float:
        """Seconds since the joint state arrived (``now`` from ``time.monotonic()``)."""
        return now - self.received_at


def yaw_from_quaternion(q: np.ndarray) -> float:
    w, x, y, z = q
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def rotation_from_quaternion(q: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix (body -> world) from a (w, x, y, z) quaternion."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / max(float(np.linalg.norm(q)), 1e-12)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _observation_term(term: str, s: RobotState) -> Any:
    if term == "joint_position":
        return s.position
    if term == "joint_velocity":
        return s.velocity
    if term == "joint_effort":
        return s.effort
    if term.startswith("imu_"):
        if s.imu is None:
            return None
        if term == "imu_orientation":
            return s.imu.orientation
        if term == "imu_angular_velocity":
            return s.imu.angular_velocity
        if term == "imu_linear_acceleration":
            return s.imu.linear_acceleration
        return rotation_from_quaternion(s.imu.orientation).T @ np.array([0.0, 0.0, -1.0])  # imu_projected_gravity
    if s.odometry is None:
        return None
    o = s.odometry
    if term == "odom_position":
        return o.position
    if term == "odom_orientation":
        return o.orientation
    if term == "odom_pose_2d":
        yaw = yaw_from_quaternion(o.orientation)
        return [o.position[0], o.position[1], math.cos(yaw), math.sin(yaw)]
    if term == "odom_linear_velocity":
        return o.linear_velocity
    if term == "odom_angular_velocity":
        return o.angular_velocity
    return [o.linear_velocity[0], o.angular_velocity[2]]  # odom_twist_2d


# --------------------------------------------------------------------------------------------
# Loading and validation


def robot_config_path(name_or_path: str | Path) -> Path:
    """``"franka"`` -> the shipped ``robots/franka.yaml``; a path (``.yaml``, or with a slash) as is."""
    return find_named(name_or_path, "robot")


def available_robots() -> list[str]:
    """The robots shipped with roboreward (``franka``, ``g1``, ``diff_drive``)."""
    return shipped_names("robot")


def load_robot_config(
    name_or_path: str | Path | RobotConfig, overrides: list[str] | tuple[str, ...] = ()
) -> RobotConfig:
    """Read a robot YAML (a shipped name or a path), apply ``key.sub=value`` overrides, validate.

    Errors are :class:`ConfigError` s that start with the file and name the field.
    """
    if isinstance(name_or_path, RobotConfig):
        if overrides:
            raise ConfigError("overrides apply to a robot file; give a name or a path with them, not a RobotConfig")
        return name_or_path
    path = robot_config_path(name_or_path)
    data = read_yaml(path, "robot file")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping (name:, joints:, control:, ...), got {type(data).__name__}"
        )
    try:
        for override in overrides:
            apply_override(data, override)
        data.setdefault("name", path.stem)
        return from_dict(RobotConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path.name}: {e}") from None


def _validate(robot: RobotConfig) -> None:
    """Cross-field checks, each naming its full key (nested dataclasses do not know their keys)."""
    if not robot.name:
        raise ConfigError("name: missing; give the robot a name (e.g. name: franka)")
    if not robot.joints:
        raise ConfigError("joints: missing or empty; list the robot's joints with name, position, velocity, effort")
    seen: dict[str, int] = {}
    model_seen: dict[str, int] = {}
    for i, j in enumerate(robot.joints):
        key = f"joints[{i}]"
        if not j.name:
            raise ConfigError(f"{key}.name: missing; give the joint's name as the robot's JointState messages write it")
        if j.name in seen:
            raise ConfigError(f"{key}.name: {j.name!r} repeats joints[{seen[j.name]}].name; joint names must be unique")
        seen[j.name] = i
        if j.model_joint in model_seen:
            raise ConfigError(
                f"{key}.mjcf_joint: {j.model_joint!r} is already used by joints[{model_seen[j.model_joint]}]"
            )
        model_seen[j.model_joint] = i
        if j.position is not None:
            if len(j.position) != 2:
                raise ConfigError(f"{key}.position: expected [lower, upper], got {j.position!r}")
            lower, upper = j.position
            if not lower < upper:
                raise ConfigError(
                    f"{key}.position: lower {lower} > upper {upper}; give [lower, upper] with lower < upper"
                )
            if not lower <= j.home <= upper:
                raise ConfigError(f"{key}.home: {j.home} is outside the joint's position limits [{lower}, {upper}]")
        for limit in ("velocity", "effort"):
            if getattr(j, limit) is None:
                raise ConfigError(f"{key}.{limit}: missing; give the joint's {limit} limit (a positive number)")

    c = robot.control
    js = robot.state.joint_state
    if js is None:
        raise ConfigError(
            "state.joint_state: missing; every robot publishes sensor_msgs/JointState (topic, type, rate_hz)"
        )
    for slot, topic in robot.state.topics().items():
        _validate_topic(f"state.{slot}", topic, (STATE_MESSAGE_TYPES[slot],))
        if topic.rate_hz is None:
            raise ConfigError(f"state.{slot}.rate_hz: missing; give how often the robot publishes it (Hz)")
    if js.rate_hz < c.rate_hz:
        raise ConfigError(
            f"state.joint_state.rate_hz: {js.rate_hz} is below control.rate_hz {c.rate_hz}; every step waits for a "
            "joint state newer than its command, so the robot must publish state at least as fast as it is commanded"
        )

    if robot.command is None:
        raise ConfigError("command: missing; give the command topic (topic, type, qos)")
    _validate_topic("command", robot.command, COMMAND_MESSAGE_TYPES)
    if robot.command.type == "geometry_msgs/Twist":
        if robot.base is None:
            raise ConfigError(
                "base: missing; a robot commanded with geometry_msgs/Twist needs base: (wheels, radius, ...)"
            )
        if c.mode != "velocity":
            raise ConfigError(f"control.mode: {c.mode!r} does not fit geometry_msgs/Twist commands; use velocity")
    if robot.base is not None:
        for side in ("left_wheel", "right_wheel"):
            wheel = getattr(robot.base, side)
            if wheel not in seen:
                raise ConfigError(f"base.{side}: {wheel!r} is not one of the joints {list(seen)}")
        if len(robot.base.home) != 2:
            raise ConfigError(f"base.home: expected [x, y], got {robot.base.home!r}")

    for i, term in enumerate(robot.observation):
        if term not in OBSERVATION_TERMS:
            raise ConfigError(f"observation[{i}]: unknown term {term!r}; choose from {sorted(OBSERVATION_TERMS)}")
        slot = OBSERVATION_TERMS[term][0]
        if getattr(robot.state, slot) is None:
            raise ConfigError(
                f"observation[{i}]: {term!r} reads state.{slot}, which is not configured; add it or drop the term"
            )
    if len(set(robot.observation)) != len(robot.observation):
        raise ConfigError(f"observation: terms repeat in {robot.observation}")
    if not robot.observation:
        raise ConfigError("observation: empty; list at least one term, e.g. [joint_position, joint_velocity]")


def _validate_topic(key: str, topic: StateTopicConfig | CommandTopicConfig, allowed: tuple[str, ...]) -> None:
    if not topic.topic:
        raise ConfigError(f"{key}.topic: missing; give the ROS 2 topic name, e.g. /joint_states")
    if not _TOPIC_NAME.match(topic.topic):
        raise ConfigError(
            f"{key}.topic: {topic.topic!r} is not a valid ROS 2 topic name; use letters, digits, _ and / "
            "(no spaces, no trailing or double slash, no leading digit)"
        )
    if not topic.type:
        raise ConfigError(f"{key}.type: missing; give the message type, one of {list(allowed)}")
    if topic.type not in allowed:
        raise ConfigError(
            f"{key}.type: {topic.type!r} is not a supported message type here; use one of {list(allowed)}"
        )


__all__ = [
    "COMMAND_MESSAGE_TYPES",
    "OBSERVATION_TERMS",
    "STATE_MESSAGE_TYPES",
    "BaseConfig",
    "CommandTopicConfig",
    "ControlConfig",
    "ImageFrame",
    "ImageTopicConfig",
    "ImuState",
    "JointConfig",
    "OdometryState",
    "QosConfig",
    "RobotConfig",
    "RobotState",
    "SimulationConfig",
    "StateConfig",
    "StateTopicConfig",
    "available_robots",
    "load_robot_config",
    "robot_config_path",
]
