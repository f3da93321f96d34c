"""``sink: {type: ros2}``: the teleoperation session commands a robot over ROS 2 instead of the simulation.

The cockpit (:mod:`roboreward.teleop.session`) turns device readings into joint targets of a *teleop
robot* (``configs/teleop/robots/*.yaml``, a MuJoCo model whose joint names are the model's). This
sink sends those targets to the robot described by a *robot file* (``configs/robots/*.yaml``, joint
names as the robot's driver writes them), on its command topic with its message type and QoS, and
reads the robot's JointState back for recording — so the same session that drives the simulation
drives ``roboreward sim-robot`` or the real arm::

    roboreward sim-robot franka --domain-id 7 --no-images            # or the robot's own driver
    roboreward teleop run --robot franka --simulated --sink ros2 --ros-robot franka --domain-id 7

The session config's ``sink:`` section is a :class:`RosSinkConfig` (``type: ros2``); its keys are the
``sink.*`` overrides (``sink.robot=franka sink.domain_id=7``), and ``--ros-robot``, ``--domain-id`` and
``--discovery`` set them from the command line.

**Joints are matched by name.** ``sink.joint_map`` (teleop joint -> robot joint, null: not sent), on
top of the section for the robot file in ``configs/teleop/ros/<teleop robot>.yaml``, renames; any
other joint keeps its name. Every teleop joint must land on a joint of the robot file or be mapped to
null (a gripper with a controller of its own), and every joint of the robot file must be driven or
listed in ``sink.hold_joints`` (held where it was when the session started). Anything else stops
before a message is sent, with a :class:`~roboreward.config.ConfigError` naming the joints.

**The robot file's limits hold whatever the devices say.** Targets pass through the deploy loop's
:class:`~roboreward.hardware.safety.SafetyLayer`: clamped into the file's position limits (less
``sink.position_margin``), moved at most ``velocity limit x sink.velocity_scale x period`` per command,
NaN/inf replaced by the hold. The first command is limited from the *measured* position, so a robot
standing elsewhere ramps to the operator's pose instead of jumping; and the teleop robot's targets are
set to the measured pose when the sink connects, so the session's start blend starts there too.

**Nothing on the command path waits for ROS.** :meth:`RosCommandSink.send` and :meth:`~RosCommandSink.hold`
only store a reference under a lock (microseconds). A publisher thread sends the newest targets once per
control period (the file's ``control.rate_hz``, or ``sink.rate_hz``) on a fixed grid, so the safety
layer's per-period step is a true velocity limit; a command waits at most one period for its slot (20 ms
at the Franka's 50 Hz: raise ``sink.rate_hz`` for a driver that takes more). Without new commands the
last targets are re-sent each period, the stream that ros2_control's forward controllers and drivers'
command watchdogs expect. After :meth:`~RosCommandSink.hold` (a device unplugged) the measured joint
positions are sent until a command made after the hold arrives.

**Recording.** :meth:`~RosCommandSink.observe` is the newest JointState (robot file order, reordered by
name) and the newest camera image of the file's ``state.image`` topic, resized to the recording's
size; :meth:`~RosCommandSink.applied_action` the targets last published. A dataset recorded over ROS 2
therefore holds the robot's own joints (``panda_joint1.pos``, ``panda_joint1.target``, ...), like
``roboreward record``.

**A walking robot** (``sink.locomotion: true``; the G1 with ``roboreward deploy --locomotion`` on the
robot side, :mod:`roboreward.hardware.locomotion`): the robot's own loop runs its legs, so the sink
sends only what the operator drives, at the same rate: the mapped joints' targets (after the same
safety layer) as a ``sensor_msgs/JointState`` by name on ``sink.targets_topic``, and the pedal's walking
command as a ``geometry_msgs/Twist`` on ``sink.cmd_vel_topic`` (``linear.x`` forward, ``angular.z`` yaw
rate, ``linear.z`` the base height). Robot joints no teleop joint drives (the legs) need no
``hold_joints`` then. Recordings hold the robot's joints and, when the robot file has odometry, its base
pose; the action is the sent targets and the walking command.

Every process joins the graph through :class:`~roboreward.hardware.ros.RosSession`: DDS discovery
stays on this machine unless ``sink.discovery: subnet``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from roboreward.config import bounded, find_named, read_yaml, shipped_dir, shipped_names
from roboreward.errors import ConfigError, DeviceError, RoborewardError
from roboreward.hardware.robot import RobotConfig, load_robot_config, yaw_from_quaternion
from roboreward.hardware.safety import SafetyConfig, SafetyLayer
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.dataset import BASE_COMMAND_NAMES, BASE_POSE_NAMES
from roboreward.teleop.sinks import CommandSink, Observation, SinkConfig, TeleopCommand


class RobotNotConnectedError(DeviceError):
    """The robot's joint state did not arrive in time (nothing on the topic, wrong domain or discovery)."""


