"""CLIP reward throughput on the CPU, in one run: forward, exact and fast reward paths, PIL, env steps/s.

Prints, for ViT-B-32 at 224 px on batches of ``--batch`` real HumanoidPose-v0 frames:

- the bare fp32 forward (``encode_image`` on already-preprocessed tensors), frames/s;
- the exact reward path (``precision: fp32``: uint8 frames -> batched tensor preprocessing ->
  forward -> reward), frames/s and its ratio to the bare forward (goal: within 5%), and the largest
  difference from scoring the frames one at a time (goal: <= 1e-5);
- a naive per-frame path with open_clip's own PIL preprocessing transform, for comparison;
- the fast modes, ``int8`` and ``bf16``, frames/s, ratio to exact (goal: >= 1.8x) and their largest
  reward difference from exact (goal: <= 1e-3);
- env steps/s on HumanoidPose-v0 with ``--n-envs`` subprocess envs rendering 224x224 frames: render
  only, reward only, render and reward one after the other, and pipelined
  (``VecLearnedReward(pipeline=True)``), with the ideal figures 1/(1/render + 1/reward) and
  min(render, reward).

The CLIP has RANDOM weights (``weights: random``; nothing is downloaded): a forward pass costs the
same whatever the weight values, so the timings hold for trained weights. The reward *differences*
are measured on these random weights only; with trained weights they cannot be measured offline here.
Timed sections alternate (bare, exact, fast, ...) round by round and report the best and the median
round; ratios are the median of the ratios within a round, so that load from other processes on a
shared machine hits both sides of a ratio alike.

    python benchmarks/clip_reward.py [--model ViT-B-32] [--batch 16] [--rounds 6] [--n-envs 4] [--env-steps 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import platform
import statistics
import time
import warnings

import numpy as np
import torch

from _vec_timing import RenderOnly, vec_steps_per_second

from roboreward.envs.humanoid_pose import random_action_frames
from roboreward.envs.make import make_vec_env
from roboreward.experiment import EnvConfig, RenderConfig
from roboreward.rewards import ClipReward, ClipRewardConfig, RewardBatch
from roboreward.rewards.clip import cpu_has_native_bf16
from roboreward.rewards.clip_int8 import Int8Linear

GOAL, BASELINE = ["a humanoid robot kneeling"], ["a humanoid robot"]


def build(args, precision: str) -> ClipReward:
    torch.manual_seed(0)  # the same random weights in every mode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 on a CPU without it: reported below instead
        return ClipReward(ClipRewardConfig(
            model=args.model, weights="random", goal_prompts=GOAL, baseline_prompts=BASELINE,
            batch_size=args.batch, precision=precision, device="cpu",
        ))


def interleaved(modes: dict, rounds: int) -> dict[str, list[float]]:
    """frames/s of each ``(function, frames per call)`` in ``modes``, timed round-robin ``rounds`` times."""
    rates: dict[str, list[float]] = {name: [] for name in modes}
    for fn, _ in modes.values():  # warm-up: first-call allocations, oneDNN/fbgemm kernel selection
        fn()
    for _ in range(rounds):
        for name, (fn, frames) in modes.items():
            start = time.perf_counter()
            fn()
            rates[name].append(frames / (time.perf_counter() - start))
    return rates


def gemm_shapes(model: ClipReward, pixels: torch.Tensor) -> list[tuple[int, int, int]]:
    """``(M, K, N)`` of every int8 GEMM one forward of ``model`` (``precision: int8``) runs on ``pixels``."""
    shapes: list[tuple[int, int, int]] = []
    hooks = [m.register_forward_hook(lambda m, args, out: shapes.append((args[0].numel() // m.in_features,
                                                                          m.in_features, m.out_features)))
             for m in model.model.visual.modules() if isinstance(m, Int8Linear)]
    with torch.inference_mode():
        model.model.encode_image(pixels)
    for hook in hooks:
        hook.remove()
    return shapes


def gemm_ceiling(shapes: list[tuple[int, int, int]], rounds: int) -> float:
    """fp32 GEMM time / int8 GEMM time over ``shapes``, timed alone: the ceiling of any int8 mode's speed-up.

    An int8 model runs ``int8 GEMMs + everything else``, the fp32 model ``fp32 GEMMs + the same rest``,
    so its ratio to fp32 cannot exceed this one. Median of same-round ratios, like the other figures.
    """
    torch.manual_seed(0)
    cases = []
    for m, k, n in shapes:
        x, weight, bias = torch.randn(m, k), torch.randn(n, k) * k**-0.5, torch.zeros(n)
        cases.append((x, weight, bias, Int8Linear(weight, bias)))

    @torch.inference_mode()
    def fp32() -> None:
        for x, weight, bias, _ in cases:
            torch.nn.functional.linear(x, weight, bias)

    @torch.inference_mode()
    def int8() -> None:
        for x, _, _, linear in cases:
            linear(x)

    rates = interleaved({"fp32": (fp32, 1), "int8": (int8, 1)}, rounds)
    return statistics.median(a / b for a, b in zip(rates["int8"], rates["fp32"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture (random weights)")
    parser.add_argument("--batch", type=int, default=16, help="frames per reward call")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per mode")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--env-steps", type=int, default=12, help="timed vector steps per env configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the CPU count)")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(args.threads or cpus)
    multiprocessing.set_forkserver_preload(["gymnasium", "roboreward.envs", "roboreward.rewards.wrappers"])

    exact, int8, bf16 = build(args, "fp32"), build(args, "int8"), build(args, "bf16")
    size = exact.image_size[0]
    print(f"CLIP {args.model} with RANDOM weights (weights: random; nothing downloaded) - timings do not depend on "
          f"the weight values; reward differences are for these random weights only")
    print(f"machine: {cpus} CPUs ({platform.processor() or platform.machine()}, torch CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_native_bf16()}), "
          f"torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} at start")

    frames = random_action_frames(2 * args.batch, size)
    batches = [frames[: args.batch], frames[args.batch :]]
    print(f"frames: {len(frames)} HumanoidPose-v0 (kneeling) renders at {size}x{size}, batches of {args.batch}\n")

    # ---------------------------------------------------------------- frames/s of the reward paths
    pixels = [exact.preprocess(torch.from_numpy(b)) for b in batches]
    turn = {"i": 0}

    def next_index() -> int:
        turn["i"] = (turn["i"] + 1) % 2
        return turn["i"]

    @torch.inference_mode()
    def bare() -> None:
        exact.model.encode_image(pixels[next_index()])

    import open_clip
    from PIL import Image

    pil_transform = open_clip.image_transform(size, is_train=False)

    @torch.inference_mode()
    def per_frame_pil(batch: np.ndarray) -> np.ndarray:
        out = []
        for frame in batch:
            x = pil_transform(Image.fromarray(frame))[None]
            out.append(torch.nn.functional.normalize(exact.model.encode_image(x), dim=-1)[0].numpy())
        return exact.reward_from_embeddings(np.stack(out))

    modes = {
        "bare fp32 forward (preprocessed tensors)": (bare, args.batch),
        "exact reward (fp32)": (lambda: exact(RewardBatch(frames=batches[next_index()])), args.batch),
        "fast reward (int8)": (lambda: int8(RewardBatch(frames=batches[next_index()])), args.batch),
        "naive per-frame PIL path (fp32)": (
            lambda: per_frame_pil(batches[next_index()][: args.batch // 2]), args.batch // 2  # half: it is slow
        ),
    }
    rates = interleaved(modes, args.rounds)
    bf16_frames = args.batch if cpu_has_native_bf16() else max(2, args.batch // 4)  # emulated bf16 is very slow
    bf16_rates = interleaved({"bf16": (lambda: bf16(RewardBatch(frames=batches[0][:bf16_frames])), bf16_frames)},
                             args.rounds if cpu_has_native_bf16() else 1)["bf16"]
    rates["fast reward (bf16)"] = bf16_rates

    best = {k: max(v) for k, v in rates.items()}
    median = {k: statistics.median(v) for k, v in rates.items()}

    def ratio(a: str, b: str) -> float:
        """Median over rounds of a's rate / b's rate in the same round (bf16: one round, over b's median)."""
        if len(rates[a]) != len(rates[b]):
            return median[a] / median[b]
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    r_exact = exact(RewardBatch(frames=frames))
    r_single = np.concatenate([exact(RewardBatch(frames=f[None])) for f in frames])
    r_pil = np.concatenate([per_frame_pil(b) for b in batches])
    r_int8 = int8(RewardBatch(frames=frames))
    r_bf16 = bf16(RewardBatch(frames=frames[:bf16_frames]))
    bare_name, exact_name, int8_name, bf16_name, pil_name = (
        "bare fp32 forward (preprocessed tensors)", "exact reward (fp32)", "fast reward (int8)", "fast reward (bf16)",
        "naive per-frame PIL path (fp32)",
    )
    notes = {
        bare_name: "reference",
        exact_name: (f"{ratio(exact_name, bare_name):.3f}x bare; "
                     f"max |r - per-frame r| {np.abs(r_exact - r_single).max():.1e}"),
        pil_name: f"{ratio(pil_name, exact_name):.3f}x exact; max |r - exact| {np.abs(r_pil - r_exact).max():.1e}",
        int8_name: f"{ratio(int8_name, exact_name):.2f}x exact; max |r - exact| {np.abs(r_int8 - r_exact).max():.1e}",
        bf16_name: (f"{ratio(bf16_name, exact_name):.2f}x exact; "
                    f"max |r - exact| {np.abs(r_bf16 - r_exact[:bf16_frames]).max():.1e}"
                    + ("" if cpu_has_native_bf16() else "; emulated on this CPU, 1 round")),
    }
    print(f"{'reward path (' + args.model + ', ' + str(size) + ' px)':44s} {'best':>6s} {'median':>7s}  "
          "(frames/s over rounds; ratios: median of same-round ratios)")
    for name in notes:
        print(f"{name:44s} {best[name]:6.2f} {median[name]:7.2f}  {notes[name]}")
    shapes = gemm_shapes(int8, pixels[0])
    ceiling = gemm_ceiling(shapes, args.rounds)
    print(f"ceiling: the model's {len(shapes)} GEMMs alone, timed apart from the rest of the model, run {ceiling:.2f}x "
          f"as fast in int8 as in fp32 on this CPU; an int8 mode on PyTorch's int8 kernels cannot beat that ratio")
    fast_name = max((int8_name, bf16_name), key=median.get)
    fast_ratio = ratio(fast_name, exact_name)
    r_fast = r_int8 if fast_name == int8_name else r_bf16
    fast_diff = np.abs(r_fast - r_exact[: len(r_fast)]).max()
    exact_ratio = ratio(exact_name, bare_name)
    print(f"exact rewards of these frames span {r_exact.min():.4f}..{r_exact.max():.4f} (std {r_exact.std():.1e})")
    print(f"goals: exact >= 0.95x bare: {exact_ratio:.3f} {'met' if exact_ratio >= 0.95 else 'MISSED'}; "
          f"exact = per-frame within 1e-5: {'met' if np.abs(r_exact - r_single).max() <= 1e-5 else 'MISSED'}; "
          f"fast mode ({fast_name.split('(')[1][:-1]}) >= 1.8x exact: {fast_ratio:.2f} "
          f"{'met' if fast_ratio >= 1.8 else 'MISSED'}; "
          f"its max reward difference <= 1e-3: {fast_diff:.1e} {'met' if fast_diff <= 1e-3 else 'MISSED'}\n")

    # ---------------------------------------------------------------- env steps/s
    env_cfg = EnvConfig(
        id="roboreward/HumanoidPose-v0", n_envs=args.n_envs, vectorization="subproc", kwargs={"task": "kneeling"},
        render=RenderConfig(width=size, height=size),
    )
    reward_only_frames = frames[: args.n_envs]

    def reward_only(model: ClipReward) -> float:
        call = (lambda: model(RewardBatch(frames=reward_only_frames)), args.n_envs)
        return max(interleaved({"r": call}, max(2, args.rounds // 2))["r"])

    def with_reward(model: ClipReward, pipeline: bool) -> float:
        model.config = dataclasses.replace(model.config, pipeline=pipeline)  # what reward.pipeline sets
        return vec_steps_per_second(make_vec_env(env_cfg, model, seed=0), args.env_steps, warmup=2)

    render_only = make_vec_env(env_cfg, RenderOnly(), seed=0)  # type: ignore[arg-type]
    render = vec_steps_per_second(render_only, args.env_steps, warmup=2)
    rows = []
    for label, model in (("exact fp32", exact), ("fast int8", int8)):
        reward = reward_only(model)
        sequential = with_reward(model, pipeline=False)
        pipelined = with_reward(model, pipeline=True)
        rows.append((label, reward, sequential, pipelined))
    print(f"env steps/s, HumanoidPose-v0, {args.n_envs} envs (SubprocVecEnv), {size}x{size} frames, "
          f"{args.env_steps} vector steps "
          f"each; render only: {render:.1f}")
    print(f"{'reward':12s} {'reward only':>11s} {'sequential':>10s} {'pipelined':>9s} {'pipe/seq':>8s} "
          f"{'ideal seq 1/(1/a+1/b)':>21s} {'ideal pipe min(a,b)':>19s}")
    for label, reward, sequential, pipelined in rows:
        print(f"{label:12s} {reward:11.1f} {sequential:10.1f} {pipelined:9.1f} {pipelined / sequential:8.2f} "
              f"{1 / (1 / render + 1 / reward):21.1f} {min(render, reward):19.1f}")
    print("pipelined: VecLearnedReward(pipeline=True) with its default 2 groups; it gains only where rendering and the "
          "reward use different hardware or idle cores (here both share the same CPUs)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other processes share these {cpus} CPUs)")


if __name__ == "__main__":
    main()
