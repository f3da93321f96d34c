"""The crowd simulator: a robot among people and obstacles, for ``B`` envs at once, in arrays.

Every quantity is an array over envs (``[B, ...]``); a step is a handful of numpy operations plus two
compiled kernels — ORCA for every person of every env (:mod:`~roboreward.envs.crowd.orca`) and the lidar
(:mod:`~roboreward.envs.crowd.lidar`) — with no Python loop over envs or people except where an episode
starts or a person gets a new goal. Each env draws from its own random generator, so env ``b`` of a batch
runs exactly as the same env alone with the same seed.

One step of length ``dt``, for all envs:

1. the robot's action becomes its velocity (holonomic, unicycle or differential drive);
2. the people choose velocities by ORCA from the state at the start of the step (the robot is an agent
   to them with its previous velocity, unless a person does not react to it); standing people stay put;
3. collisions with people are found along the step (closest approach of the two straight motions), then
   everyone moves, and collisions with walls and obstacles along the robot's path;
4. people who reached their goal get a new one; the robot succeeds within ``goal_radius`` of its goal.

Distances between bodies are surface to surface (centre distance minus both radii).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from roboreward.envs.crowd import scenarios
from roboreward.envs.crowd.config import CrowdNavConfig, CrowdRobotConfig
from roboreward.envs.crowd.orca import Obstacles, OrcaParams, orca_velocities_prepared
from roboreward.envs.crowd.sensors import to_world_frame

# What ended a step (``StepResult.event``), in the order they are checked.
NONE, SUCCESS, COLLISION_HUMAN, COLLISION_OBSTACLE, COLLISION_WALL = 0, 1, 2, 3, 4
EVENT_NAMES = ("", "success", "collision_human", "collision_obstacle", "collision_wall")
GROUP_PUSH_RANGE = 0.1  # m: social force between members of one group (others: humans.force_people_range)
GROUP_CATCH_UP = 1.3  # a group member behind its place in the row walks up to this much faster than the group
CONTACT_TOLERANCE = 1e-6  # m: ORCA keeps agents at exactly the sum of their radii, which float error can undercut


@dataclass
class StepResult:
    """What one step did, per env (arrays ``[B]``); read by the rewards and the metrics."""

    event: np.ndarray  # int, one of the event codes above
    goal_distance_before: np.ndarray
    goal_distance: np.ndarray
    closest_human: np.ndarray  # smallest surface distance to a person during the step (inf: none)
    speed: np.ndarray  # the robot's signed forward speed (holonomic: its speed)
    angular: np.ndarray  # the robot's turn rate, rad/s
    truncated: np.ndarray  # the time limit was reached without another ending

    @property
    def terminated(self) -> np.ndarray:
        return self.event != NONE


class CrowdSim:
    """``n_envs`` crowd-navigation worlds stepped together. Index 0 of the agent arrays is the robot."""

    def __init__(self, config: CrowdNavConfig, n_envs: int) -> None:
        self.config = config
        self.n_envs = b = n_envs
        h = config.scenario.max_humans
        self.max_humans = h
        self.dt = config.time_step
        r = config.robot
        self.goal_radius = config.goal_radius if config.goal_radius is not None else r.radius
        hc = config.humans
        self.orca = OrcaParams(neighbor_dist=hc.neighbor_dist, max_neighbors=hc.max_neighbors,
                               time_horizon=hc.time_horizon, time_horizon_obst=hc.time_horizon_obst,
                               radius=r.radius, max_speed=r.max_speed)
        # Agents: the robot then the people, padded to the scenario's most people.
        self.positions = np.zeros((b, 1 + h, 2))
        self.velocities = np.zeros((b, 1 + h, 2))
        self.goals = np.zeros((b, 1 + h, 2))
        self.radii = np.full((b, 1 + h), r.radius)
        self.speeds = np.full((b, 1 + h), r.max_speed)  # preferred = maximum speeds
        self.active = np.zeros((b, 1 + h), dtype=bool)
        self.active[:, 0] = True
        self.static = np.zeros((b, 1 + h), dtype=bool)
        self.group = np.full((b, 1 + h), -1, dtype=np.int64)  # each person's group (-1: none)
        self.lateral = np.zeros((b, 1 + h))  # a group member's place across its row
        self.ignore = np.zeros((b, 1 + h, 1 + h), dtype=bool)  # [b, i, j]: agent i does not see agent j
        self.heading = np.zeros(b)
        self.forward_speed = np.zeros(b)  # unicycle / diff-drive state
        self.turn_rate = np.zeros(b)
        self.steps = np.zeros(b, dtype=np.int64)
        capacity = scenarios.polygon_capacity(config.scenario)
        self.obstacles = Obstacles.empty(b, capacity)
        self.edge_is_wall = np.zeros((b, max(capacity, 1)), dtype=bool)
        self.boxes = np.zeros((b, max(config.scenario.max_obstacles, 1), 4))  # x0, y0, x1, y1
        self.box_valid = np.zeros((b, max(config.scenario.max_obstacles, 1)), dtype=bool)
        # Unseeded, every env draws from fresh OS entropy (as gymnasium and SB3 do); seed() makes them repeatable.
        self.rngs = [np.random.default_rng(s) for s in np.random.SeedSequence().spawn(b)]
        self._preferred = np.zeros((b, 1 + h, 2))
        self._orca_radii = np.zeros((b, 1 + h))
        self._robot_only = np.zeros((b, 1 + h), dtype=bool)
        self._robot_only[:, 0] = True
        self.layouts: list[scenarios.Layout | None] = [None] * b

    # --- views ---------------------------------------------------------------------------------------------

    @property
    def robot_position(self) -> np.ndarray:
        return self.positions[:, 0]

    @property
    def robot_velocity(self) -> np.ndarray:
        return self.velocities[:, 0]

    @property
    def robot_goal(self) -> np.ndarray:
        return self.goals[:, 0]

    def goal_distance(self) -> np.ndarray:
        return np.linalg.norm(self.goals[:, 0] - self.positions[:, 0], axis=-1)

    # --- episodes ------------------------------------------------------------------------------------------

    def seed(self, b: int, seed: int | None) -> None:
        self.rngs[b] = np.random.default_rng(seed)

    def reset(self, b: int) -> None:
        """Start a new episode in env ``b`` from a fresh layout drawn with its own generator."""
        layout = scenarios.generate(self.config, self.rngs[b])
        self.layouts[b] = layout
        n = len(layout.human_radii)
        reacts = self.rngs[b].random(n) < self.config.humans.react_to_robot
        self.positions[b] = 0.0
        self.velocities[b] = 0.0
        self.goals[b] = 0.0
        self.positions[b, 0], self.goals[b, 0] = layout.robot_position, layout.robot_goal
        self.positions[b, 1:1 + n], self.goals[b, 1:1 + n] = layout.human_positions, layout.human_goals
        self.radii[b, 1:] = 1.0
        self.radii[b, 1:1 + n] = layout.human_radii
        self.speeds[b, 1:] = 1.0
        self.speeds[b, 1:1 + n] = layout.human_speeds
        self.active[b, 1:] = False
        self.active[b, 1:1 + n] = True
        self.static[b, 1:] = False
        self.static[b, 1:1 + n] = layout.static
        self.group[b] = -1
        self.group[b, 1:1 + n] = layout.group
        self.lateral[b] = 0.0
        self.lateral[b, 1:1 + n] = layout.lateral
        self.ignore[b] = False
        self.ignore[b, 1:1 + n, 0] = ~reacts | layout.static
        self.heading[b] = layout.robot_heading
        self.forward_speed[b] = self.turn_rate[b] = 0.0
        self.steps[b] = 0
        self.obstacles.assign(b, layout.polygons)
        self.edge_is_wall[b] = False
        start = 0
        for polygon, wall in zip(layout.polygons, layout.is_wall):
            self.edge_is_wall[b, start:start + len(polygon)] = wall
            start += len(polygon)
        self.box_valid[b] = False
        n_boxes = len(layout.world.boxes)
        self.boxes[b, :n_boxes] = layout.world.boxes
        self.box_valid[b, :n_boxes] = True

    # --- a step --------------------------------------------------------------------------------------------

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every env by one step under ``actions [B, 2]`` (in ``[-1, 1]``, clipped)."""
        dt = self.dt
        before = self.goal_distance()
        robot_velocity, speed, angular = self._robot_velocity(np.clip(actions, -1.0, 1.0))

        # People: from the state at the start of the step; the robot shows its previous velocity.
        new = self._orca() if self.config.humans.policy == "orca" else self._social_force()
        new[:, 0] = robot_velocity
        # Collisions with people along the step, then everyone moves, then walls and obstacles.
        closest = np.empty(self.n_envs)
        hit = np.zeros(self.n_envs, dtype=np.int64)
        _advance(self.positions, self.velocities, new, self.radii, self.active, self.static, dt, self.obstacles.points,
                 self.obstacles.next, self.obstacles.valid, self.edge_is_wall, self.boxes, self.box_valid, closest, hit)
        self.steps += 1

        event = np.where(closest < 0, COLLISION_HUMAN, hit)
        after = self.goal_distance()
        event[(event == NONE) & (after < self.goal_radius)] = SUCCESS
        self._new_goals_on_arrival()
        truncated = (event == NONE) & (self.steps >= self.config.max_steps)
        return StepResult(event, before, after, closest, speed, angular, truncated)

    def robot_orca_velocity(self) -> np.ndarray:
        """``[B, 2]``: the velocity ORCA would choose for the robot now (the ORCA-as-robot baseline)."""
        return self._orca(self._robot_only)[:, 0]

    def _orca(self, compute: np.ndarray | None = None) -> np.ndarray:
        """The ORCA velocities of the agents ``compute`` marks (default: all) from the current state, each
        heading for its goal at its preferred speed (standing people: zero)."""
        _preferred(self.positions, self.goals, self.speeds, self.static, self._preferred)
        speeds = self._steer_groups()
        np.add(self.radii, self.config.humans.safety_space, out=self._orca_radii)
        return orca_velocities_prepared(self.positions, self.velocities, self._preferred, self.active, self.ignore,
                                        self._orca_radii, speeds, self.obstacles, self.orca, self.dt,
                                        np.empty_like(self.positions), compute)

    def _steer_groups(self) -> np.ndarray:
        """Turn the group members' preferred velocities towards their places in their group's row; the agents'
        top speeds (members may catch up, by up to :data:`GROUP_CATCH_UP` times the group's pace).

        A member heads for a point up to 1 m ahead of its place (the group's centre plus its lateral offset across
        the way to the group's goal), faster when it is behind that place and slower when ahead, so a group
        split by the crowd closes up again instead of walking on as separate people.
        """
        if not self.config.scenario.n_groups:
            return self.speeds
        member = (self.group >= 0) & self.active & ~self.static
        b, n = np.nonzero(member)
        if not len(b):
            return self.speeds
        key = b * self.config.scenario.n_groups + self.group[b, n]  # one id per (env, group)
        ids, index, count = np.unique(key, return_inverse=True, return_counts=True)
        centre = np.zeros((len(ids), 2))
        goal = np.zeros((len(ids), 2))
        np.add.at(centre, index, self.positions[b, n])
        np.add.at(goal, index, self.goals[b, n])
        centre /= count[:, None]
        goal /= count[:, None]
        way = goal - centre
        dist = np.linalg.norm(way, axis=-1, keepdims=True)
        way = way / np.maximum(dist, 1e-9)
        left = np.stack([-way[:, 1], way[:, 0]], axis=-1)
        place = centre[index] + self.lateral[b, n, None] * left[index]
        target = place + np.minimum(dist[index], 1.0) * way[index]
        behind = np.sum((place - self.positions[b, n]) * way[index], axis=-1)
        pace = self.speeds[b, n] * np.clip(1.0 + 0.5 * behind, 0.5, GROUP_CATCH_UP)
        heading = target - self.positions[b, n]
        self._preferred[b, n] = heading / np.maximum(np.linalg.norm(heading, axis=-1, keepdims=True), 1e-9) * pace[:, None]
        speeds = self.speeds.copy()
        speeds[b, n] *= GROUP_CATCH_UP
        return speeds

    def robot_social_force_velocity(self) -> np.ndarray:
        """``[B, 2]``: the robot's velocity if it moved by the social force (the social-force-as-robot baseline)."""
        return self._social_force(self._robot_only)[:, 0]

    def _social_force(self, compute: np.ndarray | None = None) -> np.ndarray:
        """The social-force velocities of the agents ``compute`` marks (default: every walking person) from the
        current state; the others' rows are zero."""
        h = self.config.humans
        _preferred(self.positions, self.goals, self.speeds, self.static, self._preferred)
        speeds = self._steer_groups()
        if compute is None:
            compute = self.active & ~self.static
            compute[:, 0] = False
        out = np.zeros_like(self.positions)
        o = self.obstacles
        _social_force(self.positions, self.velocities, self._preferred, self.radii, speeds, compute,
                      self.active, self.ignore, self.group, o.points, o.next, o.valid, h.force_goal, h.force_people,
                      h.force_people_range, h.force_walls, h.force_walls_range, self.dt, out)
        return out

    def _robot_velocity(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The robot's world velocity for this step, its forward speed and turn rate; updates its heading."""
        r, dt = self.config.robot, self.dt
        if r.kinematics == "holonomic":
            norm = np.linalg.norm(a, axis=-1, keepdims=True)
            local = a / np.maximum(norm, 1.0) * r.max_speed
            return to_world_frame(local, self.heading), np.linalg.norm(local, axis=-1), np.zeros(self.n_envs)
        speed, turn = commanded_motion(r, a)
        if r.kinematics == "diff_drive":  # the wheels reach the command at most at the acceleration limits
            speed = self.forward_speed + np.clip(speed - self.forward_speed, -r.max_accel * dt, r.max_accel * dt)
            turn = self.turn_rate + np.clip(turn - self.turn_rate, -r.max_angular_accel * dt, r.max_angular_accel * dt)
        self.forward_speed[:], self.turn_rate[:] = speed, turn
        self.heading[:] = np.mod(self.heading + turn * dt + math.pi, 2 * math.pi) - math.pi
        return np.stack([speed * np.cos(self.heading), speed * np.sin(self.heading)], axis=-1), speed, turn

    def _new_goals_on_arrival(self) -> None:
        if not self.config.scenario.new_goal_on_arrival:
            return
        arrived = self.active & ~self.static & (np.linalg.norm(self.goals - self.positions, axis=-1) < self.radii)
        arrived[:, 0] = False
        done: set[tuple[int, int]] = set()
        for b, i in zip(*np.nonzero(arrived)):
            g = self.group[b, i]
            if g < 0:
                self.goals[b, i] = scenarios.new_human_goal(self.layouts[b], self.config.scenario, self.positions[b, i],
                                                            self.radii[b, i], self.rngs[b])
            elif (b, g) not in done:  # the first member to arrive takes the whole group on to a new goal
                done.add((b, g))
                members = np.nonzero(self.group[b] == g)[0]
                self.goals[b, members] = scenarios.new_group_goals(
                    self.layouts[b], self.config.scenario, self.positions[b, members], self.lateral[b, members],
                    self.radii[b, members], self.rngs[b])


def commanded_motion(robot: CrowdRobotConfig, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The forward speed and turn rate ``[B]`` that ``[B, 2]`` actions in ``[-1, 1]`` command a unicycle or
    differential-drive robot (a diff drive then reaches them within its acceleration limits)."""
    speed = np.where(actions[:, 0] >= 0, actions[:, 0] * robot.max_speed, actions[:, 0] * robot.max_reverse)
    return speed, actions[:, 1] * robot.max_angular


# --- compiled parts of a step ----------------------------------------------------------------------------------


@numba.njit(cache=True)
def _preferred(positions, goals, speeds, static, out):
    """Each agent's preferred velocity: towards its goal at its preferred speed, slowing to land on it."""
    n_envs, n_agents, _ = positions.shape
    for b in range(n_envs):
        for a in range(n_agents):
            dx, dy = goals[b, a, 0] - positions[b, a, 0], goals[b, a, 1] - positions[b, a, 1]
            dist = np.sqrt(dx * dx + dy * dy)
            if static[b, a]:
                dx = dy = 0.0
            elif dist > speeds[b, a]:
                dx, dy = dx / dist * speeds[b, a], dy / dist * speeds[b, a]
            out[b, a, 0], out[b, a, 1] = dx, dy


@numba.njit(cache=True)
def _advance(pos, vel, new, radii, active, static, dt, pts, nxt, valid, is_wall, boxes, box_valid, closest, hit):
    """Move every agent by its new velocity and find the robot's contacts.

    ``closest[b]``: the smallest surface distance between the robot and a person during the step (the closest
    approach of their two straight motions; inf with nobody); ``hit[b]``: COLLISION_WALL or
    COLLISION_OBSTACLE if the robot's straight path this step comes within its radius of a wall or an obstacle
    edge (so no step, however long, passes through one) or it ends inside a box, else 0.
    """
    n_envs, n_agents, _ = pos.shape
    for b in range(n_envs):
        rx, ry, rvx, rvy = pos[b, 0, 0], pos[b, 0, 1], new[b, 0, 0], new[b, 0, 1]
        nearest = np.inf
        for a in range(1, n_agents):
            if not active[b, a]:
                continue
            if static[b, a]:
                new[b, a, 0] = new[b, a, 1] = 0.0
            px, py = pos[b, a, 0] - rx, pos[b, a, 1] - ry
            vx, vy = new[b, a, 0] - rvx, new[b, a, 1] - rvy
            vv = vx * vx + vy * vy
            t = 0.0 if vv < 1e-12 else min(max(-(px * vx + py * vy) / vv, 0.0), dt)
            d = np.sqrt((px + vx * t) ** 2 + (py + vy * t) ** 2) - radii[b, a] - radii[b, 0]
            if abs(d) < CONTACT_TOLERANCE:
                d = 0.0  # touching, to float precision, is not overlapping
            nearest = min(nearest, d)
        closest[b] = nearest
        for a in range(n_agents):
            vel[b, a, 0], vel[b, a, 1] = new[b, a, 0], new[b, a, 1]
            pos[b, a, 0] += new[b, a, 0] * dt
            pos[b, a, 1] += new[b, a, 1] * dt
        # Walls and obstacles along the step: the robot's straight path from where it was (sx, sy) to where it is.
        rx, ry, r = pos[b, 0, 0], pos[b, 0, 1], radii[b, 0]
        sx, sy = rx - new[b, 0, 0] * dt, ry - new[b, 0, 1] * dt
        hit[b] = NONE
        for e in range(pts.shape[1]):
            if not valid[b, e]:
                continue
            ax, ay = pts[b, e, 0], pts[b, e, 1]
            cx, cy = pts[b, nxt[b, e], 0], pts[b, nxt[b, e], 1]
            if _segments_distance_sq(sx, sy, rx, ry, ax, ay, cx, cy) < r * r:
                if is_wall[b, e]:
                    hit[b] = COLLISION_WALL
                elif hit[b] == NONE:
                    hit[b] = COLLISION_OBSTACLE
        if hit[b] == NONE:
            for k in range(boxes.shape[1]):
                if box_valid[b, k] and boxes[b, k, 0] < rx < boxes[b, k, 2] and boxes[b, k, 1] < ry < boxes[b, k, 3]:
                    hit[b] = COLLISION_OBSTACLE


@numba.njit(cache=True)
def _point_segment_distance_sq(px, py, ax, ay, cx, cy):
    ex, ey = cx - ax, cy - ay
    t = min(max(((px - ax) * ex + (py - ay) * ey) / max(ex * ex + ey * ey, 1e-12), 0.0), 1.0)
    return (ax + ex * t - px) ** 2 + (ay + ey * t - py) ** 2


@numba.njit(cache=True)
def _segments_distance_sq(px, py, qx, qy, ax, ay, cx, cy):
    """Squared distance between the segments p-q and a-c (0 when they cross)."""
    d1 = (qx - px) * (ay - py) - (qy - py) * (ax - px)
    d2 = (qx - px) * (cy - py) - (qy - py) * (cx - px)
    d3 = (cx - ax) * (py - ay) - (cy - ay) * (px - ax)
    d4 = (cx - ax) * (qy - ay) - (cy - ay) * (qx - ax)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return 0.0
    return min(_point_segment_distance_sq(px, py, ax, ay, cx, cy), _point_segment_distance_sq(qx, qy, ax, ay, cx, cy),
               _point_segment_distance_sq(ax, ay, px, py, qx, qy), _point_segment_distance_sq(cx, cy, px, py, qx, qy))


@numba.njit(cache=True, parallel=True)
def _social_force(pos, vel, pref, radii, speeds, compute, active, ignore, group, pts, nxt, valid, k_goal, a_people,
                  b_people, a_walls, b_walls, dt, out):
    """Social-force velocities of the agents ``compute`` marks, pushed by every active agent they see; see
    HumanConfig. Members of one group push each other only at short range (:data:`GROUP_PUSH_RANGE`): they walk
    side by side on purpose."""
    n_envs, n_agents, _ = pos.shape
    for flat in numba.prange(n_envs * n_agents):
        b, i = flat // n_agents, flat % n_agents
        if not compute[b, i]:
            continue
        px, py = pos[b, i, 0], pos[b, i, 1]
        fx = k_goal * (pref[b, i, 0] - vel[b, i, 0])
        fy = k_goal * (pref[b, i, 1] - vel[b, i, 1])
        for j in range(n_agents):
            if j == i or not active[b, j] or ignore[b, i, j]:
                continue
            dx, dy = px - pos[b, j, 0], py - pos[b, j, 1]
            d = np.sqrt(dx * dx + dy * dy)
            if d < 1e-9:
                continue
            reach = GROUP_PUSH_RANGE if group[b, i] >= 0 and group[b, i] == group[b, j] else b_people
            push = a_people * np.exp((radii[b, i] + radii[b, j] - d) / reach)
            fx += push * dx / d
            fy += push * dy / d
        for e in range(pts.shape[1]):
            if not valid[b, e]:
                continue
            ax, ay = pts[b, e, 0], pts[b, e, 1]
            ex, ey = pts[b, nxt[b, e], 0] - ax, pts[b, nxt[b, e], 1] - ay
            t = min(max(((px - ax) * ex + (py - ay) * ey) / max(ex * ex + ey * ey, 1e-12), 0.0), 1.0)
            dx, dy = px - (ax + ex * t), py - (ay + ey * t)
            d = np.sqrt(dx * dx + dy * dy)
            if d < 1e-9:
                continue
            push = a_walls * np.exp((radii[b, i] - d) / b_walls)
            fx += push * dx / d
            fy += push * dy / d
        vx, vy = vel[b, i, 0] + fx * dt, vel[b, i, 1] + fy * dt
        speed = np.sqrt(vx * vx + vy * vy)
        if speed > speeds[b, i]:
            vx, vy = vx / speed * speeds[b, i], vy / speed * speeds[b, i]
        out[b, i, 0], out[b, i, 1] = vx, vy
