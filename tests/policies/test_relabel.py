"""Replayed rewards relabelled by the current reward models (roboreward/policies/relabel.py): real Meta-World,
a real progress model fitted on recorded demos, SAC's own replay buffer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from roboreward.config import from_dict
from roboreward.datasets.lerobot_v3 import DatasetReader
from roboreward.datasets.record import record_scripted_demos
from roboreward.envs.make import make_vec_env
from roboreward.errors import ConfigError
from roboreward.experiment import ExperimentConfig
from roboreward.policies.relabel import Relabeller, RelabellingReplayBuffer
from roboreward.policies.train import build_algorithm
from roboreward.rewards.base import RewardBatch, RewardConfig, make_reward_model

GAMMA = 0.9


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "reach"
    record_scripted_demos("reach", out, 4, width=16, height=16, max_steps=40, progress=False)
    return out


def progress(demos, **extra):
    return make_reward_model(from_dict(RewardConfig, {"type": "progress", "demos": str(demos), "inputs": "state",
                                                      "episodes": [0, 1, 2], **extra}))


def config_for(**algo) -> ExperimentConfig:
    return from_dict(ExperimentConfig, {
        "env": {"id": "roboreward/MetaWorld-Reach-v3", "n_envs": 1},
        "reward": {"type": "env"},
        "algo": {"name": "sac", "net_arch": [16], "relabel_rewards": True,
                 "hyperparams": {"gamma": GAMMA, "learning_starts": 10_000, "buffer_size": 1000}, **algo},
        "train": {"device": "cpu", "progress_bar": False},
    })


def test_replayed_rewards_are_what_the_wrappers_give_under_the_current_potential(demos):
    potential = progress(demos, scale=5.0, refit_every=10_000)
    config = config_for()
    venv = make_vec_env(config.env, None, seed=0, potential=potential, gamma=GAMMA)
    model = build_algorithm(config, venv)
    buffer = model.replay_buffer
    assert isinstance(buffer, RelabellingReplayBuffer)
    buffer.relabeller = Relabeller(None, potential, GAMMA)

    obs = venv.reset()
    shaped, unshaped, reached = [], [], []
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = rng.uniform(-1, 1, size=(1, 4)).astype(np.float32)
        next_obs, reward, done, infos = venv.step(action)
        buffer.add(obs, next_obs, action, reward, done, infos)
        shaped.append(reward[0])
        unshaped.append(infos[0]["unshaped_reward"])
        reached.append(next_obs[0])
        obs = next_obs
    # The buffer keeps the env's reward before shaping; the shaping is added back, exactly, when replayed.
    np.testing.assert_allclose(buffer.rewards[:30, 0], unshaped, rtol=1e-6)
    samples = buffer._get_samples(np.arange(30))
    np.testing.assert_allclose(samples.rewards.numpy()[:, 0], shaped, rtol=1e-4, atol=1e-4)

    # The potential learns the agent's states are failures: replay now pays what the new Φ says, not the old.
    potential.add_episode(np.stack(reached), success=False)
    potential.refit()
    after = buffer._get_samples(np.arange(30)).rewards.numpy()[:, 0]
    states = np.concatenate([samples.observations.numpy(), samples.next_observations.numpy()])
    phi = potential(RewardBatch(observations=states)).astype(np.float64)
    expected = np.asarray(unshaped) + GAMMA * phi[30:] - phi[:30]
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(after - np.asarray(shaped)).max() > 1e-3
    venv.close()


def test_a_learned_reward_is_recomputed_from_the_reached_state(demos):
    reward = progress(demos, scale=2.0)
    config = config_for()
    venv = make_vec_env(config.env, reward, seed=0)
    model = build_algorithm(config, venv)
    model.replay_buffer.relabeller = Relabeller(reward, None, GAMMA)
    obs = venv.reset()
    for _ in range(10):
        action = np.zeros((1, 4), np.float32)
        next_obs, r, done, infos = venv.step(action)
        model.replay_buffer.add(obs, next_obs, action, r, done, infos)
        obs = next_obs
    samples = model.replay_buffer._get_samples(np.arange(10))
    direct = reward(RewardBatch(observations=samples.next_observations.numpy()))
    np.testing.assert_allclose(samples.rewards.numpy()[:, 0], direct, rtol=1e-6)
    venv.close()


def test_relabelling_refuses_what_it_cannot_recompute(demos):
    with pytest.raises(ConfigError, match="reads frames"):
        Relabeller(make_reward_model(from_dict(RewardConfig, {"type": "progress", "demos": str(demos),
                                                             "episodes": [0, 1, 2]})), None, GAMMA)
    with pytest.raises(ConfigError, match="normalize"):
        Relabeller(progress(demos, normalize=True), None, GAMMA)
    with pytest.raises(ConfigError, match="nothing to relabel"):
        Relabeller(None, None, GAMMA)
    with pytest.raises(ConfigError, match="algo.relabel_rewards relabels an off-policy replay buffer"):
        from_dict(ExperimentConfig, {"algo": {"name": "ppo", "relabel_rewards": True}})


@pytest.mark.slow
def test_train_shapes_the_demos_in_the_buffer_when_replay_is_relabelled(demos, tmp_path):
    """Demos in the buffer with a shaping potential: refused without relabelling (their shaped reward is unknown),
    trained with it — BC annealed, the potential refitted on the agent's failures while SAC replays."""
    run = tmp_path / "run"
    base = ["env.id=roboreward/MetaWorld-Reach-v3", "env.n_envs=2", "reward.type=env", "algo.net_arch=[32,32]",
            "algo.hyperparams.learning_starts=0", "algo.hyperparams.batch_size=64", "algo.hyperparams.gradient_steps=1",
            f"bc.demos={demos}", "bc.episodes=[0,1,2]", "bc.epochs=20", "bc.critic_warmup=20", "bc.anneal_steps=200",
            "shaping.potential.type=progress", f"shaping.potential.demos={demos}", "shaping.potential.inputs=state",
            "shaping.potential.episodes=[0,1,2]",
            "shaping.potential.refit_every=150", "train.total_timesteps=400", "train.checkpoint_every=200",
            "train.progress_bar=false"]
    (tmp_path / "reach.yaml").write_text("name: reach_relabel\n")
    command = [sys.executable, "-m", "roboreward.cli", "train", str(tmp_path / "reach.yaml"), *base]
    refused = subprocess.run([*command, "--run-dir", str(tmp_path / "refused")], capture_output=True, text=True,
                             timeout=600)
    assert refused.returncode != 0 and "algo.relabel_rewards: true" in refused.stderr
    proc = subprocess.run([*command, "algo.relabel_rewards=true", "--run-dir", str(run)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "demo_transitions_in_buffer" in proc.stdout
    assert json.loads((run / "train_summary.json").read_text())["timesteps"] == 400
    newest = sorted((run / "checkpoints").glob("step_*"))[-1]
    assert json.loads((newest / "state.json").read_text())["potential_refits"] >= 1
    assert DatasetReader(demos).num_episodes == 4  # the demos are read, never written
