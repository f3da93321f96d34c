"""The ROS 2 layer (rclpy): the robot file's topics as publishers and subscriptions, and the
conversion between messages and :class:`~roboreward.hardware.robot.RobotState` / command targets.

Both ends of the bridge use this module: :class:`StateSubscriber` and :class:`CommandPublisher`
on the policy's side (:class:`~roboreward.hardware.env.RosRobotEnv`, the deploy node), and
:class:`StatePublisher` and :class:`CommandSubscriber` on the robot's side (``roboreward sim-robot``).
Both read the same robot file, so topic names, message types and QoS agree by construction.

What the subscriber guarantees, because a policy acting on old data is the failure that breaks
robots:

- JointState arrays are reordered *by name* into the robot file's joint order (drivers publish in
  their own order; the simulated robot deliberately uses MuJoCo's). A message that lacks one of the
  robot's joints is ignored and counted, never half-applied.
- Every message is stamped with its arrival time (``time.monotonic()``). :meth:`StateSubscriber.wait_for_fresh`
  returns only a state that arrived after a given moment (the command it must reflect), and raises
  :class:`StaleStateError` — naming the topic, the age of the newest message and the timeout —
  when none comes in time.
- Drops are counted from the header stamps: a gap of ``k`` periods means ``k - 1`` missing messages.
  Messages older than the newest one seen (reordering, a restarted publisher) are ignored and counted.

Every process joins the ROS 2 graph through :func:`ros_environment` (or :class:`RosSession`), which
keeps discovery on this machine unless told ``discovery="subnet"`` for a real robot on the LAN.
"""

from __future__ import annotations

import array
import math
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time as TimeMsg
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, ShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, Imu, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from roboreward.errors import ConfigError, DeviceError
from roboreward.hardware.robot import (
    ImageFrame,
    ImuState,
    OdometryState,
    QosConfig,
    RobotConfig,
    RobotState,
    StateTopicConfig,
)

MESSAGE_CLASSES: dict[str, type] = {
    "sensor_msgs/JointState": JointState,
    "sensor_msgs/Imu": Imu,
    "sensor_msgs/Image": Image,
    "nav_msgs/Odometry": Odometry,
    "trajectory_msgs/JointTrajectory": JointTrajectory,
    "std_msgs/Float64MultiArray": Float64MultiArray,
    "geometry_msgs/Twist": Twist,
}

DISCOVERY_RANGES = {"localhost": "LOCALHOST", "subnet": "SUBNET"}


class StaleStateError(DeviceError):
    """No state newer than required arrived within the timeout. The step did not happen."""

    def __init__(self, message: str, *, topic: str, age: float | None, timeout: float):
        super().__init__(message)
        self.topic = topic
        self.age = age  # seconds since the newest message arrived; None if none ever did
        self.timeout = timeout


# --------------------------------------------------------------------------------------------
# Joining the graph


# Fast DDS defaults for discovery on this machine: announce every 0.5 s instead of 3 s (the file says why).
LOCALHOST_PROFILE = Path(__file__).with_name("fastdds_localhost.xml")
PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


def ros_environment(domain_id: int | None = None, discovery: str = "localhost") -> dict[str, str]:
    """Set ``ROS_DOMAIN_ID`` and ``ROS_AUTOMATIC_DISCOVERY_RANGE`` for this process (before ``rclpy.init``).

    With ``discovery="localhost"`` and Fast DDS (ROS's default RMW), also point Fast DDS at
    ``fastdds_localhost.xml`` (quicker participant announcements) unless a profile file is set already.

    :param domain_id: 0..232; None keeps the environment's (ROS's default: 0).
    :param discovery: ``"localhost"`` keeps DDS discovery on this machine (tests, CI, sim-robot);
        ``"subnet"`` widens it to the LAN, which a real robot on the network needs.
    :return: the ROS variables now set, for passing to subprocesses.
    """
    if discovery not in DISCOVERY_RANGES:
        raise ConfigError(
            f"discovery={discovery!r} is not allowed; choose 'localhost' (this machine only) "
            "or 'subnet' (a robot on the LAN)"
        )
    if domain_id is not None:
        if isinstance(domain_id, bool) or not isinstance(domain_id, int) or not 0 <= domain_id <= 232:
            raise ConfigError(
                f"ROS domain id {domain_id!r} is out of range; use an integer in 0..232 (0..101 is safest)"
            )
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = DISCOVERY_RANGES[discovery]
    if discovery == "localhost" and (os.environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp") == "rmw_fastrtps_cpp":
        # Quicker discovery on this machine (see the file); a profile of the user's own always wins.
        if not any(os.environ.get(k) for k in PROFILE_VARIABLES):
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LOCALHOST_PROFILE)
    return {
        k: os.environ[k] for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", *PROFILE_VARIABLES)
        if os.environ.get(k)
    }


