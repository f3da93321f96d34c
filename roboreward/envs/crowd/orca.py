"""ORCA for many agents in many envs at once: the RVO2 library's algorithm, compiled with numba.

Each agent picks the velocity closest to its preferred one that stays outside every neighbour's
velocity obstacle for ``time_horizon`` seconds, each agent taking half the responsibility (van den Berg
et al., "Reciprocal n-body collision avoidance", 2011). The RVO2 library computes this agent by agent in
C++; CrowdNav-style simulators run one RVO2 simulator per human per step, which is where their time goes.
Here one call computes every agent of ``B`` envs, in parallel over agents on all cores, with no Python in
the loop (numba compiles the kernel on first use and caches it on disk).

The steps are RVO2's, in its order, with its constants: the ``K`` nearest neighbours within
``neighbor_dist`` (nearest first), one half-plane (an "ORCA line") per neighbour — cut-off circle, left
or right leg, or, when already overlapping, the line that separates them within one time step — then the
2-D linear program that finds the best velocity inside all half-planes and the speed limit, and when they
leave no room, the 3-D program that finds the velocity violating them least. A test steps the same scenes
through the reference RVO2 build and compares every new velocity. RVO2 computes in float32 and this module
in float64: where two agents touch to float32 precision (ORCA keeps them at exactly the sum of their
radii) the two can take different branches, which moves that agent's velocity by ~1e-3 m/s for a step.

Static obstacles (:class:`Obstacles`: polygons, walls, a room's outline) add RVO2's obstacle lines first,
nearest edge first, each skipped when the lines before it already cover it; the 3-D program never relaxes
them. Polygons are given as RVO2 takes them: counter-clockwise for an obstacle the agents stay out of,
clockwise for a room they stay inside, two points for a wall segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

EPSILON = 1e-5  # RVO_EPSILON: below this, two line directions count as parallel


@dataclass(frozen=True)
class OrcaParams:
    """RVO2's agent parameters (``setAgentDefaults``); ``radius`` and ``max_speed`` are the defaults that
    per-agent arrays override."""

    neighbor_dist: float = 10.0  # metres within which other agents count
    max_neighbors: int = 10  # nearest agents taken into account
    time_horizon: float = 5.0  # seconds of collision-free motion each new velocity guarantees
    time_horizon_obst: float = 5.0  # the same, with respect to static obstacles
    radius: float = 0.3
    max_speed: float = 1.0

    def __post_init__(self) -> None:
        for name in ("neighbor_dist", "time_horizon", "time_horizon_obst", "radius", "max_speed"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"OrcaParams.{name}={value} must be a finite number > 0")
        if self.max_neighbors < 1:
            raise ValueError(f"OrcaParams.max_neighbors={self.max_neighbors} must be >= 1")


@dataclass(frozen=True)
class Obstacles:
    """The static obstacles of ``B`` envs as vertices ``[B, V]`` (padded; ``valid`` marks real ones).

    Each vertex starts an edge to vertex ``next``; ``unit_dir`` is that edge's direction and ``convex``
    whether the polygon turns left at the vertex (RVO2's definitions; a two-point wall is convex at both ends).
    """

    points: np.ndarray  # [B, V, 2]
    next: np.ndarray  # [B, V] index of the edge's end vertex
    prev: np.ndarray  # [B, V] index of the vertex before
    unit_dir: np.ndarray  # [B, V, 2]
    convex: np.ndarray  # [B, V]
    valid: np.ndarray  # [B, V]

    @classmethod
    def empty(cls, n_envs: int, capacity: int) -> Obstacles:
        """Room for ``capacity`` vertices in each of ``n_envs`` envs, none used yet (see :meth:`assign`)."""
        size = max(capacity, 1)
        return cls(np.zeros((n_envs, size, 2)), np.zeros((n_envs, size), dtype=np.int64),
                   np.zeros((n_envs, size), dtype=np.int64), np.zeros((n_envs, size, 2)),
                   np.zeros((n_envs, size), dtype=bool), np.zeros((n_envs, size), dtype=bool))

    @classmethod
    def from_polygons(cls, polygons: list[list[np.ndarray]]) -> Obstacles:
        """``polygons[b]``: env ``b``'s polygons, each ``[n, 2]`` vertices (n >= 2) in RVO2's orientation."""
        obstacles = cls.empty(len(polygons), max([sum(len(p) for p in env) for env in polygons] + [1]))
        for b, env in enumerate(polygons):
            obstacles.assign(b, env)
        return obstacles

    def rows(self, rows) -> Obstacles:
        """The obstacles of envs ``rows`` only (an index array or list), in that order."""
        return Obstacles(self.points[rows], self.next[rows], self.prev[rows], self.unit_dir[rows], self.convex[rows],
                         self.valid[rows])

    def assign(self, b: int, polygons: list[np.ndarray]) -> None:
        """Make env ``b``'s obstacles ``polygons`` (replacing what it had), in place."""
        polygons = [np.asarray(p, dtype=np.float64) for p in polygons]
        for vertices in polygons:
            if vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 2 or not np.isfinite(vertices).all():
                raise ValueError(f"an obstacle polygon needs >= 2 finite (x, y) vertices; got shape {vertices.shape}")
        self.valid[b] = False
        if not polygons:
            return
        sizes = np.array([len(v) for v in polygons])
        total = int(sizes.sum())
        if total > self.points.shape[1]:
            raise ValueError(f"env {b}'s polygons have {total} vertices; room was made for {self.points.shape[1]}")
        vertices = np.concatenate(polygons)
        start = np.repeat(np.cumsum(sizes) - sizes, sizes)  # each vertex's polygon's first index
        size = np.repeat(sizes, sizes)
        local = np.arange(total) - start
        after, before = start + (local + 1) % size, start + (local - 1) % size
        edges = vertices[after] - vertices
        lengths = np.linalg.norm(edges, axis=1)
        if (lengths <= 0).any():
            raise ValueError("an obstacle polygon repeats a vertex (an edge of length 0)")
        self.points[b, :total] = vertices
        self.unit_dir[b, :total] = edges / lengths[:, None]
        self.next[b, :total], self.prev[b, :total] = after, before
        self.convex[b, :total] = (size == 2) | (_left_of(vertices[before], vertices, vertices[after]) >= 0.0)
        self.valid[b, :total] = True


def orca_velocities(
    positions: np.ndarray,
    velocities: np.ndarray,
    preferred: np.ndarray,
    params: OrcaParams,
    time_step: float,
    active: np.ndarray | None = None,
    obstacles: Obstacles | None = None,
    *,
    radii: np.ndarray | None = None,
    max_speeds: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
) -> np.ndarray:
    """New velocities ``[B, N, 2]`` of agents at ``positions`` moving at ``velocities`` who want ``preferred``.

    :param active: ``[B, N]`` booleans; inactive agents (padding, people who left) are neither moved nor
        avoided, and get velocity 0.
    :param obstacles: the envs' static obstacles, or None.
    :param radii: ``[B, N]`` per-agent radii (RVO2's per-agent ``radius``); ``params.radius`` for all if None.
    :param max_speeds: ``[B, N]`` per-agent speed limits; ``params.max_speed`` for all if None.
    :param ignore: ``[B, N, N]`` booleans, ``ignore[b, i, j]``: agent ``i`` does not see agent ``j`` (a person
        who does not react to the robot); every agent sees every other if None.
    """
    return _solve(positions, velocities, preferred, params, time_step, active, obstacles,
                  radii=radii, max_speeds=max_speeds, ignore=ignore)[0]


def _solve(positions, velocities, preferred, params: OrcaParams, time_step: float, active=None, obstacles=None, *,
           radii=None, max_speeds=None, ignore=None):
    """:func:`orca_velocities`, and which agents' lines left no room (their velocity from the 3-D program)."""
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    velocities = np.ascontiguousarray(velocities, dtype=np.float64)
    preferred = np.ascontiguousarray(preferred, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[2] != 2:
        raise ValueError(f"positions must be [B, N, 2]; got {positions.shape}")
    b, n, _ = positions.shape
    if velocities.shape != positions.shape or preferred.shape != positions.shape:
        raise ValueError(f"positions {positions.shape}, velocities {velocities.shape} and preferred "
                         f"{preferred.shape} must all be [B, N, 2]")
    active = np.ones((b, n), dtype=np.bool_) if active is None else np.ascontiguousarray(active, dtype=np.bool_)
    if active.shape != (b, n):
        raise ValueError(f"active must be [B, N] = {(b, n)}; got {active.shape}")
    radii = _per_agent("radii", radii, params.radius, (b, n))
    max_speeds = _per_agent("max_speeds", max_speeds, params.max_speed, (b, n))
    if ignore is None:
        ignore = np.zeros((b, n, n), dtype=np.bool_)
    ignore = np.ascontiguousarray(ignore, dtype=np.bool_)
    if ignore.shape != (b, n, n):
        raise ValueError(f"ignore must be [B, N, N] = {(b, n, n)}; got {ignore.shape}")
    if obstacles is None:
        obstacles = Obstacles.from_polygons([[] for _ in range(b)])
    if obstacles.points.shape[0] != b:
        raise ValueError(f"obstacles are for {obstacles.points.shape[0]} envs, the agents for {b}")
    out = np.zeros_like(positions)
    stuck = np.zeros((b, n), dtype=np.bool_)
    _kernel(positions, velocities, preferred, active, active, ignore, radii, max_speeds, obstacles.points,
            obstacles.next, obstacles.prev, obstacles.unit_dir, obstacles.convex, obstacles.valid,
            float(params.neighbor_dist), int(params.max_neighbors), float(params.time_horizon),
            float(params.time_horizon_obst), float(time_step), out, stuck)
    return out, stuck


def orca_velocities_prepared(positions, velocities, preferred, active, ignore, radii, max_speeds,
                             obstacles: Obstacles, params: OrcaParams, time_step: float, out: np.ndarray,
                             compute: np.ndarray | None = None) -> np.ndarray:
    """:func:`orca_velocities` without argument checks or copies, for a simulator stepping its own arrays.

    Every array must be C-contiguous, of the shapes :func:`orca_velocities` documents, float64 (bool for
    ``active`` and ``ignore``); ``out`` ``[B, N, 2]`` receives the velocities and is returned. ``compute``
    ``[B, N]`` (default: all active agents) limits which agents get a new velocity; the others are still
    avoided as they move, and their rows of ``out`` stay 0.
    """
    out[:] = 0.0
    stuck = np.zeros(active.shape, dtype=np.bool_)
    _kernel(positions, velocities, preferred, active, active if compute is None else compute, ignore, radii,
            max_speeds, obstacles.points, obstacles.next,
            obstacles.prev, obstacles.unit_dir, obstacles.convex, obstacles.valid, float(params.neighbor_dist),
            int(params.max_neighbors), float(params.time_horizon), float(params.time_horizon_obst), float(time_step),
            out, stuck)
    return out


def _per_agent(name: str, values: np.ndarray | None, default: float, shape: tuple[int, int]) -> np.ndarray:
    if values is None:
        return np.full(shape, float(default))
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.shape != shape:
        raise ValueError(f"{name} must be [B, N] = {shape}; got {values.shape}")
    if not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"{name} must all be finite numbers > 0")
    return values


def _left_of(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """> 0 when ``c`` is left of the line from ``a`` to ``b`` (RVO2's leftOf)."""
    return (a[..., 0] - c[..., 0]) * (b[..., 1] - a[..., 1]) - (a[..., 1] - c[..., 1]) * (b[..., 0] - a[..., 0])


# --- the compiled kernel: RVO2's Agent::computeNeighbors / computeNewVelocity and its linear programs ---------

_jit = numba.njit(cache=True, fastmath=False)


@_jit
def _det(ax, ay, bx, by):
    return ax * by - ay * bx


@_jit
def _linear_program1(px, py, dx, dy, line, radius, opt_x, opt_y, direction_opt, result):
    """The best point on line ``line`` inside the speed circle and the lines before it; False if there is none."""
    dot = px[line] * dx[line] + py[line] * dy[line]
    discriminant = dot * dot + radius * radius - (px[line] * px[line] + py[line] * py[line])
    if discriminant < 0.0:
        return False
    root = np.sqrt(discriminant)
    t_left, t_right = -dot - root, -dot + root
    for j in range(line):
        denominator = _det(dx[line], dy[line], dx[j], dy[j])
        numerator = _det(dx[j], dy[j], px[line] - px[j], py[line] - py[j])
        if abs(denominator) <= EPSILON:  # parallel: line j excludes all of this line, or none of it
            if numerator < 0.0:
                return False
            continue
        t = numerator / denominator
        if denominator >= 0.0:
            t_right = min(t_right, t)
        else:
            t_left = max(t_left, t)
        if t_left > t_right:
            return False
    if direction_opt:
        t = t_right if opt_x * dx[line] + opt_y * dy[line] > 0.0 else t_left
    else:
        t = min(max(dx[line] * (opt_x - px[line]) + dy[line] * (opt_y - py[line]), t_left), t_right)
    result[0] = px[line] + t * dx[line]
    result[1] = py[line] + t * dy[line]
    return True


@_jit
def _linear_program2(px, py, dx, dy, count, radius, opt_x, opt_y, direction_opt, result):
    """The velocity closest to the optimum (or furthest along it) inside the first ``count`` lines and the speed
    circle; returns the line it failed on, or ``count``."""
    if direction_opt:
        result[0], result[1] = opt_x * radius, opt_y * radius
    elif opt_x * opt_x + opt_y * opt_y > radius * radius:
        norm = np.sqrt(opt_x * opt_x + opt_y * opt_y)
        result[0], result[1] = opt_x / norm * radius, opt_y / norm * radius
    else:
        result[0], result[1] = opt_x, opt_y
    for i in range(count):
        if _det(dx[i], dy[i], px[i] - result[0], py[i] - result[1]) > 0.0:  # the result violates line i
            keep_x, keep_y = result[0], result[1]
            if not _linear_program1(px, py, dx, dy, i, radius, opt_x, opt_y, direction_opt, result):
                result[0], result[1] = keep_x, keep_y
                return i
    return count


@_jit
def _linear_program3(px, py, dx, dy, count, n_obst, begin, radius, result):
    """Where the lines leave no room: the velocity that violates the worst agent line least, keeping every
    obstacle line."""
    distance = 0.0
    qx, qy, ex, ey = np.empty(count), np.empty(count), np.empty(count), np.empty(count)
    for i in range(begin, count):
        if _det(dx[i], dy[i], px[i] - result[0], py[i] - result[1]) > distance:
            m = 0
            for j in range(n_obst):
                qx[m], qy[m], ex[m], ey[m] = px[j], py[j], dx[j], dy[j]
                m += 1
            for j in range(n_obst, i):  # the agent lines before i, projected onto line i
                determinant = _det(dx[i], dy[i], dx[j], dy[j])
                if abs(determinant) <= EPSILON:
                    if dx[i] * dx[j] + dy[i] * dy[j] > 0.0:
                        continue  # same direction: no constraint on line i
                    qx[m], qy[m] = 0.5 * (px[i] + px[j]), 0.5 * (py[i] + py[j])
                else:
                    t = _det(dx[j], dy[j], px[i] - px[j], py[i] - py[j]) / determinant
                    qx[m], qy[m] = px[i] + t * dx[i], py[i] + t * dy[i]
                vx, vy = dx[j] - dx[i], dy[j] - dy[i]
                norm = np.sqrt(vx * vx + vy * vy)
                ex[m], ey[m] = vx / norm, vy / norm
                m += 1
            keep_x, keep_y = result[0], result[1]
            if _linear_program2(qx, qy, ex, ey, m, radius, -dy[i], dx[i], True, result) < m:
                result[0], result[1] = keep_x, keep_y  # floating-point failure: keep the previous result (RVO2)
            distance = _det(dx[i], dy[i], px[i] - result[0], py[i] - result[1])


@_jit
def _leg(rx, ry, radius, left):
    """The left or right tangent direction from the agent to a disc of ``radius`` around a point at (rx, ry)."""
    dist_sq = rx * rx + ry * ry
    leg = np.sqrt(max(dist_sq - radius * radius, 0.0))
    if left:
        return (rx * leg - ry * radius) / dist_sq, (rx * radius + ry * leg) / dist_sq
    return (rx * leg + ry * radius) / dist_sq, (-rx * radius + ry * leg) / dist_sq


@_jit
def _normalise(x, y):
    norm = np.sqrt(x * x + y * y)
    return x / norm, y / norm


@_jit
def _obstacle_lines(b, ax, ay, vx, vy, pts, nxt, prv, unit, convex, valid, radius, horizon_obst, max_speed, px, py, dx, dy):
    """The agent's obstacle lines into (px, py, dx, dy), nearest edge first; returns how many."""
    n_vertices = pts.shape[1]
    range_sq = (horizon_obst * max_speed + radius) ** 2
    order = np.empty(n_vertices, dtype=np.int64)
    dists = np.empty(n_vertices)
    n_near = 0
    for e in range(n_vertices):  # edges the agent faces (it is on their right) within range, nearest first
        if not valid[b, e]:
            continue
        x1, y1 = pts[b, e, 0], pts[b, e, 1]
        x2, y2 = pts[b, nxt[b, e], 0], pts[b, nxt[b, e], 1]
        if _det(x1 - ax, y1 - ay, x2 - x1, y2 - y1) >= 0.0:
            continue
        r = ((ax - x1) * (x2 - x1) + (ay - y1) * (y2 - y1)) / ((x2 - x1) ** 2 + (y2 - y1) ** 2)
        if r < 0.0:
            cx, cy = x1, y1
        elif r > 1.0:
            cx, cy = x2, y2
        else:
            cx, cy = x1 + r * (x2 - x1), y1 + r * (y2 - y1)
        d = (ax - cx) ** 2 + (ay - cy) ** 2
        if d >= range_sq:
            continue
        k = n_near
        n_near += 1
        while k > 0 and d < dists[k - 1]:
            dists[k], order[k] = dists[k - 1], order[k - 1]
            k -= 1
        dists[k], order[k] = d, e

    inv_t = 1.0 / horizon_obst
    radius_sq = radius * radius
    count = 0
    for k in range(n_near):
        o1 = order[k]
        o2 = nxt[b, o1]
        r1x, r1y = pts[b, o1, 0] - ax, pts[b, o1, 1] - ay
        r2x, r2y = pts[b, o2, 0] - ax, pts[b, o2, 1] - ay
        covered = False  # both ends of the edge beyond a line already made, by at least the radius
        for j in range(count):
            if (_det(inv_t * r1x - px[j], inv_t * r1y - py[j], dx[j], dy[j]) - inv_t * radius >= -EPSILON
                    and _det(inv_t * r2x - px[j], inv_t * r2y - py[j], dx[j], dy[j]) - inv_t * radius >= -EPSILON):
                covered = True
                break
        if covered:
            continue
        dist_sq1, dist_sq2 = r1x * r1x + r1y * r1y, r2x * r2x + r2y * r2y
        ox, oy = pts[b, o2, 0] - pts[b, o1, 0], pts[b, o2, 1] - pts[b, o1, 1]
        s = (-r1x * ox - r1y * oy) / (ox * ox + oy * oy)
        dist_sq_line = (-r1x - s * ox) ** 2 + (-r1y - s * oy) ** 2

        # Already touching: a line through the origin of velocity space that leads away.
        if s < 0.0 and dist_sq1 <= radius_sq:
            if convex[b, o1]:
                px[count], py[count] = 0.0, 0.0
                dx[count], dy[count] = _normalise(-r1y, r1x)
                count += 1
            continue
        if s > 1.0 and dist_sq2 <= radius_sq:
            if convex[b, o2] and _det(r2x, r2y, unit[b, o2, 0], unit[b, o2, 1]) >= 0.0:
                px[count], py[count] = 0.0, 0.0
                dx[count], dy[count] = _normalise(-r2y, r2x)
                count += 1
            continue
        if s >= 0.0 and s < 1.0 and dist_sq_line <= radius_sq:
            px[count], py[count] = 0.0, 0.0
            dx[count], dy[count] = -unit[b, o1, 0], -unit[b, o1, 1]
            count += 1
            continue

        # Not touching: the velocity obstacle's legs, both from one vertex when the edge is seen end-on.
        if s < 0.0 and dist_sq_line <= radius_sq:
            if not convex[b, o1]:
                continue
            o2 = o1
            lx, ly = _leg(r1x, r1y, radius, True)
            rx, ry = _leg(r1x, r1y, radius, False)
        elif s > 1.0 and dist_sq_line <= radius_sq:
            if not convex[b, o2]:
                continue
            o1 = o2
            lx, ly = _leg(r2x, r2y, radius, True)
            rx, ry = _leg(r2x, r2y, radius, False)
        else:
            if convex[b, o1]:
                lx, ly = _leg(r1x, r1y, radius, True)
            else:
                lx, ly = -unit[b, o1, 0], -unit[b, o1, 1]  # a non-convex vertex: the leg extends the edge
            if convex[b, o2]:
                rx, ry = _leg(r2x, r2y, radius, False)
            else:
                rx, ry = unit[b, o1, 0], unit[b, o1, 1]
        # A leg may not point into the neighbouring edge: that edge's direction instead, and no line on it.
        left_neighbour = prv[b, o1]
        left_foreign = right_foreign = False
        if convex[b, o1] and _det(lx, ly, -unit[b, left_neighbour, 0], -unit[b, left_neighbour, 1]) >= 0.0:
            lx, ly = -unit[b, left_neighbour, 0], -unit[b, left_neighbour, 1]
            left_foreign = True
        if convex[b, o2] and _det(rx, ry, unit[b, o2, 0], unit[b, o2, 1]) <= 0.0:
            rx, ry = unit[b, o2, 0], unit[b, o2, 1]
            right_foreign = True

        lcx, lcy = inv_t * (pts[b, o1, 0] - ax), inv_t * (pts[b, o1, 1] - ay)
        rcx, rcy = inv_t * (pts[b, o2, 0] - ax), inv_t * (pts[b, o2, 1] - ay)
        cvx, cvy = rcx - lcx, rcy - lcy
        same = o1 == o2
        t = 0.5 if same else ((vx - lcx) * cvx + (vy - lcy) * cvy) / (cvx * cvx + cvy * cvy)
        t_left = (vx - lcx) * lx + (vy - lcy) * ly
        t_right = (vx - rcx) * rx + (vy - rcy) * ry
        if (t < 0.0 and t_left < 0.0) or (same and t_left < 0.0 and t_right < 0.0):  # the left cut-off circle
            wx, wy = _normalise(vx - lcx, vy - lcy)
            dx[count], dy[count] = wy, -wx
            px[count], py[count] = lcx + radius * inv_t * wx, lcy + radius * inv_t * wy
            count += 1
            continue
        if t > 1.0 and t_right < 0.0:  # the right cut-off circle
            wx, wy = _normalise(vx - rcx, vy - rcy)
            dx[count], dy[count] = wy, -wx
            px[count], py[count] = rcx + radius * inv_t * wx, rcy + radius * inv_t * wy
            count += 1
            continue
        # The nearest of the cut-off line and the two legs.
        d_cut = np.inf if (t < 0.0 or t > 1.0 or same) else (vx - (lcx + t * cvx)) ** 2 + (vy - (lcy + t * cvy)) ** 2
        d_left = np.inf if t_left < 0.0 else (vx - (lcx + t_left * lx)) ** 2 + (vy - (lcy + t_left * ly)) ** 2
        d_right = np.inf if t_right < 0.0 else (vx - (rcx + t_right * rx)) ** 2 + (vy - (rcy + t_right * ry)) ** 2
        if d_cut <= d_left and d_cut <= d_right:
            ldx, ldy, cx, cy = -unit[b, o1, 0], -unit[b, o1, 1], lcx, lcy
        elif d_left <= d_right:
            if left_foreign:
                continue
            ldx, ldy, cx, cy = lx, ly, lcx, lcy
        else:
            if right_foreign:
                continue
            ldx, ldy, cx, cy = -rx, -ry, rcx, rcy
        dx[count], dy[count] = ldx, ldy
        px[count], py[count] = cx + radius * inv_t * -ldy, cy + radius * inv_t * ldx
        count += 1
    return count


@numba.njit(cache=True, parallel=True)
def _kernel(pos, vel, pref, active, compute, ignore, radii, speeds, pts, nxt, prv, unit, convex, valid, neighbor_dist,
            max_neighbors, horizon, horizon_obst, time_step, out, stuck):
    n_envs, n_agents, _ = pos.shape
    n_vertices = pts.shape[1]
    for flat in numba.prange(n_envs * n_agents):
        b, a = flat // n_agents, flat % n_agents
        if not (active[b, a] and compute[b, a]):
            continue
        ax, ay, vx, vy = pos[b, a, 0], pos[b, a, 1], vel[b, a, 0], vel[b, a, 1]
        radius, max_speed = radii[b, a], speeds[b, a]
        capacity = n_vertices + max_neighbors
        px, py, dx, dy = np.empty(capacity), np.empty(capacity), np.empty(capacity), np.empty(capacity)
        n_obst = _obstacle_lines(b, ax, ay, vx, vy, pts, nxt, prv, unit, convex, valid, radius, horizon_obst,
                                 max_speed, px, py, dx, dy)

        # The max_neighbors nearest other agents within neighbor_dist, nearest first.
        near = np.empty(max_neighbors, dtype=np.int64)
        near_sq = np.empty(max_neighbors)
        n_near = 0
        for o in range(n_agents):
            if o == a or not active[b, o] or ignore[b, a, o]:
                continue
            d = (pos[b, o, 0] - ax) ** 2 + (pos[b, o, 1] - ay) ** 2
            if d >= neighbor_dist * neighbor_dist:
                continue
            if n_near < max_neighbors:
                k = n_near
                n_near += 1
            elif d < near_sq[max_neighbors - 1]:
                k = max_neighbors - 1
            else:
                continue
            while k > 0 and d < near_sq[k - 1]:
                near_sq[k], near[k] = near_sq[k - 1], near[k - 1]
                k -= 1
            near_sq[k], near[k] = d, o

        inv_h = 1.0 / horizon
        count = n_obst
        for k in range(n_near):
            o = near[k]
            combined = radius + radii[b, o]
            combined_sq = combined * combined
            rx, ry = pos[b, o, 0] - ax, pos[b, o, 1] - ay
            wvx, wvy = vx - vel[b, o, 0], vy - vel[b, o, 1]  # relative velocity
            dist_sq = rx * rx + ry * ry
            if dist_sq > combined_sq:
                wx, wy = wvx - inv_h * rx, wvy - inv_h * ry
                w_len_sq = wx * wx + wy * wy
                dot1 = wx * rx + wy * ry
                if dot1 < 0.0 and dot1 * dot1 > combined_sq * w_len_sq:  # the cut-off circle
                    w_len = np.sqrt(w_len_sq)
                    ux, uy = wx / w_len, wy / w_len
                    dx[count], dy[count] = uy, -ux
                    shift = combined * inv_h - w_len
                    ux, uy = shift * ux, shift * uy
                else:  # a leg
                    if _det(rx, ry, wx, wy) > 0.0:
                        lx, ly = _leg(rx, ry, combined, True)
                    else:
                        lx, ly = _leg(rx, ry, combined, False)
                        lx, ly = -lx, -ly
                    dx[count], dy[count] = lx, ly
                    along = wvx * lx + wvy * ly
                    ux, uy = along * lx - wvx, along * ly - wvy
            else:  # overlapping: separate within one time step
                inv_s = 1.0 / time_step
                wx, wy = wvx - inv_s * rx, wvy - inv_s * ry
                w_len = np.sqrt(wx * wx + wy * wy)
                ux, uy = wx / w_len, wy / w_len
                dx[count], dy[count] = uy, -ux
                shift = combined * inv_s - w_len
                ux, uy = shift * ux, shift * uy
            px[count], py[count] = vx + 0.5 * ux, vy + 0.5 * uy
            count += 1

        result = np.empty(2)
        fail = _linear_program2(px, py, dx, dy, count, max_speed, pref[b, a, 0], pref[b, a, 1], False, result)
        if fail < count:
            stuck[b, a] = True
            _linear_program3(px, py, dx, dy, count, n_obst, fail, max_speed, result)
        out[b, a, 0], out[b, a, 1] = result[0], result[1]
