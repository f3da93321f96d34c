"""The simulated robots the cockpit drives: build, track, clamp, move the G1's base, render (real MuJoCo, EGL)."""

from __future__ import annotations

import numpy as np
import pytest

from roboreward.errors import ConfigError
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.robots import (
    load_teleop_robot_config,
    make_teleop_robot,
    teleop_robot_names,
)

SIZE = (96, 72)
# A comfortable left-arm pose (shoulder forward and out, elbow bent, wrist turned); the right arm mirrors it.
G1_LEFT = np.array([-0.6, 0.3, 0.2, 0.8, 0.3, -0.3, 0.2])
G1_MIRROR = np.array([1, -1, -1, 1, -1, 1, -1])


@pytest.fixture(scope="module")
def g1_robot():
    robot = make_teleop_robot("g1", size=SIZE)
    yield robot
    robot.close()


@pytest.fixture(scope="module")
def g1_kinematic_robot():
    robot = make_teleop_robot("g1", size=SIZE, overrides=["base.type=kinematic"])
    yield robot
    robot.close()


@pytest.fixture(scope="module")
def franka_robot():
    robot = make_teleop_robot("franka", size=SIZE)
    yield robot
    robot.close()


@pytest.fixture
def g1(g1_robot):
    g1_robot.reset()
    return g1_robot


@pytest.fixture
def g1_kinematic(g1_kinematic_robot):
    """The G1 with the pedal gliding its pelvis (``--base kinematic``); the file's default walks (test_walking.py)."""
    g1_kinematic_robot.reset()
    return g1_kinematic_robot


@pytest.fixture
def franka(franka_robot):
    franka_robot.reset()
    return franka_robot


def test_g1_layout(g1):
    assert g1.name == "g1" and g1.dt == pytest.approx(0.02)
    assert list(g1.arm_joints) == ["left", "right"]
    assert g1.arm_joints["left"][0] == "left_shoulder_pitch_joint"
    assert g1.arm_joints["left"][6] == "left_wrist_yaw_joint"
    assert [len(v) for v in g1.arm_joints.values()] == [7, 7]
    assert [len(v) for v in g1.hand_joints.values()] == [7, 7]
    assert g1.joint_names == (g1.arm_joints["left"] + g1.arm_joints["right"] + g1.hand_joints["left"]
                              + g1.hand_joints["right"])
    assert np.all(g1.lower < g1.upper) and g1.lower.shape == (28,)
    assert g1.cameras == ["head", "follow"]
    assert g1.arm_limits("left")[3] == pytest.approx((-1.0472, 2.0944))


def test_franka_layout(franka):
    assert franka.arm_joints == {"right": [f"joint{i}" for i in range(1, 8)]}
    assert franka.hand_joints == {"right": ["finger_joint1", "finger_joint2"]}
    assert franka.joint_names[-2:] == ["finger_joint1", "finger_joint2"]
    assert franka.upper[-1] == pytest.approx(0.04)


def track(robot, targets, steps):
    sent = robot.set_targets(targets)
    for _ in range(steps):
        robot.step()
    return np.abs(robot.joint_positions() - sent)


def test_g1_tracks_arm_and_hand_targets(g1):
    arms = {"left": g1.arms_from_exoskeleton("left", G1_LEFT),
            "right": g1.arms_from_exoskeleton("right", G1_LEFT * G1_MIRROR)}
    hands = {side: g1.hands_from_glove(side, np.full(15, 0.5)) for side in ("left", "right")}
    start = g1.joint_positions()
    err = track(g1, g1.compose_targets(arms, hands), 50)  # 1 s
    assert np.abs(g1.targets - start).max() > 0.5  # a real move
    arm_err, hand_err = err[:14].max(), err[14:].max()
    print(f"G1 tracking error after 50 steps (1 s): arms {arm_err:.2e} rad, hands {hand_err:.2e} rad")
    assert arm_err < 0.01
    assert hand_err < 0.02


