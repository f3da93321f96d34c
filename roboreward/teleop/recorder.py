"""Recording episodes: a LeRobot v3.0 dataset plus the teleop sidecar files, written episode by episode.

The session hands the recorder each recorded frame (state, action, camera frames) and every device
reading; :meth:`EpisodeRecorder.save` writes the episode. The files and their columns are described
in :mod:`roboreward.teleop.dataset`, which reads them back. Safe against a kill at any moment:

- the sidecar files are written (atomically) before the dataset commits the episode, so a kill leaves
  either both or a sidecar of an uncommitted episode, which the next recorder to open the folder deletes;
- while an episode is being recorded ``teleop/recording.json`` says so; a session killed mid-episode
  (``kill -9``) cannot save it, and the next recorder moves the marker into ``teleop/lost.json`` so the
  loss is on record (:attr:`EpisodeRecorder.lost_on_open`).

Example::

    rec = EpisodeRecorder("demos/pick", fps=30, cameras=["front"], image_size=(96, 128), state_names=[...],
                          action_names=[...], robot_type="franka", task="pick up the cube")
    rec.start(t)
    rec.add_frame(t, state, action, {"front": frame}, held=False, sources={"exo_right": t_us})
    rec.add_readings("exo_right", readings)
    rec.save(success=True)                    # the episode's index
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.config import bounded
from roboreward.errors import ConfigError
from roboreward.io import atomic_write
from roboreward.teleop.dataset import LOST_FILE, RECORDING_MARKER, TELEOP_DIR, episode_stem, read_lost_episodes
from roboreward.teleop.protocol import ArmReading, GloveReading, PedalReading, Reading


@dataclass(kw_only=True)
class RecordConfig:
    """Where and how episodes are recorded (LeRobot v3.0, see :mod:`roboreward.datasets.lerobot_v3`)."""

    root: str | None = bounded(None, "dataset folder (new, or a dataset to append to); null: do not record")
    task: str = bounded("teleoperated demonstration", "what the episodes show, in words (the task text)")
    fps: int = bounded(30, "frames per second recorded (state, command, camera frames)", ge=1, le=500)
    cameras: list[str] = bounded([], "cameras to record; empty: all of the robot's cameras")
    width: int = bounded(128, "camera frame width in pixels (even)", ge=2, le=4096)
    height: int = bounded(96, "camera frame height in pixels (even)", ge=2, le=4096)
    # On a CPU, rendering and video encoding can take every core; the devices' readers must come first.
    worker_nice: int = bounded(10, "nice value of the thread that renders, encodes and saves (0: normal)", ge=0, le=19)

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ConfigError(
                f"record.width/height: {self.width}x{self.height}; H.264 video needs even sizes, e.g. "
                f"{self.width + self.width % 2}x{self.height + self.height % 2}"
            )
        if not self.task.strip():
            raise ConfigError("record.task: empty; describe what the episodes show, e.g. 'pick up the red cube'")


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _parquet(columns: dict[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink, compression="snappy")
    return sink.getvalue().to_pybytes()


class EpisodeRecorder:
    """Episodes of a teleoperation session into a LeRobot v3.0 dataset plus the teleop sidecar files.

    :meth:`start`, then per frame :meth:`add_frame` and per drained batch :meth:`add_readings`, then
    :meth:`save` (or :meth:`discard`). :meth:`close` saves an episode in progress as interrupted.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fps: int,
        cameras: Sequence[str],
        image_size: tuple[int, int],
        state_names: Sequence[str],
        action_names: Sequence[str],
        robot_type: str,
        task: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        from roboreward.datasets.lerobot_v3 import DatasetWriter

        self.root = Path(root)
        self.task = task
        self.fps = fps
        self.metadata = dict(metadata or {})
        self.writer = DatasetWriter.open_or_create(
            self.root, fps=fps, cameras=list(cameras), image_size=tuple(image_size), state_names=list(state_names),
            action_names=list(action_names), robot_type=robot_type,
        )
        self.dir = self.root / TELEOP_DIR
        self.lost_on_open = self._recover()
        self.recording = False
        self._reset()

    # -- state -----------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        return self.writer.num_episodes

    @property
    def frames(self) -> int:
        """Frames of the episode in progress."""
        return len(self._frame_t)

    def _reset(self) -> None:
        self._t0 = 0.0
        self._started_unix = 0.0
        self._pending: dict[str, Any] | None = None  # the newest frame, written once the next arrives
        self._frame_t: list[float] = []
        self._frame_held: list[bool] = []
        self._frame_sources: dict[str, list[int]] = {}
        self._readings: list[tuple[str, int, float, float, int, tuple[float, ...], int]] = []

    def _recover(self) -> list[dict[str, Any]]:
        """Clean up after a killed session: stale sidecars, and a lost episode's marker -> lost.json."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()
        committed = self.writer.num_episodes
        for path in self.dir.glob("episode-*"):
            m = re.match(r"episode-(\d+)\.", path.name)
            if m and int(m.group(1)) >= committed:  # written just before a kill, never committed
                path.unlink()
        marker = self.dir / RECORDING_MARKER
        if not marker.is_file():
            return []
        try:
            entry = json.loads(marker.read_text())
        except json.JSONDecodeError:
            entry = {}
        entry["noticed_unix"] = time.time()
        lost = read_lost_episodes(self.root) + [entry]
        atomic_write(self.dir / LOST_FILE, _json(lost))
        marker.unlink()
        return [entry]

    # -- recording -------------------------------------------------------------------------

    def start(self, t: float) -> None:
        if self.recording:
            raise RuntimeError("an episode is already being recorded; save or discard it first")
        self._reset()
        self.recording = True
        self._t0 = t
        self._started_unix = time.time()
        marker = {"episode_index": self.writer.num_episodes, "started_unix": self._started_unix, "pid": os.getpid(),
                  "task": self.task}
        atomic_write(self.dir / RECORDING_MARKER, _json(marker))

    def add_frame(
        self, t: float, state: np.ndarray, action: np.ndarray, images: Mapping[str, np.ndarray], *, held: bool,
        sources: Mapping[str, int],
    ) -> None:
        if not self.recording:
            raise RuntimeError("add_frame() outside an episode; call start() first")
        self._flush_pending(done=False, success=False)
        self._pending = {"state": state, "action": action, "images": dict(images)}
        self._frame_t.append(t - self._t0)
        self._frame_held.append(bool(held))
        k = len(self._frame_t) - 1
        for name, t_us in sources.items():
            column = self._frame_sources.setdefault(name, [-1] * k)
            column.append(int(t_us))
        for column in self._frame_sources.values():
            if len(column) < k + 1:
                column.append(-1)

    def add_readings(self, device: str, readings: Sequence[Reading]) -> None:
        """Every reading of ``device`` that arrived since the last call (they land in the current frame)."""
        if not self.recording:
            return
        frame = max(len(self._frame_t) - 1, 0)
        t0 = self._t0
        out = self._readings
        for r in readings:
            if isinstance(r, ArmReading):
                values, buttons = r.angles, 0
            elif isinstance(r, GloveReading):
                values, buttons = tuple(float(c) for c in r.channels), 0
            elif isinstance(r, PedalReading):
                values, buttons = tuple(float(a) for a in r.axes), r.buttons
            else:  # pragma: no cover - the drivers only deliver these
                continue
            out.append((device, r.seq, r.t_device, r.t_received - t0, frame, values, buttons))

    def _flush_pending(self, *, done: bool, success: bool) -> None:
        if self._pending is None:
            return
        p, self._pending = self._pending, None
        self.writer.add_frame(state=p["state"], action=p["action"], images=p["images"], success=success, done=done)

    def save(self, *, success: bool, interrupted: bool = False, reason: str | None = None) -> int | None:
        """Write the episode (sidecar first, then the dataset's commit); its index, or None if it had no frames."""
        if not self.recording:
            raise RuntimeError("save() outside an episode")
        self.recording = False
        if not self._frame_t:
            self.writer.clear_episode()
            self._remove_marker()
            return None
        success = bool(success) and not interrupted
        self._flush_pending(done=True, success=success)
        index = self.writer.num_episodes
        self._write_sidecar(index, success=success, interrupted=interrupted, reason=reason)
        saved = self.writer.save_episode(task=self.task, success=success)
        assert saved == index
        self._remove_marker()
        self._reset()
        return index

    def discard(self) -> None:
        if not self.recording:
            return
        self.recording = False
        self._pending = None
        self.writer.clear_episode()
        self._remove_marker()
        self._reset()

    def close(self, reason: str = "the session ended") -> int | None:
        """Save an episode in progress as interrupted (``reason``), then release the dataset."""
        index = None
        try:
            if self.recording:
                index = self.save(success=False, interrupted=True, reason=reason)
        finally:
            self.writer.finalize()
        return index

    def _remove_marker(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / RECORDING_MARKER).unlink()

    def _write_sidecar(self, index: int, *, success: bool, interrupted: bool, reason: str | None) -> None:
        import pyarrow as pa

        stem = episode_stem(index)
        n = len(self._frame_t)
        frames: dict[str, Any] = {
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "t": pa.array(np.asarray(self._frame_t, dtype=np.float64)),
            "held": pa.array(np.asarray(self._frame_held, dtype=bool)),
        }
        for name, column in sorted(self._frame_sources.items()):
            frames[f"source.{name}"] = pa.array(np.asarray(column, dtype=np.int64))
        rows = self._readings
        readings = {
            "device": pa.array([r[0] for r in rows], type=pa.string()),
            "seq": pa.array([r[1] for r in rows], type=pa.int32()),
            "t_device": pa.array([r[2] for r in rows], type=pa.float64()),
            "t_received": pa.array([r[3] for r in rows], type=pa.float64()),
            "frame_index": pa.array([r[4] for r in rows], type=pa.int64()),
            "values": pa.array([list(r[5]) for r in rows], type=pa.list_(pa.float64())),
            "buttons": pa.array([r[6] for r in rows], type=pa.int32()),
        }
        meta = {
            "episode_index": index,
            "length": n,
            "task": self.task,
            "success": success,
            "interrupted": interrupted,
            "reason": reason,
            "started_unix": self._started_unix,
            "duration_s": float(self._frame_t[-1] + 1.0 / self.fps),
            "fps": self.fps,
            **self.metadata,
        }
        atomic_write(self.dir / f"{stem}.frames.parquet", _parquet(frames))
        atomic_write(self.dir / f"{stem}.readings.parquet", _parquet(readings))
        atomic_write(self.dir / f"{stem}.json", _json(meta))


__all__ = ["EpisodeRecorder", "RecordConfig"]
