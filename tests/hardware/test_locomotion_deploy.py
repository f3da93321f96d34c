"""The G1 walks over ROS 2: ``deploy --locomotion`` runs the holosoma policy on the robot side, the teleop session
drives it (pedal walks it, exoskeleton moves its arms), ``sim-robot g1_walking`` is the robot.

The controller is first checked in this process on the robot file's own simulation (no ROS); then the three
parts run as they would with a real G1: ``sim-robot`` and ``deploy`` in processes of their own, the session
here with simulated devices on real ptys and the ROS 2 sink, a probe node watching odometry and joint states.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import yaml

from roboreward.errors import ConfigError
from roboreward.hardware.locomotion import LocomotionController, LocomotionDeployConfig
from roboreward.hardware.robot import load_robot_config, robot_config_path
from roboreward.policies.locomotion import load_locomotion_policy

from .conftest import RoborewardProcess


@pytest.fixture(scope="module")
def policy():
    return load_locomotion_policy("g1_holosoma")


def drive(sim, controller, seconds: float, t0: float = 0.0) -> float:
    """Run the controller on the simulation at 50 Hz for ``seconds`` (controller clock from ``t0``); the end time."""
    t = t0
    for _ in range(round(seconds * 50)):
        sim.apply(controller.command_for(sim.state(), now=t))
        sim.step(0.02)
        t += 0.02
    return t


def test_the_controller_walks_the_robot_files_g1_and_passes_the_operators_arm_targets(policy):
    from roboreward.hardware.sim import RobotSimulation

    sim = RobotSimulation("g1_walking")
    try:
        controller = LocomotionController(policy, sim.robot)
        names = sim.robot.joint_names
        t = drive(sim, controller, 2.0)
        x0 = sim.odometry_state().position.copy()
        assert x0[2] > 0.7 and np.hypot(*x0[:2]) < 0.05  # stands where it started
        elbow = names.index("left_elbow_joint")
        assert controller.set_targets(["left_elbow_joint", "left_hand_thumb_0_joint"], [1.2, 0.3])  # unknown: ignored
        assert controller.set_velocity(0.5, 0.0, 0.0, now=t)
        for _ in range(10):  # a 0.5 s stream of commands, then silence
            t = drive(sim, controller, 0.05, t)
            controller.set_velocity(0.5, 0.0, 0.0, now=t)
        for _ in range(70):
            t = drive(sim, controller, 0.05, t)
            controller.set_velocity(0.5, 0.0, 0.0, now=t)
        walked = sim.odometry_state().position - x0
        print(f"4 s at 0.5 m/s: {walked[0]:.2f} m forward, {walked[1]:+.2f} m sideways")
        assert walked[0] > 0.7 and abs(walked[1]) < 0.4  # ~80 % of the command once in its gait
        command = controller.command_for(sim.state(), now=t)
        assert command[elbow] == pytest.approx(1.2)  # the operator's target, not the policy's
        assert abs(sim.state().position[elbow] - 1.2) < 0.05
        # The commands stop: after command_timeout_s the policy is told to stand still, and it does.
        before = sim.odometry_state().position.copy()
        t = drive(sim, controller, 0.6 + 2.0, t)
        settled = sim.odometry_state().position.copy()
        t = drive(sim, controller, 2.0, t)
        assert controller.counts["command_timeouts"] == 1
        assert np.hypot(*(sim.odometry_state().position - settled)[:2]) < 0.1  # standing again
        assert np.hypot(*(settled - before)[:2]) < 0.8  # a step or two to stop, not walking on
        assert not controller.set_velocity(math.nan, 0.0, 0.0) and not controller.set_targets(["x"], [math.inf])
        assert controller.counts["rejected"] == 2
    finally:
        sim.close()


def test_the_height_on_cmd_vel_squats_the_robot_and_none_stands_it_tall(policy):
    """``linear.z`` is the base height: 0.65 squats the robot file's G1 (the layer's reference-pose squat), 0 stands."""
    from roboreward.hardware.sim import RobotSimulation

    sim = RobotSimulation("g1_walking")
    try:
        controller = LocomotionController(policy, sim.robot)
        t = drive(sim, controller, 1.0)
        standing = sim.odometry_state().position[2]
        for _ in range(40):  # 2 s of commands at 0.65 m
            controller.set_velocity(0.0, 0.0, 0.0, 0.65, now=t)
            t = drive(sim, controller, 0.05, t)
        squatting = sim.odometry_state().position[2]
        assert policy.last_command.base_height == pytest.approx(0.65)
        for _ in range(40):  # then commands without a height: stand tall
            controller.set_velocity(0.0, 0.0, 0.0, 0.0, now=t)
            t = drive(sim, controller, 0.05, t)
        print(f"pelvis {standing:.3f} m standing, {squatting:.3f} m for 0.65, {sim.odometry_state().position[2]:.3f} m "
              "after height 0")
        assert squatting == pytest.approx(0.65, abs=0.025)  # measured 0.641
        assert policy.last_command.base_height == pytest.approx(0.757)
        assert sim.odometry_state().position[2] == pytest.approx(standing, abs=0.02)
    finally:
        sim.close()


def test_the_policy_sees_its_own_arm_targets_unless_told_otherwise(policy):
    from roboreward.hardware.sim import RobotSimulation

    sim = RobotSimulation("g1_walking")
    try:
        for observation in ("commanded", "measured"):
            sim.reset()
            policy.reset()
            controller = LocomotionController(policy, sim.robot, LocomotionDeployConfig(arm_observation=observation))
            controller.set_targets(["left_elbow_joint"], [1.5])
            drive(sim, controller, 1.0)
            state = sim.state()
            previous = policy.last_action.copy()
            controller.command_for(state, now=1.0)
            i = policy.joint_names.index("left_elbow_joint")
            seen = policy.last_observation[policy.term_slices["dof_pos"]][i]
            measured = state.position[sim.robot.joint_names.index("left_elbow_joint")] - policy.default_pose[i]
            if observation == "commanded":
                assert seen == pytest.approx(0.25 * previous[i], abs=1e-6)
            else:
                assert seen == pytest.approx(measured, abs=1e-5)
            assert abs(measured - 0.9) < 0.1  # the arm is at the operator's 1.5 rad, 0.9 from the default pose
    finally:
        sim.close()


def test_a_robot_file_the_policy_cannot_walk_is_refused(policy, tmp_path):
    with pytest.raises(ConfigError, match="control.rate_hz is 100 but the locomotion policy 'g1_holosoma' runs at "
                                          "50 Hz; set control.rate_hz=50"):
        LocomotionController(policy, load_robot_config("g1_walking", ["control.rate_hz=100"]))
    data = yaml.safe_load(robot_config_path("g1_walking").read_text())
    data["joints"][3]["kp"] = 500.0  # left knee
    (tmp_path / "stiff.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="left_knee_joint.kp 500 \\(the policy's: 99.098427"):
        LocomotionController(policy, load_robot_config(tmp_path / "stiff.yaml"))
    with pytest.raises(ConfigError, match="drives joints .* that robot 'franka' does not have"):
        LocomotionController(policy, load_robot_config("franka"))
    with pytest.raises(ConfigError, match="reports no IMU"):
        LocomotionController(policy, load_robot_config("g1_walking", ["state.imu=null",
                                                                       "observation=[joint_position]"]))


class Probe:
    """This process's view of the robot: odometry (x, y) and joint positions by name."""

    def __init__(self, domain: int):
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import JointState

        from roboreward.hardware.ros import RosSession

        self.session = RosSession("walking_probe", domain_id=domain)
        self.lock = threading.Lock()
        self.odom: list[tuple[float, float, float]] = []
        self.joints: dict[str, float] = {}

        def on_odom(msg):
            p = msg.pose.pose.position
            with self.lock:
                self.odom.append((p.x, p.y, p.z))

        def on_joints(msg):
            with self.lock:
                self.joints.update(zip(msg.name, msg.position))

        self.session.node.create_subscription(Odometry, "/odom", on_odom, 10)
        self.session.node.create_subscription(JointState, "/joint_states", on_joints, 10)

    def pose(self) -> tuple[float, float, float]:
        with self.lock:
            return self.odom[-1]

    def close(self) -> None:
        self.session.close()


