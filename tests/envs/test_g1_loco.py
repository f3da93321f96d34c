"""roboreward/G1Loco-v0: HOMIE's training env for the G1's body (real MuJoCo, holosoma's G1 model)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from roboreward.envs.g1_loco import G1LocoConfig, G1LocoEnv, G1Mirror, homie_arm_ratio, mirror_quaternion
from roboreward.envs.rendering import mujoco
from roboreward.errors import ConfigError


@pytest.fixture(scope="module")
def env():
    e = G1LocoEnv(G1LocoConfig())
    yield e
    e.close()


def test_it_is_a_gymnasium_env_with_every_reward_term_in_info():
    from gymnasium.utils.env_checker import check_env

    env = gym.make("roboreward/G1Loco-v0")
    try:
        check_env(env.unwrapped, skip_render_check=True)
        obs, info = env.reset(seed=3)
        assert obs.shape == (87,) and env.action_space.shape == (15,)
        assert info["command"][3] == pytest.approx(info["command"][3]) and 0.45 <= info["command"][3] <= 0.75
        _, reward, _, _, info = env.step(np.zeros(15, dtype=np.float32))
        terms = {k: v for k, v in info.items() if k.startswith("reward_")}
        assert len(terms) == 15 and reward == pytest.approx(sum(terms.values()))
        assert env.spec.max_episode_steps == 1000
    finally:
        env.close()


def test_the_policy_drives_the_legs_and_waist_and_the_curriculum_the_arms(env):
    assert env.policy_joints[:6] == ["left_hip_pitch_joint", "left_hip_roll_joint", "left_hip_yaw_joint",
                                     "left_knee_joint", "left_ankle_pitch_joint", "left_ankle_roll_joint"]
    assert len(env.policy_joints) == 15 and len(env.arm_joints) == 14
    assert not set(env.policy_joints) & set(env.arm_joints)


def test_mirror_maps_are_involutions_and_swap_the_sides(env):
    mirror = env.mirror
    rng = np.random.default_rng(0)
    obs = rng.normal(size=87).astype(np.float32)
    act = rng.normal(size=15).astype(np.float32)
    np.testing.assert_array_equal(mirror.observation(mirror.observation(obs)), obs)
    np.testing.assert_array_equal(mirror.action(mirror.action(act)), act)
    names = env.joint_names
    q = np.arange(len(names), dtype=np.float64) + 1.0
    mq = mirror.joints(q)
    assert mq[names.index("left_knee_joint")] == q[names.index("right_knee_joint")]  # pitch-like: same sign
    assert mq[names.index("left_hip_roll_joint")] == -q[names.index("right_hip_roll_joint")]
    assert mq[names.index("waist_yaw_joint")] == -q[names.index("waist_yaw_joint")]
    assert mq[names.index("waist_pitch_joint")] == q[names.index("waist_pitch_joint")]
    with pytest.raises(ConfigError, match="has no twin"):
        G1Mirror(["left_knee_joint"], ["left_knee_joint"])


def test_mirrored_joint_angles_mirror_the_body_in_mujoco(env):
    """Kinematics: a random pose and its mirror put every left body where its right twin's reflection is."""
    m = env.sim.model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(1)
    qadr = env.sim._qadr
    q = env.default_pose + rng.uniform(-0.4, 0.4, len(env.joint_names))
    positions = []
    for joints in (q, env.mirror.joints(q)):
        d.qpos[:] = 0.0
        d.qpos[2], d.qpos[3] = 1.0, 1.0
        d.qpos[qadr] = joints
        mujoco.mj_kinematics(m, d)
        positions.append({m.body(b).name: d.xpos[b].copy() for b in range(1, m.nbody)})
    original, mirrored = positions
    checked = 0
    for name, p in original.items():
        twin = name.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_")
        if twin in mirrored:
            np.testing.assert_allclose(mirrored[twin], p * [1, -1, 1], atol=2e-3, err_msg=name)
            checked += 1
    assert checked > 25


def test_the_observation_of_a_mirrored_state_is_the_mirrored_observation():
    env = G1LocoEnv(G1LocoConfig())
    try:
        env.reset(seed=5)
        for _ in range(20):
            env.step(env.action_space.sample())
        obs = env._observation()
        d, f = env.sim.data, env.sim._free_q
        q, qv = d.qpos.copy(), d.qvel.copy()
        joints, joint_vel = q[env.sim._qadr], qv[env.sim._vadr]
        # Reflect the whole state across the x-z plane: base y, roll and yaw; joints by the mirror map.
        d.qpos[f + 1] = -q[f + 1]
        d.qpos[f + 3:f + 7] = mirror_quaternion(q[f + 3:f + 7])
        d.qvel[1] = -qv[1]
        d.qvel[3], d.qvel[5] = -qv[3], -qv[5]
        d.qpos[env.sim._qadr] = env.mirror.joints(joints)
        d.qvel[env.sim._vadr] = env.mirror.joints(joint_vel)
        env.command = env.command * [1, -1, -1, 1]
        env._action = env.mirror.action(env._action)
        env._clock.phase = env._clock.phase[::-1].copy()
        mujoco.mj_forward(env.sim.model, d)
        np.testing.assert_allclose(env._observation(), env.mirror.observation(obs), atol=1e-5)
    finally:
        env.close()


