"""The cockpit's walking G1: the holosoma policy walks it on its legs while the operator drives its arms (real MuJoCo)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from roboreward.errors import ConfigError
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.robots import BaseConfig, load_teleop_robot_config, make_teleop_robot
from roboreward.teleop.sim_sink import SimulatedRobotSink

# A comfortable left-arm pose (shoulder forward and out, elbow bent, wrist turned); the right arm mirrors it.
G1_LEFT = np.array([-0.6, 0.3, 0.2, 0.8, 0.3, -0.3, 0.2])
G1_MIRROR = np.array([1, -1, -1, 1, -1, 1, -1])


@pytest.fixture(scope="module")
def walker_robot():
    robot = make_teleop_robot("g1", cameras=["head"], size=(16, 16))
    yield robot
    robot.close()


@pytest.fixture
def g1(walker_robot):
    walker_robot.reset()
    return walker_robot


def run(robot, seconds: float, command: LocoCommand | None = None) -> None:
    if command is not None:
        robot.set_base_command(command, robot.dt)
    for _ in range(round(seconds / robot.dt)):
        robot.step()
        assert not robot.fallen, f"the G1 fell at {robot.base_pose()}"


def test_the_g1_file_walks_by_default_with_the_policys_gains_on_its_own_joints(g1):
    walker = g1.walking
    assert walker is not None and g1.has_base and g1.config.base.type == "walking"
    policy = walker.policy
    m = g1.model
    own = [policy.joint_names[i] for i in walker.own]
    shared = [policy.joint_names[i] for i in walker.shared]
    assert len(own) == 15 and all(("leg" in n or "hip" in n or "knee" in n or "ankle" in n or "waist" in n)
                                  for n in own)
    assert shared == g1.arm_joints["left"] + g1.arm_joints["right"]  # the operator's arms
    for name in ("left_knee_joint", "waist_yaw_joint", "right_ankle_roll_joint"):
        a = next(a for a in range(m.nu) if m.actuator_trnid[a, 0] == m.joint(name).id)
        kp, kd = policy.config.kp[name], policy.config.kd[name]
        np.testing.assert_allclose(m.actuator_gainprm[a, 0], kp)
        np.testing.assert_allclose(m.actuator_biasprm[a, :3], [0.0, -kp, -kd])
    elbow = next(a for a in range(m.nu) if m.actuator_trnid[a, 0] == m.joint("left_elbow_joint").id)
    assert m.actuator_gainprm[elbow, 0] == 500.0  # the operator's arms keep the file's servos
    # Gravity compensation on the operator's joints only: the policy was trained on plain PD legs.
    knee_dof = m.jnt_dofadr[m.joint("left_knee_joint").id]
    elbow_dof = m.jnt_dofadr[m.joint("left_elbow_joint").id]
    assert knee_dof not in g1._comp_dofs and elbow_dof in g1._comp_dofs
    # holosoma reads no height; the layer squats its reference pose over the range its config holds
    assert g1.height_range == policy.config.command_ranges.base_height == (0.65, 0.757)


def test_it_stands_walks_forward_and_turns_under_the_pedals_commands(g1):
    x0, y0, yaw0, h0 = g1.base_pose()
    run(g1, 2.0)
    x, y, yaw, h = g1.base_pose()
    assert math.hypot(x - x0, y - y0) < 0.05 and h > 0.7  # standing still
    run(g1, 4.0, LocoCommand(vx=0.5, yaw_rate=0.0, height=h0))
    x1, y1, yaw1, _ = g1.base_pose()
    forward = (x1 - x) * math.cos(yaw) + (y1 - y) * math.sin(yaw)
    print(f"4 s at 0.5 m/s: {forward:.2f} m forward, heading change {yaw1 - yaw:+.2f} rad")
    assert forward > 1.0  # it steps: ~0.4 m/s once in its gait
    run(g1, 3.0, LocoCommand(vx=0.0, yaw_rate=0.5, height=h0))
    turned = math.remainder(g1.base_pose()[2] - yaw1, math.tau)
    print(f"3 s at 0.5 rad/s: turned {turned:.2f} rad")
    assert turned > 0.8
    feet = [g1.data.body(b).xpos[2] for b in ("left_ankle_roll_link", "right_ankle_roll_link")]
    assert max(feet) < 0.2  # on its feet, not dragged


def test_the_squat_pedal_lowers_it_and_it_stands_up_again(g1):
    # Measured: 0.639 m squatting for 0.65, 0.76 m standing again.
    lo, hi = g1.height_range
    run(g1, 1.0)
    run(g1, 3.0, LocoCommand(vx=0.0, yaw_rate=0.0, height=lo))
    squatting = g1.base_pose()[3]
    print(f"squat pedal at {lo} m: pelvis at {squatting:.3f} m")
    assert squatting == pytest.approx(lo, abs=0.025)
    run(g1, 2.0, LocoCommand(vx=0.0, yaw_rate=0.0, height=hi))
    assert g1.base_pose()[3] > hi - 0.02


def test_the_operators_arms_track_while_it_walks(g1):
    sent = g1.set_targets(g1.compose_targets({"left": G1_LEFT, "right": G1_LEFT * G1_MIRROR}))
    run(g1, 2.0, LocoCommand(vx=0.4, yaw_rate=0.2, height=g1.height_range[1]))
    err = np.abs(g1.joint_positions() - sent)[:14].max()
    print(f"G1 arm tracking error while walking: {err:.2e} rad")
    assert err < 0.02


@pytest.mark.parametrize("observation", ["commanded", "measured"])
def test_what_the_policy_reads_of_the_arms(observation):
    config = load_teleop_robot_config("g1", [f"base.arm_observation={observation}"])
    robot = make_teleop_robot(config, cameras=["head"], size=(16, 16))
    try:
        robot.set_targets(robot.compose_targets({"left": G1_LEFT, "right": G1_LEFT * G1_MIRROR}))
        run(robot, 0.5)
        policy = robot.walking.policy
        shared = robot.walking.shared
        arms_before = robot.joint_positions()[:14].copy()
        previous_action = policy.last_action.copy()
        robot.step()
        seen = policy.last_observation[policy.term_slices["dof_pos"]][shared]
        if observation == "commanded":
            # Its own last arm targets (default + 0.25 * action) minus the default pose: 0.25 * action.
            np.testing.assert_allclose(seen, 0.25 * previous_action[shared], atol=1e-6)
            assert np.abs(policy.last_observation[policy.term_slices["dof_vel"]][shared]).max() == 0.0
        else:
            np.testing.assert_allclose(seen, arms_before - policy.default_pose[shared], atol=1e-5)
        assert np.abs(arms_before - policy.default_pose[shared]).max() > 0.5  # the operator's pose is far from it
    finally:
        robot.close()


def test_moving_arms_do_not_topple_it_when_it_reads_its_own_arm_targets(g1):
    """HOMIE's upper-body randomisation at 30 % of the arm range, at 2 rad/s: it stays up (benchmarks/teleop_walking.py)."""
    arms = np.arange(14)
    start = g1.targets.copy()
    for seed in (0, 1):
        g1.reset()
        rng = np.random.default_rng(seed)
        targets, goal = start.copy(), start.copy()
        x0, y0, _, _ = g1.base_pose()
        for k in range(500):  # 10 s
            if k % 100 == 0:
                goal[arms] = start[arms] + 0.3 * (rng.uniform(g1.lower[arms], g1.upper[arms]) - start[arms])
            targets = targets + np.clip(goal - targets, -0.04, 0.04)
            g1.set_targets(targets)
            g1.step()
            assert not g1.fallen, f"seed {seed}: fell after {k * g1.dt:.1f} s"
        drift = math.hypot(*(g1.base_pose()[:2] - (x0, y0)))
        print(f"seed {seed}: drift {drift:.2f} m in 10 s")
        assert drift < 1.0


