"""Camera images over the ROS 2 bridge: 224x224 rgb8 at 30 Hz between two processes, for N seconds.

Prints, per QoS, the received rate, the drops and the latency (publish stamp -> decoded frame in the
subscriber, both on this machine's clock). Two sources:

- ``synthetic`` (default): a publisher process sends numbered frames (the number in ``frame_id``,
  so every drop is counted exactly) with a moving pattern, through :func:`roboreward.hardware.ros.image_message`.
- ``sim``: ``roboreward sim-robot diff_drive`` renders its camera in MuJoCo and
  publishes it; drops are counted from gaps in the header stamps (as the bridge's subscriber does),
  and the latency includes rendering.

The subscriber decodes each message with :func:`roboreward.hardware.ros.image_from_message`, the
code path of :class:`~roboreward.hardware.ros.StateSubscriber`. Discovery stays on this machine
(``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``) in a ROS domain of the benchmark's own.

    python benchmarks/ros_image_topic.py                      # 10 s, both QoS, synthetic
    python benchmarks/ros_image_topic.py --source sim --seconds 20
    python benchmarks/ros_image_topic.py --size 640 --rate 30 --qos best_effort
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roboreward.hardware.robot import QosConfig  # noqa: E402

TOPIC = "/benchmark/image_raw"


def _qos(reliability: str) -> QosConfig:
    return QosConfig(reliability=reliability, durability="volatile", history="keep_last", depth=1)


def publisher(args: argparse.Namespace) -> int:
    """The publishing process: numbered frames at ``rate`` Hz once the subscriber has matched."""
    from sensor_msgs.msg import Image

    from roboreward.hardware.ros import RosSession, image_message, qos_profile

    with RosSession("image_benchmark_publisher", domain_id=args.domain_id, spin=False) as session:
        pub = session.node.create_publisher(Image, TOPIC, qos_profile(_qos(args.qos)))
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print("publisher: no subscriber after 30 s", file=sys.stderr)
                return 1
            time.sleep(0.01)
        time.sleep(0.5)  # let the match settle on both sides
        base = np.random.default_rng(0).integers(0, 255, size=(args.size, args.size, 3), dtype=np.uint8)
        n = int(round(args.seconds * args.rate))
        period = 1.0 / args.rate
        start = time.monotonic()
        late = 0
        for seq in range(n):
            due = start + seq * period
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            elif now - due > period:
                late += 1
            frame = np.roll(base, seq, axis=1)  # a new image every time
            pub.publish(image_message(frame, session.now(), frame_id=str(seq)))
        elapsed = time.monotonic() - start
        time.sleep(0.5)
        print(f"SENT {n} {elapsed:.4f} {late}", flush=True)
    return 0


class Receiver:
    def __init__(self, session, reliability: str, rate: float, size: int, topic: str = TOPIC):
        from sensor_msgs.msg import Image

        from roboreward.hardware.ros import image_from_message, qos_profile

        self.session = session
        self.decode = image_from_message
        self.rate, self.size = rate, size
        self.seqs: list[int] = []
        self.stamps: list[float] = []
        self.latency: list[float] = []
        self.arrivals: list[float] = []
        self.bad = 0
        self.lock = threading.Lock()
        session.node.create_subscription(Image, topic, self._on_image, qos_profile(_qos(reliability)))

    def _on_image(self, msg) -> None:
        frame = self.decode(msg, time.monotonic())
        received = self.session.now()
        ok = frame.data.shape == (self.size, self.size, 3)
        with self.lock:
            self.bad += 0 if ok else 1
            self.seqs.append(int(msg.header.frame_id) if msg.header.frame_id.isdigit() else -1)
            self.stamps.append(frame.stamp)
            self.latency.append(received - frame.stamp)
            self.arrivals.append(time.monotonic())


def _latency_text(latency: list[float]) -> str:
    if not latency:
        return "-"
    ms = np.asarray(latency) * 1e3
    return f"p50 {np.percentile(ms, 50):.2f} / p95 {np.percentile(ms, 95):.2f} / max {ms.max():.2f} ms"


def run_synthetic(args: argparse.Namespace, reliability: str, domain_id: int) -> dict:
    from roboreward.hardware.ros import RosSession

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id))
    cmd = [
        sys.executable,
        __file__,
        "--role",
        "publisher",
        "--qos",
        reliability,
        "--domain-id",
        str(domain_id),
        "--seconds",
        str(args.seconds),
        "--rate",
        str(args.rate),
        "--size",
        str(args.size),
    ]
    with RosSession("image_benchmark_subscriber", domain_id=domain_id) as session:
        receiver = Receiver(session, reliability, args.rate, args.size)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.seconds + 120)
        time.sleep(0.3)
    sent_line = [line for line in proc.stdout.splitlines() if line.startswith("SENT")]
    if proc.returncode != 0 or not sent_line:
        raise RuntimeError(f"publisher failed ({proc.returncode}): {proc.stderr[-2000:]}")
    _, sent, elapsed, late = sent_line[0].split()
    sent, elapsed = int(sent), float(elapsed)
    with receiver.lock:
        seqs = set(receiver.seqs)
        arrivals = receiver.arrivals[:]
        latency = receiver.latency[:]
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {
        "qos": reliability,
        "sent": sent,
        "sent_hz": sent / elapsed,
        "received": len(seqs),
        "received_hz": (len(arrivals) - 1) / span if len(arrivals) > 1 else 0.0,
        "dropped": sent - len(seqs),
        "late_publishes": int(late),
        "bad_frames": receiver.bad,
        "latency": _latency_text(latency),
    }


def run_sim(args: argparse.Namespace, reliability: str, domain_id: int) -> dict:
    from roboreward.hardware.ros import RosSession

    env = dict(
        os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1"
    )
    overrides = [
        f"state.image.rate_hz={args.rate}",
        f"state.image.width={args.size}",
        f"state.image.height={args.size}",
        f"state.image.qos.reliability={reliability}",
    ]
    cmd = [
        sys.executable,
        "-m",
        "roboreward.cli", "sim-robot",
        "diff_drive",
        *overrides,
        "--domain-id",
        str(domain_id),
        "--duration",
        str(args.seconds + 3.0),
    ]
    with RosSession("image_benchmark_subscriber", domain_id=domain_id) as session:
        receiver = Receiver(
            session, reliability, args.rate, args.size, topic="/camera/image_raw"
        )  # diff_drive's camera
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line.rstrip())
            if ": ready;" in line:
                break
        time.sleep(1.5)  # discovery and the first frames
        with receiver.lock:
            first = len(receiver.stamps)
        time.sleep(args.seconds)
        with receiver.lock:
            stamps = receiver.stamps[first:]
            arrivals = receiver.arrivals[first:]
            latency = receiver.latency[first:]
        lines += proc.communicate(timeout=60)[0].splitlines()
    period = 1.0 / args.rate
    gaps = np.diff(stamps)
    dropped = int(sum(int(round(g / period)) - 1 for g in gaps if g > 1.5 * period))
    summary = [line for line in lines if ": stopped;" in line]
    skipped = summary[0].split("'images_skipped': ")[1].split(",")[0].rstrip("}") if summary else "?"
    return {
        "qos": reliability,
        "received": len(stamps),
        "received_hz": (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0,
        "dropped": dropped,
        "sim_skipped_renders_whole_run": skipped,
        "bad_frames": receiver.bad,
        "latency": _latency_text(latency),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--qos", choices=["best_effort", "reliable", "both"], default="both")
    parser.add_argument("--source", choices=["synthetic", "sim"], default="synthetic")
    parser.add_argument("--domain-id", type=int, default=None)
    parser.add_argument("--role", choices=["subscriber", "publisher"], default="subscriber", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        return publisher(args)
    domain = args.domain_id if args.domain_id is not None else 150 + os.getpid() % 50
    print(
        f"ROS 2 image topic, {args.size}x{args.size} rgb8 ({args.size * args.size * 3 / 1024:.0f} KiB), "
        f"{args.rate:g} Hz, {args.seconds:g} s, source {args.source}, ROS_DOMAIN_ID {domain}, localhost discovery, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    qos_list = ["best_effort", "reliable"] if args.qos == "both" else [args.qos]
    for reliability in qos_list:
        result = (run_synthetic if args.source == "synthetic" else run_sim)(args, reliability, domain)
        print(
            "  " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
