"""Starting PPO from a teacher: DAgger distillation of holosoma's G1 policy on roboreward/G1Loco-v0 (real MuJoCo, SB3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from roboreward.envs.g1_loco import G1LocoEnv
from roboreward.errors import ConfigError
from roboreward.experiment import TeacherConfig, load_experiment
from roboreward.policies.distill import DISTILLED_POLICY, distill


def _labelled_batch(env: G1LocoEnv, steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Observations the teacher visits, and its action for each."""
    obs, info = env.reset(seed=11)
    xs, ys = [], []
    for _ in range(steps):
        xs.append(obs)
        ys.append(info["teacher_action"])
        obs, _, terminated, truncated, info = env.step(info["teacher_action"])
        if terminated or truncated:
            obs, info = env.reset()
    return np.array(xs), np.array(ys)


def test_distillation_pulls_the_students_actions_to_the_teachers():
    venv = DummyVecEnv([lambda: G1LocoEnv(teacher="g1_holosoma", randomization={"enabled": False})])
    probe = G1LocoEnv(teacher="g1_holosoma", randomization={"enabled": False})
    try:
        model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=64, batch_size=64)
        x, y = _labelled_batch(probe)

        def mse() -> float:
            with torch.no_grad():
                mean = model.policy.get_distribution(torch.as_tensor(x)).distribution.mean.numpy()
            return float(np.mean((mean - y) ** 2))

        before = mse()
        figures = distill(model, venv, TeacherConfig(enabled=True, iterations=3, steps=1500, epochs=6, log_std=-1.2,
                                                     critic_epochs=2), progress_bar=False)
        after = mse()
        print(f"action MSE on the teacher's states: {before:.3f} -> {after:.3f}; {figures}")
        assert after < 0.5 * before
        assert figures["round"] == 3 and figures["beta"] == 0.0 and np.isfinite(figures["critic_mse"])
        assert torch.allclose(model.policy.log_std, torch.full_like(model.policy.log_std, -1.2))
    finally:
        venv.close()
        probe.close()


def small_g1_homie(tmp_path, *overrides: str):
    """The shipped g1_homie experiment, one in-process env and short rollouts."""
    return load_experiment("g1_homie", [
        f"runs_dir={tmp_path}", "env.n_envs=1", "env.vectorization=dummy", "train.progress_bar=false",
        "algo.hyperparams.batch_size=64", *overrides,
    ])


def test_training_with_a_teacher_saves_the_distilled_policy_first(tmp_path):
    from roboreward.policies.train import train

    run = train(small_g1_homie(tmp_path, "train.total_timesteps=256", "algo.hyperparams.n_steps=128",
                               "teacher.iterations=1", "teacher.steps=200", "teacher.epochs=1", "teacher.critic_epochs=1"))
    assert (run / DISTILLED_POLICY).is_file() and (run / "model.zip").is_file()
    assert PPO.load(run / DISTILLED_POLICY, device="cpu").policy.log_std.mean().item() == pytest.approx(-1.5)


def test_a_teacher_needs_ppo_and_an_env_that_labels():
    with pytest.raises(ConfigError, match="teacher: distillation starts PPO's Gaussian policy; set algo.name: ppo"):
        load_experiment("g1_homie", ["algo.name=sac", "algo.hyperparams={}"])
    venv = DummyVecEnv([lambda: G1LocoEnv(randomization={"enabled": False})])
    try:
        model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=64, batch_size=64)
        with pytest.raises(ConfigError, match="set env.kwargs.teacher"):
            distill(model, venv, TeacherConfig(enabled=True), progress_bar=False)
    finally:
        venv.close()


def test_the_symmetry_pass_makes_a_lopsided_policy_act_alike_on_both_sides(tmp_path):
    from roboreward.policies.train import build_algorithm

    model = build_algorithm(small_g1_homie(tmp_path, "algo.hyperparams.n_steps=256", "algo.hyperparams.learning_rate=1e-3",
                                           "teacher.enabled=false", "env.kwargs={}", "symmetry.weight=1.0",
                                           "symmetry.epochs=10"))
    env = G1LocoEnv(randomization={"enabled": False})
    try:
        obs, _ = env.reset(seed=2)
        states = []
        for _ in range(200):
            states.append(obs)
            obs, _, terminated, _, _ = env.step(np.zeros(15, dtype=np.float32))
            if terminated:
                obs, _ = env.reset()
    finally:
        env.close()
    obs = torch.as_tensor(np.array(states))
    with torch.no_grad():  # a lopsided policy: its left and right actions differ
        model.policy.action_net.weight.normal_(0.0, 0.3)
        model.policy.action_net.bias.normal_(0.0, 0.5)
        before = float(model.symmetry_loss(obs))
    assert before > 0.5
    model.learn(256)  # one rollout, PPO's update, then the symmetry passes
    with torch.no_grad():
        after = float(model.symmetry_loss(obs))
    print(f"symmetry loss {before:.4f} -> {after:.4f}")
    assert after < 0.5 * before
    with pytest.raises(ConfigError, match="symmetry: the mirror loss is built on PPO"):
        load_experiment("g1_homie", ["algo.name=sac", "algo.hyperparams={}", "teacher.enabled=false",
                                     "symmetry.weight=1"])
