"""Behaviour cloning from demonstrations (roboreward/policies/bc.py) on real Meta-World demos and real SAC."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from roboreward.config import from_dict
from roboreward.datasets.record import record_scripted_demos
from roboreward.errors import ConfigError
from roboreward.experiment import DEFAULT_JOB, ExperimentConfig, load_experiment
from roboreward.policies.bc import (
    BC_POLICY,
    BCRegularisedSAC,
    add_to_replay_buffer,
    demo_rewards,
    load_demonstrations,
    pretrain_actor,
)
from roboreward.policies.train import build_algorithm
from roboreward.rewards.base import RewardBatch, make_reward_model

SIZE = 32
STEPS = 40  # steps per demo


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp("demos") / "reach"
    record_scripted_demos("reach", out, 3, cameras=["corner3"], width=SIZE, height=SIZE, max_steps=STEPS, progress=False)
    return out


def config_for(demos, **sections) -> ExperimentConfig:
    data = {
        "env": {"id": "roboreward/MetaWorld-Reach-v3", "n_envs": 2, "render": {"width": SIZE, "height": SIZE, "camera": "corner3"}},
        "reward": {"type": "env"},
        "algo": {"name": "sac", "net_arch": [32, 32], "hyperparams": {"learning_starts": 0, "batch_size": 64}},
        "bc": {"demos": str(demos), "episodes": [0, 1, 2], "epochs": 5, "critic_warmup": 5},
        "train": {"device": "cpu", "progress_bar": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return from_dict(ExperimentConfig, data)


def deterministic_actions(model, observations: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.actor(torch.as_tensor(observations), deterministic=True).numpy()


def test_demonstrations_are_transitions_of_the_recorded_episodes(demos):
    config = config_for(demos)
    d = load_demonstrations(config.bc, config.env)
    assert d.episodes == [0, 1, 2]
    assert len(d) == 3 * (STEPS - 1) and len(d.pairs_actions) == 3 * STEPS
    assert d.next_frames.shape == (len(d), SIZE, SIZE, 3) and d.next_frames.dtype == np.uint8
    # s_{t+1} of a transition is the next recorded state of the same episode
    np.testing.assert_array_equal(d.next_observations[0], d.observations[1])
    np.testing.assert_array_equal(d.next_observations[STEPS - 2], d.pairs_observations[STEPS - 1])
    np.testing.assert_array_equal(d.observations[STEPS - 1], d.pairs_observations[STEPS])  # episode 1 starts


def test_demos_recorded_in_another_env_give_no_env_rewards(demos):
    """``next.reward`` is the recording env's reward: a run whose env is made otherwise must not replay it."""
    same = load_demonstrations(config_for(demos).bc, config_for(demos).env)
    np.testing.assert_array_equal(demo_rewards(same, None), same.env_rewards)
    config = config_for(demos, env={"kwargs": {"reward": "sparse"}})
    other = load_demonstrations(config.bc, config.env)
    with pytest.raises(ConfigError, match=r"another env's: .*recorded in roboreward/MetaWorld-Reach-v3 with its "
                                          r"defaults, the experiment trains in .* with \{'reward': 'sparse'\}.*"
                                          r"--env KEY=VALUE.*bc.demos_in_buffer: false"):
        demo_rewards(other, None)
    # a learned reward labels the demos itself: where they were recorded does not matter
    np.save(demos / "goal.npy", other.next_frames[-3:])
    goal = {"type": "goal_image", "goal_source": "images", "goal_images": [str(demos / "goal.npy")], "weights": "random"}
    reward = make_reward_model(from_dict(ExperimentConfig, {"reward": goal}).reward)
    assert demo_rewards(other, reward, chunk=16).shape == (len(other),)


def test_pretraining_makes_the_actor_imitate_the_demos(demos):
    config = config_for(demos, bc={"epochs": 150, "batch_size": 64})
    d = load_demonstrations(config.bc, config.env)
    model = build_algorithm(config, demos=d)
    target = model.policy.scale_action(d.pairs_actions).clip(-1, 1)
    before = np.square(deterministic_actions(model, d.pairs_observations) - target).sum(1).mean()
    losses = pretrain_actor(model, d, config.bc, progress=False)
    after = np.square(deterministic_actions(model, d.pairs_observations) - target).sum(1).mean()
    assert after < before / 5, (before, after)
    assert losses["mse"] == pytest.approx(after, rel=0.5, abs=0.02)


