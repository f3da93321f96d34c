"""Batched ORCA against the reference RVO2 library (pyrvo2-danieldugas) on the same scenes, step by step."""

import numpy as np
import pytest

from roboreward.envs.crowd.orca import Obstacles, OrcaParams, _solve, orca_velocities

rvo2 = pytest.importorskip("rvo2")

PARAMS = OrcaParams(neighbor_dist=10.0, max_neighbors=10, time_horizon=5.0, radius=0.3, max_speed=1.0)
DT = 0.25


def circle_crossing(n: int, seed: int, radius: float = 4.0, jitter: float = 0.1):
    """CrowdNav's circle crossing: agents on a circle, each heading for the opposite point."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, n)
    positions = radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1) + rng.normal(0, jitter, (n, 2))
    return positions, -positions


def preferred_velocities(positions, goals, max_speed=1.0):
    to_goal = goals - positions
    norm = np.linalg.norm(to_goal, axis=-1, keepdims=True)
    return np.where(norm > max_speed, to_goal / np.maximum(norm, 1e-12) * max_speed, to_goal)


def infeasible(positions, velocities, preferred) -> int:
    """Agents whose half-planes leave no velocity (ORCA's 3-D linear program decides for them)."""
    return int(_solve(positions[None], velocities[None], preferred[None], PARAMS, DT)[1].sum())


def reference_run(positions, goals, steps: int, polygons=()):
    """Step RVO2 and, at every step, give our ORCA the same state: (ours, RVO2's) new velocities per step."""
    sim = rvo2.PyRVOSimulator(DT, PARAMS.neighbor_dist, PARAMS.max_neighbors, PARAMS.time_horizon,
                              PARAMS.time_horizon_obst, PARAMS.radius, PARAMS.max_speed)
    agents = [sim.addAgent(tuple(p)) for p in positions]
    for polygon in polygons:
        sim.addObstacle([tuple(v) for v in polygon])
    sim.processObstacles()
    obstacles = Obstacles.from_polygons([list(polygons)]) if polygons else None
    pairs, hard = [], 0
    for _ in range(steps):
        pos = np.array([sim.getAgentPosition(a) for a in agents])
        vel = np.array([sim.getAgentVelocity(a) for a in agents])
        pref = preferred_velocities(pos, goals)
        for a in agents:
            sim.setAgentPrefVelocity(a, tuple(pref[a]))
        ours = orca_velocities(pos[None], vel[None], pref[None], PARAMS, DT, obstacles=obstacles)[0]
        hard += 0 if polygons else infeasible(pos, vel, pref)
        sim.doStep()
        pairs.append((ours, np.array([sim.getAgentVelocity(a) for a in agents])))
    return pairs, hard


@pytest.mark.parametrize("n", [5, 12, 24])
def test_every_new_velocity_matches_rvo2_on_circle_crossing(n):
    hard = 0
    for seed in range(3):
        positions, goals = circle_crossing(n, seed)
        pairs, infeasible_steps = reference_run(positions, goals, steps=60)
        hard += infeasible_steps
        for step, (ours, theirs) in enumerate(pairs):
            np.testing.assert_allclose(ours, theirs, atol=5e-4, err_msg=f"seed {seed}, step {step}")  # RVO2 is float32
    if n == 24:
        assert hard > 0  # the crowded centre takes the 3-D program too


def test_overlapping_agents_separate_as_in_rvo2():
    rng = np.random.default_rng(3)
    positions = rng.uniform(-0.6, 0.6, (8, 2))  # radius 0.3: many pairs overlap from the start
    pairs, _ = reference_run(positions, -3 * positions, steps=20)
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours, theirs, atol=5e-4)


BOX = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float)  # counter-clockwise: kept out
ROOM = np.array([[-5, -5], [-5, 5], [5, 5], [5, -5]], dtype=float)  # clockwise: kept in
WALL = np.array([[-2, 0.5], [2, 0.5]], dtype=float)