def test_the_teleop_session_walks_a_ros2_g1_and_moves_its_arms(tmp_path, domain_id, sim_robot):
    """sim-robot and deploy in their own processes; the pedal walks the G1 forward, the exoskeleton bends its elbow."""
    from roboreward.hardware.teleop_sink import RosSinkConfig
    from roboreward.teleop.cockpit import device_config
    from roboreward.teleop.dataset import BASE_COMMAND_NAMES, BASE_POSE_NAMES, TeleopDataset
    from roboreward.teleop.recorder import RecordConfig
    from roboreward.teleop.robots import make_teleop_robot
    from roboreward.teleop.session import SessionConfig, TeleopSession
    from roboreward.teleop.simulated import SimulatedExoskeletonArm, SimulatedPedal

    sim_robot("g1_walking", domain_id, "--no-images")
    time.sleep(2.0)  # the G1 hangs still until the deploy's first command: a late deploy finds it standing
    deploy = RoborewardProcess(domain_id, "deploy", "--locomotion", "g1_holosoma", "--robot", "g1_walking",
                               "--domain-id", str(domain_id), "--duration", "60")
    probe = Probe(domain_id)
    teleop = make_teleop_robot("g1", cameras=["head"], size=(32, 24))
    exo = pedal = None
    try:
        deploy.wait_for(": ready;")
        deadline = time.monotonic() + 30
        while not probe.odom and time.monotonic() < deadline:
            time.sleep(0.05)
        assert probe.odom, "no odometry from sim-robot"
        time.sleep(2.0)  # the deploy has the robot standing
        x0, y0, z0 = probe.pose()
        assert z0 > 0.7, f"the G1 is down before the session starts: pelvis at {z0:.2f} m"
        arm = np.asarray(teleop.targets[:7], dtype=np.float64).copy()
        arm[3] = 1.3  # the left elbow bent to 1.3 rad
        exo = SimulatedExoskeletonArm(side="left", rate_hz=250, seed=3, noise=0.0, motion=lambda t: arm)
        pedal = SimulatedPedal(rate_hz=250, n_buttons=0, seed=4, noise=0.0,
                               motion=lambda t: [4095.0 * 0.6, 0.0, 0.0, 0.0])  # forward at 60 %, nothing else
        exo.start()
        pedal.start()
        config = SessionConfig(
            robot="g1",
            devices={"exo_left": device_config("exo_left", exo.port, stale_after_s=0.3),
                     "pedal": device_config("pedal", pedal.port, stale_after_s=0.3)},
            sink=RosSinkConfig(robot="g1_walking", domain_id=domain_id, connect_timeout_s=20.0, locomotion=True),
            resume_blend_s=0.2, status_interval_s=0, viewer="off",
            record=RecordConfig(root=str(tmp_path / "walk"), fps=10, width=32, height=24),
        )
        session = TeleopSession(config, robot=teleop, keyboard=False, print_fn=lambda m: None)
        with session:
            assert session.sink.has_base and session.sink.mapping.unsent[:1] == ["left_hand_thumb_0_joint"]
            session.request("start_stop")
            # Walk 5 s (the recording starts a moment later: its first frame waits for the video encoder), and on
            # until 1 m forward: the simulation and the controller run in real time beside the test, so a loaded
            # CPU walks slower; the 20 s limit only says "never".
            started = time.monotonic()
            session.run(duration=5.0)
            session.run(duration=15.0, until=lambda: probe.pose()[0] - x0 > 1.0)
            took = time.monotonic() - started
            x, y, z = probe.pose()
            elbow = probe.joints["left_elbow_joint"]
            session.request("start_stop")  # save
            session.run(duration=0.05)
            session.run(duration=30.0, until=lambda: not session.pending_saves)
        print(f"pedal at 60 % (0.48 m/s) for {took:.1f} s: {x - x0:.2f} m forward, {y - y0:+.2f} m sideways, "
              f"pelvis {z:.2f} m; left elbow {elbow:.2f} rad (exoskeleton 1.3)")
        assert z > 0.6  # still on its feet
        assert x - x0 > 1.0  # it walked forward (the robot faces +x)
        assert abs(elbow - 1.3) < 0.1
        # The recording holds the robot's joints and its base pose (odometry), the arms' targets and the walk command.
        ds = TeleopDataset(tmp_path / "walk")
        features = ds.reader.features
        state_names, action_names = features["observation.state"]["names"], features["action"]["names"]
        assert state_names[-4:] == list(BASE_POSE_NAMES) and len(state_names) == 29 + 4
        assert action_names[-3:] == list(BASE_COMMAND_NAMES) and len(action_names) == 14 + 3
        # A device that stalls past stale_after_s (a loaded CPU) holds the robot and splits the recording into
        # episodes: the walk is from the first recorded frame to the last.
        first, last = ds.reader.episode(0), ds.reader.episode(ds.reader.num_episodes - 1)
        walked = last.state[-1, -4] - first.state[0, -4]
        commanded = max(ds.reader.episode(i).action[:, -3].max() for i in range(ds.reader.num_episodes))
        assert walked > 0.5 and commanded == pytest.approx(0.48, abs=0.01)  # the pedal's 60 % of 0.8 m/s
        assert ds.episode(0).meta["base"] == "walking"
    finally:
        for device in (exo, pedal):
            if device is not None:
                device.stop()
        probe.close()
        teleop.close()
        deploy.stop()
    print(deploy.output.splitlines()[-1])


