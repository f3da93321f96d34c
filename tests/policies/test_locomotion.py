"""The locomotion layer: the holosoma G1 policy's layout, its observation vector, its errors, and the G1 walking
in MuJoCo under it (real onnxruntime, real MuJoCo, holosoma's own files). The simulation alone: tests/envs/test_g1.py.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from pathlib import Path

import mujoco
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from onnx import TensorProto, helper

from roboreward.config import find_named, from_dict
from roboreward.envs.g1 import G1Sim
from roboreward.errors import CheckpointError, ConfigError, NonFiniteError, SetupError
from roboreward.policies.locomotion import (
    LocomotionPolicy,
    LocomotionPolicyConfig,
    LocomotionState,
    load_locomotion_config,
    load_locomotion_policy,
    locomotion_policy_names,
    resolve_onnx_path,
)

DEFAULT_ONNX = "holosoma_inference:models/loco/g1_29dof/fastsac_g1_29dof.onnx"
G1_ONNX = ["ppo_g1_29dof.onnx", "fastsac_g1_29dof.onnx"]  # both G1 walking policies holosoma-inference ships
STAND = 0.757  # the G1's pelvis height in the default pose (squat.standing_height)


def _package_file(package: str, rel: str) -> Path:
    return Path(next(iter(importlib.util.find_spec(package).submodule_search_locations))) / rel


def _holosoma_value(package: str, rel: str, variable: str, *keywords: str):
    """A literal argument of ``variable = SomeConfig(...)`` in one of holosoma's config files, read with ``ast``
    (the packages are installed without their dependencies, so their config modules do not import)."""
    tree = ast.parse(_package_file(package, rel).read_text())
    assigned = (n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == variable)
    node = next(assigned).value
    for keyword in keywords:
        node = next(k.value for k in node.keywords if k.arg == keyword)
    return ast.literal_eval(node)


@pytest.fixture
def policy() -> LocomotionPolicy:
    return load_locomotion_policy("g1_holosoma")


@pytest.fixture(scope="module")
def g1_sim() -> G1Sim:
    return G1Sim.for_policy(load_locomotion_config("g1_holosoma"))


def _shipped_yaml() -> dict:
    return yaml.safe_load(find_named("g1_holosoma", "locomotion").read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------
# The shipped config against holosoma's own files


def test_shipped_by_name():
    assert "g1_holosoma" in locomotion_policy_names()
    assert find_named("g1_holosoma", "locomotion").name == "g1_holosoma.yaml"
    with pytest.raises(ConfigError, match="did you mean 'g1_holosoma'"):
        find_named("g1_holosma", "locomotion")


@pytest.mark.parametrize("onnx_file", G1_ONNX)
def test_onnx_layout_matches_package_metadata(onnx_file):
    """Sizes, joint names and gains of the ONNX file itself (read here independently) equal the config's."""
    config = load_locomotion_config("g1_holosoma", [f"onnx=holosoma_inference:models/loco/g1_29dof/{onnx_file}"])
    path = resolve_onnx_path(config.onnx)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, out.name, out.shape) == ("actor_obs", [1, 100], "action", [1, 29])
    meta = {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    assert meta["dof_names"] == config.joint_names
    assert meta["kp"] == pytest.approx([config.kp[n] for n in config.joint_names], rel=1e-12)
    assert meta["kd"] == pytest.approx([config.kd[n] for n in config.joint_names], rel=1e-12)
    assert meta["command_ranges"]["lin_vel_x"] == list(config.command_ranges.vx)
    assert meta["command_ranges"]["ang_vel_yaw"] == list(config.command_ranges.yaw_rate)
    policy = LocomotionPolicy(config)
    assert policy.observation_size == 100 and len(policy.joint_names) == 29


def test_config_values_are_holosomas():
    """Terms, sizes, scales, history, default pose, action scale, rate and gait period as holosoma's config files
    give them; the terms in holosoma's concatenation order (sorted by name)."""
    config = load_locomotion_config("g1_holosoma")
    obs = "config/config_values/observation.py"
    terms = _holosoma_value("holosoma_inference", obs, "loco_g1_29dof", "obs_dict")["actor_obs"]
    dims = _holosoma_value("holosoma_inference", obs, "loco_g1_29dof", "obs_dims")
    scales = _holosoma_value("holosoma_inference", obs, "loco_g1_29dof", "obs_scales")
    history = _holosoma_value("holosoma_inference", obs, "loco_g1_29dof", "history_length_dict")["actor_obs"]
    assert [t.name for t in config.observation] == sorted(terms)
    assert {t.name: (t.size, t.scale) for t in config.observation} == {n: (dims[n], scales[n]) for n in terms}
    assert config.history_length == history
    robot = "config/config_values/robot.py"
    assert config.joint_names == list(_holosoma_value("holosoma_inference", robot, "g1_29dof", "dof_names"))
    pose = _holosoma_value("holosoma_inference", robot, "g1_29dof", "default_dof_angles")
    assert [config.default_pose[n] for n in config.joint_names] == list(pose)
    task = "config/config_values/task.py"
    assert config.control_hz == _holosoma_value("holosoma_inference", task, "locomotion", "rl_rate")
    assert config.action_scale == _holosoma_value("holosoma_inference", task, "locomotion", "policy_action_scale")
    assert config.gait_period_s == _holosoma_value("holosoma_inference", task, "locomotion", "gait_period")
    training = "config_values/robot.py"
    assert config.action_clip == _holosoma_value("holosoma", training, "g1_29dof", "control", "action_clip_value")
    stiffness = _holosoma_value("holosoma", training, "g1_29dof", "control", "stiffness")
    damping = _holosoma_value("holosoma", training, "g1_29dof", "control", "damping")
    for name in config.joint_names:
        kind = name.removeprefix("left_").removeprefix("right_").removesuffix("_joint")
        assert (config.kp[name], config.kd[name]) == (stiffness[kind], damping[kind]), name


# --------------------------------------------------------------------------------------------
# The observation vector


def _tilted_state(policy: LocomotionPolicy) -> tuple[LocomotionState, dict]:
    """A hand-built state: each joint off its default pose by a known amount, known velocities, the pelvis
    rolled 0.3 rad and pitched -0.2 rad."""
    n = len(policy.joint_names)
    offsets = 0.01 * np.arange(1, n + 1)
    velocities = np.linspace(-2.0, 2.0, n)
    gyro = np.array([0.4, -0.8, 1.2])
    quat = np.zeros(4)
    roll, pitch = np.zeros(4), np.zeros(4)
    mujoco.mju_axisAngle2Quat(roll, [1.0, 0.0, 0.0], 0.3)
    mujoco.mju_axisAngle2Quat(pitch, [0.0, 1.0, 0.0], -0.2)
    mujoco.mju_mulQuat(quat, roll, pitch)
    inverse, gravity = np.zeros(4), np.zeros(3)
    mujoco.mju_negQuat(inverse, quat)
    mujoco.mju_rotVecQuat(gravity, np.array([0.0, 0.0, -1.0]), inverse)  # world gravity seen from the pelvis
    state = LocomotionState(joint_positions=policy.default_pose + offsets, joint_velocities=velocities,
                            base_angular_velocity=gyro, base_quaternion=quat)
    return state, {"offsets": offsets, "velocities": velocities, "gyro": gyro, "gravity": gravity}


def test_observation_terms_at_their_offsets(policy):
    state, truth = _tilted_state(policy)
    policy.act((0.5, -0.2, 0.3, STAND), state)
    obs, s = policy.last_observation, policy.term_slices
    assert obs.dtype == np.float32 and obs.shape == (100,)
    # holosoma's order: sorted by name
    expected_offsets = {"actions": 0, "base_ang_vel": 29, "command_ang_vel": 32, "command_lin_vel": 33,
                        "cos_phase": 35, "dof_pos": 37, "dof_vel": 66, "projected_gravity": 95, "sin_phase": 98}
    assert {name: sl.start for name, sl in s.items()} == expected_offsets
    first_phase = np.array([1.0, 1.0]) * 2 * math.pi / 50 + np.array([0.0, math.pi])  # one step after reset
    expected = {
        "actions": np.zeros(29),
        "base_ang_vel": truth["gyro"] * 0.25,
        "command_ang_vel": [0.3],
        "command_lin_vel": [0.5, -0.2],
        "cos_phase": np.cos(first_phase),
        "dof_pos": truth["offsets"],
        "dof_vel": truth["velocities"] * 0.05,
        "projected_gravity": truth["gravity"],
        "sin_phase": np.sin(first_phase),
    }
    for name, value in expected.items():
        np.testing.assert_allclose(obs[s[name]], value, atol=2e-6, err_msg=name)
    assert np.linalg.norm(obs[s["projected_gravity"]]) == pytest.approx(1.0, abs=1e-6)

    first_action = policy.last_action.copy()
    targets = policy.act((0.5, -0.2, 0.3, STAND), state)
    np.testing.assert_array_equal(policy.last_observation[s["actions"]], first_action)  # the previous raw action
    second_phase = first_phase + 2 * math.pi / 50
    np.testing.assert_allclose(policy.last_observation[s["sin_phase"]], np.sin(second_phase), atol=2e-6)
    assert targets.dtype == np.float64
    np.testing.assert_allclose(targets, policy.default_pose + 0.25 * policy.last_action.astype(np.float64))


def test_projected_gravity_given_directly_equals_quaternion(policy):
    state, truth = _tilted_state(policy)
    policy.act((0.5, 0.0, 0.0, 0.75), state)
    from_quaternion = policy.last_observation.copy()
    policy.reset()
    direct = LocomotionState(joint_positions=state.joint_positions, joint_velocities=state.joint_velocities,
                             base_angular_velocity=state.base_angular_velocity, projected_gravity=truth["gravity"])
    policy.act((0.5, 0.0, 0.0, 0.75), direct)
    np.testing.assert_allclose(policy.last_observation, from_quaternion, atol=1e-6)


def test_phase_stands_at_pi_and_restarts_when_moving(policy):
    state, _ = _tilted_state(policy)
    s = policy.term_slices
    step = 2 * math.pi / 50
    policy.act((0.0, 0.0, 0.0, 0.75), state)  # a command below the threshold: both feet at pi (standing)
    np.testing.assert_allclose(policy.phase, [math.pi, math.pi])
    np.testing.assert_allclose(policy.last_observation[s["cos_phase"]], [-1.0, -1.0], atol=1e-6)
    policy.act((0.005, 0.005, 0.005, 0.75), state)  # still below 0.01: standing
    np.testing.assert_allclose(policy.phase, [math.pi, math.pi])
    policy.act((0.0, 0.0, 0.2, 0.75), state)  # turning on the spot counts as moving: the clocks restart at (0, pi)
    np.testing.assert_allclose(policy.phase, [0.0, math.pi])
    np.testing.assert_allclose(policy.last_observation[s["sin_phase"]], [0.0, 0.0], atol=1e-6)
    for k in range(1, 60):  # then advance 2 pi / 50 per step, wrapped to [-pi, pi)
        policy.act((0.3, 0.0, 0.0, 0.75), state)
        expected = np.angle(np.exp(1j * (np.array([0.0, math.pi]) + k * step)))
        np.testing.assert_allclose(np.exp(1j * policy.phase), np.exp(1j * expected), atol=1e-9)
        assert np.all(policy.phase >= -math.pi) and np.all(policy.phase < math.pi)


def test_commands_are_clipped(policy):
    state, _ = _tilted_state(policy)
    policy.act((3.0, -2.0, 5.0, 0.2), state)
    assert policy.last_command == (1.0, -1.0, 1.0, 0.65)  # the height to the squat's range
    np.testing.assert_allclose(policy.last_observation[policy.term_slices["command_lin_vel"]], [1.0, -1.0])


def test_without_a_squat_the_height_is_ignored():
    policy = load_locomotion_policy("g1_holosoma", ["squat=null", "command_ranges.base_height=null"])
    state, _ = _tilted_state(policy)
    seen = []
    for height in (0.45, 0.75, 1.2):  # no height input, no squat: same observation, same targets
        policy.reset()
        targets = policy.act((0.5, 0.0, 0.0, height), state)
        seen.append((policy.last_observation.copy(), targets))
    for obs, targets in seen[1:]:
        np.testing.assert_array_equal(obs, seen[0][0])
        np.testing.assert_array_equal(targets, seen[0][1])


def test_the_squat_bends_the_reference_pose_at_its_rate(policy):
    """Hand-built state; the reference pose checked against the planar leg, joint by joint."""
    squat = policy.config.squat
    state, _ = _tilted_state(policy)
    names = policy.joint_names
    legs = [[names.index(n) for n in leg] for leg in squat.legs]
    knees = []
    for _ in range(30):
        targets = policy.act((0.0, 0.0, 0.0, 0.65), state)
        knees.append(policy.reference_pose[legs[0][1]])
    assert np.all(np.diff(knees[:18]) > 0) and np.all(np.diff(knees[18:]) == 0)  # 0.107 m at 6 mm a step: 18 steps
    depth = STAND - 0.65
    a, b = squat.thigh, squat.shank
    for hip, knee, ankle in legs:
        k0, k = policy.default_pose[knee], policy.reference_pose[knee]
        reach = lambda angle: math.sqrt(a * a + b * b + 2 * a * b * math.cos(angle))  # noqa: E731
        assert reach(k) == pytest.approx(reach(k0) - depth, abs=1e-9)  # the hips lowered by the depth
        moved = policy.reference_pose[[hip, knee, ankle]] - policy.default_pose[[hip, knee, ankle]]
        assert moved.sum() == pytest.approx(squat.lean * depth, abs=1e-9)  # feet stay flat; the hips lean
        assert moved[0] < 0 < moved[1] and moved[2] < 0  # thigh forward, knee bent, ankle flexed
    others = [i for i in range(len(names)) if not any(i in leg for leg in legs)]
    np.testing.assert_array_equal(policy.reference_pose[others], policy.default_pose[others])
    # The policy observes and acts around the squat: dof_pos against it, targets from it.
    np.testing.assert_allclose(policy.last_observation[policy.term_slices["dof_pos"]],
                               state.joint_positions - policy.reference_pose, atol=2e-6)
    np.testing.assert_allclose(targets, policy.reference_pose + 0.25 * policy.last_action.astype(np.float64))
    policy.reset()  # a reset stands tall again
    np.testing.assert_array_equal(policy.reference_pose, policy.default_pose)


def test_squat_geometry_is_the_g1_models():
    """The squat section's leg lengths and standing height, measured on holosoma's G1 MJCF."""
    from roboreward.envs.g1_loco import G1LocoEnv

    squat = load_locomotion_config("g1_holosoma").squat
    env = G1LocoEnv(randomization={"enabled": False})
    try:
        m = env.sim.model
        d = mujoco.MjData(m)
        d.qpos[3:7] = [1, 0, 0, 0]
        mujoco.mj_kinematics(m, d)
        for leg in squat.legs:
            hip, knee, ankle = (d.xanchor[m.joint(n).id][[0, 2]] for n in leg)
            assert np.linalg.norm(knee - hip) == pytest.approx(squat.thigh, abs=1e-3)
            assert np.linalg.norm(ankle - knee) == pytest.approx(squat.shank, abs=1e-3)
        heights, knees = env.knee_table  # pelvis above flat soles, by knee angle
        order = np.argsort(knees)
        k0 = load_locomotion_config("g1_holosoma").default_pose["left_knee_joint"]
        assert np.interp(k0, knees[order], heights[order]) == pytest.approx(squat.standing_height, abs=2e-3)
    finally:
        env.close()


@pytest.mark.parametrize(
    "command, field",
    [
        ((math.nan, 0.0, 0.0, 0.75), "vx"),
        ((0.0, 0.0, math.inf, 0.75), "yaw_rate"),
        ((0.0, 0.0, 0.0, math.nan), "base_height"),
    ],
)
def test_non_finite_command_never_reaches_the_network(policy, command, field):
    state, _ = _tilted_state(policy)
    policy.act((0.5, 0.0, 0.0, 0.75), state)
    before = (policy.last_observation.copy(), policy.phase, policy.last_action.copy())
    with pytest.raises(NonFiniteError, match=field):
        policy.act(command, state)
    np.testing.assert_array_equal(policy.last_observation, before[0])
    np.testing.assert_array_equal(policy.phase, before[1])
    np.testing.assert_array_equal(policy.last_action, before[2])


def test_non_finite_or_misshapen_state_is_refused(policy):
    state, _ = _tilted_state(policy)
    q = state.joint_positions.copy()
    q[3] = math.nan
    bad = LocomotionState(joint_positions=q, joint_velocities=state.joint_velocities,
                          base_angular_velocity=state.base_angular_velocity, base_quaternion=state.base_quaternion)
    with pytest.raises(NonFiniteError, match="left_knee_joint"):
        policy.act((0.5, 0.0, 0.0, 0.75), bad)
    bad = LocomotionState(joint_positions=state.joint_positions, joint_velocities=state.joint_velocities,
                          base_angular_velocity=state.base_angular_velocity, base_quaternion=[math.nan, 0, 0, 0])
    with pytest.raises(NonFiniteError, match="base_quaternion"):
        policy.act((0.5, 0.0, 0.0, 0.75), bad)
    bad = LocomotionState(joint_positions=state.joint_positions[:28], joint_velocities=state.joint_velocities,
                          base_angular_velocity=state.base_angular_velocity, base_quaternion=state.base_quaternion)
    with pytest.raises(ValueError, match=r"joint_positions: expected shape \(29,\)"):
        policy.act((0.5, 0.0, 0.0, 0.75), bad)
    with pytest.raises(ValueError, match="4 numbers"):
        policy.act((0.5, 0.0, 0.0), state)


# --------------------------------------------------------------------------------------------
# History and action mapping, on a network built here (holosoma's G1 has no history)


def _picking_onnx(path: Path, obs_size: int, picks: list[int]) -> None:
    """An ONNX network whose action j is observation[picks[j]]: the test can read back what it was fed."""
    weights = np.zeros((obs_size, len(picks)), dtype=np.float32)
    for j, i in enumerate(picks):
        weights[i, j] = 1.0
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["act"])],
        "picker",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [1, obs_size])],
        [helper.make_tensor_value_info("act", TensorProto.FLOAT, [1, len(picks)])],
        [helper.make_tensor("W", TensorProto.FLOAT, weights.shape, weights.reshape(-1).tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_history_is_per_term_oldest_first(tmp_path):
    # terms dof_pos (2) then command_ang_vel (1), history 3: [dof_pos t-2, t-1, t | yaw t-2, t-1, t]
    _picking_onnx(tmp_path / "picker.onnx", 9, [4, 8])  # actions: the newest dof_pos[0] and the newest yaw rate
    config = from_dict(LocomotionPolicyConfig, {
        "name": "picker", "onnx": str(tmp_path / "picker.onnx"), "joint_names": ["a", "b"],
        "default_pose": {"a": 0.1, "b": -0.1}, "kp": {"a": 10, "b": 10}, "kd": {"a": 1, "b": 1},
        "observation": [{"name": "dof_pos", "size": 2, "scale": 2.0}, {"name": "command_ang_vel", "size": 1}],
        "history_length": 3, "action_scale": 0.5, "action_clip": 0.25,
    })
    policy = LocomotionPolicy(config)
    assert policy.term_slices == {"dof_pos": slice(0, 6), "command_ang_vel": slice(6, 9)}
    frames = []
    for k in range(4):
        q = np.array([0.1 + 0.01 * (k + 1), -0.1 - 0.02 * (k + 1)])
        state = LocomotionState(joint_positions=q, joint_velocities=np.zeros(2), base_angular_velocity=np.zeros(3),
                                projected_gravity=np.array([0.0, 0.0, -1.0]))
        targets = policy.act((0.0, 0.0, 0.1 * (k + 1), 0.8), state)
        frames.append((2.0 * (q - [0.1, -0.1]), 0.1 * (k + 1)))
        window = ([(np.zeros(2), 0.0)] * 3 + frames)[-3:]  # zeros before the first step
        np.testing.assert_allclose(policy.last_observation[:6], np.concatenate([f[0] for f in window]), atol=1e-7)
        np.testing.assert_allclose(policy.last_observation[6:], [f[1] for f in window], atol=1e-7)
        # action = (newest scaled dof_pos[0], newest yaw rate), clipped to +-0.25; target = default + 0.5 * action
        action = np.clip([frames[-1][0][0], frames[-1][1]], -0.25, 0.25)
        np.testing.assert_allclose(policy.last_action, action, atol=1e-7)
        np.testing.assert_allclose(targets, [0.1, -0.1] + 0.5 * action, atol=1e-7)
    policy.reset()
    policy.act((0.0, 0.0, 0.0, 0.8), state)
    np.testing.assert_array_equal(policy.last_observation[:4], np.zeros(4))  # history emptied by reset


# --------------------------------------------------------------------------------------------
# A missing or mismatched policy stops with what was expected


def test_missing_file_in_the_package_lists_what_is_there():
    with pytest.raises(ConfigError, match=r"has no file 'models/loco/g1_29dof/nope.onnx'.*ppo_g1_29dof.onnx"):
        load_locomotion_policy("g1_holosoma", ["onnx=holosoma_inference:models/loco/g1_29dof/nope.onnx"])


def test_missing_package_says_make_setup():
    with pytest.raises(SetupError, match=r"'no_such_package_xyz'.*not installed.*make setup"):
        load_locomotion_policy("g1_holosoma", ["onnx=no_such_package_xyz:models/policy.onnx"])


def test_missing_path_is_named(tmp_path):
    with pytest.raises(ConfigError, match="gone.onnx' does not exist"):
        load_locomotion_policy("g1_holosoma", [f"onnx={tmp_path / 'gone.onnx'}"])


def test_relative_path_is_from_the_yaml_folder(tmp_path):
    data = _shipped_yaml()
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "walk.onnx").write_bytes(resolve_onnx_path(DEFAULT_ONNX).read_bytes())
    data["onnx"] = "nets/walk.onnx"
    policy = load_locomotion_policy(_write(tmp_path, data))
    assert policy.path == tmp_path / "nets" / "walk.onnx"


def test_not_an_onnx_file(tmp_path):
    (tmp_path / "broken.onnx").write_text("not a network")
    with pytest.raises(CheckpointError, match="broken.onnx cannot be loaded by onnxruntime"):
        load_locomotion_policy("g1_holosoma", [f"onnx={tmp_path / 'broken.onnx'}"])


def test_observation_size_mismatch_says_both_sizes():
    with pytest.raises(ConfigError, match=r"takes 100 numbers.*observation has 200 .*history 2"):
        load_locomotion_policy("g1_holosoma", ["history_length=2"])


def test_swapped_joints_are_named(tmp_path):
    data = _shipped_yaml()
    names = data["joint_names"]
    names[0], names[6] = names[6], names[0]
    with pytest.raises(ConfigError, match=r"joint 0 is 'left_hip_pitch_joint' in the file's metadata .* "
                                          r"'right_hip_pitch_joint' in joint_names"):
        load_locomotion_policy(_write(tmp_path, data))


def test_wrong_gain_is_named(tmp_path):
    data = _shipped_yaml()
    data["kd"]["left_knee_joint"] = 5.0
    with pytest.raises(ConfigError, match=r"kd of 'left_knee_joint' is 6.30880185 in the file's metadata but 5 in"):
        load_locomotion_policy(_write(tmp_path, data))


def test_command_range_beyond_training_is_refused():
    with pytest.raises(ConfigError, match=r"command_ranges.vx is \[-2.0, 2.0\] in the config.*on \[-1.0, 1.0\]"):
        load_locomotion_policy("g1_holosoma", ["command_ranges.vx=[-2.0, 2.0]"])


def test_output_size_mismatch_says_both_sizes(tmp_path):
    _picking_onnx(tmp_path / "two.onnx", 3, [0, 1])  # reads dof_pos of 3 joints, acts on 2
    config = from_dict(LocomotionPolicyConfig, {
        "name": "three", "onnx": str(tmp_path / "two.onnx"), "joint_names": ["a", "b", "c"],
        "default_pose": {"a": 0, "b": 0, "c": 0}, "kp": {"a": 1, "b": 1, "c": 1}, "kd": {"a": 0, "b": 0, "c": 0},
        "observation": [{"name": "dof_pos", "size": 3}],
    })
    with pytest.raises(ConfigError, match=r"output 'act' has 2 numbers \(shape \[1, 2\]\), the config has 3 joints"):
        LocomotionPolicy(config)


@pytest.mark.parametrize(
    "override, message",
    [
        ("observation=[{name: dof_pos, size: 12}]", r"observation\[0\] \(dof_pos\): size 12, but the term holds 29"),
        ("observation=[{name: gyro, size: 3}]", r"observation\[0\].name: 'gyro' is not allowed"),
        ("squat=null", "no observation term reads the height and there is no squat"),
        ("command_ranges.base_height=null", "the squat section needs the heights it reaches"),
        ("command_ranges.base_height=[0.65, 0.8]", "high 0.8 m is above squat.standing_height 0.757 m"),
        ("command_ranges.base_height=[0.1, 0.757]", "0.1 m is deeper than the leg of 'left_knee_joint' can squat"),
        ("squat.legs=[[left_hip_pitch_joint, left_knee_joint]]", "give each leg as \\[hip pitch, knee, ankle pitch\\]"),
        ("squat.legs=[[left_hip_pitch_joint, left_knee_joint, left_toe]]", "squat.legs: \\['left_toe'\\] are not joints"),
        ("squat.lean=nan", "squat.lean: nan is not a finite number"),
        ("command_ranges.vx=[0.2, 1.0]", "must include 0"),
        ("action_scale=nan", "not a finite number"),
        ("kp.left_knee_joint=-1", "gains must be >= 0"),
        ("kd.left_knee_joint=.nan", r"kd.left_knee_joint: nan is not a finite number"),
    ],
)
def test_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_locomotion_config("g1_holosoma", [override])


def test_missing_gain_is_named(tmp_path):
    data = _shipped_yaml()
    del data["kp"]["waist_yaw_joint"]
    with pytest.raises(ConfigError, match=r"kp: must give one value per joint.*missing \['waist_yaw_joint'\]"):
        load_locomotion_config(_write(tmp_path, data))


# --------------------------------------------------------------------------------------------
# Closed loop: the holosoma G1 policy keeps the G1 up, walks it forward and turns it


def _run(policy, sim, command, seconds):
    """Run ``seconds`` of closed loop; returns the lowest pelvis height seen."""
    low = math.inf
    state = sim.state()
    for _ in range(round(seconds / sim.dt)):
        state = sim.step(policy.act(command, state))
        low = min(low, sim.base_height)
    assert not sim.diverged
    return low


# Measured (FastSAC / PPO): lowest pelvis 0.752 / 0.753 m standing, 0.747 m walking; 2.0 / 2.2 cm drift over
# 5 s standing; then 1.89 / 1.71 m forward in 5 s at vx 0.5, +0.07 / -0.02 m sideways, heading +8 / +3 deg.
@pytest.mark.parametrize("onnx_file", G1_ONNX)
def test_stands_then_walks_forward(onnx_file, g1_sim):
    policy = load_locomotion_policy("g1_holosoma", [f"onnx=holosoma_inference:models/loco/g1_29dof/{onnx_file}"])
    g1_sim.reset()
    low = _run(policy, g1_sim, (0.0, 0.0, 0.0, 0.75), 5.0)
    assert low > 0.7, f"the pelvis dropped to {low:.3f} m while standing"
    assert np.linalg.norm(g1_sim.base_position[:2]) < 0.15, f"drifted {g1_sim.base_position[:2]} while standing"
    start = g1_sim.base_position
    low = _run(policy, g1_sim, (0.5, 0.0, 0.0, 0.75), 5.0)
    moved = g1_sim.base_position - start
    assert low > 0.65, f"the pelvis dropped to {low:.3f} m while walking"
    assert moved[0] > 1.2, f"moved only {moved[0]:.2f} m forward in 5 s at 0.5 m/s"
    assert abs(moved[1]) < 0.5, f"veered {moved[1]:.2f} m sideways"
    assert abs(g1_sim.base_yaw) < 0.35


def test_turns_on_the_spot(policy, g1_sim):
    # Measured (FastSAC): 2.31 rad in 5 s at 0.5 rad/s, the pelvis within 0.13 m of where it started.
    g1_sim.reset()
    _run(policy, g1_sim, (0.0, 0.0, 0.0, 0.75), 1.0)
    yaws, low, state = [g1_sim.base_yaw], math.inf, g1_sim.state()
    for _ in range(250):
        state = g1_sim.step(policy.act((0.0, 0.0, 0.5, 0.75), state))
        yaws.append(g1_sim.base_yaw)
        low = min(low, g1_sim.base_height)
    turned = np.unwrap(yaws)[-1] - yaws[0]
    assert low > 0.65 and not g1_sim.diverged
    assert 1.5 < turned < 3.5, f"turned {turned:.2f} rad in 5 s at 0.5 rad/s"
    assert np.linalg.norm(g1_sim.base_position[:2]) < 0.5


def test_squats_to_the_commanded_height_walks_there_and_stands_up_again(policy, g1_sim):
    # Measured (FastSAC): 0.641 m for 0.65 (last 2 s), lowest 0.623; 0.80 m forward in 4 s at 0.5 m/s squatting
    # (0.19 m/s: slower than standing's ~0.4); 0.761 m standing again.
    g1_sim.reset()
    _run(policy, g1_sim, (0.0, 0.0, 0.0, STAND), 1.0)
    heights, state = [], g1_sim.state()
    for _ in range(200):
        state = g1_sim.step(policy.act((0.0, 0.0, 0.0, 0.65), state))
        heights.append(g1_sim.base_height)
    squatting = float(np.mean(heights[-100:]))
    assert squatting == pytest.approx(0.65, abs=0.02), f"squatted to {squatting:.3f} m for 0.65"
    start = g1_sim.base_position
    low = _run(policy, g1_sim, (0.5, 0.0, 0.0, 0.65), 4.0)
    assert low > 0.6 and g1_sim.base_position[0] - start[0] > 0.4, "it does not walk in a squat"
    _run(policy, g1_sim, (0.0, 0.0, 0.0, STAND), 3.0)
    assert g1_sim.base_height > 0.74
