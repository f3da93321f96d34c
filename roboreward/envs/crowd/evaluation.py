"""Batched evaluation of a crowd-navigation policy on a fixed, seeded test set.

Test episode ``k`` always starts from ``seed + k`` (the same layout, people and goals for every policy that is
evaluated), and episodes run ``n_envs`` at a time in one :class:`~roboreward.envs.crowd.env.CrowdNavBatch`, so a
500-episode test set takes seconds. ``roboreward eval`` runs the same episodes one by one (its episode ``k``
is seeded ``config.seed + EVAL_SEED_OFFSET + k``: pass that as ``seed`` to compare).

    from roboreward.envs.crowd.evaluation import evaluate_crowd_policy
    summary = evaluate_crowd_policy({"scenario": "room"}, "orca", episodes=500)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from roboreward.envs.crowd.baselines import BASELINES
from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.env import CrowdNavBatch
from roboreward.envs.crowd.metrics import summarise

TEST_SEED = 1_000_000  # the test set's first seed (roboreward eval's EVAL_SEED_OFFSET with seed 0)

Policy = Callable[[dict[str, np.ndarray], CrowdNavBatch], np.ndarray]


def sb3_policy(model, deterministic: bool = True) -> Policy:
    """A trained SB3 model as a :data:`Policy` (its observations are the env's); a recurrent one starts each env's
    memory afresh where an episode starts (an env that has taken no step yet)."""
    from roboreward.policies.acting import Actor

    actor = Actor(model, deterministic)
    return lambda obs, batch: actor(obs, episode_start=batch.sim.steps == 0)


def evaluate_crowd_policy(env_kwargs: dict[str, Any], policy: str | Policy, episodes: int = 500,
                          seed: int = TEST_SEED, n_envs: int = 50) -> dict[str, Any]:
    """Run ``episodes`` test episodes of the env ``env_kwargs`` describes; the metrics' means and the episodes'.

    :param policy: a baseline's name (:data:`~roboreward.envs.crowd.baselines.BASELINES`) or a callable
        ``(observations, batch) -> actions``.
    """
    if isinstance(policy, str):
        if policy not in BASELINES:
            raise ValueError(f"policy {policy!r} is not a baseline; choose one of {sorted(BASELINES)} or pass a callable")
        baseline = BASELINES[policy]
        policy = lambda obs, batch: baseline(batch)  # noqa: E731
    config = CrowdNavConfig.from_kwargs(env_kwargs)
    n = min(n_envs, episodes)
    batch = CrowdNavBatch(config, n)
    episode_of = np.arange(n)  # which test episode each env is running; -1: done, idle
    for b in range(n):
        batch.reset(b, seed + b)
    results: dict[int, dict[str, float]] = {}
    next_episode = n
    while len(results) < episodes:
        actions = np.asarray(policy(batch.observe(), batch), dtype=np.float64)
        _, terminated, truncated, infos = batch.step(actions)
        for b in np.nonzero(terminated | truncated)[0]:
            if episode_of[b] >= 0:
                results[int(episode_of[b])] = infos[b]["metrics"]
            if next_episode < episodes:
                batch.reset(b, seed + next_episode)
                episode_of[b] = next_episode
                next_episode += 1
            else:
                episode_of[b] = -1
                batch.reset(b, seed + b)  # keeps stepping, unrecorded, until the others finish
    ordered = [results[k] for k in range(episodes)]
    return {"episodes": episodes, "seed": seed, "metrics": summarise(ordered), "per_episode": ordered}


def with_observation_rows(env_kwargs: dict[str, Any], observation_space) -> dict[str, Any]:
    """``env_kwargs`` keeping the people rows (and obstacle-token rows) of ``observation_space``, the one a policy
    was trained on: a denser or sparser crowd then has the same observation shape (the nearest people fill the
    rows, as a real sensor's tracker would report its nearest tracks)."""
    sensing = dict(env_kwargs.get("sensing") or {})
    if sensing.get("max_humans") is None:
        sensing["max_humans"] = int(observation_space["humans"].shape[0])
    if "obstacles" in observation_space.spaces and sensing.get("max_obstacle_tokens") is None:
        sensing["max_obstacle_tokens"] = int(observation_space["obstacles"].shape[0])
    return {**env_kwargs, "sensing": sensing}