def test_a_walking_robots_sink_waits_for_odometry_as_well_as_joint_states(domain_id):
    """Recordings of a walking robot hold its base pose: joint states alone do not connect, and the error names
    the odometry topic that stayed silent (a frame without a pose would be NaN, which no dataset accepts)."""
    from sensor_msgs.msg import JointState

    from roboreward.hardware.ros import RosSession
    from roboreward.hardware.teleop_sink import RobotNotConnectedError, RosSinkConfig
    from roboreward.teleop.robots import make_teleop_robot

    robot_file = load_robot_config("g1_walking")
    joints = RosSession("joints_only", domain_id=domain_id)
    publisher = joints.node.create_publisher(JointState, robot_file.state.joint_state.topic, 10)

    def publish():
        msg = JointState(name=list(robot_file.joint_names), position=[0.0] * len(robot_file.joint_names))
        msg.header.stamp = joints.node.get_clock().now().to_msg()
        publisher.publish(msg)

    joints.node.create_timer(0.02, publish)
    teleop = make_teleop_robot("g1", cameras=["head"], size=(32, 24))
    try:
        config = RosSinkConfig(robot="g1_walking", domain_id=domain_id, connect_timeout_s=2.0, locomotion=True)
        with pytest.raises(RobotNotConnectedError, match=rf"nav_msgs/Odometry arrived on /odom within 2 s on "
                                                         rf"ROS_DOMAIN_ID={domain_id}"):
            config.build(teleop, frame_size=(32, 24))
    finally:
        teleop.close()
        joints.close()