def test_franka_tracks_arm_and_gripper_targets(franka):
    q_arm = franka.targets[:7] + np.array([0.3, -0.3, 0.3, -0.3, 0.3, 0.3, 0.3])
    q = franka.compose_targets(arms={"right": franka.arms_from_exoskeleton("right", q_arm)},
                               hands={"right": franka.hands_from_glove("right", np.full(15, 0.75))})
    assert q[-2:] == pytest.approx([0.01, 0.01])  # 0.04 open .. 0 closed at 75 % closure
    err = track(franka, q, 50)
    print(f"Franka tracking error after 50 steps (1 s): arm {err[:7].max():.2e} rad, fingers {err[7:].max():.2e} m")
    assert err[:7].max() < 0.01
    assert err[7:].max() < 0.002


def test_targets_are_clamped_to_the_joint_limits(franka):
    sent = franka.set_targets(franka.upper + 1.0)
    np.testing.assert_allclose(sent, franka.upper)
    for _ in range(50):
        franka.step()
    assert np.all(franka.joint_positions() <= franka.upper + 0.01)
    np.testing.assert_allclose(franka.set_targets(franka.lower - 1.0), franka.lower)
    over = np.full(7, 10.0)
    np.testing.assert_allclose(franka.arms_from_exoskeleton("right", over), franka.upper[:7])


def test_exoskeleton_mapping_is_isomorphic_and_checked(g1):
    q = np.linspace(-0.3, 0.3, 7)
    np.testing.assert_allclose(g1.arms_from_exoskeleton("right", q), q)  # joint i -> joint i
    with pytest.raises(ValueError, match="left arm has 7 joints"):
        g1.arms_from_exoskeleton("left", np.zeros(6))
    with pytest.raises(ValueError, match="finite"):
        g1.arms_from_exoskeleton("left", np.full(7, np.nan))
    with pytest.raises(ValueError, match="takes 28 joint targets"):
        g1.set_targets(np.zeros(27))
    with pytest.raises(ValueError, match="NaN or inf for \\['left_elbow_joint'\\]"):
        bad = g1.targets
        bad[3] = np.inf
        g1.set_targets(bad)


def test_hold_keeps_the_robot_where_it_is(franka):
    franka.set_targets(franka.targets + np.r_[np.full(7, 0.2), 0.0, 0.0])
    for _ in range(5):  # mid-move
        franka.step()
    held = franka.hold()
    np.testing.assert_allclose(held, np.clip(franka.joint_positions(), franka.lower, franka.upper))
    for _ in range(25):
        franka.step()
    assert np.abs(franka.joint_positions() - held)[:7].max() < 0.02


def foot_heights(robot):
    return [robot.data.body(b).xpos[2] for b in ("left_ankle_roll_link", "right_ankle_roll_link")]


def test_g1_base_moves_forward_turns_and_squats(g1_kinematic):
    g1 = g1_kinematic
    x0, y0, yaw0, h0 = g1.base_pose()
    assert h0 == pytest.approx(0.74)
    feet0 = foot_heights(g1)
    for _ in range(50):  # 1 s at 0.5 m/s
        g1.set_base_command(LocoCommand(vx=0.5, yaw_rate=0.0, height=0.74), g1.dt)
        g1.step()
    x, y, yaw, h = g1.base_pose()
    assert x - x0 == pytest.approx(0.5, abs=1e-6) and y == pytest.approx(y0, abs=1e-6)
    for _ in range(50):  # 1 s turning at 0.4 rad/s while walking
        g1.set_base_command(LocoCommand(vx=0.2, yaw_rate=0.4, height=0.74), g1.dt)
        g1.step()
    assert g1.base_pose()[2] - yaw0 == pytest.approx(0.4, abs=1e-6)
    assert g1.base_pose()[1] > y0 + 0.01  # turned left, so it drifted to +y
    lo, hi = g1.height_range
    assert lo < 0.65 and hi > 0.78
    for _ in range(10):
        g1.set_base_command(LocoCommand(vx=0.0, yaw_rate=0.0, height=0.62), g1.dt)
        g1.step()
    assert g1.base_pose()[3] == pytest.approx(0.62)
    assert g1.data.body("pelvis").xpos[2] == pytest.approx(0.62)
    np.testing.assert_allclose(foot_heights(g1), feet0, atol=0.005)  # the feet stay on the floor
    g1.set_base_command(LocoCommand(0.0, 0.0, 0.1), g1.dt)  # below what the legs reach: clamped
    g1.step()
    assert g1.base_pose()[3] == pytest.approx(lo)


