from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

from roboreward.config import from_dict
from roboreward.errors import ConfigError
from roboreward.rewards import ClipRewardConfig, RewardBatch, RewardConfig, RewardModel
from roboreward.rewards.postprocess import (
    MovingAverage,
    RewardPostprocessConfig,
    RewardPostprocessor,
    RunningNormalizer,
)
from roboreward.rewards.wrappers import LearnedReward, VecLearnedReward


@dataclass(kw_only=True)
class ObsRewardConfig(RewardConfig, RewardPostprocessConfig):
    """A config with the post-processing fields, for a reward that needs no frames."""


class ObsReward(RewardModel):
    """A deterministic, varying reward of the observation alone: cheap, so wrappers are tested fast."""

    name = "obs_sum_postprocess_test"
    config_class = ObsRewardConfig
    requires_frames = False

    def compute(self, batch: RewardBatch) -> np.ndarray:
        obs = np.asarray(batch.observations, dtype=np.float64)
        return np.sin(7.0 * obs.reshape(len(obs), -1).sum(axis=1)) + 2.0


def reference_smoothing(raw: np.ndarray, dones: np.ndarray, window: int) -> np.ndarray:
    """Per env: the mean of the last ``window`` raw rewards of the current episode, written out."""
    out = np.zeros_like(raw, dtype=np.float64)
    for env in range(raw.shape[1]):
        episode: list[float] = []
        for t in range(raw.shape[0]):
            episode.append(raw[t, env])
            out[t, env] = np.mean(episode[-window:])
            if dones[t, env]:
                episode = []
    return out


def test_moving_average_is_per_env_and_restarts_at_episode_ends():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(40, 3))
    dones = rng.random((40, 3)) < 0.15
    avg = MovingAverage(n_envs=3, window=4)
    smoothed = np.stack([avg(raw[t], dones[t]) for t in range(40)])
    np.testing.assert_allclose(smoothed, reference_smoothing(raw, dones, 4), rtol=0, atol=1e-12)
    # an explicit reset of one env leaves the others' history alone
    avg.reset([1])
    out = avg(np.array([10.0, 10.0, 10.0]), np.zeros(3, dtype=bool))
    assert out[1] == 10.0 and out[0] != 10.0


def test_running_normalizer_is_welford_over_everything_seen_and_clips():
    rng = np.random.default_rng(1)
    norm = RunningNormalizer(clip=3.0)
    seen = []
    for size in (1, 5, 2, 17, 1, 8):
        batch = rng.normal(loc=4.0, scale=0.5, size=size)
        seen.extend(batch)
        out = norm(batch)
        assert norm.count == len(seen)
        assert norm.mean == pytest.approx(np.mean(seen), abs=1e-12)
        assert norm.var == pytest.approx(np.var(seen), abs=1e-12)
        expected = np.clip((batch - np.mean(seen)) / np.sqrt(np.var(seen) + 1e-8), -3, 3)
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
    assert np.all(np.abs(norm.normalize(np.array([-100.0, 100.0]))) == 3.0)
    restored = RunningNormalizer(clip=3.0)
    restored.load_state_dict(norm.state_dict())
    np.testing.assert_array_equal(restored.normalize(np.array([4.2])), norm.normalize(np.array([4.2])))


def test_postprocessing_is_off_by_default_and_configured_by_the_reward_config():
    base = {"type": "clip", "goal_prompts": ["a humanoid robot kneeling"], "baseline_prompts": ["a humanoid robot"]}
    cfg = from_dict(RewardConfig, base)
    assert isinstance(cfg, ClipRewardConfig) and cfg.smoothing_window == 0 and cfg.normalize is False
    assert RewardPostprocessor.from_config(cfg, n_envs=4) is None
    assert RewardPostprocessor.from_config(object(), n_envs=4) is None  # a config without the fields
    one = from_dict(RewardConfig, {**base, "smoothing_window": 1})
    assert RewardPostprocessor.from_config(one, 4) is None  # a window of 1 is no smoothing
    both = from_dict(RewardConfig, {**base, "smoothing_window": 3, "normalize": True})
    post = RewardPostprocessor.from_config(both, 4)
    assert post is not None and post.smoothing.window == 3 and post.normalizer.clip == 10.0
    with pytest.raises(ConfigError, match="smoothing_window: -1 is too small"):
        from_dict(RewardConfig, {**base, "smoothing_window": -1})
    with pytest.raises(ConfigError, match="normalize_clip: 0.0 is too small"):
        from_dict(RewardConfig, {**base, "normalize_clip": 0})


def make_env(steps: int = 7):
    return gym.make("roboreward/ArmReach-v0", max_episode_steps=steps)


def run_vec(config: ObsRewardConfig, n_envs: int = 3, steps: int = 20):
    venv = VecLearnedReward(DummyVecEnv([make_env for _ in range(n_envs)]), ObsReward(config))
    venv.seed(5)
    venv.reset()
    rng = np.random.default_rng(2)
    rewards, raws, dones, trues = [], [], [], []
    for _ in range(steps):
        _, r, d, infos = venv.step(rng.uniform(-1, 1, size=(n_envs, 2)).astype(np.float32))
        rewards.append(r)
        dones.append(d)
        raws.append([info["learned_reward_raw"] for info in infos])
        trues.append([info["true_reward"] for info in infos])
    venv.close()
    return np.array(rewards), np.array(raws), np.array(dones), np.array(trues)


def test_vec_wrapper_smooths_and_normalises_the_learned_reward_and_keeps_the_raw_one():
    off, raw, dones, true = run_vec(ObsRewardConfig())
    np.testing.assert_array_equal(off, raw.astype(np.float32))  # off by default: the model's reward as is
    assert dones.sum() == 2 * 3  # two episode ends per env (7-step episodes), so smoothing crosses resets

    smoothed, raw_s, dones_s, true_s = run_vec(ObsRewardConfig(smoothing_window=3))
    np.testing.assert_array_equal(raw_s, raw)
    np.testing.assert_array_equal(true_s, true)  # the env's reward is untouched
    np.testing.assert_allclose(smoothed, reference_smoothing(raw, dones, 3), rtol=0, atol=1e-6)

    both, raw_b, _, _ = run_vec(ObsRewardConfig(smoothing_window=3, normalize=True, normalize_clip=1.5))
    np.testing.assert_array_equal(raw_b, raw)
    norm, expected = RunningNormalizer(clip=1.5), []
    for row in reference_smoothing(raw, dones, 3):
        expected.append(norm(row))
    np.testing.assert_allclose(both, np.array(expected), rtol=0, atol=1e-5)
    assert np.abs(both).max() <= 1.5 and abs(both[5:].mean()) < 0.5


def test_single_env_wrapper_applies_the_same_postprocessing():
    config = ObsRewardConfig(smoothing_window=4)
    vec, raw, dones, _ = run_vec(config, n_envs=1, steps=16)
    env = LearnedReward(make_env(), ObsReward(config))
    env.reset(seed=5)
    rng = np.random.default_rng(2)
    for t in range(16):
        _, r, term, trunc, info = env.step(rng.uniform(-1, 1, size=(1, 2)).astype(np.float32)[0])
        assert info["learned_reward_raw"] == pytest.approx(raw[t, 0], abs=1e-6)
        assert r == info["learned_reward"] == pytest.approx(vec[t, 0], abs=1e-6)
        if term or trunc:
            env.reset()
