"""VLM-RM's CLIP reward: how much a rendered frame looks like a sentence.

From "Vision-Language Models are Zero-Shot Reward Models for Reinforcement Learning" (Rocamonde et
al., ICLR 2024)::

    r(s) = 1 - ½‖P(x - g)‖²,    P = α·ddᵀ/‖d‖² + (1 - α)·I,    d = g - b

with ``x`` the unit CLIP embedding of the rendered frame, ``g`` the goal — the mean of the unit text
embeddings of ``goal_prompts`` ("a humanoid robot kneeling") — and ``b`` the baseline made the same
way from ``baseline_prompts`` ("a humanoid robot"). ``P`` is the goal-baseline regularisation: with
weight ``α`` it keeps only the part of ``x - g`` along the direction from the baseline to the goal,
dropping what the two prompts agree on (the robot, the floor, the lighting). ``α = 1`` scores only
the progress along ``d``; ``α = 0`` is a similarity to the goal, ``r = x·g + ½(1 - ‖g‖²)``: plain
cosine similarity where ``‖g‖ = 1``. The paper's code defaults to ``α = 0.5``.

Several prompts (``prompt_mean``). The mean of several unit embeddings is shorter than 1, and the
public VLM-RM code uses it as it is: ``vlmrm``, the default, does the same, so rewards reproduce the
paper's set-up (AlignmentResearch/vlmrm, ``src/vlmrm/reward_model.py``: ``CLIPReward.__init__`` takes
``target`` and ``baseline`` as the ``mean(dim=0)`` of the unit prompt embeddings and
``direction = target - baseline``; ``forward`` computes ``1 - ‖(x - target) @ projection‖² / 2``).
``renormalised`` scales each mean back to unit length, so ``g`` and ``b`` are directions like ``x``
(and ``α = 0`` is exactly cosine similarity). With one goal and one baseline prompt the two agree.
With several the rewards differ in value and, for ``α > 0``, in the direction ``d`` and so in how
they rank frames.

Weights are read from disk only; this module never downloads anything. ``pretrained`` names an
open_clip tag whose weights must already be in the open_clip / Hugging Face cache (download them once
on a machine with network access), ``checkpoint`` names a weights file, and ``weights: random``
builds an untrained model (tests only).

Frames are preprocessed as batched tensors on the model's device (no PIL): resize the shorter side to
the model's input size (bicubic, antialiased), center crop, normalise with the model's mean and std —
open_clip's eval transform, up to the rounding PIL does on uint8 images.

Precision (``precision``), exact and fast:

- ``fp32``: exact — the default on the CPU. Rewards equal the per-frame path to float rounding.
- ``fp16``: half-precision weights and activations — the default on CUDA.
- ``bf16``: the image tower in bfloat16. Fast on GPUs and on CPUs with native bf16 (AVX512-BF16, AMX);
  on CPUs without (e.g. AVX2-only) PyTorch emulates it and it runs several times *slower* than fp32
  (~8x on an AVX2 EPYC): a warning says so and points to ``int8``.
- ``int8`` (CPU only): the image tower's linear layers and patch embedding as dynamically quantised
  int8 GEMMs (:mod:`roboreward.rewards.clip_int8`). The fast mode on AVX2 CPUs;
  ``benchmarks/clip_reward.py`` prints its speed-up and its largest reward difference.

In every precision the last block of a ViT tower computes the class token only: the embedding is that
token, and the block's other tokens are only keys and values there. That is exact and skips ~6 % of
ViT-B-32's GEMMs (:func:`class_token_only_last_block`).

In every mode the prompt embeddings are computed in fp32 (``bf16`` and ``int8`` change only the image
tower), so the goal and baseline directions do not move with the precision.

Smoothing over recent frames and running normalisation of the reward (``smoothing_window``,
``normalize``) are applied by the reward wrappers, see :mod:`roboreward.rewards.postprocess`; and
``pipeline`` lets :class:`~roboreward.rewards.wrappers.VecLearnedReward` score the frames of the envs
that finished their step while the others still step and render (``env.vectorization: subproc`` or
``env.backend: ray``).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from roboreward.config import bounded
from roboreward.errors import CheckpointError, ConfigError, SetupError
from roboreward.rewards.base import RewardBatch, RewardConfig, RewardModel
from roboreward.rewards.clip_int8 import Int8SelfAttention, quantize_linear_layers_int8
from roboreward.rewards.postprocess import RewardPostprocessConfig


@RewardConfig.register_subclass("clip")
@dataclass(kw_only=True)
class ClipRewardConfig(RewardConfig, RewardPostprocessConfig):
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
        0.5, "goal-baseline projection: 0 = similarity to the goal, 1 = along goal - baseline", ge=0.0, le=1.0
    )
    prompt_mean: Literal["vlmrm", "renormalised"] = bounded(
        "vlmrm", "goal and baseline from several prompts: vlmrm = the mean of their unit embeddings, as the "
        "public VLM-RM code; renormalised = that mean scaled back to unit length"
    )
    batch_size: int = bounded(64, "frames per CLIP forward pass", ge=1)
    device: str = "auto"  # "auto" picks CUDA when present
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = bounded(
        "auto", "auto: fp16 on CUDA, fp32 (exact) on CPU; int8: the fast CPU mode; bf16: fast where the CPU has bf16"
    )

    def __post_init__(self) -> None:
        super().__post_init__()  # RewardPostprocessConfig's checks
        if not self.goal_prompts:
            raise ValueError(
                "goal_prompts is empty; describe the goal, e.g. reward.goal_prompts=['a robot arm touching a red dot']"
            )
        for key in ("goal_prompts", "baseline_prompts"):
            if any(not p.strip() for p in getattr(self, key)):
                raise ValueError(f"{key} holds an empty prompt; every prompt must be a non-empty sentence")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha={self.alpha} is out of range; it must be in [0, 1]")
        if self.prompt_mean not in ("vlmrm", "renormalised"):
            raise ValueError(f"prompt_mean={self.prompt_mean!r} is not allowed; choose 'vlmrm' or 'renormalised'")
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
        if precision == "int8" and self.device.type != "cpu":
            raise ConfigError(
                f"reward.precision=int8 runs on the CPU only (PyTorch's quantized CPU kernels); on {self.device.type} "
                "use fp16 (the default there) or bf16"
            )
        self.precision = precision
        self.input_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)

        # bf16 and int8 change the image tower only, after the prompts are embedded in fp32 (below).
        self.model = load_clip_model(config, self.device, precision if precision in ("fp32", "fp16") else "fp32")
        self.tokenizer = open_clip.get_tokenizer(config.model)
        cfg = clip_preprocess_config(self.model)
        self.image_size: tuple[int, int] = cfg["size"]
        self.resize_mode: str = cfg["resize_mode"]
        self.interpolation: str = cfg["interpolation"]
        self.fill_color: float = cfg["fill_color"]
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

        renormalise = config.prompt_mean == "renormalised"
        self.goal = prompt_embedding(self.embed_texts(config.goal_prompts), renormalise)
        self.baseline: np.ndarray | None = None
        if config.baseline_prompts:
            self.baseline = prompt_embedding(self.embed_texts(config.baseline_prompts), renormalise)
        self.projection = projection_matrix(self.goal, self.baseline, config.alpha)  # P: checked, kept to inspect
        if config.alpha > 0:
            d = self.goal.astype(np.float64) - self.baseline.astype(np.float64)
            self.direction = d / np.linalg.norm(d)  # u: the reward uses P through it (see reward_from_embeddings)

        if precision == "bf16":
            if self.device.type == "cpu" and not cpu_has_native_bf16():
                warnings.warn(
                    "reward.precision=bf16 on a CPU without native bf16 (no AVX512-BF16 or AMX): PyTorch emulates it "
                    "and CLIP runs several times slower than fp32; use reward.precision=int8 for the fast CPU mode",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.model.visual.to(torch.bfloat16)
        elif precision == "int8":
            quantize_linear_layers_int8(self.model.visual, patch_embedding=True)
        # Every precision: the embedding is the class token, so the last block computes that token only
        # (exact; ~6 % of ViT-B-32's GEMMs saved).
        class_token_only_last_block(self.model.visual)

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
        if len(frames) == 0:
            return np.zeros((0, len(self.goal)), dtype=np.float32)
        chunks = self._device_chunks(frames) if self.device.type == "cuda" else self._host_chunks(frames)
        embeddings = [F.normalize(self.model.encode_image(self.preprocess(c).to(self.input_dtype)).float(), dim=-1)
                      for c in chunks]
        return torch.cat(embeddings).cpu().numpy()  # one copy back, one synchronisation

    def _host_chunks(self, frames: np.ndarray) -> Iterator[torch.Tensor]:
        for start in range(0, len(frames), self.config.batch_size):
            chunk = np.ascontiguousarray(frames[start : start + self.config.batch_size])
            if not chunk.flags.writeable:  # torch warns on read-only arrays (e.g. broadcasts)
                chunk = chunk.copy()
            yield torch.from_numpy(chunk).to(self.device)

    def _device_chunks(self, frames: np.ndarray) -> Iterator[torch.Tensor]:
        """``batch_size`` chunks of ``frames`` on the GPU, each copied while the GPU still computes the one before.

        A copy from pageable numpy memory is synchronous and slow (it took as long as the ViT-B-32 forward
        itself on an H200). Instead the CPU stages chunk i+1 into one of two pinned buffers while the GPU
        runs chunk i, and a side stream copies it asynchronously; the compute stream waits on that copy
        only. A staging buffer is refilled only once its previous copy has finished.
        """
        shape = (self.config.batch_size, *frames.shape[1:])
        if getattr(self, "_staging", None) is None or self._staging[0].shape != shape:
            self._staging = [torch.empty(shape, dtype=torch.uint8).pin_memory() for _ in range(2)]
            self._copy_stream = torch.cuda.Stream(self.device)
            self._copied: list[torch.cuda.Event | None] = [None, None]
        compute = torch.cuda.current_stream(self.device)
        for i, start in enumerate(range(0, len(frames), self.config.batch_size)):
            chunk = frames[start : start + self.config.batch_size]
            slot, n = i % 2, len(chunk)
            if self._copied[slot] is not None:
                self._copied[slot].synchronize()  # the previous copy out of this buffer is done
            staged = self._staging[slot][:n]
            staged.copy_(torch.from_numpy(np.ascontiguousarray(chunk)) if chunk.flags.writeable
                         else torch.from_numpy(chunk.copy()))
            with torch.cuda.stream(self._copy_stream):
                on_device = staged.to(self.device, non_blocking=True)
                self._copied[slot] = torch.cuda.Event()
                self._copied[slot].record(self._copy_stream)
            compute.wait_event(self._copied[slot])
            on_device.record_stream(compute)  # allocated on the copy stream, used and freed on the compute stream
            yield on_device

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
        # With u = d/‖d‖ and s = u·v, ‖Pv‖² = (1 − (1 − α)²)·s² + (1 − α)²·‖v‖²: O(D) per frame instead of
        # the D×D product with P (which took as long as the ViT-B-32 forward on a GPU for large batches).
        diff = np.asarray(x, dtype=np.float64) - self.goal.astype(np.float64)
        keep = (1.0 - self.config.alpha) ** 2
        squared = keep * np.einsum("bd,bd->b", diff, diff)
        if self.config.alpha > 0:
            squared += (1.0 - keep) * np.square(diff @ self.direction)
        return (1.0 - 0.5 * squared).astype(np.float32)

    def compute(self, batch: RewardBatch) -> np.ndarray:
        if batch.frames is None:
            raise ValueError("the clip reward needs rendered frames; make the env with render_mode='rgb_array'")
        return self.reward_from_embeddings(self.embed_images(batch.frames))


# --------------------------------------------------------------------------------------------
# The math


def prompt_embedding(unit_embeddings: np.ndarray, renormalise: bool) -> np.ndarray:
    """The goal (or baseline) of several prompts' unit embeddings ``[N, D]``: ``float32 [D]``.

    Their mean, as it is (``prompt_mean: vlmrm``; shorter than 1 unless the prompts agree), or scaled to
    unit length (``renormalised``); see the module docstring.
    """
    mean = np.asarray(unit_embeddings, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-8:
        raise ConfigError("the prompts' embeddings cancel out (their mean is zero); use prompts that agree")
    return (mean / norm if renormalise else mean).astype(np.float32)


def projection_matrix(goal: np.ndarray, baseline: np.ndarray | None, alpha: float) -> np.ndarray:
    """``P = α·ddᵀ/‖d‖² + (1 - α)·I`` with ``d = goal - baseline``: ``float64 [D, D]``."""
    dim = len(goal)
    identity = np.eye(dim)
    if alpha == 0:
        return identity
    if baseline is None:
        raise ConfigError("alpha > 0 needs a baseline direction; set reward.baseline_prompts")
    d = goal.astype(np.float64) - baseline.astype(np.float64)
    norm2 = float(d @ d)
    if norm2 < 1e-12:
        raise ConfigError(
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
    return x.sub_(mean).div_(std)  # in place (x is this function's own float copy): no new tensors


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
# bf16 on the CPU


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX512-BF16 or AMX); otherwise bf16 is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
        return False


# --------------------------------------------------------------------------------------------
# The last block of the image tower: the class token only, in every precision


class ClassTokenBlock(torch.nn.Module):
    """The last block of a ViT whose output is its class token: computes that token only.

    The image embedding of a CLIP ViT (``pool_type: tok``) is the class token after the last block, and
    in that block the other tokens matter only as keys and values of the attention. So the attention
    attends from the class token alone, and the output projection and MLP run on one token per image
    instead of all of them (50 for ViT-B-32 at 224 px): ~6 % of the tower's GEMMs, the same result.
    Returns ``[B, 1, D]`` (``[1, B, D]`` when the transformer is not batch-first).
    """

    PARTS = ("ln_1", "attn", "ls_1", "ln_2", "mlp", "ls_2")

    def __init__(self, block: torch.nn.Module, batch_first: bool):
        super().__init__()
        for name in self.PARTS:  # the block's own modules under their own names: state_dict keys stay the same
            setattr(self, name, getattr(block, name))
        self.batch_first = batch_first

    def forward(self, q_x: torch.Tensor, k_x=None, v_x=None, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if k_x is not None or v_x is not None:
            raise ValueError("ClassTokenBlock is for self-attention blocks; it got separate keys or values")
        b = self
        y = b.ln_1(q_x)
        first = q_x[:, :1] if self.batch_first else q_x[:1]
        if isinstance(b.attn, Int8SelfAttention):
            attended = b.attn(y, y, y, need_weights=False, attn_mask=attn_mask, query_tokens=1)[0]
        else:
            query = y[:, :1] if self.batch_first else y[:1]
            mask = None if attn_mask is None else attn_mask[..., :1, :]
            attended = b.attn(query, y, y, need_weights=False, attn_mask=mask)[0]
        x = first + b.ls_1(attended)
        return x + b.ls_2(b.mlp(b.ln_2(x)))


def class_token_only_last_block(visual: torch.nn.Module) -> bool:
    """Replace, in place, the last block of an open_clip ViT image tower by its :class:`ClassTokenBlock`.

    Only where the tower's output is the class token alone (``pool_type == 'tok'``, no attention pooling,
    no token outputs) and the block is open_clip's plain residual attention block; returns whether it did.
    """
    transformer = getattr(visual, "transformer", None)
    blocks = getattr(transformer, "resblocks", None)
    if (
        getattr(visual, "pool_type", None) != "tok" or getattr(visual, "attn_pool", None) is not None
        or getattr(visual, "output_tokens", True) or not isinstance(blocks, torch.nn.ModuleList) or len(blocks) == 0
    ):
        return False
    last = blocks[-1]
    plain = {name for name, _ in last.named_children()} == set(ClassTokenBlock.PARTS)
    if not plain or not isinstance(last.attn, (torch.nn.MultiheadAttention, Int8SelfAttention)):
        return False
    blocks[-1] = ClassTokenBlock(last, batch_first=bool(getattr(transformer, "batch_first", True)))
    return True


# --------------------------------------------------------------------------------------------
# Weights, from disk only


def load_clip_model(config: ClipRewardConfig, device: torch.device, precision: str) -> torch.nn.Module:
    """Build ``config.model`` with the weights the config names; nothing is ever downloaded."""
    import open_clip

    models = open_clip.list_models()
    if config.model not in models:
        raise ConfigError(
            f"unknown CLIP model {config.model!r}; reward.model must be an open_clip architecture, one of {models}"
        )

    tag_cfg: dict[str, Any] = {}
    if config.weights == "pretrained" and config.pretrained is not None:
        tags = open_clip.list_pretrained_tags_by_model(config.model)
        if not open_clip.is_pretrained_cfg(config.model, config.pretrained):
            hint = f"choose one of {tags}" if tags else "open_clip has no tags for it; pass reward.checkpoint instead"
            if config.checkpoint is not None:
                hint += " (or reward.pretrained=null: load reward.checkpoint with the architecture's own preprocessing)"
            raise ConfigError(f"CLIP model {config.model!r} has no pretrained tag {config.pretrained!r}; {hint}")
        tag_cfg = open_clip.get_pretrained_cfg(config.model, config.pretrained)

    path: Path | None = None
    if config.weights == "pretrained":
        if config.checkpoint is not None:
            path = Path(config.checkpoint).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"reward.checkpoint {str(path)!r} does not exist; give a weights file (.pt, .bin or .safetensors) "
                    f"for CLIP {config.model!r}"
                )
        else:
            assert config.pretrained is not None  # checked by the config
            path, looked_in = find_cached_weights(tag_cfg)
            if path is None:
                raise SetupError(missing_weights_message(config.model, config.pretrained, looked_in))

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
            raise CheckpointError(f"the weights in {str(path)!r} do not fit CLIP {config.model!r}: {e}") from e
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
