"""A crowd policy over ROS 2 against the same policy in the env: the same episodes, success and time to goal.

Starts ``roboreward sim-robot diff_drive --crowd RUN`` and ``roboreward deploy RUN --robot diff_drive`` as their
own processes (DDS on this machine only), counts the sim-robot's episode endings on ``/crowd/event`` until
``--episodes`` have ended, then runs the policy in ``roboreward/CrowdNav-v0`` itself on the same layouts (episode k
seeded ``--seed`` + k in both) at its training time step. The ROS side differs from training as a robot does: the
base integrates at 50 Hz with acceleration limits between commands, the people at 50 Hz, perception arrives at
10 Hz and commands every 0.25 s of sim time, with the transport and the safety layer in between.

    python benchmarks/crowd_deploy.py runs/crowd_diff_drive-... [--episodes 20] [--seed 100] [--realtime-factor 1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _machine import describe_machine


def ros_episodes(run: Path, episodes: int, seed: int, rtf: float, domain: int) -> tuple[dict, dict]:
    """(sim-robot summary, deploy stats) after ``episodes`` episodes over ROS 2."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from roboreward.hardware.ros import RosSession

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS="1")
    cli = [sys.executable, "-m", "roboreward.cli"]
    stats = Path(tempfile.mkdtemp()) / "deploy.json"
    session = RosSession("crowd_deploy_benchmark", domain_id=domain)
    ended: list[str] = []
    lock = threading.Lock()

    def on_event(msg):
        with lock:
            ended.append(msg.data)

    latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    session.node.create_subscription(String, "/crowd/event", on_event, latched)
    sim = subprocess.Popen([*cli, "sim-robot", "diff_drive", "--crowd", str(run), "--seed", str(seed),
                            "--realtime-factor", str(rtf), "--domain-id", str(domain)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deploy = subprocess.Popen([*cli, "deploy", str(run), "--robot", "diff_drive", "--domain-id", str(domain),
                               "--stats", str(stats)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120 + 60 * episodes / rtf
        while time.monotonic() < deadline:
            with lock:
                if len(ended) >= episodes:
                    break
            if sim.poll() is not None or deploy.poll() is not None:
                raise RuntimeError("sim-robot or deploy exited early")
            time.sleep(0.2)
    finally:
        for process in (deploy, sim):
            process.send_signal(signal.SIGINT)
        out = sim.communicate(timeout=30)[0]
        deploy.wait(timeout=30)
        session.close()
    line = [entry for entry in out.splitlines() if "stopped;" in entry]
    if not line or not stats.is_file():
        raise RuntimeError(f"no summary from sim-robot or deploy:\n{out[-2000:]}")
    return json.loads(line[-1].split("stopped; ", 1)[1]), json.loads(stats.read_text())


def env_episodes(run: Path, episodes: int, seed: int) -> list[tuple[str, float]]:
    """(ending, seconds) of the policy's own episodes in the env, seeded as the sim-robot's."""
    from roboreward.envs.crowd.env import CrowdNavBatch
    from roboreward.hardware.crowd import load_crowd_policy
    from roboreward.hardware.crowd_sim_robot import crowd_config
    from roboreward.hardware.robot import load_robot_config

    _, policy = load_crowd_policy(run)
    config = crowd_config(str(run), load_robot_config("diff_drive"))  # the robot the sim-robot gives it
    batch = CrowdNavBatch(config, 1)
    out = []
    for k in range(episodes):
        batch.reset(0, seed + k)
        steps = 0
        while True:
            obs = {key: value[0] for key, value in batch.observe().items()}
            _, terminated, truncated, infos = batch.step(np.asarray(policy(obs)).reshape(1, 2))
            steps += 1
            if terminated[0] or truncated[0]:
                out.append((infos[0]["event"] or "timeout", steps * config.time_step))
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run trained on roboreward/CrowdNav-v0 with a diff_drive robot")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--realtime-factor", type=float, default=1.0,
                        help="sim seconds per wall second; the deploy acts on wall-clock stamps, so F != 1 changes "
                        "its commands per sim second by 1/F")
    parser.add_argument("--domain-id", type=int, default=77)
    args = parser.parse_args()
    print(describe_machine())
    t0 = time.monotonic()
    summary, stats = ros_episodes(args.run, args.episodes, args.seed, args.realtime_factor, args.domain_id)
    ros_wall = time.monotonic() - t0
    log = summary["episode_log"][: args.episodes]
    own = env_episodes(args.run, len(log), args.seed)
    ros_success = [e["time"] for e in log if e["event"] == "success"]
    env_success = [t for event, t in own if event == "success"]
    same = sum(e["event"] == o[0] for e, o in zip(log, own))
    print(f"{len(log)} episodes (seeds {args.seed}..{args.seed + len(log) - 1}), realtime factor "
          f"{args.realtime_factor:g}, {ros_wall:.0f} s wall")
    print("| | success | time to goal (s, successes) | endings |")
    print("|---|---|---|---|")
    print(f"| over ROS 2 (sim-robot + deploy) | {len(ros_success)}/{len(log)} | {np.mean(ros_success):.2f} | "
          f"{summary['events']} |")
    events: dict[str, int] = {}
    for event, _ in own:
        events[event] = events.get(event, 0) + 1
    print(f"| in the env (0.25 s steps) | {len(env_success)}/{len(own)} | {np.mean(env_success):.2f} | {events} |")
    print(f"same ending in {same}/{len(log)} episodes; deploy: {stats['commands']} commands, "
          f"{stats['rate_hz']:.2f} Hz wall ({stats['rate_hz'] / args.realtime_factor:.2f} Hz sim), latency p50 "
          f"{stats['latency_p50_ms']:.2f} ms p99 {stats['latency_p99_ms']:.2f} ms, missed deadlines "
          f"{stats['missed_deadlines']}, safety holds {stats['safety']['holds']}, velocity limit hits "
          f"{stats['safety']['velocity_limited']}, stale perception {stats['controller']['stale_perception']}")


if __name__ == "__main__":
    main()
