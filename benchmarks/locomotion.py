"""The holosoma G1 walking policy on the G1 in MuJoCo: how it stands, walks, turns, and what a step costs on a CPU.

Closed loop, as deployed: :class:`~roboreward.policies.locomotion.LocomotionPolicy` (onnxruntime, one
thread) at 50 Hz, :class:`~roboreward.envs.g1.G1Sim` (holosoma's G1 MJCF, PD torques at the policy's
gains, 4 physics steps of 5 ms per policy step). Deterministic: the same figures on every run of one
machine and MuJoCo build.

- **Standing**: ``--stand`` seconds of a zero command from the default pose: pelvis height (lowest and
  last), how far the pelvis drifts on the floor and in yaw.
- **Walking**: for each ``--speeds`` value, from a fresh reset, 1 s standing then ``--walk`` seconds at
  that forward command: distance, the speed over the last half of the walk (the policy reaches its
  gait in about a second), sideways drift, heading change, lowest pelvis.
- **Turning**: 1 s standing then ``--walk`` seconds at ``--turn`` rad/s: the yaw rate reached.
- **CPU cost**: ms per control step for the policy (observation + network) and for the physics
  (4 MuJoCo steps with PD), over every step of the runs above.

    python benchmarks/locomotion.py [--policy g1_holosoma] [--stand 10] [--walk 5] [--speeds 0.5 1.0] [--turn 0.5]
                                    [--set onnx=holosoma_inference:models/loco/g1_29dof/ppo_g1_29dof.onnx]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from _machine import describe_machine

from roboreward.envs.g1 import G1Sim
from roboreward.policies.locomotion import load_locomotion_policy


class Loop:
    """Policy + simulator, timing each half of every step."""

    def __init__(self, policy, sim):
        self.policy, self.sim = policy, sim
        self.policy_s: list[float] = []
        self.physics_s: list[float] = []

    def reset(self):
        self.policy.reset()
        self.state = self.sim.reset()

    def run(self, command, seconds):
        """Run; returns per-step pelvis positions, yaws and heights."""
        positions, yaws = [], []
        for _ in range(round(seconds / self.sim.dt)):
            t0 = time.perf_counter()
            targets = self.policy.act(command, self.state)
            t1 = time.perf_counter()
            self.state = self.sim.step(targets)
            t2 = time.perf_counter()
            self.policy_s.append(t1 - t0)
            self.physics_s.append(t2 - t1)
            positions.append(self.sim.base_position)
            yaws.append(self.sim.base_yaw)
        return np.array(positions), np.unwrap(np.array(yaws))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="g1_holosoma", help="a shipped locomotion config or a YAML file")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (onnx=...)")
    parser.add_argument("--stand", type=float, default=10.0, help="seconds standing")
    parser.add_argument("--walk", type=float, default=5.0, help="seconds per walking or turning run")
    parser.add_argument("--speeds", type=float, nargs="*", default=[0.5, 1.0], help="forward commands (m/s)")
    parser.add_argument("--turn", type=float, default=0.5, help="yaw-rate command (rad/s) of the turning run")
    args = parser.parse_args()

    t0 = time.perf_counter()
    policy = load_locomotion_policy(args.policy, args.set)
    t1 = time.perf_counter()
    sim = G1Sim.for_policy(policy.config)
    t2 = time.perf_counter()
    loop = Loop(policy, sim)
    print(f"{policy}\n{sim}; physics {sim.model.opt.timestep * 1e3:g} ms")
    print(f"load: policy {1e3 * (t1 - t0):.0f} ms, simulator {1e3 * (t2 - t1):.0f} ms (MJCF compile)")
    print(f"machine: {describe_machine()}")
    height = 0.75  # ignored by a policy without a height input

    loop.reset()
    h0 = sim.base_height
    pos, yaw = loop.run((0.0, 0.0, 0.0, height), args.stand)
    drift = np.linalg.norm(pos[:, :2] - pos[0, :2], axis=1)
    print(f"\nstanding {args.stand:g} s (zero command): pelvis {h0:.3f} m at reset, lowest {pos[:, 2].min():.3f} m, "
          f"last {pos[-1, 2]:.3f} m; drift {drift[-1] * 100:.1f} cm (max {drift.max() * 100:.1f} cm), "
          f"yaw {math.degrees(yaw[-1]):+.1f} deg; diverged: {sim.diverged}")

    print(f"\nwalking {args.walk:g} s after 1 s standing (forward command vx):")
    for vx in args.speeds:
        loop.reset()
        loop.run((0.0, 0.0, 0.0, height), 1.0)
        start = sim.base_position
        pos, yaw = loop.run((vx, 0.0, 0.0, height), args.walk)
        half = len(pos) // 2
        steady = (pos[-1, 0] - pos[half - 1, 0]) / ((len(pos) - half) * sim.dt)
        print(f"  vx {vx:4.2f} m/s: {pos[-1, 0] - start[0]:5.2f} m forward, {steady:4.2f} m/s over the last "
              f"{(len(pos) - half) * sim.dt:g} s ({100 * steady / vx:3.0f} % of the command), sideways "
              f"{pos[-1, 1] - start[1]:+5.2f} m, heading {math.degrees(yaw[-1]):+5.1f} deg, lowest pelvis "
              f"{pos[:, 2].min():.3f} m; diverged: {sim.diverged}")

    loop.reset()
    loop.run((0.0, 0.0, 0.0, height), 1.0)
    yaw0 = sim.base_yaw
    pos, yaw = loop.run((0.0, 0.0, args.turn, height), args.walk)
    half = len(yaw) // 2
    rate = (yaw[-1] - yaw[half - 1]) / ((len(yaw) - half) * sim.dt)
    turned = math.degrees(yaw[-1] - yaw[0] + math.remainder(yaw[0] - yaw0, 2 * math.pi))
    print(f"\nturning {args.walk:g} s at {args.turn:g} rad/s: {turned:+.0f} deg, {rate:.2f} rad/s over the last "
          f"{(len(yaw) - half) * sim.dt:g} s, pelvis moved {np.linalg.norm(pos[-1, :2] - pos[0, :2]):.2f} m, "
          f"lowest {pos[:, 2].min():.3f} m; diverged: {sim.diverged}")

    p, s = np.array(loop.policy_s) * 1e3, np.array(loop.physics_s) * 1e3
    total = p + s
    print(f"\nCPU per control step ({len(p)} steps, one thread; a 50 Hz step has 20 ms):")
    for name, v in (("policy (obs + ONNX)", p), ("physics (4 x 5 ms + PD)", s), ("total", total)):
        print(f"  {name:24s} mean {v.mean():.3f} ms, p50 {np.percentile(v, 50):.3f}, p99 {np.percentile(v, 99):.3f}, "
              f"max {v.max():.3f}")
    simulated, spent = len(p) * sim.dt, total.sum() / 1e3
    print(f"  simulated {simulated:.0f} s in {spent:.2f} s: {simulated / spent:.0f}x real time")


if __name__ == "__main__":
    main()
