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


def test_a_run_stopped_after_the_distillation_resumes_from_the_distilled_policy(tmp_path, monkeypatch, capsys):
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    import roboreward.policies.distill as distill_module
    from roboreward.policies.train import resume, train

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # a kill between the distillation and the first checkpoint

    config = small_g1_homie(tmp_path, "train.total_timesteps=256", "algo.hyperparams.n_steps=128", "teacher.iterations=1",
                            "teacher.steps=200", "teacher.epochs=1", "teacher.critic_epochs=1", "teacher.log_std=-1.5")
    with monkeypatch.context() as patch:
        patch.setattr(OnPolicyAlgorithm, "learn", stopped)
        with pytest.raises(KeyboardInterrupt):
            train(config)
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    distilled = (run / DISTILLED_POLICY).read_bytes()
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())

    def no_second_distillation(*args, **kwargs):
        raise AssertionError("resume distilled the teacher again")

    monkeypatch.setattr(distill_module, "distill", no_second_distillation)
    resume(run)
    assert "starting from the teacher distilled in an earlier session" in capsys.readouterr().out
    assert (run / DISTILLED_POLICY).read_bytes() == distilled
    # 256 steps at PPO's fine-tuning rate leave the distilled exploration noise; a fresh policy has log_std 0
    assert PPO.load(run / "model.zip", device="cpu").policy.log_std.mean().item() == pytest.approx(-1.5, abs=0.05)


def test_sigterm_while_distilling_closes_the_env_workers_and_says_how_to_resume(tmp_path):
    import os
    import select
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "roboreward.cli", "train", "g1_homie", f"runs_dir={tmp_path}", "env.n_envs=2",
               "env.vectorization=subproc", "teacher.iterations=2", "teacher.steps=1000000"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    # Its own process group, so that whatever happens here the run and its env workers are gone afterwards.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    fd, chunks = proc.stdout.fileno(), []

    def read_until(done, timeout: float) -> str:
        """What the run printed, read without blocking until ``done(output)``, its exit or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not done(b"".join(chunks).decode(errors="replace")) and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break  # every writer has closed the pipe: the run and its workers have exited
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    try:
        output = read_until(lambda out: "distilling the teacher" in out or proc.poll() is not None, 300)
        assert "distilling the teacher" in output, output
        time.sleep(2.0)  # some rollouts in
        proc.send_signal(signal.SIGTERM)
        output = read_until(lambda out: False, 120)
        proc.wait(10)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the run, or env workers it left behind
        except ProcessLookupError:
            pass  # the whole group has exited
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == 130, output
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert f"SIGTERM: training stopped before its first training step; what it saved in {run} is kept; " \
           f"continue with: roboreward train --resume {run}" in output
    assert "Traceback" not in output and "ConnectionResetError" not in output and "EOFError" not in output, output
