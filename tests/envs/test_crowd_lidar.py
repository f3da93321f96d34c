"""The batched lidar and line of sight against plain-numpy brute force on random scenes, and hand-built cases."""

import numpy as np
import pytest

from roboreward.envs.crowd.lidar import lidar_scan, line_of_sight, ray_angles
from roboreward.envs.crowd.orca import Obstacles

ROOM = np.array([[-6.0, -6.0], [-6.0, 6.0], [6.0, 6.0], [6.0, -6.0]])  # clockwise: the agents stay inside


def box(x0, y0, x1, y1):
    """A counter-clockwise box (an obstacle agents stay out of)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def random_scene(seed: int, n_envs: int = 6, n_people: int = 7):
    """Boxes, two-point walls, sometimes a room, circles (some inactive, their padding NaN); some envs empty."""
    rng = np.random.default_rng(seed)
    polygons = []
    for e in range(n_envs):
        env = []
        if e % 3 != 2:  # every third env has no obstacles
            if rng.random() < 0.5:
                env.append(ROOM)
            for _ in range(rng.integers(0, 4)):
                x, y = rng.uniform(-5, 5, 2)
                env.append(box(x, y, x + rng.uniform(0.2, 1.5), y + rng.uniform(0.2, 1.5)))
            for _ in range(rng.integers(0, 3)):
                env.append(rng.uniform(-5, 5, (2, 2)))
        polygons.append(env)
    origins = rng.uniform(-5, 5, (n_envs, 2))
    headings = rng.uniform(-np.pi, np.pi, n_envs)
    centers = rng.uniform(-5, 5, (n_envs, n_people, 2))
    radii = rng.uniform(0.1, 0.6, (n_envs, n_people))
    active = rng.random((n_envs, n_people)) < 0.7
    centers[~active] = np.nan
    radii[~active] = np.nan
    return polygons, origins, headings, centers, radii, active


def edges_of(polygons):
    """Each polygon's edges as (start, end) pairs, closed when it has more than two vertices."""
    edges = []
    for polygon in polygons:
        n = len(polygon)
        edges += [(polygon[i], polygon[(i + 1) % n]) for i in range(n if n > 2 else 1)]
    return edges


def reference_scan(polygons, origin, heading, centers, radii, active, angles, max_range):
    """One env's scan by brute force: every ray against every edge (a 2x2 solve) and every circle (the quadratic)."""
    directions = np.stack([np.cos(heading + angles), np.sin(heading + angles)], axis=-1)
    best = np.full(len(angles), max_range)
    for p, q in edges_of(polygons):
        for k, d in enumerate(directions):
            matrix = np.array([[d[0], p[0] - q[0]], [d[1], p[1] - q[1]]])  # t d - s (q - p) = p - o
            if abs(np.linalg.det(matrix)) < 1e-12:
                continue
            t, s = np.linalg.solve(matrix, p - origin)
            if t >= 0 and 0 <= s <= 1:
                best[k] = min(best[k], t)
    for c, r, on in zip(centers, radii, active):
        if not on:
            continue
        f = origin - c
        if f @ f <= r * r:
            best[:] = 0.0
            continue
        for k, d in enumerate(directions):
            half_b, q = f @ d, f @ f - r * r
            disc = half_b * half_b - q
            if disc >= 0 and -half_b - np.sqrt(disc) >= 0:
                best[k] = min(best[k], -half_b - np.sqrt(disc))
    return best


def reference_sight(polygons, origin, targets):
    visible = np.ones(len(targets), dtype=bool)
    for n, target in enumerate(targets):
        for p, q in edges_of(polygons):
            matrix = np.array([target - origin, p - q]).T  # o + t (target - o) = p + s (q - p)
            if abs(np.linalg.det(matrix)) < 1e-12:
                continue
            t, s = np.linalg.solve(matrix, p - origin)
            if 0 <= t <= 1 and 0 <= s <= 1:
                visible[n] = False
    return visible


