"""Env steps per second: raw physics, + rendering, + rendering and the learned reward — in one run.

Uses the default job's vector env (roboreward/ArmReach-v0, 4 envs, 64x64 frames) and random
actions, and prints each figure and its ratio to the raw rate. A last row renders with shadows,
reflections and 4x MSAA on, to show what realism costs.

    python benchmarks/env_throughput.py [--steps 300] [--n-envs 4]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from _vec_timing import RenderOnly, vec_steps_per_second

from roboreward.envs.make import make_vec_env
from roboreward.experiment import ExperimentConfig
from roboreward.rewards.base import make_reward_model


WARMUP = 10  # vector steps before timing: lazy GL contexts, first network call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="vector steps per measurement")
    parser.add_argument("--n-envs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)

    config = ExperimentConfig()
    env_cfg = dataclasses.replace(config.env, n_envs=args.n_envs)
    reward = make_reward_model(config.reward)
    assert reward is not None  # the default reward, cache on as in training: goal images hit, new frames miss
    realistic = dataclasses.replace(env_cfg, render=dataclasses.replace(env_cfg.render, shadows=True, reflections=True, multisample=4))

    rows = [
        ("raw physics", vec_steps_per_second(make_vec_env(env_cfg, None, seed=0), args.steps, WARMUP)),
        ("+ rendering 64x64", vec_steps_per_second(make_vec_env(env_cfg, RenderOnly(), seed=0), args.steps, WARMUP)),  # type: ignore[arg-type]
        ("+ rendering + goal_image reward", vec_steps_per_second(make_vec_env(env_cfg, reward, seed=0), args.steps, WARMUP)),
        ("+ rendering (shadows, reflections, 4xMSAA)", vec_steps_per_second(make_vec_env(realistic, RenderOnly(), seed=0), args.steps, WARMUP)),  # type: ignore[arg-type]
    ]
    raw = rows[0][1]
    print(f"roboreward/ArmReach-v0, {args.n_envs} envs (DummyVecEnv), {args.steps} vector steps, torch threads 2")
    print(f"{'configuration':46s} {'env steps/s':>12s} {'ratio to raw':>13s}")
    for name, rate in rows:
        print(f"{name:46s} {rate:12.1f} {rate / raw:13.4f}")
    print(f"learned reward / rendering only: {rows[2][1] / rows[1][1]:.3f}")
    cache = reward.features
    print(f"feature cache during the learned-reward run: {cache.hits} hits, {cache.misses} misses (goal images hit)")


if __name__ == "__main__":
    main()
