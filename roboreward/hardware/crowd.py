"""Crowd navigation over ROS 2: the topics a mobile robot among people speaks, and the deploy node's crowd controller.

``roboreward sim-robot diff_drive --crowd SCENARIO`` (:mod:`~roboreward.hardware.crowd_sim_robot`) publishes a
crowd simulation on these topics, and ``roboreward deploy CROWD_RUN --robot diff_drive`` drives it with a policy
trained on ``roboreward/CrowdNav-v0`` (:class:`CrowdNavigationController`). A real base with a lidar and a people
tracker publishes the same. Frames follow REP 103/105: ``odom`` is the fixed frame, ``base_link`` the robot's
(x ahead, y left, z up; angles counter-clockwise)::

    /odom       nav_msgs/Odometry          pose of base_link in odom; twist in base_link      (the robot file's)
    /cmd_vel    geometry_msgs/Twist        linear.x forward m/s, angular.z rad/s, in base_link (the robot file's)
    /scan       sensor_msgs/LaserScan      in base_link; angle 0 straight ahead, increasing counter-clockwise;
                                           +inf where a ray returns nothing (REP 117)
    /people     sensor_msgs/PointCloud2    the tracked people, one point each, in odom: float32 fields
                                           x, y, z (m), vx, vy (m/s, in odom), radius (m), id
    /goal_pose  geometry_msgs/PoseStamped  where to go, in odom (the topic RViz's "2D Goal Pose" and Nav2 use)
    /crowd/event std_msgs/String           sim-robot only: how each episode ended (success, collision_human, ...)

No people message ships as a Python wheel (``people_msgs`` is not on PyPI), so the people travel as a point cloud
with named fields: the standard message a tracker can fill and RViz can draw, carrying what ``people_msgs/Person``
holds (position, velocity, an id) plus the radius the policy reads.

The controller turns these into the observation the policy was trained on with the env's own sensor kernel
(:func:`~roboreward.envs.crowd.sensors.observe_kernel`), so the frames are those of training by construction
and the tests compare the two observations number for number. A lidar of another resolution is resampled: each
ray the policy knows reads the scan's ray nearest in angle.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.config import bounded
from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.env import HUMAN_FEATURES, ROBOT_FEATURES
from roboreward.envs.crowd.lidar import ray_angles
from roboreward.envs.crowd.sensors import observe_kernel, to_world_frame
from roboreward.envs.crowd.sim import commanded_motion
from roboreward.errors import ConfigError
from roboreward.hardware.robot import OdometryState, RobotConfig, RobotState, yaw_from_quaternion

CROWD_ENV_ID = "roboreward/CrowdNav-v0"
PEOPLE_FIELDS = ("x", "y", "z", "vx", "vy", "radius", "id")


@dataclass(kw_only=True)
class CrowdTopicsConfig:
    """The crowd topics (``crowd.*`` keys of ``roboreward deploy``); odometry and commands are the robot file's."""

    scan_topic: str = bounded("/scan", "sensor_msgs/LaserScan in the base frame")
    people_topic: str = bounded("/people", "sensor_msgs/PointCloud2 of tracked people in the odometry frame")
    goal_topic: str = bounded("/goal_pose", "geometry_msgs/PoseStamped goal in the odometry frame")
    perception_timeout_s: float = bounded(0.5, "people or scan older than this: the robot stops until they are fresh",
                                          gt=0.0, le=10.0)


# --------------------------------------------------------------------------------------------------------------
# Messages


