"""What the robot senses of itself, the people and the obstacles, in its own frame (compiled, all envs at once).

The robot's frame has x along its heading and y to its left. People are listed nearest first (centre
distance), those not seen left as zero rows with a zero mask; see :mod:`~roboreward.envs.crowd.env` for the
observation layout. Occlusion, position noise and missed detections are decided by the caller (they need the
obstacles and each env's random generator) and passed in as a mask and offsets.
"""

from __future__ import annotations

import numba
import numpy as np


def to_robot_frame(vectors: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """World vectors ``[B, 2]`` in the frame of robots heading ``heading [B]`` (x ahead, y left)."""
    c, s = np.cos(heading), np.sin(heading)
    return np.stack([c * vectors[:, 0] + s * vectors[:, 1], -s * vectors[:, 0] + c * vectors[:, 1]], axis=-1)


def to_world_frame(vectors: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Vectors ``[B, 2]`` in the frame of robots heading ``heading [B]``, in the world (the inverse rotation)."""
    return to_robot_frame(vectors, -heading)


@numba.njit(cache=True)
def observe_kernel(rows, positions, velocities, goals, radii, speeds, active, heading, noise, allowed, sensor_range,
                   fov, tokens, token_mask, robot_out, humans_out, mask_out, tokens_out):
    """Fill the observation arrays of envs ``rows`` (row ``i`` of each output is env ``rows[i]``).

    :param noise: ``[B, N, 2]`` offsets added to people's positions (zeros for none).
    :param allowed: ``[B, N]`` people who may be seen at all this step (occlusion, dropout).
    :param tokens: ``[B, T, 4, 2]`` obstacle corners in the world; ``tokens_out`` ``[n, T, 8]`` in the robot frame.
    """
    n_people = positions.shape[1] - 1
    n_rows = humans_out.shape[1]
    dist = np.empty(n_people)
    order = np.empty(n_people, dtype=np.int64)
    for i in range(len(rows)):
        b = rows[i]
        c, s = np.cos(heading[b]), np.sin(heading[b])
        rx, ry = positions[b, 0, 0], positions[b, 0, 1]
        gx, gy = goals[b, 0, 0] - rx, goals[b, 0, 1] - ry
        vx, vy = velocities[b, 0, 0], velocities[b, 0, 1]
        robot_out[i, 0], robot_out[i, 1] = c * gx + s * gy, -s * gx + c * gy
        robot_out[i, 2], robot_out[i, 3] = c * vx + s * vy, -s * vx + c * vy
        robot_out[i, 4], robot_out[i, 5] = c, s
        robot_out[i, 6], robot_out[i, 7] = radii[b, 0], speeds[b, 0]

        n_seen = 0
        for h in range(n_people):
            a = h + 1
            if not (active[b, a] and allowed[b, h]):
                continue
            px = positions[b, a, 0] + noise[b, h, 0] - rx
            py = positions[b, a, 1] + noise[b, h, 1] - ry
            d = np.sqrt(px * px + py * py)
            if d - radii[b, a] - radii[b, 0] > sensor_range:
                continue
            if fov < 2 * np.pi and abs(np.arctan2(-s * px + c * py, c * px + s * py)) > fov / 2:
                continue
            k = n_seen  # insertion sort: nearest first, ties in index order
            while k > 0 and dist[k - 1] > d:
                dist[k], order[k] = dist[k - 1], order[k - 1]
                k -= 1
            dist[k], order[k] = d, h
            n_seen += 1
        for k in range(n_rows):
            if k >= n_seen:
                for f in range(humans_out.shape[2]):
                    humans_out[i, k, f] = 0.0
                mask_out[i, k] = 0
                continue
            a = order[k] + 1
            px = positions[b, a, 0] + noise[b, a - 1, 0] - rx
            py = positions[b, a, 1] + noise[b, a - 1, 1] - ry
            hvx, hvy = velocities[b, a, 0], velocities[b, a, 1]
            humans_out[i, k, 0], humans_out[i, k, 1] = c * px + s * py, -s * px + c * py
            humans_out[i, k, 2], humans_out[i, k, 3] = c * hvx + s * hvy, -s * hvx + c * hvy
            humans_out[i, k, 4] = radii[b, a]
            mask_out[i, k] = 1

        for t in range(tokens_out.shape[1]):
            for v in range(4):
                if token_mask[b, t]:
                    px, py = tokens[b, t, v, 0] - rx, tokens[b, t, v, 1] - ry
                    tokens_out[i, t, 2 * v], tokens_out[i, t, 2 * v + 1] = c * px + s * py, -s * px + c * py
                else:
                    tokens_out[i, t, 2 * v] = tokens_out[i, t, 2 * v + 1] = 0.0
