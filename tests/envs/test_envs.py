import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from roboreward.envs import ENV_IDS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_and_sb3_check_env(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env, warn=False)
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_info_has_success_and_named_reward_terms_that_sum_to_the_reward(env_id):
    env = gym.make(env_id)
    env.reset(seed=1)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert isinstance(info["is_success"], bool)
    terms = {k: v for k, v in info.items() if k.startswith("reward_")}
    assert terms and reward == pytest.approx(sum(terms.values()))
    env.close()


def test_arm_reach_reward_terms():
    env = gym.make("roboreward/ArmReach-v0")
    env.reset(seed=1)
    _, reward, _, _, info = env.step(np.ones(2, dtype=np.float32))
    assert info["reward_dist"] == pytest.approx(-info["distance"])
    assert info["reward_ctrl"] == pytest.approx(-0.01 * 2)


def test_render_options_size_camera_and_errors():
    env = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array", width=48, height=32, camera="side")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (32, 48, 3) and frame.dtype == np.uint8
    env.close()
    with pytest.raises(ValueError, match="camera 'nope' is not in the model; choose one of"):
        bad = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array", camera="nope")
        bad.reset(seed=0)
        bad.render()
    with pytest.raises(ValueError, match="multisample=3 is not allowed"):
        gym.make("roboreward/ArmReach-v0", render_mode="rgb_array", multisample=3)


def test_realism_options_change_the_frame():
    plain = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array", width=96, height=96)
    fancy = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array", width=96, height=96, shadows=True, multisample=4)
    plain.reset(seed=3)
    fancy.reset(seed=3)
    assert not np.array_equal(plain.render(), fancy.render())


def test_goal_image_shows_the_arm_at_the_goal_and_leaves_the_state_alone():
    env = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array").unwrapped
    env.reset(seed=5)
    qpos = env.data.qpos.copy()
    before = env.render()
    goal = env.render_goal()
    assert np.array_equal(env.data.qpos, qpos) and np.array_equal(env.render(), before)
    assert not np.array_equal(goal, before)
    # Put the arm at the goal by hand: the frame is the goal image and the env reports success.
    env.data.qpos[:] = env.goal_qpos
    import mujoco

    mujoco.mj_forward(env.model, env.data)
    assert np.array_equal(env.render(), goal)
    assert env._get_info()["is_success"]


def test_fixed_goal_is_fixed_and_random_goal_varies():
    fixed = gym.make("roboreward/ArmReachFixed-v0").unwrapped
    rand = gym.make("roboreward/ArmReach-v0").unwrapped
    goals_fixed = {tuple(np.round(fixed.reset(seed=s)[0][6:8], 6)) for s in range(5)}
    goals_rand = {tuple(np.round(rand.reset(seed=s)[0][6:8], 6)) for s in range(5)}
    assert len(goals_fixed) == 1 and len(goals_rand) == 5
