"""Crowd navigation over ROS 2: the people/scan/goal messages, their frames, the deploy controller, and a trained
policy driving ``sim-robot diff_drive --crowd`` to its goal from another process."""

from __future__ import annotations

import json
import math
import threading
import time

import numpy as np
import pytest

from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.env import CrowdNavBatch, CrowdNavVecEnv
from roboreward.errors import ConfigError
from roboreward.hardware.crowd import (
    CrowdNavigationController,
    CrowdObservation,
    People,
    ScanResampler,
    people_from_message,
    people_message,
    scan_message,
)
from roboreward.hardware.crowd_sim_robot import crowd_config, robot_odometry, robot_scan, tracked_people
from roboreward.hardware.robot import OdometryState, RobotState, load_robot_config
from roboreward.hardware.ros import odometry_from_message, odometry_message

from .conftest import RoborewardProcess

CROWD = {"scenario": {"name": "circle_crossing", "n_humans": 6, "circle_radius": 4.0, "arena": 6.0,
                      "goal_distance": (4.0, 6.0)},
         "robot": {"kinematics": "diff_drive", "radius": 0.25},
         "humans": {"react_to_robot": 1.0, "radius": (0.25, 0.35), "max_speed": (0.5, 1.0)},
         "sensing": {"sensor_range": 4.0, "lidar_rays": 36, "lidar_range": 6.0, "lidar_sees_humans": True}}


def _odometry(x: float, y: float, yaw: float, forward: float = 0.0, turn: float = 0.0) -> OdometryState:
    return OdometryState(position=np.array([x, y, 0.0]), orientation=np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]),
                         linear_velocity=np.array([forward, 0.0, 0.0]), angular_velocity=np.array([0.0, 0.0, turn]))


def test_the_observation_is_in_the_robots_frame_x_ahead_y_left():
    """Hand-built: the robot at (1, 2) facing +y (90°) at 0.5 m/s; the goal 3 m along +y is straight ahead, a
    person at (0, 2) (world -x) is on its left, one at (1, 0) behind it."""
    config = CrowdNavConfig.from_kwargs(CROWD)
    observe = CrowdObservation(config, n_humans=6, lidar=False)
    people = People(positions=np.array([[0.0, 2.0], [1.0, 0.0]]), velocities=np.array([[0.5, 0.0], [0.0, 0.0]]),
                    radii=np.array([0.3, 0.3]))
    obs = observe(_odometry(1.0, 2.0, math.pi / 2, forward=0.5), np.array([1.0, 5.0]), people)
    np.testing.assert_allclose(obs["robot"][:4], [3.0, 0.0, 0.5, 0.0], atol=1e-6)  # goal ahead; moving ahead
    np.testing.assert_allclose(obs["robot"][4:6], [0.0, 1.0], atol=1e-6)  # cos, sin of the heading
    np.testing.assert_allclose(obs["humans"][0], [0.0, 1.0, 0.0, -0.5, 0.3], atol=1e-6)  # left; walking to its right
    np.testing.assert_allclose(obs["humans"][1], [-2.0, 0.0, 0.0, 0.0, 0.3], atol=1e-6)  # behind
    assert obs["humans_mask"].tolist() == [1, 1, 0, 0, 0, 0]
    far = People(np.array([[9.0, 2.0]]), np.zeros((1, 2)), np.array([0.3]))  # beyond the 4 m sensor range
    assert observe(_odometry(1.0, 2.0, 0.0), np.array([1.0, 5.0]), far)["humans_mask"].sum() == 0