def scan_message(ranges: np.ndarray, fov: float, max_range: float, stamp: float, frame_id: str = "base_link",
                 scan_time: float = 0.0) -> Any:
    """A LaserScan of ``ranges`` cast at :func:`~roboreward.envs.crowd.lidar.ray_angles` (``max_range``: no return)."""
    from sensor_msgs.msg import LaserScan

    from roboreward.hardware.ros import time_msg

    angles = ray_angles(len(ranges), fov)
    msg = LaserScan()
    msg.header.stamp = time_msg(stamp)
    msg.header.frame_id = frame_id
    msg.angle_min = float(angles[0])
    msg.angle_max = float(angles[-1])
    msg.angle_increment = float(angles[1] - angles[0]) if len(angles) > 1 else 0.0
    msg.scan_time = float(scan_time)
    msg.range_min = 0.0
    msg.range_max = float(max_range)
    values = np.asarray(ranges, dtype=np.float32)
    msg.ranges = np.where(values >= np.float32(max_range), np.float32(np.inf), values).tolist()
    return msg


def people_message(positions: np.ndarray, velocities: np.ndarray, radii: np.ndarray, ids: np.ndarray, stamp: float,
                   frame_id: str = "odom") -> Any:
    """A PointCloud2 of people (``[N, 2]`` positions and velocities in ``frame_id``, radii, integer ids)."""
    from sensor_msgs.msg import PointCloud2, PointField

    from roboreward.hardware.ros import time_msg

    n = len(radii)
    points = np.zeros((n, len(PEOPLE_FIELDS)), dtype=np.float32)
    points[:, 0:2] = positions
    points[:, 3:5] = velocities
    points[:, 5] = radii
    points[:, 6] = ids
    msg = PointCloud2()
    msg.header.stamp = time_msg(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
                  for i, name in enumerate(PEOPLE_FIELDS)]
    msg.is_bigendian = False
    msg.point_step = 4 * len(PEOPLE_FIELDS)
    msg.row_step = msg.point_step * n
    msg.is_dense = True
    msg.data = points.tobytes()
    return msg


@dataclass
class People:
    """Tracked people in the odometry frame."""

    positions: np.ndarray  # [N, 2]
    velocities: np.ndarray  # [N, 2]
    radii: np.ndarray  # [N]
    stamp: float = 0.0
    received_at: float = 0.0


def people_from_message(msg: Any, received_at: float = 0.0) -> People:
    """The people of a PointCloud2 with float32 fields x, y, vx, vy, radius (any order, any extra fields).

    Raises ``ValueError`` naming the problem for a cloud without those fields or with non-finite numbers.
    """
    from sensor_msgs.msg import PointField

    from roboreward.hardware.ros import stamp_seconds

    fields = {f.name: f for f in msg.fields}
    need = ("x", "y", "vx", "vy", "radius")
    missing = [n for n in need if n not in fields or fields[n].datatype != PointField.FLOAT32]
    if missing:
        raise ValueError(f"people cloud lacks float32 fields {missing}; it needs {list(need)} (id optional)")
    n = msg.width * msg.height
    if len(msg.data) < n * msg.point_step:
        raise ValueError(f"people cloud holds {len(msg.data)} bytes for {n} points of {msg.point_step}")
    dtype = np.dtype({"names": list(need), "formats": [(">f4" if msg.is_bigendian else "<f4")] * len(need),
                      "offsets": [fields[name].offset for name in need], "itemsize": msg.point_step})
    raw = np.frombuffer(bytes(msg.data), dtype=dtype, count=n)
    table = np.stack([raw[name].astype(np.float64) for name in need], axis=-1).reshape(n, len(need))
    if not np.isfinite(table).all():
        raise ValueError("people cloud holds a non-finite number")
    if (table[:, 4] < 0).any():
        raise ValueError("people cloud holds a negative radius")
    return People(table[:, 0:2], table[:, 2:4], table[:, 4], stamp_seconds(msg.header.stamp), received_at)


def goal_message(goal: np.ndarray, stamp: float, frame_id: str = "odom") -> Any:
    from geometry_msgs.msg import PoseStamped

    from roboreward.hardware.ros import time_msg

    msg = PoseStamped()
    msg.header.stamp = time_msg(stamp)
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y = float(goal[0]), float(goal[1])
    msg.pose.orientation.w = 1.0
    return msg


