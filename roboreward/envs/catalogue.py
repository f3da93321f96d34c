"""``roboreward envs``: what each registered env observes, does, and which rewards can drive it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from roboreward.envs import ENV_IDS


def describe(env_id: str) -> dict[str, str]:
    """Spaces, episode length and reward options of one env, read off a live instance."""
    from roboreward.rewards.base import RewardConfig

    env = gym.make(env_id)
    try:
        env.reset(seed=0)
        _, _, _, _, info = env.step(env.action_space.sample())
        goal_conditioned = callable(getattr(env.unwrapped, "render_goal", None))
        terms = sorted(k for k in info if k.startswith("reward_"))
        options = []
        for name in RewardConfig.choices():
            if name == "goal_image":
                options.append("goal_image (goal_source: env|images)" if goal_conditioned else "goal_image (goal_source: images)")
            else:
                options.append(name)
        return {
            "id": env_id,
            "observation": _space(env.observation_space),
            "action": _space(env.action_space),
            "steps": str((env.spec.max_episode_steps if env.spec else None) or getattr(env.unwrapped, "max_steps", None)),
            "env reward terms": ", ".join(terms) or "-",
            "reward options": ", ".join(options),
        }
    finally:
        env.close()


def _space(space: gym.Space) -> str:
    """A Box with different bounds per index would print every bound: show its shape and dtype only."""
    if isinstance(space, gym.spaces.Box) and not (np.all(space.low == space.low.flat[0]) and np.all(space.high == space.high.flat[0])):
        return f"Box(per-index bounds, {space.shape}, {space.dtype})"
    return str(space)


def print_envs() -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="roboreward envs (gym.make(id, render_mode='rgb_array'))")
    rows = [describe(env_id) for env_id in ENV_IDS]
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row.values())
    Console(width=200).print(table)
