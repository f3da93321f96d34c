"""A HEIGHT-style network for crowd navigation, as an SB3 features extractor.

HEIGHT (Liu et al., 2024) encodes the scene as a heterogeneous graph: people attend to each other
(human–human attention), the robot attends to the people (robot–human attention), and the static
geometry comes in through the lidar (a 1-D convolution over the scan). This module does the same on the
observation of :mod:`roboreward.envs.crowd.env`:

- ``robot`` → an MLP embedding, the query of the robot–human attention;
- ``humans`` (masked by ``humans_mask``) → per-person MLP embeddings → masked multi-head self-attention
  (with a residual connection) → masked attention from the robot's embedding;
- ``lidar`` → 1-D convolutions, circular (a 360° scan wraps around; a narrower one is padded with zeros) →
  a linear embedding;
- ``obstacles`` tokens (with ``obstacles_mask``) → a masked attention from the robot, when there is no lidar
  or ``use_obstacle_tokens`` is set.

A learned "nobody" token is always among the keys, so a step where no one is seen attends to it instead of
dividing by zero. The actor and critic heads (``algo.net_arch``) read the concatenation, or, as in HEIGHT, an
LSTM does first (``algo.name: recurrent_ppo``, ``algo.policy: MultiInputLstmPolicy``, ``algo.lstm_hidden_size``:
sb3-contrib's RecurrentPPO with this extractor in front of its LSTM).

Use it with ``algo.features: crowd_attention`` (``algo.features_kwargs`` for the sizes below).
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class CrowdAttentionExtractor(BaseFeaturesExtractor):
    """Robot, people and obstacles of the crowd env's Dict observation, into one feature vector.

    :param embed_dim: width of every embedding and attention layer.
    :param heads: attention heads (must divide ``embed_dim``).
    :param lidar_channels: channels of the lidar's convolutions (each halves the scan's length).
    :param use_obstacle_tokens: attend to the obstacle tokens too (always, when the env has no lidar).
    :param human_human: the person–person attention layer (off: people are embedded one by one, cheaper).
    :param lidar_wraps: the scan covers 360°, so its ends are neighbours (False for a narrower lidar_fov).
    """

    def __init__(self, observation_space: spaces.Dict, embed_dim: int = 64, heads: int = 4,
                 lidar_channels: tuple[int, ...] = (16, 32), use_obstacle_tokens: bool = False,
                 human_human: bool = True, lidar_wraps: bool = True) -> None:
        keys = set(observation_space.spaces)
        if not {"robot", "humans", "humans_mask"} <= keys:
            raise ValueError(f"crowd_attention reads the crowd env's observation (robot, humans, humans_mask); "
                             f"this env observes {sorted(keys)}")
        if embed_dim % heads:
            raise ValueError(f"crowd_attention: heads ({heads}) must divide embed_dim ({embed_dim})")
        has_lidar = "lidar" in keys
        tokens = "obstacles" in keys and (use_obstacle_tokens or not has_lidar)
        parts = 2 + has_lidar + tokens
        super().__init__(observation_space, features_dim=parts * embed_dim)
        robot_dim = observation_space["robot"].shape[0]
        human_dim = observation_space["humans"].shape[-1]
        self.robot = _mlp(robot_dim, embed_dim)
        self.human = _mlp(human_dim, embed_dim)
        self.nobody = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.human_human = nn.MultiheadAttention(embed_dim, heads, batch_first=True) if human_human else None
        self.norm = nn.LayerNorm(embed_dim)
        self.robot_human = nn.MultiheadAttention(embed_dim, heads, batch_first=True)
        self.lidar: nn.Module | None = None
        if has_lidar:
            self.lidar_scale = float(observation_space["lidar"].high.max())
            n_rays = observation_space["lidar"].shape[0]
            layers: list[nn.Module] = []
            channels = 1
            padding = "circular" if lidar_wraps else "zeros"
            for out in lidar_channels:
                layers += [nn.Conv1d(channels, out, 5, stride=2, padding=2, padding_mode=padding), nn.ReLU()]
                channels = out
            conv = nn.Sequential(*layers)
            with torch.no_grad():
                flat = conv(torch.zeros(1, 1, n_rays)).numel()
            self.lidar = nn.Sequential(conv, nn.Flatten(), nn.Linear(flat, embed_dim), nn.ReLU())
        self.obstacle: nn.Module | None = None
        if tokens:
            self.obstacle = _mlp(observation_space["obstacles"].shape[-1], embed_dim)
            self.no_obstacle = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.robot_obstacle = nn.MultiheadAttention(embed_dim, heads, batch_first=True)

    @property
    def reads_obstacle_tokens(self) -> bool:
        """Whether the obstacle tokens reach the features (with a lidar they are ignored unless asked for)."""
        return self.obstacle is not None

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        robot = self.robot(obs["robot"])
        query = robot[:, None]
        people = self.human(obs["humans"])
        hidden = _padding(obs["humans_mask"])
        if self.human_human is not None:
            keys, key_hidden = _with_token(self.nobody, people, hidden)
            mixed, _ = self.human_human(people, keys, keys, key_padding_mask=key_hidden, need_weights=False)
            people = self.norm(people + mixed)
        keys, key_hidden = _with_token(self.nobody, people, hidden)
        crowd, _ = self.robot_human(query, keys, keys, key_padding_mask=key_hidden, need_weights=False)
        parts = [robot, crowd[:, 0]]
        if self.lidar is not None:
            parts.append(self.lidar(obs["lidar"][:, None] / self.lidar_scale))
        if self.obstacle is not None:
            tokens, token_hidden = _with_token(self.no_obstacle, self.obstacle(obs["obstacles"]),
                                               _padding(obs["obstacles_mask"]))
            scene, _ = self.robot_obstacle(query, tokens, tokens, key_padding_mask=token_hidden, need_weights=False)
            parts.append(scene[:, 0])
        return torch.cat(parts, dim=1)


def _mlp(inputs: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())


def _padding(mask: torch.Tensor) -> torch.Tensor:
    """``key_padding_mask`` from an observation mask: True where a row is padding (not seen)."""
    return mask < 0.5


def _with_token(token: nn.Parameter, items: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``items`` with a learned token in front that is never hidden, and the matching padding mask."""
    batch = items.shape[0]
    keys = torch.cat([token.expand(batch, -1, -1), items], dim=1)
    return keys, torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=hidden.device), hidden], dim=1)
