"""Device rate and device-to-command latency through the whole teleoperation session.

Three simulated devices (an exoskeleton arm, a glove and the pedal by default) stream the cockpit
protocol on their own ptys at ``--rate`` Hz from a child process (as real devices are separate
microcontrollers, their senders do not compete with the session for the interpreter); a
:class:`~roboreward.teleop.session.TeleopSession` drives the simulated robot from them, exactly as
``roboreward teleop run`` does. Per device:

- rate: readings per second that reached the session;
- reading -> command: from the driver's receive time (``t_received``) to the moment the session's
  command reflecting that reading was handed to the robot (``CommandSink.send`` returned);
- device -> command: the same from the timestamp the device put in the frame (the simulated devices
  use the host clock), so it includes the pty and the driver;
- command -> simulation: until the simulation's next control step used it (``control_dt`` = 20 ms).

Measured twice: driving only, then while recording an episode (frames rendered and encoded at
``--fps``). Goal (issue 5): >= 200 Hz per device and p99 < 5 ms (reading -> command), three
devices at once.

    python benchmarks/teleop_session.py [--robot g1] [--seconds 5] [--rate 250] [--fps 15] [--realtime 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import torch  # noqa: E402

torch.set_num_threads(1)

from roboreward.teleop.cockpit import device_config  # noqa: E402
from roboreward.teleop.recorder import RecordConfig  # noqa: E402
from roboreward.teleop.robots import make_teleop_robot  # noqa: E402
from roboreward.teleop.session import SessionConfig, TeleopSession  # noqa: E402

GOAL_HZ = 200.0
GOAL_P99_MS = 5.0


def _devices_process(names: list[str], limits: dict, rate: float, realtime: int | None, conn) -> None:
    """Child process: the simulated devices (real devices are microcontrollers, not threads of the session)."""
    import numpy as np

    from roboreward.teleop.cockpit import arm_motion, parse_device_name
    from roboreward.teleop.simulated import SimulatedExoskeletonArm, SimulatedGlove, SimulatedPedal

    if realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(realtime))
        except OSError:
            pass
    rng = np.random.default_rng(0)
    sims = []
    for i, name in enumerate(names):
        kind, side = parse_device_name(name)
        if kind == "exo":
            lim = np.asarray(limits[side])
            sims.append(SimulatedExoskeletonArm(side=side, n_joints=len(lim), rate_hz=rate, noise=0.001, seed=i,
                                                motion=arm_motion(lim, rng)))
        elif kind == "glove":
            sims.append(SimulatedGlove(side=side, rate_hz=rate, noise=3.0, seed=i))
        else:
            sims.append(SimulatedPedal(rate_hz=rate, noise=2.0, seed=i, n_buttons=0,
                                       motion=lambda t: [800.0, 0.0, 0.0, 0.0]))
    for sim in sims:
        sim.start()
    conn.send([sim.port for sim in sims])
    conn.recv()  # until the parent is done
    for sim in sims:
        sim.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="g1", help="g1 (default) or franka")
    parser.add_argument("--devices", nargs="+", default=None,
                        help="device names (default: exo_left glove_left pedal for the G1, exo_right glove_right "
                        "pedal for the Franka)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement time per phase")
    parser.add_argument("--rate", type=float, default=250.0, help="each simulated device's rate (Hz)")
    parser.add_argument("--fps", type=int, default=15, help="recorded frames per second in the recording phase")
    parser.add_argument("--size", nargs=2, type=int, default=(128, 96), metavar=("W", "H"), help="frame size")
    parser.add_argument("--no-record", action="store_true", help="skip the recording phase")
    parser.add_argument("--realtime", type=int, default=None, metavar="PRIO",
                        help="SCHED_FIFO priority for the drivers' readers and the command thread (needs CAP_SYS_NICE)")
    args = parser.parse_args()

    side = "left" if args.robot == "g1" else "right"
    names = args.devices or [f"exo_{side}", f"glove_{side}", "pedal"]
    robot = make_teleop_robot(args.robot, size=tuple(args.size))
    limits = {s: robot.arm_limits(s) for s in robot.arm_joints}
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(
        target=_devices_process, args=(names, limits, args.rate, args.realtime, child), daemon=True
    )
    proc.start()
    ports = dict(zip(names, parent.recv()))
    out = tempfile.mkdtemp(prefix="teleop-bench-")
    rt = {"realtime_priority": args.realtime} if args.realtime else {}
    config = SessionConfig(
        robot=args.robot,
        devices={n: device_config(n, port, **rt) for n, port in ports.items()},
        record=RecordConfig(root=None if args.no_record else f"{out}/demo", fps=args.fps, width=args.size[0],
                            height=args.size[1], task="benchmark"),
        command_realtime_priority=args.realtime,
        viewer="off",
        status_interval_s=0,
    )
    messages: list[str] = []
    try:
        session = TeleopSession(config, robot=robot, keyboard=False, print_fn=messages.append)
        with session:
            session.run(duration=0.5)  # warm-up
            phases = [("driving", None)] + ([] if args.no_record else [("recording", "start_stop")])
            results = []
            for label, event in phases:
                if event:
                    session.request(event)
                    session.run(duration=0.3)  # the episode's encoders start
                session.reset_stats()
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                session.run(duration=args.seconds)
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
                cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
                results.append((label, session.stats(), cpu / args.seconds))
            if not args.no_record:
                session.request("start_stop")
                session.run(duration=0.2)
        backlog_done = session.stats()
    finally:
        parent.send("stop")
        proc.join(timeout=5)
        robot.close()
        shutil.rmtree(out, ignore_errors=True)

    print(f"{args.robot}, {len(names)} simulated devices at {args.rate:g} Hz, {args.seconds:g} s per phase, "
          f"os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
          + (f", readers + command thread SCHED_FIFO {args.realtime}" if args.realtime else ""))
    ok = True
    for label, stats, cpu in results:
        print(f"\n{label}" + (f" (frames at {args.fps} fps, {args.size[0]}x{args.size[1]}, "
                              f"{len(robot.cameras)} cameras)" if label == "recording" else ""))
        print(f"{'device':<12} {'rate Hz':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}   "
              f"{'device->command p50/p99 ms':>27}")
        for d in stats.devices:
            p50, p99, worst = d.latency_ms
            dp50, dp99, _ = d.device_latency_ms
            print(f"{d.name:<12} {d.rate_hz:8.1f} {p50:7.3f} {p99:7.3f} {worst:7.2f}   {dp50:13.3f} / {dp99:.3f}"
                  + ("" if d.connected else "  (unplugged at the end)"))
            ok &= d.rate_hz >= GOAL_HZ and p99 < GOAL_P99_MS
        a50, a99, _ = stats.apply_latency_ms
        print(f"command -> simulation step: p50 {a50:.2f} ms, p99 {a99:.2f} ms (control step {robot.dt * 1e3:g} ms); "
              f"holds {stats.holds}, simulation skipped {stats.sim_skipped_s:.2f} s; CPU {100 * cpu:.0f}% of one core")
        if label == "recording":
            print(f"frames recorded {stats.frames_recorded}, still to render at the end of the phase "
                  f"{stats.render_backlog}")
    unplugs = [m for m in messages if " unplugged: " in m]
    if unplugs:
        print(f"\n{len(unplugs)} device(s) went silent for > stale_after_s (50 ms) during the run: {unplugs[:3]}")
    print(f"\ngoal: >= {GOAL_HZ:g} Hz per device and p99 < {GOAL_P99_MS:g} ms -> {'met' if ok else 'NOT met'}"
          f" (episodes saved: {backlog_done.episodes_saved})")


if __name__ == "__main__":
    main()
