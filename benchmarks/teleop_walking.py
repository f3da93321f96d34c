"""The cockpit's walking G1: does it stay up and go where the pedal says while the operator moves its arms?

The teleop G1 (``configs/teleop/robots/g1.yaml``, ``base.type: walking``) walks on its legs under the
holosoma locomotion policy while its arms follow the operator. Arm motion the policy never saw in
training can throw it: this script measures how much, for each choice of what the policy reads of
the arms (``base.arm_observation``): ``measured`` (the true arm state) and ``commanded`` (the
policy's own arm targets, at rest; the default). Every run starts from the same reset, with the
same seeded arm motion for both choices.

- **Arm curriculum** (HOMIE's upper-body randomisation): the 14 arm joints move to a new random pose
  every 2 s, drawn over ``--ranges`` fractions of each joint's range around the start pose, at up to
  ``--arm-speed`` rad/s, for ``--seconds`` per episode, standing (zero command) and walking
  (``--vx`` forward). Reported: falls per 100 episodes, the pelvis's drift on the floor (standing)
  or its speed and sideways drift (walking), over episodes that did not fall.
- **No arm motion**: standing drift and walking speed with the arms still, for reference.
- **CPU**: ms per 20 ms control step of the teleop robot (policy + 10 physics steps), walking vs
  the kinematic base, on this machine.

    python benchmarks/teleop_walking.py [--episodes 10] [--seconds 20] [--ranges 0.3 0.6] [--arm-speed 2] [--vx 0.5]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from _machine import describe_machine

from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.robots import load_teleop_robot_config, make_teleop_robot


def episode(robot, seed: int, *, seconds: float, arm_range: float, arm_speed: float, vx: float):
    """One run from reset: (fell, pelvis displacement (dx, dy) in the start frame, seconds until the end or the fall)."""
    robot.reset()
    rng = np.random.default_rng(seed)
    arms = np.concatenate([[robot.joint_names.index(n) for n in robot.arm_joints[s]] for s in robot.arm_joints])
    start = robot.targets.copy()
    targets, goal = start.copy(), start.copy()
    lo, hi = robot.lower[arms], robot.upper[arms]
    step_limit = arm_speed * robot.dt
    x0, y0, yaw0, _ = robot.base_pose()
    robot.set_base_command(LocoCommand(vx, 0.0, robot.height_range[0]), robot.dt)
    steps = round(seconds / robot.dt)
    for k in range(steps):
        if arm_range > 0 and k % round(2.0 / robot.dt) == 0:
            goal[arms] = start[arms] + arm_range * (rng.uniform(lo, hi) - start[arms])
        targets = targets + np.clip(goal - targets, -step_limit, step_limit)
        robot.set_targets(targets)
        robot.step()
        if robot.fallen:
            return True, (math.nan, math.nan), (k + 1) * robot.dt
    x, y, _, _ = robot.base_pose()
    c, s = math.cos(yaw0), math.sin(yaw0)
    return False, (c * (x - x0) + s * (y - y0), -s * (x - x0) + c * (y - y0)), seconds


def cell(robot, args, arm_range: float, vx: float) -> str:
    falls, moves = 0, []
    for seed in range(args.episodes):
        fell, (dx, dy), _ = episode(robot, seed, seconds=args.seconds, arm_range=arm_range,
                                    arm_speed=args.arm_speed, vx=vx)
        falls += fell
        if not fell:
            moves.append((dx, dy))
    rate = 100.0 * falls / args.episodes
    if not moves:
        return f"falls {rate:5.1f}/100   (every episode fell)"
    m = np.array(moves)
    if vx == 0:
        drift = np.hypot(m[:, 0], m[:, 1])
        return (f"falls {rate:5.1f}/100   drift per 10 s: mean {10 * drift.mean() / args.seconds:.2f} m, "
                f"max {10 * drift.max() / args.seconds:.2f} m")
    speed = m[:, 0] / args.seconds
    return (f"falls {rate:5.1f}/100   speed {speed.mean():.2f} m/s ({100 * speed.mean() / vx:.0f} % of {vx:g}), "
            f"sideways {np.abs(m[:, 1]).mean() / args.seconds * 10:.2f} m per 10 s")


def step_cost(base_type: str, steps: int = 500) -> float:
    robot = make_teleop_robot("g1", cameras=["head"], size=(16, 16), overrides=[f"base.type={base_type}"])
    try:
        robot.set_base_command(LocoCommand(0.5, 0.0, robot.height_range[0]), robot.dt)
        t0 = time.perf_counter()
        for _ in range(steps):
            robot.step()
        return 1e3 * (time.perf_counter() - t0) / steps
    finally:
        robot.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per cell (seeds 0..N-1)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per episode")
    parser.add_argument("--ranges", type=float, nargs="*", default=[0.3, 0.6], help="arm range fractions")
    parser.add_argument("--arm-speed", type=float, default=2.0, help="rad/s: fastest arm joint motion")
    parser.add_argument("--vx", type=float, default=0.5, help="forward command (m/s) of the walking episodes")
    args = parser.parse_args()

    print(f"machine: {describe_machine()}")
    print(f"G1 teleop robot, walking base, holosoma policy; {args.episodes} episodes x {args.seconds:g} s per cell; "
          f"arms re-posed every 2 s at up to {args.arm_speed:g} rad/s")
    t0 = time.perf_counter()
    for observation in ("measured", "commanded"):
        config = load_teleop_robot_config("g1", [f"base.arm_observation={observation}"])
        robot = make_teleop_robot(config, cameras=["head"], size=(16, 16))
        try:
            print(f"\narm_observation: {observation}")
            for vx in (0.0, args.vx):
                what = "standing" if vx == 0 else f"walking {vx:g} m/s"
                for arm_range in [0.0, *args.ranges]:
                    arms = f"arms {100 * arm_range:3.0f} % of range" if arm_range else "arms still       "
                    print(f"  {what:<17} {arms}: {cell(robot, args, arm_range, vx)}", flush=True)
        finally:
            robot.close()
    print(f"\nCPU per 20 ms control step: walking {step_cost('walking'):.2f} ms "
          f"(policy + 10 physics steps), kinematic base {step_cost('kinematic'):.2f} ms")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
