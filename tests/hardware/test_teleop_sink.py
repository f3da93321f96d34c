"""``sink: {type: ros2}``: the teleoperation session drives ``roboreward sim-robot`` over DDS.

Real parts throughout: ``sim-robot franka`` runs in its own process, the cockpit's exoskeleton is a
simulated device on a real pty read by the real driver, the session runs here with the ROS 2 sink,
and a probe node in this process watches the wire (commands and joint states) independently of the
sink. Discovery stays on loopback and every test has a ROS domain of its own.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml

from roboreward.config import from_dict
from roboreward.errors import ConfigError
from roboreward.hardware.robot import load_robot_config, robot_config_path


@pytest.fixture(scope="module")
def franka():
    from roboreward.teleop.robots import make_teleop_robot

    robot = make_teleop_robot("franka", cameras=["front"], size=(64, 48))
    yield robot
    robot.close()


def _franka_file(tmp_path, joint1_limits=(-0.3, 0.3), **changes) -> str:
    """configs/robots/franka.yaml with a small camera (80x60 at 10 Hz: cheap to render on a CPU) and joint 1
    limited to ``joint1_limits``, a narrower range than the teleop robot's, so that only the sink can enforce it."""
    data = yaml.safe_load(robot_config_path("franka").read_text())
    data["state"]["image"].update(width=80, height=60, rate_hz=10)
    data["joints"][0]["position"] = list(joint1_limits)
    data.update(changes)
    path = tmp_path / "franka_test.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


class Probe:
    """A node of its own that records the robot's joint states (by name) and the commands on the wire."""

    def __init__(self, robot, domain: int):
        from roboreward.hardware.ros import MESSAGE_CLASSES, JointOrder, RosSession, qos_profile

        self.session = RosSession("teleop_sink_probe", domain_id=domain)
        order = JointOrder(robot)
        self.lock = threading.Lock()
        self.states: list[tuple[float, np.ndarray]] = []
        self.commands: list[tuple[float, np.ndarray]] = []

        def on_state(msg):
            q = order.reorder(list(msg.name), msg.position, "position")
            with self.lock:
                self.states.append((time.monotonic(), q))

        def on_command(msg):
            with self.lock:
                self.commands.append((time.monotonic(), np.asarray(msg.data, dtype=np.float64)))

        js, cmd = robot.state.joint_state, robot.command
        node = self.session.node
        node.create_subscription(MESSAGE_CLASSES[js.type], js.topic, on_state, qos_profile(js.qos))
        node.create_subscription(MESSAGE_CLASSES[cmd.type], cmd.topic, on_command, qos_profile(cmd.qos))

    def position(self) -> np.ndarray:
        with self.lock:
            return self.states[-1][1].copy()

    def commands_since(self, t: float) -> np.ndarray:
        with self.lock:
            return np.array([c for tc, c in self.commands if tc >= t])


# --------------------------------------------------------------------------------------------