def scan(origins, headings, polygons=None, centers=None, radii=None, active=None, **kwargs):
    """lidar_scan with defaults: no obstacles, no people, one ray ahead, range 10."""
    b = len(origins)
    centers = np.zeros((b, 0, 2)) if centers is None else np.asarray(centers, dtype=float)
    radii = np.zeros(centers.shape[:2]) if radii is None else np.asarray(radii, dtype=float)
    active = np.ones(centers.shape[:2], dtype=bool) if active is None else np.asarray(active)
    obstacles = None if polygons is None else Obstacles.from_polygons(polygons)
    kwargs = {"n_rays": 1, "fov": 2 * np.pi, "max_range": 10.0} | kwargs
    return lidar_scan(np.asarray(origins, dtype=float), np.asarray(headings, dtype=float), obstacles, centers, radii,
                      active, **kwargs)


# --- against brute force --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_scan_matches_brute_force_on_random_scenes(seed):
    polygons, origins, headings, centers, radii, active = random_scene(seed)
    n_rays, fov = [(60, 2 * np.pi), (37, np.pi), (1, 2 * np.pi), (25, 4.0)][seed % 4]
    max_range = 8.0
    ours = lidar_scan(origins, headings, Obstacles.from_polygons(polygons), centers, radii, active,
                      n_rays=n_rays, fov=fov, max_range=max_range)
    angles = (np.zeros(1) if n_rays == 1 else -np.pi + 2 * np.pi * np.arange(n_rays) / n_rays if fov == 2 * np.pi
              else np.linspace(-fov / 2, fov / 2, n_rays))
    assert ours.shape == (len(origins), n_rays) and ours.dtype == np.float64
    for e in range(len(origins)):
        expected = reference_scan(polygons[e], origins[e], headings[e], centers[e], radii[e], active[e], angles,
                                  max_range)
        np.testing.assert_allclose(ours[e], expected, rtol=0, atol=1e-9)
    assert (ours < max_range).any() and (ours == max_range).any()


@pytest.mark.parametrize("seed", range(20))
def test_line_of_sight_matches_brute_force_on_random_scenes(seed):
    polygons, origins, _, _, _, _ = random_scene(seed)
    targets = np.random.default_rng(1000 + seed).uniform(-7, 7, (len(origins), 15, 2))
    ours = line_of_sight(origins, targets, Obstacles.from_polygons(polygons))
    assert ours.shape == targets.shape[:2] and ours.dtype == np.bool_
    for e in range(len(origins)):
        np.testing.assert_array_equal(ours[e], reference_sight(polygons[e], origins[e], targets[e]))


def test_line_of_sight_agrees_with_a_ray_cast_at_the_target():
    """Visible exactly when a lidar without people reads more than the target's distance along that direction."""
    polygons, origins, _, _, _, _ = random_scene(7, n_envs=9)
    obstacles = Obstacles.from_polygons(polygons)
    targets = np.random.default_rng(7).uniform(-7, 7, (9, 12, 2))
    visible = line_of_sight(origins, targets, obstacles)
    offsets = targets - origins[:, None]
    distances = np.linalg.norm(offsets, axis=-1)
    for n in range(targets.shape[1]):
        reading = scan(origins, np.arctan2(offsets[:, n, 1], offsets[:, n, 0]), polygons, max_range=100.0)[:, 0]
        np.testing.assert_array_equal(visible[:, n], reading > distances[:, n])
    assert visible.any() and not visible.all()


# --- hand-built cases -----------------------------------------------------------------------------------------


def test_ray_angles():
    np.testing.assert_allclose(ray_angles(4, 2 * np.pi), [-np.pi, -np.pi / 2, 0, np.pi / 2])
    np.testing.assert_allclose(ray_angles(5, np.pi), [-np.pi / 2, -np.pi / 4, 0, np.pi / 4, np.pi / 2])
    np.testing.assert_allclose(ray_angles(1, 2 * np.pi), [0.0])
    np.testing.assert_allclose(ray_angles(1, 1.0), [0.0])
    assert ray_angles(180, 2 * np.pi)[90] == 0.0