class ScanResampler:
    """A LaserScan's ranges at the rays a policy was trained with (the nearest scan ray in angle to each).

    Readings that are not returns (+inf, NaN, beyond ``range_max``) read the policy's ``max_range``, as a ray
    that hit nothing did in training; -inf (too close, REP 117) and values below ``range_min`` read 0.
    """

    def __init__(self, n_rays: int, fov: float, max_range: float) -> None:
        self.angles = ray_angles(n_rays, fov)
        self.fov = fov
        self.max_range = max_range
        self._layout: tuple[float, float, int] | None = None
        self._index = np.zeros(n_rays, dtype=np.int64)

    def __call__(self, msg: Any) -> np.ndarray:
        ranges = np.asarray(msg.ranges, dtype=np.float64)
        layout = (float(msg.angle_min), float(msg.angle_increment), len(ranges))
        if layout != self._layout:
            self._index = self._indices(*layout)
            self._layout = layout
        out = ranges[self._index]
        far = ~(out <= msg.range_max) | np.isnan(out)
        near = (out < msg.range_min) | (out == -np.inf)
        out = np.where(far, self.max_range, np.where(near, 0.0, out))
        return np.minimum(out, self.max_range)

    def _indices(self, angle_min: float, increment: float, count: int) -> np.ndarray:
        if count == 0 or not (math.isfinite(angle_min) and math.isfinite(increment)) or increment <= 0:
            raise ValueError(f"scan with {count} rays from {angle_min} rad every {increment} rad cannot be read")
        full = increment * count >= 2 * math.pi - 1e-6
        offset = np.mod(self.angles - angle_min, 2 * math.pi) if full else self.angles - angle_min
        index = np.rint(offset / increment).astype(np.int64)
        if full:
            return index % count
        if (index < 0).any() or (index >= count).any() or (np.abs(offset - index * increment) > increment).any():
            raise ValueError(f"the scan covers {math.degrees(increment * (count - 1)):.0f}° from "
                             f"{math.degrees(angle_min):.0f}°; the policy looks over {math.degrees(self.fov):.0f}°")
        return index


# --------------------------------------------------------------------------------------------------------------
# The observation


class CrowdObservation:
    """The crowd env's Dict observation of one robot, from what its topics say (see the module docstring).

    The state goes into one-env arrays shaped as :class:`~roboreward.envs.crowd.sim.CrowdSim`'s and through
    the env's sensor kernel, so sensing range, field of view, nearest-first order and the robot frame are
    training's exactly.
    """

    def __init__(self, config: CrowdNavConfig, n_humans: int, lidar: bool, empty_tokens: int = 0) -> None:
        self.config = config
        self.n_humans = n_humans
        self.lidar = lidar
        self.empty_tokens = empty_tokens  # obstacle-token rows of a policy that has them but does not read them

    def __call__(self, odometry: OdometryState, goal: np.ndarray, people: People,
                 lidar: np.ndarray | None = None) -> dict[str, np.ndarray]:
        c = self.config
        n = len(people.radii)
        heading = np.array([yaw_from_quaternion(odometry.orientation)])
        positions = np.zeros((1, 1 + n, 2))
        velocities = np.zeros((1, 1 + n, 2))
        goals = np.zeros((1, 1 + n, 2))
        positions[0, 0] = odometry.position[:2]
        base_velocity = np.asarray(odometry.linear_velocity, float)[None, :2]
        velocities[0, 0] = to_world_frame(base_velocity, heading)[0]  # odometry's twist is in the base frame
        goals[0, 0] = goal[:2]
        positions[0, 1:] = people.positions
        velocities[0, 1:] = people.velocities
        radii = np.concatenate([[c.robot.radius], people.radii])[None]
        speeds = np.concatenate([[c.robot.max_speed], np.zeros(n)])[None]
        active = np.ones((1, 1 + n), dtype=np.bool_)
        robot = np.empty((1, ROBOT_FEATURES), dtype=np.float32)
        humans = np.empty((1, self.n_humans, HUMAN_FEATURES), dtype=np.float32)
        mask = np.empty((1, self.n_humans), dtype=np.int8)
        tokens = np.empty((1, 0, 8), dtype=np.float32)
        observe_kernel(np.zeros(1, dtype=np.int64), positions, velocities, goals, radii, speeds, active, heading,
                       np.zeros((1, n, 2)), np.ones((1, n), dtype=np.bool_), c.sensing.sensor_range, c.sensing.fov,
                       np.zeros((1, 1, 4, 2)), np.zeros((1, 1), dtype=np.bool_), robot, humans, mask, tokens)
        obs = {"robot": robot[0], "humans": humans[0], "humans_mask": mask[0]}
        if self.lidar:
            if lidar is None:
                raise ValueError("the policy reads a lidar and no scan has come")
            obs["lidar"] = np.asarray(lidar, dtype=np.float32)
        if self.empty_tokens:
            obs["obstacles"] = np.zeros((self.empty_tokens, 8), dtype=np.float32)
            obs["obstacles_mask"] = np.zeros(self.empty_tokens, dtype=np.int8)
        return obs


