"""Crowd-navigation env steps per second: ``CrowdNavVecEnv`` against CrowdNav's per-person-simulator pattern.

The scene is HEIGHT's room (``scenario: room``, 12 x 12 m unless H people do not fit) with H walking people,
10 boxes and a 180-ray lidar, 64 envs; one env step = every person's ORCA, the robot's move, collisions,
rewards, the observation (lidar included) and the resets of finished episodes.

- ours: ``CrowdNavVecEnv(64, ...)``, all envs in one call, with three action sources: zeros (the robot
  stands), uniform random actions, and ORCA as the robot (``venv.orca_actions()`` each step, timed);
  numba's compilation (or loading its cache) is warmed up first, untimed;
- the baseline, in the same run and the same scenes (``scenarios.generate`` with the same seeds): 64 Python
  env objects stepped one after the other, each step building for every walking person a fresh
  ``rvo2.PyRVOSimulator`` holding that person, the others it sees and the obstacles (``processObstacles``),
  stepped once to read that person's velocity (CrowdNav / CrowdNav++ / HEIGHT's ORCA policy); the robot
  moves by the same (random) action; the 180-ray lidar is plain numpy per env, as HEIGHT computes it in Python.
  Env b of both draws the same episodes (checked when this was written: over 10 steps of the same actions,
  resets included, its people and lidar follow ours to within 1e-6 m).

The issue's goal is >= 20,000 env steps/s at 20 people + 10 boxes + 180-ray lidar, 64 envs, on a 2-core CPU.

    python benchmarks/crowd_env.py [--quick] [--humans 5,10,20,50] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from _machine import describe_machine

from roboreward.envs.crowd import scenarios
from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.env import CrowdNavVecEnv
from roboreward.envs.crowd.lidar import ray_angles
from roboreward.errors import ConfigError

ENVS = 64
GOAL = 20_000
SOURCES = ("zeros", "random", "orca")


def env_kwargs(humans: int, room: float) -> dict:
    return {"scenario": {"name": "room", "n_humans": humans, "n_humans_jitter": 0, "n_static": 0, "n_static_jitter": 0,
                         "n_obstacles": 10, "n_obstacles_jitter": 0, "room_size": room},
            "sensing": {"lidar_rays": 180}}


def make_ours(humans: int) -> tuple[CrowdNavVecEnv, float]:
    """The batched env, in a 12 m room or the smallest larger one (2 m steps) the config lets H people fit in."""
    room = 12.0
    while True:
        try:
            return CrowdNavVecEnv(ENVS, **env_kwargs(humans, room)), room
        except ConfigError:
            room += 2.0


def ours(venv: CrowdNavVecEnv, source: str, steps: int) -> tuple[float, float]:
    """Env steps/s and resets per VecEnv step under one action source."""
    rng = np.random.default_rng(0)
    resets = 0
    start = time.perf_counter()
    for _ in range(steps):
        if source == "zeros":
            actions = np.zeros((ENVS, 2), dtype=np.float32)
        elif source == "random":
            actions = rng.uniform(-1, 1, (ENVS, 2)).astype(np.float32)
        else:
            actions = venv.orca_actions()
        _, _, done, _ = venv.step(actions)
        resets += int(done.sum())
    return ENVS * steps / (time.perf_counter() - start), resets / steps


class PerPersonEnv:
    """One env of the baseline: the same scenes, the people stepped by one fresh RVO2 simulator each."""

    def __init__(self, config: CrowdNavConfig, seed: int) -> None:
        import rvo2

        self.rvo2, self.c, self.rng = rvo2, config, np.random.default_rng(seed)  # seed b: our env b's scenes
        h = config.humans
        self.orca = (h.neighbor_dist, h.max_neighbors, h.time_horizon, h.time_horizon_obst)
        self.angles = ray_angles(config.sensing.lidar_rays, config.sensing.lidar_fov)
        self.reset()

    def reset(self) -> dict:
        c, L = self.c, scenarios.generate(self.c, self.rng)
        self.layout, n = L, len(L.human_radii)
        self.reacts = self.rng.random(n) < c.humans.react_to_robot
        self.pos = np.vstack([L.robot_position, L.human_positions])
        self.vel = np.zeros_like(self.pos)
        self.goals = np.vstack([L.robot_goal, L.human_goals])
        self.radii = np.concatenate([[c.robot.radius], L.human_radii])
        self.speeds = np.concatenate([[c.robot.max_speed], L.human_speeds])
        self.static = np.concatenate([[False], L.static])
        self.heading, self.t = L.robot_heading, 0
        self.polygons = [[tuple(v) for v in p] for p in L.polygons]
        starts = [p if len(p) > 2 else p[:1] for p in L.polygons]  # closed polygons; a wall is one segment
        self.edge_a = np.concatenate(starts)
        self.edge_e = np.concatenate([np.roll(p, -1, 0)[:len(s)] - s for p, s in zip(L.polygons, starts)])
        return self.observe()

    def step(self, action: np.ndarray):
        c, dt, n = self.c, self.c.time_step, len(self.pos)
        a = np.clip(action, -1, 1)
        local = a / max(np.linalg.norm(a), 1.0) * c.robot.max_speed
        ch, sh = np.cos(self.heading), np.sin(self.heading)
        new = np.zeros_like(self.vel)
        new[0] = ch * local[0] - sh * local[1], sh * local[0] + ch * local[1]
        to_goal = self.goals - self.pos
        dist = np.linalg.norm(to_goal, axis=1, keepdims=True)
        pref = np.where(dist > self.speeds[:, None], to_goal / np.maximum(dist, 1e-12) * self.speeds[:, None], to_goal)
        safety = c.humans.safety_space
        for i in range(1, n):  # CrowdNav's ORCA policy, per person: a new simulator of what that person sees
            if self.static[i]:
                continue
            sim = self.rvo2.PyRVOSimulator(dt, *self.orca, self.radii[i] + safety, self.speeds[i])
            sim.addAgent(tuple(self.pos[i]), *self.orca, self.radii[i] + safety, self.speeds[i], tuple(self.vel[i]))
            sim.setAgentPrefVelocity(0, tuple(pref[i]))
            for j in range(n):
                if j != i and (j > 0 or self.reacts[i - 1]):
                    sim.addAgent(tuple(self.pos[j]), *self.orca, self.radii[j] + safety, self.speeds[j],
                                 tuple(self.vel[j]))
            for polygon in self.polygons:
                sim.addObstacle(polygon)
            sim.processObstacles()
            sim.doStep()
            new[i] = sim.getAgentVelocity(0)
        # The robot's closest approach to each person along the step, then everyone moves, then the obstacles.
        before = np.linalg.norm(self.goals[0] - self.pos[0])
        rel, rv = self.pos[1:] - self.pos[0], new[1:] - new[0]
        tt = np.clip(-(rel * rv).sum(1) / np.maximum((rv * rv).sum(1), 1e-12), 0, dt)[:, None]
        closest = (np.linalg.norm(rel + rv * tt, axis=1) - self.radii[1:] - self.radii[0]).min(initial=np.inf)
        self.pos += new * dt
        self.vel = new
        self.t += 1
        p, r = self.pos[0], self.radii[0]
        s = np.clip(((p - self.edge_a) * self.edge_e).sum(1) / (self.edge_e ** 2).sum(1), 0, 1)[:, None]
        boxes = self.layout.world.boxes
        hit_obstacle = (np.linalg.norm(self.edge_a + s * self.edge_e - p, axis=1) < r).any() or (
            (boxes[:, :2] < p) & (p < boxes[:, 2:])).all(1).any()
        after = np.linalg.norm(self.goals[0] - p)
        collision, success = closest < 0 or hit_obstacle, after < r
        reward = -20.0 if collision else 10.0 if success else 2 * (before - after)
        if closest < 0.25 and not collision:
            reward += (closest - 0.25) * 10 * dt
        for i in np.nonzero(~self.static & (np.linalg.norm(self.goals - self.pos, axis=1) < self.radii))[0]:
            if i > 0:
                self.goals[i] = scenarios.new_human_goal(self.layout, c.scenario, self.pos[i], self.radii[i], self.rng)
        done = collision or success or self.t >= c.max_steps
        obs = self.reset() if done else self.observe()
        return obs, reward, done, {}

    def observe(self) -> dict:
        """The people in the robot's frame (seen within range, nearest first) and the lidar, in numpy."""
        s, ch, sh = self.c.sensing, np.cos(self.heading), np.sin(self.heading)
        rot = np.array([[ch, sh], [-sh, ch]])
        rel, vel = (self.pos[1:] - self.pos[0]) @ rot.T, self.vel[1:] @ rot.T
        gap = np.linalg.norm(rel, axis=1) - self.radii[1:] - self.radii[0]
        order = np.argsort(gap)
        humans = np.hstack([rel, vel, self.radii[1:, None]])[order] * (gap[order] <= s.sensor_range)[:, None]
        angles = self.heading + self.angles
        d = np.stack([np.cos(angles), np.sin(angles)], axis=1)[:, None]  # [R, 1, 2]
        w, e = self.edge_a - self.pos[0], self.edge_e  # [E, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            den = d[..., 0] * e[:, 1] - d[..., 1] * e[:, 0]
            t = (w[:, 0] * e[:, 1] - w[:, 1] * e[:, 0]) / den
            u = (w[:, 0] * d[..., 1] - w[:, 1] * d[..., 0]) / den
        lidar = np.where((t >= 0) & (u >= 0) & (u <= 1), t, s.lidar_range).min(1).clip(max=s.lidar_range)
        goal = (self.goals[0] - self.pos[0]) @ rot.T
        return {"robot": np.concatenate([goal, self.vel[0] @ rot.T, [ch, sh, self.radii[0], self.speeds[0]]]),
                "humans": humans.astype(np.float32), "lidar": lidar.astype(np.float32)}