def test_sim_robot_follows_the_exoskeleton_within_limits_holds_on_unplug_and_records(tmp_path, domain_id, franka, sim_robot):
    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.hardware.teleop_sink import RosCommandSink, RosSinkConfig
    from roboreward.teleop.calibration import ArmCalibration, JointCalibration, save_calibration
    from roboreward.teleop.cockpit import device_config
    from roboreward.teleop.recorder import RecordConfig
    from roboreward.teleop.replay import replay_episode
    from roboreward.teleop.session import SessionConfig, TeleopSession
    from roboreward.teleop.simulated import SimulatedExoskeletonArm

    path = _franka_file(tmp_path)
    robot_file = load_robot_config(path)
    sim = sim_robot(path, domain_id)
    probe = Probe(robot_file, domain_id)
    franka.reset()
    # A calibration that is not the identity: raw = sign * q + offset; the session must undo it.
    offset = np.array([0.3, -0.2, 0.1, 0.0, 0.25, -0.15, 0.05])
    sign = np.array([1, -1, 1, -1, 1, 1, -1])
    calib = ArmCalibration(side="right", joints=[
        JointCalibration(offset=float(o), sign=int(s), lower=-3.0, upper=3.0) for o, s in zip(offset, sign)
    ])
    save_calibration(calib, tmp_path / "exo_right.yaml")
    home = robot_file.home_position
    poses = {  # robot joint angles the operator holds, in turn
        "a": home + np.array([0.2, 0.3, -0.25, 0.3, 0.4, -0.3, 0.2]),
        "b": home + np.array([-0.15, -0.2, 0.3, -0.35, -0.3, 0.25, -0.4]),
        "beyond": home + np.array([0.6, 0.1, 0.0, 0.2, 0.0, 0.0, 0.0]),  # joint 1 past the file's 0.3
    }
    operator = {"q": poses["a"]}
    exo = SimulatedExoskeletonArm(side="right", rate_hz=250, noise=0.0, seed=1,
                                  motion=lambda t: offset + sign * operator["q"])
    exo.start()
    config = SessionConfig(
        robot="franka",
        devices={"exo_right": device_config("exo_right", exo.port, calibration=str(tmp_path / "exo_right.yaml"),
                                            stale_after_s=0.3)},
        sink=RosSinkConfig(robot=path, domain_id=domain_id, connect_timeout_s=20.0),
        record=RecordConfig(root=str(tmp_path / "demo"), fps=20, width=64, height=48,
                            task="follow the exoskeleton over ROS 2"),
        resume_blend_s=0.2,
        status_interval_s=0,
        viewer="off",
    )
    session = None
    try:
        session = TeleopSession(config, robot=franka, keyboard=False, print_fn=lambda m: None)
        sink = session.sink
        assert isinstance(sink, RosCommandSink) and session.cameras == ["front"]  # the robot file's camera
        assert sink.mapping.unsent == ["finger_joint1", "finger_joint2"]  # configs/teleop/ros/franka.yaml
        with session:
            session.request("start_stop")
            reached = {}
            for name in ("a", "b", "beyond"):
                operator["q"] = poses[name]
                session.run(duration=2.5)
                reached[name] = probe.position()
            session.request("success")
            session.run(duration=0.3)

            # Unplugged: the robot is held where it is, whatever the operator does meanwhile.
            exo.unplug()
            session.run(duration=2.0, until=lambda: session.held)
            assert session.held
            t_hold = time.monotonic()
            operator["q"] = poses["a"]
            session.run(duration=1.0)
            held_commands = probe.commands_since(t_hold + 0.2)
            held_position = probe.position()
        counters = sink.counters()
    finally:
        if session is not None:
            session.close()
        exo.stop()
        sim.stop()
        probe.session.close()

    # The sim-robot's joints reached each pose the operator held (calibration undone, names mapped).
    np.testing.assert_allclose(reached["a"], poses["a"], atol=0.02)
    np.testing.assert_allclose(reached["b"], poses["b"], atol=0.02)
    # The robot file's limit holds although the device (and the teleop robot's wider limits) asked for more.
    expected = poses["beyond"].copy()
    expected[0] = 0.3
    np.testing.assert_allclose(reached["beyond"], expected, atol=0.02)
    with probe.lock:
        received = np.array([t for t, _ in probe.commands])
        sent = np.array([c for _, c in probe.commands])
    assert sent.shape[1] == 7 and sent[:, 0].max() <= 0.3 + 1e-12
    assert counters["safety"]["position_limited"] > 0
    # The robot never moves faster than its velocity limit: each change between messages it receives is
    # within the limit for the time between them, plus one period for receive jitter (a busy machine may
    # deliver two messages back to back, or lose one of a reliable depth-1 topic: the next then carries two
    # periods' worth of change). A jump to the operator's next pose, ~0.5 rad, would be ten times over.
    step = np.abs(np.diff(sent, axis=0))
    period = 1.0 / robot_file.control.rate_hz
    allowed = robot_file.velocity_limit[None, :] * (np.diff(received)[:, None] + period) + 1e-9
    assert np.all(step <= allowed), (step / allowed).max()
    # Held: the same targets streamed, the robot's measured pose, not the operator's new one.
    assert len(held_commands) >= 20  # ~50 Hz for 0.8 s
    assert np.ptp(held_commands, axis=0).max() < 1e-9
    np.testing.assert_allclose(held_commands[-1], held_position, atol=0.01)
    assert np.abs(held_position - poses["a"]).max() > 0.3
    assert counters["holds"] == 1

    # The episode holds the robot's own joints: its state is the sim-robot's, its action what was sent.
    ds = DatasetReader(tmp_path / "demo")
    assert len(ds) == 1 and ds.episodes[0].success
    assert ds.features["observation.state"]["names"] == [f"panda_joint{i}.pos" for i in range(1, 8)]
    assert ds.features["action"]["names"] == [f"panda_joint{i}.target" for i in range(1, 8)]
    ep = ds.episode(0)
    assert 6.0 * 20 < len(ep) < 9.0 * 20
    assert ep.action[:, 0].max() <= 0.3 + 1e-12
    last = ep.state[-1]
    np.testing.assert_allclose(last, expected, atol=0.02)
    tracking = ep.state - ep.action
    assert np.sqrt(np.mean(tracking**2)) < 0.1
    frames = ds.frames(0, "front")  # sim-robot's 80x60 camera images, resized to the recording's 64x48
    assert frames.shape == (len(ep), 48, 64, 3) and frames.std() > 1.0
    assert counters["missing_images"] < 10  # black frames only until the first image arrived

    # `teleop replay` maps the robot file's columns back to the teleop robot's joints through the sink's map
    # (kept in the episode's sidecar); the fingers were not sent, so they are not compared.
    franka.reset()
    replay = replay_episode(tmp_path / "demo", 0, robot=franka)
    assert replay.joint_names == [f"joint{i}" for i in range(1, 8)]
    np.testing.assert_array_equal(replay.recorded, ep.state)
    # The recording is consistent: the teleop model, driven open loop by the recorded commands, retraces the
    # sim-robot's recorded states (measured: RMS 0.004 rad, against 0.044 rad of tracking lag to the commands).
    assert replay.rms < 0.02 and replay.rms < replay.command_rms / 3, replay.format()