def _scene(name: str, seed: int):
    rng = np.random.default_rng(seed)
    if name == "box":
        positions, goals = circle_crossing(10, seed, jitter=0.0)
        return [BOX], positions, goals
    if name == "room":
        return [ROOM], rng.uniform(-4.5, 4.5, (8, 2)), rng.uniform(-6, 6, (8, 2))
    if name == "wall":
        positions = np.stack([rng.uniform(-2, 2, 6), rng.uniform(2, 3, 6)], axis=-1)
        return [WALL], positions, positions * [1, -1]
    positions, goals = circle_crossing(12, seed, radius=5.5, jitter=0.0)
    return [BOX + [3, 0], BOX + [-3, 0.5], 0.5 * BOX + [0, 3]], positions, goals


@pytest.mark.parametrize("scene", ["box", "room", "wall", "boxes"])
def test_every_new_velocity_matches_rvo2_among_obstacles(scene):
    """A box crossed around, people inside a room heading for points beyond its walls, a wall between people and
    their goals, three boxes: RVO2's obstacle lines, nearest edge first, never relaxed."""
    for seed in range(3):
        polygons, positions, goals = _scene(scene, seed)
        pairs, _ = reference_run(positions, goals, steps=80, polygons=polygons)
        for step, (ours, theirs) in enumerate(pairs):
            np.testing.assert_allclose(ours, theirs, atol=5e-4, err_msg=f"seed {seed}, step {step}")


def test_envs_with_different_obstacles_in_one_batch_match_each_alone():
    scenes = [_scene("box", 0), _scene("boxes", 1)]
    n = 10
    positions = np.stack([s[1][:n] for s in scenes])
    preferred = preferred_velocities(positions, np.stack([s[2][:n] for s in scenes]))
    velocities = np.random.default_rng(1).uniform(-0.5, 0.5, positions.shape)
    together = orca_velocities(positions, velocities, preferred, PARAMS, DT,
                               obstacles=Obstacles.from_polygons([s[0] for s in scenes]))
    for b, (polygons, _, _) in enumerate(scenes):
        alone = orca_velocities(positions[b:b + 1], velocities[b:b + 1], preferred[b:b + 1], PARAMS, DT,
                                obstacles=Obstacles.from_polygons([polygons]))
        np.testing.assert_allclose(together[b], alone[0], atol=1e-12)


def test_obstacle_polygons_are_read_as_rvo2_reads_them():
    obstacles = Obstacles.from_polygons([[BOX, ROOM], [WALL]])
    assert obstacles.points.shape == (2, 8, 2) and obstacles.valid.sum(axis=1).tolist() == [8, 2]
    assert obstacles.convex[0, :4].all() and not obstacles.convex[0, 4:].any()  # a box's corners; a room's from inside
    assert obstacles.next[0].tolist() == [1, 2, 3, 0, 5, 6, 7, 4] and obstacles.prev[1, :2].tolist() == [1, 0]
    np.testing.assert_allclose(obstacles.unit_dir[1, :2], [[1, 0], [-1, 0]])
    with pytest.raises(ValueError, match="repeats a vertex"):
        Obstacles.from_polygons([[np.array([[0, 0], [0, 0], [1, 1]])]])
    with pytest.raises(ValueError, match=">= 2 finite"):
        Obstacles.from_polygons([[np.array([[0, np.nan], [1, 1]])]])


def test_envs_in_a_batch_and_inactive_agents_do_not_affect_each_other():
    scenes = [circle_crossing(6, seed) for seed in (0, 1)]
    positions = np.stack([s[0] for s in scenes])
    velocities = np.random.default_rng(0).uniform(-0.5, 0.5, positions.shape)
    preferred = preferred_velocities(positions, np.stack([s[1] for s in scenes]))
    together = orca_velocities(positions, velocities, preferred, PARAMS, DT)
    for b in range(2):
        alone = orca_velocities(positions[b:b + 1], velocities[b:b + 1], preferred[b:b + 1], PARAMS, DT)[0]
        np.testing.assert_array_equal(together[b], alone)
    # A padded agent right next to env 0's agent 0, marked inactive, changes nothing and does not move.
    padded_pos = np.concatenate([positions[:1], positions[:1, :1] + 0.1], axis=1)
    padded_vel = np.concatenate([velocities[:1], np.ones((1, 1, 2))], axis=1)
    padded_pref = np.concatenate([preferred[:1], np.ones((1, 1, 2))], axis=1)
    active = np.array([[True] * 6 + [False]])
    padded = orca_velocities(padded_pos, padded_vel, padded_pref, PARAMS, DT, active=active)
    np.testing.assert_array_equal(padded[0, :6], together[0])
    assert (padded[0, 6] == 0).all()