# --------------------------------------------------------------------------------------------
# Joint names: teleop robot -> robot file


@dataclass(frozen=True)
class JointMapping:
    """Which entries of the session's target vector go where in the robot's command.

    :param teleop_index: entries of ``TeleopCommand.targets`` that are sent.
    :param robot_index: the robot file's joints they drive (same length, same order).
    :param unsent: teleop joints mapped to null.
    :param held: robot joints no teleop joint drives (``sink.hold_joints``).
    """

    teleop_names: list[str]
    robot_names: list[str]
    teleop_index: np.ndarray
    robot_index: np.ndarray
    unsent: list[str]
    held: list[str]

    def describe(self) -> str:
        pairs = [f"{self.teleop_names[t]}->{self.robot_names[r]}" for t, r in zip(self.teleop_index, self.robot_index)]
        extra = (f"; not sent: {self.unsent}" if self.unsent else "") + (f"; held: {self.held}" if self.held else "")
        return ", ".join(pairs) + extra


def load_joint_map(teleop_robot: str, robot_name: str) -> dict[str, str | None]:
    """The section ``robot_name`` of ``configs/teleop/ros/<teleop_robot>.yaml``; {} when there is none."""
    if teleop_robot not in shipped_names("joint map"):
        return {}
    path = find_named(teleop_robot, "joint map")
    data = read_yaml(path, "joint map") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected robot file names mapping to sections of teleop joint -> robot joint")
    section = data.get(robot_name) or {}
    if not isinstance(section, dict) or not all(v is None or isinstance(v, str) for v in section.values()):
        raise ConfigError(f"{path}: {robot_name}: expected teleop joint -> robot joint name (or null), got {section!r}")
    return {str(k): v for k, v in section.items()}


def joint_mapping(
    teleop_names: Sequence[str], robot: RobotConfig, config: RosSinkConfig, teleop_robot: str = "teleop robot"
) -> JointMapping:
    """Match the session's joints to the robot file's by name (see the module docstring); ConfigError otherwise."""
    teleop_names = list(teleop_names)
    robot_names = robot.joint_names
    file_map = load_joint_map(teleop_robot, robot.name)
    for key in config.joint_map:
        if key not in teleop_names:
            raise ConfigError(
                f"sink.joint_map.{key}: {key!r} is not a joint of the teleop robot {teleop_robot}; "
                f"its joints: {teleop_names}"
            )
    names = {**file_map, **config.joint_map}
    pairs: list[tuple[int, int]] = []
    unsent: list[str] = []
    lacking: list[str] = []
    driven_by: dict[str, str] = {}
    index = {n: i for i, n in enumerate(robot_names)}
    for t, name in enumerate(teleop_names):
        target = names.get(name, name)
        if target is None:
            unsent.append(name)
            continue
        if target not in index:
            lacking.append(name if target == name else f"{name} (mapped to {target!r})")
            continue
        if target in driven_by:
            raise ConfigError(
                f"sink.joint_map: teleop joints {driven_by[target]!r} and {name!r} both drive {robot.name}'s "
                f"{target!r}; map each robot joint from one teleop joint"
            )
        driven_by[target] = name
        pairs.append((t, index[target]))
    if lacking:
        raise ConfigError(
            f"sink.joint_map: the session drives {', '.join(lacking)}, which the robot file {robot.name} lacks "
            f"(its joints: {robot_names}); map each to a robot joint (sink.joint_map.{teleop_names[0]}="
            f"{robot_names[0]}) or to null to leave it unsent (sink.joint_map.{lacking[0].split(' ')[0]}=null), "
            f"or give the map once as a section '{robot.name}:' in "
            f"{shipped_dir('joint map') / (teleop_robot + '.yaml')}"
        )
    for i, name in enumerate(config.hold_joints):
        if name not in index:
            raise ConfigError(
                f"sink.hold_joints[{i}]: {name!r} is not a joint of {robot.name}; its joints: {robot_names}"
            )
        if name in driven_by:
            raise ConfigError(
                f"sink.hold_joints[{i}]: {name!r} is driven by the teleop joint {driven_by[name]!r}; "
                "remove it from hold_joints or map that teleop joint to null"
            )
    undriven = [n for n in robot_names if n not in driven_by and n not in config.hold_joints]
    if undriven and not config.locomotion:  # a walking robot's own policy drives the rest
        raise ConfigError(
            f"sink.hold_joints: the session does not drive {robot.name}'s joints {undriven}; map a teleop joint to "
            f"each (sink.joint_map.JOINT={undriven[0]}) or list them in sink.hold_joints to hold them where they are "
            "when the session starts"
        )
    if not pairs:
        raise ConfigError(f"sink.joint_map: no joint of the teleop robot {teleop_robot} drives a joint of {robot.name}")
    return JointMapping(
        teleop_names=teleop_names,
        robot_names=robot_names,
        teleop_index=np.array([t for t, _ in pairs], dtype=int),
        robot_index=np.array([r for _, r in pairs], dtype=int),
        unsent=unsent,
        held=[n for n in robot_names if n in config.hold_joints],
    )


