"""Shared by the benchmark scripts: time a vector env's steps, and a frames-only stand-in reward."""

from __future__ import annotations

import time

import numpy as np


class RenderOnly:
    """A reward model that only asks for frames, so the envs render but nothing scores them."""

    requires_frames = True
    fetches_frames = False
    config = None

    def check_ready(self) -> None:
        pass

    def __call__(self, batch):
        return np.zeros(len(batch), dtype=np.float32)


def vec_steps_per_second(venv, steps: int, warmup: int) -> float:
    """Env steps per second over ``steps`` vector steps of seeded random actions, after ``warmup`` steps.

    The warm-up absorbs one-time costs (GL contexts, the first network call). Closes ``venv``.
    """
    venv.reset()
    rng = np.random.default_rng(0)
    space = venv.action_space
    shape = (warmup + steps, venv.num_envs, *space.shape)
    actions = rng.uniform(space.low, space.high, size=shape).astype(np.float32)
    for a in actions[:warmup]:
        venv.step(a)
    start = time.perf_counter()
    for a in actions[warmup:]:
        venv.step(a)
    elapsed = time.perf_counter() - start
    venv.close()
    return steps * venv.num_envs / elapsed