def node_name_for(text: str) -> str:
    """A valid ROS node name from any text (letters, digits, underscores; not starting with a digit)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if name and not name[0].isdigit() else f"n_{name}"


class RosSession:
    """An rclpy context of its own, one node and an executor spinning in a background thread.

    A private context lets several sessions (an env, a deploy node, a test's helper) live in one
    process and shut down independently. rclpy's signal handlers are not installed: Ctrl-C stays a
    ``KeyboardInterrupt`` in the main thread, and each program decides how to stop.

    :param node_name: made valid with :func:`node_name_for`.
    :param spin: spin the executor in a thread (False: the caller calls ``executor.spin_once``).
    """

    def __init__(
        self, node_name: str, *, domain_id: int | None = None, discovery: str = "localhost", spin: bool = True
    ):
        ros_environment(domain_id, discovery)
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id, signal_handler_options=SignalHandlerOptions.NO)
        self.domain_id = self.context.get_domain_id()
        self.node: Node = rclpy.create_node(node_name_for(node_name), context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if spin:
            self._thread = threading.Thread(target=self._spin, name=f"ros-{node_name}", daemon=True)
            self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except (ExternalShutdownException, ShutdownException):
                break

    def now(self) -> float:
        """ROS time (s) of this node's clock."""
        return self.node.get_clock().now().nanoseconds * 1e-9

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            self.context.try_shutdown()

    def __enter__(self) -> RosSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def qos_profile(cfg: QosConfig) -> QoSProfile:
    """The rclpy QoS of a topic's ``qos:`` section."""
    return QoSProfile(
        reliability=ReliabilityPolicy.RELIABLE if cfg.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.VOLATILE if cfg.durability == "volatile" else DurabilityPolicy.TRANSIENT_LOCAL,
        history=HistoryPolicy.KEEP_LAST if cfg.history == "keep_last" else HistoryPolicy.KEEP_ALL,
        depth=cfg.depth,
    )


# --------------------------------------------------------------------------------------------
# Messages <-> states and targets


def time_msg(seconds: float) -> TimeMsg:
    sec = int(np.floor(seconds))
    return TimeMsg(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def stamp_seconds(stamp: TimeMsg) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def joint_state_message(
    robot: RobotConfig, state: RobotState, stamp: float, order: list[int] | None = None
) -> JointState:
    """A JointState of ``state`` (config order), its joints listed in ``order`` (indices into the config)."""
    order = list(range(robot.n_joints)) if order is None else order
    names = robot.joint_names
    msg = JointState()
    msg.header.stamp = time_msg(stamp)
    msg.name = [names[i] for i in order]
    msg.position = state.position[order].astype(np.float64)
    msg.velocity = state.velocity[order].astype(np.float64)
    msg.effort = state.effort[order].astype(np.float64)
    return msg


def imu_message(imu: ImuState, stamp: float, frame_id: str = "") -> Imu:
    msg = Imu()
    msg.header.stamp = time_msg(stamp)
    msg.header.frame_id = frame_id
    w, x, y, z = (float(v) for v in imu.orientation)
    msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w = x, y, z, w
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = (float(v) for v in imu.angular_velocity)
    a = imu.linear_acceleration
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = (float(v) for v in a)
    return msg


def odometry_message(
    odom: OdometryState, stamp: float, frame_id: str = "odom", child_frame_id: str = "base_link"
) -> Odometry:
    msg = Odometry()
    msg.header.stamp = time_msg(stamp)
    msg.header.frame_id = frame_id or "odom"
    msg.child_frame_id = child_frame_id
    p = msg.pose.pose
    p.position.x, p.position.y, p.position.z = (float(v) for v in odom.position)
    w, x, y, z = (float(v) for v in odom.orientation)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = x, y, z, w
    t = msg.twist.twist
    t.linear.x, t.linear.y, t.linear.z = (float(v) for v in odom.linear_velocity)
    t.angular.x, t.angular.y, t.angular.z = (float(v) for v in odom.angular_velocity)
    return msg


def image_message(frame: np.ndarray, stamp: float, frame_id: str = "", encoding: str = "rgb8") -> Image:
    """An Image of an RGB ``uint8 [H, W, 3]`` frame (``bgr8``: channels swapped on the way out)."""
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 [H, W, 3] frame, got {frame.dtype} {frame.shape}")
    if encoding == "bgr8":
        frame = frame[..., ::-1]
    msg = Image()
    msg.header.stamp = time_msg(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = array.array("B", np.ascontiguousarray(frame).tobytes())
    return msg


def image_from_message(msg: Image, received_at: float) -> ImageFrame:
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"image encoding {msg.encoding!r} is not supported; publish rgb8 or bgr8")
    if msg.step != msg.width * 3 or len(msg.data) != msg.height * msg.step:
        raise ValueError(
            f"image of {msg.width}x{msg.height} has step {msg.step} and {len(msg.data)} bytes; expected packed rows"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)
    if msg.encoding == "bgr8":
        data = data[..., ::-1]
    return ImageFrame(data=data, stamp=stamp_seconds(msg.header.stamp), received_at=received_at)


def imu_from_message(msg: Imu, received_at: float) -> ImuState:
    o, w, a = msg.orientation, msg.angular_velocity, msg.linear_acceleration
    return ImuState(
        orientation=np.array([o.w, o.x, o.y, o.z]),
        angular_velocity=np.array([w.x, w.y, w.z]),
        linear_acceleration=np.array([a.x, a.y, a.z]),
        stamp=stamp_seconds(msg.header.stamp),
        received_at=received_at,
    )


def odometry_from_message(msg: Odometry, received_at: float) -> OdometryState:
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    v, w = msg.twist.twist.linear, msg.twist.twist.angular
    return OdometryState(
        position=np.array([p.x, p.y, p.z]),
        orientation=np.array([q.w, q.x, q.y, q.z]),
        linear_velocity=np.array([v.x, v.y, v.z]),
        angular_velocity=np.array([w.x, w.y, w.z]),
        stamp=stamp_seconds(msg.header.stamp),
        received_at=received_at,
    )


class JointOrder:
    """Maps a message's joint names to the config's order; remembers the last name list (drivers keep theirs)."""

    def __init__(self, robot: RobotConfig):
        self.names = robot.joint_names
        self._index = {n: i for i, n in enumerate(self.names)}
        self._cache: tuple[tuple[str, ...], np.ndarray] | None = None

    def permutation(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """Indices into the message's arrays, in config order. Raises ValueError naming missing joints."""
        key = tuple(names)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        where = {n: i for i, n in enumerate(key)}
        missing = [n for n in self.names if n not in where]
        if missing:
            raise ValueError(f"the message lacks joints {missing} (it has {list(key)})")
        perm = np.array([where[n] for n in self.names], dtype=int)
        self._cache = (key, perm)
        return perm

    def reorder(self, names: list[str], values: Any, field: str) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return np.full(len(self.names), np.nan)  # the field is optional in JointState
        if values.size != len(names):
            raise ValueError(f"{field} has {values.size} values for {len(names)} joint names")
        return values[self.permutation(names)]


def command_message(robot: RobotConfig, targets: np.ndarray, stamp: float | None = None) -> Any:
    """The robot's command message for ``targets`` (see ``RobotConfig.command_from_action``)."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1)
    kind = robot.command.type
    expected = 2 if robot.action_kind == "twist" else robot.n_joints
    if targets.size != expected:
        raise ValueError(f"{robot.name}: expected {expected} command targets, got {targets.size}")
    if kind == "geometry_msgs/Twist":
        msg = Twist()
        msg.linear.x, msg.angular.z = float(targets[0]), float(targets[1])
        return msg
    if kind == "std_msgs/Float64MultiArray":
        msg = Float64MultiArray()
        msg.layout.dim = [MultiArrayDimension(label="joints", size=robot.n_joints, stride=robot.n_joints)]
        msg.data = targets
        return msg
    msg = JointTrajectory()  # one point, due one control period from now: a streamed setpoint
    if stamp is not None:
        msg.header.stamp = time_msg(stamp)
    msg.joint_names = robot.joint_names
    point = JointTrajectoryPoint()
    setattr(point, {"position": "positions", "velocity": "velocities", "torque": "effort"}[robot.control.mode], targets)
    period = 1.0 / robot.control.rate_hz
    point.time_from_start = DurationMsg(sec=int(period), nanosec=int(round((period % 1.0) * 1e9)))
    msg.points = [point]
    return msg


def targets_from_command(robot: RobotConfig, msg: Any, order: JointOrder | None = None) -> np.ndarray:
    """Command targets (config order) from a command message; ValueError says what is wrong with it."""
    if isinstance(msg, Twist):
        return np.array([msg.linear.x, msg.angular.z])
    if isinstance(msg, Float64MultiArray):
        data = np.asarray(msg.data, dtype=np.float64)
        if data.size != robot.n_joints:
            raise ValueError(
                f"Float64MultiArray has {data.size} values; {robot.name} takes {robot.n_joints}, in its joint order"
            )
        return data
    if isinstance(msg, JointTrajectory):
        if not msg.points:
            raise ValueError("JointTrajectory has no points")
        field = {"position": "positions", "velocity": "velocities", "torque": "effort"}[robot.control.mode]
        order = order or JointOrder(robot)
        values = getattr(msg.points[0], field)
        if len(values) == 0:
            raise ValueError(f"JointTrajectory's first point has no {field} ({robot.control.mode} control)")
        return order.reorder(list(msg.joint_names), values, f"points[0].{field}")
    raise ValueError(f"{type(msg).__name__} is not a command message type")


# --------------------------------------------------------------------------------------------
# The policy's side


@dataclass
class TopicStats:
    """Counters of one state topic."""

    topic: str
    period: float  # expected seconds between messages (1 / rate_hz)
    received: int = 0
    dropped: int = 0  # missing from the stamp sequence
    stale: int = 0  # waits that found no message newer than needed within the stale limit
    ignored: int = 0  # malformed, lacking joints, or older than the newest one
    last_stamp: float | None = None
    last_received_at: float | None = None
    last_error: str = ""

    def accept(self, stamp: float, received_at: float) -> bool:
        """Count a message; False if it is not newer than the last one (then it is ignored)."""
        if self.last_stamp is not None:
            gap = stamp - self.last_stamp
            if gap <= 0.0:
                self.ignored += 1
                self.last_error = (
                    f"a message stamped {stamp:.6f} is not newer than the last one ({self.last_stamp:.6f})"
                )
                return False
            if gap > 1.5 * self.period:
                self.dropped += int(round(gap / self.period)) - 1
        self.last_stamp = stamp
        self.last_received_at = received_at
        self.received += 1
        return True


class StateSubscriber:
    """Subscribes a robot's state topics and keeps the newest :class:`RobotState` (config joint order).

    :param on_joint_state: called in the executor thread with each new state (for event-driven nodes).
    """

    def __init__(self, node: Node, robot: RobotConfig, on_joint_state: Callable[[RobotState], None] | None = None):
        self.node = node
        self.robot = robot
        self._order = JointOrder(robot)
        self._cond = threading.Condition()
        self._joint: tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None = None
        self._imu: ImuState | None = None
        self._odometry: OdometryState | None = None
        self._image: ImageFrame | None = None
        self._on_joint_state = on_joint_state
        self.stats: dict[str, TopicStats] = {}
        self._subscriptions = []
        handlers = {
            "joint_state": self._on_joint,
            "imu": self._on_imu,
            "odometry": self._on_odometry,
            "image": self._on_image,
        }
        for slot, cfg in robot.state.topics().items():
            self.stats[slot] = TopicStats(topic=cfg.topic, period=1.0 / cfg.rate_hz)
            cls = MESSAGE_CLASSES[cfg.type]
            self._subscriptions.append(node.create_subscription(cls, cfg.topic, handlers[slot], qos_profile(cfg.qos)))

    # ---------------------------------------------------------------------------- callbacks
    def _on_joint(self, msg: JointState) -> None:
        now = time.monotonic()
        stats = self.stats["joint_state"]
        try:
            names = list(msg.name)
            position = self._order.reorder(names, msg.position, "position")
            velocity = self._order.reorder(names, msg.velocity, "velocity")
            effort = self._order.reorder(names, msg.effort, "effort")
            if np.isnan(position).any():
                raise ValueError("the message has no positions")
        except ValueError as e:
            with self._cond:
                stats.ignored += 1
                stats.last_error = str(e)
            return
        with self._cond:
            if not stats.accept(stamp_seconds(msg.header.stamp), now):
                return
            self._joint = (position, velocity, effort, stats.last_stamp, now)
            self._cond.notify_all()
        if self._on_joint_state is not None:
            self._on_joint_state(self.state)

    def _store(self, slot: str, value: Any, attr: str) -> None:
        with self._cond:
            if self.stats[slot].accept(value.stamp, value.received_at):
                setattr(self, attr, value)
                self._cond.notify_all()

    def _on_imu(self, msg: Imu) -> None:
        self._store("imu", imu_from_message(msg, time.monotonic()), "_imu")

    def _on_odometry(self, msg: Odometry) -> None:
        self._store("odometry", odometry_from_message(msg, time.monotonic()), "_odometry")

    def _on_image(self, msg: Image) -> None:
        try:
            frame = image_from_message(msg, time.monotonic())
        except ValueError as e:
            with self._cond:
                self.stats["image"].ignored += 1
                self.stats["image"].last_error = str(e)
            return
        self._store("image", frame, "_image")

    # ---------------------------------------------------------------------------- reading
    @property
    def state(self) -> RobotState | None:
        """The newest state, or None before the first joint state."""
        with self._cond:
            return self._snapshot()

    def _snapshot(self) -> RobotState | None:
        if self._joint is None:
            return None
        position, velocity, effort, stamp, received_at = self._joint
        js = self.stats["joint_state"]
        return RobotState(
            position=position,
            velocity=velocity,
            effort=effort,
            stamp=stamp,
            received_at=received_at,
            seq=js.received,
            dropped=js.dropped,
            imu=self._imu,
            odometry=self._odometry,
            image=self._image,
        )

    def _received_at(self, slot: str) -> float | None:
        return self.stats[slot].last_received_at

    def wait_for_fresh(self, newer_than: float, timeout: float, slots: list[str] | None = None) -> RobotState:
        """The newest state once every slot in ``slots`` (default: the ones the observation reads) has a
        message that arrived after ``newer_than`` (``time.monotonic()``); :class:`StaleStateError` after
        ``timeout`` seconds."""
        slots = self.robot.observed_slots if slots is None else slots
        start = time.monotonic()
        deadline = start + timeout
        stale_after = self.robot.stale_after_s
        with self._cond:
            while True:
                waiting = [s for s in slots if (self._received_at(s) or -np.inf) <= newer_than]
                now = time.monotonic()
                if not waiting:
                    if now - max(start, newer_than) > stale_after:
                        self.stats["joint_state"].stale += 1
                    return self._snapshot()
                if now >= deadline:
                    for s in waiting:
                        self.stats[s].stale += 1
                    raise self._stale_error(waiting[0], now, timeout)
                self._cond.wait(deadline - now)

    def _stale_error(self, slot: str, now: float, timeout: float) -> StaleStateError:
        stats = self.stats[slot]
        cfg: StateTopicConfig = getattr(self.robot.state, slot)
        domain = os.environ.get("ROS_DOMAIN_ID", "0")
        if stats.last_received_at is None:
            age = None
            what = f"no {cfg.type} message has arrived on {cfg.topic}"
        else:
            age = now - stats.last_received_at
            what = f"no fresh {cfg.type} on {cfg.topic}: the newest arrived {age:.3f} s ago"
        hint = (
            f"; {stats.ignored} message(s) were ignored, the last because {stats.last_error}" if stats.ignored else ""
        )
        message = (
            f"{what} (timeout {timeout:.3f} s){hint}. Refusing to step on old data: is the robot (or "
            f"`roboreward sim-robot {self.robot.name}`) running on ROS_DOMAIN_ID={domain} with the same discovery "
            "range and QoS?"
        )
        return StaleStateError(message, topic=cfg.topic, age=age, timeout=timeout)

    def counters(self) -> dict[str, dict[str, int]]:
        with self._cond:
            return {
                slot: {"received": s.received, "dropped": s.dropped, "stale": s.stale, "ignored": s.ignored}
                for slot, s in self.stats.items()
            }

    def destroy(self) -> None:
        for sub in self._subscriptions:
            self.node.destroy_subscription(sub)
        self._subscriptions.clear()


class CommandPublisher:
    """Publishes command targets as the robot's command message (joint names in config order).

    One message is built at construction and reused: each :meth:`publish` writes the targets into its
    array in place (a numpy view of the message's ``array('d')``), so the 500 Hz path allocates no message
    and skips the generated setters' per-element checks. Publishing serialises the message at once, so
    reuse is safe; a lock keeps two threads from writing it at the same time.
    """

    def __init__(self, node: Node, robot: RobotConfig):
        self.node = node
        self.robot = robot
        cfg = robot.command
        self.publisher = node.create_publisher(MESSAGE_CLASSES[cfg.type], cfg.topic, qos_profile(cfg.qos))
        self.published = 0
        self.last_targets: np.ndarray | None = None
        self._size = 2 if robot.action_kind == "twist" else robot.n_joints
        self._lock = threading.Lock()
        stamp = 0.0 if cfg.type == "trajectory_msgs/JointTrajectory" else None  # zero: "start now" to the controller
        self._msg = command_message(robot, np.zeros(self._size), stamp)
        self._values: np.ndarray | None = None  # a writable view of the message's target array
        if isinstance(self._msg, Float64MultiArray):
            self._values = np.frombuffer(self._msg.data, dtype=np.float64)
        elif isinstance(self._msg, JointTrajectory):
            field = {"position": "positions", "velocity": "velocities", "torque": "effort"}[robot.control.mode]
            self._values = np.frombuffer(getattr(self._msg.points[0], field), dtype=np.float64)

    def publish(self, targets: np.ndarray) -> None:
        targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        if targets.size != self._size:
            raise ValueError(f"{self.robot.name}: expected {self._size} command targets, got {targets.size}")
        if np.count_nonzero(np.isfinite(targets)) != targets.size:  # whatever the caller: never NaN/inf on the wire
            raise ValueError(f"{self.robot.name}: refusing to publish non-finite command targets {targets.tolist()}")
        with self._lock:
            if self._values is not None:
                self._values[:] = targets
            else:  # Twist
                self._msg.linear.x, self._msg.angular.z = float(targets[0]), float(targets[1])
            self.publisher.publish(self._msg)
            self.last_targets = targets.copy()
            self.published += 1

    def subscription_count(self) -> int:
        return self.publisher.get_subscription_count()

    def destroy(self) -> None:
        self.node.destroy_publisher(self.publisher)


# --------------------------------------------------------------------------------------------
# The robot's side (the simulated robot)


class StatePublisher:
    """Publishes a robot's configured state topics."""

    def __init__(self, node: Node, robot: RobotConfig):
        self.node = node
        self.robot = robot
        self.publishers = {
            slot: node.create_publisher(MESSAGE_CLASSES[cfg.type], cfg.topic, qos_profile(cfg.qos))
            for slot, cfg in robot.state.topics().items()
        }
        self.published = {slot: 0 for slot in self.publishers}

    def publish(self, slot: str, msg: Any) -> None:
        self.publishers[slot].publish(msg)
        self.published[slot] += 1


class JointStateWriter:
    """One JointState message reused for every publication of a robot's joint states.

    The names are set once (in ``order``); :attr:`position`, :attr:`velocity` and :attr:`effort` are
    writable numpy views of the message's own arrays, in that order. Fill them, :meth:`stamp` it, publish
    :attr:`msg`: nothing is allocated per message, where :func:`joint_state_message` builds a new one
    (~40 us, a fiftieth of a 500 Hz period, spent on the robot's clock).

    :param order: indices into the config's joints, in the order the message lists them (default: config order).
    """

    def __init__(self, robot: RobotConfig, order: list[int] | None = None):
        order = list(range(robot.n_joints)) if order is None else list(order)
        names = robot.joint_names
        self.msg = JointState()
        self.msg.name = [names[i] for i in order]
        zeros = bytes(8 * len(order))
        self.msg.position = array.array("d", zeros)
        self.msg.velocity = array.array("d", zeros)
        self.msg.effort = array.array("d", zeros)
        self.position = np.frombuffer(self.msg.position, dtype=np.float64)
        self.velocity = np.frombuffer(self.msg.velocity, dtype=np.float64)
        self.effort = np.frombuffer(self.msg.effort, dtype=np.float64)

    def stamp(self, seconds: float) -> JointState:
        """Set the header stamp (ROS time, s); returns the message."""
        sec = math.floor(seconds)
        stamp = self.msg.header.stamp
        stamp.sec = sec
        stamp.nanosec = min(int(round((seconds - sec) * 1e9)), 999_999_999)
        return self.msg


class CommandSubscriber:
    """Receives the robot's commands; keeps the newest targets (config order) and when they arrived."""

    def __init__(self, node: Node, robot: RobotConfig):
        self.robot = robot
        self._order = JointOrder(robot)
        self._lock = threading.Lock()
        self.targets: np.ndarray | None = None
        self.received_at: float | None = None
        self.received = 0
        self.rejected = 0
        self.last_error = ""
        cfg = robot.command
        self.subscription = node.create_subscription(
            MESSAGE_CLASSES[cfg.type],
            cfg.topic,
            self._on_command,
            qos_profile(cfg.qos),
        )

    def _on_command(self, msg: Any) -> None:
        try:
            targets = targets_from_command(self.robot, msg, self._order)
            if not np.all(np.isfinite(targets)):
                raise ValueError(f"non-finite targets {targets}")
        except ValueError as e:
            with self._lock:
                self.rejected += 1
                self.last_error = str(e)
            return
        with self._lock:
            self.targets = targets
            self.received_at = time.monotonic()
            self.received += 1

    def poll(self) -> int:
        """Take the commands waiting in the subscription's queue, in this thread and without an executor
        (the newest wins, as it would in the callback); returns how many were taken.

        For a loop that checks for commands once per tick anyway (``sim-robot``): no executor's wait set to
        build (a Python ``spin_once`` costs ~0.3 ms) and no second thread contending for the GIL. Don't mix it
        with an executor spinning this subscription's node: they would race for the messages.
        """
        sub = self.subscription
        taken = 0
        with sub.handle:
            while True:
                message = sub.handle.take_message(sub.msg_type, sub.raw)
                if message is None:
                    return taken
                self._on_command(message[0])
                taken += 1

    def latest(self) -> tuple[np.ndarray | None, float | None]:
        with self._lock:
            return self.targets, self.received_at


__all__ = [
    "DISCOVERY_RANGES",
    "MESSAGE_CLASSES",
    "CommandPublisher",
    "CommandSubscriber",
    "JointOrder",
    "JointStateWriter",
    "RosSession",
    "StaleStateError",
    "StatePublisher",
    "StateSubscriber",
    "TopicStats",
    "command_message",
    "image_from_message",
    "image_message",
    "imu_from_message",
    "imu_message",
    "joint_state_message",
    "node_name_for",
    "odometry_from_message",
    "odometry_message",
    "qos_profile",
    "ros_environment",
    "stamp_seconds",
    "targets_from_command",
    "time_msg",
]
