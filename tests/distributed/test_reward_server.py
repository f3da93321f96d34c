"""The Ray reward server: the same rewards as the model in the learner, batching, restarts, `roboreward train`."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import ray

from roboreward.distributed.reward_server import RemoteRewardModel
from roboreward.distributed.vec_env import FrameRef
from roboreward.envs.make import make_vec_env
from roboreward.config import from_dict
from roboreward.experiment import EnvConfig, ExperimentConfig, RayConfig
from roboreward.policies.train import train
from roboreward.rewards.base import RewardBatch, make_reward_model
from roboreward.rewards.goal_image import GoalImageRewardConfig

RAY = RayConfig(envs_per_actor=2)


def _rollout(venv, steps: int = 70):
    venv.seed(21)
    venv.reset()
    rng = np.random.default_rng(21)
    out = []
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(venv.num_envs, *venv.action_space.shape)).astype(np.float32)
        _, rewards, dones, infos = venv.step(actions)
        out.append((rewards, dones, [info.get("unshaped_reward") for info in infos]))
    return out


@pytest.mark.parametrize("shaped,pipeline", [(False, False), (True, False), (False, True)],
                         ids=["reward", "reward+shaping", "pipelined"])
def test_the_server_scores_frames_it_fetches_itself_exactly_as_the_local_model(ray_cluster, shaped, pipeline):
    config = GoalImageRewardConfig(batch_size=3)
    local = make_reward_model(config)
    server = RemoteRewardModel(dataclasses.replace(config, pipeline=pipeline), RAY)
    env = EnvConfig(n_envs=5, backend="ray")
    kwargs = {"gamma": 0.95} if shaped else {}
    here = make_vec_env(env, local, seed=0, potential=local if shaped else None, ray=RAY, **kwargs)
    remote = make_vec_env(env, server, seed=0, potential=server if shaped else None, ray=RAY, **kwargs)
    try:
        assert not here.unwrapped.frames_apart and remote.unwrapped.frames_apart  # pixels never reach the learner
        expected, got = _rollout(here), _rollout(remote)
        stats = server.stats()
        scorer = remote.venv
        while not hasattr(scorer, "reward_calls"):
            scorer = scorer.venv
        assert scorer.pipeline == pipeline
        assert len(scorer.reward_calls) == (2 if pipeline else 1)  # 3 actors answering in 2 groups (>= 3 envs each)
    finally:
        here.close()
        remote.close()
        server.close()
    assert sum(int(dones.sum()) for _, dones, _ in expected) == 5  # episode ends (new goal images) included
    for (r_a, d_a, u_a), (r_b, d_b, u_b) in zip(expected, got):
        np.testing.assert_allclose(r_b, r_a, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(d_a, d_b)
        if shaped:
            np.testing.assert_allclose(np.array(u_b), np.array(u_a), rtol=1e-5, atol=1e-5)
    assert max(stats["frames_per_call"]) <= 3 and stats["frames"] >= 70 * 5


def _frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(n, 64, 64, 3), dtype=np.uint8)


def test_requests_from_many_actors_are_merged_into_calls_of_the_batch_size(ray_cluster):
    server = RemoteRewardModel(GoalImageRewardConfig(batch_size=8), RAY)
    goal = _frames(1, 0)
    try:
        requests = [server.server.score.remote(_frames(1, i), None, goal) for i in range(1, 25)]  # 24 at once
        rewards = np.concatenate(ray.get(requests))
        stats = server.stats()
    finally:
        server.close()
    assert stats["frames"] == 24 and max(stats["frames_per_call"]) <= 8
    assert stats["calls"] < 24  # requests that queued while the model ran shared its next call
    expected = make_reward_model(GoalImageRewardConfig())(RewardBatch(frames=np.concatenate([_frames(1, i) for i in range(1, 25)]),
                                                                     goal_frames=np.repeat(goal, 24, axis=0)))
    np.testing.assert_allclose(rewards, expected, rtol=1e-5, atol=1e-5)


def test_a_server_that_crashes_mid_request_is_restarted_and_the_request_answered(ray_cluster):
    server = RemoteRewardModel(GoalImageRewardConfig(batch_size=8), RayConfig(max_restarts=2))
    n = 1024
    frames, goals = _frames(n, 1), np.repeat(_frames(1, 2), n, axis=0)
    try:
        expected = server(RewardBatch(frames=frames, goal_frames=goals))
        server.reset_stats()
        pid = ray.get(server.server.__ray_call__.remote(lambda self: os.getpid()))
        pending = server.server.score.remote(frames, None, goals)  # 128 model calls
        while not 0 < server.stats()["frames"] < n:  # the server answers stats while it scores
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)  # part of the request scored, the rest not
        np.testing.assert_allclose(ray.get(pending, timeout=120), expected, rtol=1e-6)
        assert ray.get(server.server.__ray_call__.remote(lambda self: os.getpid())) != pid  # a new process answered
        assert server.stats()["frames"] == n  # the restarted server scored the whole request again
    finally:
        server.close()


def test_frame_refs_and_arrays_mix_in_one_request(ray_cluster):
    server = RemoteRewardModel(GoalImageRewardConfig(), RAY)
    frames, goal = _frames(3, 4), _frames(1, 5)
    try:
        ref = ray.put([frames[0], frames[2]])
        mixed = [FrameRef(ref, 0), frames[1], FrameRef(ref, 1)]
        got = server(RewardBatch(frames=mixed, goal_frames=np.repeat(goal, 3, axis=0)))
        expected = server(RewardBatch(frames=frames, goal_frames=np.repeat(goal, 3, axis=0)))
    finally:
        server.close()
    np.testing.assert_array_equal(got, expected)


def test_ppo_with_a_shaped_served_reward_trains_on_the_cluster(ray_cluster, tmp_path):
    """PPO, the reward and the shaping potential from one server, the envs in actors: train() as the CLI runs it."""
    config = from_dict(ExperimentConfig, {
        "algo": {"name": "ppo", "net_arch": [16, 16], "hyperparams": {"n_steps": 16, "batch_size": 32}},
        "env": {"n_envs": 4, "backend": "ray"}, "ray": {"envs_per_actor": 2},
        "reward": {"type": "goal_image", "server": "ray", "pipeline": True},
        "shaping": {"potential": {"type": "goal_image", "server": "ray"}},
        "train": {"total_timesteps": 128, "progress_bar": False}, "runs_dir": str(tmp_path),
    })
    run = train(config, tmp_path / "run")
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["timesteps"] == 128 and (run / "model.zip").is_file()


@pytest.mark.slow
def test_train_and_resume_with_envs_and_reward_on_the_cluster(ray_cluster, tmp_path):
    """`roboreward train` in its own process joins the cluster: rollout actors, a reward server, then --resume."""
    env = {**os.environ, "ROBOREWARD_TEST": "1"}
    args = ["arm_reach", "env.backend=ray", "reward.server=ray", "env.n_envs=4", "ray.envs_per_actor=2",
            "train.total_timesteps=240", "train.checkpoint_every=120", "train.progress_bar=false",
            "algo.hyperparams.learning_starts=100", "algo.net_arch=[32,32]", f"runs_dir={tmp_path}",
            "--run-dir", str(tmp_path / "run"), "--ray-address", ray_cluster.address]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "roboreward.cli", "train", *args], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "trained 240 steps" in done.stdout
    resumed = subprocess.run([sys.executable, "-m", "roboreward.cli", "train", "--resume", str(tmp_path / "run"),
                              "--ray-address", ray_cluster.address], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "240 steps done" in resumed.stdout
    assert (tmp_path / "run" / "model.zip").is_file() and time.monotonic() - started < 300


def test_requests_with_dict_observations_are_batched_row_by_row():
    """A Dict-observation env's requests (the crowd env) are merged key by key, in row order."""
    from roboreward.distributed.reward_server import _Request, _rows_batch
    from roboreward.rewards.base import RewardBatch

    def request(offset):
        obs = {"robot": np.arange(6.0).reshape(2, 3) + offset, "mask": np.array([[1], [0]]) + offset}
        return _Request(RewardBatch(observations=obs), np.zeros(2, dtype=np.float32), 2, None)

    first, second = request(0), request(10)
    batch = _rows_batch([(first, 1), (second, 0), (first, 0)])
    np.testing.assert_array_equal(batch.observations["robot"], [[3, 4, 5], [10, 11, 12], [0, 1, 2]])
    np.testing.assert_array_equal(batch.observations["mask"], [[0], [11], [1]])
    assert len(batch) == 3
