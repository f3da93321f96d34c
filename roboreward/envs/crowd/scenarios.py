"""Where an episode starts: the robot's start and goal, the people, the obstacles and walls.

Each scenario draws one env's layout from a ``numpy.random.Generator`` (so a seed fixes the episode), by
rejection sampling with the separations of :class:`~roboreward.envs.crowd.config.ScenarioConfig`; the
simulator calls :func:`new_human_goal` when a person arrives. Obstacles are polygons in RVO2's
orientation — boxes counter-clockwise (kept out), the room's outline clockwise (kept in), walls as two
points — each marked as a wall or an obstacle so that collisions can be told apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from roboreward.envs.crowd.config import CrowdNavConfig, ScenarioConfig
from roboreward.errors import ConfigError

MAX_TRIES = 2048  # rejection-sampling attempts for one body before the scenario is declared too full
CANDIDATES = 32  # attempts drawn and tested together


@dataclass
class Layout:
    """One env's episode start. People: ``[H]`` rows: the groups' members, the other walking people, then the
    standing ones (``static``)."""

    robot_position: np.ndarray  # [2]
    robot_heading: float
    robot_goal: np.ndarray  # [2]
    human_positions: np.ndarray  # [H, 2]
    human_goals: np.ndarray  # [H, 2]
    human_radii: np.ndarray  # [H]
    human_speeds: np.ndarray  # [H]
    static: np.ndarray  # [H] bool
    group: np.ndarray  # [H] int: the person's group, -1 for none
    lateral: np.ndarray  # [H] a group member's place across the group's way, m (left positive); 0 for none
    polygons: list[np.ndarray]
    is_wall: list[bool]  # per polygon: a wall (room outline, corridor, doorway) or an obstacle (a box)
    world: World  # free-space tests of this layout (new goals for people are drawn in free space)


def polygon_capacity(config: ScenarioConfig) -> int:
    """The most obstacle vertices a layout of ``config`` can have (the size of the padded vertex arrays)."""
    walls = 4 if config.walls else 0
    inner = {"corridor": 4, "doorway": 4}.get(config.name, 0)
    return walls + inner + 4 * config.max_obstacles


def token_capacity(config: ScenarioConfig) -> int:
    """The most obstacle tokens a layout of ``config`` can have: each room edge, inner wall and box one."""
    return (4 if config.walls else 0) + {"corridor": 2, "doorway": 2}.get(config.name, 0) + config.max_obstacles


LAYOUT_TRIES = 20  # whole layouts drawn afresh when one's people or robot find no room, before giving up


def generate(config: CrowdNavConfig, rng: np.random.Generator) -> Layout:
    """A fresh layout for one episode of ``config``'s scenario.

    A crowded draw (the boxes fell so that the people or the robot find no room) is drawn again, whole, up
    to :data:`LAYOUT_TRIES` times; only a scenario that keeps failing raises its :class:`ConfigError`.
    """
    for attempt in range(LAYOUT_TRIES):
        try:
            return _generate(config, rng)
        except ConfigError:
            if attempt == LAYOUT_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _generate(config: CrowdNavConfig, rng: np.random.Generator) -> Layout:
    s = config.scenario
    n_moving = s.n_humans + int(rng.integers(-s.n_humans_jitter, s.n_humans_jitter + 1))
    n_static = s.n_static + int(rng.integers(-s.n_static_jitter, s.n_static_jitter + 1))
    n_boxes = s.n_obstacles + int(rng.integers(-s.n_obstacles_jitter, s.n_obstacles_jitter + 1))
    polygons, is_wall = _walls(s)
    boxes = _place_boxes(s, n_boxes, rng)
    polygons += boxes
    is_wall += [False] * len(boxes)
    world = World(s, boxes)

    robot, goal, heading = _robot_start_and_goal(s, world, config.robot.radius, rng)
    bodies = _Bodies(2 + n_moving + n_static)
    bodies.add(robot, config.robot.radius)
    bodies.add(goal, config.robot.radius)
    goals_taken = _Bodies(n_moving)
    grouped = _place_groups(s, world, config.humans.radius, rng, bodies, goals_taken)
    n_grouped = len(grouped[2])
    walking = _place_people(n_moving - n_grouped, False, s, world, config.humans.radius, rng, bodies, goals_taken)
    standing = _place_people(n_static, True, s, world, config.humans.radius, rng, bodies, goals_taken)
    n = n_moving + n_static
    positions = np.concatenate([grouped[0], walking[0], standing[0]])
    goals = np.concatenate([grouped[1], walking[1], standing[0]])
    radii = np.concatenate([grouped[2], walking[2], standing[2]])
    speeds = rng.uniform(*config.humans.max_speed, n)
    group = np.full(n, -1, dtype=np.int64)
    group[:n_grouped] = grouped[3]
    for g in range(s.n_groups):  # a group walks at its slowest member's pace
        speeds[group == g] = speeds[group == g].min()
    lateral = np.zeros(n)
    lateral[:n_grouped] = grouped[4]
    static = np.arange(n) >= n_moving
    return Layout(robot, heading, goal, positions, goals, radii, speeds, static, group, lateral, polygons, is_wall,
                  world)


class _Bodies:
    """Discs placed so far (in a buffer filled in place), which a new one must keep ``min_separation`` from."""

    def __init__(self, capacity: int) -> None:
        self.centers = np.zeros((capacity, 2))
        self.radii = np.zeros(capacity)
        self.count = np.zeros(1, dtype=np.int64)

    def add(self, center: np.ndarray, radius: float) -> None:
        i = self.count[0]
        self.centers[i], self.radii[i] = center, radius
        self.count[0] += 1


def _place_people(n: int, standing: bool, s: ScenarioConfig, world: World, radius_range: tuple[float, float],
                  rng: np.random.Generator, bodies: _Bodies, goals: _Bodies):
    """``n`` people's starts, goals and radii by rejection sampling: candidates are drawn and tested in bulk,
    then taken in order as long as they keep clear of every body (and goal) taken before them."""
    starts, ends, radii = np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0)
    tries = 0
    while len(radii) < n:
        if tries >= MAX_TRIES * max(n, 1):
            raise ConfigError(
                f"scenario {s.name!r}: could not place {n} {'standing' if standing else 'walking'} people "
                f"({len(radii)} fit after {tries} tries, in each of {LAYOUT_TRIES} layouts); the space is too full. Lower scenario.n_humans "
                f"({s.n_humans}) / n_static ({s.n_static}) or enlarge the space (room_size {s.room_size} m)"
            )
        k = CANDIDATES + 8 * (n - len(radii))
        tries += k
        start, end = _human_routes(s, rng, k)
        if standing:
            end = start
        r = rng.uniform(*radius_range, k)
        clear = r + s.min_separation
        ok = world.free(start, clear) & world.free(end, clear)
        chosen = _take_clear(ok, start, end, r, bodies.centers, bodies.radii, bodies.count, goals.centers, goals.radii,
                             goals.count, s.min_separation, not standing, n - len(radii))
        starts, ends, radii = (np.concatenate([starts, start[chosen]]), np.concatenate([ends, end[chosen]]),
                               np.concatenate([radii, r[chosen]]))
    return starts, ends, radii


def row_offsets(radii: np.ndarray, gap: float) -> np.ndarray:
    """Places across a row of discs ``radii`` side by side ``gap`` apart, centred on 0 (first on the right)."""
    widths = 2 * radii + gap
    width = widths.sum() - gap
    return -width / 2 + np.cumsum(widths) - widths + radii


def _place_groups(s: ScenarioConfig, world: World, radius_range: tuple[float, float], rng: np.random.Generator,
                  bodies: _Bodies, goals: _Bodies):
    """Each group's members in a row across its route: the row's bounding disc is placed as one person (start and
    goal clear of everything), then the members are spread along it. ``(starts, ends, radii, group, lateral)``."""
    starts, ends, radii, group, lateral = [np.zeros((0, 2))], [np.zeros((0, 2))], [np.zeros(0)], [], []
    for g in range(s.n_groups):
        size = int(rng.integers(s.group_size[0], s.group_size[1] + 1))
        r = rng.uniform(*radius_range, size)
        offsets = row_offsets(r, s.group_gap)
        bound = float(np.max(np.abs(offsets) + r))
        centre, goal, _ = _place_people(1, False, s, world, (bound, bound), rng, bodies, goals)
        way = goal[0] - centre[0]
        left = np.array([-way[1], way[0]]) / max(float(np.linalg.norm(way)), 1e-9)
        starts.append(centre[0] + offsets[:, None] * left)
        ends.append(goal[0] + offsets[:, None] * left)
        radii.append(r)
        group += [g] * size
        lateral.append(offsets)
    return (np.concatenate(starts), np.concatenate(ends), np.concatenate(radii), np.array(group, dtype=np.int64),
            np.concatenate([np.zeros(0), *lateral]))


def new_group_goals(layout: Layout, config: ScenarioConfig, positions: np.ndarray, lateral: np.ndarray,
                    radii: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """New goals ``[m, 2]`` for a group's members (at ``positions``): one new goal for the group, each member's
    place in the row kept on the side of the way it walks on now (the row does not cross itself)."""
    centre = positions.mean(axis=0)
    bound = float(np.max(np.abs(lateral) + radii))
    goal = new_human_goal(layout, config, centre, bound, rng)
    way = goal - centre
    left = np.array([-way[1], way[0]]) / max(float(np.linalg.norm(way)), 1e-9)
    if float(np.sum(lateral * ((positions - centre) @ left))) < 0:
        left = -left
    return goal + lateral[:, None] * left


@numba.njit(cache=True)
def _take_clear(ok, starts, ends, radii, body_c, body_r, n_body, goal_c, goal_r, n_goal, gap, check_ends, need):
    """Indices of the candidates taken in order: each allowed (``ok``), its start clear of every body and, when
    ``check_ends``, its goal clear of every goal taken so far; each taken one is added to the bodies (and goals)."""
    chosen = np.empty(need, dtype=np.int64)
    m = 0
    for k in range(len(ok)):
        if m == need:
            break
        if not ok[k]:
            continue
        clear = True
        for j in range(n_body[0]):
            if (starts[k, 0] - body_c[j, 0]) ** 2 + (starts[k, 1] - body_c[j, 1]) ** 2 < (radii[k] + body_r[j] + gap) ** 2:
                clear = False
                break
        if clear and check_ends:
            for j in range(n_goal[0]):
                if (ends[k, 0] - goal_c[j, 0]) ** 2 + (ends[k, 1] - goal_c[j, 1]) ** 2 < (radii[k] + goal_r[j] + gap) ** 2:
                    clear = False
                    break
        if clear:
            chosen[m] = k
            m += 1
            body_c[n_body[0]], body_r[n_body[0]] = starts[k], radii[k]
            n_body[0] += 1
            if check_ends:
                goal_c[n_goal[0]], goal_r[n_goal[0]] = ends[k], radii[k]
                n_goal[0] += 1
    return chosen[:m]


def new_human_goal(layout: Layout, config: ScenarioConfig, position: np.ndarray, radius: float,
                   rng: np.random.Generator) -> np.ndarray:
    """A new goal for a person who arrived at ``position``: across the scenario, in free space."""
    for _ in range(4):
        _, goals = _human_routes(config, rng, CANDIDATES)
        ok = layout.world.free(goals, radius + config.min_separation) & (((goals - position) ** 2).sum(-1) > 1.0)
        if ok.any():
            return goals[int(np.argmax(ok))]
    return position.copy()


# --- the scenarios -----------------------------------------------------------------------------------------


def _walls(s: ScenarioConfig) -> tuple[list[np.ndarray], list[bool]]:
    half = s.room_size / 2
    polygons: list[np.ndarray] = []
    if s.walls:
        polygons.append(np.array([[-half, -half], [-half, half], [half, half], [half, -half]]))  # clockwise: kept in
    if s.name == "corridor":
        w = s.corridor_width / 2
        polygons += [np.array([[-half, w], [half, w]]), np.array([[-half, -w], [half, -w]])]
    elif s.name == "doorway":
        d = s.door_width / 2
        polygons += [np.array([[0.0, -half], [0.0, -d]]), np.array([[0.0, d], [0.0, half]])]
    return polygons, [True] * len(polygons)


def _place_boxes(s: ScenarioConfig, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` axis-aligned boxes inside the room, at least ``obstacle_gap`` apart from each other."""
    half = s.room_size / 2 - 0.5
    boxes = np.zeros((0, 4))  # x0, y0, x1, y1
    tries = 0
    while len(boxes) < n:
        if tries >= MAX_TRIES * n:
            raise ConfigError(f"scenario.n_obstacles: {n} boxes of {list(s.obstacle_size)} m, {s.obstacle_gap} m apart, "
                              f"do not fit in the {s.room_size} m room (in {LAYOUT_TRIES} layouts); lower n_obstacles "
                              f"or obstacle_gap")
        k = CANDIDATES + 4 * n
        tries += k
        size = rng.uniform(*s.obstacle_size, (k, 2))
        corner = rng.uniform(-half, half - size)
        candidates = np.concatenate([corner, corner + size], axis=1)
        chosen = _greedy_boxes(boxes, candidates, s.obstacle_gap, n - len(boxes))
        boxes = np.concatenate([boxes, candidates[chosen]])
    return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) for x0, y0, x1, y1 in boxes]  # counter-clockwise


