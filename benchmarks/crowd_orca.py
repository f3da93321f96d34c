"""ORCA steps for a crowd of 20 people: roboreward's batched ORCA against the RVO2 library, in one run.

Three ways to compute every person's next velocity, each step of circle-crossing scenes (radius 4 m):

- CrowdNav's pattern: for each person, a new RVO2 simulator holding everyone (what CrowdNav's ORCA policy
  does each step), stepped once;
- one RVO2 simulator per env, stepped once per step (the fastest use of the reference library);
- ``orca_velocities`` on all envs at once (numba's compilation, once per machine, not timed).

Then the same in a walled 12 x 12 m room with 10 boxes (HEIGHT's setting), RVO2 per env vs batched.

    python benchmarks/crowd_orca.py [--humans 20] [--steps 50] [--boxes 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _machine import describe_machine

from roboreward.envs.crowd.orca import Obstacles, OrcaParams, orca_velocities

PARAMS = OrcaParams()
DT = 0.25


def room_with_boxes(envs: int, boxes: int, seed: int = 0) -> list[list[np.ndarray]]:
    """HEIGHT's setting: a 12 x 12 m room (clockwise, kept in) with ``boxes`` 0.6 m boxes at random places."""
    if boxes == 0:
        return [[] for _ in range(envs)]
    rng = np.random.default_rng(seed + 1)
    room = np.array([[-6, -6], [-6, 6], [6, 6], [6, -6]], dtype=float)
    square = 0.3 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)
    return [[room] + [square + rng.uniform(-2.5, 2.5, 2) for _ in range(boxes)] for _ in range(envs)]


def scenes(envs: int, humans: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, (envs, humans))
    positions = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=-1) + rng.normal(0, 0.1, (envs, humans, 2))
    return positions, -positions


def preferred(positions, goals):
    to_goal = goals - positions
    norm = np.linalg.norm(to_goal, axis=-1, keepdims=True)
    return np.where(norm > 1.0, to_goal / np.maximum(norm, 1e-12), to_goal)


def ours(envs: int, humans: int, steps: int, boxes: int = 0) -> float:
    positions, goals = scenes(envs, humans)
    velocities = np.zeros_like(positions)
    obstacles = Obstacles.from_polygons(room_with_boxes(envs, boxes)) if boxes else None
    orca_velocities(positions, velocities, preferred(positions, goals), PARAMS, DT, obstacles=obstacles)  # compiled
    start = time.perf_counter()
    for _ in range(steps):
        velocities = orca_velocities(positions, velocities, preferred(positions, goals), PARAMS, DT, obstacles=obstacles)
        positions = positions + velocities * DT
    return envs * steps / (time.perf_counter() - start)


def _simulator(rvo2, positions, velocities, polygons=()):
    sim = rvo2.PyRVOSimulator(DT, PARAMS.neighbor_dist, PARAMS.max_neighbors, PARAMS.time_horizon,
                              PARAMS.time_horizon_obst, PARAMS.radius, PARAMS.max_speed)
    for p, v in zip(positions, velocities):
        sim.addAgent(tuple(p), velocity=tuple(v))
    for polygon in polygons:
        sim.addObstacle([tuple(v) for v in polygon])
    sim.processObstacles()
    return sim


def rvo2_per_env(envs: int, humans: int, steps: int, boxes: int = 0) -> float:
    import rvo2

    positions, goals = scenes(envs, humans)
    sims = [_simulator(rvo2, p, np.zeros_like(p), polys) for p, polys in zip(positions, room_with_boxes(envs, boxes))]
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
    parser.add_argument("--boxes", type=int, default=10, help="boxes in the second table's room")
    args = parser.parse_args()
    print(describe_machine())
    print(f"circle crossing, {args.humans} people, {args.steps} steps; env steps/s (one env step = every person's ORCA)")
    print(f"{'envs':>5s} {'RVO2 per person':>16s} {'RVO2 per env':>13s} {'batched ORCA':>13s} {'vs per env':>11s}")
    for envs in (1, 16, 64, 256):
        per_human = rvo2_per_human(envs, args.humans, max(args.steps // 10, 2)) if envs <= 16 else float("nan")
        per_env = rvo2_per_env(envs, args.humans, args.steps)
        batched = ours(envs, args.humans, args.steps)
        print(f"{envs:5d} {per_human:16.1f} {per_env:13.1f} {batched:13.1f} {batched / per_env:11.2f}")
    print(f"\nthe same people in a 12 x 12 m room with {args.boxes} boxes (HEIGHT's setting)")
    print(f"{'envs':>5s} {'RVO2 per env':>13s} {'batched ORCA':>13s} {'vs per env':>11s}")
    for envs in (1, 16, 64, 256):
        per_env = rvo2_per_env(envs, args.humans, args.steps, args.boxes)
        batched = ours(envs, args.humans, args.steps, args.boxes)
        print(f"{envs:5d} {per_env:13.1f} {batched:13.1f} {batched / per_env:11.2f}")


if __name__ == "__main__":
    main()