def test_arms_keep_tracking_while_the_base_moves(g1_kinematic):
    g1 = g1_kinematic
    arms = {"left": G1_LEFT, "right": G1_LEFT * G1_MIRROR}
    sent = g1.set_targets(g1.compose_targets(arms))
    for _ in range(50):
        g1.set_base_command(LocoCommand(vx=0.8, yaw_rate=0.5, height=0.66), g1.dt)
        g1.step()
    err = np.abs(g1.joint_positions() - sent)[:14].max()
    print(f"G1 arm tracking error while walking and squatting: {err:.2e} rad")
    assert err < 0.01


def test_franka_ignores_base_commands(franka):
    before = franka.base_pose()
    franka.set_base_command(LocoCommand(1.0, 1.0, 0.5), franka.dt)
    franka.step()
    np.testing.assert_allclose(franka.base_pose(), before)


def test_render_returns_frames_from_each_camera(g1, franka):
    for robot in (g1, franka):
        frames = {cam: robot.render(cam) for cam in robot.cameras}
        for cam, frame in frames.items():
            assert frame.shape == (SIZE[1], SIZE[0], 3) and frame.dtype == np.uint8, cam
            assert frame.std() > 5, cam  # not a blank image
        a, b = frames.values()
        assert np.abs(a.astype(int) - b).mean() > 5  # two different views
        same = robot.render()  # the default camera, same state: the same picture (llvmpipe may differ by a level)
        assert np.abs(same.astype(int) - frames[robot.cameras[0]]).mean() < 0.5
    # the follow camera sees the robot move
    before = g1.render("follow")
    g1.set_targets(g1.compose_targets({"left": np.array([-2.5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])}))
    for _ in range(25):
        g1.step()
    assert np.abs(g1.render("follow").astype(int) - before).mean() > 0.5
    with pytest.raises(ValueError, match="camera 'top' is not enabled"):
        franka.render("top")


def test_camera_subset_and_errors():
    with pytest.raises(ConfigError, match="camera 'top' is not configured for franka"):
        make_teleop_robot("franka", cameras=["top"])
    robot = make_teleop_robot("franka", cameras=["wrist"], size=(32, 24))
    try:
        assert robot.cameras == ["wrist"] and robot.render().shape == (24, 32, 3)
    finally:
        robot.close()
    with pytest.raises(ValueError, match="render size"):
        make_teleop_robot("franka", size=(4, 4))


def test_config_errors():
    assert {"g1", "franka"} <= set(teleop_robot_names())
    with pytest.raises(ConfigError, match=r"unknown teleop robot 'frank' \(did you mean 'franka'\?\)"):
        load_teleop_robot_config("frank")
    swapped = load_teleop_robot_config(
        "franka", ["arms.right=[joint2, joint1, joint3, joint4, joint5, joint6, joint7]"]
    )
    with pytest.raises(ConfigError, match="'joint1' does not come after 'joint2' in the kinematic chain"):
        make_teleop_robot(swapped)
    typo = load_teleop_robot_config("franka", ["arms.right=[joint1, joint2, joint3, joint4, joint5, joint6, jiont7]"])
    with pytest.raises(ConfigError, match="joint 'jiont7' is not in the model"):
        make_teleop_robot(typo)
    with pytest.raises(ConfigError, match=r"hands\.left: there is no left arm"):
        load_teleop_robot_config("franka", ["hands.left={type: gripper, joints: [finger_joint1]}"])
    with pytest.raises(ConfigError, match=r"control_dt: 0.0 is too small"):
        load_teleop_robot_config("franka", ["control_dt=0"])
    bad_key = load_teleop_robot_config("franka", ["keyframe=crouch"])
    with pytest.raises(ConfigError, match="keyframe: 'crouch' is not in the model"):
        make_teleop_robot(bad_key)
