"""The VLM-RM CLIP reward, on untrained open_clip models: no weights are downloaded, ever.

Most tests use ``roboreward-test-tiny``, an open_clip CLIP registered here through open_clip's own
``add_model_config``: the real CLIP classes and tokenizer, 2 layers of width 64 in each tower and a
32x32 input, so it builds and runs in milliseconds. One test runs the smallest built-in architecture,
``ViT-S-32-alt`` (43M parameters, 224x224 input), end to end.
"""

import functools
import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from roboreward.config import from_dict
from roboreward.errors import ConfigError, SetupError
from roboreward.rewards import ClipReward, ClipRewardConfig, RewardBatch, RewardConfig, make_reward_model
from roboreward.rewards.clip import ClassTokenBlock, find_cached_weights, preprocess_frames
from roboreward.rewards.clip_int8 import Int8Linear, Int8PatchEmbedding, Int8SelfAttention

ARCH = "roboreward-test-tiny"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
BUILTIN = "ViT-S-32-alt"  # the smallest built-in open_clip architecture
GOAL = ["a robot arm touching a red dot", "the gripper is on the red target"]
BASELINE = ["a robot arm", "a robot arm on a table"]


@pytest.fixture(scope="module", autouse=True)
def tiny_architecture(tmp_path_factory):
    path = tmp_path_factory.mktemp("open_clip_configs") / f"{ARCH}.json"
    path.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(path)
    assert ARCH in open_clip.list_models()


def config(**overrides) -> ClipRewardConfig:
    kwargs = dict(model=ARCH, weights="random", goal_prompts=GOAL, baseline_prompts=BASELINE)
    return ClipRewardConfig(**{**kwargs, **overrides})


