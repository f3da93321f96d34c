"""ORCA steps for a crowd of 20 people: roboreward's batched ORCA against the RVO2 library, in one run.

Three ways to compute every person's next velocity, each step of circle-crossing scenes (radius 4 m):

- CrowdNav's pattern: for each person, a new RVO2 simulator holding everyone (what CrowdNav's ORCA policy
  does each step), stepped once;
- one RVO2 simulator per env, stepped once per step (the fastest use of the reference library);
- ``orca_velocities`` on all envs at once.

    python benchmarks/crowd_orca.py [--humans 20] [--steps 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _machine import describe_machine

from roboreward.envs.crowd.orca import OrcaParams, orca_velocities

PARAMS = OrcaParams()
DT = 0.25


def scenes(envs: int, humans: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, (envs, humans))
    positions = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=-1) + rng.normal(0, 0.1, (envs, humans, 2))
    return positions, -positions


def preferred(positions, goals):
    to_goal = goals - positions
    norm = np.linalg.norm(to_goal, axis=-1, keepdims=True)
    return np.where(norm > 1.0, to_goal / np.maximum(norm, 1e-12), to_goal)


def ours(envs: int, humans: int, steps: int) -> float:
    positions, goals = scenes(envs, humans)
    velocities = np.zeros_like(positions)
    start = time.perf_counter()
    for _ in range(steps):
        velocities = orca_velocities(positions, velocities, preferred(positions, goals), PARAMS, DT)
        positions = positions + velocities * DT
    return envs * steps / (time.perf_counter() - start)


def _simulator(rvo2, positions, velocities):
    sim = rvo2.PyRVOSimulator(DT, PARAMS.neighbor_dist, PARAMS.max_neighbors, PARAMS.time_horizon, 5.0,
                              PARAMS.radius, PARAMS.max_speed)
    for p, v in zip(positions, velocities):
        sim.addAgent(tuple(p), velocity=tuple(v))
    return sim


def rvo2_per_env(envs: int, humans: int, steps: int) -> float:
    import rvo2

    positions, goals = scenes(envs, humans)
    sims = [_simulator(rvo2, p, np.zeros_like(p)) for p in positions]
    start = time.perf_counter()
    for _ in range(steps):
        for b, sim in enumerate(sims):
            pos = np.array([sim.getAgentPosition(i) for i in range(humans)])
            for i, v in enumerate(preferred(pos, goals[b])):
                sim.setAgentPrefVelocity(i, tuple(v))
            sim.doStep()
    return envs * steps / (time.perf_counter() - start)


def rvo2_per_human(envs: int, humans: int, steps: int) -> float:
    import rvo2

    positions, goals = scenes(envs, humans)
    velocities = np.zeros_like(positions)
    start = time.perf_counter()
    for _ in range(steps):
        for b in range(envs):
            pref = preferred(positions[b], goals[b])
            new = np.empty((humans, 2))
            for i in range(humans):
                sim = _simulator(rvo2, positions[b], velocities[b])
                for j in range(humans):
                    sim.setAgentPrefVelocity(j, tuple(pref[j]))
                sim.doStep()
                new[i] = sim.getAgentVelocity(i)
            velocities[b] = new
            positions[b] = positions[b] + new * DT
    return envs * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--humans", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    print(describe_machine())
    print(f"circle crossing, {args.humans} people, {args.steps} steps; env steps/s (one env step = every person's ORCA)")
    print(f"{'envs':>5s} {'RVO2 per person':>16s} {'RVO2 per env':>13s} {'batched ORCA':>13s} {'vs per env':>11s}")
    for envs in (1, 16, 64, 256):
        per_human = rvo2_per_human(envs, args.humans, max(args.steps // 10, 2)) if envs <= 16 else float("nan")
        per_env = rvo2_per_env(envs, args.humans, args.steps)
        batched = ours(envs, args.humans, args.steps)
        print(f"{envs:5d} {per_human:16.1f} {per_env:13.1f} {batched:13.1f} {batched / per_env:11.2f}")


if __name__ == "__main__":
    main()
