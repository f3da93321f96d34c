"""Hand-written crowd-navigation rewards: CrowdNav++'s, HEIGHT's, and a corrected one.

Every preset returns its terms separately (``info["reward_success"]``, ``info["reward_progress"]``, ...); the
reward is their sum. Terms are
computed on the state each step reaches. ``d`` is the robot's distance to its goal, ``d_min`` the smallest
surface distance to a person during the step, ``dt`` the step length, ``v`` / ``ω`` the robot's forward speed
and turn rate. Coefficients come from :class:`~roboreward.envs.crowd.config.CrowdRewardConfig`; the numbers
below are each preset's published values, which fields left null take (``PRESET_COEFFICIENTS``).

``crowdnav_pp`` — CrowdNav++ (Liu et al., ICRA 2023), an exclusive chain, first match wins:
    collision ``−20``; success ``+10``; discomfort ``(d_min − 0.25)·10·dt`` when ``d_min < 0.25``; otherwise
    progress ``2·(Φ_last − d)`` where ``Φ_last`` is the distance when progress was last paid (so metres gained
    while too close to someone are paid on the next step that is not). Unicycle / diff-drive robots add spin
    ``−spin_factor·(ω·dt)²`` (4.5) and backing ``−2·|v|`` when ``v < 0``; their progress factor is 3.

``height`` — HEIGHT (Liu et al., T-ASE 2024), the same chain with success ``+20``, collisions with people,
    obstacles and walls alike ``−20``, and progress ``2·(d_prev − d)`` clipped to ``±2·v_max·dt``; unicycle
    robots (HEIGHT's TurtleBot) add spin ``−spin_factor·ω²`` (0.05), backing ``−0.1·|v|`` and a time cost
    ``−time_factor·dt`` (0.25/s: ``−0.025`` a step at HEIGHT's 0.1 s; 0 for holonomic robots unless set).

``corrected`` — the terms added, not exclusive, and progress as potential-based shaping
    (Ng et al., 1999) with the learner's ``γ``: ``γ·Φ(s') − Φ(s)`` with ``Φ = −progress_factor·d`` and
    ``Φ(s') = 0`` at a terminal state (:func:`~roboreward.rewards.shaping.shaping_term`), so the progress term
    cannot change which policy is optimal and never stops near people. Success ``+10``, collision ``−20``,
    discomfort ``(d_min − 0.25)·10·dt`` whenever ``d_min < 0.25`` (but on a collision with that person, which the
    collision term already costs), spin ``−spin_factor·ω²·dt`` (0 unless set), and a time
    cost ``−1·dt`` (``time_factor``). The time cost is what makes arriving worth a risk: shaping is
    policy-invariant, so without it the task is +10 for arriving against −20 for a collision and 0 for waiting
    out the time limit somewhere safe, and while crossing the crowd still risks a collision one time in three
    or more — as it does early in training — waiting is optimal (measured: PPO learned to wait, with no time
    cost and with 0.25/s). At 1/s, 50 s of waiting costs about what a collision does. A time limit truncates the
    episode and is no term of its own (the learner bootstraps through it).

In both published presets a time-out pays nothing and ends the episode as terminal; here it truncates (SB3
bootstraps through it), which changes no term.
"""

from __future__ import annotations

import numpy as np

from roboreward.envs.crowd.config import CrowdNavConfig
from roboreward.envs.crowd.sim import COLLISION_HUMAN, NONE, SUCCESS, StepResult
from roboreward.rewards.shaping import shaping_term

TERMS = ("success", "collision", "discomfort", "progress", "spin", "backing", "time")


class CrowdReward:
    """The configured preset, with the per-env state it keeps (the last paid potential, CrowdNav++)."""

    def __init__(self, config: CrowdNavConfig, n_envs: int) -> None:
        self.config = config
        self.rc = config.reward
        self.unicycle = config.robot.kinematics != "holonomic"
        self.last_paid = np.zeros(n_envs)  # crowdnav_pp: the goal distance when progress was last paid

    def reset(self, b: int, goal_distance: float) -> None:
        self.last_paid[b] = goal_distance

    def __call__(self, r: StepResult) -> dict[str, np.ndarray]:
        """The terms ``{name: [B]}`` of this step; the reward is their sum."""
        rc, dt = self.rc, self.config.time_step
        zeros = np.zeros_like(r.goal_distance)
        terms = {name: zeros.copy() for name in TERMS}
        collided = (r.event != NONE) & (r.event != SUCCESS)
        success = r.event == SUCCESS
        terms["success"][success] = rc.success
        terms["collision"][collided] = rc.collision
        near = np.isfinite(r.closest_human) & (r.closest_human < rc.discomfort_dist)
        discomfort = np.where(near, (r.closest_human - rc.discomfort_dist) * rc.discomfort_factor * dt, 0.0)

        if rc.preset == "corrected":
            terms["discomfort"] = np.where(collided & (r.event == COLLISION_HUMAN), 0.0, discomfort)
            potential = -rc.progress_factor * r.goal_distance_before
            next_potential = -rc.progress_factor * r.goal_distance
            terms["progress"] = shaping_term(potential, next_potential, r.terminated, rc.gamma)
            terms["spin"] = -rc.spin_factor * r.angular ** 2 * dt
            terms["time"] = np.full_like(zeros, -rc.time_factor * dt)
            return terms

        # The published chains: collision, else success, else discomfort, else progress.
        other = ~collided & ~success
        in_discomfort = other & near
        paid = other & ~near
        terms["discomfort"] = np.where(in_discomfort, discomfort, 0.0)
        if rc.preset == "crowdnav_pp":
            terms["progress"] = np.where(paid, rc.progress_factor * (self.last_paid - r.goal_distance), 0.0)
            self.last_paid = np.where(paid, r.goal_distance, self.last_paid)
            if self.unicycle:
                terms["spin"] = -rc.spin_factor * (r.angular * dt) ** 2
                terms["backing"] = np.where(r.speed < 0, -2.0 * np.abs(r.speed), 0.0)
        else:  # height
            limit = rc.progress_factor * self.config.robot.max_speed * dt
            gained = np.clip(rc.progress_factor * (r.goal_distance_before - r.goal_distance), -limit, limit)
            terms["progress"] = np.where(paid, gained, 0.0)
            if self.unicycle:
                terms["spin"] = -rc.spin_factor * r.angular ** 2
                terms["backing"] = np.where(r.speed < 0, -0.1 * np.abs(r.speed), 0.0)
            terms["time"] = np.full_like(zeros, -rc.time_factor * dt)
        return terms

