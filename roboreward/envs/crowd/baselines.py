"""Hand-written robot policies for the crowd env: the baselines a learned policy is compared with.

Each takes a :class:`~roboreward.envs.crowd.env.CrowdNavBatch` and returns ``[B, 2]`` actions for the robots'
kinematics, from the simulator's true state (they are experts with perfect perception, as in CrowdNav):

- ``orca`` — ORCA as the robot (CrowdNav's ORCA baseline): the velocity RVO2's algorithm picks towards the goal
  among the people and obstacles, assuming the people avoid it reciprocally;
- ``social_force`` — the social-force model as the robot (CrowdNav's SF baseline), with the people's parameters;
- ``straight`` — full speed straight at the goal, blind to everyone: what avoidance has to beat.

A velocity becomes an action as the robot can follow it: holonomic robots take it (scaled to their speed
limit); unicycle and differential-drive robots turn towards it as fast as one step allows and drive at its
speed projected on their heading (never backwards).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from roboreward.envs.crowd.sensors import to_robot_frame


def velocity_actions(batch, velocity: np.ndarray) -> np.ndarray:
    """``[B, 2]`` actions that move each robot as close to the world ``velocity [B, 2]`` as its kinematics allow."""
    sim, robot = batch.sim, batch.config.robot
    local = to_robot_frame(velocity, sim.heading)
    if robot.kinematics == "holonomic":
        norm = np.linalg.norm(local, axis=-1, keepdims=True)
        return (local / np.maximum(norm, robot.max_speed)).astype(np.float32)
    angle = np.arctan2(local[:, 1], local[:, 0])
    speed = np.linalg.norm(local, axis=-1) * np.cos(angle).clip(0, 1)
    turn = angle / batch.config.time_step
    return np.stack([np.clip(speed / robot.max_speed, 0, 1), np.clip(turn / robot.max_angular, -1, 1)],
                    axis=-1).astype(np.float32)


def orca_actions(batch) -> np.ndarray:
    return velocity_actions(batch, batch.sim.robot_orca_velocity())


def social_force_actions(batch) -> np.ndarray:
    return velocity_actions(batch, batch.sim.robot_social_force_velocity())


def straight_actions(batch) -> np.ndarray:
    sim = batch.sim
    to_goal = sim.robot_goal - sim.robot_position
    return velocity_actions(batch, to_goal / np.maximum(np.linalg.norm(to_goal, axis=-1, keepdims=True), 1e-9)
                            * batch.config.robot.max_speed)


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "orca": orca_actions,
    "social_force": social_force_actions,
    "straight": straight_actions,
}
