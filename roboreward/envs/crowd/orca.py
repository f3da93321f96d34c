"""ORCA for many agents in many envs at once: the RVO2 library's algorithm, vectorised with numpy.

Each agent picks the velocity closest to its preferred one that stays outside every neighbour's
velocity obstacle for ``time_horizon`` seconds, each agent taking half the responsibility (van den Berg
et al., "Reciprocal n-body collision avoidance", 2011). The RVO2 library computes this agent by agent in
C++; CrowdNav-style simulators run one RVO2 simulator per human per step, which is where their time goes.
Here every step of ``B`` envs with ``N`` agents is a fixed number of array operations on ``[B·N, K]``
constraints (``K`` = ``max_neighbors``), so a batch of envs costs about what one does.

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

import numpy as np

EPSILON = 1e-5  # RVO_EPSILON: below this, two line directions count as parallel


@dataclass(frozen=True)
class OrcaParams:
    """RVO2's agent parameters (``setAgentDefaults``), the same for every agent of a call."""

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
    def from_polygons(cls, polygons: list[list[np.ndarray]]) -> Obstacles:
        """``polygons[b]``: env ``b``'s polygons, each ``[n, 2]`` vertices (n >= 2) in RVO2's orientation."""
        size = max([sum(len(p) for p in env) for env in polygons] + [1])
        b = len(polygons)
        points, unit_dir = np.zeros((b, size, 2)), np.zeros((b, size, 2))
        nxt, prv = np.zeros((b, size), dtype=np.int64), np.zeros((b, size), dtype=np.int64)
        convex, valid = np.zeros((b, size), dtype=bool), np.zeros((b, size), dtype=bool)
        for e, env in enumerate(polygons):
            start = 0
            for polygon in env:
                vertices = np.asarray(polygon, dtype=np.float64)
                n = len(vertices)
                if vertices.ndim != 2 or vertices.shape[1] != 2 or n < 2 or not np.isfinite(vertices).all():
                    raise ValueError(f"an obstacle polygon needs >= 2 finite (x, y) vertices; got shape {vertices.shape}")
                index = np.arange(n)
                after, before = (index + 1) % n, (index - 1) % n
                edges = vertices[after] - vertices
                lengths = np.linalg.norm(edges, axis=1)
                if (lengths <= 0).any():
                    raise ValueError("an obstacle polygon repeats a vertex (an edge of length 0)")
                points[e, start:start + n] = vertices
                unit_dir[e, start:start + n] = edges / lengths[:, None]
                nxt[e, start:start + n], prv[e, start:start + n] = start + after, start + before
                convex[e, start:start + n] = True if n == 2 else _left_of(vertices[before], vertices, vertices[after]) >= 0.0
                valid[e, start:start + n] = True
                start += n
        return cls(points, nxt, prv, unit_dir, convex, valid)


def orca_velocities(
    positions: np.ndarray,
    velocities: np.ndarray,
    preferred: np.ndarray,
    params: OrcaParams,
    time_step: float,
    active: np.ndarray | None = None,
    obstacles: Obstacles | None = None,
) -> np.ndarray:
    """New velocities ``[B, N, 2]`` of agents at ``positions`` moving at ``velocities`` who want ``preferred``.

    :param active: ``[B, N]`` booleans; inactive agents (padding, people who left) are neither moved nor
        avoided, and get velocity 0.
    :param obstacles: the envs' static obstacles, or None.
    """
    positions = np.asarray(positions, dtype=np.float64)
    velocities = np.asarray(velocities, dtype=np.float64)
    preferred = np.asarray(preferred, dtype=np.float64)
    b, n, _ = positions.shape
    if active is None:
        active = np.ones((b, n), dtype=bool)
    points, directions, count = _orca_lines(positions, velocities, active, params, time_step)
    m = b * n
    points, directions, count = points.reshape(m, -1, 2), directions.reshape(m, -1, 2), count.reshape(m)
    n_obst = np.zeros(m, dtype=np.int64)
    if obstacles is not None:
        o_points, o_dirs, n_obst = _obstacle_lines(positions, velocities, active, obstacles, params)
        points = np.concatenate([o_points, points], axis=1)
        directions = np.concatenate([o_dirs, directions], axis=1)
        agent_lines = directions.shape[1] - o_dirs.shape[1]
        lines_valid = np.concatenate([np.arange(o_points.shape[1])[None] < n_obst[:, None],
                                      np.arange(agent_lines)[None] < count[:, None]], axis=1)
        points, directions, _ = _compact(points, directions, lines_valid)
        count = n_obst + count
    k = points.shape[1]
    valid = np.arange(k)[None, :] < count[:, None]
    result, fail = _linear_program2(points, directions, valid, params.max_speed, preferred.reshape(m, 2), False)
    stuck = fail < count
    if stuck.any():
        result[stuck] = _linear_program3(points[stuck], directions[stuck], valid[stuck], fail[stuck],
                                         params.max_speed, result[stuck], n_obst[stuck])
    result = result.reshape(b, n, 2)
    result[~active] = 0.0
    return result