def test_ray_hits_a_box_face_and_misses_elsewhere():
    polygons = [[box(2.0, -1.0, 3.0, 1.0)]]
    np.testing.assert_allclose(scan([[0.0, 0.0]], [0.0], polygons, n_rays=4), [[10.0, 10.0, 2.0, 10.0]])
    # Heading up, the box is on the right (the ray at -π/2).
    np.testing.assert_allclose(scan([[0.0, 0.0]], [np.pi / 2], polygons, n_rays=4), [[10.0, 2.0, 10.0, 10.0]])
    np.testing.assert_allclose(scan([[0.0, 0.5]], [0.0], polygons), [[2.0]])
    np.testing.assert_allclose(scan([[0.0, 1.0]], [0.0], polygons), [[2.0]])  # along its top edge: the corner
    np.testing.assert_allclose(scan([[0.0, 1.5]], [0.0], polygons), [[10.0]])  # above it
    np.testing.assert_allclose(scan([[0.0, 4.0]], [-np.arctan2(3.0, 2.5)], polygons), [[np.hypot(2.5, 3.0)]])


def test_ray_hits_a_circle_at_its_near_side():
    centers, radii = [[[5.0, 0.0]]], [[0.5]]
    np.testing.assert_allclose(scan([[0.0, 0.0]], [0.0], centers=centers, radii=radii), [[4.5]])
    np.testing.assert_allclose(scan([[0.0, 0.5]], [0.0], centers=centers, radii=radii), [[5.0]])  # tangent
    np.testing.assert_allclose(scan([[0.0, 0.0]], [np.pi], centers=centers, radii=radii), [[10.0]])  # behind
    np.testing.assert_allclose(scan([[0.0, 0.0]], [0.0], centers=centers, radii=radii, max_range=3.0), [[3.0]])
    # Inactive people are not seen, and their padding is not read.
    both = scan([[0.0, 0.0]], [0.0], centers=[[[2.0, 0.0], [np.nan, np.nan]]], radii=[[0.5, np.nan]],
                active=[[False, False]])
    np.testing.assert_allclose(both, [[10.0]])


def test_nothing_in_range_reads_max_range():
    assert (scan([[0.0, 0.0], [1.0, 1.0]], [0.0, 1.0], n_rays=90, max_range=7.5) == 7.5).all()
    far = scan([[0.0, 0.0]], [0.0], [[box(20.0, -1.0, 21.0, 1.0)]], centers=[[[0.0, 30.0]]], radii=[[1.0]],
               n_rays=36)
    assert (far == 10.0).all()


def test_origin_inside_a_circle_reads_zero_on_every_ray():
    reading = scan([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0], centers=[[[0.2, 0.1]], [[0.5, 0.0]]], radii=[[0.5], [0.5]],
                   n_rays=8)
    assert (reading[0] == 0.0).all()
    assert (reading[1] == 0.0).all()  # on the circle counts as inside


def test_fov_below_two_pi_spans_minus_to_plus_half_fov():
    room = [[ROOM]]  # robot at the centre, 6 m from each wall
    reading = scan([[0.0, 0.0]], [np.pi / 2], room, n_rays=3, fov=np.pi)  # right, ahead, left: all walls
    np.testing.assert_allclose(reading, [[6.0, 6.0, 6.0]])
    reading = scan([[1.0, 2.0]], [0.0], room, n_rays=3, fov=np.pi)
    np.testing.assert_allclose(reading, [[8.0, 5.0, 4.0]])  # down, right, up
    diagonal = scan([[0.0, 0.0]], [0.0], room, n_rays=3, fov=np.pi / 2)
    np.testing.assert_allclose(diagonal, [[6 * np.sqrt(2), 6.0, 6 * np.sqrt(2)]])  # the corners


