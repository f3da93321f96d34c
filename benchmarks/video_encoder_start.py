"""Starting an episode's video encoder in a big process: its cost, and how long it holds the process's other threads.

Every recorded episode starts one ffmpeg per camera while the recording program runs on: a teleop session's
command thread at 250 Hz, `roboreward record`'s ROS callbacks. This script loads torch and ``--gigabytes`` of
tensor (a recording process with models loaded), runs a thread that wakes every millisecond, and starts ffmpeg
``--starts`` times through

- ``VideoEncoder`` (roboreward.datasets.lerobot_v3: ``Popen(start_new_session=True)``, so CPython can vfork), and
- ``imageio_ffmpeg.write_frames`` (the common way: a ``preexec_fn``, so CPython forks the whole process while
  holding the interpreter),

alternating, and prints each one's median start time and the longest gap the 1 ms thread saw while it ran.

    python benchmarks/video_encoder_start.py [--gigabytes 1.6] [--starts 6]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch

from roboreward.datasets.lerobot_v3 import VideoEncoder


class Ticker(threading.Thread):
    """Wakes every millisecond and remembers the longest gap between two wake-ups since :meth:`reset`."""

    def __init__(self):
        super().__init__(daemon=True)
        self.longest = 0.0
        self.running = True

    def reset(self) -> None:
        self.longest = 0.0

    def run(self) -> None:
        last = time.perf_counter()
        while self.running:
            time.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.6, help="resident tensor memory to load first")
    parser.add_argument("--starts", type=int, default=6, help="encoder starts per way")
    args = parser.parse_args()

    ballast = torch.ones(int(args.gigabytes * 1e9 / 4))  # touched pages: resident, as a loaded model's are
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    ticker = Ticker()
    ticker.start()
    time.sleep(0.2)
    results: dict[str, tuple[list[float], list[float]]] = {"VideoEncoder": ([], []), "imageio write_frames": ([], [])}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.starts):
            for name, (starts, gaps) in results.items():
                path = Path(tmp) / f"{i}-{len(name)}.mp4"
                time.sleep(0.05)
                ticker.reset()
                begin = time.perf_counter()
                if name == "VideoEncoder":
                    encoder = VideoEncoder(path, 64, 48, 20)
                    starts.append(time.perf_counter() - begin)
                    encoder.write(frame)
                    encoder.close()
                else:
                    writer = imageio_ffmpeg.write_frames(str(path), (64, 48), fps=20, macro_block_size=1,
                                                         ffmpeg_log_level="error")
                    writer.send(None)  # starts ffmpeg
                    starts.append(time.perf_counter() - begin)
                    writer.send(frame)
                    writer.close()
                gaps.append(ticker.longest)
    ticker.running = False
    print(f"process with torch and {ballast.numel() * 4 / 1e9:.1f} GB of tensors; {args.starts} starts each, alternating")
    for name, (starts, gaps) in results.items():
        print(f"  {name:22s} start {1e3 * statistics.median(starts):6.1f} ms median; the 1 ms thread's longest gap "
              f"{1e3 * statistics.median(gaps):6.1f} ms median, {1e3 * max(gaps):6.1f} ms worst")


if __name__ == "__main__":
    main()
