"""The G1 in MuJoCo (holosoma's MJCF): layout, the body-frame gyro, PD torques clipped to the motors' limits."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from roboreward.envs.g1 import G1Sim
from roboreward.errors import ConfigError, NonFiniteError
from roboreward.policies.locomotion import load_locomotion_config


@pytest.fixture(scope="module")
def g1_sim() -> G1Sim:
    return G1Sim.for_policy(load_locomotion_config("g1_holosoma"))


def test_sim_layout(g1_sim):
    state = g1_sim.reset()
    assert g1_sim.dt == pytest.approx(0.02) and g1_sim.substeps == 4
    assert g1_sim.model.opt.timestep == pytest.approx(0.005)
    limits = dict(zip(g1_sim.joint_names, g1_sim.torque_limits))
    assert limits["left_knee_joint"] == 139 and limits["left_hip_roll_joint"] == 88  # the motor's ctrlrange
    assert limits["left_wrist_pitch_joint"] == 5
    np.testing.assert_allclose(state.joint_positions, g1_sim.default_pose)
    np.testing.assert_allclose(state.gravity_in_base(), [0.0, 0.0, -1.0], atol=1e-12)
    # the soles on the floor: the lowest collision point at z = 0
    assert g1_sim._lowest_point() == pytest.approx(0.0, abs=1e-9)
    assert 0.7 < g1_sim.base_height < 0.8


def test_sim_gyro_is_body_frame(g1_sim):
    g1_sim.reset(yaw=0.7)
    g1_sim.data.qvel[3:6] = [0.3, -0.2, 0.5]  # a spinning pelvis
    mujoco.mj_forward(g1_sim.model, g1_sim.data)
    local = np.zeros(6)
    mujoco.mj_objectVelocity(g1_sim.model, g1_sim.data, mujoco.mjtObj.mjOBJ_XBODY, g1_sim._base_body, local, 1)
    np.testing.assert_allclose(g1_sim.state().base_angular_velocity, local[:3], atol=1e-12)
    assert g1_sim.base_yaw == pytest.approx(0.7)


def test_sim_torques_are_pd_then_clipped(g1_sim):
    targets = g1_sim.default_pose.copy()
    knee = g1_sim.joint_names.index("left_knee_joint")
    wrist = g1_sim.joint_names.index("left_wrist_pitch_joint")
    targets[knee] += 0.05
    targets[wrist] += 2.0  # 16.8 N m/rad * 2 rad > 5 N m: clipped
    # Replay all but the last physics step of one step() by hand, to know the state the last torque is computed at.
    g1_sim.reset()
    m, d = g1_sim.model, g1_sim.data
    for _ in range(g1_sim.substeps - 1):
        tau = g1_sim.kp * (targets - d.qpos[g1_sim._qadr]) - g1_sim.kd * d.qvel[g1_sim._vadr]
        d.ctrl[g1_sim._actuators] = np.clip(tau, -g1_sim.torque_limits, g1_sim.torque_limits)
        mujoco.mj_step(m, d)
    q, dq = d.qpos[g1_sim._qadr[knee]], d.qvel[g1_sim._vadr[knee]]
    expected = g1_sim.kp[knee] * (targets[knee] - q) - g1_sim.kd[knee] * dq
    g1_sim.reset()
    g1_sim.step(targets)
    assert g1_sim.torques[knee] == pytest.approx(expected, rel=1e-9)
    assert abs(expected) > 0.1  # a torque that is there to get right
    assert g1_sim.torques[wrist] == pytest.approx(5.0)
    np.testing.assert_array_equal(g1_sim.data.ctrl[g1_sim._actuators], g1_sim.torques)


def test_sim_refuses_bad_targets_and_rates(g1_sim):
    g1_sim.reset()
    bad = g1_sim.default_pose.copy()
    bad[5] = math.nan
    with pytest.raises(NonFiniteError, match="left_ankle_roll_joint"):
        g1_sim.step(bad)
    with pytest.raises(ValueError, match="expected 29 joint targets"):
        g1_sim.step(bad[:10])
    config = load_locomotion_config("g1_holosoma")
    with pytest.raises(ConfigError, match=r"50 Hz \(20 ms\) is not a whole number of 3 ms physics steps"):
        G1Sim.for_policy(config, physics_dt=0.003)
    with pytest.raises(ConfigError, match=r"leaves out \['right_wrist_yaw_joint'\]"):
        G1Sim(joint_names=config.joint_names[:-1], kp=config.kp, kd=config.kd, default_pose=config.default_pose)