def _orca_lines(positions, velocities, active, params: OrcaParams, time_step: float):
    """Each agent's ORCA half-planes ``(point, direction)`` ``[B, N, K, 2]``, nearest neighbour first, and how
    many of the ``K`` are real (the rest is padding)."""
    b, n, _ = positions.shape
    k = min(params.max_neighbors, max(n - 1, 1))
    offsets = positions[:, None, :, :] - positions[:, :, None, :]  # [B, i, j, 2]: p_j - p_i
    dist_sq = np.einsum("bijc,bijc->bij", offsets, offsets)
    usable = active[:, None, :] & active[:, :, None] & ~np.eye(n, dtype=bool)[None]
    usable &= dist_sq < params.neighbor_dist**2
    dist_sq = np.where(usable, dist_sq, np.inf)
    order = np.argsort(dist_sq, axis=2, kind="stable")[:, :, :k]  # nearest first, as RVO2's neighbour list
    chosen = np.take_along_axis(usable, order, axis=2)
    count = chosen.sum(axis=2)

    rel_pos = np.take_along_axis(offsets, order[..., None], axis=2)  # [B, N, K, 2]
    other_vel = np.take_along_axis(np.broadcast_to(velocities[:, None], (b, n, n, 2)), order[..., None], axis=2)
    own_vel = velocities[:, :, None, :]
    rel_vel = own_vel - other_vel
    dist_sq = _dot(rel_pos, rel_pos)
    combined = 2.0 * params.radius
    combined_sq = combined**2
    inv_horizon = 1.0 / params.time_horizon

    # Not colliding: the velocity obstacle is a cone truncated by a circle at 1 / time_horizon.
    w = rel_vel - inv_horizon * rel_pos
    w_len_sq = _dot(w, w)
    dot1 = _dot(w, rel_pos)
    on_circle = (dot1 < 0.0) & (dot1**2 > combined_sq * w_len_sq)
    w_len = np.sqrt(w_len_sq)
    unit_w = w / np.where(w_len > 0, w_len, 1.0)[..., None]
    circle_dir = np.stack([unit_w[..., 1], -unit_w[..., 0]], axis=-1)
    circle_u = (combined * inv_horizon - w_len)[..., None] * unit_w

    leg = np.sqrt(np.maximum(dist_sq - combined_sq, 0.0))
    safe_dist_sq = np.where(dist_sq > 0, dist_sq, 1.0)[..., None]
    x, y = rel_pos[..., 0], rel_pos[..., 1]
    left = np.stack([x * leg - y * combined, x * combined + y * leg], axis=-1) / safe_dist_sq
    right = -np.stack([x * leg + y * combined, -x * combined + y * leg], axis=-1) / safe_dist_sq
    leg_dir = np.where((_det(rel_pos, w) > 0.0)[..., None], left, right)
    leg_u = _dot(rel_vel, leg_dir)[..., None] * leg_dir - rel_vel

    # Colliding: separate within one time step instead.
    inv_step = 1.0 / time_step
    wc = rel_vel - inv_step * rel_pos
    wc_len = np.sqrt(_dot(wc, wc))
    unit_wc = wc / np.where(wc_len > 0, wc_len, 1.0)[..., None]
    collide_dir = np.stack([unit_wc[..., 1], -unit_wc[..., 0]], axis=-1)
    collide_u = (combined * inv_step - wc_len)[..., None] * unit_wc

    apart = (dist_sq > combined_sq)[..., None]
    circle = on_circle[..., None]
    direction = np.where(apart, np.where(circle, circle_dir, leg_dir), collide_dir)
    u = np.where(apart, np.where(circle, circle_u, leg_u), collide_u)
    point = own_vel + 0.5 * u
    return point, direction, count


