"""What an episode of crowd navigation is judged by (``info["metrics"]`` on its last step).

- ``success``, ``collision_human``, ``collision_obstacle``, ``collision_wall``, ``timeout``: how it ended
  (exactly one is 1).
- ``nav_time``: seconds taken; ``path_length``: metres driven; ``spl``: success weighted by path length,
  ``success · l / max(p, l)`` with ``l`` the straight-line distance from start to goal less the goal radius
  (Anderson et al., 2018).
- ``intrusion_ratio``: the fraction of steps on which the robot came closer to someone than the reward's
  ``discomfort_dist`` (surface to surface; CrowdNav++'s intrusion ratio, CrowdNav's danger frequency).
- ``discomfort_frequency``: how often per minute the robot entered someone's discomfort zone (each entry
  counted once, however long it stays).
- ``min_separation``: the smallest surface distance to any person over the episode (m; inf with no people).
- ``jerk``: the mean magnitude of the robot's jerk (m/s³), the change of acceleration between steps.
"""

from __future__ import annotations

import numpy as np

from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.sim import COLLISION_HUMAN, COLLISION_OBSTACLE, COLLISION_WALL, SUCCESS, CrowdSim, StepResult

NAMES = ("success", "collision_human", "collision_obstacle", "collision_wall", "timeout", "nav_time", "path_length",
         "spl", "intrusion_ratio", "discomfort_frequency", "min_separation", "jerk")


class EpisodeMetrics:
    """Accumulates each env's episode; :meth:`step` returns the metrics of the episodes that just ended."""

    def __init__(self, config: CrowdNavConfig, n_envs: int) -> None:
        self.config = config
        self.dt = config.time_step
        self.zone = config.reward.discomfort_dist
        b = n_envs
        self.path = np.zeros(b)
        self.steps = np.zeros(b, dtype=np.int64)
        self.intrusions = np.zeros(b, dtype=np.int64)
        self.entries = np.zeros(b, dtype=np.int64)
        self.inside = np.zeros(b, dtype=bool)
        self.min_sep = np.full(b, np.inf)
        self.jerk_sum = np.zeros(b)
        self.velocity = np.zeros((b, 2))
        self.accel = np.zeros((b, 2))
        self.shortest = np.zeros(b)
        self.position = np.zeros((b, 2))

    def reset(self, b: int, sim: CrowdSim) -> None:
        self.path[b] = 0.0
        self.steps[b] = self.intrusions[b] = self.entries[b] = 0
        self.inside[b] = False
        self.min_sep[b] = np.inf
        self.jerk_sum[b] = 0.0
        self.velocity[b] = self.accel[b] = 0.0
        self.position[b] = sim.robot_position[b]
        self.shortest[b] = max(float(sim.goal_distance()[b]) - sim.goal_radius, 0.0)

    def step(self, sim: CrowdSim, r: StepResult) -> dict[int, dict[str, float]]:
        position = sim.robot_position
        self.path += np.linalg.norm(position - self.position, axis=-1)
        self.position[:] = position
        self.steps += 1
        inside = r.closest_human < self.zone
        self.intrusions += inside
        self.entries += inside & ~self.inside
        self.inside = inside
        self.min_sep = np.minimum(self.min_sep, r.closest_human)
        accel = (sim.robot_velocity - self.velocity) / self.dt
        self.jerk_sum += np.linalg.norm(accel - self.accel, axis=-1) / self.dt
        self.velocity[:], self.accel[:] = sim.robot_velocity, accel
        return {int(b): self._episode(b, int(r.event[b])) for b in np.nonzero(r.terminated | r.truncated)[0]}

    def _episode(self, b: int, event: int) -> dict[str, float]:
        steps = int(self.steps[b])
        success = float(event == SUCCESS)
        shortest, path = self.shortest[b], self.path[b]
        return {
            "success": success,
            "collision_human": float(event == COLLISION_HUMAN),
            "collision_obstacle": float(event == COLLISION_OBSTACLE),
            "collision_wall": float(event == COLLISION_WALL),
            "timeout": float(event == 0),
            "nav_time": steps * self.dt,
            "path_length": float(path),
            "spl": float(success * (shortest / max(path, shortest) if max(path, shortest) > 0 else 1.0)),
            "intrusion_ratio": float(self.intrusions[b] / steps),
            "discomfort_frequency": float(self.entries[b] / (steps * self.dt / 60.0)),
            "min_separation": float(self.min_sep[b]),
            "jerk": float(self.jerk_sum[b] / steps),
        }


def summarise(episodes: list[dict[str, float]]) -> dict[str, float | None]:
    """Means of episodes' metrics; ``nav_time`` over successful episodes only (None if none succeeded), as CrowdNav
    reports it; a metric infinite in some episode (``min_separation`` with no people) averages the finite ones."""
    out: dict[str, float | None] = {}
    for name in episodes[0]:
        values = np.array([m[name] for m in episodes if name in m and (name != "nav_time" or m.get("success"))],
                          dtype=np.float64)
        values = values[np.isfinite(values)]
        out[name] = float(values.mean()) if len(values) else None
    return out
