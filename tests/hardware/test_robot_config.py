"""Robot files: the shipped ones load and match their MuJoCo models; malformed ones name the field;
the observation/action mapping; the MuJoCo stand-in and RobotSim-v0 (no ROS here)."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import yaml

from roboreward.errors import ConfigError
from roboreward.hardware.robot import (
    ImuState,
    OdometryState,
    RobotState,
    available_robots,
    load_robot_config,
    robot_config_path,
)
from roboreward.hardware.sim import RobotSimulation, mujoco


def franka_data() -> dict:
    return yaml.safe_load(robot_config_path("franka").read_text())


def write(tmp_path, data: dict, name: str = "robot.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_three_robots_ship():
    assert set(available_robots()) >= {"franka", "g1", "diff_drive"}


@pytest.mark.parametrize("name", ["franka", "g1", "diff_drive"])
def test_shipped_robot_loads_and_matches_its_mujoco_model(name):
    robot = load_robot_config(name)
    sim = RobotSimulation(robot)  # raises a ConfigError on any mismatch
    m = sim.model
    assert sim.model_mismatches() == []
    for joint, jid in zip(robot.joints, sim.joint_ids):
        assert m.joint(jid).name == joint.model_joint
        if m.jnt_limited[jid]:
            lo, hi = m.jnt_range[jid]
            assert lo - 1e-6 <= joint.position[0] < joint.position[1] <= hi + 1e-6
        assert joint.velocity > 0 and joint.effort > 0
    # The state the simulation reports has the robot file's shape and maps onto the observation space.
    obs = robot.observation_from_state(sim.state())
    assert obs.dtype == np.float32 and robot.observation_space.contains(obs)
    assert robot.action_space.shape == ((2,) if robot.action_kind == "twist" else (robot.n_joints,))
    # Its camera renders at the image topic's size.
    image = robot.state.image
    frame = sim.render()
    assert frame.shape == (image.height, image.width, 3) and frame.dtype == np.uint8 and frame.std() > 5
    sim.close()


def test_name_path_and_overrides(tmp_path):
    by_name = load_robot_config("franka")
    by_path = load_robot_config(robot_config_path("franka"))
    assert by_name == by_path and by_name.joint_names[0] == "panda_joint1"
    fast = load_robot_config("franka", ["control.rate_hz=100", "state.joint_state.rate_hz=500"])
    assert fast.control.rate_hz == 100 and fast.state.joint_state.rate_hz == 500
    with pytest.raises(ConfigError, match=r"unknown robot 'nope'; choose one of \['diff_drive', 'franka', 'g1'"):
        load_robot_config("nope")
    with pytest.raises(ConfigError, match="robot file 'missing.yaml' does not exist"):
        load_robot_config("missing.yaml")


def test_arrays_are_in_config_order():
    r = load_robot_config("franka")
    assert r.position_lower[3] == -3.0718 and r.position_upper[5] == 3.7525
    assert r.velocity_limit.tolist() == [2.175] * 4 + [2.61] * 3
    assert r.effort_limit.tolist() == [87] * 4 + [12] * 3
    assert r.home_position[3] == pytest.approx(-2.356194)
    assert r.control.mode == "position" and r.state_timeout_s == 0.5 and r.stale_after_s == pytest.approx(0.03)


# --------------------------------------------------------------------------------------------
# Malformed files name the field


def _mutate(path_in_data, value):
    data = franka_data()
    node = data
    for key in path_in_data[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path_in_data[-1]]
    else:
        node[path_in_data[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    "where, value, message",
    [
        (("joints", 2, "position"), [1.0, 0.5], r"joints\[2\]\.position: lower 1\.0 > upper 0\.5"),
        (("joints", 1, "velocity"), _DELETE, r"joints\[1\]\.velocity: missing"),
        (("joints", 0, "name"), _DELETE, r"joints\[0\]\.name: missing"),
        (("joints", 4, "effort"), "lots", r"joints\[4\]\.effort: expected a number, got 'lots'"),
        (("joints", 4, "effort"), -3, r"joints\[4\]\.effort: -3(\.0)? is too small; it must be > 0"),
        (("joints", 0, "limits"), [0, 1], r"joints\[0\]\.limits: unknown key"),
        (("joints", 3, "home"), 0.5, r"joints\[3\]\.home: 0\.5 is outside the joint's position limits"),
        (("joints", 1, "name"), "panda_joint1", r"joints\[1\]\.name: 'panda_joint1' repeats joints\[0\]\.name"),
        (("control", "mode"), "impedance", r"control\.mode: 'impedance' is not allowed; choose one of"),
        (("control", "rate_hz"), 0, r"control\.rate_hz: 0(\.0)? is too small"),
        (("control", "rate_hz"), 200, r"state\.joint_state\.rate_hz: 100(\.0)? is below control\.rate_hz 200"),
        (("state", "joint_state"), _DELETE, r"state\.joint_state: missing"),
        (
            ("state", "joint_state", "type"),
            "sensor_msgs/JointStates",
            r"state\.joint_state\.type: 'sensor_msgs/JointStates' is not a supported message type",
        ),
        (
            ("state", "image", "type"),
            "sensor_msgs/CompressedImage",
            r"state\.image\.type: 'sensor_msgs/CompressedImage'",
        ),
        (
            ("state", "joint_state", "topic"),
            "/joint states",
            r"state\.joint_state\.topic: '/joint states' is not a valid ROS 2 topic name",
        ),
        (("state", "joint_state", "rate_hz"), _DELETE, r"state\.joint_state\.rate_hz: missing"),
        (
            ("state", "joint_state", "qos", "reliability"),
            "sometimes",
            r"state\.joint_state\.qos\.reliability: 'sometimes' is not allowed",
        ),
        (("state", "joint_state", "qos", "depth"), 0, r"state\.joint_state\.qos\.depth: 0 is too small"),
        (
            ("state", "image", "qos", "durability"),
            "forever",
            r"state\.image\.qos\.durability: 'forever' is not allowed",
        ),
        (("command", "type"), "std_msgs/String", r"command\.type: 'std_msgs/String' is not a supported message type"),
        (("command", "topic"), _DELETE, r"command\.topic: missing"),
        (("command",), _DELETE, r"command: missing"),
        (("observation",), ["joint_position", "joint_jerk"], r"observation\[1\]: unknown term 'joint_jerk'"),
        (
            ("observation",),
            ["joint_position", "imu_angular_velocity"],
            r"observation\[1\]: 'imu_angular_velocity' reads state\.imu",
        ),
        (("simulation", "model"), "ur5", r"simulation\.model: 'ur5' is not allowed"),
        (("control", "rate_hz"), float("nan"), r"control\.rate_hz: nan is not a finite number"),
        (("control", "state_timeout_s"), float("inf"), r"control\.state_timeout_s: inf is not a finite number"),
        (("control", "command_timeout_s"), float("nan"), r"control\.command_timeout_s: nan is not a finite number"),
        (("control", "connect_timeout_s"), -1, r"control\.connect_timeout_s: -1(\.0)? is too small"),
        (("joints", 2, "position"), [float("-inf"), 1.0], r"joints\[2\]\.position\[0\]: -inf is not a finite number"),
        (("joints", 2, "velocity"), float("nan"), r"joints\[2\]\.velocity: nan is not a finite number"),
        (("joints", 2, "home"), float("nan"), r"joints\[2\]\.home: nan is not a finite number"),
        (("state", "joint_state", "rate_hz"), float("inf"), r"state\.joint_state\.rate_hz: inf is not a finite"),
    ],
)
def test_malformed_robot_file_names_the_field(tmp_path, where, value, message):
    path = write(tmp_path, _mutate(where, value))
    with pytest.raises(ConfigError, match=message) as e:
        load_robot_config(path)
    assert str(e.value).startswith("robot.yaml: ")  # and the file


def test_unreadable_robot_files_are_one_line_errors(tmp_path):
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ConfigError, match="robot file .*folder.yaml' is a folder, not a file"):
        load_robot_config(tmp_path / "folder.yaml")
    (tmp_path / "broken.yaml").write_text("name: x\njoints: [\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: line 3, column 1: invalid YAML"):
        load_robot_config(tmp_path / "broken.yaml")
    (tmp_path / "object.yaml").write_text("name: !!python/object/new:os.system [echo]\n")
    with pytest.raises(ConfigError, match="never Python objects"):
        load_robot_config(tmp_path / "object.yaml")


def test_twist_commands_need_a_base_and_velocity_control(tmp_path):
    data = franka_data()
    data["command"]["type"] = "geometry_msgs/Twist"
    with pytest.raises(ConfigError, match="base: missing; a robot commanded with geometry_msgs/Twist"):
        load_robot_config(write(tmp_path, data))
    drive = yaml.safe_load(robot_config_path("diff_drive").read_text())
    drive["base"]["left_wheel"] = "front_wheel"
    with pytest.raises(ConfigError, match=r"base\.left_wheel: 'front_wheel' is not one of the joints"):
        load_robot_config(write(tmp_path, drive))


def test_not_a_mapping_and_bad_yaml_types(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_robot_config(path)
    data = franka_data()
    data["joints"] = {"panda_joint1": 1}
    with pytest.raises(ConfigError, match=r"joints: expected a list"):
        load_robot_config(write(tmp_path, data))


def test_file_that_contradicts_its_model_names_the_joint(tmp_path):
    data = franka_data()
    data["joints"][3]["position"] = [-3.2, -0.0698]  # the model stops at -3.0718
    with pytest.raises(ConfigError, match=r"joints\[3\]\.position: \[-3\.2, -0\.0698\] is outside the model's range"):
        RobotSimulation(load_robot_config(write(tmp_path, data)))
    data = franka_data()
    data["joints"][5]["effort"] = 50  # the model's joint 6 actuator is limited to 12 Nm
    with pytest.raises(ConfigError, match=r"joints\[5\]\.effort: 50(\.0)? exceeds the model's 12"):
        RobotSimulation(load_robot_config(write(tmp_path, data)))
    data = franka_data()
    data["joints"][0]["mjcf_joint"] = "shoulder"
    with pytest.raises(ConfigError, match=r"joints\[0\]\.mjcf_joint: 'shoulder' is not a joint of the franka model"):
        RobotSimulation(load_robot_config(write(tmp_path, data)))


# --------------------------------------------------------------------------------------------
# Observation and action mapping


def test_position_actions_span_the_joint_limits_and_invert():
    r = load_robot_config("franka")
    assert np.allclose(r.command_from_action(-np.ones(7)), r.position_lower)
    assert np.allclose(r.command_from_action(np.ones(7)), r.position_upper)
    assert np.allclose(r.command_from_action(np.zeros(7)), (r.position_lower + r.position_upper) / 2)
    assert np.allclose(r.command_from_action(5 * np.ones(7)), r.position_upper)  # clipped
    targets = r.home_position
    assert np.allclose(r.command_from_action(r.action_from_command(targets)), targets)
    with pytest.raises(ValueError, match=r"expected an action of shape \(7,\), got \(6,\)"):
        r.command_from_action(np.zeros(6))
    with pytest.raises(ValueError, match="non-finite"):
        r.command_from_action(np.array([np.nan] + [0.0] * 6))


def test_velocity_torque_and_twist_scaling():
    vel = load_robot_config("franka", ["control.mode=velocity"])
    assert np.allclose(vel.command_from_action(np.full(7, 0.5)), 0.5 * vel.velocity_limit)
    torque = load_robot_config("franka", ["control.mode=torque"])
    assert np.allclose(torque.command_from_action(-np.ones(7)), -torque.effort_limit)
    drive = load_robot_config("diff_drive")
    assert drive.action_kind == "twist" and drive.action_space.shape == (2,)
    assert np.allclose(drive.command_from_action([1.0, -0.5]), [0.6, -1.0])


def test_observation_layout_and_terms():
    g1 = load_robot_config("g1")
    assert g1.observation_layout() == [
        ("joint_position", 29),
        ("joint_velocity", 29),
        ("imu_projected_gravity", 3),
        ("imu_angular_velocity", 3),
    ]
    n = g1.n_joints
    q = np.linspace(-0.1, 0.1, n)
    tilted = np.array([np.cos(0.25), np.sin(0.25), 0.0, 0.0])  # rolled 0.5 rad about x
    state = RobotState(
        position=q,
        velocity=np.ones(n),
        effort=np.zeros(n),
        imu=ImuState(orientation=tilted, angular_velocity=np.array([1.0, 2.0, 3.0]), linear_acceleration=np.zeros(3)),
    )
    obs = g1.observation_from_state(state)
    assert obs.shape == (64,) and np.allclose(obs[:n], q) and np.allclose(obs[n : 2 * n], 1.0)
    assert np.allclose(obs[2 * n : 2 * n + 3], [0.0, -np.sin(0.5), -np.cos(0.5)], atol=1e-6)
    assert np.allclose(obs[-3:], [1, 2, 3])
    with pytest.raises(ValueError, match="'imu_projected_gravity' needs the imu state"):
        g1.observation_from_state(RobotState(position=q, velocity=q, effort=q))
    with pytest.raises(ValueError, match="not finite"):
        g1.observation_from_state(RobotState(position=q, velocity=np.full(n, np.nan), effort=q, imu=state.imu))

    drive = load_robot_config("diff_drive")
    odom = OdometryState(
        position=np.array([1.0, 2.0, 0.06]),
        orientation=np.array([np.cos(0.5), 0.0, 0.0, np.sin(0.5)]),  # yaw 1 rad
        linear_velocity=np.array([0.3, 0.0, 0.0]),
        angular_velocity=np.array([0.0, 0.0, 0.7]),
    )
    obs = drive.observation_from_state(
        RobotState(position=np.zeros(2), velocity=np.array([4.0, 5.0]), effort=np.zeros(2), odometry=odom)
    )
    assert np.allclose(obs, [1, 2, np.cos(1.0), np.sin(1.0), 0.3, 0.7, 4, 5], atol=1e-6)


# --------------------------------------------------------------------------------------------
# The MuJoCo stand-in


def test_simulated_arm_reaches_position_targets_in_config_order(tmp_path):
    data = franka_data()
    data["joints"] = [data["joints"][i] for i in (6, 2, 0, 5, 3, 1, 4)]  # not the model's order
    robot = load_robot_config(write(tmp_path, data))
    sim = RobotSimulation(robot)
    assert sim.qpos_adr.tolist() == [6, 2, 0, 5, 3, 1, 4]
    assert np.allclose(sim.state().position, robot.home_position, atol=1e-9)
    target = robot.home_position + np.array([0.3, -0.2, 0.25, 0.2, -0.3, 0.2, 0.15])
    sim.apply(target)
    for _ in range(50):  # 1 s at 50 Hz
        sim.step()
    state = sim.state()
    assert np.allclose(state.position, target, atol=5e-3), state.position - target
    assert np.all(np.abs(state.velocity) < 0.05)
    assert state.stamp == pytest.approx(1.0)


def test_simulated_base_drives_and_senses():
    sim = RobotSimulation("diff_drive")
    for _ in range(10):  # settle on the floor
        sim.step()
    imu = sim.imu_state()
    assert np.allclose(imu.linear_acceleration, [0, 0, 9.81], atol=0.05)  # at rest: the accelerometer reads +g
    sim.apply([0.4, 0.0])
    for _ in range(40):  # 2 s
        sim.step()
    odom = sim.odometry_state()
    assert 0.5 < odom.position[0] < 0.85 and abs(odom.position[1]) < 0.05
    assert odom.linear_velocity[0] == pytest.approx(0.4, abs=0.05)
    sim.apply([0.0, 1.0])
    for _ in range(20):
        sim.step()
    assert sim.odometry_state().angular_velocity[2] == pytest.approx(1.0, abs=0.15)
    wheel = sim.state().velocity
    assert wheel[1] > 0 > wheel[0]  # turning left: the right wheel forward, the left one back


def test_pinned_g1_holds_its_pelvis_and_tracks_targets():
    sim = RobotSimulation("g1")
    robot = sim.robot
    assert all(sim.model.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE for j in range(sim.model.njnt))
    target = robot.home_position.copy()
    target[robot.joint_names.index("left_elbow_joint")] = 0.5
    sim.apply(target)
    for _ in range(50):
        sim.step()
    assert sim.state().position[robot.joint_names.index("left_elbow_joint")] == pytest.approx(0.5, abs=0.02)
    assert sim.data.xpos[sim.imu_body][2] == pytest.approx(1.0)


def test_robot_sim_env_task_and_spaces():
    env = gym.make("roboreward/RobotSim-v0", robot="franka")
    obs, info = env.reset(seed=0)
    robot = env.unwrapped.robot
    assert obs.shape == (14,) and info["distance"] > 0.2 and not info["is_success"]
    home_action = robot.action_from_command(robot.home_position)
    for _ in range(50):
        obs, reward, terminated, truncated, info = env.step(home_action)
    assert info["is_success"] and reward == pytest.approx(-info["distance"]) and not terminated
    assert np.allclose(obs[:7], robot.home_position, atol=0.05)
    env.close()
    # Same seed, same start; another seed, another start.
    a, b = (
        gym.make("roboreward/RobotSim-v0", robot="diff_drive"),
        gym.make("roboreward/RobotSim-v0", robot="diff_drive"),
    )
    assert np.array_equal(a.reset(seed=3)[0], b.reset(seed=3)[0])
    assert not np.array_equal(a.reset(seed=3)[0], b.reset(seed=4)[0])
    a.close()
    b.close()


def test_robot_config_is_copyable_and_comparable():
    r = load_robot_config("diff_drive")
    assert copy.deepcopy(r) == r