@numba.njit(cache=True)
def _greedy_boxes(placed, candidates, gap, need):
    """Indices of the candidate boxes taken in order, each ``gap`` clear of the placed and the taken ones."""
    chosen = np.empty(need, dtype=np.int64)
    m = 0
    for k in range(len(candidates)):
        if m == need:
            break
        x0, y0, x1, y1 = candidates[k]
        clear = True
        for j in range(len(placed) + m):
            b = placed[j] if j < len(placed) else candidates[chosen[j - len(placed)]]
            if not (x0 >= b[2] + gap or x1 + gap <= b[0] or y0 >= b[3] + gap or y1 + gap <= b[1]):
                clear = False
                break
        if clear:
            chosen[m] = k
            m += 1
    return chosen[:m]


class World:
    """Free-space tests against the boxes and walls of one layout; ``boxes`` are ``[n, 4]`` (x0, y0, x1, y1)."""

    def __init__(self, s: ScenarioConfig, boxes: list[np.ndarray]) -> None:
        self.s = s
        self.boxes = np.array([[b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()] for b in boxes]).reshape(-1, 4)

    def free(self, points: np.ndarray, clearance: float | np.ndarray) -> np.ndarray:
        """Whether each of ``points [k, 2]`` is at least ``clearance`` (one, or ``[k]``) from every wall and box."""
        s = self.s
        clearance = np.broadcast_to(np.asarray(clearance, dtype=np.float64), (len(points),))
        out = np.empty(len(points), dtype=np.bool_)
        _free(np.ascontiguousarray(points, dtype=np.float64), np.ascontiguousarray(clearance),
              s.room_size / 2 if s.walls else np.inf, s.corridor_width / 2 if s.name == "corridor" else np.inf,
              s.door_width / 2 if s.name == "doorway" else np.inf, self.boxes, out)
        return out

    def crossings(self, a: np.ndarray, c: np.ndarray) -> int:
        """How many boxes the straight segment from ``a`` to ``c`` passes through (sampled every 5 cm)."""
        t = np.linspace(0, 1, max(2, int(np.linalg.norm(c - a) / 0.05)))[:, None]
        pts = a + t * (c - a)
        b = self.boxes
        hit = ((pts[:, None, 0] > b[:, 0]) & (pts[:, None, 0] < b[:, 2]) & (pts[:, None, 1] > b[:, 1])
               & (pts[:, None, 1] < b[:, 3]))
        return int(hit.any(axis=0).sum())


