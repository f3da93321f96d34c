"""The fast CPU mode of the CLIP reward (``precision: int8``), piece by piece and on the benchmark's frames.

The pieces are checked against the float modules they replace; the whole mode against the exact mode
on ViT-B-32 (random weights, nothing downloaded) and the same HumanoidPose-v0 frames that
``benchmarks/clip_reward.py`` times, where its largest reward difference must stay within 1e-3.
"""

import numpy as np
import open_clip
import pytest
import torch

from roboreward.envs.humanoid_pose import random_action_frames
from roboreward.rewards import ClipReward, ClipRewardConfig, RewardBatch
from roboreward.rewards.clip import ClassTokenBlock, class_token_only_last_block
from roboreward.rewards.clip_int8 import Int8Linear, Int8PatchEmbedding, Int8SelfAttention, is_patch_embedding


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out - ref).norm() / ref.norm())


@pytest.mark.parametrize("batch_first", [True, False])
def test_int8_attention_matches_multihead_attention(batch_first):
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(64, 4, batch_first=batch_first).eval()
    q8 = Int8SelfAttention(mha)
    x = torch.randn(3, 7, 64) if batch_first else torch.randn(7, 3, 64)
    causal = torch.triu(torch.ones(7, 7, dtype=torch.bool), diagonal=1)  # True = masked out, as MHA takes it
    additive = torch.zeros(7, 7).masked_fill(causal, float("-inf"))
    with torch.no_grad():
        for mask in (None, causal, additive):
            ref = mha(x, x, x, need_weights=False, attn_mask=mask)[0]
            out, weights = q8(x, x, x, need_weights=False, attn_mask=mask)
            assert weights is None and out.shape == ref.shape
            assert relative_error(out, ref) < 0.05
        other = torch.randn_like(x)  # cross-attention falls back to the float module, exactly
        cross = q8(x, other, other, need_weights=False)[0]
        torch.testing.assert_close(cross, mha(x, other, other, need_weights=False)[0])
    with pytest.raises(ValueError, match="need_weights=False"):
        q8(x, x, x)


def test_int8_linear_matches_the_float_layer():
    torch.manual_seed(1)
    linear = torch.nn.Linear(48, 40)
    x = torch.randn(2, 9, 48)
    with torch.no_grad():
        ref, out = linear(x), Int8Linear(linear.weight, linear.bias)(x)
    assert out.shape == ref.shape and relative_error(out, ref) < 0.03


@pytest.mark.parametrize("batch_first", [True, False])
def test_int8_attention_from_the_first_tokens_is_the_first_rows_of_the_full_attention(batch_first):
    torch.manual_seed(2)
    mha = torch.nn.MultiheadAttention(64, 4, batch_first=batch_first).eval()
    q8 = Int8SelfAttention(mha)
    x = torch.randn(3, 9, 64) if batch_first else torch.randn(9, 3, 64)
    mask = torch.zeros(9, 9, dtype=torch.bool)
    mask[:, -2:] = True  # the last two tokens are masked out as keys
    with torch.no_grad():
        for attn_mask in (None, mask):
            full = q8(x, x, x, need_weights=False, attn_mask=attn_mask)[0]
            first = q8(x, x, x, need_weights=False, attn_mask=attn_mask, query_tokens=2)[0]
            head = full[:, :2] if batch_first else full[:2]
            assert first.shape == head.shape
            # the same int8 q, k, v; only the output projection quantises fewer rows (its own scale)
            assert relative_error(first, head) < 0.05
            ref = mha(x, x, x, need_weights=False, attn_mask=attn_mask)[0]
            assert relative_error(first, ref[:, :2] if batch_first else ref[:2]) < 0.05
        with pytest.raises(ValueError, match="query_tokens needs self-attention"):
            q8(x, torch.randn_like(x), torch.randn_like(x), need_weights=False, query_tokens=1)


def test_int8_patch_embedding_is_the_convolution():
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(3, 48, kernel_size=8, stride=8, bias=False)
    embed = Int8PatchEmbedding(conv)
    for shape in [(2, 3, 32, 32), (1, 3, 40, 27)]:  # 27: the convolution drops the last 3 columns, so must it
        x = torch.randn(*shape)
        with torch.no_grad():
            ref, out = conv(x), embed(x)
        assert out.shape == ref.shape
        assert relative_error(out, ref) < 0.03
    assert is_patch_embedding(conv)
    assert not is_patch_embedding(torch.nn.Conv2d(3, 8, kernel_size=3, stride=1))  # overlapping windows
    assert not is_patch_embedding(torch.nn.Conv2d(3, 8, kernel_size=4, stride=4, padding=1))
    with pytest.raises(ValueError, match="stride = kernel"):
        Int8PatchEmbedding(torch.nn.Conv2d(3, 8, kernel_size=3))


@pytest.mark.parametrize("batch_first", [True, False])
def test_class_token_block_is_the_class_token_of_the_whole_block(batch_first):
    from open_clip.transformer import ResidualAttentionBlock

    torch.manual_seed(4)
    block = ResidualAttentionBlock(64, 4, batch_first=batch_first).eval()
    x = torch.randn(3, 10, 64) if batch_first else torch.randn(10, 3, 64)
    with torch.no_grad():
        full = block(x)
        cls = ClassTokenBlock(block, batch_first=batch_first)(x)
        block.attn = Int8SelfAttention(block.attn)
        cls8 = ClassTokenBlock(block, batch_first=batch_first)(x)
    head = full[:, :1] if batch_first else full[:1]
    assert cls.shape == head.shape
    torch.testing.assert_close(cls, head, rtol=0, atol=1e-5)  # float: the same numbers, fewer of them
    assert relative_error(cls8, head) < 0.05


def test_class_token_only_applies_where_the_tower_outputs_the_class_token_alone():
    torch.manual_seed(5)
    model = open_clip.create_model("ViT-S-32-alt", pretrained=None).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = model.visual(x)
        assert class_token_only_last_block(model.visual)
        assert isinstance(model.visual.transformer.resblocks[-1], ClassTokenBlock)
        torch.testing.assert_close(model.visual(x), ref, rtol=0, atol=1e-5)
    pooled = open_clip.create_model("ViT-S-32-alt", pretrained=None).visual
    pooled.pool_type = "avg"  # every token reaches the embedding: nothing to drop
    assert not class_token_only_last_block(pooled)
    assert not any(isinstance(b, ClassTokenBlock) for b in pooled.transformer.resblocks)


@pytest.mark.slow
def test_int8_rewards_of_the_benchmark_frames_are_within_1e3_of_exact():
    def build(precision: str) -> ClipReward:
        torch.manual_seed(0)  # the benchmark's random weights
        return ClipReward(ClipRewardConfig(
            model="ViT-B-32", weights="random", goal_prompts=["a humanoid robot kneeling"],
            baseline_prompts=["a humanoid robot"], batch_size=16, precision=precision, device="cpu",
        ))

    exact, fast = build("fp32"), build("int8")
    frames = random_action_frames(32, 224)
    r_exact, r_fast = exact(RewardBatch(frames=frames)), fast(RewardBatch(frames=frames))
    diff = np.abs(r_fast - r_exact)
    assert diff.max() <= 1e-3, f"int8 reward differs from exact by up to {diff.max():.1e}"
    assert diff.max() > 0  # int8 really ran
