import gymnasium as gym
import imageio.v3 as iio
import mujoco
import numpy as np
import pytest

from roboreward.config import from_dict
from roboreward.errors import ConfigError
from roboreward.rewards import GoalImageReward, GoalImageRewardConfig, RewardBatch, RewardConfig, make_reward_model


@pytest.fixture(scope="module")
def arm():
    env = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array").unwrapped
    env.reset(seed=7)
    yield env
    env.close()


def frame_at(env, qpos) -> np.ndarray:
    env.data.qpos[:] = qpos
    mujoco.mj_forward(env.model, env.data)
    return env.render()


@pytest.fixture(scope="module")
def model():
    return GoalImageReward(GoalImageRewardConfig())


def test_reward_is_zero_at_the_goal_and_falls_with_distance(arm, model):
    goal = arm.render_goal()
    q = arm.goal_qpos
    frames = np.stack([frame_at(arm, q + np.array([d, 0.0])) for d in (0.0, 0.3, 0.8, 1.6)])
    r = model(RewardBatch(frames=frames, goal_frames=np.repeat(goal[None], 4, axis=0)))
    assert r.dtype == np.float32 and r.shape == (4,)
    assert r[0] == pytest.approx(0.0, abs=1e-5)
    assert r[0] > r[1] > r[2] > r[3], r  # the pretrained features see the arm move away


def test_cache_returns_identical_rewards_and_counts_hits(arm):
    model = GoalImageReward(GoalImageRewardConfig())
    goal = arm.render_goal()
    frames = np.stack([frame_at(arm, arm.goal_qpos + np.array([0.1 * (i + 1), 0.0])) for i in range(3)])
    batch = RewardBatch(frames=frames, goal_frames=np.repeat(goal[None], 3, axis=0))
    first = model(batch)
    assert model.features.misses == 4 and model.features.hits == 2  # goal computed once for 3 rows
    second = model(batch)
    assert model.features.hits == 2 + 6 and model.features.misses == 4
    np.testing.assert_array_equal(first, second)
    uncached = GoalImageReward(GoalImageRewardConfig(cache_size=0))
    np.testing.assert_allclose(uncached(batch), first, rtol=0, atol=1e-6)
    assert len(uncached.features) == 0


def test_batched_equals_one_by_one(arm, model):
    goal = arm.render_goal()
    frames = np.stack([frame_at(arm, arm.goal_qpos + np.array([0.2 * i, -0.1 * i])) for i in range(4)])
    fresh = GoalImageReward(GoalImageRewardConfig(cache_size=0))
    batched = fresh(RewardBatch(frames=frames, goal_frames=np.repeat(goal[None], 4, axis=0)))
    single = [fresh(RewardBatch(frames=f[None], goal_frames=goal[None]))[0] for f in frames]
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_goal_images_from_png_and_demo_npy(arm, tmp_path):
    goal = arm.render_goal()
    iio.imwrite(tmp_path / "goal.png", goal)
    demo = np.stack([frame_at(arm, arm.goal_qpos + np.array([0.5 - 0.1 * t, 0.0])) for t in range(6)])
    demo[-1] = goal
    np.save(tmp_path / "demo.npy", demo)
    from_png = GoalImageReward(GoalImageRewardConfig(goal_source="images", goal_images=[str(tmp_path / "goal.png")]))
    assert from_png(RewardBatch(frames=goal[None]))[0] == pytest.approx(0.0, abs=1e-5)
    from_demo = GoalImageReward(
        GoalImageRewardConfig(goal_source="images", goal_images=[str(tmp_path / "demo.npy")], demo_last_frames=1)
    )
    assert from_demo(RewardBatch(frames=goal[None]))[0] == pytest.approx(0.0, abs=1e-5)


def test_clear_errors_for_missing_goal_frames_and_files(arm, tmp_path):
    model = GoalImageReward(GoalImageRewardConfig())
    with pytest.raises(ValueError, match="set reward.goal_source=images"):
        model(RewardBatch(frames=arm.render()[None]))
    with pytest.raises(ValueError, match="needs rendered frames"):
        model(RewardBatch(observations=np.zeros((1, 10))))
    with pytest.raises(ConfigError, match="does not exist"):
        GoalImageReward(GoalImageRewardConfig(goal_source="images", goal_images=[str(tmp_path / "missing.png")]))
    with pytest.raises(ConfigError, match="goal_images is empty"):
        from_dict(RewardConfig, {"type": "goal_image", "goal_source": "images"})


def test_make_reward_model_builds_by_type():
    assert make_reward_model(from_dict(RewardConfig, {"type": "env"})) is None
    assert isinstance(make_reward_model(from_dict(RewardConfig, {"type": "goal_image", "blocks": 4})), GoalImageReward)
