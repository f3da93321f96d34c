"""A 2-D lidar and line of sight for many envs at once, compiled with numba.

:func:`lidar_scan` casts ``n_rays`` rays from each env's robot and returns, per ray, the distance to the first
thing it hits: an obstacle edge (:class:`~roboreward.envs.crowd.orca.Obstacles`: boxes, walls, a room's
outline) or a person (a circle). :func:`line_of_sight` says which people (any points) each robot can see past
the obstacles. Both run every ray (every robot-target pair) of every env in one call, in parallel on all cores,
with no Python in the loop; numba compiles the kernels on first use and caches them on disk.

Geometry, the same in both functions:

- Edges are two-sided segments: a polygon's orientation (RVO2's: counter-clockwise for a box, clockwise for a
  room) does not matter here, and a robot inside a box sees the box's walls from inside.
- Segments are closed: a ray that passes exactly through a vertex, or grazes the end of a wall, hits it; a ray
  along a wall's line hits the wall's nearer end. A ray that starts on an edge reads 0.
- A circle is solid: a ray that starts inside (or on) a person's circle reads 0; a ray tangent to one hits it.

Ray angles (:func:`ray_angles`) are relative to the robot's heading, counter-clockwise, in increasing order:
with ``fov = 2π``, ``n_rays`` evenly spaced from -π (straight behind) without repeating it at +π, so the ray
along the heading is ``n_rays // 2`` when ``n_rays`` is even; with ``fov < 2π``, from ``-fov/2`` to ``+fov/2``
inclusive. A single ray looks along the heading. Distances are float64.
"""

from __future__ import annotations

import numba
import numpy as np

from roboreward.envs.crowd.orca import Obstacles

RAY_BLOCK = 32  # rays one task of the scan kernel casts together (the inner loops run over them)


def ray_angles(n_rays: int, fov: float) -> np.ndarray:
    """The rays' angles ``[n_rays]`` (radians, float64) relative to the heading; see the module docstring."""
    n_rays, fov = _check_rays(n_rays, fov)
    if n_rays == 1:
        return np.zeros(1)
    if fov == 2 * np.pi:
        return -np.pi + 2 * np.pi * np.arange(n_rays) / n_rays
    return np.linspace(-fov / 2, fov / 2, n_rays)


