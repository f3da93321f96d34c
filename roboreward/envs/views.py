"""Several cameras in one frame: the views side by side, and an env wrapper that renders them so.

A :class:`~roboreward.rewards.RewardBatch` carries one frame per transition, so multi-view reward
models (``roboreward.rewards.progress``) receive their views *tiled side by side*, ``[B, H, V·W, 3]``,
cameras in the model's order. An experiment file asks for that with ``env.render.cameras: [corner3,
topview]`` and :func:`~roboreward.envs.make.make_env` wraps the env in :class:`MultiViewRender`.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np

from roboreward.errors import ConfigError


def tile_views(views: Sequence[np.ndarray]) -> np.ndarray:
    """Views ``uint8 [..., H, W, 3]`` (one per camera, equal shapes) side by side: ``[..., H, V·W, 3]``."""
    views = [np.asarray(v) for v in views]
    if not views:
        raise ValueError("tile_views needs at least one view")
    if len({v.shape for v in views}) != 1:
        raise ValueError(f"views must have one shape to be tiled; got {[v.shape for v in views]}")
    return np.concatenate(views, axis=-2)


def split_views(frames: np.ndarray, views: int) -> list[np.ndarray]:
    """Undo :func:`tile_views`: ``[..., H, V·W, 3]`` -> ``V`` arrays ``[..., H, W, 3]``."""
    width = frames.shape[-2]
    if views < 1 or width % views:
        raise ValueError(f"a frame {width} pixels wide cannot hold {views} views of equal width")
    return np.split(frames, views, axis=-2)


class MultiViewRender(gym.Wrapper):
    """``render()`` returns several cameras side by side (:func:`tile_views`), for multi-view reward models.

    The env must offer ``render_cameras(cameras) -> {camera: frame}`` (the Meta-World envs do); the
    views have the env's render size and options. :class:`~roboreward.rewards.wrappers.RenderInInfo`
    around this wrapper puts the tiled frame into ``info["frame"]``.

    :param env: an env made with ``render_mode="rgb_array"``.
    :param cameras: camera names, in the order a model reads them.
    """

    def __init__(self, env: gym.Env, cameras: Sequence[str]):
        super().__init__(env)
        self.cameras = list(cameras)
        if not self.cameras:
            raise ValueError("MultiViewRender needs at least one camera")
        if not callable(getattr(env.unwrapped, "render_cameras", None)):
            name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            raise ConfigError(
                f"{name} cannot render several cameras (no render_cameras method); "
                "multi-view frames (env.render.cameras) need a Meta-World env"
            )
        if env.render_mode != "rgb_array":
            raise ValueError("make the env with render_mode='rgb_array' to render several cameras")
        env.unwrapped.render_cameras(self.cameras)  # unknown cameras fail here, with the env's own message

    def render(self) -> np.ndarray:
        frames = self.env.unwrapped.render_cameras(self.cameras)
        return tile_views([frames[c] for c in self.cameras])
