"""Reading what ``roboreward teleop run`` recorded: a LeRobot v3.0 dataset plus its teleop sidecar.

A recorded dataset is LeRobot v3.0 (:mod:`roboreward.datasets.lerobot_v3`): ``observation.state`` is
the robot's joint positions (then its base pose, for a walking robot: :data:`BASE_POSE_NAMES`),
``action`` the joint targets commanded (then the walking command: :data:`BASE_COMMAND_NAMES`), one
video per camera. What LeRobot's layout has no place for lies beside it, per episode, under
``ROOT/teleop/`` (:data:`TELEOP_DIR`):

- ``episode-NNNNNN.json``: ``interrupted`` and ``reason``, ``success``, robot, devices (ports,
  calibration files), the sink (and its joint renaming), the episode's start time;
- ``episode-NNNNNN.frames.parquet``: per frame the host time, whether the robot was held, and per
  device the timestamp of the reading the recorded command came from;
- ``episode-NNNNNN.readings.parquet``: every device reading of the episode (raw values, sequence
  number, device and host timestamps, the frame it arrived in);
- ``lost.json``: episodes a killed session could not save.

:class:`TeleopDataset` reads both halves; :mod:`roboreward.teleop.recorder` writes them, and
:mod:`roboreward.teleop.replay` reads them back to check a recording::

    ds = TeleopDataset("demos/g1_pick")
    ds.interrupted_episodes                  # [2]: cut short by an unplug, a crash or the session's end
    ep = ds.episode(0)
    ep.readings["exo_left"].values           # every raw reading of the left exoskeleton, [N, 7]
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The walking command at the end of a walking robot's action vector, and its base pose at the end of the state.
BASE_COMMAND_NAMES = ("base.vx", "base.yaw_rate", "base.height")
BASE_POSE_NAMES = ("base.x", "base.y", "base.yaw", "base.height")

TELEOP_DIR = "teleop"
RECORDING_MARKER = "recording.json"  # the episode being recorded; left behind by a killed session
LOST_FILE = "lost.json"


def episode_stem(index: int) -> str:
    """``episode-000003``: the sidecar files of episode ``index`` are this plus ``.json``, ``.frames.parquet``..."""
    return f"episode-{index:06d}"


@dataclass(frozen=True)
class DeviceReadings:
    """Every reading of one device during an episode (arrays of equal length)."""

    seq: np.ndarray  # int32
    t_device: np.ndarray  # seconds, device clock
    t_received: np.ndarray  # seconds since the episode started, host clock
    frame_index: np.ndarray  # int64: the dataset frame being recorded when it arrived
    values: np.ndarray  # float64 [N, n]: raw joint angles / glove channels / pedal axes
    buttons: np.ndarray  # int32 (pedal), 0 otherwise

    def __len__(self) -> int:
        return len(self.seq)


@dataclass(frozen=True)
class TeleopEpisode:
    """The teleoperation side of one recorded episode (the dataset holds state, action and video)."""

    index: int
    success: bool
    interrupted: bool
    reason: str | None
    meta: dict[str, Any]
    frame_time: np.ndarray  # [T] seconds since the episode started (host clock)
    held: np.ndarray  # [T] bool: the robot was held (a device gone) during this frame
    sources: dict[str, np.ndarray]  # device -> [T] device timestamp (µs) behind the frame's command; -1: none
    readings: dict[str, DeviceReadings]


def read_lost_episodes(root: str | Path) -> list[dict[str, Any]]:
    """Episodes a killed session could not save (from ``teleop/lost.json``); [] if none."""
    path = Path(root) / TELEOP_DIR / LOST_FILE
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data) if isinstance(data, list) else []


class TeleopDataset:
    """A dataset recorded by the session: the LeRobot reader plus each episode's teleop sidecar.

    ``interrupted_episodes`` lists the indices of episodes cut short by an unplug, a crash or the end
    of the session; ``lost_episodes`` the ones a killed session could not save at all.
    """

    def __init__(self, root: str | Path) -> None:
        from roboreward.datasets.lerobot_v3 import DatasetReader

        self.root = Path(root)
        self.reader = DatasetReader(self.root)

    def __len__(self) -> int:
        return len(self.reader)

    def meta(self, index: int) -> dict[str, Any]:
        self.reader._row(index)  # the dataset's own bounds check and message
        path = self.root / TELEOP_DIR / (episode_stem(index) + ".json")
        if not path.is_file():
            from roboreward.datasets.lerobot_v3 import DatasetError

            raise DatasetError(
                f"{path} is missing: episode {index} of {self.root} was not recorded by `roboreward teleop run` "
                "(or its teleop files were deleted)"
            )
        return json.loads(path.read_text())

    def is_interrupted(self, index: int) -> bool:
        return bool(self.meta(index).get("interrupted", False))

    @property
    def interrupted_episodes(self) -> list[int]:
        out = []
        for i in range(len(self)):
            with contextlib.suppress(ValueError):
                if self.is_interrupted(i):
                    out.append(i)
        return out

    @property
    def lost_episodes(self) -> list[dict[str, Any]]:
        return read_lost_episodes(self.root)

    def episode(self, index: int) -> TeleopEpisode:
        import pyarrow.parquet as pq

        meta = self.meta(index)
        stem = self.root / TELEOP_DIR / episode_stem(index)
        frames = pq.read_table(f"{stem}.frames.parquet").to_pydict()
        sources = {
            key.removeprefix("source."): np.asarray(values, dtype=np.int64)
            for key, values in frames.items()
            if key.startswith("source.")
        }
        table = pq.read_table(f"{stem}.readings.parquet")
        devices = table.column("device").to_pylist()
        readings: dict[str, DeviceReadings] = {}
        for name in sorted(set(devices)):
            mask = np.asarray([d == name for d in devices])
            rows = np.flatnonzero(mask)
            values = table.column("values").to_pylist()

            def col(key: str, dtype: Any, rows: np.ndarray = rows) -> np.ndarray:
                return np.asarray(table.column(key).to_numpy(zero_copy_only=False), dtype=dtype)[rows]

            readings[name] = DeviceReadings(
                seq=col("seq", np.int32),
                t_device=col("t_device", np.float64),
                t_received=col("t_received", np.float64),
                frame_index=col("frame_index", np.int64),
                values=np.asarray([values[i] for i in rows], dtype=np.float64),
                buttons=col("buttons", np.int32),
            )
        if len(frames["t"]) != self.reader.episodes[index].length:
            from roboreward.datasets.lerobot_v3 import DatasetError

            raise DatasetError(
                f"{stem}.frames.parquet has {len(frames['t'])} frames but episode {index} has "
                f"{self.reader.episodes[index].length}; the dataset is damaged"
            )
        return TeleopEpisode(
            index=index,
            success=bool(meta.get("success", False)),
            interrupted=bool(meta.get("interrupted", False)),
            reason=meta.get("reason"),
            meta=meta,
            frame_time=np.asarray(frames["t"], dtype=np.float64),
            held=np.asarray(frames["held"], dtype=bool),
            sources=sources,
            readings=readings,
        )


__all__ = [
    "BASE_COMMAND_NAMES",
    "BASE_POSE_NAMES",
    "LOST_FILE",
    "RECORDING_MARKER",
    "TELEOP_DIR",
    "DeviceReadings",
    "TeleopDataset",
    "TeleopEpisode",
    "episode_stem",
    "read_lost_episodes",
]
