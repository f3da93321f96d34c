"""VLM-RM's CLIP reward: how much a rendered frame looks like a sentence.

From "Vision-Language Models are Zero-Shot Reward Models for Reinforcement Learning" (Rocamonde et
al., ICLR 2024)::

    r(s) = 1 - ½‖P(x - g)‖²,    P = α·ddᵀ/‖d‖² + (1 - α)·I,    d = g - b

with ``x`` the unit CLIP embedding of the rendered frame, ``g`` the goal — the mean of the unit text
embeddings of ``goal_prompts`` ("a humanoid robot kneeling"), renormalised — and ``b`` the baseline
made the same way from ``baseline_prompts`` ("a humanoid robot"). ``P`` is the goal-baseline
regularisation: with weight ``α`` it keeps only the part of ``x - g`` along the direction from the
baseline to the goal, dropping what the two prompts agree on (the robot, the floor, the lighting).
``α = 0`` is plain cosine similarity to the goal (``r = x·g``); ``α = 1`` scores only the progress
along ``d``. The paper's code defaults to ``α = 0.5``.

Weights are read from disk only; this module never downloads anything. ``pretrained`` names an
open_clip tag whose weights must already be in the open_clip / Hugging Face cache (download them once
on a machine with network access), ``checkpoint`` names a weights file, and ``weights: random``
builds an untrained model (tests only).

Frames are preprocessed as batched tensors on the model's device (no PIL): resize the shorter side to
the model's input size (bicubic, antialiased), center crop, normalise with the model's mean and std —
open_clip's eval transform, up to the rounding PIL does on uint8 images.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from roboreward.config import bounded
from roboreward.rewards.base import RewardBatch, RewardConfig, RewardModel


@RewardConfig.register_subclass("clip")
@dataclass(kw_only=True)
class ClipRewardConfig(RewardConfig):
    model: str = bounded("ViT-B-32", "open_clip architecture, one of open_clip.list_models()")
    pretrained: str | None = bounded(
        "laion2b_s34b_b79k", "open_clip pretrained tag; its weights must already be on disk (never downloaded)"
    )
    checkpoint: str | None = bounded(
        None, "local weights file for the architecture, loaded instead of the cache; a pretrained tag, if set, "
        "still picks the image normalisation and activation its weights were trained with"
    )
    weights: Literal["pretrained", "random"] = bounded(
        "pretrained", "random: an untrained model that ignores pretrained (for tests only)"
    )
    goal_prompts: list[str] = bounded([], "sentences describing the goal; their embeddings are averaged")
    baseline_prompts: list[str] = bounded([], "sentences describing the scene without the goal (needed when alpha > 0)")
    alpha: float = bounded(
        0.5, "goal-baseline projection: 0 = cosine similarity to the goal, 1 = along goal - baseline", ge=0.0, le=1.0
    )
    batch_size: int = bounded(64, "frames per CLIP forward pass", ge=1)
    device: str = "auto"  # "auto" picks CUDA when present
    precision: Literal["auto", "fp32", "fp16"] = bounded("auto", "auto: fp16 on CUDA, fp32 on CPU")

    def __post_init__(self) -> None:
        if not self.goal_prompts:
            raise ValueError(
                "goal_prompts is empty; describe the goal, e.g. reward.goal_prompts=['a robot arm touching a red dot']"
            )
        for key in ("goal_prompts", "baseline_prompts"):
            if any(not p.strip() for p in getattr(self, key)):
                raise ValueError(f"{key} holds an empty prompt; every prompt must be a non-empty sentence")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha} is out of range; it must be in [0, 1]")
        if self.alpha > 0 and not self.baseline_prompts:
            raise ValueError(
                f"alpha is {self.alpha} but baseline_prompts is empty; set reward.baseline_prompts=[...] to describe "
                "the scene without the goal (e.g. ['a robot arm']), or reward.alpha=0 for plain cosine similarity"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if self.weights == "pretrained" and self.pretrained is None and self.checkpoint is None:
            raise ValueError(
                "weights is 'pretrained' but neither reward.pretrained (an open_clip tag such as laion2b_s34b_b79k) "
                "nor reward.checkpoint (a weights file) is set"
            )
        if self.weights == "random" and self.checkpoint is not None:
            raise ValueError("weights is 'random' but reward.checkpoint is set; use weights: pretrained to load it")


class ClipReward(RewardModel):
    """The VLM-RM reward of each rendered frame: ``uint8 [B, H, W, 3]`` -> ``float32 [B]``.

    The prompt embeddings and the projection ``P`` are computed once, at construction.
    """

    name = "clip"
    config_class = ClipRewardConfig

    def __init__(self, config: ClipRewardConfig):
        super().__init__(config)
        import open_clip

        if config.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(config.device)
        precision = config.precision
        if precision == "auto":
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        self.precision = precision
        self.input_dtype = torch.float16 if precision == "fp16" else torch.float32

        self.model = load_clip_model(config, self.device, precision)
        self.tokenizer = open_clip.get_tokenizer(config.model)
        cfg = clip_preprocess_config(self.model)
        self.image_size: tuple[int, int] = cfg["size"]
        self.resize_mode: str = cfg["resize_mode"]
        self.interpolation: str = cfg["interpolation"]
        self.fill_color: float = cfg["fill_color"]
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

        self.goal = mean_direction(self.embed_texts(config.goal_prompts))
        self.baseline = mean_direction(self.embed_texts(config.baseline_prompts)) if config.baseline_prompts else None
        self.projection = projection_matrix(self.goal, self.baseline, config.alpha)

    # ----------------------------------------------------------------------------------------
    # Embeddings

    @torch.inference_mode()
    def embed_texts(self, prompts: Sequence[str]) -> np.ndarray:
        """Unit CLIP text embeddings ``float32 [N, D]`` of the prompts."""
        tokens = self.tokenizer(list(prompts)).to(self.device)
        emb = self.model.encode_text(tokens).float()
        return F.normalize(emb, dim=-1).cpu().numpy()

    @torch.inference_mode()
    def embed_images(self, frames: np.ndarray) -> np.ndarray:
        """Unit CLIP image embeddings ``float32 [B, D]`` of ``uint8 [B, H, W, 3]`` frames, ``batch_size`` at a time."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [B, H, W, 3]; got {frames.dtype} {frames.shape}")
        chunks = []
        for start in range(0, len(frames), self.config.batch_size):
            chunk = np.ascontiguousarray(frames[start : start + self.config.batch_size])
            if not chunk.flags.writeable:  # torch warns on read-only arrays (e.g. broadcasts)
                chunk = chunk.copy()
            chunk = torch.from_numpy(chunk)
            pixels = self.preprocess(chunk.to(self.device))
            emb = self.model.encode_image(pixels.to(self.input_dtype)).float()
            chunks.append(F.normalize(emb, dim=-1).cpu())
        if not chunks:
            return np.zeros((0, len(self.goal)), dtype=np.float32)
        return torch.cat(chunks).numpy()

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, H, W, 3]`` -> the model's normalised input ``float32 [B, 3, h, w]``."""
        return preprocess_frames(
            frames,
            self.image_size,
            self.mean,
            self.std,
            resize_mode=self.resize_mode,
            interpolation=self.interpolation,
            fill_color=self.fill_color,
        )

    # ----------------------------------------------------------------------------------------
    # Reward

    def reward_from_embeddings(self, x: np.ndarray) -> np.ndarray:
        """``1 - ½‖P(x - g)‖²`` for unit image embeddings ``x [B, D]``; ``float32 [B]``."""
        diff = np.asarray(x, dtype=np.float64) - self.goal.astype(np.float64)
        projected = diff @ self.projection  # P is symmetric, so rows of diff @ P are P(x - g)
        return (1.0 - 0.5 * np.square(projected).sum(axis=-1)).astype(np.float32)

    def compute(self, batch: RewardBatch) -> np.ndarray:
        if batch.frames is None:
            raise ValueError("the clip reward needs rendered frames; make the env with render_mode='rgb_array'")
        return self.reward_from_embeddings(self.embed_images(batch.frames))


