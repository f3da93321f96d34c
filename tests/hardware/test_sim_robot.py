"""The bridge between real processes over DDS: ``roboreward sim-robot`` in a subprocess, ``RosRobotEnv``
here. Discovery stays on loopback and every test has a ROS domain of its own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

from roboreward.hardware.robot import load_robot_config, robot_config_path

from .conftest import ros_child_env


@pytest.fixture
def envs():
    made = []

    def make(*args, **kwargs):
        from roboreward.hardware.env import RosRobotEnv

        env = RosRobotEnv(*args, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def write_permuted_franka(tmp_path) -> tuple[object, list[int]]:
    data = yaml.safe_load(robot_config_path("franka").read_text())
    order = [6, 2, 0, 5, 3, 1, 4]  # config joint k is MuJoCo joint order[k]
    data["joints"] = [data["joints"][i] for i in order]
    path = tmp_path / "franka_permuted.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, order


# --------------------------------------------------------------------------------------------


def test_round_trip_in_permuted_joint_order_then_a_killed_robot_is_a_stale_state_error(
    tmp_path, domain_id, sim_robot, envs
):
    from sensor_msgs.msg import JointState

    from roboreward.hardware.ros import RosSession, StaleStateError, qos_profile

    path, order = write_permuted_franka(tmp_path)
    robot = load_robot_config(path)
    sim = sim_robot(path, domain_id, "--no-images")

    # What goes over the wire: the joints in MuJoCo's order, not the robot file's.
    wire: list[list[str]] = []
    with RosSession("probe", domain_id=domain_id) as probe:
        probe.node.create_subscription(
            JointState, "/joint_states", lambda m: wire.append(list(m.name)), qos_profile(robot.state.joint_state.qos)
        )
        env = envs(path, domain_id=domain_id)
        obs, info = env.reset()
        deadline = time.monotonic() + 10
        while not wire and time.monotonic() < deadline:
            time.sleep(0.01)
    assert wire and wire[0] == [f"panda_joint{i}" for i in range(1, 8)] != robot.joint_names

    # Reordered by name: the observation is in the robot file's order.
    assert np.allclose(obs[:7], robot.home_position, atol=1e-3), obs[:7]
    assert info["state_age_s"] < 0.5 and info["dropped"] >= 0 and info["ros"]["joint_state"]["received"] >= 1

    # Distinct targets per joint, in config order: a mix-up anywhere would put them on the wrong joints.
    target = robot.home_position + np.array([0.3, -0.25, 0.2, 0.15, -0.3, 0.25, -0.2])
    action = robot.action_from_command(target)
    for _ in range(50):  # 1 s at 50 Hz
        obs, reward, terminated, truncated, info = env.step(action)
    assert np.allclose(obs[:7], target, atol=0.01), obs[:7] - target
    assert np.allclose(info["command"], target)
    assert info["distance"] == pytest.approx(np.linalg.norm(target - robot.home_position), abs=0.02)
    assert reward == pytest.approx(-info["distance"])
    assert 0 <= info["state_age_s"] < robot.state_timeout_s and info["ros"]["joint_state"]["received"] >= 50
    assert {"stale", "dropped", "dropped_since_last_step", "command_delay_s", "state_wait_s"} <= set(info)

    # The robot dies: the next step waits out the timeout and raises, never returning the old state.
    sim.stop(signal.SIGKILL)
    time.sleep(0.1)
    start = time.monotonic()
    with pytest.raises(
        StaleStateError, match=r"no fresh sensor_msgs/JointState on /joint_states.*timeout 0\.500 s"
    ) as e:
        env.step(action)
    elapsed = time.monotonic() - start
    # It waited the timeout out (no early give-up) and did not hang (a loose bound: the machine is shared).
    assert robot.state_timeout_s <= elapsed < robot.state_timeout_s + 3.0, elapsed
    assert e.value.topic == "/joint_states" and e.value.age > robot.state_timeout_s and e.value.timeout == 0.5
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        env.step(action)


def test_diff_drive_twist_odometry_imu_camera_and_watchdog(domain_id, sim_robot, envs):
    sim = sim_robot("diff_drive", domain_id)
    env = envs("diff_drive", domain_id=domain_id, render_mode="rgb_array")
    obs, info = env.reset()
    x0 = obs[:2].copy()
    assert np.allclose(obs[2:4], [1.0, 0.0], atol=1e-3)  # heading 0: (cos, sin)
    for _ in range(20):  # 1 s at 20 Hz, full speed ahead (0.6 m/s)
        obs, _, _, _, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert 0.3 < obs[0] - x0[0] < 0.75 and abs(obs[1] - x0[1]) < 0.05, obs
    assert obs[4] == pytest.approx(0.6, abs=0.1)  # forward velocity from odometry
    assert obs[6] == pytest.approx(0.6 / 0.06, rel=0.2) and obs[7] == pytest.approx(0.6 / 0.06, rel=0.2)  # wheel rad/s
    ros = info["ros"]
    assert ros["odometry"]["received"] >= 20 and ros["imu"]["received"] >= 40 and ros["image"]["received"] >= 10
    imu = env.state.imu
    assert imu.linear_acceleration[2] == pytest.approx(9.81, abs=1.0)
    frame = env.render()
    assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8 and frame.std() > 5
    # Twists stop: the simulated base's watchdog stops it after command_timeout_s (0.5 s).
    time.sleep(1.2)
    assert abs(env.state.odometry.linear_velocity[0]) < 0.05
    assert sim.stop(signal.SIGTERM) == 0
    summary = [line for line in sim.lines if ": stopped;" in line]
    assert summary, sim.output
    # Commands are keep-last-1 (only the newest matters): a starved sim may skip some, never most.
    received = int(re.search(r"'commands_received': (\d+)", summary[0]).group(1))
    assert 10 <= received <= 20, summary[0]


def test_g1_joint_trajectory_commands(domain_id, sim_robot, envs):
    sim_robot("g1", domain_id, "--no-images")
    env = envs("g1", domain_id=domain_id)
    robot = env.robot
    obs, _ = env.reset()
    n = robot.n_joints
    assert np.allclose(obs[2 * n : 2 * n + 3], [0.0, 0.0, -1.0], atol=1e-3)  # pinned upright: gravity straight down
    target = robot.home_position.copy()
    moved = {"left_elbow_joint": 0.4, "right_shoulder_roll_joint": -0.6, "waist_yaw_joint": 0.3, "left_knee_joint": 0.8}
    for name, value in moved.items():
        target[robot.joint_names.index(name)] = value
    for _ in range(30):  # 0.6 s at 50 Hz
        obs, _, _, _, info = env.step(robot.action_from_command(target))
    assert np.allclose(obs[:n], target, atol=0.03), dict(zip(robot.joint_names, np.round(obs[:n] - target, 3)))


def test_drops_and_stalls_are_reported_in_info(domain_id, envs):
    """A robot (here a plain publisher in another DDS participant) that skips three messages and then stalls."""
    from roboreward.hardware.robot import RobotState
    from roboreward.hardware.ros import CommandSubscriber, RosSession, StatePublisher, joint_state_message

    overrides = ["state.joint_state.qos.depth=20"]  # a busy test machine must not drop messages itself
    robot = load_robot_config("franka", overrides)
    reversed_order = list(range(robot.n_joints))[::-1]
    q = np.linspace(0.1, 0.7, robot.n_joints)
    stop, go = threading.Event(), threading.Event()

    with RosSession("fake_robot", domain_id=domain_id) as fake:
        publisher = StatePublisher(fake.node, robot)
        commands = CommandSubscriber(fake.node, robot)  # reset waits for someone to take commands

        def publish():
            t0, period = fake.now(), 1.0 / robot.state.joint_state.rate_hz
            i, since_go = 0, -1
            while not stop.is_set():
                since_go = since_go + 1 if go.is_set() else -1
                if since_go == 80:
                    time.sleep(0.15)  # the stream stalls; stamps resume where they were: no drop
                if since_go not in (20, 21, 22):  # three messages never sent: a gap in the stamps
                    state = RobotState(position=q, velocity=np.zeros_like(q), effort=np.zeros_like(q))
                    publisher.publish("joint_state", joint_state_message(robot, state, t0 + i * period, reversed_order))
                i += 1
                time.sleep(period)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        try:
            env = envs("franka", overrides=overrides, domain_id=domain_id)
            obs, _ = env.reset()
            assert np.allclose(obs[:7], q)  # published in reverse, read back by name
            go.set()  # the skip and the stall happen while the env steps
            infos = [env.step(np.zeros(7, dtype=np.float32))[4] for _ in range(110)]
        finally:
            stop.set()
            thread.join(timeout=5)
    assert commands.received > 50 and commands.rejected == 0  # the env's commands reached the robot, well formed
    assert infos[-1]["dropped"] == 3
    assert sum(i["dropped_since_last_step"] for i in infos) == 3
    stalled = [i for i in infos if i["stale"]]
    assert stalled and max(i["state_wait_s"] for i in stalled) > 0.08
    assert infos[-1]["ros"]["joint_state"]["stale"] >= 1


def test_ros_environment_and_cli_errors(tmp_path, domain_id, monkeypatch):
    from roboreward.hardware.ros import LOCALHOST_PROFILE, ros_environment

    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION"):
        monkeypatch.setenv(name, "")  # unset for ros_environment; monkeypatch restores the real values after
    assert ros_environment(domain_id) == {
        "ROS_DOMAIN_ID": str(domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "FASTDDS_DEFAULT_PROFILES_FILE": str(LOCALHOST_PROFILE),  # quicker discovery on this machine
    }
    assert "leaseAnnouncement" in LOCALHOST_PROFILE.read_text()
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/site_dds.xml")
    assert ros_environment(domain_id)["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/site_dds.xml"  # the user's wins
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "")
    subnet = ros_environment(None, "subnet")  # a real robot's network: Fast DDS's own defaults
    assert subnet["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET" and not subnet.get("FASTDDS_DEFAULT_PROFILES_FILE")
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    with pytest.raises(ValueError, match="discovery='everywhere' is not allowed"):
        ros_environment(1, "everywhere")
    with pytest.raises(ValueError, match="ROS domain id 300 is out of range"):
        ros_environment(300)

    data = yaml.safe_load(robot_config_path("franka").read_text())
    data["joints"][2]["position"] = [1.0, 0.5]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    cases = [
        (["roboreward.cli", "sim-robot", "nope"], "unknown robot 'nope'"),
        (["roboreward.cli", "sim-robot", str(bad)], r"joints[2].position: lower 1.0 > upper 0.5"),
    ]
    for args, message in cases:
        run = subprocess.run(
            [sys.executable, "-m", *args],
            capture_output=True,
            text=True,
            env=ros_child_env(domain_id),
            timeout=60,
        )
        assert run.returncode == 2 and "roboreward sim-robot: error:" in run.stderr and message in run.stderr, (
            run.stderr
        )


# --------------------------------------------------------------------------------------------
# The 500 Hz path: reused messages, commands taken without an executor, physics prepared before the tick


def test_joint_state_writer_reuses_one_message_in_the_given_order():
    from roboreward.hardware.ros import JointOrder, JointStateWriter

    robot = load_robot_config("franka")
    order = [6, 2, 0, 5, 3, 1, 4]
    writer = JointStateWriter(robot, order)
    q = np.linspace(-1.0, 1.0, robot.n_joints)
    writer.position[:] = q[order]
    writer.velocity[:] = 2 * q[order]
    msg = writer.stamp(12.25)
    assert msg is writer.msg and list(msg.name) == [robot.joint_names[i] for i in order]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 250_000_000)
    back = JointOrder(robot)
    np.testing.assert_array_equal(back.reorder(list(msg.name), msg.position, "position"), q)
    np.testing.assert_array_equal(back.reorder(list(msg.name), msg.velocity, "velocity"), 2 * q)
    writer.position[:] = 0.0  # the views write into the message itself: nothing is copied per publication
    assert list(msg.position) == [0.0] * robot.n_joints and writer.stamp(13.0) is msg


def test_simulation_snapshot_restore_replays_the_same_physics():
    from roboreward.hardware.sim import RobotSimulation

    sim = RobotSimulation("franka")
    try:
        t0 = sim.time
        assert sim.advance_to(t0 + 0.0003) == 0 and sim.time == t0  # nearest whole step is the current one
        snapshot = sim.snapshot()
        target = sim.robot.home_position + 0.2
        sim.apply(target)
        assert sim.advance_to(t0 + 0.02) == 10
        q1 = sim.data.qpos.copy()
        sim.restore(snapshot)
        assert sim.time == t0 and np.array_equal(sim.targets, sim.robot.home_position)
        sim.apply(target)
        sim.advance_to(t0 + 0.02)
        np.testing.assert_array_equal(sim.data.qpos, q1)  # deterministic: redoing a step with a late command is exact
        sim.restore(snapshot)
        sim.advance_to(t0 + 0.02)  # without the command: a different state
        assert not np.allclose(sim.data.qpos, q1)
    finally:
        sim.close()


def test_sim_robot_at_500_hz_publishes_on_its_clock_without_bursts(tmp_path, domain_id, sim_robot):
    """Joint states stamped on a 2 ms grid, one per tick (a late tick is skipped and counted, never sent in a burst),
    and a command published here moves the robot (taken by the tick loop itself, no executor)."""
    from sensor_msgs.msg import JointState

    from roboreward.hardware.ros import CommandPublisher, RosSession, qos_profile

    data = yaml.safe_load(robot_config_path("franka").read_text())
    data["control"]["rate_hz"] = data["state"]["joint_state"]["rate_hz"] = 500
    path = tmp_path / "franka_500hz.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    robot = load_robot_config(path)
    sim = sim_robot(path, domain_id, "--no-images")
    stamps: list[float] = []
    positions: list[dict[str, float]] = []
    with RosSession("probe", domain_id=domain_id) as probe:
        deep = qos_profile(robot.state.joint_state.qos)
        deep.depth = 200  # keep every state here: the test judges the publisher, not this process
        probe.node.create_subscription(
            JointState,
            "/joint_states",
            lambda m: (stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
                       positions.append(dict(zip(m.name, m.position)))),
            deep,
        )
        commands = CommandPublisher(probe.node, robot)
        deadline = time.monotonic() + 20
        while len(stamps) < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = len(stamps)
        time.sleep(1.5)
        target = robot.home_position.copy()
        target[0] += 0.3
        for _ in range(100):  # the newest command wins; the sim holds it
            commands.publish(target)
            time.sleep(0.005)
        time.sleep(0.5)
        window = np.array(stamps[start:])
    assert sim.stop(signal.SIGTERM) == 0
    steps = np.diff(window) / 0.002
    assert len(window) > 500, len(window)  # of ~1000 in 2 s (a loose bound: the machine is shared)
    assert (steps > 0.5).all(), "stamps must strictly increase, one state per tick"
    np.testing.assert_allclose(steps, np.rint(steps), atol=0.05)  # on the 2 ms grid of the robot's clock
    assert positions[-1]["panda_joint1"] == pytest.approx(target[0], abs=0.02)
    summary = [line for line in sim.lines if ": stopped;" in line]
    assert summary, sim.output
    skipped = int(re.search(r"'ticks_skipped': \{'joint_state': (\d+)", summary[0]).group(1))
    published = int(re.search(r"'published': \{'joint_state': (\d+)", summary[0]).group(1))
    missing = int(np.rint(steps).sum()) - len(steps)  # ticks the grid has and this window lacks
    assert missing <= skipped + 5 or missing < 0.1 * len(window), (missing, skipped)
    assert "'physics_redone':" in summary[0] and published > 1000


def _policies(pid: int) -> dict[int, int]:
    """The scheduling policy of each thread of process ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = os.sched_getscheduler(int(tid))
        except OSError:  # the thread ended meanwhile
            pass
    return out