def test_edges_are_closed_and_two_sided():
    wall = [[np.array([[2.0, 0.0], [4.0, 0.0]])]]
    np.testing.assert_allclose(scan([[0.0, 0.0]], [0.0], wall), [[2.0]])  # along the wall: its nearer end
    np.testing.assert_allclose(scan([[0.0, 0.0]], [0.0], [[np.array([[4.0, 0.0], [2.0, 0.0]])]]), [[2.0]])
    np.testing.assert_allclose(scan([[5.0, 0.0]], [0.0], wall), [[10.0]])  # beyond it, looking away
    np.testing.assert_allclose(scan([[3.0, 0.0]], [0.0], wall), [[0.0]])  # starting on it
    np.testing.assert_allclose(scan([[3.0, -1.0]], [np.pi / 2], wall), [[1.0]])  # from below
    np.testing.assert_allclose(scan([[3.0, 1.0]], [-np.pi / 2], wall), [[1.0]])  # from above
    np.testing.assert_allclose(scan([[0.0, -2.0]], [np.pi / 4], wall), [[2 * np.sqrt(2)]])  # through its end
    np.testing.assert_allclose(scan([[2.5, 0.5]], [0.0], [[box(2.0, 0.0, 3.0, 1.0)]]), [[0.5]])  # inside a box


def test_envs_in_a_batch_do_not_see_each_other():
    polygons = [[box(2.0, -1.0, 3.0, 1.0)], [], [ROOM]]
    reading = scan(np.zeros((3, 2)), np.zeros(3), polygons, centers=[[[0, 5.0]], [[5.0, 0]], [[0, 0.0]]],
                   radii=np.full((3, 1), 0.5), active=[[True], [True], [False]], n_rays=4)
    np.testing.assert_allclose(reading, [[10.0, 10.0, 2.0, 4.5], [10.0, 10.0, 4.5, 10.0], [6.0, 6.0, 6.0, 6.0]])


def test_scan_writes_into_out():
    out = np.full((2, 5), -1.0)
    result = scan(np.zeros((2, 2)), np.zeros(2), n_rays=5, out=out)
    assert result is out and (out == 10.0).all()


def test_line_of_sight_through_walls():
    wall = [np.array([[2.0, -1.0], [2.0, 1.0]])]
    targets = np.array([[[3.0, 0.0], [1.0, 0.0], [3.0, 3.0], [-3.0, 0.0]]])
    np.testing.assert_array_equal(line_of_sight(np.zeros((1, 2)), targets, Obstacles.from_polygons([wall])),
                                  [[False, True, True, True]])
    np.testing.assert_array_equal(line_of_sight(np.zeros((1, 2)), targets, None), [[True] * 4])
    inside = line_of_sight(np.array([[0.5, 0.5]]), np.array([[[0.7, 0.2], [5.0, 0.5]]]),
                           Obstacles.from_polygons([[box(0.0, 0.0, 1.0, 1.0)]]))
    np.testing.assert_array_equal(inside, [[True, False]])  # inside a box: its walls hide the outside


def test_line_of_sight_touching_an_edge_is_blocked():
    obstacles = Obstacles.from_polygons([[box(1.0, 1.0, 2.0, 2.0), np.array([[4.0, 0.0], [6.0, 0.0]])]])
    origin = np.zeros((1, 2))
    targets = np.array([[[3.0, 3.0],  # through the box's corners (1, 1) and (2, 2)
                         [2.0, 0.5],  # passing under the box: visible
                         [1.5, 1.0],  # ending on the box's bottom edge
                         [5.0, 0.0],  # on the wall's line, ending on it
                         [3.0, 0.0],  # on the wall's line, short of it: visible
                         [8.0, 0.0],  # along and past the whole wall
                         [4.0, -2.0],  # grazing nothing: the wall's end is at (4, 0), the line passes below
                         [0.0, 0.0]]])  # the viewer itself
    np.testing.assert_array_equal(line_of_sight(origin, targets, obstacles),
                                  [[False, True, False, False, True, False, True, True]])
    grazing = line_of_sight(np.array([[4.0, -1.0]]), np.array([[[4.0, 1.0], [8.0, 1.0]]]), obstacles)
    np.testing.assert_array_equal(grazing, [[False, False]])  # through either end of the wall
    starting_on = line_of_sight(np.array([[5.0, 0.0]]), np.array([[[5.0, 1.0]]]), obstacles)
    np.testing.assert_array_equal(starting_on, [[False]])