# --------------------------------------------------------------------------------------------------------------
# The deploy node's controller


def _reads_obstacle_tokens(policy: Any) -> bool:
    """Whether a runner's features extractor reads the obstacle tokens (True unless it says it does not)."""
    extractor = getattr(getattr(getattr(policy, "model", None), "policy", None), "features_extractor", None)
    return bool(getattr(extractor, "reads_obstacle_tokens", True))


def load_crowd_policy(run_dir: str | Path, checkpoint: str | None = None) -> tuple[CrowdNavConfig, Any]:
    """``(env config, SB3 policy runner)`` of a run trained on ``roboreward/CrowdNav-v0``."""
    from roboreward.policies.export import SB3PolicyRunner, load_run_model

    config, model, path = load_run_model(Path(run_dir), checkpoint, flat=False)
    if config.env.id != CROWD_ENV_ID:
        raise ConfigError(f"{run_dir} trained on {config.env.id}, not {CROWD_ENV_ID}")
    return CrowdNavConfig.from_kwargs(config.env.kwargs), SB3PolicyRunner(model, source=path)


def experiment_env(path: str | Path) -> dict[str, Any]:
    """The ``env`` section of an experiment YAML or of a run folder's config.yaml (``{}`` without one), read with
    ``yaml.safe_load`` alone: deciding what a folder holds loads no config classes and no torch."""
    import yaml

    path = Path(path)
    file = path / "config.yaml" if path.is_dir() else path
    if not file.is_file():
        return {}
    data = yaml.safe_load(file.read_text()) or {}
    env = data.get("env") if isinstance(data, dict) else None
    return env if isinstance(env, dict) else {}


