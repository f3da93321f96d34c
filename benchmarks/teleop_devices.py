"""Device sample rate and device-to-driver latency: three simulated devices at once, through the drivers.

A simulated exoskeleton arm, Hall glove and pedal each stream the cockpit protocol on its own pty
(see roboreward/teleop/simulated.py); the real drivers (pyserial reader thread + streaming parser)
read them. For every reading the latency is the driver's receive time minus the timestamp the
device put in the payload (both the host's CLOCK_MONOTONIC). Goal (issue 5): >= 200 Hz per device
and p99 < 5 ms, three devices at once.

    python benchmarks/teleop_devices.py [--seconds 5] [--rate 250] [--faults] [--realtime 10]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np

from roboreward.teleop.devices import (
    DeviceNotConnectedError,
    ExoskeletonArm,
    ExoskeletonArmConfig,
    HallGlove,
    HallGloveConfig,
    Pedal,
    PedalConfig,
)
from roboreward.teleop.simulated import FaultConfig, SimulatedExoskeletonArm, SimulatedGlove, SimulatedPedal

GOAL_HZ = 200.0
GOAL_P99_MS = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measurement time after a 0.5 s warm-up")
    parser.add_argument("--rate", type=float, default=250.0, help="each simulated device's rate (Hz)")
    parser.add_argument("--faults", action="store_true", help="1%% bit flips, garbage and dropouts on every link")
    parser.add_argument("--realtime", type=int, default=None, metavar="PRIO",
                        help="run the drivers' reader threads at this SCHED_FIFO priority (needs CAP_SYS_NICE)")
    args = parser.parse_args()

    faults = FaultConfig(bit_flip=0.01, garbage=0.01, dropout=0.01) if args.faults else None
    sims = [
        SimulatedExoskeletonArm(side="left", rate_hz=args.rate, noise=0.001, faults=faults, seed=1),
        SimulatedGlove(side="left", rate_hz=args.rate, noise=2.0, faults=faults, seed=2),
        SimulatedPedal(rate_hz=args.rate, noise=2.0, faults=faults, seed=3),
    ]
    for sim in sims:
        sim.start()
    rt = {"realtime_priority": args.realtime}
    drivers = [
        ExoskeletonArm(ExoskeletonArmConfig(port=sims[0].port, side="left", **rt)),
        HallGlove(HallGloveConfig(port=sims[1].port, side="left", **rt)),
        Pedal(PedalConfig(port=sims[2].port, **rt)),
    ]
    try:
        for d in drivers:
            d.connect()
        time.sleep(0.5)  # warm-up: lazy imports, first frames buffered during connect
        for d in drivers:
            d.drain()
            d.parser.reset_stats()
        start = time.monotonic()
        cpu_start = time.process_time()
        readings: dict[str, list] = {d.name: [] for d in drivers}
        while (elapsed := time.monotonic() - start) < args.seconds:
            time.sleep(0.05)  # a control loop would call get_action() here; draining is what recording does
            for d in drivers:
                readings[d.name].extend(d.drain())
        for d in drivers:
            readings[d.name].extend(d.drain())
        cpu = time.process_time() - cpu_start
    finally:
        for d in drivers:
            with contextlib.suppress(DeviceNotConnectedError):
                d.disconnect()
        for sim in sims:
            sim.stop()

    print(f"three simulated devices at {args.rate:g} Hz for {elapsed:.1f} s, os.cpu_count()={os.cpu_count()}"
          f", load average {os.getloadavg()[0]:.2f}{', faults on' if faults else ''}"
          f"{f', reader threads SCHED_FIFO {args.realtime}' if args.realtime else ''}")
    for d in drivers:
        if d.last_error:
            print(f"  {d.name}: {d.last_error}")
    print(f"{'device':<16} {'rate Hz':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  parser faults")
    ok = True
    for d in drivers:
        rs = readings[d.name]
        lat = np.array([r.t_received - r.t_device for r in rs]) * 1e3
        rate = len(rs) / elapsed
        p50, p99, worst = (np.percentile(lat, [50, 99]).tolist() + [lat.max()]) if len(lat) else (np.nan,) * 3
        s = d.parser.stats
        faults_txt = f"crc {s.bad_crc}, len {s.bad_length}, type {s.unknown_type}, dropped {s.dropped_frames}"
        print(f"{d.name:<16} {rate:8.1f} {p50:7.3f} {p99:7.3f} {worst:7.2f}  {faults_txt}")
        ok &= rate >= GOAL_HZ and p99 < GOAL_P99_MS
    print(f"CPU of this process (3 simulated devices + 3 drivers + parsing): {100 * cpu / elapsed:.0f}% of one core")
    print(f"goal: >= {GOAL_HZ:g} Hz per device and p99 < {GOAL_P99_MS:g} ms -> {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