def _linear_program1(points, directions, valid, line, radius, optimum, direction_opt):
    """RVO2's linearProgram1 for one line index ``line`` of every row: the best point on that line within the
    speed circle and the lines before it. Returns ``(ok [M], result [M, 2])``."""
    p, d = points[:, line], directions[:, line]
    dot = _dot(p, d)
    discriminant = dot**2 + radius**2 - _dot(p, p)
    ok = discriminant >= 0.0
    root = np.sqrt(np.maximum(discriminant, 0.0))
    t_left, t_right = -dot - root, -dot + root
    for j in range(line):
        use = valid[:, j] & ok
        denominator = _det(d, directions[:, j])
        numerator = _det(directions[:, j], p - points[:, j])
        parallel = np.abs(denominator) <= EPSILON
        ok &= ~(use & parallel & (numerator < 0.0))
        cut = use & ~parallel
        t = numerator / np.where(parallel, 1.0, denominator)
        t_right = np.where(cut & (denominator >= 0.0), np.minimum(t_right, t), t_right)
        t_left = np.where(cut & (denominator < 0.0), np.maximum(t_left, t), t_left)
        ok &= ~(use & (t_left > t_right))
    if direction_opt:
        t = np.where(_dot(optimum, d) > 0.0, t_right, t_left)
    else:
        t = np.clip(_dot(d, optimum - p), t_left, t_right)
    return ok, p + t[:, None] * d


def _linear_program2(points, directions, valid, radius, optimum, direction_opt, start=None):
    """RVO2's linearProgram2: the velocity closest to ``optimum`` (or furthest along it, ``direction_opt``)
    inside every valid line and the speed circle. Returns ``(result [M, 2], failed line [M])``; the failed
    line is the number of lines when none failed."""
    m, k = valid.shape
    if direction_opt:
        result = optimum * radius
    else:
        speed = np.sqrt(_dot(optimum, optimum))
        result = np.where((speed > radius)[:, None], optimum / np.where(speed > 0, speed, 1.0)[:, None] * radius, optimum)
    result = result.copy()
    fail = valid.sum(axis=1)
    running = np.ones(m, dtype=bool)
    for i in range(k):
        rows = np.flatnonzero(running & valid[:, i] & (_det(directions[:, i], points[:, i] - result) > 0.0))
        if rows.size == 0:
            continue
        # Only the agents whose current best velocity this line cuts off solve for a new one.
        ok, candidate = _linear_program1(points[rows, : i + 1], directions[rows, : i + 1], valid[rows, : i + 1], i,
                                         radius, optimum[rows], direction_opt)
        result[rows[ok]] = candidate[ok]
        fail[rows[~ok]] = i
        running[rows[~ok]] = False
    return result, fail


