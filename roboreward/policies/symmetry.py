"""PPO with a mirror-symmetry loss: a humanoid's policy should act the same on both sides (HOMIE's symmetry).

A left-right symmetric robot walking a mirrored command in a mirrored state should take the mirrored
action. Nothing in PPO asks for that, so a policy can learn a limp, or a turn it only does one way.
:class:`SymmetricPPO` adds, after each of PPO's updates, ``symmetry.epochs`` passes over the
rollout's observations minimising

    weight * || mu(mirror_obs(s)) - mirror_action(mu(s)) ||^2

for the policy's mean action ``mu``, with the env's mirror maps (``env.mirror``, e.g.
:class:`roboreward.envs.g1_loco.G1Mirror`: ``observation`` and ``action``). Both sides carry the
gradient, so the policy moves towards its own symmetrised self. Enabled by an experiment's
``symmetry.weight > 0`` with PPO; the mirror maps are read from the first env.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO

from roboreward.errors import ConfigError


class SymmetricPPO(PPO):
    """PPO plus a mirror-symmetry pass over each rollout (see the module docstring)."""

    def __init__(self, *args: Any, symmetry_weight: float = 1.0, symmetry_epochs: int = 1, mirror: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if mirror is None:
            raise ConfigError("symmetry: the env has no mirror maps (env.mirror); use an env that defines them "
                              "(roboreward/G1Loco-v0) or set symmetry.weight: 0")
        n_obs, n_act = self.observation_space.shape[0], self.action_space.shape[0]
        if len(mirror.obs_perm) != n_obs or len(mirror.action_perm) != n_act:
            raise ConfigError(f"symmetry: the env's mirror maps {len(mirror.obs_perm)} observations and "
                              f"{len(mirror.action_perm)} actions; the policy has {n_obs} and {n_act}")
        self.symmetry_weight = symmetry_weight
        self.symmetry_epochs = symmetry_epochs
        self._obs_perm = torch.as_tensor(np.asarray(mirror.obs_perm), device=self.device)
        self._obs_sign = torch.as_tensor(np.asarray(mirror.obs_sign), dtype=torch.float32, device=self.device)
        self._act_perm = torch.as_tensor(np.asarray(mirror.action_perm), device=self.device)
        self._act_sign = torch.as_tensor(np.asarray(mirror.action_sign), dtype=torch.float32, device=self.device)

    def symmetry_loss(self, obs: torch.Tensor) -> torch.Tensor:
        """``mean || mu(mirror(s)) - mirror(mu(s)) ||^2`` over a batch of observations."""
        mean = self.policy.get_distribution(obs).distribution.mean
        mirrored = self.policy.get_distribution(obs[:, self._obs_perm] * self._obs_sign).distribution.mean
        return ((mirrored - mean[:, self._act_perm] * self._act_sign) ** 2).sum(dim=1).mean()

    def train(self) -> None:
        super().train()
        if self.symmetry_weight <= 0 or self.symmetry_epochs <= 0:
            return
        self.policy.set_training_mode(True)
        losses = []
        for _ in range(self.symmetry_epochs):
            for batch in self.rollout_buffer.get(self.batch_size):
                loss = self.symmetry_weight * self.symmetry_loss(batch.observations.float())
                self.policy.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()
                losses.append(float(loss.detach()))
        self.logger.record("train/symmetry_loss", float(np.mean(losses)))


__all__ = ["SymmetricPPO"]
