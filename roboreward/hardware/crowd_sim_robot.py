"""``roboreward sim-robot diff_drive --crowd SCENARIO``: the crowd simulation published as a ROS 2 mobile robot.

The robot is the robot file's differential-drive base (its topics, QoS and speed limits) inside the crowd of
``roboreward/CrowdNav-v0`` (:class:`~roboreward.envs.crowd.sim.CrowdSim`: the same people, obstacles and
collision rules), so a crowd policy meets over ROS 2 the world it was trained in::

    roboreward sim-robot diff_drive --crowd circle_crossing                 # a scenario with its defaults
    roboreward sim-robot diff_drive --crowd runs/crowd_diff_drive-...       # the crowd a run trained in
    roboreward sim-robot diff_drive --crowd room crowd.humans.react_to_robot=0 --seed 7 --realtime-factor 2

Each tick (the robot file's fastest joint-state/odometry rate) takes the newest ``/cmd_vel`` as the base's
commanded forward speed and turn rate (reached within the crowd config's acceleration limits; zero when
commands stop for ``control.command_timeout_s``), steps the people and the robot by one tick and publishes
the wheel joint states and ``/odom``; the lidar and the people go out at ``--sensor-rate`` Hz
(:mod:`roboreward.hardware.crowd` gives every topic and frame). The first episode's clock starts with the first
command, so a deploy started late finds the crowd as the episode began. An episode ends as in the env
(the goal reached, a collision, the time limit); its ending goes out on ``/crowd/event`` and the next episode
(seed + 1) starts at once, with its goal on ``/goal_pose``. The base reports no IMU or camera here. Stamps are
the ROS clock's (wall time), as a robot's are: with ``--realtime-factor F`` a deploy node, which acts on the
stamps, sends 1/F as many commands per simulated second as the policy was trained with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.config import apply_override, bounded
from roboreward.envs.crowd.config import CrowdNavConfig, SCENARIOS
from roboreward.envs.crowd.env import CrowdNavBatch
from roboreward.envs.crowd.lidar import lidar_scan, line_of_sight
from roboreward.envs.crowd.sim import CrowdSim
from roboreward.errors import ConfigError
from roboreward.hardware.crowd import (
    CROWD_ENV_ID,
    CrowdTopicsConfig,
    experiment_env,
    goal_message,
    people_message,
    scan_message,
)
from roboreward.hardware.robot import OdometryState, RobotConfig, load_robot_config
from roboreward.hardware.ros import CommandSubscriber, JointStateWriter, RosSession, StatePublisher, odometry_message
from roboreward.signals import on_signals

MAX_LAG_S = 0.25  # sim seconds behind wall time before skipping ahead
EVENT_TOPIC = "/crowd/event"
DEFAULT_SCAN_RAYS = 360  # the scan's rays when the crowd config has no lidar of its own


def crowd_config(source: str, robot: RobotConfig, overrides: list[str] | None = None) -> CrowdNavConfig:
    """The crowd of ``source`` (a scenario name, an experiment YAML or a run folder) for ``robot``'s base.

    ``overrides`` are ``crowd.KEY=VALUE`` settings of the env's kwargs (``crowd.scenario.n_humans=10``). The
    robot becomes the robot file's differential drive (its speed limits); the time step is set by the caller.
    """
    if robot.action_kind != "twist" or robot.base is None:
        raise ConfigError(f"--crowd needs a mobile base commanded with twists (diff_drive); {robot.name!r} takes "
                          f"{robot.action_kind} commands")
    path = Path(source)
    if source in SCENARIOS:
        kwargs: dict[str, Any] = {"scenario": {"name": source}}
    elif path.is_dir() or path.suffix in (".yaml", ".yml"):
        file = path / "config.yaml" if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(f"--crowd {source}: {file} does not exist; give a scenario ({', '.join(SCENARIOS)}), "
                              "a run folder or an experiment YAML")
        env = experiment_env(file)
        if env.get("id") != CROWD_ENV_ID:
            raise ConfigError(f"--crowd {source}: {file} is not a {CROWD_ENV_ID} experiment (env.id: {env.get('id')})")
        kwargs = dict(env.get("kwargs") or {})
    else:
        raise ConfigError(f"--crowd {source!r} is neither a scenario ({', '.join(SCENARIOS)}) nor a run folder or YAML")
    for override in overrides or []:
        key, sep, _ = override.partition("=")
        if not sep or not key.startswith("crowd."):
            raise ConfigError(f"{override!r}: crowd settings are crowd.KEY=VALUE (e.g. crowd.scenario.n_humans=10)")
        apply_override(kwargs, override[len("crowd."):])
    if isinstance(kwargs.get("robot"), str):
        kwargs["robot"] = {"kinematics": kwargs["robot"]}
    body = dict(kwargs.get("robot") or {})
    if body.get("kinematics", "holonomic") == "holonomic" and "kinematics" in body:
        raise ConfigError(f"--crowd {source}: its robot is holonomic; {robot.name!r} is a differential drive, which "
                          "turns to move: use a crowd trained with env.kwargs.robot.kinematics=diff_drive")
    body.update(kinematics="diff_drive", max_speed=robot.base.max_linear, max_angular=robot.base.max_angular,
                actions="continuous")
    kwargs["robot"] = body
    return CrowdNavConfig.from_kwargs(kwargs, key="--crowd")


def robot_odometry(sim: CrowdSim, b: int = 0) -> OdometryState:
    """What a wheel-odometry driver reports of env ``b``'s robot: its pose in the world (= odom) frame, its forward
    speed and turn rate in its own frame."""
    h = float(sim.heading[b])
    return OdometryState(position=np.array([*sim.robot_position[b], 0.0]),
                         orientation=np.array([np.cos(h / 2), 0.0, 0.0, np.sin(h / 2)]),
                         linear_velocity=np.array([float(sim.forward_speed[b]), 0.0, 0.0]),
                         angular_velocity=np.array([0.0, 0.0, float(sim.turn_rate[b])]))


def tracked_people(sim: CrowdSim, b: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(positions, velocities, radii, ids)`` of the people a tracker on env ``b``'s robot reports: everyone in
    the world, less those behind obstacles when the config senses with occlusion. Range and field of view are the
    policy's to apply (the deploy side does, as the env does)."""
    active = sim.active[b, 1:].copy()
    if sim.config.sensing.occlusion:
        active &= line_of_sight(sim.positions[b:b + 1, 0], sim.positions[b:b + 1, 1:], sim.obstacles.rows([b]))[0]
    index = np.nonzero(active)[0]
    return sim.positions[b, 1:][index], sim.velocities[b, 1:][index], sim.radii[b, 1:][index], index