def is_crowd_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` is a run folder that trained on the crowd env."""
    return Path(run_dir).is_dir() and experiment_env(run_dir).get("id") == CROWD_ENV_ID


class CrowdNavigationController:
    """Twist commands for a mobile base from a crowd-navigation policy; the deploy node's controller.

    Each control period :meth:`command_for` builds the policy's observation from the robot's odometry (in the
    state), the newest people and scan and the goal, runs the policy and turns its action into ``(linear x,
    angular z)`` as the env did. The robot stands still (a zero twist, still through the safety layer) before the
    first goal, once within the goal radius, and while the people or the scan are older than
    ``perception_timeout_s``: a policy never drives on an old picture of a crowd.
    """

    def __init__(self, policy: Any, env_config: CrowdNavConfig, robot: RobotConfig,
                 config: CrowdTopicsConfig | None = None) -> None:
        self.policy = policy
        self.env_config = env_config
        self.robot = robot
        self.config = config if config is not None else CrowdTopicsConfig()
        self._check()
        space = policy.observation_space
        self.uses_lidar = "lidar" in space.spaces
        s = env_config.sensing
        tokens = space["obstacles"].shape[0] if "obstacles" in space.spaces else 0
        self.observe = CrowdObservation(env_config, space["humans"].shape[0], self.uses_lidar, tokens)
        self.resample = ScanResampler(s.lidar_rays, s.lidar_fov, s.lidar_range) if self.uses_lidar else None
        self.goal_radius = env_config.goal_radius if env_config.goal_radius is not None else env_config.robot.radius
        self.odom_frame = (robot.state.odometry.frame_id if robot.state.odometry is not None else None) or "odom"
        self._lock = threading.Lock()
        self._people: People | None = None
        self._lidar: tuple[np.ndarray, float] | None = None
        self._goal: np.ndarray | None = None
        self.counts = {"people": 0, "scans": 0, "goals": 0, "rejected": 0, "stale_perception": 0, "arrived": 0,
                       "no_goal": 0}
        self.last_rejected = ""
        self._subscriptions: list[Any] = []

    def _check(self) -> None:
        robot, c = self.robot, self.env_config
        if robot.action_kind != "twist" or robot.base is None:
            raise ConfigError(f"robot {robot.name!r} takes {robot.action_kind} commands; a crowd-navigation policy "
                              "drives a base with geometry_msgs/Twist (e.g. --robot diff_drive)")
        if robot.state.odometry is None:
            raise ConfigError(f"robot {robot.name!r} reports no odometry (state.odometry); a crowd policy needs the "
                              "base's pose and velocity")
        if c.robot.kinematics == "holonomic":
            raise ConfigError("the policy was trained for a holonomic robot; a twist base turns to move: train with "
                              "env.kwargs.robot.kinematics=diff_drive (or unicycle)")
        if c.robot.actions != "continuous":
            raise ConfigError("the policy was trained with discrete actions; deploy takes continuous ones "
                              "(env.kwargs.robot.actions=continuous)")
        if "obstacles" in self.policy.observation_space.spaces and _reads_obstacle_tokens(self.policy):
            raise ConfigError("the policy reads obstacle tokens (a map of walls and boxes), which no topic carries; "
                              "train it with algo.features: crowd_attention and a lidar (the tokens are then left "
                              "unread), or on a scenario without walls or boxes")
        base = robot.base
        for name, theirs, ours in (("max_speed", c.robot.max_speed, base.max_linear),
                                   ("max_angular", c.robot.max_angular, base.max_angular)):
            if theirs > ours * (1 + 1e-9):
                raise ConfigError(f"the policy was trained with robot.{name} {theirs:g}, above the robot's "
                                  f"{ours:g}; the safety layer would cut every fast command: retrain with "
                                  f"env.kwargs.robot.{name}={ours:g}")

    @property
    def control_hz(self) -> float:
        return 1.0 / self.env_config.time_step

    # -- ROS -------------------------------------------------------------------------------------------------

    def attach(self, node: Any) -> None:
        """Subscribe the people, scan and goal topics on ``node`` (the deploy node's)."""
        from geometry_msgs.msg import PoseStamped
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import LaserScan, PointCloud2

        sensor = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        goal = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        c = self.config
        self._subscriptions = [
            node.create_subscription(PointCloud2, c.people_topic, self._on_people, sensor),
            node.create_subscription(PoseStamped, c.goal_topic, self._on_goal, goal),
        ]
        if self.uses_lidar:
            self._subscriptions.append(node.create_subscription(LaserScan, c.scan_topic, self._on_scan, sensor))

    def _reject(self, why: str) -> None:
        self.counts["rejected"] += 1
        self.last_rejected = why

    def _on_people(self, msg: Any) -> None:
        if msg.header.frame_id != self.odom_frame:
            return self._reject(f"people in frame {msg.header.frame_id!r}, not the odometry's {self.odom_frame!r}")
        try:
            people = people_from_message(msg, time.monotonic())
        except ValueError as e:
            return self._reject(str(e))
        with self._lock:
            self._people = people
            self.counts["people"] += 1

    def _on_scan(self, msg: Any) -> None:
        try:
            ranges = self.resample(msg)  # type: ignore[misc]
        except ValueError as e:
            return self._reject(str(e))
        with self._lock:
            self._lidar = (ranges, time.monotonic())
            self.counts["scans"] += 1

    def _on_goal(self, msg: Any) -> None:
        p = msg.pose.position
        if msg.header.frame_id != self.odom_frame:
            return self._reject(f"goal in frame {msg.header.frame_id!r}, not the odometry's {self.odom_frame!r}")
        if not (math.isfinite(p.x) and math.isfinite(p.y)):
            return self._reject("goal holds a non-finite number")
        self.set_goal((p.x, p.y))

    def set_goal(self, goal: Any) -> None:
        """A new goal starts a new episode: a recurrent policy forgets the last one."""
        with self._lock:
            self._goal = np.asarray(goal, dtype=np.float64)[:2].copy()
            self.counts["goals"] += 1
            if hasattr(self.policy, "reset"):
                self.policy.reset()

    def set_people(self, people: People) -> None:
        with self._lock:
            self._people = people

    def set_lidar(self, ranges: np.ndarray, received_at: float) -> None:
        with self._lock:
            self._lidar = (np.asarray(ranges, dtype=np.float64), received_at)

    # -- the control step ----------------------------------------------------------------------------------

    @staticmethod
    def check_state(state: RobotState) -> None:
        if state.odometry is None:
            raise ValueError("no odometry yet; the crowd policy needs the base's pose")

    def observation(self, state: RobotState, now: float | None = None) -> dict[str, np.ndarray] | None:
        """The policy's observation now, or None when the robot must stand (no goal, arrived, stale perception)."""
        self.check_state(state)
        now = time.monotonic() if now is None else now
        with self._lock:
            goal, people, lidar = self._goal, self._people, self._lidar
        odom = state.odometry
        assert odom is not None
        if goal is None:
            self.counts["no_goal"] += 1
            return None
        if float(np.hypot(*(goal - odom.position[:2]))) < self.goal_radius:
            self.counts["arrived"] += 1
            return None
        timeout = self.config.perception_timeout_s
        if people is None or now - people.received_at > timeout or (
                self.uses_lidar and (lidar is None or now - lidar[1] > timeout)):
            self.counts["stale_perception"] += 1
            return None
        return self.observe(odom, goal, people, lidar[0] if lidar is not None else None)

    def command_for(self, state: RobotState, now: float | None = None) -> np.ndarray:
        """``(linear x m/s, angular z rad/s)`` for this control period."""
        obs = self.observation(state, now)
        if obs is None:
            return np.zeros(2)
        return self.twist(self.policy(obs))

    def twist(self, action: np.ndarray) -> np.ndarray:
        """The env's mapping of a ``[-1, 1]²`` action to forward speed and turn rate (before acceleration limits)."""
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(1, 2), -1.0, 1.0)
        speed, turn = commanded_motion(self.env_config.robot, a)
        return np.array([speed[0], turn[0]])

    def describe(self) -> str:
        c = self.config
        return (f"crowd policy ({self.env_config.robot.kinematics}, {self.control_hz:g} Hz; people on "
                f"{c.people_topic}, goal on {c.goal_topic}" + (f", scan on {c.scan_topic}" if self.uses_lidar else "")
                + ")")

    def close(self) -> None:
        self._subscriptions.clear()


__all__ = [
    "CrowdNavigationController",
    "CrowdObservation",
    "CrowdTopicsConfig",
    "People",
    "ScanResampler",
    "experiment_env",
    "goal_message",
    "is_crowd_run",
    "load_crowd_policy",
    "people_from_message",
    "people_message",
    "scan_message",
]