@pytest.mark.parametrize("field, value", [("radius", float("nan")), ("max_speed", 0.0), ("time_horizon", float("inf")),
                                          ("max_neighbors", 0)])
def test_parameters_are_finite_and_positive(field, value):
    with pytest.raises(ValueError, match=f"OrcaParams.{field}"):
        OrcaParams(**{field: value})


def test_per_agent_radii_and_speeds_match_rvo2():
    """CrowdNav's randomised people: each agent its own radius and speed limit, as RVO2's addAgent takes them."""
    rng = np.random.default_rng(7)
    positions, goals = circle_crossing(10, seed=7)
    radii, speeds = rng.uniform(0.3, 0.5, 10), rng.uniform(0.5, 1.5, 10)
    sim = rvo2.PyRVOSimulator(DT, PARAMS.neighbor_dist, PARAMS.max_neighbors, PARAMS.time_horizon,
                              PARAMS.time_horizon_obst, PARAMS.radius, PARAMS.max_speed)
    agents = [sim.addAgent(tuple(p), PARAMS.neighbor_dist, PARAMS.max_neighbors, PARAMS.time_horizon,
                           PARAMS.time_horizon_obst, float(r), float(s), (0.0, 0.0)) for p, r, s in zip(positions, radii, speeds)]
    sim.addObstacle([tuple(v) for v in BOX])
    sim.processObstacles()
    obstacles = Obstacles.from_polygons([[BOX]])
    for step in range(60):
        pos = np.array([sim.getAgentPosition(a) for a in agents])
        vel = np.array([sim.getAgentVelocity(a) for a in agents])
        pref = preferred_velocities(pos, goals) * speeds[:, None]
        for a in agents:
            sim.setAgentPrefVelocity(a, tuple(pref[a]))
        ours = orca_velocities(pos[None], vel[None], pref[None], PARAMS, DT, obstacles=obstacles,
                               radii=radii[None], max_speeds=speeds[None])[0]
        sim.doStep()
        theirs = np.array([sim.getAgentVelocity(a) for a in agents])
        np.testing.assert_allclose(ours, theirs, atol=5e-4, err_msg=f"step {step}")
    assert (np.linalg.norm(ours, axis=1) <= speeds + 1e-6).all()


def test_an_ignored_agent_is_invisible_to_that_agent_only():
    """CrowdNav++'s invisible robot: people who ignore agent 0 move as if it were not there; the others avoid it."""
    positions, goals = circle_crossing(6, seed=4, radius=2.0)
    velocities = np.zeros_like(positions)
    preferred = preferred_velocities(positions, goals)
    ignore = np.zeros((1, 6, 6), dtype=bool)
    ignore[0, 1:4, 0] = True  # agents 1-3 do not see agent 0
    ours = orca_velocities(positions[None], velocities[None], preferred[None], PARAMS, DT, ignore=ignore)[0]
    without_0 = orca_velocities(positions[None, 1:], velocities[None, 1:], preferred[None, 1:], PARAMS, DT)[0]
    with_0 = orca_velocities(positions[None], velocities[None], preferred[None], PARAMS, DT)[0]
    np.testing.assert_array_equal(ours[1:4], without_0[:3])
    np.testing.assert_array_equal(ours[[0, 4, 5]], with_0[[0, 4, 5]])
    assert not np.allclose(with_0[1:4], without_0[:3])  # agent 0 does matter to them when seen


def test_per_agent_arrays_are_checked():
    positions = np.zeros((1, 2, 2))
    positions[0, 1] = 1.0
    with pytest.raises(ValueError, match="radii must be"):
        orca_velocities(positions, positions, positions, PARAMS, DT, radii=np.ones((2, 1)))
    with pytest.raises(ValueError, match="max_speeds must all be finite"):
        orca_velocities(positions, positions, positions, PARAMS, DT, max_speeds=np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="ignore must be"):
        orca_velocities(positions, positions, positions, PARAMS, DT, ignore=np.zeros((1, 2)))