def baseline(humans: int, room: float, steps: int) -> tuple[float, float]:
    """Env steps/s and resets per step of 64 per-person-simulator envs stepped in a Python loop, random actions."""
    envs = [PerPersonEnv(CrowdNavConfig.from_kwargs(env_kwargs(humans, room)), b) for b in range(ENVS)]
    rng = np.random.default_rng(0)
    resets = 0
    start = time.perf_counter()
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (ENVS, 2))
        results = [env.step(a) for env, a in zip(envs, actions)]
        obs = {k: np.stack([o[k] for o, *_ in results]) for k in results[0][0]}  # as a DummyVecEnv would
        resets += sum(done for _, _, done, _ in results)
    assert obs["lidar"].shape == (ENVS, 180)
    return ENVS * steps / (time.perf_counter() - start), resets / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps: a smoke run")
    parser.add_argument("--humans", default="5,10,20,50", help="comma-separated people counts")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: numba's, all CPUs)")
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    counts = [int(h) for h in args.humans.split(",")]
    steps, base_steps = (20, 1) if args.quick else (300, 5)
    print(describe_machine())
    print(f"numba: {numba.get_num_threads()} threads, {ENVS} envs, room + 10 boxes + 180-ray lidar; ours {steps} "
          f"steps per source, baseline {base_steps} steps (random actions)", flush=True)
    rows = []
    for h in counts:
        venv, room = make_ours(h)
        venv.reset()
        for source in SOURCES:  # compile / load numba's cache, untimed
            ours(venv, source, 3)
        row = {"humans": h, "room": room}
        for source in SOURCES:
            row[source] = ours(venv, source, steps)
            print(f"  H={h:3d} ours {source:6s} {row[source][0]:9,.0f} env steps/s, {row[source][1]:.2f} resets/step",
                  flush=True)
        row["base"] = baseline(h, room, base_steps)
        print(f"  H={h:3d} baseline {row['base'][0]:9,.1f} env steps/s, {row['base'][1]:.2f} resets/step", flush=True)
        rows.append(row)
    print(f"\nenv steps/s, {ENVS} envs (resets per VecEnv step in brackets); load average now "
          f"{describe_machine().rsplit(' ', 1)[-1]}")
    print(f"{'H':>3s} {'room':>5s} {'ours zeros':>15s} {'ours random':>15s} {'ours ORCA':>15s} {'baseline':>14s} "
          f"{'random/base':>12s}")
    for r in rows:
        cells = " ".join(f"{r[s][0]:7,.0f} ({r[s][1]:4.2f})" for s in SOURCES)
        print(f"{r['humans']:3d} {r['room']:4.0f}m {cells} {r['base'][0]:6,.0f} ({r['base'][1]:4.2f}) "
              f"{r['random'][0] / r['base'][0]:11.0f}x")
    for r in rows:
        if r["humans"] == 20:
            verdicts = ", ".join(f"{s} {r[s][0]:,.0f} {'meets' if r[s][0] >= GOAL else 'misses'}" for s in SOURCES)
            print(f"goal >= {GOAL:,} env steps/s at 20 people: {verdicts}")


if __name__ == "__main__":
    main()
