"""HOMIE's body on the G1: the holosoma walking policy against ours (``roboreward train g1_homie``), same seeds.

Both run in ``roboreward/G1Loco-v0`` (holosoma's G1 MJCF, 50 Hz) with domain randomisation off and
fixed commands; holosoma acts through the env's teacher (it reads its own arm targets, as in the
cockpit, and squats by its reference pose down to 0.65 m: ``squat`` in
roboreward/configs/locomotion/g1_holosoma.yaml), ours through its SB3 model (deterministic). Per policy:

- **velocity tracking**: 1 s standing then ``--walk`` s at vx 0.5, vx 1.0, vy 0.3 and yaw rate 0.5,
  arms still; the mean absolute error of the pelvis-frame velocity over the last half, as a
  fraction of the command;
- **height tracking**: 6 s at each commanded pelvis height 0.45 / 0.55 / 0.65 / 0.75 m, standing;
  the mean absolute height error over the last 3 s;
- **falls per 100 episodes** of ``--seconds`` s with the arms re-posed over 30 % and 60 % of their
  range (standing and walking commands drawn by the env, heights over the top ``--height-reach`` m of
  its 0.45-0.75 m range, seeds 0..N-1);
- **standing drift** per 10 s, arms still; **CPU** ms per control step (policy only).

    python benchmarks/g1_homie.py --run runs/g1_homie-... [--checkpoint model.zip distilled_policy.zip ...]
                                  [--episodes 100] [--seconds 20] [--height-reach 0.3]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from _machine import describe_machine

from roboreward.envs.g1_loco import G1LocoEnv


class Holosoma:
    name = "holosoma + squat pose (teacher)"

    def __init__(self) -> None:
        self.label = None
        self.seconds = 0.0
        self.calls = 0

    def reset(self, info: dict) -> None:
        self.label = info["teacher_action"]

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        self.label = info.get("teacher_action", self.label)
        return self.label


class Ours:
    def __init__(self, path: Path) -> None:
        from stable_baselines3 import PPO

        self.model = PPO.load(path, device="cpu")
        self.name = f"ours: {path.parent.name if path.name == 'model.zip' else path.stem}"
        self.seconds = 0.0
        self.calls = 0

    def reset(self, info: dict) -> None:
        pass

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        t0 = time.perf_counter()
        action, _ = self.model.predict(obs, deterministic=True)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return action


def run(env: G1LocoEnv, policy, seconds: float, command=None, seed: int = 0):
    """One episode; returns (fell, pelvis velocities in its frame [T, 3], heights [T], positions [T, 2])."""
    obs, info = env.reset(seed=seed)
    if command is not None:
        env.command = np.array(command, dtype=np.float64)
        env._next_command = math.inf
        if env.teacher is not None:  # relabel the first observation with the fixed command
            env.teacher.reset()
            info["teacher_action"] = env._teacher_action()
    policy.reset(info)
    velocities, heights, positions = [], [], []
    for _ in range(round(seconds / env.sim.dt)):
        obs, _, terminated, _, info = env.step(policy.act(obs, info))
        _, lin, ang = env._base_frame()
        velocities.append([lin[0], lin[1], ang[2]])
        heights.append(env.sim.base_height)
        positions.append(env.sim.base_position[:2].copy())
        if terminated:
            return True, np.array(velocities), np.array(heights), np.array(positions)
    return False, np.array(velocities), np.array(heights), np.array(positions)


def evaluate(policy, args) -> dict[str, str]:
    still = {"arm_curriculum": {"fixed": 0.0}, "randomization": {"enabled": False}, "teacher": "g1_holosoma"}
    env = G1LocoEnv(**still)
    out: dict[str, str] = {}
    try:
        for label, cmd, axis in (("vx 0.5", (0.5, 0, 0), 0), ("vx 1.0", (1.0, 0, 0), 0), ("vy 0.3", (0, 0.3, 0), 1),
                                 ("yaw 0.5", (0, 0, 0.5), 2)):
            fell, v, _, _ = run(env, policy, 1.0 + args.walk, (*cmd, 0.75))
            half = v[len(v) // 2:]
            err = float(np.mean(np.abs(half[:, axis] - cmd[axis]))) / abs(cmd[axis])
            out[f"{label}: tracking error"] = f"{100 * err:.0f} %" + (" (fell)" if fell else "")
        errors = []
        for h in (0.45, 0.55, 0.65, 0.75):
            fell, _, heights, _ = run(env, policy, 6.0, (0, 0, 0, h))
            errors.append(float(np.mean(np.abs(heights[-150:] - h))) if not fell else math.nan)
        out["height error 0.45/0.55/0.65/0.75 m"] = " / ".join(f"{100 * e:.1f} cm" for e in errors)
        fell, _, _, pos = run(env, policy, 10.0, (0, 0, 0, 0.75))
        out["standing drift per 10 s"] = f"{100 * float(np.hypot(*(pos[-1] - pos[0]))):.1f} cm"
    finally:
        env.close()
    for fraction in (0.3, 0.6):
        env = G1LocoEnv(arm_curriculum={"fixed": fraction}, randomization={"enabled": False}, teacher="g1_holosoma",
                        commands={"height_start": args.height_reach})  # held: seeded resets do not move curricula
        try:
            falls = sum(run(env, policy, args.seconds, seed=s)[0] for s in range(args.episodes))
        finally:
            env.close()
        out[f"falls per 100 ({args.episodes} x {args.seconds:g} s, heights {0.75 - args.height_reach:.2f}-0.75 m), "
            f"arms {100 * fraction:.0f} %"] = (
            f"{100 * falls / args.episodes:.0f}")
    if policy.calls:
        out["CPU per step (policy)"] = f"{1e3 * policy.seconds / policy.calls:.2f} ms"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a g1_homie run folder (omit: holosoma only)")
    parser.add_argument("--checkpoint", nargs="+", default=["model.zip"],
                        help="model.zip, distilled_policy.zip or checkpoints/step_N/model.zip (several: one column each)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per arm range for the fall count")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per fall-count episode")
    parser.add_argument("--walk", type=float, default=5.0, help="seconds per velocity-tracking run")
    parser.add_argument("--height-reach", type=float, default=0.3,
                        help="fall-count episodes command heights within this far below 0.75 m (0.3: all of 0.45-0.75)")
    args = parser.parse_args()
    print(f"machine: {describe_machine()}")
    policies = [Holosoma()]
    for checkpoint in args.checkpoint if args.run is not None else []:
        path = args.run / checkpoint
        if not path.is_file():
            found = sorted(str(p.relative_to(args.run)) for p in args.run.rglob("*.zip"))
            raise SystemExit(f"{path} does not exist; the run holds {found}")
        policies.append(Ours(path))
    t0 = time.perf_counter()
    results = {p.name: evaluate(p, args) for p in policies}
    rows = list(next(iter(results.values())))
    width = max(len(r) for r in rows)
    print(f"{'':<{width}}  " + "  ".join(f"{name:>28}" for name in results))
    for row in rows:
        print(f"{row:<{width}}  " + "  ".join(f"{results[name].get(row, '-'):>28}" for name in results))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
