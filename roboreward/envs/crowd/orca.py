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
through the reference RVO2 build and compares every new velocity.

Static obstacles are not part of this module yet: agents avoid each other only.
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
    radius: float = 0.3
    max_speed: float = 1.0

    def __post_init__(self) -> None:
        for name in ("neighbor_dist", "time_horizon", "radius", "max_speed"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"OrcaParams.{name}={value} must be a finite number > 0")
        if self.max_neighbors < 1:
            raise ValueError(f"OrcaParams.max_neighbors={self.max_neighbors} must be >= 1")


def orca_velocities(
    positions: np.ndarray,
    velocities: np.ndarray,
    preferred: np.ndarray,
    params: OrcaParams,
    time_step: float,
    active: np.ndarray | None = None,
) -> np.ndarray:
    """New velocities ``[B, N, 2]`` of agents at ``positions`` moving at ``velocities`` who want ``preferred``.

    :param active: ``[B, N]`` booleans; inactive agents (padding, people who left) are neither moved nor
        avoided, and get velocity 0.
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
    k = points.shape[1]
    valid = np.arange(k)[None, :] < count[:, None]
    result, fail = _linear_program2(points, directions, valid, params.max_speed, preferred.reshape(m, 2), False)
    stuck = fail < count
    if stuck.any():
        result[stuck] = _linear_program3(points[stuck], directions[stuck], valid[stuck], fail[stuck],
                                         params.max_speed, result[stuck])
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


def _linear_program3(points, directions, valid, begin, radius, result):
    """RVO2's linearProgram3 (no obstacle lines): where the lines leave no room, the velocity that violates the
    worst of them least. Rows are agents; ``begin`` is the line each one's 2-D program failed on."""
    m, k = valid.shape
    result = result.copy()
    distance = np.zeros(m)
    for i in range(k):
        d_i, p_i = directions[:, i], points[:, i]
        rows = valid[:, i] & (i >= begin) & (_det(d_i, p_i - result) > distance)
        if not rows.any():
            continue
        # The lines before i, projected onto line i: where each crosses it, pointing along their difference.
        d_j, p_j = directions[:, :i], points[:, :i]
        determinant = _det(d_i[:, None], d_j)
        parallel = np.abs(determinant) <= EPSILON
        same_way = parallel & (_dot(d_i[:, None], d_j) > 0.0)
        crossing = p_i[:, None] + (_det(d_j, p_i[:, None] - p_j) / np.where(parallel, 1.0, determinant))[..., None] * d_i[:, None]
        proj_points = np.where(parallel[..., None], 0.5 * (p_i[:, None] + p_j), crossing)
        diff = d_j - d_i[:, None]
        norm = np.sqrt(_dot(diff, diff))
        proj_dirs = diff / np.where(norm > 0, norm, 1.0)[..., None]
        proj_valid = valid[:, :i] & ~same_way
        proj_points, proj_dirs, proj_valid = _compact(proj_points, proj_dirs, proj_valid)
        optimum = np.stack([-d_i[:, 1], d_i[:, 0]], axis=-1)
        candidate, fail = _linear_program2(proj_points, proj_dirs, proj_valid, radius, optimum, True)
        keep = rows & (fail >= proj_valid.sum(axis=1))  # a failed projection keeps the previous result (RVO2)
        result[keep] = candidate[keep]
        distance[rows] = _det(d_i, p_i - result)[rows]
    return result


def _compact(points, directions, valid):
    """Move each row's valid lines to the front, in order (RVO2's projected lines are a list without gaps)."""
    order = np.argsort(~valid, axis=1, kind="stable")
    return (np.take_along_axis(points, order[..., None], axis=1), np.take_along_axis(directions, order[..., None], axis=1),
            np.take_along_axis(valid, order, axis=1))


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1]


def _det(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