def _linear_program3(points, directions, valid, begin, radius, result, n_obst):
    """RVO2's linearProgram3: where the lines leave no room, the velocity that violates the worst agent line least
    while keeping every obstacle line (the first ``n_obst`` of each row). Rows are agents; ``begin`` is the line
    each one's 2-D program failed on."""
    m, k = valid.shape
    result = result.copy()
    distance = np.zeros(m)
    index = np.arange(k)
    for i in range(k):
        rows = np.flatnonzero(valid[:, i] & (i >= begin) & (_det(directions[:, i], points[:, i] - result) > distance))
        if rows.size == 0:
            continue
        # Only the agents whose result line i cuts off: the obstacle lines as they are, then the agent lines
        # before i projected onto line i (where each crosses it, pointing along their difference).
        width = max(i, int(n_obst[rows].max()))
        d_i, p_i = directions[rows, i], points[rows, i]
        d_j, p_j = directions[rows, :width], points[rows, :width]
        determinant = _det(d_i[:, None], d_j)
        parallel = np.abs(determinant) <= EPSILON
        same_way = parallel & (_dot(d_i[:, None], d_j) > 0.0)
        crossing = p_i[:, None] + (_det(d_j, p_i[:, None] - p_j) / np.where(parallel, 1.0, determinant))[..., None] * d_i[:, None]
        proj_points = np.where(parallel[..., None], 0.5 * (p_i[:, None] + p_j), crossing)
        diff = d_j - d_i[:, None]
        norm = np.sqrt(_dot(diff, diff))
        proj_dirs = diff / np.where(norm > 0, norm, 1.0)[..., None]
        obstacle = index[None, :width] < n_obst[rows, None]
        proj_points = np.where(obstacle[..., None], p_j, proj_points)
        proj_dirs = np.where(obstacle[..., None], d_j, proj_dirs)
        proj_valid = valid[rows, :width] & (obstacle | ((index[None, :width] < i) & ~same_way))
        proj_points, proj_dirs, proj_valid = _compact(proj_points, proj_dirs, proj_valid)
        optimum = np.stack([-d_i[:, 1], d_i[:, 0]], axis=-1)
        candidate, fail = _linear_program2(proj_points, proj_dirs, proj_valid, radius, optimum, True)
        keep = fail >= proj_valid.sum(axis=1)  # a failed projection keeps the previous result (RVO2)
        result[rows[keep]] = candidate[keep]
        distance[rows] = _det(d_i, p_i - result[rows])
    return result


