"""CLIP reward throughput on a CUDA GPU, in one run: bare fp16 forward vs the reward path, fp16 vs fp32 rewards.

For each ``--models`` architecture (default ViT-B-32 and ViT-L-14 at 224 px) and each ``--batches`` size B
(frames per reward call):

- bare fp16 forward: ``encode_image`` on B preprocessed fp16 tensors already on the GPU, one batch, frames/s;
- fp16 reward path: ``ClipReward(precision=fp16, batch_size=C)`` for each ``--chunks`` C, called on host
  ``uint8 [B, 224, 224, 3]`` frames as the reward wrappers call it (staged through pinned memory and copied
  chunk by chunk while the GPU computes the previous chunk, batched preprocessing, forward, reward, back to
  numpy), frames/s, its ratio to the bare forward, and its largest reward difference from scoring the
  bare forward's embeddings;
- fp32 reward path (TF32 off) and the largest reward difference fp16 vs fp32 on the same frames;
- with ``--compile``, the bare forward under ``torch.compile`` (compile time printed), to show what
  fusing the elementwise work would add.

Frames are real HumanoidPose-v0 renders: rendered here when MuJoCo is importable, otherwise read from
``--frames FILE.npy`` (``uint8 [N, 224, 224, 3]``, e.g. written on a CPU machine with ``--save-frames``),
tiled to the batch size. The CLIP has RANDOM weights (nothing is downloaded): a forward pass costs the
same whatever the weights. Timing: CUDA synchronised wall clock, ``--iters`` calls after warm-up, best
and median. Figures go to stdout and, with ``--json``, to a file.

    python benchmarks/clip_reward_gpu.py [--models ViT-B-32 ViT-L-14] [--batches 256 1024] [--compile]
    python benchmarks/clip_reward_gpu.py --save-frames frames.npy      # on a machine with MuJoCo
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from roboreward.rewards import ClipReward, ClipRewardConfig, RewardBatch

GOAL, BASELINE = ["a humanoid robot kneeling"], ["a humanoid robot"]


def frames_from_mujoco() -> np.ndarray:
    """64 HumanoidPose-v0 frames at 224 px; MuJoCo is imported only here (a GPU box may lack it: --frames)."""
    from roboreward.envs.humanoid_pose import random_action_frames

    return random_action_frames(64, 224)


def build(model: str, precision: str, batch: int, device: str) -> ClipReward:
    torch.manual_seed(0)  # the same random weights in every precision
    return ClipReward(ClipRewardConfig(model=model, weights="random", goal_prompts=GOAL, baseline_prompts=BASELINE,
                                       batch_size=batch, precision=precision, device=device))


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def rate(fn, frames: int, iters: int) -> tuple[float, float]:
    """(best, median) frames/s of ``fn`` over ``iters`` synchronised calls after two warm-up calls."""
    for _ in range(2):
        fn()
    synchronize()
    rates = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        synchronize()
        rates.append(frames / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["ViT-B-32", "ViT-L-14"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1024, 4096], help="frames per reward call")
    parser.add_argument("--chunks", nargs="+", type=int, default=[256, 512], help="reward.batch_size values")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--frames", type=Path, help="uint8 [N, 224, 224, 3] .npy, when MuJoCo is not installed")
    parser.add_argument("--save-frames", type=Path, help="render 64 frames to this .npy and exit")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the bare forward")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script (fp16 needs a GPU)")
    args = parser.parse_args()

    if args.save_frames:
        np.save(args.save_frames, frames_from_mujoco())
        print(f"wrote {args.save_frames}")
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark is for GPUs; benchmarks/clip_reward.py measures the CPU")
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the exact reference)
    torch.backends.cudnn.allow_tf32 = False
    base = np.load(args.frames) if args.frames else frames_from_mujoco()
    name = torch.cuda.get_device_name() if args.device == "cuda" else "none (smoke test on the CPU)"
    print(f"GPU {name}, torch {torch.__version__}; {len(base)} HumanoidPose-v0 frames "
          f"{base.shape[1]}x{base.shape[2]} tiled to each batch; CLIP with RANDOM weights")
    results: list[dict] = []
    for model in args.models:
        half = "fp16" if args.device == "cuda" else "fp32"
        chunked = {c: build(model, half, c, args.device) for c in args.chunks}
        fp16 = chunked[args.chunks[0]]
        fp32 = build(model, "fp32", 64, args.device)
        r16, r32 = fp16(RewardBatch(frames=base)), fp32(RewardBatch(frames=base))
        diff = float(np.abs(r16 - r32).max())
        _, fp32_median = rate(lambda: fp32(RewardBatch(frames=base)), len(base), max(3, args.iters // 2))
        print(f"\n{model}: max |r_fp16 - r_fp32| over {len(base)} frames {diff:.1e} (rewards span "
              f"{r32.min():.4f}..{r32.max():.4f}); fp32 reward path (TF32 off) {fp32_median:,.0f} frames/s at batch 64")
        heads = " ".join(f"{'reward C=' + str(c):>12s} {'/bare':>5s}" for c in args.chunks)
        print(f"{'batch':>6s} {'bare fp16 fwd':>14s} " + heads
              + f" {'max |r - r_bare|':>16s}   (frames/s, median)")
        compiled = None
        for batch in args.batches:
            frames = np.ascontiguousarray(np.resize(base, (batch, *base.shape[1:])))
            pixels = fp16.preprocess(torch.from_numpy(frames).to(args.device)).to(fp16.input_dtype)
            with torch.inference_mode():
                _, bare = rate(lambda: fp16.model.encode_image(pixels), batch, args.iters)
                emb = torch.nn.functional.normalize(fp16.model.encode_image(pixels).float(), dim=-1).cpu().numpy()
                r_bare = fp16.reward_from_embeddings(emb)
                row = {"model": model, "batch": batch, "bare_fp16_fps": bare, "max_diff_fp16_vs_fp32": diff,
                       "fp32_reward_fps_b64": fp32_median}
                line = f"{batch:6d} {bare:14,.0f} "
                worst = 0.0
                for c, reward_model in chunked.items():
                    _, reward = rate(lambda: reward_model(RewardBatch(frames=frames)), batch, args.iters)
                    worst = max(worst, float(np.abs(reward_model(RewardBatch(frames=frames)) - r_bare).max()))
                    row[f"reward_fp16_fps_chunk{c}"] = reward
                    row["reward_fp16_fps"] = max(row.get("reward_fp16_fps", 0.0), reward)
                    line += f"{reward:12,.0f} {reward / bare:5.2f} "
                row["max_diff_reward_vs_bare"] = worst
                line += f"{worst:16.1e}"
                if args.compile:
                    if compiled is None:
                        start = time.perf_counter()
                        compiled = torch.compile(fp16.model.visual)
                        compiled(pixels)
                        row["compile_s"] = time.perf_counter() - start
                    _, fast = rate(lambda: compiled(pixels), batch, args.iters)
                    row["compiled_fp16_fps"] = fast
                    line += f"   compiled fwd {fast:,.0f} ({fast / bare:.2f}x bare)"
            print(line, flush=True)
            results.append(row)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    best_b32 = max((r["reward_fp16_fps"] for r in results if r["model"] == "ViT-B-32"), default=None)
    if best_b32 is not None:
        print(f"\ngoal: ViT-B-32 fp16 reward path >= 20,000 frames/s: {best_b32:,.0f} "
              f"{'met' if best_b32 >= 20000 else 'MISSED'}")


if __name__ == "__main__":
    main()