def test_the_scan_reads_counter_clockwise_from_straight_behind_and_resamples_by_angle():
    """A scan of 8 rays with one short return on the left (+90°): the message's angles say so, and a policy with 4
    or 16 rays reads that return on its own left ray; no-returns travel as +inf and come back as max range."""
    ranges = np.full(8, 6.0)
    ranges[6] = 1.5  # rays at -180, -135, ..., 0 (index 4), 45, 90 (index 6), 135
    msg = scan_message(ranges, 2 * math.pi, 6.0, stamp=1.0)
    assert msg.angle_min == pytest.approx(-math.pi) and msg.angle_increment == pytest.approx(math.pi / 4)
    assert msg.angle_min + 6 * msg.angle_increment == pytest.approx(math.pi / 2)
    assert math.isinf(msg.ranges[0]) and msg.ranges[6] == pytest.approx(1.5)
    np.testing.assert_allclose(ScanResampler(8, 2 * math.pi, 6.0)(msg), ranges)
    four = ScanResampler(4, 2 * math.pi, 6.0)(msg)  # -180, -90, 0, 90
    np.testing.assert_allclose(four, [6.0, 6.0, 6.0, 1.5])
    sixteen = ScanResampler(16, 2 * math.pi, 6.0)(msg)
    assert sixteen[12] == pytest.approx(1.5)  # +90° is index 12 of 16
    msg.ranges = [float("nan"), float("-inf"), *msg.ranges[2:]]
    out = ScanResampler(8, 2 * math.pi, 6.0)(msg)
    assert out[0] == 6.0 and out[1] == 0.0  # NaN: no return; -inf: too close (REP 117)
    narrow = scan_message(np.full(5, 3.0), math.pi / 2, 6.0, stamp=1.0)  # a 90° scan cannot feed a 360° policy
    with pytest.raises(ValueError, match="covers 90"):
        ScanResampler(8, 2 * math.pi, 6.0)(narrow)


def test_people_messages_round_trip_and_bad_clouds_are_refused():
    positions, velocities = np.array([[1.0, -2.0], [3.5, 0.25]]), np.array([[0.5, 0.0], [-0.25, 1.0]])
    msg = people_message(positions, velocities, np.array([0.3, 0.4]), np.array([4, 9]), stamp=12.5)
    assert msg.header.frame_id == "odom" and [f.name for f in msg.fields][:6] == ["x", "y", "z", "vx", "vy", "radius"]
    people = people_from_message(msg)
    np.testing.assert_allclose(people.positions, positions)
    np.testing.assert_allclose(people.velocities, velocities)
    np.testing.assert_allclose(people.radii, [0.3, 0.4], rtol=1e-6)
    assert people.stamp == pytest.approx(12.5)
    empty = people_from_message(people_message(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), np.zeros(0), 1.0))
    assert empty.positions.shape == (0, 2)
    bad = people_message(np.array([[np.nan, 0.0]]), np.zeros((1, 2)), np.array([0.3]), np.array([0]), 1.0)
    with pytest.raises(ValueError, match="non-finite"):
        people_from_message(bad)
    msg.fields = [f for f in msg.fields if f.name != "vx"]
    with pytest.raises(ValueError, match="vx"):
        people_from_message(msg)


def test_what_the_topics_carry_rebuilds_the_envs_own_observation():
    """The frames end to end: each step, the sim-robot's odometry, people and scan go through their messages
    and the deploy side's observation builder, and come out as the observation the env gives its policy."""
    config = CrowdNavConfig.from_kwargs(CROWD)
    batch = CrowdNavBatch(config, 1)
    batch.reset(0, seed=5)
    observe = CrowdObservation(config, batch.n_humans, lidar=True)
    resample = ScanResampler(36, 2 * math.pi, 6.0)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(60):
        _, terminated, truncated, _ = batch.step(rng.uniform(-0.2, 1.0, (1, 2)))
        if terminated[0] or truncated[0]:
            batch.reset(0)
        sim = batch.sim
        odom = odometry_from_message(odometry_message(robot_odometry(sim), 1.0), 0.0)
        people = people_from_message(people_message(*tracked_people(sim), stamp=1.0))
        lidar = resample(scan_message(robot_scan(sim, 36), 2 * math.pi, 6.0, stamp=1.0))
        ours = observe(odom, sim.robot_goal[0], people, lidar)
        env = {k: v[0] for k, v in batch.observe().items()}
        assert ours.keys() == env.keys()
        for key in env:
            np.testing.assert_allclose(ours[key], env[key], atol=2e-5, err_msg=key)
        checked += int(env["humans_mask"].sum())
    assert checked > 30  # people were in view, not only empty rows


@pytest.fixture(scope="module")
def untrained():
    """A real (untrained) SB3 policy of the crowd env and its config."""
    from stable_baselines3 import PPO

    from roboreward.policies.crowd import CrowdAttentionExtractor
    from roboreward.policies.export import SB3PolicyRunner

    venv = CrowdNavVecEnv(2, **CROWD)
    model = PPO("MultiInputPolicy", venv, n_steps=8, batch_size=16, seed=0,
                policy_kwargs={"features_extractor_class": CrowdAttentionExtractor})
    return SB3PolicyRunner(model), venv.config


