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
from typing import Callable, ClassVar, Literal

import numpy as np

from roboreward.config import ChoiceConfig, bounded
from roboreward.errors import ConfigError, NonFiniteError
from roboreward.registry import Registered


@dataclass(kw_only=True)
class RewardConfig(ChoiceConfig):
    """Base of every reward model's config; ``type`` in YAML picks the subclass.

    ``server`` says where the model runs: ``local`` in the training process, ``ray`` in one Ray actor
    that scores the frames of every env (:mod:`roboreward.distributed.reward_server`), in calls of
    ``batch_size`` frames (null: each request in one call). ``pipeline`` scores the envs that have
    finished their step while the others still step (:class:`~roboreward.rewards.wrappers.VecLearnedReward`).
    """

    server: Literal["local", "ray"] = "local"
    batch_size: int | None = bounded(None, "frames per model call; null = all frames of a step in one call", ge=1)
    pipeline: bool = bounded(
        False, "score each env's frame as soon as its step arrives, while the others still step and render "
        "(needs env.vectorization: subproc or env.backend: ray)"
    )

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

    def __post_init__(self) -> None:
        if self.server != "local":
            raise ConfigError("reward.server: the env's own reward (type: env) is computed by each env, not by a "
                              "server; set reward.server: local or name a reward model")


@dataclass
class RewardBatch:
    """What a reward model may look at, for ``B`` transitions (the state reached after each step).

    :param frames: rendered frames ``uint8 [B, H, W, 3]``, or None for models that need none.
    :param observations: env observations ``[B, ...]`` (for an env with a ``Dict`` observation space, a dict of
        such arrays, one per key), or None.
    :param goal_frames: per-transition goal images ``uint8 [B, H, W, 3]`` for goal-conditioned envs
        (an env that can ``render_goal()``), or None.
    """

    frames: np.ndarray | None = None
    observations: np.ndarray | dict[str, np.ndarray] | None = None
    goal_frames: np.ndarray | None = None

    def __len__(self) -> int:
        for x in (self.frames, self.observations):
            if isinstance(x, dict):
                return len(next(iter(x.values())))
            if x is not None:
                return len(x)
        raise ValueError("a RewardBatch needs frames or observations")


class RewardModel(Registered, abc.ABC):
    """Scores batches of transitions. Subclasses declare ``name`` and ``config_class``."""

    kind = "reward model"
    config_class: ClassVar[type[RewardConfig]]
    requires_frames: ClassVar[bool] = True
    # Whether compute() takes frames held in Ray's object store (references, see stack_frames) and fetches
    # them itself: the reward server's client does, so rollout actors need not send frames to the learner.
    fetches_frames: ClassVar[bool] = False

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
        return self._checked(self.compute(batch), len(batch))

    def submit(self, batch: RewardBatch) -> Callable[[], np.ndarray]:
        """Start scoring ``batch``; the returned function gives its rewards. A model here scores at once;
        one in a server (:class:`~roboreward.distributed.reward_server.RemoteRewardModel`) returns while
        the server computes, so the caller can go on stepping envs."""
        rewards = self(batch)
        return lambda: rewards

    def _checked(self, rewards: np.ndarray, n: int) -> np.ndarray:
        rewards = np.asarray(rewards, dtype=np.float32)
        if rewards.shape != (n,):
            raise RuntimeError(f"{type(self).__name__}.compute returned shape {rewards.shape}, expected ({n},)")
        finite = np.isfinite(rewards)
        if not finite.all():  # one NaN in a replay buffer turns every loss NaN; stop at the first instead
            bad = rewards[~finite]
            raise NonFiniteError(
                f"reward model {self.name!r} returned {bad.size} non-finite reward(s) of {len(rewards)} (e.g. {bad[0]}); "
                "check the reward section of the config (scale, weights, checkpoint) and the frames it is given"
            )
        return rewards


def observation_at(observations, i: int):
    """Env ``i``'s observation in a vector env's batch (an array, or a dict of arrays for Dict spaces)."""
    if isinstance(observations, dict):
        return {key: value[i] for key, value in observations.items()}
    return observations[i]


def flat_observations(observations) -> np.ndarray:
    """A batch of observations as ``float32 [B, D]`` rows: an array's rows flattened, or a Dict batch's arrays
    flattened and joined key by key in sorted order (gymnasium's ``Dict`` order), the layout a dataset's
    ``observation.state`` holds for such an env (``demo_state``)."""
    if isinstance(observations, dict):
        parts = [np.asarray(observations[key], dtype=np.float32) for key in sorted(observations)]
        return np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1)
    array = np.asarray(observations, dtype=np.float32)
    return array.reshape(len(array), -1)


def stack_observations(observations: list):
    """Per-env observations as a batch ``[B, ...]``: one array, or a dict of arrays for Dict spaces."""
    if observations and isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack([np.asarray(o) for o in observations])


def stack_frames(frames: list) -> np.ndarray | list:
    """Per-env frames as a batch: one array, or the list itself when the frames are references to frames
    held elsewhere (Ray's object store, ``reward.server: ray``) for a model that fetches them."""
    if all(isinstance(f, np.ndarray) for f in frames):
        return np.stack(frames)
    return list(frames)


def make_reward_model(config: RewardConfig) -> RewardModel | None:
    """Build the model a config names, in this process; ``None`` for ``type: env`` (train on the env's own reward).

    ``reward.server`` is for training, which builds a ``ray`` model in a server actor instead
    (:func:`roboreward.distributed.reward_server.serve`); evaluation and diagnostics score here.
    """
    if isinstance(config, EnvRewardConfig):
        return None
    type(config).import_builtins()  # a config built in code may not have imported its model's module
    return RewardModel.build(config)