def robot_scan(sim: CrowdSim, n_rays: int, b: int = 0) -> np.ndarray:
    """Env ``b``'s lidar over ``n_rays`` rays with the config's field of view, range and whether it sees people."""
    s = sim.config.sensing
    rows = slice(b, b + 1)
    return lidar_scan(sim.positions[rows, 0], sim.heading[rows], sim.obstacles.rows([b]), sim.positions[rows, 1:],
                      sim.radii[rows, 1:], sim.active[rows, 1:] & s.lidar_sees_humans, n_rays=n_rays, fov=s.lidar_fov,
                      max_range=s.lidar_range)[0]


@dataclasses.dataclass(kw_only=True)
class CrowdSimOptions:
    """How the crowd sim-robot runs (its command-line flags)."""

    seed: int = bounded(0, "episode k runs with seed + k", ge=0, le=2**31 - 1)
    sensor_rate_hz: float = bounded(10.0, "scan and people publications per sim second", gt=0, le=100)
    realtime_factor: float = bounded(1.0, "sim seconds per wall second", gt=0, le=1000)
    start_on_command: bool = True  # the first episode's clock starts with the first /cmd_vel


class CrowdSimRobotNode:
    """The crowd simulation behind ROS 2 topics (see the module docstring). :meth:`run` until stopped."""

    def __init__(self, robot: RobotConfig | str | Path, crowd: CrowdNavConfig, options: CrowdSimOptions | None = None,
                 *, topics: CrowdTopicsConfig | None = None, domain_id: int | None = None,
                 discovery: str = "localhost") -> None:
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self.robot = robot = load_robot_config(robot)
        self.options = options = options if options is not None else CrowdSimOptions()
        self.topics = topics = topics if topics is not None else CrowdTopicsConfig()
        if robot.state.odometry is None or robot.state.joint_state is None:
            raise ConfigError(f"robot {robot.name!r}: --crowd publishes the base's odometry and wheel joint states; "
                              "its robot file needs state.odometry and state.joint_state")
        rates = [robot.state.joint_state.rate_hz, robot.state.odometry.rate_hz]
        self.tick = 1.0 / max(rates)
        self.config = dataclasses.replace(crowd, time_step=self.tick)
        self.batch = CrowdNavBatch(self.config, 1)
        s = self.config.sensing
        self.scan_rays = s.lidar_rays or DEFAULT_SCAN_RAYS
        self.sensor_every = max(1, round(1.0 / (options.sensor_rate_hz * self.tick)))
        self.odom_frame = robot.state.odometry.frame_id or "odom"
        self.session = RosSession(f"sim_robot_{robot.name}_crowd", domain_id=domain_id, discovery=discovery,
                                  spin=False)
        node = self.session.node
        self.states = StatePublisher(node, robot)
        self.commands = CommandSubscriber(node, robot)
        sensor = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import LaserScan, PointCloud2

        self._scan_pub = node.create_publisher(LaserScan, topics.scan_topic, sensor)
        self._people_pub = node.create_publisher(PointCloud2, topics.people_topic, sensor)
        goal_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._goal_pub = node.create_publisher(PoseStamped, topics.goal_topic, goal_qos)
        self._event_pub = node.create_publisher(String, EVENT_TOPIC, latched)
        self._event_msg = String()
        self._joint_state = JointStateWriter(robot)
        names = robot.joint_names
        self._left, self._right = names.index(robot.base.left_wheel), names.index(robot.base.right_wheel)
        self.stop_event = threading.Event()
        self.episode = 0
        self.events: dict[str, int] = {}
        self.episode_log: list[dict[str, Any]] = []
        self.lag_resets = 0
        self._wheel_angles = np.zeros(2)
        self._wheel_velocity = np.zeros(2)
        self._start_episode()

    # -- episodes --------------------------------------------------------------------------------------------

    def _start_episode(self) -> None:
        self.batch.reset(0, self.options.seed + self.episode)
        self._wheel_velocity = np.zeros(2)
        self._goal_pub.publish(goal_message(self.batch.sim.robot_goal[0], self.session.now(), self.odom_frame))

    def _end_episode(self, event: str) -> None:
        self.events[event] = self.events.get(event, 0) + 1
        self.episode_log.append({"episode": self.episode, "seed": self.options.seed + self.episode, "event": event,
                                 "time": round(float(self.batch.sim.steps[0]) * self.tick, 3)})
        self._event_msg.data = event
        self._event_pub.publish(self._event_msg)
        self.episode += 1
        self._start_episode()

    # -- a tick ----------------------------------------------------------------------------------------------

    def _action(self, now: float) -> np.ndarray:
        """The newest twist as the env's ``[-1, 1]`` action (zero once commands stop)."""
        targets, received_at = self.commands.latest()
        if targets is None or received_at is None or now - received_at > self.robot.control.command_timeout_s:
            return np.zeros((1, 2))
        r = self.config.robot
        v, w = float(targets[0]), float(targets[1])
        forward = v / r.max_speed if v >= 0 else (v / r.max_reverse if r.max_reverse > 0 else 0.0)
        return np.clip(np.array([[forward, w / r.max_angular]]), -1.0, 1.0)

    def step(self, now: float) -> None:
        """One tick of the crowd and the robot under the newest command."""
        _, _, _, infos = self.batch.step(self._action(now))
        sim = self.batch.sim
        assert self.robot.base is not None
        self._wheel_velocity = np.array(self.robot.base.wheel_speeds(sim.forward_speed[0], sim.turn_rate[0]))
        self._wheel_angles += self._wheel_velocity * self.tick
        if "metrics" in infos[0]:  # the episode ended
            self._end_episode(infos[0]["event"] or "timeout")

    def publish_state(self, stamp: float) -> None:
        w = self._joint_state
        w.position[[self._left, self._right]] = self._wheel_angles
        w.velocity[[self._left, self._right]] = self._wheel_velocity
        self.states.publish("joint_state", w.stamp(stamp))
        self.states.publish("odometry", odometry_message(robot_odometry(self.batch.sim), stamp, self.odom_frame))

    def publish_sensors(self, stamp: float) -> None:
        positions, velocities, radii, ids = tracked_people(self.batch.sim)
        self._people_pub.publish(people_message(positions, velocities, radii, ids, stamp, self.odom_frame))
        s = self.config.sensing
        self._scan_pub.publish(scan_message(robot_scan(self.batch.sim, self.scan_rays), s.lidar_fov, s.lidar_range,
                                            stamp, scan_time=self.sensor_every * self.tick))

    # -- the loop --------------------------------------------------------------------------------------------

    def describe(self) -> str:
        c, t = self.config, self.topics
        return (f"sim-robot {self.robot.name} --crowd {c.scenario.name}: ready; ROS_DOMAIN_ID={self.session.domain_id}; "
                f"{c.scenario.max_humans} people ({c.humans.policy}, react_to_robot {c.humans.react_to_robot:g}), "
                f"tick {self.tick * 1e3:g} ms; publishing {self.robot.state.joint_state.topic}, "  # type: ignore[union-attr]
                f"{self.robot.state.odometry.topic} ({self.odom_frame}), {t.scan_topic} ({self.scan_rays} rays), "  # type: ignore[union-attr]
                f"{t.people_topic}, {t.goal_topic}, {EVENT_TOPIC}; commands on {self.robot.command.topic}")

    def run(self, duration: float | None = None) -> dict[str, Any]:
        """Simulate and publish until :attr:`stop_event` is set or for ``duration`` wall seconds."""
        rtf, tick = self.options.realtime_factor, self.tick
        start = time.monotonic()
        waiting = self.options.start_on_command
        next_wake, ticks = start, 0
        while not self.stop_event.is_set():
            now = time.monotonic()
            if duration is not None and now - start >= duration:
                break
            if next_wake > now:
                time.sleep(next_wake - now)
                now = time.monotonic()
            if now - next_wake > MAX_LAG_S / rtf:  # could not keep up: carry on from now instead of in a burst
                self.lag_resets += 1
                next_wake = now
            next_wake += tick / rtf
            self.commands.poll()
            if waiting:
                waiting = self.commands.latest()[0] is None
            if not waiting:
                self.step(now)
            stamp = self.session.now()
            self.publish_state(stamp)
            if ticks % self.sensor_every == 0:
                self.publish_sensors(stamp)
            ticks += 1
        return self.summary()

    def summary(self) -> dict[str, Any]:
        return {
            "episodes": len(self.episode_log),
            "events": dict(self.events),
            "episode_log": self.episode_log[-20:],
            "commands_received": self.commands.received,
            "commands_rejected": self.commands.rejected,
            "published": dict(self.states.published),
            "lag_resets": self.lag_resets,
        }

    def close(self) -> None:
        self.session.close()


def run_from_args(args: argparse.Namespace) -> int:
    """``roboreward sim-robot ROBOT --crowd SOURCE`` (see :mod:`roboreward.hardware.cli`)."""
    crowd_overrides = [o for o in args.overrides or [] if o.startswith("crowd.")]
    robot = load_robot_config(args.robot, [o for o in args.overrides or [] if not o.startswith("crowd.")])
    crowd = crowd_config(args.crowd, robot, crowd_overrides)
    options = CrowdSimOptions(seed=args.seed, sensor_rate_hz=args.sensor_rate, realtime_factor=args.realtime_factor)
    node = CrowdSimRobotNode(robot, crowd, options, domain_id=args.domain_id, discovery=args.discovery)
    try:
        with on_signals(lambda sig: node.stop_event.set()):
            print(node.describe(), flush=True)
            summary = node.run(args.duration)
        print(f"sim-robot {robot.name} --crowd: stopped; {json.dumps(summary)}", flush=True)
    finally:
        node.close()
    return 0


__all__ = ["CrowdSimOptions", "CrowdSimRobotNode", "crowd_config", "robot_odometry", "robot_scan", "run_from_args",
           "tracked_people"]
