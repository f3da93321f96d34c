"""The fast CPU mode of the CLIP reward (``precision: int8``): an image tower of int8 GEMMs.

:func:`quantize_linear_layers_int8` replaces, in place, every linear layer of the image tower
(attention projections, MLPs) and the patch embedding (a convolution whose stride is its kernel: one
GEMM on the patches) by a dynamically quantised int8 GEMM (oneDNN): weights int8 per output channel,
activations quantised per call to 7 bits (``reduce_range``: AVX2's u8 x s8 pair sums stay within
int16; with 8 bits they saturate), and attention is one fused ``scaled_dot_product_attention``. It
is the fast mode on AVX2 CPUs; ``benchmarks/clip_reward.py`` prints its speed-up and its largest
reward difference from the exact mode. Layer norms, other convolutions and a ViT's final projection
matrix stay in float.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


class Int8Linear(torch.nn.Module):
    """``y = x Wᵀ + b`` as a dynamically quantised int8 GEMM (PyTorch's oneDNN kernels, else fbgemm).

    Weights are int8 with one scale per output channel, fixed at construction; each call quantises its
    input to 7-bit unsigned integers with one scale and zero point for the whole input
    (``reduce_range``, so that the pair sums of AVX2's u8 x s8 instruction cannot saturate int16), and
    the int32 result is scaled back to float and the float bias added. The weights are packed for
    oneDNN where PyTorch has it (~10% faster than fbgemm on ViT-B-32's shapes on an AVX2 CPU); the
    packed weights carry their kernels, so the process-wide ``torch.backends.quantized.engine`` is
    left as it was.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        w = weight.detach().float().cpu().contiguous()
        self.in_features, self.out_features = w.shape[1], w.shape[0]
        scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
        engine = torch.backends.quantized.engine
        with warnings.catch_warnings():  # the quantized tensor API warns that it will move to torchao
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(w, scale, torch.zeros_like(scale, dtype=torch.long), 0, torch.qint8)
            try:
                if "onednn" in torch.backends.quantized.supported_engines:
                    torch.backends.quantized.engine = "onednn"
                bias = None if bias is None else bias.detach().float().cpu()
                self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
            finally:
                torch.backends.quantized.engine = engine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x.float(), self._packed, True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Int8SelfAttention(torch.nn.Module):
    """An ``nn.MultiheadAttention`` in inference with its input and output projections in int8.

    Takes the module's call signature (``need_weights`` must be False, as open_clip calls it); the
    attention itself (softmax of ``q kᵀ``) stays in float, in one ``scaled_dot_product_attention``.
    Cross-attention (``query`` not ``key``) falls back to the original float module.
    """

    def __init__(self, mha: torch.nn.MultiheadAttention):
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.in_proj_weight is None:
            raise ValueError("Int8SelfAttention needs an nn.MultiheadAttention with one packed qkv projection")
        self.num_heads = mha.num_heads
        self.batch_first = mha.batch_first
        self.in_proj = Int8Linear(mha.in_proj_weight, mha.in_proj_bias)
        self.out_proj = Int8Linear(mha.out_proj.weight, mha.out_proj.bias)
        self.float_module = mha

    def forward(
        self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
        query_tokens: int | None = None, **kwargs,
    ):
        """As ``nn.MultiheadAttention``; ``query_tokens=n`` attends from the first ``n`` tokens only.

        The output then holds those ``n`` tokens (the class token of a ViT's last block, see
        :class:`~roboreward.rewards.clip.ClassTokenBlock`); the keys and values are still all the tokens.
        """
        if not (query is key and key is value) or key_padding_mask is not None or kwargs.get("is_causal"):
            if query_tokens is not None:
                raise ValueError("query_tokens needs self-attention (query is key is value) without key_padding_mask")
            return self.float_module(
                query, key, value,
                key_padding_mask=key_padding_mask, need_weights=need_weights, attn_mask=attn_mask, **kwargs,
            )
        if need_weights:
            raise ValueError("the int8 attention does not return attention weights; call it with need_weights=False")
        x = query if self.batch_first else query.transpose(0, 1)
        batch, tokens, dim = x.shape
        qkv = self.in_proj(x).view(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [batch, heads, tokens, head_dim]; strided views, as SDPA takes them
        if query_tokens is not None:
            q = q[:, :, :query_tokens]
        mask = attn_mask
        if mask is not None:
            if mask.dim() == 3:  # [batch * heads, L, S]
                mask = mask.view(batch, self.num_heads, *mask.shape[-2:])
            if query_tokens is not None:
                mask = mask[..., :query_tokens, :]
            if mask.dtype == torch.bool:
                mask = ~mask  # MHA masks out where True, scaled_dot_product_attention attends where True
        # One fused kernel (scores, softmax, weighted sum) instead of matmul, softmax, matmul and their copies.
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = self.out_proj(out.transpose(1, 2).reshape(batch, q.shape[2], dim))
        return (out if self.batch_first else out.transpose(0, 1)), None


class Int8PatchEmbedding(torch.nn.Module):
    """A ViT's patch embedding (a convolution whose stride is its kernel) as one int8 GEMM on the patches.

    Non-overlapping patches are a reshape of the image, so the convolution is ``[B·N, C·p·p] x [C·p·p, D]``;
    it runs as an :class:`Int8Linear` and returns the convolution's ``[B, D, H/p, W/p]`` (a view, no copy).
    """

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        if not is_patch_embedding(conv):
            raise ValueError(
                f"Int8PatchEmbedding needs a Conv2d with stride = kernel, no padding, dilation or groups; got {conv}"
            )
        self.patch = tuple(conv.kernel_size)
        self.out_channels = conv.out_channels
        self.linear = Int8Linear(conv.weight.reshape(conv.out_channels, -1), conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, h, w = x.shape
        (ph, pw), (gh, gw) = self.patch, (x.shape[2] // self.patch[0], x.shape[3] // self.patch[1])
        x = x[:, :, : gh * ph, : gw * pw]  # what the convolution covers
        patches = x.reshape(batch, channels, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5).reshape(batch, gh * gw, -1)
        return self.linear(patches).transpose(1, 2).view(batch, self.out_channels, gh, gw)


def is_patch_embedding(module: torch.nn.Module) -> bool:
    return (
        isinstance(module, torch.nn.Conv2d) and tuple(module.stride) == tuple(module.kernel_size)
        and tuple(module.dilation) == (1, 1) and module.groups == 1 and module.padding in ((0, 0), 0, "valid")
    )


def quantize_linear_layers_int8(module: torch.nn.Module, patch_embedding: bool = False) -> int:
    """Replace, in place, every ``nn.Linear`` and self-attention block under ``module`` by its int8 version.

    With ``patch_embedding``, convolutions whose stride is their kernel (a ViT's patch embedding) become
    :class:`Int8PatchEmbedding` too. Returns how many modules were replaced. Other convolutions, layer
    norms and a ViT's final projection matrix (a parameter, not a module) stay in float.
    """
    replaced = 0
    for name, child in module.named_children():
        if isinstance(child, torch.nn.MultiheadAttention) and child._qkv_same_embed_dim:
            setattr(module, name, Int8SelfAttention(child))
            replaced += 1
        elif isinstance(child, torch.nn.Linear):
            setattr(module, name, Int8Linear(child.weight, child.bias))
            replaced += 1
        elif patch_embedding and is_patch_embedding(child):
            setattr(module, name, Int8PatchEmbedding(child))
            replaced += 1
        else:
            replaced += quantize_linear_layers_int8(child, patch_embedding)
    return replaced


__all__ = ["Int8Linear", "Int8PatchEmbedding", "Int8SelfAttention", "is_patch_embedding", "quantize_linear_layers_int8"]
