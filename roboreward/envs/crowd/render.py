"""The crowd world seen from above, as an RGB image (for videos and for reward models that read pixels).

The view is fixed by the scenario (not by where people happen to be), so the same place is the same pixel
in every frame of every episode: the room when there are walls, else the robot's arena and the people's
circle or square. World x is to the right, y up. Drawing reads the state only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from roboreward.envs.crowd.config import ScenarioConfig

BACKGROUND = (245, 245, 240)
WALL = (40, 40, 40)
BOX = (120, 120, 120)
WALKING = (60, 110, 200)
STANDING = (150, 150, 170)
ROBOT = (230, 150, 20)
GOAL = (200, 30, 30)


def view_half_width(s: ScenarioConfig) -> float:
    """Half the side of the square the image shows, m."""
    half = s.arena / 2
    if s.walls:
        half = max(half, s.room_size / 2)
    if s.name == "circle_crossing":
        half = max(half, s.circle_radius + s.spawn_noise + 0.5)
    if s.name == "square_crossing":
        half = max(half, s.square_width / 2 + 0.5)
    return half + 0.2


def draw_topdown(sim, b: int, size: int) -> np.ndarray:
    """Env ``b`` of ``sim`` (a :class:`~roboreward.envs.crowd.sim.CrowdSim`) as ``uint8 [size, size, 3]``."""
    half = view_half_width(sim.config.scenario)
    scale = size / (2 * half)

    def px(p: np.ndarray) -> tuple[float, float]:
        return ((p[0] + half) * scale, (half - p[1]) * scale)

    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    layout = sim.layouts[b]
    if layout is not None:
        for polygon, wall in zip(layout.polygons, layout.is_wall):
            points = [px(p) for p in polygon]
            if wall:
                closed = points + points[:1] if len(points) > 2 else points
                draw.line(closed, fill=WALL, width=max(2, size // 128))
            else:
                draw.polygon(points, fill=BOX)

    def disc(center: np.ndarray, radius: float, fill) -> None:
        x, y = px(center)
        r = max(radius * scale, 1.0)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)

    for i in np.nonzero(sim.active[b, 1:])[0] + 1:
        disc(sim.positions[b, i], sim.radii[b, i], STANDING if sim.static[b, i] else WALKING)
    gx, gy = px(sim.goals[b, 0])
    arm = max(3.0, 0.25 * scale)
    draw.line([gx - arm, gy - arm, gx + arm, gy + arm], fill=GOAL, width=max(2, size // 128))
    draw.line([gx - arm, gy + arm, gx + arm, gy - arm], fill=GOAL, width=max(2, size // 128))
    robot = sim.positions[b, 0]
    disc(robot, sim.radii[b, 0], ROBOT)
    tip = robot + sim.radii[b, 0] * np.array([np.cos(sim.heading[b]), np.sin(sim.heading[b])])
    draw.line([px(robot), px(tip)], fill=WALL, width=max(1, size // 256))
    return np.array(image)  # a writable copy (PIL's buffer view is read-only)
