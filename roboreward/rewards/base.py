"""The :class:`RewardModel` interface every learned reward implements, and its registry.

A reward model scores a *batch* of transitions at once: frames ``uint8 [B, H, W, 3]`` and/or
observations ``[B, ...]`` go in, ``float32 [B]`` comes out. Batching is the point: one call per
vectorised step lets a neural reward (CLIP, EfficientNet) run one forward pass for all envs.

Each model has a config dataclass registered under the same name, so an experiment file selects it
with ``reward.type: goal_image`` and :func:`make_reward_model` builds it::

    @RewardConfig.register_subclass("my_reward")
    @dataclass(kw_only=True)
    class MyRewardConfig(RewardConfig):
        scale: float = 1.0

    class MyReward(RewardModel):
        name = "my_reward"
        config_class = MyRewardConfig
        def compute(self, batch): ...
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from roboreward.config import ChoiceConfig
from roboreward.errors import NonFiniteError
from roboreward.registry import Registered


@dataclass(kw_only=True)
class RewardConfig(ChoiceConfig):
    """Base of every reward model's config; ``type`` in YAML picks the subclass."""

    builtin_modules: ClassVar[tuple[str, ...]] = (
        "roboreward.rewards.goal_image",
        "roboreward.rewards.clip",
        "roboreward.rewards.perceptual",
        "roboreward.rewards.progress",
    )


@RewardConfig.register_subclass("env")
@dataclass(kw_only=True)
class EnvRewardConfig(RewardConfig):
    """Train on the env's own reward: the baseline a learned reward is compared with."""


@dataclass
class RewardBatch:
    """What a reward model may look at, for ``B`` transitions (the state reached after each step).

    :param frames: rendered frames ``uint8 [B, H, W, 3]``, or None for models that need none.
    :param observations: env observations ``[B, ...]``, or None.
    :param goal_frames: per-transition goal images ``uint8 [B, H, W, 3]`` for goal-conditioned envs
        (an env that can ``render_goal()``), or None.
    """

    frames: np.ndarray | None = None
    observations: np.ndarray | None = None
    goal_frames: np.ndarray | None = None

    def __len__(self) -> int:
        for x in (self.frames, self.observations):
            if x is not None:
                return len(x)
        raise ValueError("a RewardBatch needs frames or observations")


class RewardModel(Registered, abc.ABC):
    """Scores batches of transitions. Subclasses declare ``name`` and ``config_class``."""

    kind = "reward model"
    config_class: ClassVar[type[RewardConfig]]
    requires_frames: ClassVar[bool] = True

    def __init__(self, config: RewardConfig):
        super().__init__(config)
        self.config: RewardConfig = config

    @abc.abstractmethod
    def compute(self, batch: RewardBatch) -> np.ndarray:
        """Return the rewards of the batch, ``float32 [B]``."""

    def check_ready(self) -> None:
        """Raise a :class:`~roboreward.errors.ConfigError` if the model cannot score yet (a model that is fitted
        from demonstrations but was given none). The reward wrappers call it when they are built, so a job
        stops before its envs start rather than at the first step."""

    def __call__(self, batch: RewardBatch) -> np.ndarray:
        rewards = np.asarray(self.compute(batch), dtype=np.float32)
        if rewards.shape != (len(batch),):
            raise RuntimeError(f"{type(self).__name__}.compute returned shape {rewards.shape}, expected ({len(batch)},)")
        finite = np.isfinite(rewards)
        if not finite.all():  # one NaN in a replay buffer turns every loss NaN; stop at the first instead
            bad = rewards[~finite]
            raise NonFiniteError(
                f"reward model {self.name!r} returned {bad.size} non-finite reward(s) of {len(rewards)} (e.g. {bad[0]}); "
                "check the reward section of the config (scale, weights, checkpoint) and the frames it is given"
            )
        return rewards


def make_reward_model(config: RewardConfig) -> RewardModel | None:
    """Build the model a config names; ``None`` for ``type: env`` (train on the env's own reward)."""
    if isinstance(config, EnvRewardConfig):
        return None
    type(config).import_builtins()  # a config built in code may not have imported its model's module
    return RewardModel.build(config)