def test_a_fall_is_caught_and_the_sim_sink_stands_it_up_again(g1):
    sink = SimulatedRobotSink(g1)
    pelvis = g1.model.body("pelvis").id
    g1.data.xfrc_applied[pelvis, 0] = 400.0  # a hard shove forward
    now = time.monotonic()
    for k in range(200):
        sink.advance(now + (k + 1) * g1.dt)
        if sink.falls:
            break
    g1.data.xfrc_applied[:] = 0.0
    assert sink.falls == 1
    assert not g1.fallen and g1.base_pose()[3] > 0.7  # standing again, at the start
    np.testing.assert_allclose(sink.applied_action()[0][:len(g1.joint_names)], g1.targets)


def test_bases_and_their_errors():
    with pytest.raises(ConfigError, match="'walking' needs base.free_joint"):
        BaseConfig(type="walking")
    with pytest.raises(ConfigError, match="base.feet: empty; a walking robot"):
        BaseConfig(type="walking", free_joint="floating_base_joint")
    with pytest.raises(ConfigError, match="control_dt: the robot steps every 0.01 s but the locomotion policy "
                                          "'g1_holosoma' runs at 50 Hz; set control_dt to 0.02"):
        make_teleop_robot("g1", size=(16, 16), overrides=["control_dt=0.01"])
    with pytest.raises(ConfigError, match="arm_observation"):
        load_teleop_robot_config("g1", ["base.arm_observation=sometimes"])
    with pytest.raises(ConfigError, match="'missing' is not among the shipped locomotion policies|missing"):
        make_teleop_robot("g1", size=(16, 16), overrides=["base.locomotion=missing"])
