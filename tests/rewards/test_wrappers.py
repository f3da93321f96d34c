import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from roboreward.rewards import GoalImageReward, GoalImageRewardConfig, RewardBatch
from roboreward.rewards.wrappers import LearnedReward, RenderInInfo, VecLearnedReward

N_ENVS = 3


class CountingGoalImageReward(GoalImageReward):
    """The real goal-image reward, recording the size of every call."""

    name = "counting_goal_image_test"
    config_class = GoalImageRewardConfig

    def __init__(self, config):
        super().__init__(config)
        self.calls: list[int] = []

    def compute(self, batch: RewardBatch) -> np.ndarray:
        self.calls.append(len(batch))
        return super().compute(batch)


def make(seed_offset=0):
    return gym.make("roboreward/ArmReach-v0", render_mode="rgb_array", max_episode_steps=12)


def test_vec_wrapper_batches_one_call_per_step_and_equals_per_env():
    model = CountingGoalImageReward(GoalImageRewardConfig(cache_size=0))
    venv = VecLearnedReward(DummyVecEnv([lambda: RenderInInfo(make()) for _ in range(N_ENVS)]), model)
    venv.seed(100)
    venv.reset()
    singles = [LearnedReward(make(), GoalImageReward(GoalImageRewardConfig(cache_size=0))) for _ in range(N_ENVS)]
    for i, env in enumerate(singles):
        env.reset(seed=100 + i)

    rng = np.random.default_rng(0)
    true_returns = np.zeros(N_ENVS)
    episodes_seen = 0
    for step in range(30):  # crosses two auto-resets (episodes of 12 steps)
        actions = rng.uniform(-1, 1, size=(N_ENVS, 2)).astype(np.float32)
        _, rewards, dones, infos = venv.step(actions)
        assert model.calls[-1] == N_ENVS
        for i, env in enumerate(singles):
            _, r, term, trunc, info = env.step(actions[i])
            assert rewards[i] == pytest.approx(r, abs=1e-5)
            assert infos[i]["true_reward"] == pytest.approx(info["true_reward"])
            assert "frame" not in infos[i]
            true_returns[i] += info["true_reward"]
            if term or trunc:
                assert dones[i]
                assert infos[i]["true_episode"]["r"] == pytest.approx(true_returns[i])
                assert infos[i]["true_episode"]["l"] == 12
                true_returns[i] = 0.0
                episodes_seen += 1
                env.reset(seed=None)
    assert len(model.calls) == 30 and episodes_seen == 2 * N_ENVS
    venv.close()


def test_env_reward_passes_through_with_same_info_keys():
    venv = VecLearnedReward(DummyVecEnv([make for _ in range(2)]), None)
    venv.reset()
    for _ in range(12):
        _, rewards, dones, infos = venv.step(np.zeros((2, 2), dtype=np.float32))
        assert [i["true_reward"] for i in infos] == pytest.approx(list(rewards))
    assert all(dones) and all("true_episode" in i for i in infos)


def test_render_in_info_refuses_to_overwrite_and_needs_rgb():
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        RenderInInfo(gym.make("roboreward/ArmReach-v0"))
    twice = RenderInInfo(RenderInInfo(make()))
    with pytest.raises(KeyError, match="refusing to overwrite"):
        twice.reset(seed=0)