def test_bad_ros_sink_configs_stop_with_the_field_and_the_fix(tmp_path, domain_id, franka, capsys):
    from roboreward.hardware.teleop_sink import RobotNotConnectedError, RosSinkConfig, joint_mapping
    from roboreward.teleop.session import SessionConfig

    def make_sink(**keys):
        return RosSinkConfig(**keys).build(franka, frame_size=(64, 48))

    with pytest.raises(ConfigError, match="sink.robot: missing.*--ros-robot franka"):
        from_dict(SessionConfig, {"sink": {"type": "ros2"}})
    with pytest.raises(ConfigError, match="sink.robot: missing"):
        RosSinkConfig()
    with pytest.raises(ConfigError, match=r"sink.robot: unknown robot 'nope'; choose one of \[.*franka"):
        make_sink(robot="nope")

    robot_file = load_robot_config("franka")
    # The shipped map: the teleop Franka's panda.xml names onto the robot file's; the fingers stay local.
    m = joint_mapping(franka.joint_names, robot_file, RosSinkConfig(robot="franka"), "franka")
    assert [robot_file.joint_names[i] for i in m.robot_index] == [f"panda_joint{i}" for i in range(1, 8)]
    assert [franka.joint_names[i] for i in m.teleop_index] == [f"joint{i}" for i in range(1, 8)]
    # Joints the robot file lacks: named, with the fix.
    with pytest.raises(ConfigError, match=r"sink.joint_map: the session drives finger_joint1, finger_joint2, "
                                          r"which the robot file franka lacks.*=null"):
        make_sink(robot="franka", joint_map={"finger_joint1": "finger_joint1", "finger_joint2": "finger_joint2"})
    with pytest.raises(ConfigError, match=r"drives joint3 \(mapped to 'panda_joint33'\), which"):
        make_sink(robot="franka", joint_map={"joint3": "panda_joint33"})
    with pytest.raises(ConfigError, match=r"sink.joint_map.elbow: 'elbow' is not a joint of the teleop robot franka"):
        make_sink(robot="franka", joint_map={"elbow": "panda_joint4"})
    # Robot joints the session does not drive: named, with the fix; hold_joints accepts them.
    with pytest.raises(ConfigError, match=r"sink.hold_joints: the session does not drive franka's joints "
                                          r"\['panda_joint7'\].*sink.hold_joints to hold them"):
        make_sink(robot="franka", joint_map={"joint7": None})
    held = joint_mapping(franka.joint_names, robot_file,
                         RosSinkConfig(robot="franka", joint_map={"joint7": None}, hold_joints=["panda_joint7"]),
                         "franka")
    assert held.held == ["panda_joint7"] and len(held.robot_index) == 6
    with pytest.raises(ConfigError, match=r"sink.hold_joints\[0\]: 'panda_joint1' is driven by the teleop joint"):
        make_sink(robot="franka", hold_joints=["panda_joint1"])
    with pytest.raises(ConfigError, match="both drive franka's 'panda_joint2'"):
        make_sink(robot="franka", joint_map={"joint1": "panda_joint2"})
    # A robot file that takes velocities cannot be driven with the cockpit's positions.
    velocity = _franka_file(tmp_path, control={"mode": "velocity", "rate_hz": 50})
    with pytest.raises(ConfigError, match="control.mode is 'velocity'.*control.mode: position"):
        make_sink(robot=velocity)
    # Nobody on the domain: the joint-state topic, the domain and what to start, within the timeout.
    t0 = time.monotonic()
    nobody = rf"/joint_states within 0.5 s on ROS_DOMAIN_ID={domain_id}.*sim-robot franka.*sink.domain_id"
    with pytest.raises(RobotNotConnectedError, match=nobody):
        make_sink(robot="franka", domain_id=domain_id, connect_timeout_s=0.5)
    assert time.monotonic() - t0 < 5

    # The CLI: the flags reach the sink section, and the errors are CLI errors (exit 2), not tracebacks.
    from roboreward.cli import main

    assert main(["teleop", "run", "--robot", "franka", "--devices", "exo_right=/dev/x", "--sink", "ros2"]) == 2
    assert "sink.robot: missing" in capsys.readouterr().err
    assert main(["teleop", "run", "--robot", "franka", "--devices", "exo_right=/dev/x", "--ros-robot", "nope"]) == 2
    assert "sink.robot: unknown robot 'nope'" in capsys.readouterr().err
    assert main(["teleop", "run", "--robot", "franka", "--simulated", "--viewer", "off", "--ros-robot", "franka",
                 "--domain-id", str(domain_id), "sink.connect_timeout_s=0.5"]) == 2
    assert f"ROS_DOMAIN_ID={domain_id}" in capsys.readouterr().err
    assert main(["teleop", "run", "--robot", "franka", "--simulated", "--viewer", "off", "sink.type=ros2",
                 "sink.robot=franka", f"sink.domain_id={domain_id}", "sink.connect_timeout_s=0.5"]) == 2
    assert f"ROS_DOMAIN_ID={domain_id}" in capsys.readouterr().err