def test_the_controller_stands_without_a_goal_at_the_goal_and_on_stale_perception(untrained):
    runner, config = untrained
    controller = CrowdNavigationController(runner, config, load_robot_config("diff_drive"))
    assert controller.control_hz == 4.0
    state = RobotState(position=np.zeros(2), velocity=np.zeros(2), effort=np.zeros(2),
                       odometry=_odometry(0.0, 0.0, 0.0))
    np.testing.assert_array_equal(controller.command_for(state, now=10.0), [0.0, 0.0])
    assert controller.counts["no_goal"] == 1
    controller.set_goal((0.1, 0.0))  # within the goal radius (the robot's 0.25 m)
    np.testing.assert_array_equal(controller.command_for(state, now=10.0), [0.0, 0.0])
    assert controller.counts["arrived"] == 1
    controller.set_goal((4.0, 0.0))
    controller.set_people(People(np.array([[2.0, 1.0]]), np.zeros((1, 2)), np.array([0.3]), received_at=10.0))
    controller.set_lidar(np.full(36, 6.0), received_at=9.0)  # a second old: stale
    np.testing.assert_array_equal(controller.command_for(state, now=10.0), [0.0, 0.0])
    assert controller.counts["stale_perception"] == 1
    controller.set_lidar(np.full(36, 6.0), received_at=10.0)
    obs = controller.observation(state, now=10.1)
    command = controller.command_for(state, now=10.1)
    np.testing.assert_allclose(command, controller.twist(runner(obs)))
    r = config.robot  # the env's mapping: forward [0, max_speed] (no reverse), turn +-max_angular
    np.testing.assert_allclose(controller.twist(np.array([1.0, -1.0])), [r.max_speed, -r.max_angular])
    np.testing.assert_allclose(controller.twist(np.array([-0.5, 0.5])), [0.0, 0.5 * r.max_angular])
    np.testing.assert_allclose(controller.twist(np.array([3.0, 0.0])), [r.max_speed, 0.0])


def test_policies_and_robots_that_do_not_fit_are_refused(untrained):
    runner, config = untrained
    with pytest.raises(ConfigError, match="Twist"):
        CrowdNavigationController(runner, config, load_robot_config("franka"))
    holonomic = CrowdNavConfig.from_kwargs({**CROWD, "robot": {"kinematics": "holonomic"}})
    with pytest.raises(ConfigError, match="holonomic"):
        CrowdNavigationController(runner, holonomic, load_robot_config("diff_drive"))
    fast = CrowdNavConfig.from_kwargs({**CROWD, "robot": {"kinematics": "diff_drive", "max_speed": 1.2}})
    with pytest.raises(ConfigError, match="max_speed 1.2"):
        CrowdNavigationController(runner, fast, load_robot_config("diff_drive"))
    robot = load_robot_config("diff_drive")
    with pytest.raises(ConfigError, match="holonomic"):
        crowd_config("circle_crossing", robot, ["crowd.robot.kinematics=holonomic"])
    with pytest.raises(ConfigError, match="crowd.KEY=VALUE"):
        crowd_config("circle_crossing", robot, ["scenario.n_humans=3"])
    with pytest.raises(ConfigError, match="neither a scenario"):
        crowd_config("circle_crosing", robot)
    assert crowd_config("room", robot).robot.max_speed == robot.base.max_linear