def test_the_policy_sees_the_gait_phase_its_teacher_sees():
    """Standing, moving off (both clocks restart at (0, pi)), walking, standing again: the env's phase observation
    is the teacher's, so distillation never asks the student to copy an action taken at another phase."""
    env = G1LocoEnv(teacher="g1_holosoma", randomization={"enabled": False}, arm_curriculum={"fixed": 0.0})
    try:
        obs, info = env.reset(seed=0)
        env._next_command = math.inf
        for command in ([0.0, 0.0, 0.0, 0.75], [0.03, 0.0, 0.0, 0.75], [0.4, 0.0, 0.2, 0.75], [0.0, 0.0, 0.0, 0.75]):
            env.command = np.array(command)
            for _ in range(20):
                obs, _, _, _, info = env.step(info["teacher_action"])
                np.testing.assert_allclose(obs[-4:-2], np.sin(env.teacher.phase), atol=1e-6)
                np.testing.assert_allclose(obs[-2:], np.cos(env.teacher.phase), atol=1e-6)
    finally:
        env.close()


def test_reward_terms_on_hand_built_states():
    env = G1LocoEnv(G1LocoConfig())
    try:
        env.reset(seed=0)
        d, f = env.sim.data, env.sim._free_q
        env.command = np.array([0.5, 0.0, 0.0, env.sim.base_height])
        d.qvel[:] = 0.0
        d.qvel[0] = 0.5  # exactly the commanded speed, facing +x
        mujoco.mj_forward(env.sim.model, d)
        t = env.reward_terms()
        assert t["lin_vel"] == pytest.approx(1.0) and t["yaw_rate"] == pytest.approx(1.0)
        assert t["height"] == pytest.approx(1.0) and t["upright"] == pytest.approx(0.0, abs=1e-12)
        d.qvel[0] = 0.0  # standing still against a 0.5 m/s command
        assert env.reward_terms()["lin_vel"] == pytest.approx(math.exp(-0.25 / 0.25))
        env.command = np.array([0.0, 0.0, 0.0, env.sim.base_height - 0.1])  # 10 cm too high
        assert env.reward_terms()["height"] == pytest.approx(math.exp(-0.01 / 0.04), rel=1e-6)
        d.qpos[f + 3:f + 7] = [math.cos(0.15), math.sin(0.15), 0.0, 0.0]  # rolled 0.3 rad
        mujoco.mj_forward(env.sim.model, d)
        assert env.reward_terms()["upright"] == pytest.approx(math.sin(0.3) ** 2, rel=1e-6)
        knee = env.joint_names.index("left_knee_joint")
        d.qpos[env.sim._qadr[knee]] += 0.2
        d.qpos[env.sim._qadr[env.joint_names.index("right_knee_joint")]] += 0.2
        bent = env.reward_terms()["knee"]
        d.qpos[env.sim._qadr[knee]] -= 0.2
        d.qpos[env.sim._qadr[env.joint_names.index("right_knee_joint")]] -= 0.2
        assert bent < env.reward_terms()["knee"]  # a lower command asks for more knee bend: closer to it
        assert env.knee_target(0.45) > env.knee_target(0.6) > env.knee_target(0.75) > 0.5
    finally:
        env.close()


def end_episode(env: G1LocoEnv, tracking: float = 0.0, height: float = 0.0) -> None:
    """End an episode whose mean velocity-tracking and height rewards were these, and start the next."""
    env._episode_tracking = [tracking] * 10
    env._episode_height = [height] * 10
    env.reset()


def test_the_arm_curriculum_widens_with_good_episodes():
    assert homie_arm_ratio(0.0, 0.5) < 0.05 < homie_arm_ratio(0.8, 0.5) < homie_arm_ratio(1.0, 0.5) == 0.5
    ratios = [homie_arm_ratio(0.5, u) for u in np.linspace(0, 0.999, 200)]
    assert 0.0 <= min(ratios) and max(ratios) <= 1.0 and np.all(np.diff(ratios) > 0)
    env = G1LocoEnv(arm_curriculum={"step": 0.1, "promote_above": 0.5})
    try:
        env.reset(seed=0)
        end_episode(env, tracking=0.9)
        assert env.arm_level == pytest.approx(0.1)
        end_episode(env, tracking=0.2)
        assert env.arm_level == pytest.approx(0.1)  # a poor episode does not widen it
    finally:
        env.close()
    fixed = G1LocoEnv(arm_curriculum={"fixed": 0.6})
    try:
        fixed.reset(seed=0)
        default = fixed.default_pose[fixed._arms]
        span = fixed._arm_goal - default
        assert np.all(np.abs(span) <= 0.6 * np.maximum(fixed._arm_hi - default, default - fixed._arm_lo) + 1e-9)
        assert np.abs(span).max() > 0.3
    finally:
        fixed.close()


def test_the_height_curriculum_reaches_lower_after_episodes_that_tracked_their_heights():
    env = G1LocoEnv(commands={"height_start": 0.05, "height_step": 0.1, "height_promote_above": 0.5})
    try:
        env.reset(seed=0)
        assert 0.70 <= env.command[3] <= 0.75
        end_episode(env, height=0.9)
        assert env.height_reach == pytest.approx(0.15)
        end_episode(env, height=0.1)
        assert env.height_reach == pytest.approx(0.15)  # a poor episode does not widen it
        for _ in range(5):
            end_episode(env, height=0.9)
        assert env.height_reach == pytest.approx(0.30)  # at most the whole range, 0.45-0.75 m
        heights = []
        for _ in range(40):
            env._sample_command()
            heights.append(env.command[3])
        assert min(heights) < 0.55 and max(heights) <= 0.75
    finally:
        env.close()


def test_bad_configs_name_the_key():
    with pytest.raises(ConfigError, match="commands.height: low 0.8 > high 0.5"):
        G1LocoEnv(commands={"height": [0.8, 0.5]})
    with pytest.raises(ConfigError, match="arm_curriculum.fixed"):
        G1LocoEnv(arm_curriculum={"fixed": 1.5})