def _obstacle_lines(positions, velocities, active, obstacles: Obstacles, params: OrcaParams):
    """Each agent's obstacle half-planes ``[B·N, L, 2]`` in RVO2's order (nearest edge first, each skipped when the
    lines before it cover it already) and how many each agent has."""
    b, n, _ = positions.shape
    m = b * n
    pos = positions.reshape(m, 2)
    vel = velocities.reshape(m, 2)
    env = np.repeat(np.arange(b), n)
    radius, inv_t = params.radius, 1.0 / params.time_horizon_obst
    radius_sq = radius**2
    vertex = obstacles.points[env]  # [M, V, 2]
    nxt, prv = obstacles.next[env], obstacles.prev[env]
    unit, convex = obstacles.unit_dir[env], obstacles.convex[env]

    # Neighbouring edges: the agent on the edge's right (it faces it) and the segment within range, nearest first.
    start, end = vertex, np.take_along_axis(vertex, nxt[..., None], axis=1)
    seen = obstacles.valid[env] & (_left_of(start, end, pos[:, None]) < 0.0) & active.reshape(m)[:, None]
    dist_sq = _segment_dist_sq(start, end, pos[:, None])
    seen &= dist_sq < (params.time_horizon_obst * params.max_speed + radius) ** 2
    order = np.argsort(np.where(seen, dist_sq, np.inf), axis=1, kind="stable")
    n_seen = seen.sum(axis=1)
    n_edges = int(n_seen.max(initial=0))
    line_points, line_dirs = np.zeros((m, n_edges, 2)), np.zeros((m, n_edges, 2))
    count = np.zeros(m, dtype=np.int64)

    def at(array, idx):  # per agent of this round's rows, the entry at its own index
        return array[rows, idx]

    for k in range(n_edges):
        rows = np.flatnonzero(n_seen > k)  # the agents with a k-th nearest edge; the rest is done
        here, speed = pos[rows], vel[rows]
        o1 = order[rows, k]
        live = np.ones(rows.size, dtype=bool)
        o2 = at(nxt, o1)
        rel1, rel2 = at(vertex, o1) - here, at(vertex, o2) - here
        # Covered by a line already made: both ends of the edge beyond it by at least the radius.
        made, lp, ld = np.arange(k)[None] < count[rows, None], line_points[rows, :k], line_dirs[rows, :k]
        beyond1 = _det(inv_t * rel1[:, None] - lp, ld) - inv_t * radius >= -EPSILON
        beyond2 = _det(inv_t * rel2[:, None] - lp, ld) - inv_t * radius >= -EPSILON
        live &= ~(made & beyond1 & beyond2).any(axis=1)

        dist_sq1, dist_sq2 = _dot(rel1, rel1), _dot(rel2, rel2)
        edge = at(vertex, o2) - at(vertex, o1)
        s = _dot(-rel1, edge) / _dot(edge, edge)
        dist_sq_line = _dot(-rel1 - s[:, None] * edge, -rel1 - s[:, None] * edge)
        add = np.zeros(rows.size, dtype=bool)
        point, direction = np.zeros((rows.size, 2)), np.zeros((rows.size, 2))

        # Already touching: the line through the current velocity's origin that leads away.
        hit1 = live & (s < 0.0) & (dist_sq1 <= radius_sq)
        hit2 = live & ~hit1 & (s > 1.0) & (dist_sq2 <= radius_sq)
        hit_edge = live & ~hit1 & ~hit2 & (s >= 0.0) & (s < 1.0) & (dist_sq_line <= radius_sq)
        use = hit1 & at(convex, o1)
        direction[use] = _normalise(np.stack([-rel1[:, 1], rel1[:, 0]], axis=-1))[use]
        add |= use
        use = hit2 & at(convex, o2) & (_det(rel2, at(unit, o2)) >= 0.0)
        direction[use] = _normalise(np.stack([-rel2[:, 1], rel2[:, 0]], axis=-1))[use]
        add |= use
        direction[hit_edge] = -at(unit, o1)[hit_edge]
        add |= hit_edge
        live &= ~(hit1 | hit2 | hit_edge)

        # Not touching: the velocity obstacle's legs, seen from one vertex when the edge is viewed end-on.
        end_on_left = live & (s < 0.0) & (dist_sq_line <= radius_sq)
        end_on_right = live & ~end_on_left & (s > 1.0) & (dist_sq_line <= radius_sq)
        live &= ~(end_on_left & ~at(convex, o1)) & ~(end_on_right & ~at(convex, o2))
        o2 = np.where(end_on_left, o1, o2)
        o1 = np.where(end_on_right, o2, o1)
        rel1, rel2 = at(vertex, o1) - here, at(vertex, o2) - here
        left = np.where(at(convex, o1)[:, None], _leg(rel1, radius, left=True), -at(unit, o1))
        right = np.where(at(convex, o2)[:, None], _leg(rel2, radius, left=False), at(unit, o1))
        single = (end_on_left | end_on_right)[:, None]
        left = np.where(single, _leg(rel1, radius, left=True), left)
        right = np.where(single, _leg(rel1, radius, left=False), right)
        # A leg may not point into the neighbouring edge: that edge's direction instead, and no line on it.
        neighbour_dir = at(unit, at(prv, o1))
        left_foreign = at(convex, o1) & (_det(left, -neighbour_dir) >= 0.0)
        left = np.where(left_foreign[:, None], -neighbour_dir, left)
        right_foreign = at(convex, o2) & (_det(right, at(unit, o2)) <= 0.0)
        right = np.where(right_foreign[:, None], at(unit, o2), right)

        left_cut, right_cut = inv_t * rel1, inv_t * rel2
        cut_vec = right_cut - left_cut
        same = o1 == o2
        t = np.where(same, 0.5, _dot(speed - left_cut, cut_vec) / np.where(same, 1.0, _dot(cut_vec, cut_vec)))
        t_left, t_right = _dot(speed - left_cut, left), _dot(speed - right_cut, right)
        on_left_circle = live & (((t < 0.0) & (t_left < 0.0)) | (same & (t_left < 0.0) & (t_right < 0.0)))
        on_right_circle = live & ~on_left_circle & (t > 1.0) & (t_right < 0.0)
        for mask, centre in ((on_left_circle, left_cut), (on_right_circle, right_cut)):
            unit_w = _normalise(speed - centre)
            direction[mask] = np.stack([unit_w[:, 1], -unit_w[:, 0]], axis=-1)[mask]
            point[mask] = (centre + radius * inv_t * unit_w)[mask]
            add |= mask
        live &= ~(on_left_circle | on_right_circle)

        inf = np.inf
        d_cut = np.where((t < 0.0) | (t > 1.0) | same, inf, _dot2(speed - (left_cut + t[:, None] * cut_vec)))
        d_left = np.where(t_left < 0.0, inf, _dot2(speed - (left_cut + t_left[:, None] * left)))
        d_right = np.where(t_right < 0.0, inf, _dot2(speed - (right_cut + t_right[:, None] * right)))
        on_cut = live & (d_cut <= d_left) & (d_cut <= d_right)
        on_left = live & ~on_cut & (d_left <= d_right) & ~left_foreign
        on_right = live & ~on_cut & ~(d_left <= d_right) & ~right_foreign
        for mask, dirs, centre in ((on_cut, -at(unit, o1), left_cut), (on_left, left, left_cut), (on_right, -right, right_cut)):
            direction[mask] = dirs[mask]
            point[mask] = (centre + radius * inv_t * np.stack([-dirs[:, 1], dirs[:, 0]], axis=-1))[mask]
            add |= mask

        made_here = rows[add]
        line_points[made_here, count[made_here]], line_dirs[made_here, count[made_here]] = point[add], direction[add]
        count[made_here] += 1
    return line_points, line_dirs, count


