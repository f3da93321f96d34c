"""Simulated robots as gymnasium envs, registered under ``roboreward/<Task>-vN``.

Entry points are strings, so importing :mod:`roboreward` does not import MuJoCo or build models;
``gym.make`` does that on first use. A changed reward or observation is a new version id.

=============================  =================================================================
id                             what it is
=============================  =================================================================
``roboreward/ArmReach-v0``     planar two-link arm reaching a target (new goal every episode)
``roboreward/ArmReachFixed-v0``  the same with one fixed goal
=============================  =================================================================
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS: list[str] = []


def _register(env_id: str, entry_point: str, max_episode_steps: int, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps, kwargs=kwargs)
    ENV_IDS.append(env_id)


_register("roboreward/ArmReach-v0", "roboreward.envs.arm_reach:ArmReachEnv", 50, goal="random")
_register("roboreward/ArmReachFixed-v0", "roboreward.envs.arm_reach:ArmReachEnv", 50, goal="fixed")

__all__ = ["ENV_IDS"]