def check_robot_file(robot: RobotConfig) -> None:
    """The cockpit sends joint positions: the robot file must take position targets per joint."""
    if robot.action_kind == "twist":
        raise ConfigError(
            f"sink.robot: {robot.name} is commanded with geometry_msgs/Twist; the cockpit sends joint positions: "
            "give a robot file with joint position commands"
        )
    if robot.control.mode != "position":
        raise ConfigError(
            f"sink.robot: {robot.name}'s control.mode is {robot.control.mode!r}; the cockpit sends joint positions: "
            "use a robot file (or controller) with control.mode: position"
        )


# --------------------------------------------------------------------------------------------
# The sink


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of ``uint8 [H, W, 3]`` (cheap; the recording's size is small)."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(frame)
    rows = (np.arange(height) * h // height).clip(0, h - 1)
    cols = (np.arange(width) * w // width).clip(0, w - 1)
    return np.ascontiguousarray(frame[rows][:, cols])


class RosCommandSink(CommandSink):
    """The session's commands to a robot file's command topic; its state from the joint-state topic.

    :param robot: the robot file.
    :param mapping: from :func:`joint_mapping`.
    :param teleop_robot: the session's robot; its targets are set to the measured pose on connect.
    :param rate_hz: messages per second (default: ``robot.control.rate_hz``).
    :param safety: the limits on top of the robot file's (velocity scale, margin, max step).
    :param frame_size: ``(width, height)`` camera frames are resized to.
    :param walking_topics: ``(targets_topic, cmd_vel_topic)`` for a robot that walks by its own policy
        (``sink.locomotion``): the mapped joints' targets and the walking command go there instead of
        the robot's command topic.
    """

    name = "ros2"
    applied_at = "publish"

    def __init__(
        self,
        robot: RobotConfig,
        mapping: JointMapping,
        *,
        teleop_robot: Any = None,
        domain_id: int | None = None,
        discovery: str = "localhost",
        rate_hz: float | None = None,
        safety: SafetyConfig | None = None,
        connect_timeout_s: float = 10.0,
        frame_size: tuple[int, int] = (128, 96),
        node_name: str = "roboreward_teleop",
        walking_topics: tuple[str, str] | None = None,
    ) -> None:
        from roboreward.hardware.ros import CommandPublisher, RosSession, StaleStateError, StateSubscriber

        super().__init__()
        check_robot_file(robot)
        self.robot = robot
        self.mapping = mapping
        self.frame_size = frame_size
        self.period = 1.0 / (rate_hz if rate_hz is not None else robot.control.rate_hz)
        self.safety = SafetyLayer.from_robot(robot, safety, period_s=self.period)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.error: BaseException | None = None  # the publisher thread's, re-raised by send()
        self._pending: TeleopCommand | None = None
        self._hold_at: float | None = None  # set by hold(), taken by the publisher thread
        self._held_at: float | None = None
        self._applied: TeleopCommand | None = None
        self._thread: threading.Thread | None = None
        self.published = 0
        self.holds = 0
        self.missing_images = 0
        self.walking = walking_topics is not None
        self._base = LocoCommand(0.0, 0.0, 0.0)

        self.session = RosSession(node_name, domain_id=domain_id, discovery=discovery)
        try:
            self.subscriber = StateSubscriber(self.session.node, robot)
            if walking_topics is None:
                self.publisher = CommandPublisher(self.session.node, robot)
            else:
                self.publisher = _WalkingPublisher(self.session.node, robot, mapping, *walking_topics)
            # A walking robot's recordings hold its base pose: wait for odometry too, so no frame lacks it.
            slots = ["joint_state", "odometry"] if self._records_base_pose else ["joint_state"]
            try:
                state = self.subscriber.wait_for_fresh(-np.inf, connect_timeout_s, slots=slots)
            except StaleStateError:
                missing = [s for s in slots if self.subscriber.stats[s].last_received_at is None] or slots
                topic, domain = getattr(robot.state, missing[0]), self.session.domain_id
                raise RobotNotConnectedError(
                    f"{robot.name}: no {topic.type} arrived on {topic.topic} within {connect_timeout_s:g} s on "
                    f"ROS_DOMAIN_ID={domain} (discovery {discovery}); start the robot's driver or "
                    f"`roboreward sim-robot {robot.name} --domain-id {domain}`, or set sink.domain_id / sink.discovery "
                    "to the robot's (sink.connect_timeout_s waits longer)"
                ) from None
        except BaseException:
            self.session.close()
            raise
        measured = np.asarray(state.position, dtype=np.float64)
        # Held joints keep this; driven ones start here and are overwritten by the first command.
        self._desired = np.clip(measured, robot.position_lower, robot.position_upper)
        self._sent = self._desired.copy()
        if teleop_robot is not None and hasattr(teleop_robot, "set_targets"):
            start = np.asarray(teleop_robot.targets, dtype=np.float64)
            start[mapping.teleop_index] = measured[mapping.robot_index]
            teleop_robot.set_targets(start)  # the session's start blend begins at the robot's real pose
        self._thread = threading.Thread(target=self._run, name="teleop-ros2-publisher", daemon=True)
        self._thread.start()

    # -- the command path (command thread) ----------------------------------------------------

    @property
    def joint_names(self) -> list[str]:
        return self.mapping.teleop_names

    def send(self, command: TeleopCommand) -> None:
        if self.error is not None:
            if isinstance(self.error, RoborewardError):
                raise self.error
            raise RuntimeError(f"publishing to {self.robot.name} failed: {self.error!r}") from self.error
        with self._lock:
            self._pending = command

    def hold(self) -> None:
        with self._lock:
            self._hold_at = time.monotonic()

    # -- the publisher thread -------------------------------------------------------------------

    def _run(self) -> None:
        next_t = time.monotonic()
        try:
            while not self._stop.wait(max(0.0, next_t - time.monotonic())):
                now = time.monotonic()
                self._publish(now)
                next_t += self.period
                if now - next_t > self.period:  # far behind (a stalled machine): resume, don't burst
                    next_t = now
        except BaseException as e:  # noqa: BLE001 - handed to the command thread by send()
            self.error = e

    def _publish(self, now: float) -> None:
        with self._lock:
            command, self._pending = self._pending, None
            hold_at, self._hold_at = self._hold_at, None
        state = self.subscriber.state
        measured = None if state is None else state.position
        if hold_at is not None:
            self._held_at = hold_at
            self.holds += 1
            if measured is not None:
                self._desired = np.asarray(measured, dtype=np.float64).copy()
        # Targets made before the latest hold are stale (the device was already gone): keep holding.
        if command is not None and command.targets is not None and (self._held_at is None or command.t > self._held_at):
            desired = self._desired.copy()
            desired[self.mapping.robot_index] = np.asarray(command.targets, dtype=np.float64)[self.mapping.teleop_index]
            self._desired = desired
            self._applied = command
            self.apply_latency.append(now - command.t)  # command made -> published
        if command is not None and command.base is not None:
            self._base = command.base
        targets = self.safety.filter(self._desired, position=measured)
        if self.walking:
            self.publisher.publish(targets, self._base)
        else:
            self.publisher.publish(targets)
        self._sent = targets
        self.published += 1

    # -- the main thread -----------------------------------------------------------------------

    @property
    def cameras(self) -> list[str]:
        """The robot's camera (the file's ``state.image``), named after its ``camera`` (else ``image``)."""
        image = self.robot.state.image
        return [] if image is None else [image.camera or "image"]

    def recording_metadata(self) -> dict[str, Any]:
        """The robot file and the renaming: ``teleop replay`` maps the recorded columns back to the teleop robot."""
        m = self.mapping
        joint_map: dict[str, str | None] = {
            m.teleop_names[t]: m.robot_names[r] for t, r in zip(m.teleop_index, m.robot_index)
        }
        joint_map.update({name: None for name in m.unsent})
        return {"robot_file": self.robot.name, "joint_map": joint_map, "held": list(m.held)}

    @property
    def has_base(self) -> bool:
        return self.walking

    @property
    def state_names(self) -> list[str]:
        names = [f"{n}.pos" for n in self.robot.joint_names]
        return names + list(BASE_POSE_NAMES) if self._records_base_pose else names

    @property
    def action_names(self) -> list[str]:
        if self.walking:  # what the sink sends: the operator's joints, and the walking command
            driven = [self.robot.joint_names[r] for r in self.mapping.robot_index]
            return [f"{n}.target" for n in driven] + list(BASE_COMMAND_NAMES)
        return [f"{n}.target" for n in self.robot.joint_names]

    @property
    def _records_base_pose(self) -> bool:
        return self.walking and self.robot.state.odometry is not None

    def observe(self, cameras: Sequence[str]) -> Observation:
        state = self.subscriber.state
        assert state is not None  # the constructor waited for the first one
        images: dict[str, np.ndarray] = {}
        width, height = self.frame_size
        for camera in cameras:
            if camera not in self.cameras:
                raise ConfigError(f"camera {camera!r} is not one of {self.robot.name}'s: {self.cameras}")
            if state.image is None:  # no frame yet (the camera starts later than the joints): black, counted
                self.missing_images += 1
                images[camera] = np.zeros((height, width, 3), dtype=np.uint8)
            else:
                images[camera] = _resize(state.image.data, width, height)
        position = np.asarray(state.position, dtype=np.float64).copy()
        if self._records_base_pose:
            position = np.concatenate([position, _base_pose(state.odometry)])
        return Observation(state=position, images=images)

    def applied_action(self) -> tuple[np.ndarray, TeleopCommand | None]:
        sent = np.asarray(self._sent, dtype=np.float64).copy()
        if self.walking:
            b = self._base
            sent = np.concatenate([sent[self.mapping.robot_index], [b.vx, b.yaw_rate, b.height]])
        return sent, self._applied

    def counters(self) -> dict[str, Any]:
        """Messages published, holds, the safety layer's clamps and the state topics' counters."""
        return {"published": self.published, "holds": self.holds, "missing_images": self.missing_images,
                "safety": self.safety.counters.as_dict(), "state": self.subscriber.counters()}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.session.close()


def _base_pose(odometry: Any) -> np.ndarray:
    """``[x, y, yaw, height]`` from an odometry reading (the sink waited for the first)."""
    yaw = yaw_from_quaternion(odometry.orientation)
    return np.array([odometry.position[0], odometry.position[1], yaw, odometry.position[2]])


class _WalkingPublisher:
    """A walking robot's inputs: the operator's joint targets by name, and the walking command as a Twist."""

    def __init__(self, node: Any, robot: RobotConfig, mapping: JointMapping, targets_topic: str, cmd_vel_topic: str):
        from geometry_msgs.msg import Twist
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState

        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self._targets = node.create_publisher(JointState, targets_topic, qos)
        self._twist = node.create_publisher(Twist, cmd_vel_topic, qos)
        self._index = mapping.robot_index
        self._msg = JointState()
        self._msg.name = [robot.joint_names[r] for r in mapping.robot_index]
        self._node = node

    def publish(self, targets: np.ndarray, base: LocoCommand) -> None:
        from geometry_msgs.msg import Twist

        values = np.asarray(targets, dtype=np.float64)[self._index]
        if not np.all(np.isfinite(values)):
            raise ValueError(f"refusing to publish non-finite joint targets {values.tolist()}")
        msg = self._msg
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.position = values.tolist()
        self._targets.publish(msg)
        twist = Twist()
        twist.linear.x, twist.angular.z, twist.linear.z = float(base.vx), float(base.yaw_rate), float(base.height)
        self._twist.publish(twist)

    @property
    def subscription_count(self) -> int:
        return self._targets.get_subscription_count()


@SinkConfig.register_subclass("ros2")
@dataclass(kw_only=True)
class RosSinkConfig(SinkConfig):
    """``sink: {type: ros2, robot: ...}``: the ROS 2 robot the commands go to (see the module docstring)."""

    robot: str | None = bounded(None, "robot file: a name in configs/robots (e.g. franka) or a YAML path")
    # The teleop robots use their MuJoCo model's joint names, a robot file its driver's.
    joint_map: dict[str, str | None] = bounded(
        {}, "teleop joint -> robot joint (null: not sent), over configs/teleop/ros/<teleop robot>.yaml; else same name"
    )
    hold_joints: list[str] = bounded([], "robot joints the session does not drive: held where they are at the start")
    domain_id: int | None = bounded(None, "ROS_DOMAIN_ID (null: the environment's)", ge=0, le=232)
    discovery: Literal["localhost", "subnet"] = bounded("localhost", "DDS discovery: this machine, or the LAN")
    rate_hz: float | None = bounded(None, "commands per second; null: the robot file's control.rate_hz", gt=0, le=2000)
    # The devices, their calibration and the teleop robot's limits are not the robot's: its own file is.
    velocity_scale: float = bounded(1.0, "fraction of each joint's velocity limit a command may use", gt=0.0, le=1.0)
    position_margin: float = bounded(0.0, "keep targets this far inside the robot file's limits (rad or m)", ge=0.0)
    connect_timeout_s: float = bounded(10.0, "seconds to wait for the robot's first joint state", gt=0.0, le=600.0)
    # A robot that walks by its own policy (roboreward deploy --locomotion): see the module docstring.
    locomotion: bool = bounded(False, "send joint targets and the walking command to the robot's locomotion policy")
    targets_topic: str = bounded("/teleop/joint_targets", "locomotion: the operator's joint targets (JointState)")
    cmd_vel_topic: str = bounded("/cmd_vel", "locomotion: the walking command (geometry_msgs/Twist)")

    def __post_init__(self) -> None:
        if self.robot is None:
            raise ConfigError(
                "sink.robot: missing; sink type ros2 needs the robot file to command, e.g. --ros-robot franka "
                "(configs/robots/franka.yaml) or sink.robot=path/to/robot.yaml"
            )

    def build(self, robot: Any, *, frame_size: tuple[int, int] = (128, 96)) -> RosCommandSink:
        """Connect to the robot file's topics for the teleop robot ``robot``; waits for the first joint state."""
        try:
            robot_file = load_robot_config(self.robot)  # type: ignore[arg-type]
        except ConfigError as e:
            raise ConfigError(f"sink.robot: {e}") from None
        if robot is None or not hasattr(robot, "joint_names"):
            raise ConfigError("sink type ros2 needs the session's teleop robot (its joint names) to map onto the "
                              "robot file")
        check_robot_file(robot_file)
        mapping = joint_mapping(robot.joint_names, robot_file, self, getattr(robot, "name", "teleop robot"))
        safety = SafetyConfig(velocity_scale=self.velocity_scale, position_margin=self.position_margin)
        return RosCommandSink(
            robot_file, mapping, teleop_robot=robot, domain_id=self.domain_id, discovery=self.discovery,
            rate_hz=self.rate_hz, safety=safety, connect_timeout_s=self.connect_timeout_s, frame_size=frame_size,
            walking_topics=(self.targets_topic, self.cmd_vel_topic) if self.locomotion else None,
        )


__all__ = [
    "JointMapping",
    "RobotNotConnectedError",
    "RosCommandSink",
    "RosSinkConfig",
    "check_robot_file",
    "joint_mapping",
    "load_joint_map",
]