def test_demo_transitions_enter_the_buffer_with_the_experiments_reward(demos):
    config = config_for(demos)
    d = load_demonstrations(config.bc, config.env)
    # type env: the reward the env gave while recording
    np.testing.assert_array_equal(demo_rewards(d, None), d.env_rewards)
    # a learned reward: the model's score of the state each transition reaches
    np.save(demos / "goal.npy", d.next_frames[-3:])
    goal = {"type": "goal_image", "goal_source": "images", "goal_images": [str(demos / "goal.npy")], "weights": "random"}
    reward = make_reward_model(from_dict(ExperimentConfig, {"reward": goal}).reward)
    learned = demo_rewards(d, reward, chunk=16)
    np.testing.assert_allclose(learned, reward(RewardBatch(frames=d.next_frames)), rtol=1e-5, atol=1e-5)

    model = build_algorithm(config, demos=d)
    added = add_to_replay_buffer(model, d, learned)
    buffer = model.replay_buffer
    n = buffer.n_envs  # the buffer stores rows of n_envs transitions
    assert added == len(d) - len(d) % n and buffer.pos == added // n
    rows = 6 // n
    np.testing.assert_array_equal(buffer.observations[:rows].reshape(6, -1), d.observations[:6])
    np.testing.assert_array_equal(buffer.next_observations[:rows].reshape(6, -1), d.next_observations[:6])
    np.testing.assert_allclose(buffer.rewards[:rows].reshape(6), learned[:6])
    np.testing.assert_allclose(buffer.actions[:rows].reshape(6, -1), model.policy.scale_action(d.actions[:6]), atol=1e-6)
    assert not buffer.dones[: added // n].any()


def test_critic_warms_up_alone_then_the_bc_term_holds_the_actor(demos):
    config = config_for(demos)
    d = load_demonstrations(config.bc, config.env)
    results = {}
    for weight in (0.0, 100.0):
        model = build_algorithm(config_for(demos, bc={"weight": weight, "critic_warmup": 5}), demos=d)
        assert isinstance(model, BCRegularisedSAC)
        pretrain_actor(model, d, config_for(demos, bc={"epochs": 100, "batch_size": 64}).bc, progress=False)
        add_to_replay_buffer(model, d, np.random.default_rng(0).normal(size=len(d)).astype(np.float32) * 10)
        from stable_baselines3.common.logger import configure

        model.set_logger(configure(None, []))
        actor = [p.detach().clone() for p in model.actor.parameters()]
        critic = [p.detach().clone() for p in model.critic.parameters()]
        model.train(gradient_steps=5, batch_size=64)
        assert all(torch.equal(a, b) for a, b in zip(actor, model.actor.parameters())), "actor moved during warm-up"
        assert not all(torch.equal(a, b) for a, b in zip(critic, model.critic.parameters()))
        model.train(gradient_steps=300, batch_size=64)
        assert not all(torch.equal(a, b) for a, b in zip(actor, model.actor.parameters()))
        target = model.policy.scale_action(d.pairs_actions).clip(-1, 1)
        results[weight] = np.square(deterministic_actions(model, d.pairs_observations) - target).sum(1).mean()
    # a critic fitted to random rewards pulls an unregularised actor away from the demos; the BC term does not let it
    assert results[100.0] < 0.5 * results[0.0], results


def test_an_annealed_bc_term_falls_to_zero_and_then_leaves_the_actor_to_sac(demos):
    config = config_for(demos, bc={"weight": 8.0, "anneal_steps": 1000, "critic_warmup": 0})
    d = load_demonstrations(config.bc, config.env)
    model = build_algorithm(config, demos=d)
    weights = []
    for steps in (0, 250, 1000, 5000):
        model.num_timesteps = steps
        weights.append(model.current_bc_weight())
    assert weights == [8.0, 6.0, 0.0, 0.0]
    constant = build_algorithm(config_for(demos, bc={"weight": 8.0}), demos=d)
    constant.num_timesteps = 5000
    assert constant.current_bc_weight() == 8.0

    from stable_baselines3.common.logger import configure

    add_to_replay_buffer(model, d, np.ones(len(d), np.float32))
    model.set_logger(configure(None, []))
    model.train(gradient_steps=3, batch_size=16)  # annealed away (5000 steps): no BC loss is computed
    assert "train/bc_loss" not in model.logger.name_to_value
    assert model.logger.name_to_value["train/bc_weight"] == 0.0
    model.num_timesteps = 500
    model.train(gradient_steps=3, batch_size=16)
    assert model.logger.name_to_value["train/bc_weight"] == 4.0 and model.logger.name_to_value["train/bc_loss"] > 0


def test_demo_fraction_draws_that_share_of_every_batch_from_the_demos_kept_apart(demos):
    config = config_for(demos, bc={"demo_fraction": 0.25, "critic_warmup": 0})
    d = load_demonstrations(config.bc, config.env)
    model = build_algorithm(config, demos=d)
    model.set_demo_buffer(d, np.full(len(d), 7.0, np.float32))  # demo transitions: reward 7
    assert model.demo_buffer.size() == len(d) and model.replay_buffer.size() == 0
    rng = np.random.default_rng(0)
    for _ in range(40):  # the agent's own transitions: reward -1, observations unlike any demo's
        obs = rng.normal(100.0, 1.0, (1, *model.observation_space.shape)).astype(np.float32)
        model.replay_buffer.add(obs, obs, rng.uniform(-1, 1, (1, 4)), np.array([-1.0]), np.array([0.0]), [{}])
    batch = model._replay_batch(64)
    rewards = batch.rewards.numpy().ravel()
    assert len(rewards) == 64 and np.sum(rewards == 7.0) == 16 and np.sum(rewards == -1.0) == 48
    demo_rows = batch.observations.numpy()[rewards == 7.0]
    assert np.abs(demo_rows).max() < 50  # the demo share really is demo observations
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    model.train(gradient_steps=2, batch_size=16)  # SAC trains on the mixed batches
    assert np.isfinite(model.logger.name_to_value["train/critic_loss"])
    plain = build_algorithm(config_for(demos), demos=d)
    assert plain.demo_fraction == 0 and plain.demo_buffer is None
    with pytest.raises(ConfigError, match="bc.demos_in_buffer: true or bc.demo_fraction: 0"):
        config_for(demos, bc={"demo_fraction": 0.5, "demos_in_buffer": False})


def test_bad_bc_configs_name_the_problem_and_the_fix(demos, tmp_path):
    with pytest.raises(ConfigError, match="algo.name: sac"):
        config_for(demos, algo={"name": "ppo", "hyperparams": {}})
    missing = config_for(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="roboreward demos record"):
        load_demonstrations(missing.bc, missing.env)
    other_camera = config_for(demos, env={"render": {"width": SIZE, "height": SIZE, "camera": "topview"}})
    with pytest.raises(ConfigError, match="topview"):
        load_demonstrations(other_camera.bc, other_camera.env)
    other_size = config_for(demos, env={"render": {"width": 48, "height": 48, "camera": "corner3"}})
    with pytest.raises(ConfigError, match="env.render.width"):
        load_demonstrations(other_size.bc, other_size.env)
    with pytest.raises(ConfigError, match="bc.episodes"):
        bad = config_for(demos, bc={"episodes": [7]})
        load_demonstrations(bad.bc, bad.env)


def test_the_embedded_default_job_learns_button_press_from_one_demo_only():
    config = load_experiment(DEFAULT_JOB)
    assert config.env.id == "roboreward/MetaWorld-ButtonPress-v3"
    assert config.reward.type_name == "progress" and config.reward.demos == config.bc.demos
    assert config.shaping.potential is None and config.env.kwargs == {}  # the task reward is never trained on
    # The recipe's ingredients (benchmarks/default_job.py switches each off alone).
    assert config.reward.inputs == "state" and set(config.reward.keypoints) == {"hand", "button", "goal"}
    assert config.reward.refit_every > 0 and config.algo.relabel_rewards
    assert config.bc.demo_fraction == 0.5 and config.bc.anneal_steps > 0 and config.bc.weight > 0
    assert config.train.validate_every > 0 and config.eval.policy == "best"  # scored on the policy validation kept


@pytest.mark.slow
def test_train_with_bc_saves_the_starting_policy_and_eval_scores_it(demos, tmp_path):
    run = tmp_path / "run"
    overrides = [
        "env.id=roboreward/MetaWorld-Reach-v3", "env.n_envs=2", f"env.render.width={SIZE}", f"env.render.height={SIZE}",
        "env.render.camera=corner3", "reward.type=env", "algo.net_arch=[32,32]", "algo.hyperparams.learning_starts=0",
        "algo.hyperparams.batch_size=64", "algo.hyperparams.gradient_steps=1", f"bc.demos={demos}", "bc.episodes=[0,1,2]", "bc.epochs=20",
        "bc.critic_warmup=20", "bc.demo_fraction=0.5", "train.total_timesteps=240", "train.checkpoint_every=120",
        "train.progress_bar=false", "eval.episodes=2", "eval.video=false",
    ]
    reach = str(tmp_path / "reach.yaml")
    (tmp_path / "reach.yaml").write_text("name: reach_bc\n")
    proc = subprocess.run([sys.executable, "-m", "roboreward.cli", "train", reach, *overrides, "--run-dir", str(run)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "behaviour cloning from" in proc.stdout and (run / BC_POLICY).is_file()
    assert "demo_transitions_apart 117" in proc.stdout  # 3 demos of 40 frames, kept apart (bc.demo_fraction)
    assert json.loads((run / "train_summary.json").read_text())["timesteps"] == 240
    # Resumed, the demos kept apart are put back (the checkpoint holds only the agent's replay).
    (run / "train_summary.json").unlink()
    shutil.rmtree(run / "checkpoints" / "step_000000240")
    proc = subprocess.run([sys.executable, "-m", "roboreward.cli", "train", "--resume", str(run)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "117 demo transitions kept apart" in proc.stdout and json.loads((run / "train_summary.json").read_text())["timesteps"] == 240
    out = tmp_path / "eval_bc"
    proc = subprocess.run([sys.executable, "-m", "roboreward.cli", "eval", str(run), "--checkpoint", BC_POLICY,
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == BC_POLICY and metrics["episodes"] == 2