# --------------------------------------------------------------------------------------------
# The math


def mean_direction(unit_embeddings: np.ndarray) -> np.ndarray:
    """The mean of unit embeddings ``[N, D]``, renormalised to unit length: ``float32 [D]``."""
    mean = np.asarray(unit_embeddings, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-8:
        raise ValueError("the prompts' embeddings cancel out (their mean is zero); use prompts that agree")
    return (mean / norm).astype(np.float32)


def projection_matrix(goal: np.ndarray, baseline: np.ndarray | None, alpha: float) -> np.ndarray:
    """``P = α·ddᵀ/‖d‖² + (1 - α)·I`` with ``d = goal - baseline``: ``float64 [D, D]``."""
    dim = len(goal)
    identity = np.eye(dim)
    if alpha == 0:
        return identity
    if baseline is None:
        raise ValueError("alpha > 0 needs a baseline direction; set reward.baseline_prompts")
    d = goal.astype(np.float64) - baseline.astype(np.float64)
    norm2 = float(d @ d)
    if norm2 < 1e-12:
        raise ValueError(
            "the goal and baseline prompts embed to the same direction, so goal - baseline is zero; "
            "make reward.baseline_prompts describe the scene without the goal, or set reward.alpha=0"
        )
    return alpha * np.outer(d, d) / norm2 + (1.0 - alpha) * identity


# --------------------------------------------------------------------------------------------
# Preprocessing


def preprocess_frames(
    frames: torch.Tensor,
    size: tuple[int, int],
    mean: torch.Tensor,
    std: torch.Tensor,
    resize_mode: str = "shortest",
    interpolation: str = "bicubic",
    fill_color: float = 0,
) -> torch.Tensor:
    """Batched open_clip eval transform: ``uint8 [B, H, W, 3]`` -> ``float32 [B, 3, *size]``, normalised.

    ``resize_mode`` as open_clip's: ``shortest`` resizes so the image covers ``size`` then center-crops,
    ``squash`` resizes to ``size`` ignoring the aspect ratio, ``longest`` fits the image inside ``size``
    and pads with ``fill_color``.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [B, H, W, 3]; got {frames.dtype} {tuple(frames.shape)}")
    th, tw = size
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    mode = interpolation if interpolation in ("bilinear", "bicubic") else "bicubic"

    def resize(img: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        if (out_h, out_w) == tuple(img.shape[-2:]):
            return img
        out = F.interpolate(img, size=(out_h, out_w), mode=mode, antialias=True, align_corners=False)
        return out.clamp_(0.0, 1.0)  # bicubic overshoots; PIL clamps to uint8

    if resize_mode == "squash":
        x = resize(x, th, tw)
    elif resize_mode == "longest":
        scale = min(th / h, tw / w)
        nh, nw = min(th, max(1, round(h * scale))), min(tw, max(1, round(w * scale)))
        x = resize(x, nh, nw)
        top, left = (th - nh) // 2, (tw - nw) // 2
        x = F.pad(x, (left, tw - nw - left, top, th - nh - top), value=fill_color / 255.0)
    elif resize_mode == "shortest":
        if th == tw:  # torchvision's Resize(int): the shorter side becomes the size, the longer is truncated
            short, long = min(h, w), max(h, w)
            new_long = int(th * long / short)
            nh, nw = (th, new_long) if h <= w else (new_long, tw)
        else:
            scale = max(th / h, tw / w)
            nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        x = resize(x, nh, nw)
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        x = x[..., top : top + th, left : left + tw]
    else:
        raise ValueError(f"resize_mode {resize_mode!r} is not supported; expected shortest, squash or longest")
    return (x - mean) / std


def clip_preprocess_config(model: torch.nn.Module) -> dict[str, Any]:
    """The model's image preprocessing (size as ``(h, w)``, mean, std, ...), with open_clip's defaults."""
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    visual = getattr(model, "visual", model)
    cfg = dict(getattr(visual, "preprocess_cfg", None) or {})
    size = cfg.get("size") or getattr(visual, "image_size", None) or 224
    if isinstance(size, int):
        size = (size, size)
    return {
        "size": (int(size[-2]), int(size[-1])),
        "mean": tuple(cfg.get("mean") or getattr(visual, "image_mean", None) or OPENAI_DATASET_MEAN),
        "std": tuple(cfg.get("std") or getattr(visual, "image_std", None) or OPENAI_DATASET_STD),
        "interpolation": cfg.get("interpolation") or "bicubic",
        "resize_mode": cfg.get("resize_mode") or "shortest",
        "fill_color": cfg.get("fill_color") or 0,
    }


# --------------------------------------------------------------------------------------------
# Weights, from disk only


def load_clip_model(config: ClipRewardConfig, device: torch.device, precision: str) -> torch.nn.Module:
    """Build ``config.model`` with the weights the config names; nothing is ever downloaded."""
    import open_clip

    models = open_clip.list_models()
    if config.model not in models:
        raise ValueError(
            f"unknown CLIP model {config.model!r}; reward.model must be an open_clip architecture, one of {models}"
        )

    tag_cfg: dict[str, Any] = {}
    if config.weights == "pretrained" and config.pretrained is not None:
        tags = open_clip.list_pretrained_tags_by_model(config.model)
        if not open_clip.is_pretrained_cfg(config.model, config.pretrained):
            hint = f"choose one of {tags}" if tags else "open_clip has no tags for it; pass reward.checkpoint instead"
            if config.checkpoint is not None:
                hint += " (or reward.pretrained=null: load reward.checkpoint with the architecture's own preprocessing)"
            raise ValueError(f"CLIP model {config.model!r} has no pretrained tag {config.pretrained!r}; {hint}")
        tag_cfg = open_clip.get_pretrained_cfg(config.model, config.pretrained)

    path: Path | None = None
    if config.weights == "pretrained":
        if config.checkpoint is not None:
            path = Path(config.checkpoint).expanduser()
            if not path.is_file():
                raise FileNotFoundError(
                    f"reward.checkpoint {str(path)!r} does not exist; give a weights file (.pt, .bin or .safetensors) "
                    f"for CLIP {config.model!r}"
                )
        else:
            assert config.pretrained is not None  # checked by the config
            path, looked_in = find_cached_weights(tag_cfg)
            if path is None:
                raise FileNotFoundError(missing_weights_message(config.model, config.pretrained, looked_in))

    # The tag decides the image normalisation and the activation its weights were trained with.
    overlay = {k: v for k, v in tag_cfg.items() if k in ("mean", "std", "interpolation", "resize_mode", "fill_color")}
    with _quiet_random_init_warning(path is not None):
        model = open_clip.create_model(
            config.model,
            pretrained=None,  # weights are loaded below, from a local file only
            precision=precision,
            device=device,
            pretrained_text=False,  # no base text-tower weights from the Hugging Face hub
            force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=overlay or None,
        )
    if path is not None:
        try:
            open_clip.load_checkpoint(model, str(path), weights_only=True)
        except RuntimeError as e:
            raise RuntimeError(f"the weights in {str(path)!r} do not fit CLIP {config.model!r}: {e}") from e
    return model.eval().requires_grad_(False)


def find_cached_weights(tag_cfg: dict[str, Any]) -> tuple[Path | None, list[str]]:
    """Where open_clip would have saved a tag's weights, if they are there: ``(path or None, places looked in)``.

    Looks in the Hugging Face hub cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``) for tags on the hub
    and in ``~/.cache/clip`` for tags given by URL, reading the environment now. Never touches the network.
    """
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    looked_in: list[str] = []
    if tag_cfg.get("file"):
        looked_in.append(str(tag_cfg["file"]))
        if Path(tag_cfg["file"]).is_file():
            return Path(tag_cfg["file"]), looked_in
    hf_hub = tag_cfg.get("hf_hub") or ""
    if hf_hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - open_clip installs it
            try_to_load_from_cache = None
        repo_id, filename = os.path.split(hf_hub)
        filename = filename or HF_WEIGHTS_NAME
        candidates = [filename]
        if filename == HF_WEIGHTS_NAME:
            candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
        elif filename.endswith((".bin", ".pth")):
            candidates.insert(0, filename[:-4] + ".safetensors")
        cache = _hf_hub_cache()
        looked_in.append(f"{cache} (Hugging Face hub cache, repo {repo_id})")
        if try_to_load_from_cache is not None:
            for name in candidates:
                found = try_to_load_from_cache(repo_id, name, cache_dir=cache)
                if isinstance(found, str) and os.path.isfile(found):
                    return Path(found), looked_in
    url = tag_cfg.get("url") or ""
    if url:
        target = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        looked_in.append(str(target))
        if target.is_file():
            return target, looked_in
    return None, looked_in


def missing_weights_message(model: str, tag: str, looked_in: list[str]) -> str:
    return (
        f"the weights of CLIP {model!r} with pretrained tag {tag!r} are not on this machine, and roboreward never "
        "downloads them. Either download them once on a machine with network access (they go to the Hugging Face "
        "cache, HF_HOME, default ~/.cache/huggingface; copy it here):\n"
        f"    python -c \"import open_clip; open_clip.create_model('{model}', pretrained='{tag}')\"\n"
        "or pass a weights file with reward.checkpoint=/path/to/weights (.bin, .safetensors or .pt). "
        f"Looked in: {looked_in}"
    )


def _hf_hub_cache() -> str:
    """The Hugging Face hub cache directory, from the environment as it is now (as huggingface_hub resolves it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.path.expandvars(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return os.path.expanduser(os.path.expandvars(os.environ["HUGGINGFACE_HUB_CACHE"]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return os.path.join(os.path.expanduser(os.path.expandvars(home)), "hub")


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextmanager
def _quiet_random_init_warning(active: bool) -> Iterator[None]:
    """open_clip warns that the model is random before we load the weights into it; drop that line."""
    if not active:
        yield
        return
    root = logging.getLogger()
    filt = _DropRandomInitWarning()
    root.addFilter(filt)
    try:
        yield
    finally:
        root.removeFilter(filt)
