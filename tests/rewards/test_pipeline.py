"""VecLearnedReward's pipeline: frames scored in the order the worker processes answer, same rewards."""

import dataclasses
import json
import multiprocessing
import sys
import time

import cloudpickle
import gymnasium as gym
import numpy as np
import open_clip
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from roboreward.envs.make import make_vec_env
from roboreward.experiment import EnvConfig, RenderConfig
from roboreward.rewards import ClipReward, ClipRewardConfig, RewardBatch, RewardConfig, RewardModel
from roboreward.rewards.postprocess import RewardPostprocessConfig
from roboreward.rewards.wrappers import RenderInInfo, VecLearnedReward

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the worker processes cannot import this file
# Workers fork from a forkserver that has these imported already (if this process has not started one
# yet): each worker then starts in about a second instead of importing torch and open_clip anew.
multiprocessing.set_forkserver_preload(["gymnasium", "roboreward.envs", "roboreward.rewards.wrappers"])

N_ENVS = 4


@dataclasses.dataclass(kw_only=True)
class FrameMeanConfig(RewardConfig, RewardPostprocessConfig):
    pipeline: bool = False
    delay: float = 0.0  # seconds of "inference" per frame


class FrameMean(RewardModel):
    """Scores each frame by its mean pixel value, frame by frame: exactly independent of the batch."""

    name = "frame_mean_pipeline_test"
    config_class = FrameMeanConfig

    def compute(self, batch: RewardBatch) -> np.ndarray:
        time.sleep(self.config.delay * len(batch))
        return batch.frames.reshape(len(batch.frames), -1).mean(axis=1) / 255.0


class SlowStep(gym.Wrapper):
    """Sleeps in every step, so one worker answers long after the others."""

    def __init__(self, env, seconds: float):
        super().__init__(env)
        self.seconds = seconds

    def step(self, action):
        time.sleep(self.seconds)
        return self.env.step(action)


def arm(slow: float = 0.0):
    def _init():
        env = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array", width=32, height=32, max_episode_steps=6)
        env = RenderInInfo(env)
        return SlowStep(env, slow) if slow else env

    return _init


def rollout(venv, steps: int, seed: int = 3):
    venv.seed(seed)
    venv.reset()
    rng = np.random.default_rng(seed)
    out = {"obs": [], "rewards": [], "dones": [], "raw": [], "true": [], "calls": []}
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(venv.num_envs, *venv.action_space.shape)).astype(np.float32)
        obs, rewards, dones, infos = venv.step(actions)
        out["obs"].append(obs)
        out["rewards"].append(rewards)
        out["dones"].append(dones)
        out["raw"].append([info.get("learned_reward_raw", np.nan) for info in infos])
        out["true"].append([info["true_reward"] for info in infos])
        assert all("frame" not in info for info in infos)
        out["calls"].append(list(venv.reward_calls))
    venv.close()
    return {k: (np.array(v) if k != "calls" else v) for k, v in out.items()}


def test_pipeline_gives_identical_rewards_and_hides_scoring_behind_the_slowest_worker():
    """Frames are scored in arrival order while the slow env steps; a step takes ~max(step, scoring)."""
    slow, delay = 0.3, 0.1  # env 1 steps in 0.3 s; scoring takes 0.1 s a frame (0.4 s for all four)
    fns = [arm(slow=slow if i == 1 else 0.0) for i in range(N_ENVS)]
    results, seconds_per_step = {}, {}
    for pipeline in (False, True):
        model = FrameMean(FrameMeanConfig(pipeline=pipeline, delay=delay, smoothing_window=3, normalize=True))
        venv = VecLearnedReward(SubprocVecEnv(fns, start_method="forkserver"), model, pipeline_groups=N_ENVS)  # greedy
        started = time.monotonic()
        results[pipeline] = rollout(venv, steps=8)  # the first step and the reset take no longer than others
        seconds_per_step[pipeline] = (time.monotonic() - started) / 9
    plain, piped = results[False], results[True]
    assert plain["dones"].sum() == N_ENVS  # one auto-reset per env (6-step episodes): terminal frames are scored
    for key in ("obs", "rewards", "dones", "raw", "true"):  # smoothing and normalisation included
        np.testing.assert_array_equal(piped[key], plain[key], err_msg=key)
    assert all(calls == [N_ENVS] for calls in plain["calls"])  # one call per step without the pipeline
    for calls in piped["calls"]:  # the fast envs are scored while env 1 still steps; env 1 comes alone, last
        assert sum(calls) == N_ENVS and len(calls) >= 2 and calls[-1] == 1
    # Sequential: 0.3 + 4 x 0.1 = 0.7 s a step. Pipelined: the three fast frames (0.3 s) are scored
    # while env 1 steps, then its frame (0.1 s): ~0.4 s.
    assert seconds_per_step[False] > 0.6, seconds_per_step
    assert seconds_per_step[True] < seconds_per_step[False] - 0.15, seconds_per_step


