"""Start PPO from a teacher policy: DAgger distillation of the actor, then a critic fitted to the returns it earns.

RL from scratch on a humanoid spends its first hundred million steps learning to stand. HOMIE-style
training here starts from a policy that already walks (holosoma's G1 policy) and lets PPO add what
it lacks (squatting to a height, arms anywhere). When an experiment has a ``teacher`` section and
its env puts the teacher's action for each observation into ``info["teacher_action"]``
(``roboreward/G1Loco-v0`` with ``env.kwargs.teacher``), training begins with:

1. **DAgger** (Ross et al., 2011) for ``iterations`` rounds of ``steps`` env steps: the envs are
   driven by the teacher with probability ``beta`` (falling linearly from 1 to 0 over the rounds),
   else by the student's mean action; every visited observation is labelled with the teacher's
   action, and the student's Gaussian mean regresses all labels so far (MSE, Adam). Rolling out
   the student makes it learn to recover from its own mistakes, which cloning the teacher's states
   alone does not.
2. **Exploration noise** set to ``log_std`` (a walking policy with PPO's default std of 1 falls at
   once), and **the critic** fitted to the discounted returns of the last round's rollouts, so PPO's
   first advantages are not noise that undoes the distillation.

The distilled policy is saved as ``distilled_policy.zip`` in the run (``roboreward eval RUN
--checkpoint distilled_policy.zip`` measures the starting point), and training continues as usual
(checkpoints, ``--resume``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from roboreward.errors import ConfigError
from roboreward.experiment import TeacherConfig

DISTILLED_POLICY = "distilled_policy.zip"


def distill(model: Any, venv: VecEnv, config: TeacherConfig, progress_bar: bool = True) -> dict[str, float]:
    """Distil ``venv``'s teacher into PPO ``model``'s actor and fit its critic; returns figures of the last round."""
    policy = model.policy
    device = policy.device
    n_envs = venv.num_envs
    obs = venv.reset()
    labels = [info.get("teacher_action") for info in _reset_infos(venv)]
    if any(label is None for label in labels):
        raise ConfigError(
            "teacher: the env gives no info['teacher_action']; set env.kwargs.teacher (e.g. g1_holosoma) on an env "
            "that supports one (roboreward/G1Loco-v0), or teacher.enabled: false"
        )
    label = np.stack(labels)
    all_obs: list[np.ndarray] = []
    all_labels: list[np.ndarray] = []
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    rounds = range(config.iterations)
    bar = tqdm(total=config.iterations * config.steps, desc="distilling the teacher", unit="step",
               disable=not progress_bar)
    figures: dict[str, float] = {}
    gamma = float(model.gamma)
    for r in rounds:
        beta = 1.0 - r / max(config.iterations - 1, 1)
        rewards, dones, round_obs = [], [], []
        falls = 0
        for _ in range(max(1, config.steps // n_envs)):
            all_obs.append(obs.copy())
            all_labels.append(label.copy())
            round_obs.append(obs.copy())
            with torch.no_grad():
                student = policy.get_distribution(torch.as_tensor(obs, device=device)).distribution.mean.cpu().numpy()
            use_teacher = np.random.random(n_envs) < beta
            action = np.where(use_teacher[:, None], label, student)
            obs, reward, done, infos = venv.step(np.clip(action, venv.action_space.low, venv.action_space.high))
            rewards.append(reward)
            dones.append(done)
            for i, info in enumerate(infos):
                source = _reset_infos(venv)[i] if done[i] else info
                label[i] = source["teacher_action"]
                falls += bool(info.get("fell", False))
            bar.update(n_envs)
        x = torch.as_tensor(np.concatenate(all_obs), device=device)
        y = torch.as_tensor(np.concatenate(all_labels), device=device)
        losses = []
        for _ in range(config.epochs):
            order = torch.randperm(len(x), device=device)
            for start in range(0, len(x), config.batch_size):
                idx = order[start:start + config.batch_size]
                mean = policy.get_distribution(x[idx]).distribution.mean
                loss = F.mse_loss(mean, y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
        steps = len(rewards) * n_envs
        figures = {"round": r + 1, "beta": round(beta, 3), "action_mse": float(np.mean(losses[-20:])),
                   "reward_per_step": float(np.mean(rewards)), "falls_per_1000_steps": 1000.0 * falls / steps}
        bar.set_postfix(mse=f"{figures['action_mse']:.4f}", reward=f"{figures['reward_per_step']:.2f}", beta=f"{beta:.2f}")
    bar.close()
    with torch.no_grad():
        policy.log_std.fill_(config.log_std)
    figures["critic_mse"] = _fit_critic(policy, round_obs, rewards, dones, gamma, config)
    return figures


def _reset_infos(venv: VecEnv) -> list[dict]:
    """The reset infos of the innermost VecEnv (wrappers keep empty ones of their own)."""
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv.reset_infos


def _fit_critic(policy: Any, observations: list[np.ndarray], rewards: list[np.ndarray], dones: list[np.ndarray],
                gamma: float, config: TeacherConfig) -> float:
    """Regress the value head on discounted returns of one round (the tail, with no bootstrap, is cut off)."""
    if config.critic_epochs == 0 or not rewards:
        return float("nan")
    r, d = np.array(rewards), np.array(dones, dtype=np.float64)
    returns = np.zeros_like(r)
    running = np.zeros(r.shape[1])
    for t in range(len(r) - 1, -1, -1):
        running = r[t] + gamma * running * (1.0 - d[t])
        returns[t] = running
    keep = max(1, int(len(r) - min(len(r) // 2, round(3.0 / (1.0 - gamma)))))  # drop the unbootstrapped tail
    x = torch.as_tensor(np.concatenate(observations[:keep]), device=policy.device)
    y = torch.as_tensor(returns[:keep].reshape(-1), device=policy.device, dtype=torch.float32)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    loss = torch.tensor(float("nan"))
    for _ in range(config.critic_epochs):
        order = torch.randperm(len(x), device=policy.device)
        for start in range(0, len(x), config.batch_size):
            idx = order[start:start + config.batch_size]
            loss = F.mse_loss(policy.predict_values(x[idx]).reshape(-1), y[idx])
            optimizer.zero_grad()
            loss.backward()
            # Only the critic learns here: the actor's gradients are dropped.
            for p in policy.action_net.parameters():
                p.grad = None
            for p in policy.mlp_extractor.policy_net.parameters():
                p.grad = None
            optimizer.step()
    return float(loss.detach())


__all__ = ["DISTILLED_POLICY", "distill"]