def build(seed: int = 0, **overrides) -> ClipReward:
    torch.manual_seed(seed)
    return ClipReward(config(**overrides))


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def frames(n: int, h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def reward() -> ClipReward:
    return build()


def reference_reward(x: np.ndarray, g: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """The paper's formula, written out: 1 - ½‖P(x - g)‖² with P = α ddᵀ/‖d‖² + (1 - α) I."""
    x, g, b = (np.asarray(v, dtype=np.float64) for v in (x, g, b))
    d = g - b
    P = alpha * np.outer(d, d) / (d @ d) + (1 - alpha) * np.eye(len(g))
    return np.array([1 - 0.5 * np.sum((P @ (xi - g)) ** 2) for xi in x])


@functools.cache
def tokenizer():
    return open_clip.get_tokenizer(ARCH)


def unit_text_embeddings(model: ClipReward, prompts: list[str]) -> torch.Tensor:
    """The prompts' unit text embeddings, computed independently: tokenizer and text tower straight from open_clip."""
    tokens = tokenizer()(prompts)
    with torch.no_grad():
        emb = model.model.encode_text(tokens).double()
    return emb / emb.norm(dim=-1, keepdim=True)


def prompt_means(model: ClipReward, prompt_mean: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Goal and baseline ``[1, D]``: the mean of the prompts' unit embeddings, scaled to unit length if renormalised."""
    target = unit_text_embeddings(model, GOAL).mean(dim=0, keepdim=True)
    baseline = unit_text_embeddings(model, BASELINE).mean(dim=0, keepdim=True)
    if prompt_mean == "renormalised":
        target, baseline = target / target.norm(), baseline / baseline.norm()
    return target, baseline


def vlmrm_reward(model: ClipReward, x: np.ndarray, alpha: float, prompt_mean: str) -> np.ndarray:
    """The reward as the public VLM-RM code computes it (``src/vlmrm/reward_model.py``, ``CLIPReward``), in torch:
    ``direction = target - baseline``, ``projection = α·dᵀd/‖d‖² + (1 - α)·I``,
    ``r = 1 - ‖(x - target) @ projection‖² / 2`` for unit image embeddings ``x``."""
    target, baseline = prompt_means(model, prompt_mean)
    direction = target - baseline
    identity = torch.eye(direction.shape[1], dtype=torch.float64)
    projection = alpha * direction.T @ direction / torch.norm(direction) ** 2 + (1 - alpha) * identity
    x = torch.as_tensor(x, dtype=torch.float64)
    return (1 - torch.norm((x - target) @ projection, dim=-1) ** 2 / 2).numpy()


@pytest.mark.parametrize("prompt_mean", ["vlmrm", "renormalised"])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_reward_is_the_vlm_rm_formula_with_several_prompts(alpha, prompt_mean):
    model = build(seed=1, alpha=alpha, prompt_mean=prompt_mean)
    batch = frames(3, seed=2)
    r = model(RewardBatch(frames=batch))
    x = model.embed_images(batch).astype(np.float64)
    np.testing.assert_allclose(r, vlmrm_reward(model, x, alpha, prompt_mean), rtol=0, atol=1e-5)
    g, b = (v[0].numpy() for v in prompt_means(model, prompt_mean))
    if alpha == 0:  # a similarity to the goal: x·g + ½(1 - ‖g‖²), plain cosine similarity once renormalised
        np.testing.assert_allclose(r, x @ g + 0.5 * (1 - g @ g), rtol=0, atol=1e-5)
        if prompt_mean == "renormalised":
            np.testing.assert_allclose(r, x @ g, rtol=0, atol=1e-5)
    if alpha == 1:  # only the component of x - g along d = g - b counts
        d_hat = unit(g - b)
        np.testing.assert_allclose(r, 1 - 0.5 * ((x - g) @ d_hat) ** 2, rtol=0, atol=1e-5)


def test_prompt_means_differ_with_several_prompts_and_agree_with_one():
    x = build(seed=1).embed_images(frames(4, seed=9)).astype(np.float64)
    for alpha, least_difference in ((0.0, 0.1), (0.5, 0.02), (1.0, 0.0)):
        vlmrm, renormalised = (build(seed=1, alpha=alpha, prompt_mean=m) for m in ("vlmrm", "renormalised"))
        r_vlmrm, r_renormalised = vlmrm.reward_from_embeddings(x), renormalised.reward_from_embeddings(x)
        assert np.abs(r_vlmrm - r_renormalised).max() > least_difference, alpha
        if alpha == 1.0:  # d itself differs, so the two can order the same frames differently
            assert (np.argsort(r_vlmrm) != np.argsort(r_renormalised)).any()
    # two different prompts: their mean is shorter than 1, and renormalising is the only difference
    assert np.linalg.norm(vlmrm.goal) < 0.99 and np.linalg.norm(vlmrm.baseline) < 0.999
    np.testing.assert_allclose(renormalised.goal, unit(vlmrm.goal), atol=1e-6)
    np.testing.assert_allclose(renormalised.baseline, unit(vlmrm.baseline), atol=1e-6)

    one = {"goal_prompts": GOAL[:1], "baseline_prompts": BASELINE[:1]}
    vlmrm, renormalised = (build(seed=1, prompt_mean=m, **one) for m in ("vlmrm", "renormalised"))
    np.testing.assert_allclose(vlmrm.goal, vlmrm.embed_texts(GOAL[:1])[0], atol=1e-6)  # its own unit embedding
    np.testing.assert_allclose(vlmrm.goal, renormalised.goal, atol=1e-6)
    np.testing.assert_allclose(vlmrm.reward_from_embeddings(x), renormalised.reward_from_embeddings(x), atol=1e-6)


def test_prompt_mean_defaults_to_the_public_code_and_bad_choices_are_listed(reward):
    assert reward.config.prompt_mean == "vlmrm"
    np.testing.assert_allclose(reward.goal, prompt_means(reward, "vlmrm")[0][0].numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match=r"prompt_mean.*choose one of \['vlmrm', 'renormalised'\]"):
        from_dict(RewardConfig, {"type": "clip", "goal_prompts": GOAL, "prompt_mean": "normalised", "alpha": 0})
    with pytest.raises(ValueError, match="prompt_mean='normalised' is not allowed; choose 'vlmrm' or 'renormalised'"):
        config(prompt_mean="normalised")  # built in Python, past from_dict's check


def test_alpha_zero_needs_no_baseline_and_exact_math_on_given_embeddings(reward):
    x = unit(np.random.default_rng(3).normal(size=(4, len(reward.goal))))
    for prompt_mean in ("vlmrm", "renormalised"):
        similarity = build(alpha=0.0, baseline_prompts=[], prompt_mean=prompt_mean)
        assert similarity.baseline is None
        g = similarity.goal.astype(np.float64)
        np.testing.assert_allclose(similarity.reward_from_embeddings(x), x @ g + 0.5 * (1 - g @ g), rtol=0, atol=1e-6)
    np.testing.assert_allclose(similarity.reward_from_embeddings(x), x @ similarity.goal, rtol=0, atol=1e-6)  # cosine
    np.testing.assert_allclose(
        reward.reward_from_embeddings(x), reference_reward(x, reward.goal, reward.baseline, 0.5), rtol=0, atol=1e-6
    )
    # the goal itself scores the maximum, 1, for every alpha
    assert reward.reward_from_embeddings(reward.goal[None])[0] == pytest.approx(1.0, abs=1e-6)


def test_output_is_float32_per_frame_and_embeddings_are_unit(reward):
    batch = frames(4)
    r = reward(RewardBatch(frames=batch))
    assert r.dtype == np.float32 and r.shape == (4,)
    assert np.all(np.isfinite(r)) and np.all(r <= 1.0 + 1e-6)
    x = reward.embed_images(batch)
    assert x.dtype == np.float32 and x.shape == (4, len(reward.goal))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_batched_equals_one_by_one_and_chunks_are_invisible(reward, monkeypatch):
    batch = frames(5, seed=4)
    whole = reward(RewardBatch(frames=batch))
    single = np.array([reward(RewardBatch(frames=f[None]))[0] for f in batch])
    np.testing.assert_allclose(whole, single, rtol=0, atol=1e-5)

    sizes = []
    encode = reward.model.encode_image
    monkeypatch.setattr(reward.model, "encode_image", lambda x: sizes.append(len(x)) or encode(x))
    monkeypatch.setattr(reward.config, "batch_size", 2)
    chunked = reward(RewardBatch(frames=batch))
    assert sizes == [2, 2, 1]
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)


def test_smallest_builtin_architecture_end_to_end():
    torch.manual_seed(0)
    model = ClipReward(config(model=BUILTIN, batch_size=1))
    assert model.image_size == (224, 224) and model.goal.shape == (256,)
    batch = frames(2, h=96, w=128, seed=7)
    r = model(RewardBatch(frames=batch))
    assert r.dtype == np.float32 and r.shape == (2,)
    x = model.embed_images(batch)
    np.testing.assert_allclose(r, reference_reward(x, model.goal, model.baseline, 0.5), rtol=0, atol=1e-5)


@pytest.mark.parametrize("h, w", [(64, 64), (96, 128), (128, 96), (32, 32), (224, 224)])
def test_frames_of_any_size_become_the_model_input_like_open_clips_transform(reward, h, w):
    rng = np.random.default_rng(h * w)
    coarse = rng.integers(0, 256, size=(h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    image = np.array(Image.fromarray(coarse).resize((w, h), Image.NEAREST))
    assert reward.image_size == (32, 32)
    for size, mine in [
        (32, reward.preprocess(torch.from_numpy(np.stack([image, image])))),  # the model's own input size
        (224, preprocess_frames(torch.from_numpy(image[None]), (224, 224), reward.mean, reward.std)),  # ViT-B-32's
    ]:
        assert mine.shape[1:] == (3, size, size) and mine.dtype == torch.float32
        # open_clip's own eval transform (PIL) as the reference; PIL's and torch's bicubic kernels differ slightly
        reference = open_clip.image_transform(size, is_train=False)(Image.fromarray(image))
        diff = (mine[0] - reference).abs()
        assert float(diff.mean()) < 0.01 and float(diff.max()) < 0.5, (size, float(diff.mean()), float(diff.max()))
        if (h, w) == (size, size):  # no resize at all: identical
            assert float(diff.max()) < 1e-5


def test_a_flat_frame_normalises_to_its_colour_with_the_model_mean_and_std(reward):
    colour = np.array([200, 100, 30], dtype=np.uint8)
    frame = np.broadcast_to(colour, (1, 96, 128, 3)).copy()
    out = reward.preprocess(torch.from_numpy(frame))
    mean, std = np.array(open_clip.OPENAI_DATASET_MEAN), np.array(open_clip.OPENAI_DATASET_STD)
    expected = (colour / 255.0 - mean) / std
    np.testing.assert_allclose(out[0].mean(dim=(1, 2)).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(out[0].std(dim=(1, 2)).numpy(), 0.0, atol=1e-5)
    squash = preprocess_frames(
        torch.from_numpy(frame), (32, 48), reward.mean, reward.std, resize_mode="squash"
    )  # other resize modes keep the requested size too
    letterbox = preprocess_frames(torch.from_numpy(frame), (64, 64), reward.mean, reward.std, resize_mode="longest")
    assert squash.shape == (1, 3, 32, 48) and letterbox.shape == (1, 3, 64, 64)


def test_fp16_weights_give_nearly_the_fp32_rewards():
    """The precision CUDA gets by default ("auto"), run here on the CPU: the input is cast to the weights."""
    batch = frames(3, seed=8)
    fp32, fp16 = build(seed=3, precision="fp32"), build(seed=3, precision="fp16")
    assert fp16.precision == "fp16" and fp16.model.visual.conv1.weight.dtype == torch.float16
    r16 = fp16(RewardBatch(frames=batch))
    assert r16.dtype == np.float32
    np.testing.assert_allclose(r16, fp32(RewardBatch(frames=batch)), rtol=0, atol=5e-3)


def test_prompt_embeddings_are_computed_once(reward, monkeypatch):
    batch = frames(3, seed=5)
    first = reward(RewardBatch(frames=batch))
    goal, projection = reward.goal.copy(), reward.projection.copy()

    def no_text(*args, **kwargs):
        raise AssertionError("the text tower ran during compute; prompt embeddings must be cached")

    monkeypatch.setattr(reward.model, "encode_text", no_text)
    second = reward(RewardBatch(frames=batch))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(reward.goal, goal)
    np.testing.assert_array_equal(reward.projection, projection)


def test_checkpoint_file_loads_and_gives_identical_rewards(reward, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(reward.model.state_dict(), path)
    loaded = ClipReward(config(weights="pretrained", pretrained=None, checkpoint=str(path)))
    assert loaded.model is not reward.model
    batch = frames(3, h=96, w=128, seed=6)
    np.testing.assert_array_equal(loaded.goal, reward.goal)
    np.testing.assert_allclose(loaded(RewardBatch(frames=batch)), reward(RewardBatch(frames=batch)), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="reward.checkpoint .*missing.pt' does not exist"):
        ClipReward(config(weights="pretrained", pretrained=None, checkpoint=str(tmp_path / "missing.pt")))


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Offline, with empty Hugging Face and open_clip caches: nothing can be found or fetched."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # ~/.cache/clip, open_clip's URL download cache
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_missing_pretrained_weights_say_how_to_provide_them(empty_caches):
    cfg = ClipRewardConfig(
        model="ViT-B-32", pretrained="laion2b_s34b_b79k", goal_prompts=GOAL, baseline_prompts=BASELINE
    )
    with pytest.raises(SetupError) as info:
        ClipReward(cfg)
    message = str(info.value)
    assert "'ViT-B-32'" in message and "'laion2b_s34b_b79k'" in message
    assert "open_clip.create_model('ViT-B-32', pretrained='laion2b_s34b_b79k')" in message
    assert "reward.checkpoint=" in message
    assert str(empty_caches / "hf" / "hub") in message  # where it looked


def test_weights_in_the_hugging_face_cache_are_found_without_network(empty_caches, monkeypatch):
    tag_cfg = open_clip.get_pretrained_cfg("ViT-B-32", "laion2b_s34b_b79k")
    repo = tag_cfg["hf_hub"].rstrip("/")
    repo_dir = empty_caches / "hf" / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"")
    path, _ = find_cached_weights(tag_cfg)
    assert path == snapshot / "open_clip_model.safetensors"
    monkeypatch.setenv("HF_HUB_CACHE", str(empty_caches / "elsewhere"))  # HF_HUB_CACHE wins over HF_HOME
    assert find_cached_weights(tag_cfg)[0] is None


def test_unknown_model_or_tag_lists_the_choices():
    with pytest.raises(ValueError, match="unknown CLIP model 'ViT-Tiny-9000'.*ViT-B-32"):
        ClipReward(config(model="ViT-Tiny-9000"))
    with pytest.raises(ValueError, match="'ViT-B-32' has no pretrained tag 'laion9b'.*laion2b_s34b_b79k"):
        ClipReward(config(model="ViT-B-32", weights="pretrained", pretrained="laion9b"))
    with pytest.raises(ValueError, match="no tags for it; pass reward.checkpoint"):
        ClipReward(config(weights="pretrained", pretrained="laion2b_s34b_b79k"))
    with pytest.raises(ValueError, match="or reward.pretrained=null"):
        ClipReward(config(weights="pretrained", pretrained="laion2b_s34b_b79k", checkpoint="w.pt"))


def test_config_errors_say_what_to_set():
    base = {"type": "clip", "goal_prompts": GOAL, "baseline_prompts": BASELINE}
    assert isinstance(from_dict(RewardConfig, base), ClipRewardConfig)
    with pytest.raises(ConfigError, match=r"alpha: 1.5 is too large; it must be <= 1.0"):
        from_dict(RewardConfig, {**base, "alpha": 1.5})
    with pytest.raises(ConfigError, match=r"alpha: -0.1 is too small; it must be >= 0.0"):
        from_dict(RewardConfig, {**base, "alpha": -0.1})
    with pytest.raises(ConfigError, match=r"baseline_prompts is empty; set reward.baseline_prompts=\[\.\.\.\]"):
        from_dict(RewardConfig, {**base, "baseline_prompts": []})
    assert from_dict(RewardConfig, {**base, "baseline_prompts": [], "alpha": 0}).alpha == 0.0
    with pytest.raises(ConfigError, match="goal_prompts is empty"):
        from_dict(RewardConfig, {"type": "clip", "baseline_prompts": BASELINE})
    with pytest.raises(ConfigError, match="neither reward.pretrained .* nor reward.checkpoint"):
        from_dict(RewardConfig, {**base, "pretrained": None})
    with pytest.raises(ConfigError, match="choose one of \\['pretrained', 'random'\\]"):
        from_dict(RewardConfig, {**base, "weights": "imagenet"})
    with pytest.raises(ConfigError, match="batch_size: 0 is too small"):
        from_dict(RewardConfig, {**base, "batch_size": 0})


def test_missing_frames_and_bad_frames_are_clear(reward):
    with pytest.raises(ValueError, match="the clip reward needs rendered frames"):
        reward(RewardBatch(observations=np.zeros((2, 4))))
    with pytest.raises(ValueError, match=r"frames must be uint8 \[B, H, W, 3\]"):
        reward(RewardBatch(frames=np.zeros((2, 64, 64, 3), dtype=np.float32)))


def test_make_reward_model_builds_clip_by_type():
    torch.manual_seed(0)
    cfg = from_dict(
        RewardConfig,
        {"type": "clip", "model": ARCH, "weights": "random", "goal_prompts": GOAL[:1], "alpha": 0.0, "batch_size": 8},
    )
    model = make_reward_model(cfg)
    assert isinstance(model, ClipReward) and model.device.type in ("cpu", "cuda")
    assert model.precision == ("fp16" if model.device.type == "cuda" else "fp32")


# ------------------------------------------------------------------------------------------------
# Exact and fast modes


def test_exact_mode_batched_rewards_equal_the_per_frame_path():
    model = build(seed=4, precision="fp32")
    batch = frames(6, h=48, w=40, seed=11)
    whole = model(RewardBatch(frames=batch))
    one_by_one = np.concatenate([model(RewardBatch(frames=f[None])) for f in batch])
    np.testing.assert_allclose(whole, one_by_one, rtol=0, atol=1e-5)


def test_int8_mode_quantises_the_image_tower_only_and_stays_close_to_exact():
    batch = frames(5, seed=9)
    exact, fast = build(seed=5, precision="fp32"), build(seed=5, precision="int8")
    assert fast.precision == "int8" and fast.input_dtype == torch.float32
    blocks = list(fast.model.visual.transformer.resblocks)
    assert isinstance(blocks[-1], ClassTokenBlock)  # the last block computes the class token only
    assert all(isinstance(b.attn, Int8SelfAttention) and isinstance(b.mlp.c_fc, Int8Linear) for b in blocks)
    assert isinstance(fast.model.visual.conv1, Int8PatchEmbedding)
    assert isinstance(exact.model.visual.conv1, torch.nn.Conv2d)  # the exact mode stays in fp32
    assert isinstance(exact.model.visual.transformer.resblocks[-1], ClassTokenBlock)  # every mode: exact saving
    assert not any(isinstance(m, (Int8Linear, Int8SelfAttention)) for m in exact.model.modules())
    assert not any(isinstance(m, (Int8Linear, Int8SelfAttention)) for m in fast.model.transformer.modules())  # text
    np.testing.assert_array_equal(fast.goal, exact.goal)  # prompts are embedded in fp32 before quantising
    np.testing.assert_array_equal(fast.projection, exact.projection)
    r_exact, r_fast = exact(RewardBatch(frames=batch)), fast(RewardBatch(frames=batch))
    assert r_fast.dtype == np.float32
    np.testing.assert_allclose(r_fast, r_exact, rtol=0, atol=5e-3)
    x_exact, x_fast = exact.embed_images(batch), fast.embed_images(batch)
    assert np.min(np.sum(x_exact * x_fast, axis=1)) > 0.99  # cosine between the two embeddings of each frame


def test_bf16_mode_casts_the_image_tower_and_stays_close_to_exact():
    from roboreward.rewards.clip import cpu_has_native_bf16

    batch = frames(3, seed=10)
    exact = build(seed=6, precision="fp32")
    if cpu_has_native_bf16():
        fast = build(seed=6, precision="bf16")
    else:
        with pytest.warns(RuntimeWarning, match="without native bf16.*precision=int8"):
            fast = build(seed=6, precision="bf16")
    assert fast.model.visual.conv1.weight.dtype == torch.bfloat16
    assert fast.model.transformer.resblocks[0].mlp.c_fc.weight.dtype == torch.float32  # text tower untouched
    np.testing.assert_array_equal(fast.goal, exact.goal)
    np.testing.assert_allclose(fast(RewardBatch(frames=batch)), exact(RewardBatch(frames=batch)), rtol=0, atol=2e-2)


def test_int8_is_refused_off_the_cpu_and_precision_choices_are_listed():
    with pytest.raises(ValueError, match="precision=int8 runs on the CPU only"):
        ClipReward(config(precision="int8", device="cuda"))
    base = {"type": "clip", "goal_prompts": GOAL, "baseline_prompts": BASELINE}
    with pytest.raises(ConfigError, match=r"choose one of \['auto', 'fp32', 'fp16', 'bf16', 'int8'\]"):
        from_dict(RewardConfig, {**base, "precision": "int4"})
