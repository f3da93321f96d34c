"""Goal-image similarity in a pretrained feature space: the offline learned reward.

``r(s) = -scale * ½‖φ(x) - φ(g)‖² = scale * (cos(φ(x), φ(g)) - 1)``

with ``x`` the rendered frame of the state, ``g`` the goal image and ``φ`` unit-norm
EfficientNet-Lite0 features (:mod:`roboreward.rewards.features`). It is 0 when the frame looks like
the goal and negative elsewhere — the same form as VLM-RM's ``1 - ½‖x - g‖²`` with an image in
place of a sentence.

Where the goal image comes from (``goal_source``):

- ``env``: a goal-conditioned env renders its own goal each episode (``env.render_goal()``, e.g. the
  arm posed at the goal state); the reward wrappers pass it in :attr:`RewardBatch.goal_frames`.
- ``images``: fixed goal images from files — PNG/JPEG images, or ``.npy`` arrays ``[T, H, W, 3]`` of a
  demonstration's frames, of which the last ``demo_last_frames`` are used. Several goals are
  averaged in feature space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from roboreward.config import bounded
from roboreward.errors import ConfigError
from roboreward.rewards.base import RewardBatch, RewardConfig, RewardModel
from roboreward.rewards.features import FeatureSettings, feature_default, features_for


@RewardConfig.register_subclass("goal_image")
@dataclass(kw_only=True)
class GoalImageRewardConfig(RewardConfig, FeatureSettings):
    goal_source: Literal["env", "images"] = "env"
    goal_images: list[str] = field(default_factory=list)  # files, for goal_source: images
    demo_last_frames: int = bounded(5, "frames taken from the end of each .npy demonstration", ge=1)
    # Earlier blocks on a finer grid than the fitted rewards' features: they keep where the arm is,
    # which is what tells a frame from the goal image.
    blocks: int = feature_default("blocks", 6)
    grid: int = feature_default("grid", 4)
    scale: float = bounded(10.0, "reward = scale * (cosine similarity - 1)", gt=0)

    def __post_init__(self) -> None:
        if self.goal_source == "images" and not self.goal_images:
            raise ValueError("goal_source is 'images' but goal_images is empty; list image or .npy files")


class GoalImageReward(RewardModel):
    name = "goal_image"
    config_class = GoalImageRewardConfig

    def __init__(self, config: GoalImageRewardConfig):
        super().__init__(config)
        self.features = features_for(config)
        self._fixed_goal: np.ndarray | None = None
        if config.goal_source == "images":
            self.set_goal_images(load_goal_images(config.goal_images, config.demo_last_frames))

    def set_goal_images(self, images: np.ndarray) -> None:
        """Use these goal images (``uint8 [N, H, W, 3]``, averaged) for every transition."""
        goal = self.features(images).mean(axis=0)
        self._fixed_goal = goal / np.linalg.norm(goal)

    def compute(self, batch: RewardBatch) -> np.ndarray:
        if batch.frames is None:
            raise ValueError("the goal_image reward needs rendered frames; make the env with render_mode='rgb_array'")
        x = self.features(batch.frames)
        if self._fixed_goal is not None:
            g = self._fixed_goal[None, :]
        elif batch.goal_frames is not None:
            g = self.features(batch.goal_frames)
        else:
            raise ConfigError(
                "the goal_image reward has no goal: this env does not render goal images (no render_goal()); "
                "set reward.goal_source=images and reward.goal_images=[...] to give goal images"
            )
        return self.config.scale * ((x * g).sum(axis=1) - 1.0)


def load_goal_images(paths: list[str], demo_last_frames: int) -> np.ndarray:
    """Read goal images: image files as they are, ``.npy`` demonstrations by their last frames."""
    import imageio.v3 as iio

    images = []
    for p in map(Path, paths):
        if not p.is_file():
            raise ConfigError(f"goal image {str(p)!r} does not exist; give PNG/JPEG images or .npy frame arrays")
        if p.suffix == ".npy":
            frames = np.load(p, allow_pickle=False)
            if frames.ndim != 4 or frames.shape[-1] != 3:
                raise ConfigError(f"{p}: a demonstration must be uint8 [T, H, W, 3] frames, got shape {frames.shape}")
            images.extend(frames[-demo_last_frames:])
        else:
            images.append(iio.imread(p)[..., :3])
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ConfigError(f"goal images differ in size {sorted(shapes)}; render or resize them to one size")
    return np.stack(images).astype(np.uint8)