def test_realtime_runs_the_loop_and_dds_threads_fifo_and_the_renderer_at_normal_priority(domain_id, sim_robot):
    may_fifo = subprocess.run(
        [sys.executable, "-c", "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"],
        capture_output=True,
    )
    if may_fifo.returncode != 0:
        pytest.skip("SCHED_FIFO needs CAP_SYS_NICE, which this process lacks")
    for images in (False, True):
        process = sim_robot("diff_drive", domain_id, "--realtime", "3", *([] if images else ["--no-images"]))
        pid = process.proc.pid
        deadline = time.monotonic() + 10.0
        while os.sched_getscheduler(pid) != os.SCHED_FIFO and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the render thread and its renderer's threads start after the loop's priority is set
        policies = _policies(pid)
        assert policies[pid] == os.SCHED_FIFO, "the tick loop (main thread) is not SCHED_FIFO"
        normal = [tid for tid, policy in policies.items() if policy == os.SCHED_OTHER]
        if images:  # the render thread (and the GL threads it starts) must not compete with the loop
            assert normal, f"no thread runs at normal priority, the render thread neither: {policies}"
        else:  # the loop and DDS's threads
            assert not normal, f"threads {normal} of {sorted(policies)} run at normal priority, not SCHED_FIFO"
        assert process.stop() == 0
        assert "'realtime'" not in process.output, process.output


def test_realtime_refused_is_said_and_the_robot_runs_on(domain_id):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs util-linux's setpriv to drop CAP_SYS_NICE")
    run = subprocess.run(
        [setpriv, "--inh-caps=-sys_nice", "--bounding-set=-sys_nice", sys.executable, "-m",
         "roboreward.cli", "sim-robot", "diff_drive", "--domain-id", str(domain_id), "--no-images", "--realtime", "3",
         "--duration", "1"],
        capture_output=True, text=True, env=ros_child_env(domain_id), timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "real-time priority refused" in run.stderr, run.stderr  # said at once, not only in the summary
    assert ": stopped;" in run.stdout and "'realtime': 'real-time priority refused" in run.stdout, run.stdout