def _obstacle_arrays(obstacles: Obstacles | None, n_envs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The obstacles' ``points [B, V, 2]``, ``next [B, V]`` and ``valid [B, V]`` as the kernels take them."""
    if obstacles is None:
        return np.zeros((n_envs, 0, 2)), np.zeros((n_envs, 0), dtype=np.int64), np.zeros((n_envs, 0), dtype=np.bool_)
    if not isinstance(obstacles, Obstacles):
        raise TypeError(f"obstacles must be an Obstacles (Obstacles.from_polygons) or None; got "
                         f"{type(obstacles).__name__}")
    points = np.ascontiguousarray(obstacles.points, dtype=np.float64)
    nxt = np.ascontiguousarray(obstacles.next, dtype=np.int64)
    valid = np.ascontiguousarray(obstacles.valid, dtype=np.bool_)
    if points.ndim != 3 or points.shape[2] != 2 or nxt.shape != points.shape[:2] or valid.shape != points.shape[:2]:
        raise ValueError(f"obstacles: points must be [B, V, 2] and next, valid [B, V]; got points {points.shape}, "
                         f"next {nxt.shape}, valid {valid.shape}")
    if points.shape[0] != n_envs:
        raise ValueError(f"obstacles are for {points.shape[0]} envs, the robots for {n_envs}")
    return points, nxt, valid


def lidar_scan(
    origins: np.ndarray,
    headings: np.ndarray,
    obstacles: Obstacles | None,
    centers: np.ndarray,
    radii: np.ndarray,
    active: np.ndarray,
    *,
    n_rays: int,
    fov: float,
    max_range: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Distances ``[B, n_rays]`` (float64) from each robot along each ray to the first edge or circle it hits.

    A ray that hits nothing within ``max_range`` reads ``max_range``.

    :param origins: ``[B, 2]`` the robots' positions (the rays' common origin).
    :param headings: ``[B]`` the robots' headings, radians; the rays' angles are ``headings[b] + ray_angles(n_rays,
        fov)``.
    :param obstacles: the envs' static obstacles (``B`` envs), or None for none.
    :param centers: ``[B, N, 2]`` the people's centres (N may be 0).
    :param radii: ``[B, N]`` their radii (>= 0).
    :param active: ``[B, N]`` booleans; inactive people (padding) are not seen, and their centres and radii are
        not read (NaN is fine).
    :param n_rays: rays per robot, >= 1.
    :param fov: the angle the rays span, in (0, 2π].
    :param max_range: the lidar's range, > 0.
    :param out: a C-contiguous float64 ``[B, n_rays]`` array to write the scan into, returned.
    """
    origins = _array("origins", origins, np.float64)
    headings = _array("headings", headings, np.float64)
    if origins.ndim != 2 or origins.shape[1] != 2:
        raise ValueError(f"origins must be [B, 2]; got {origins.shape}")
    b = origins.shape[0]
    if headings.shape != (b,):
        raise ValueError(f"headings must be [B] = {(b,)}; got {headings.shape}")
    _check_finite("origins", origins)
    _check_finite("headings", headings)
    centers, radii, active = _people(centers, radii, active, b)
    angles = ray_angles(n_rays, fov)
    max_range = _number("max_range", max_range)
    if not (np.isfinite(max_range) and max_range > 0):
        raise ValueError(f"max_range={max_range} must be a finite number > 0")
    n_rays = len(angles)
    if out is None:
        out = np.empty((b, n_rays))
    elif (not isinstance(out, np.ndarray) or out.shape != (b, n_rays) or out.dtype != np.float64
          or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous float64 array of shape {(b, n_rays)}; got "
                         f"{getattr(out, 'shape', type(out).__name__)} {getattr(out, 'dtype', '')}")
    points, nxt, valid = _obstacle_arrays(obstacles, b)
    _scan_kernel(origins, np.cos(headings), np.sin(headings), np.cos(angles), np.sin(angles), points, nxt, valid,
                 centers, radii, active, max_range, out)
    return out


def line_of_sight(origins: np.ndarray, targets: np.ndarray, obstacles: Obstacles | None) -> np.ndarray:
    """Booleans ``[B, N]``: whether the segment from ``origins[b]`` to ``targets[b, n]`` crosses no obstacle edge.

    Segments are closed: a sight line that touches an edge anywhere — through a vertex, grazing a wall's end,
    running along a wall, ending (or starting) on an edge — is blocked. People do not block each other here.

    :param origins: ``[B, 2]`` the viewers' positions.
    :param targets: ``[B, N, 2]`` the points to look at (N may be 0).
    :param obstacles: the envs' static obstacles (``B`` envs), or None (everything visible).
    """
    origins = _array("origins", origins, np.float64)
    targets = _array("targets", targets, np.float64)
    if origins.ndim != 2 or origins.shape[1] != 2:
        raise ValueError(f"origins must be [B, 2]; got {origins.shape}")
    b = origins.shape[0]
    if targets.ndim != 3 or targets.shape[0] != b or targets.shape[2] != 2:
        raise ValueError(f"targets must be [B, N, 2] with B = {b}; got {targets.shape}")
    _check_finite("origins", origins)
    _check_finite("targets", targets)
    points, nxt, valid = _obstacle_arrays(obstacles, b)
    out = np.empty(targets.shape[:2], dtype=np.bool_)
    _sight_kernel(origins, targets, points, nxt, valid, out)
    return out


# --- argument checks ------------------------------------------------------------------------------------------


def _array(name: str, value, dtype) -> np.ndarray:
    try:
        return np.ascontiguousarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be an array of numbers; got {type(value).__name__}: {error}") from None


def _number(name: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None


def _check_finite(name: str, value: np.ndarray) -> None:
    if not np.isfinite(value).all():
        raise ValueError(f"{name} must be finite; got NaN or inf")


def _check_rays(n_rays, fov) -> tuple[int, float]:
    if isinstance(n_rays, bool) or not isinstance(n_rays, (int, np.integer)) or n_rays < 1:
        raise ValueError(f"n_rays={n_rays!r} must be an integer >= 1")
    fov = _number("fov", fov)
    if not (fov > 0 and fov <= 2 * np.pi):  # also rejects NaN
        raise ValueError(f"fov={fov} must be in (0, 2π] radians")
    return int(n_rays), fov


def _people(centers, radii, active, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centers = _array("centers", centers, np.float64)
    if centers.ndim != 3 or centers.shape[0] != b or centers.shape[2] != 2:
        raise ValueError(f"centers must be [B, N, 2] with B = {b}; got {centers.shape}")
    n = centers.shape[1]
    radii = _array("radii", radii, np.float64)
    if radii.shape != (b, n):
        raise ValueError(f"radii must be [B, N] = {(b, n)}; got {radii.shape}")
    active = np.asarray(active)
    if active.shape != (b, n):
        raise ValueError(f"active must be [B, N] = {(b, n)}; got {active.shape}")
    if active.dtype != np.bool_:
        raise ValueError(f"active must be booleans; got dtype {active.dtype}")
    active = np.ascontiguousarray(active)
    if not np.isfinite(centers).all() and not np.isfinite(centers[active]).all():  # padding may hold NaN
        raise ValueError("centers (of active people) must be finite; got NaN or inf")
    fine = (radii >= 0).all() and (radii < np.inf).all()  # False on NaN
    if not fine and not ((radii[active] >= 0).all() and (radii[active] < np.inf).all()):
        raise ValueError("radii (of active people) must be finite and >= 0")
    return centers, radii, active


# --- the compiled kernels -------------------------------------------------------------------------------------


@numba.njit(cache=True, parallel=True)
def _scan_kernel(origins, cos_h, sin_h, cos_a, sin_a, points, nxt, valid, centers, radii, active, max_range, out):
    """``out[b, k]``: the first hit along ray k of env b. Tasks are (env, block of RAY_BLOCK rays); each task
    goes through the env's edges and circles once, testing all its rays against each in a tight loop."""
    n_envs, n_rays = out.shape
    n_people, n_vertices = centers.shape[1], points.shape[1]
    n_blocks = (n_rays + RAY_BLOCK - 1) // RAY_BLOCK
    for task in numba.prange(n_envs * n_blocks):
        b = task // n_blocks
        k0 = (task % n_blocks) * RAY_BLOCK
        m = min(RAY_BLOCK, n_rays - k0)
        ox, oy = origins[b, 0], origins[b, 1]
        dx, dy, best = np.empty(m), np.empty(m), np.empty(m)
        for i in range(m):  # direction of heading + angle, by rotating the angle's unit vector
            dx[i] = cos_h[b] * cos_a[k0 + i] - sin_h[b] * sin_a[k0 + i]
            dy[i] = sin_h[b] * cos_a[k0 + i] + cos_h[b] * sin_a[k0 + i]
            best[i] = max_range

        for p in range(n_people):  # circles: |o + t d - c| = r, the smaller root t
            if not active[b, p]:
                continue
            fx, fy = ox - centers[b, p, 0], oy - centers[b, p, 1]
            c = fx * fx + fy * fy - radii[b, p] * radii[b, p]
            if c <= 0.0:  # the origin is inside (or on) the circle
                for i in range(m):
                    best[i] = 0.0
                continue
            for i in range(m):
                half_b = fx * dx[i] + fy * dy[i]
                disc = half_b * half_b - c
                if half_b < 0.0 and disc >= 0.0:
                    t = c / (np.sqrt(disc) - half_b)  # = -half_b - sqrt(disc), without the cancellation
                    best[i] = min(best[i], t)

        for v in range(n_vertices):  # edges p -> q: o + t d = p + s (q - p), t >= 0, 0 <= s <= 1
            if not valid[b, v]:
                continue
            w = nxt[b, v]
            wx, wy = points[b, v, 0] - ox, points[b, v, 1] - oy
            ex, ey = points[b, w, 0] - points[b, v, 0], points[b, w, 1] - points[b, v, 1]
            t_num = wx * ey - wy * ex  # t = t_num / den, s = s_num / den
            parallel = False  # some ray parallel to the edge
            for i in range(m):
                den = dx[i] * ey - dy[i] * ex
                parallel |= den == 0.0
                s_num = wx * dy[i] - wy * dx[i]
                sign = 1.0 if den >= 0.0 else -1.0
                den, tn, sn = den * sign, t_num * sign, s_num * sign
                if den > 0.0 and tn >= 0.0 and sn >= 0.0 and sn <= den and tn < best[i] * den:
                    best[i] = min(tn / den, best[i])
            if not parallel:
                continue
            for i in range(m):  # a ray along the edge's line: it hits the nearer end ahead
                if dx[i] * ey - dy[i] * ex == 0.0 and wx * dy[i] - wy * dx[i] == 0.0:
                    t1 = wx * dx[i] + wy * dy[i]
                    t2 = (wx + ex) * dx[i] + (wy + ey) * dy[i]
                    if max(t1, t2) >= 0.0:
                        best[i] = min(best[i], max(min(t1, t2), 0.0))

        for i in range(m):
            out[b, k0 + i] = best[i]


@numba.njit(cache=True)
def _orientation(ax, ay, bx, by, cx, cy):
    """The sign of the turn a -> b -> c: 1 left, -1 right, 0 collinear."""
    cross = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    return 1 if cross > 0.0 else (-1 if cross < 0.0 else 0)


@numba.njit(cache=True)
def _between(a, b, c):
    """Whether c lies in the closed interval between a and b."""
    return min(a, b) <= c <= max(a, b)


@numba.njit(cache=True)
def _segments_touch(ax, ay, bx, by, cx, cy, dx, dy):
    """Whether the closed segments ab and cd share a point (the orientation test, collinear cases included)."""
    o1 = _orientation(ax, ay, bx, by, cx, cy)
    o2 = _orientation(ax, ay, bx, by, dx, dy)
    o3 = _orientation(cx, cy, dx, dy, ax, ay)
    o4 = _orientation(cx, cy, dx, dy, bx, by)
    return ((o1 * o2 < 0 and o3 * o4 < 0)  # a proper crossing, or an endpoint of one on the other:
            or (o1 == 0 and _between(ax, bx, cx) and _between(ay, by, cy))
            or (o2 == 0 and _between(ax, bx, dx) and _between(ay, by, dy))
            or (o3 == 0 and _between(cx, dx, ax) and _between(cy, dy, ay))
            or (o4 == 0 and _between(cx, dx, bx) and _between(cy, dy, by)))


@numba.njit(cache=True, parallel=True)
def _sight_kernel(origins, targets, points, nxt, valid, out):
    n_envs, n_targets = out.shape
    n_vertices = points.shape[1]
    for task in numba.prange(n_envs * n_targets):
        b, n = task // n_targets, task % n_targets
        ox, oy, tx, ty = origins[b, 0], origins[b, 1], targets[b, n, 0], targets[b, n, 1]
        visible = True
        for v in range(n_vertices):
            if valid[b, v] and _segments_touch(ox, oy, tx, ty, points[b, v, 0], points[b, v, 1],
                                               points[b, nxt[b, v], 0], points[b, nxt[b, v], 1]):
                visible = False
                break
        out[b, n] = visible