def _leg(rel: np.ndarray, radius: float, left: bool) -> np.ndarray:
    """The left or right tangent direction from the agent to a disc of ``radius`` around a vertex at ``rel``."""
    dist_sq = _dot(rel, rel)
    leg = np.sqrt(np.maximum(dist_sq - radius**2, 0.0))
    x, y = rel[:, 0], rel[:, 1]
    if left:
        out = np.stack([x * leg - y * radius, x * radius + y * leg], axis=-1)
    else:
        out = np.stack([x * leg + y * radius, -x * radius + y * leg], axis=-1)
    return out / np.where(dist_sq > 0, dist_sq, 1.0)[:, None]


def _segment_dist_sq(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distance from ``c`` to the segment ``a``-``b`` (RVO2's distSqPointLineSegment)."""
    ab = b - a
    r = _dot(c - a, ab) / _dot(ab, ab)
    closest = np.where((r < 0.0)[..., None], a, np.where((r > 1.0)[..., None], b, a + r[..., None] * ab))
    return _dot2(c - closest)


def _left_of(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """> 0 when ``c`` is left of the line from ``a`` to ``b`` (RVO2's leftOf)."""
    return _det(a - c, b - a)


def _normalise(v: np.ndarray) -> np.ndarray:
    norm = np.sqrt(_dot(v, v))
    return v / np.where(norm > 0, norm, 1.0)[..., None]


def _dot2(v: np.ndarray) -> np.ndarray:
    return _dot(v, v)


def _compact(points, directions, valid):
    """Move each row's valid lines to the front, in order (RVO2's projected lines are a list without gaps)."""
    order = np.argsort(~valid, axis=1, kind="stable")
    return (np.take_along_axis(points, order[..., None], axis=1), np.take_along_axis(directions, order[..., None], axis=1),
            np.take_along_axis(valid, order, axis=1))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]


def _det(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