def test_obstacle_tokens_are_left_empty_for_a_lidar_policy_that_does_not_read_them():
    """HEIGHT's setting (a room with boxes, a lidar): the crowd network ignores the obstacle tokens, so deploy can
    feed them empty; a policy whose extractor reads them (SB3's default) is refused."""
    from stable_baselines3 import PPO

    from roboreward.policies.crowd import CrowdAttentionExtractor
    from roboreward.policies.export import SB3PolicyRunner

    room = {"scenario": "room", "robot": {"kinematics": "diff_drive"}, "sensing": {"lidar_rays": 36}}
    venv = CrowdNavVecEnv(1, **room)
    config = venv.config
    attention = PPO("MultiInputPolicy", venv, n_steps=8, batch_size=8, seed=0,
                    policy_kwargs={"features_extractor_class": CrowdAttentionExtractor})
    controller = CrowdNavigationController(SB3PolicyRunner(attention), config, load_robot_config("diff_drive"))
    controller.set_goal((4.0, 0.0))
    controller.set_people(People(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0), received_at=10.0))
    controller.set_lidar(np.full(36, 10.0), received_at=10.0)
    state = RobotState(position=np.zeros(2), velocity=np.zeros(2), effort=np.zeros(2),
                       odometry=_odometry(0.0, 0.0, 0.0))
    obs = controller.observation(state, now=10.0)
    assert obs["obstacles_mask"].sum() == 0 and obs["obstacles"].shape == venv.observation_space["obstacles"].shape
    assert np.isfinite(controller.command_for(state, now=10.0)).all()
    default = PPO("MultiInputPolicy", venv, n_steps=8, batch_size=8, seed=0)
    with pytest.raises(ConfigError, match="reads obstacle tokens"):
        CrowdNavigationController(SB3PolicyRunner(default), config, load_robot_config("diff_drive"))


class EventProbe:
    """This process's view of the crowd sim-robot: its episode endings (latched) and its odometry."""

    def __init__(self, domain: int):
        from nav_msgs.msg import Odometry
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        from roboreward.hardware.ros import RosSession

        self.session = RosSession("crowd_probe", domain_id=domain)
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.odom: list[tuple[float, float]] = []
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.session.node.create_subscription(String, "/crowd/event", self._on_event, latched)
        self.session.node.create_subscription(Odometry, "/odom", self._on_odom, 10)

    def _on_event(self, msg):
        with self.lock:
            self.events.append(msg.data)

    def _on_odom(self, msg):
        with self.lock:
            self.odom.append((msg.pose.pose.position.x, msg.pose.pose.position.y))

    def wait_for_events(self, n: int, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= n:
                    return list(self.events)
            time.sleep(0.1)
        with self.lock:
            return list(self.events)

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="module")
def crowd_run(tmp_path_factory):
    """configs/crowd_diff_drive.yaml trained for 120k steps (about a minute): it reaches its goal in ~all episodes."""
    import subprocess
    import sys

    run = tmp_path_factory.mktemp("crowd") / "run"
    done = subprocess.run([sys.executable, "-m", "roboreward.cli", "train", "crowd_diff_drive", "--run-dir", str(run),
                           "train.total_timesteps=120000", "train.progress_bar=false"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run


def test_a_trained_crowd_policy_drives_the_ros2_base_through_the_crowd_to_its_goal(crowd_run, tmp_path, domain_id,
                                                                                  sim_robot):
    """sim-robot (the crowd the policy trained in) and deploy in their own processes: the robot reaches the goal
    of each of its first episodes among the people, commanded through the safety layer at the policy's rate."""
    probe = EventProbe(domain_id)
    sim = sim_robot("diff_drive", domain_id, "--crowd", str(crowd_run), "--seed", "100")
    stats = tmp_path / "deploy.json"
    deploy = RoborewardProcess(domain_id, "deploy", str(crowd_run), "--robot", "diff_drive", "--domain-id",
                               str(domain_id), "--duration", "120", "--stats", str(stats))
    try:
        deploy.wait_for(": ready;", timeout=120)
        events = probe.wait_for_events(3, timeout=90)
        with probe.lock:
            path = np.array(probe.odom)
    finally:
        deploy.stop()
        sim.stop()
        probe.close()
    assert events[:3] == ["success"] * 3, f"{events}\n{sim.output}\n{deploy.output}"
    assert len(path) > 100 and np.ptp(path, axis=0).max() > 3.0  # it drove metres, not a step
    summary = json.loads(sim.wait_for("stopped;").split("stopped; ", 1)[1])
    assert summary["events"].get("success", 0) >= 3 and summary["commands_rejected"] == 0
    result = json.loads(stats.read_text())
    assert result["control_rate_hz"] == 4.0 and result["estop_triggers"] == 0
    assert 3.5 < result["rate_hz"] < 4.3  # one command per 0.25 s of the 50 Hz odometry's stamps
    assert result["safety"]["commands"] > 50 and result["safety"]["nonfinite"] == 0
    controller = result["controller"]
    assert controller["people"] > 0 and controller["scans"] > 0 and controller["goals"] >= 3
    assert controller["rejected"] == 0