# --- bad inputs -----------------------------------------------------------------------------------------------


def scan_arguments(**changes):
    arguments = {"origins": np.zeros((2, 2)), "headings": np.zeros(2), "obstacles": None,
                 "centers": np.zeros((2, 3, 2)), "radii": np.ones((2, 3)), "active": np.ones((2, 3), dtype=bool),
                 "n_rays": 8, "fov": np.pi, "max_range": 5.0}
    return arguments | changes


@pytest.mark.parametrize(("changes", "name"), [
    ({"origins": np.zeros((2, 3))}, "origins"),
    ({"origins": np.array([[0.0, np.nan], [0.0, 0.0]])}, "origins"),
    ({"headings": np.zeros(3)}, "headings"),
    ({"headings": np.array([0.0, np.inf])}, "headings"),
    ({"centers": np.zeros((2, 3))}, "centers"),
    ({"centers": np.full((2, 3, 2), np.nan)}, "centers"),
    ({"radii": np.ones((2, 4))}, "radii"),
    ({"radii": -np.ones((2, 3))}, "radii"),
    ({"radii": np.full((2, 3), np.nan)}, "radii"),
    ({"active": np.ones((2, 4), dtype=bool)}, "active"),
    ({"active": np.ones((2, 3))}, "active"),
    ({"n_rays": 0}, "n_rays"),
    ({"n_rays": 2.5}, "n_rays"),
    ({"n_rays": True}, "n_rays"),
    ({"fov": 0.0}, "fov"),
    ({"fov": -1.0}, "fov"),
    ({"fov": 2 * np.pi + 0.01}, "fov"),
    ({"fov": np.nan}, "fov"),
    ({"fov": "wide"}, "fov"),
    ({"max_range": 0.0}, "max_range"),
    ({"max_range": np.inf}, "max_range"),
    ({"max_range": np.nan}, "max_range"),
    ({"obstacles": Obstacles.from_polygons([[box(0, 0, 1, 1)]])}, "obstacles"),
    ({"out": np.zeros((2, 7))}, "out"),
    ({"out": np.zeros((2, 8), dtype=np.float32)}, "out"),
])
def test_scan_rejects_bad_inputs(changes, name):
    with pytest.raises(ValueError, match=name):
        lidar_scan(**scan_arguments(**changes))


def test_scan_rejects_obstacles_of_another_type():
    with pytest.raises(TypeError, match="obstacles"):
        lidar_scan(**scan_arguments(obstacles=[box(0, 0, 1, 1)]))


@pytest.mark.parametrize(("origins", "targets", "name"), [
    (np.zeros((2, 3)), np.zeros((2, 1, 2)), "origins"),
    (np.full((2, 2), np.inf), np.zeros((2, 1, 2)), "origins"),
    (np.zeros((2, 2)), np.zeros((3, 1, 2)), "targets"),
    (np.zeros((2, 2)), np.zeros((2, 2)), "targets"),
    (np.zeros((2, 2)), np.full((2, 1, 2), np.nan), "targets"),
    (np.zeros((1, 2)), np.zeros((1, 1, 2)), "obstacles"),
])
def test_line_of_sight_rejects_bad_inputs(origins, targets, name):
    obstacles = Obstacles.from_polygons([[box(0, 0, 1, 1)], []])
    with pytest.raises(ValueError, match=name):
        line_of_sight(origins, targets, obstacles)
