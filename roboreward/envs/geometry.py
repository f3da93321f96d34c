"""Where a MuJoCo robot touches the floor: the lowest point of its collision geoms, and legs that squat flat-footed.

Standing a robot on the floor at a reset (the G1 simulators, a robot file's legged robot) and
measuring a leg's height for a squat table both need the world height of the lowest point of some
geoms. Each geom's axis-aligned bounding box (in its own frame) is turned with the geom and its
eight corners are compared: exact for boxes and for capsules lying along a box axis (the G1's soles).
"""

from __future__ import annotations

from collections.abc import Iterable

import math

import numpy as np

# The eight corners of a unit box, as signs of its half-sizes.
_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def lowest_point(model, data, geoms: Iterable[int]) -> float:
    """World z of the lowest bounding-box corner of ``geoms`` in ``data``'s pose (inf for no geom)."""
    low = np.inf
    for g in geoms:
        corners = model.geom_aabb[g, :3] + _CORNERS * model.geom_aabb[g, 3:]
        low = min(low, float((data.geom_xpos[g, 2] + corners @ data.geom_xmat[g].reshape(3, 3)[2]).min()))
    return low


def flat_foot_leg(thigh: float, shank: float, knee: float) -> tuple[float, float, float]:
    """(hip pitch, knee, ankle pitch) that bend a planar leg by ``knee`` with the ankle under the hip and the foot flat.

    The thigh leans forward by ``alpha`` (law of sines on the thigh and shank lengths), the shank back, and the
    ankle undoes both: hip ``-alpha``, ankle ``alpha - knee``. The squat tables of the cockpit's kinematic base and
    of G1Loco-v0's knee reward are built from it.
    """
    reach = math.sqrt(thigh * thigh + shank * shank + 2 * thigh * shank * math.cos(knee))
    alpha = math.asin(min(1.0, shank * math.sin(knee) / reach))
    return -alpha, knee, alpha - knee


__all__ = ["flat_foot_leg", "lowest_point"]