@numba.njit(cache=True)
def _free(points, clearance, room_half, corridor_half, door_half, boxes, out):
    """:meth:`World.free`: inside the room, the corridor, off the doorway's wall (at x = 0) and outside every box."""
    for k in range(len(points)):
        x, y, c = points[k, 0], points[k, 1], clearance[k]
        ok = max(abs(x), abs(y)) <= room_half - c and abs(y) <= corridor_half - c
        if ok and door_half < np.inf and abs(x) < c and abs(y) > door_half - c:
            ok = False
        for j in range(len(boxes)):
            if not ok:
                break
            if boxes[j, 0] - c < x < boxes[j, 2] + c and boxes[j, 1] - c < y < boxes[j, 3] + c:
                ok = False
        out[k] = ok


def _robot_start_and_goal(s: ScenarioConfig, world: World, radius: float, rng: np.random.Generator):
    lo, hi = s.goal_distance
    clear = radius + s.min_separation
    span = min(s.arena, s.room_size if s.walls else s.arena) / 2 - clear
    k = CANDIDATES
    for _ in range(MAX_TRIES // k):
        if s.name == "corridor":
            y = rng.uniform(-1, 1, (k, 2)) * (s.corridor_width / 2 - clear)
            start = np.stack([np.full(k, -span), y[:, 0]], axis=-1)
            goal = np.stack([np.full(k, span), y[:, 1]], axis=-1)
        elif s.name == "doorway":
            start = np.stack([rng.uniform(-span, -1.0, k), rng.uniform(-span, span, k)], axis=-1)
            goal = np.stack([rng.uniform(1.0, span, k), rng.uniform(-span, span, k)], axis=-1)
        else:
            start, goal = rng.uniform(-span, span, (k, 2)), rng.uniform(-span, span, (k, 2))
        ok = world.free(start, clear) & world.free(goal, clear)
        if s.name not in ("corridor", "doorway"):
            d = np.linalg.norm(goal - start, axis=-1)
            ok &= (lo <= d) & (d <= hi)
        if ok.any():
            i = int(np.argmax(ok))
            heading = float(rng.uniform(-math.pi, math.pi)) if s.name == "room" else float(
                math.atan2(goal[i, 1] - start[i, 1], goal[i, 0] - start[i, 0]))
            return start[i], goal[i], heading
    raise ConfigError(f"scenario {s.name!r}: no robot start and goal {lo}-{hi} m apart fit in the {s.arena} m arena "
                      f"among the obstacles (in {LAYOUT_TRIES} layouts); widen scenario.goal_distance or arena, or "
                      f"lower n_obstacles")


def _human_routes(s: ScenarioConfig, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` candidate starts and goals ``[k, 2]`` for moving people (standing people use the starts only)."""
    noise = s.spawn_noise
    if s.name == "circle_crossing":
        a = rng.uniform(0, 2 * math.pi, k)
        start = s.circle_radius * np.stack([np.cos(a), np.sin(a)], axis=-1) + rng.uniform(-noise, noise, (k, 2))
        return start, -start
    side = rng.choice([-1.0, 1.0], k)
    if s.name == "square_crossing":
        w = s.square_width / 2
        start = np.stack([side * rng.uniform(0, w, k), rng.uniform(-w, w, k)], axis=-1)
        goal = np.stack([-side * rng.uniform(0, w, k), rng.uniform(-w, w, k)], axis=-1)
        return start, goal
    half = s.room_size / 2
    if s.name == "corridor":
        w = s.corridor_width / 2
        start = np.stack([side * rng.uniform(0, half, k), rng.uniform(-w, w, k)], axis=-1)
        goal = np.stack([-side * rng.uniform(half / 2, half, k), rng.uniform(-w, w, k)], axis=-1)
        return start, goal
    if s.name == "doorway":
        start = np.stack([side * rng.uniform(0.5, half, k), rng.uniform(-half, half, k)], axis=-1)
        goal = np.stack([-side * rng.uniform(0.5, half, k), rng.uniform(-half, half, k)], axis=-1)
        return start, goal
    # room: between free points across the room's centre
    start = rng.uniform(-half, half, (k, 2))
    return start, -start + rng.uniform(-noise, noise, (k, 2))