def test_pipeline_needs_subprocess_workers_and_is_read_from_the_reward_config():
    model = FrameMean(FrameMeanConfig(pipeline=True))
    with pytest.raises(ValueError, match="set env.vectorization: subproc or env.backend: ray, or reward.pipeline: false"):
        VecLearnedReward(DummyVecEnv([arm()]), model)
    assert VecLearnedReward(DummyVecEnv([arm()]), model, pipeline=False).pipeline is False
    assert VecLearnedReward(DummyVecEnv([arm()]), None, pipeline=True).pipeline is False  # nothing to overlap
    with pytest.raises(ValueError, match="pipeline_groups=0 must be >= 1"):
        VecLearnedReward(DummyVecEnv([arm()]), model, pipeline=False, pipeline_groups=0)


def test_make_vec_env_pipelines_when_the_reward_config_asks():
    env = EnvConfig(
        id="roboreward/ArmReach-v0", n_envs=2, vectorization="subproc", render=RenderConfig(width=16, height=16)
    )
    venv = make_vec_env(env, FrameMean(FrameMeanConfig(pipeline=True)), seed=0)
    try:
        assert venv.venv.pipeline is True  # VecMonitor(VecLearnedReward(SubprocVecEnv))
        venv.reset()
        _, rewards, _, infos = venv.step(np.zeros((2, 2), dtype=np.float32))
        assert rewards.shape == (2,) and all("learned_reward_raw" in info for info in infos)
    finally:
        venv.close()


TINY_CLIP = {  # as tests/rewards/test_clip.py's roboreward-test-tiny: real open_clip classes, 32x32 input
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def test_clip_rewards_on_the_humanoid_are_the_same_pipelined(tmp_path):
    (tmp_path / "roboreward-test-tiny.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(tmp_path / "roboreward-test-tiny.json")
    env = EnvConfig(
        id="roboreward/HumanoidPose-v0", n_envs=3, vectorization="subproc",
        kwargs={"task": "kneeling", "max_episode_steps": 4}, render=RenderConfig(width=40, height=32),
    )
    results = {}
    for pipeline in (False, True):
        torch.manual_seed(0)
        reward = ClipReward(ClipRewardConfig(
            model="roboreward-test-tiny", weights="random", goal_prompts=["a humanoid robot kneeling"],
            baseline_prompts=["a humanoid robot"], pipeline=pipeline, smoothing_window=2,
        ))
        results[pipeline] = rollout(make_vec_env(env, reward, seed=1), steps=6)
    assert results[False]["dones"].sum() == 3
    for key in ("obs", "dones", "true"):
        np.testing.assert_array_equal(results[True][key], results[False][key], err_msg=key)
    for key in ("rewards", "raw"):  # CLIP in fp32 on other batch compositions: equal to float rounding
        np.testing.assert_allclose(results[True][key], results[False][key], rtol=0, atol=1e-6, err_msg=key)
    for calls in results[True]["calls"]:  # the default: two groups, of at least ceil(3 / 2) = 2 frames but the last
        assert sum(calls) == 3 and all(size >= 2 for size in calls[:-1])
