"""Ray scale-out in one run: RayVecEnv's overhead, its scaling with actors, and the reward server's batching.

1. Overhead: env steps/s of roboreward/ArmReach-v0 rendering 64x64 frames, SubprocVecEnv vs RayVecEnv at
   the same env count (one env per worker process / actor).
2. Scaling: an env whose step is a 20 ms sleep (standing in for a render) in 1..16 actors: env steps/s
   against linear (the 1-actor rate x actors).
3. Reward server: the goal_image reward scoring the frames of 8 ArmReach envs held in 1, 4 and 8 rollout
   actors: env steps/s with the model in the learner (frames sent to it) and in a server actor (frames
   fetched from the object store) without and with the pipeline (groups of envs scored as they answer),
   the server's frames per call, and the model's own rate on direct batched calls of 8 new frames.

    python benchmarks/ray_scaling.py [--steps 200] [--max-actors 16]
    python benchmarks/ray_scaling.py --only server --reward clip --size 224   # with a GPU: the server on it

Ray runs on this machine (127.0.0.1, no dashboard), sized for the most actors asked for.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import gymnasium as gym
import numpy as np
import torch

from _machine import describe_machine
from _vec_timing import RenderOnly, vec_steps_per_second

os.environ.setdefault("MUJOCO_GL", "egl")

from roboreward.distributed.cluster import cluster_gpus, connect  # noqa: E402
from roboreward.distributed.reward_server import RemoteRewardModel  # noqa: E402
from roboreward.envs.make import make_vec_env  # noqa: E402
from roboreward.experiment import EnvConfig, RayConfig, RenderConfig  # noqa: E402
from roboreward.rewards.base import RewardBatch, make_reward_model  # noqa: E402
from roboreward.rewards.clip import ClipRewardConfig  # noqa: E402
from roboreward.rewards.goal_image import GoalImageRewardConfig  # noqa: E402

SLEEP_S = 0.020
WARMUP = 5


class SleepEnv(gym.Env):
    """A step that waits 20 ms and computes nothing: what a render-bound env looks like to the vector env."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (8,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(8, np.float32), {}

    def step(self, action):
        time.sleep(SLEEP_S)
        return np.zeros(8, np.float32), 0.0, False, False, {}


def overhead(steps: int) -> None:
    print(f"\n1. overhead: ArmReach + 64x64 frames, {steps} vector steps; SubprocVecEnv: a process per env")
    print(f"   {'envs':>4s} {'envs/actor':>10s} {'Subproc':>8s} {'Ray':>8s} {'Ray/Subproc':>12s}  (env steps/s)")
    for n_envs, per_actor in ((2, 1), (8, 1), (8, 4)):
        subproc = vec_steps_per_second(make_vec_env(EnvConfig(n_envs=n_envs, vectorization="subproc"), RenderOnly(),  # type: ignore[arg-type]
                                                    seed=0), steps, WARMUP)
        ray_rate = vec_steps_per_second(make_vec_env(EnvConfig(n_envs=n_envs, backend="ray"), RenderOnly(), seed=0,  # type: ignore[arg-type]
                                                     ray=RayConfig(envs_per_actor=per_actor)), steps, WARMUP)
        print(f"   {n_envs:4d} {per_actor:10d} {subproc:8.1f} {ray_rate:8.1f} {ray_rate / subproc:12.3f}")


def scaling(steps: int, max_actors: int) -> None:
    from roboreward.distributed.vec_env import RayVecEnv

    print(f"\n2. scaling: a 20 ms sleep per step, one env per actor, {steps} vector steps")
    print(f"   {'actors':>6s} {'env steps/s':>12s} {'x linear':>9s}")
    base = None
    counts = [n for n in (1, 2, 4, 8, 16, 32) if n <= max_actors]
    for n in counts:
        venv = RayVecEnv([SleepEnv] * n, cpus_per_actor=0.1)
        rate = vec_steps_per_second(venv, steps, WARMUP)
        base = base or rate
        print(f"   {n:6d} {rate:12.1f} {rate / (base * n):9.3f}")


def reward_config(name: str, n_envs: int):
    """The reward of section 3: goal_image (CPU-sized), or CLIP ViT-B-32 with random weights (GPU-sized: the
    forward pass costs the same whatever the weights, and nothing is downloaded)."""
    if name == "clip":
        return ClipRewardConfig(weights="random", goal_prompts=["a robot arm touching the goal"],
                                baseline_prompts=["a robot arm"], batch_size=n_envs)
    return GoalImageRewardConfig(batch_size=n_envs)


def reward_server(steps: int, reward: str, size: int, n_envs: int = 8) -> None:
    config = reward_config(reward, n_envs)
    local = make_reward_model(config)
    rng = np.random.default_rng(0)
    goals = rng.integers(0, 255, size=(n_envs, size, size, 3), dtype=np.uint8)
    local(RewardBatch(frames=goals, goal_frames=goals))
    start = time.perf_counter()
    for _ in range(20):  # new frames each call: no feature cache hits
        local(RewardBatch(frames=rng.integers(0, 255, size=goals.shape, dtype=np.uint8), goal_frames=goals))
    direct = 20 * n_envs / (time.perf_counter() - start)
    print(f"\n3. reward server: {reward} ({local.device if hasattr(local, 'device') else 'cpu'} in the learner), "
          f"{n_envs} ArmReach envs at {size}x{size}, {steps} vector steps; direct batched call of {n_envs} frames: "
          f"{direct:.1f} frames/s; server GPUs: {'1' if cluster_gpus() > 0 else '0'}")
    print(f"   {'actors':>6s} {'model in learner':>17s} {'server':>8s} {'server, pipelined':>18s} {'frames/call':>12s}"
          "  (env steps/s)")
    render = RenderConfig(width=size, height=size)
    for actors in (1, 4, 8):
        ray_cfg = RayConfig(envs_per_actor=n_envs // actors, cpus_per_actor=0.5)
        env = EnvConfig(n_envs=n_envs, backend="ray", render=render)
        in_learner = vec_steps_per_second(make_vec_env(env, local, seed=0, ray=ray_cfg), steps, WARMUP)
        served, calls = [], []
        for pipeline in (False, True):
            server = RemoteRewardModel(dataclasses.replace(config, pipeline=pipeline), ray_cfg)
            served.append(vec_steps_per_second(make_vec_env(env, server, seed=0, ray=ray_cfg), steps, WARMUP))
            calls.append(np.mean(server.stats()["frames_per_call"]))
            server.close()
        print(f"   {actors:6d} {in_learner:17.1f} {served[0]:8.1f} {served[1]:18.1f} "
              f"{calls[0]:5.1f} / {calls[1]:4.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="vector steps per measurement")
    parser.add_argument("--max-actors", type=int, default=16)
    parser.add_argument("--reward", choices=["goal_image", "clip"], default="goal_image",
                        help="section 3's model; clip (ViT-B-32, random weights) is the one to run with a GPU")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels in section 3 (224 for clip)")
    parser.add_argument("--only", choices=["overhead", "scaling", "server"], help="run one section")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(describe_machine())
    connect(RayConfig(), cpus_needed=max(args.max_actors, 8))
    if args.only in (None, "overhead"):
        overhead(args.steps)
    if args.only in (None, "scaling"):
        scaling(args.steps, args.max_actors)
    if args.only in (None, "server"):
        reward_server(args.steps, args.reward, args.size)


if __name__ == "__main__":
    main()
