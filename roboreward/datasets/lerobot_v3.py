"""Demonstration datasets in LeRobot's dataset v3.0 layout, written so that a kill loses nothing finished.

LeRobot (``huggingface/lerobot``) is the format robot-learning tools read; the package itself pins
an older torch, so roboreward writes and reads the layout itself. What lands on disk is what
``lerobot.datasets.lerobot_dataset.LeRobotDataset(repo_id, root=ROOT)`` loads::

    ROOT/
      meta/info.json                                   codebase_version "v3.0", fps, features, totals, path templates
      meta/stats.json                                  min/max/mean/std/count per feature, over all episodes
      meta/tasks.parquet                               task text (the index) -> task_index
      meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, file indices, ranges, stats
      data/chunk-000/file-NNN.parquet                  one row per frame (state, action, next.*, indices)
      videos/observation.images.CAM/chunk-000/file-NNN.mp4   H.264, yuv420p, one per camera

Each episode gets its own data file and its own video file per camera (v3 allows any number of
episodes per file; one per file is what makes appends atomic). Frame rows are
``observation.state`` float32[n], ``action`` float32[m], ``next.reward`` float32,
``next.success`` bool, ``next.done`` bool and LeRobot's ``timestamp``, ``frame_index``,
``episode_index``, ``index``, ``task_index``. Each episode row also carries ``success`` (bool) and
the files' checksums (below), roboreward columns LeRobot ignores.

## Kill safety

A writer killed at any moment (``kill -9`` included) leaves every finished episode readable:

1. An episode in progress is encoded into ``ROOT/.staging/`` (videos are streamed to ffmpeg while
   frames arrive, so memory stays flat); nothing under ``data/``, ``videos/`` or ``meta/`` changes.
2. :meth:`DatasetWriter.save_episode` hashes the finished files, writes its plan to
   ``ROOT/.staging/save.json`` (the episode index, the data and video files it is about to add, the
   task count before it, the SHA-256 of the ``info.json`` it starts from), renames the video and data
   files into new file indices, then replaces ``tasks.parquet``, the episodes parquet, ``stats.json``
   and last ``info.json``, each written to ``NAME.tmp``, flushed to disk and ``os.replace``-d into
   place.
3. ``info.json`` is the commit record: an episode exists once ``total_episodes`` counts it. Readers
   ignore episode rows, tasks and files beyond it, so a kill between two of those renames never shows
   a half-written episode.
4. :meth:`DatasetWriter.open` (resume) undoes exactly what ``save.json`` names when that save did not
   commit (``info.json`` still has the bytes the save started from and does not count its episode):
   its files, the one episode row beyond ``total_episodes`` that refers to those same files, the one
   task it added. It drops ``.staging/`` and ``*.tmp`` files and rewrites stats from the per-episode
   stats.

Anything else that disagrees with ``info.json`` did not come from a kill: episode rows beyond
``total_episodes`` that no interrupted save made (a lowered or damaged ``total_episodes``), data or
video files that no episode row refers to, more tasks than ``total_tasks``, frame counts that do
not add up. :meth:`DatasetWriter.open` then raises a :class:`DatasetError` that names the files and
the fix, before changing anything; it never deletes a file that a row of ``meta/episodes`` refers to.

An exclusive ``flock`` on the dataset folder keeps a second writer out; the kernel drops it when the
process dies, so a killed writer never leaves a stale lock.

## Checksums

Each episode row records the SHA-256 of its data file (``data/sha256``) and of each of its videos
(``videos/<video key>/sha256``), columns LeRobot ignores like ``success``. The writer hashes each file
once, when the save has finished it (about 1 ms per MB). :meth:`DatasetReader.episode` and
:meth:`DatasetReader.frames` check the file they read against its row, and :func:`verify_dataset`
(``roboreward demos verify DIR``) checks every file of every committed episode; a mismatch (a file
damaged, truncated, or swapped with another episode's) is a :class:`DatasetError` naming the file,
the episode, and the expected and found hashes. Rows without these columns (a dataset LeRobot or
another tool wrote) are read without the check, and :func:`verify_dataset` says so.

## Errors

Every problem reading a dataset is a :class:`DatasetError` (a ``ValueError``) whose message names the
file and what to do: unreadable or mistyped ``info.json`` values (every number is checked: integer,
finite, in range), Parquet files pyarrow cannot read, videos ffmpeg cannot decode, missing files.

Example::

    writer = DatasetWriter.create("demos/reach", fps=80, cameras=["corner3"], image_size=(96, 96),
                                  state_names=[f"s{i}" for i in range(39)],
                                  action_names=["dx", "dy", "dz", "gripper"], robot_type="sawyer")
    with writer:
        for t in range(T):
            writer.add_frame(state=obs, action=act, images={"corner3": frame}, reward=r, success=s, done=d)
        writer.save_episode(task="reach the red goal with the gripper")

    reader = DatasetReader("demos/reach")
    ep = reader.episode(0)                 # state, action, reward, ... as arrays; task; success
    frames = reader.frames(0, "corner3")   # uint8 [T, H, W, 3]

    report = verify_dataset("demos/reach")  # every file against its checksum; report.problems, one line each
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from roboreward.config import is_finite_number, is_whole_number
from roboreward.errors import DatasetError
from roboreward.io import atomic_write, fsync_dir, sha256_file

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder, as LeRobot
EPISODES_PER_META_FILE = 1000  # rows per meta/episodes file: bounds what each save rewrites
DATA_FILES_SIZE_IN_MB = 100  # LeRobot's defaults, recorded in info.json (we write one episode per file)
VIDEO_FILES_SIZE_IN_MB = 500

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
STAGING_DIR = ".staging"
SAVE_PLAN_PATH = STAGING_DIR + "/save.json"  # what the save in progress adds (see "Kill safety")

# Columns of an episode row with the SHA-256 (hex) of its files.
DATA_SHA256 = "data/sha256"
VIDEO_SHA256 = "videos/{video_key}/sha256"

STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."
# Per-frame outcome of the step that followed the observation, named as in LeRobot's sim datasets.
STEP_FEATURES: dict[str, dict[str, Any]] = {
    "next.reward": {"dtype": "float32", "shape": [1], "names": None},
    "next.success": {"dtype": "bool", "shape": [1], "names": None},
    "next.done": {"dtype": "bool", "shape": [1], "names": None},
}
# Every LeRobot dataset has these; the writer fills them in.
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

# H.264 in yuv420p is what every decoder (LeRobot's torchcodec and pyav included) reads. GOP 2 as in
# LeRobot keeps random access to any frame cheap; CRF 18 keeps small sim frames close to lossless.
VIDEO_CODEC = "libx264"
VIDEO_PIX_FMT = "yuv420p"
VIDEO_OUTPUT_PARAMS = ["-crf", "18", "-g", "2", "-preset", "fast"]

_CAMERA_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")  # becomes a folder name and part of a feature key


# ------------------------------------------------------------------------------------- helpers
def _chunk_file(number: int) -> tuple[int, int]:
    """Global file number -> (chunk_index, file_index), filling chunks of CHUNKS_SIZE files."""
    return number // CHUNKS_SIZE, number % CHUNKS_SIZE


def _move_into_place(src: Path, dst: Path) -> None:
    """Rename a finished staging file to its final name (atomic: same filesystem)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as f:
        os.fsync(f.fileno())
    os.replace(src, dst)
    fsync_dir(dst.parent)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=4, ensure_ascii=False) + "\n").encode()


def _tasks_bytes(tasks: list[str]) -> bytes:
    # LeRobot reads tasks.parquet with pandas: the task text is the index, task_index the one column.
    frame = pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, dtype=object))
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def _camera_key(camera: str) -> str:
    return camera if camera.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + camera


def _numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot's per-feature stats over the frames of one episode (axis 0), as float64 / int64."""
    data = values.astype(np.float64).reshape(len(values), -1)
    return {
        "min": data.min(axis=0),
        "max": data.max(axis=0),
        "mean": data.mean(axis=0),
        "std": data.std(axis=0),
        "count": np.array([len(values)], dtype=np.int64),
    }


def _aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Combine per-episode stats into dataset stats: count-weighted mean, pooled variance, overall min/max."""
    out: dict[str, dict[str, np.ndarray]] = {}
    keys = {key for stats in per_episode for key in stats}
    for key in sorted(keys):
        parts = [stats[key] for stats in per_episode if key in stats]
        counts = np.array([float(p["count"][0]) for p in parts])
        total = counts.sum()
        shape = (-1,) + (1,) * (np.asarray(parts[0]["mean"]).ndim)
        weights = (counts / total).reshape(shape)
        means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
        variances = np.stack([np.asarray(p["std"], dtype=np.float64) ** 2 for p in parts])
        mean = (weights * means).sum(axis=0)
        variance = (weights * (variances + (means - mean) ** 2)).sum(axis=0)
        out[key] = {
            "min": np.min(np.stack([np.asarray(p["min"], dtype=np.float64) for p in parts]), axis=0),
            "max": np.max(np.stack([np.asarray(p["max"], dtype=np.float64) for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(np.maximum(variance, 0.0)),
            "count": np.array([int(total)], dtype=np.int64),
        }
    return out


def _stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {key: {name: np.asarray(value).tolist() for name, value in parts.items()} for key, parts in stats.items()}


def _stats_from_row(row: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Per-episode stats from the ``stats/<feature>/<stat>`` columns of an episodes-parquet row."""
    stats: dict[str, dict[str, np.ndarray]] = {}
    for column, value in row.items():
        if not column.startswith("stats/") or value is None:
            continue
        feature, name = column[len("stats/") :].rsplit("/", 1)
        stats.setdefault(feature, {})[name] = np.asarray(value)
    return stats


_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# The only files a save plan may name (it is read to decide what to delete).
_PLAN_FILE = re.compile(r"^(data/chunk-\d{3,}/file-\d{3,}\.parquet|videos/[^/]+/chunk-\d{3,}/file-\d{3,}\.mp4)$")
def _rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Episode rows as a table with a column for every key of any row (``from_pylist`` would take the first row's)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return pa.Table.from_pylist([{key: row.get(key) for key in columns} for row in rows])


def _one_line(text: object, limit: int = 400) -> str:
    """A message on one line, at most ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _ffmpeg_reason(error: BaseException) -> str:
    """What ffmpeg said about a file it could not read, without its version banner: the error and its own messages."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said: list[str] = []
    for line in lines[1:]:
        if line.startswith("[") or "rror" in line:
            text = re.sub(r"^\[[^\]]*\]\s*", "", line)
            if text not in said:
                said.append(text)
    return _one_line("; ".join([lines[0] if lines else type(error).__name__, *said[:3]]))


def _video_keys(features: Mapping[str, Any]) -> list[str]:
    return [key for key, feature in features.items() if feature["dtype"] == "video"]


def _read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json``, with every value roboreward uses checked (types, ranges, path templates)."""
    path = root / INFO_PATH
    if not root.is_dir():
        raise DatasetError(
            f"{root} does not exist; record a dataset into it first (`roboreward demos record ... --out {root}`)"
        )
    if not path.is_file():
        raise DatasetError(
            f"{root} is not a LeRobot dataset: it has no {INFO_PATH}; point at a dataset folder, or create one "
            "with DatasetWriter.create() / `roboreward demos record`"
        )
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DatasetError(
            f"{path} cannot be read as JSON ({_one_line(e)}); it is the dataset's commit record: restore it from a "
            "backup"
        ) from e
    if not isinstance(info, dict):
        raise DatasetError(f"{path} holds a JSON {type(info).__name__}, not an object; restore it from a backup")
    if info.get("codebase_version") != CODEBASE_VERSION:
        raise DatasetError(
            f"{root} is a LeRobot dataset of codebase_version {info.get('codebase_version')!r}; roboreward reads and "
            f"writes {CODEBASE_VERSION!r} only (convert it with LeRobot's convert_dataset_v21_to_v30 script)"
        )
    for key in ("fps", "features", "total_episodes", "total_frames", "data_path"):
        if key not in info:
            raise DatasetError(f"{path} has no {key!r}; it is not a complete LeRobot v3.0 info.json")
    fix = f"correct it in {path}, or restore that file from a backup"

    for key, minimum, what, required in (
        ("fps", 1, "the frames per second", True),
        ("total_episodes", 0, "the number of committed episodes", True),
        ("total_frames", 0, "the number of frames of those episodes", True),
        ("total_tasks", 0, "the number of tasks", False),
        ("chunks_size", 1, "the number of files per chunk folder", False),
    ):
        if (required or key in info) and not is_whole_number(info[key], minimum):
            raise DatasetError(f"{path}: {key!r} is {info[key]!r}; it must be {what}, an integer >= {minimum}; {fix}")
    for key in ("data_files_size_in_mb", "video_files_size_in_mb"):
        if key in info and not (is_finite_number(info[key], 0) and info[key] > 0):
            raise DatasetError(f"{path}: {key!r} is {info[key]!r}; it must be a positive number of megabytes; {fix}")
    if info.get("robot_type") is not None and not isinstance(info["robot_type"], str):
        raise DatasetError(f"{path}: 'robot_type' is {info['robot_type']!r}; it must be a string or null; {fix}")

    features = info["features"]
    if not isinstance(features, dict) or not features:
        raise DatasetError(f"{path}: 'features' is {_one_line(repr(features), 80)}; it must map feature names to "
                           f"their dtype and shape; {fix}")
    for key, feature in features.items():
        if not isinstance(feature, dict) or not isinstance(feature.get("dtype"), str):
            raise DatasetError(f"{path}: feature {key!r} has no 'dtype' string; {fix}")
        shape = feature.get("shape")
        if not isinstance(shape, list) or not shape or not all(is_whole_number(n, 1) for n in shape):
            raise DatasetError(
                f"{path}: feature {key!r} has shape {shape!r}; it must be a list of integers >= 1; {fix}"
            )

    templates = [("data_path", DATA_PATH, {})]
    if _video_keys(features):
        templates.append(("video_path", VIDEO_PATH, {"video_key": _video_keys(features)[0]}))
    for key, example, fields in templates:
        template = info.get(key)
        try:
            if not isinstance(template, str):
                raise TypeError(template)
            relative = Path(template.format(chunk_index=0, file_index=0, **fields))
        except (TypeError, KeyError, IndexError, ValueError, AttributeError):
            raise DatasetError(
                f"{path}: {key!r} is {template!r}; it must be a path template like {example!r}; {fix}"
            ) from None
        if relative.is_absolute() or ".." in relative.parts:
            raise DatasetError(f"{path}: {key!r} is {template!r}, which leads outside the dataset folder; {fix}")
    return info


_ROW_INDICES = (
    "episode_index",
    "length",
    "dataset_from_index",
    "dataset_to_index",
    "data/chunk_index",
    "data/file_index",
    "meta/episodes/chunk_index",
    "meta/episodes/file_index",
)


def _check_row(path: Path, row: dict[str, Any], video_keys: list[str]) -> None:
    """One row of a meta/episodes file has every index, timestamp and checksum roboreward uses, of the right type."""
    fix = f"the episode list is damaged: restore {path.name} from a backup"
    where = f"{path}: the row of episode {row.get('episode_index')!r}"
    indices = [*_ROW_INDICES, *(f"videos/{key}/{name}" for key in video_keys for name in ("chunk_index", "file_index"))]
    for key in indices:
        if key not in row:
            raise DatasetError(f"{path} has no column {key!r}; {fix}")
        if not is_whole_number(row[key], 0):
            raise DatasetError(f"{where} has {key} = {row[key]!r}, not an integer >= 0; {fix}")
    if row["dataset_to_index"] - row["dataset_from_index"] != row["length"]:
        raise DatasetError(
            f"{where} spans frames [{row['dataset_from_index']}, {row['dataset_to_index']}) but has length "
            f"{row['length']}; {fix}"
        )
    for key in video_keys:
        for name in ("from_timestamp", "to_timestamp"):
            column = f"videos/{key}/{name}"
            if not is_finite_number(row.get(column), 0):
                raise DatasetError(f"{where} has {column} = {row.get(column)!r}, not a finite number >= 0; {fix}")
    for column in (DATA_SHA256, *(VIDEO_SHA256.format(video_key=key) for key in video_keys)):
        value = row.get(column)
        if value is not None and not (isinstance(value, str) and _SHA256_HEX.match(value)):
            raise DatasetError(f"{where} has {column} = {_one_line(repr(value), 80)}, not a SHA-256 in hex; {fix}")


def _read_meta_files(root: Path, info: Mapping[str, Any]) -> dict[Path, list[dict[str, Any]]]:
    """Every row of every meta/episodes file (committed or not), by file; each row checked by :func:`_check_row`."""
    video_keys = _video_keys(info["features"])
    by_file: dict[Path, list[dict[str, Any]]] = {}
    for path in sorted((root / EPISODES_DIR).glob("*/*.parquet")):
        try:
            rows = pq.read_table(path).to_pylist()
        except (pa.ArrowException, OSError, ValueError) as e:
            raise DatasetError(
                f"{path} cannot be read as Parquet ({_one_line(e)}); it lists episodes of {root}: restore it from a "
                "backup"
            ) from e
        for row in rows:
            _check_row(path, row, video_keys)
        by_file[path] = rows
    return by_file


def _committed_rows(
    root: Path, info: Mapping[str, Any], by_file: Mapping[Path, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The rows of episodes 0 .. total_episodes - 1, in order; a DatasetError unless each is there exactly once."""
    total = info["total_episodes"]
    committed = sorted(
        (row for rows in by_file.values() for row in rows if row["episode_index"] < total),
        key=lambda row: row["episode_index"],
    )
    if len(committed) == total and all(row["episode_index"] == i for i, row in enumerate(committed)):
        return committed
    present: dict[int, int] = {}
    for row in committed:
        present[row["episode_index"]] = present.get(row["episode_index"], 0) + 1
    repeated = sorted(index for index, count in present.items() if count > 1)
    missing: list[int] = []
    for index in range(total):  # stops after len(present) + 10 steps, however large total is
        if index not in present:
            missing.append(index)
            if len(missing) == 10:
                break
    detail = f"has no row for episodes {missing}" if missing else f"has more than one row for episodes {repeated[:10]}"
    raise DatasetError(
        f"{root}: {INFO_PATH} counts {total} episodes (total_episodes) but {EPISODES_DIR}/ {detail}; restore "
        f"{EPISODES_DIR}/ from a backup or, if {INFO_PATH} is what is wrong, correct its totals "
        f"(`roboreward demos verify {root}` shows what meta/ holds)"
    )


def _row_files(info: Mapping[str, Any], row: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """``(what, path relative to the root, sha256 or None)`` of each file an episode row refers to: data, videos."""
    files = [
        (
            "data",
            info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]),
            row.get(DATA_SHA256),
        )
    ]
    for key in _video_keys(info["features"]):
        path = info["video_path"].format(
            video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
        )
        files.append((f"{key.removeprefix(IMAGE_PREFIX)} video", path, row.get(VIDEO_SHA256.format(video_key=key))))
    return files


def _meta_path(row: Mapping[str, Any]) -> str:
    """The meta/episodes file that holds an episode's row (relative to the root)."""
    return EPISODES_PATH.format(
        chunk_index=row["meta/episodes/chunk_index"], file_index=row["meta/episodes/file_index"]
    )


def _checksum_error(path: Path, what: str, row: Mapping[str, Any], expected: str, found: str) -> DatasetError:
    episode = row["episode_index"]
    return DatasetError(
        f"{path} (episode {episode}'s {what}) does not match its checksum: {_meta_path(row)} records sha256 "
        f"{expected}, the file has {found}; it changed after it was written (damaged, truncated, or another "
        f"episode's file): restore it from a backup, or record the episode again"
    )


def _data_files_on_disk(root: Path) -> list[str]:
    """Data and video files where LeRobot looks for them (relative paths), referred to by a row or not."""
    found = list((root / "data").glob("*/*.parquet")) + list((root / "videos").glob("*/*/*.mp4"))
    return sorted(str(path.relative_to(root)) for path in found)


def _suggested_totals(rows: list[dict[str, Any]], tasks: list[str]) -> str:
    """info.json totals that would match episode rows 0..N-1 (all of them), as words for an error message."""
    indices = sorted(row["episode_index"] for row in rows)
    if indices != list(range(len(indices))):
        return ""
    frames = sum(row["length"] for row in rows)
    return f"total_episodes {len(rows)}, total_frames {frames} and total_tasks {len(tasks)}"


def _read_tasks(root: Path) -> list[str]:
    """Task texts in task_index order (meta/tasks.parquet; none before the first episode)."""
    path = root / TASKS_PATH
    if not path.is_file():
        return []
    try:
        frame = pd.read_parquet(path)
        tasks = [str(task) for task in frame.sort_values("task_index").index]
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(
            f"{path} cannot be read as LeRobot's task table ({type(e).__name__}: {_one_line(e)}); restore it from a "
            "backup"
        ) from e
    return tasks


def _read_save_plan(root: Path) -> dict[str, Any] | None:
    """The plan of the last save (``.staging/save.json``), or None when there is none or it does not parse.

    It names the save's episode index, the task count before it, the data and video files it adds, and
    the SHA-256 of the ``info.json`` it started from: the save did not commit exactly when ``info.json``
    still has those bytes (recovery then undoes it; any other disagreement is refused, see ``_recover``).

    A plan is written and flushed before its save renames any file, so one that does not parse is from a kill
    while it was being written: no file was renamed then, and there is nothing to undo.
    """
    try:
        plan = json.loads((root / SAVE_PLAN_PATH).read_bytes())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(plan, dict)
        or not is_whole_number(plan.get("episode_index"), 0)
        or not is_whole_number(plan.get("total_tasks"), 0)
        or not (isinstance(plan.get("info_sha256"), str) and _SHA256_HEX.match(plan["info_sha256"]))
        or not isinstance(plan.get("files"), list)
        or not all(isinstance(f, str) and _PLAN_FILE.match(f) for f in plan["files"])
    ):
        return None
    return plan


def _write_save_plan(root: Path, plan: dict[str, Any]) -> None:
    """Write a save's plan and flush it to disk before the save renames any file in.

    Written in place, not through a rename: it is scratch under ``.staging/``, and a kill while it is being
    written leaves one that does not parse, which :func:`_read_save_plan` reads as no plan (correct then).
    """
    path = root / SAVE_PLAN_PATH
    with open(path, "wb") as f:
        f.write(_json_bytes(plan))
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)
    fsync_dir(root)


# ------------------------------------------------------------------------------------- writer
class VideoEncoder:
    """One camera's frames streamed to ffmpeg as they arrive and encoded to H.264 (``VIDEO_*`` settings).

    ffmpeg runs in a session of its own, so a Ctrl-C in the terminal reaches the recording program (which
    saves the episode it was recording) and not the encoder mid-file. The session is made by ``Popen`` itself
    (``start_new_session``), not by Python code in the child (imageio's ``preexec_fn``): that lets CPython
    start ffmpeg with vfork in ~1 ms, where forking a process with torch loaded took ~90 ms and held every
    other thread — a teleop session's 250 Hz command loop included — for up to ~60 ms at each episode start.
    ffmpeg's messages go to ``PATH.log``; a failed encode is an error that quotes them.
    """

    def __init__(self, path: Path, width: int, height: int, fps: int):
        import imageio_ffmpeg  # ships the ffmpeg binary

        self.path = Path(path)
        self.log = self.path.with_name(self.path.name + ".log")
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
            "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}", "-pix_fmt", "rgb24", "-r", str(fps),
            "-i", "-", "-an", "-vcodec", VIDEO_CODEC, "-pix_fmt", VIDEO_PIX_FMT, *VIDEO_OUTPUT_PARAMS, str(self.path),
        ]
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
            )

    def write(self, frame: np.ndarray) -> None:
        """Send one ``uint8 [height, width, 3]`` frame (C-contiguous)."""
        try:
            self._proc.stdin.write(memoryview(frame).cast("B"))  # type: ignore[union-attr]
        except OSError as e:  # a broken pipe: ffmpeg exited
            raise DatasetError(f"ffmpeg stopped while encoding {self.path}: {self._messages()}") from e

    def close(self) -> None:
        """Finish the file: ffmpeg encodes the frames it holds and exits; a DatasetError if it failed."""
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass  # ffmpeg already exited: its status says why
        if self._proc.wait() != 0:
            raise DatasetError(
                f"ffmpeg failed to encode {self.path} (exit status {self._proc.returncode}): {self._messages()}"
            )

    def kill(self) -> None:
        """Stop ffmpeg without finishing the file (an episode that is thrown away)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # type: ignore[union-attr]

    def _messages(self) -> str:
        try:
            text = self.log.read_text(errors="replace").strip()
        except OSError:
            text = ""
        return text[-2000:] or "no message"


@dataclass
class _EpisodeBuffer:
    """Frames of the episode being recorded: numbers in lists, images already streaming to ffmpeg."""

    staging: Path
    encoders: dict[str, VideoEncoder]  # camera -> its ffmpeg
    states: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[float]
    successes: list[bool]
    dones: list[bool]
    image_sums: dict[str, np.ndarray]  # camera -> per-channel sum, sum of squares, for stats
    image_sq_sums: dict[str, np.ndarray]
    image_mins: dict[str, np.ndarray]
    image_maxs: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.states)


class DatasetWriter:
    """Records episodes into a LeRobot v3.0 dataset folder; see the module docstring for layout and kill safety.

    Make one with :meth:`create` (a new folder) or :meth:`open` (append to an existing dataset, after
    repairing what a killed writer left). Then :meth:`add_frame` per step, :meth:`save_episode` per
    episode (or :meth:`clear_episode` to drop it), and :meth:`finalize` (or use it as a context manager).
    """

    def __init__(self, root: Path, info: dict[str, Any], lock_fd: int):
        """Use :meth:`create` or :meth:`open`."""
        self.root = root
        self._info = info
        self._lock_fd: int | None = lock_fd
        features = info["features"]
        self.fps: int = int(info["fps"])
        self.robot_type: str | None = info.get("robot_type")
        self.state_names: list[str] = list(features[STATE_KEY]["names"])
        self.action_names: list[str] = list(features[ACTION_KEY]["names"])
        self.cameras: list[str] = [k.removeprefix(IMAGE_PREFIX) for k, f in features.items() if f["dtype"] == "video"]
        video = features[IMAGE_PREFIX + self.cameras[0]]
        self.image_size: tuple[int, int] = (int(video["shape"][0]), int(video["shape"][1]))  # (height, width)
        self._tasks: list[str] = []
        self._rows: list[dict[str, Any]] = []  # committed episode rows, in order
        self._episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self._next_file_number = 0  # data and video files of the next episode get this number
        self._meta_file_number = 0  # the meta/episodes file that takes the next row
        self._meta_file_rows: list[dict[str, Any]] = []  # rows already in that file
        self._buffer: _EpisodeBuffer | None = None
        self._failed: str | None = None  # set when a save raised half-way: disk and memory may differ

    # ------------------------------------------------------------------------------ making one
    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        fps: int,
        cameras: Sequence[str],
        image_size: tuple[int, int],
        state_names: Sequence[str],
        action_names: Sequence[str],
        robot_type: str | None = None,
    ) -> DatasetWriter:
        """Start a new dataset in ``root`` (which must not exist, or be empty).

        :param fps: frames per second of the recording (the env's control rate); sets timestamps and video rate.
        :param cameras: camera names, one video feature ``observation.images.<camera>`` each.
        :param image_size: ``(height, width)`` of every camera's frames; both even (H.264 in yuv420p needs it).
        :param state_names: one name per entry of ``observation.state`` (its length is the state size).
        :param action_names: one name per entry of ``action``.
        :param robot_type: recorded in info.json (LeRobot uses it to pick processors), e.g. ``"sawyer"``.
        """
        root = Path(root)
        if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
            raise DatasetError(f"fps={fps!r} must be a positive integer (LeRobot stores fps as an int)")
        for label, value in (("cameras", cameras), ("state_names", state_names), ("action_names", action_names)):
            if isinstance(value, str):
                raise DatasetError(f"{label}={value!r} must be a list of names, e.g. [{value!r}]")
        cameras, state_names, action_names = list(cameras), list(state_names), list(action_names)
        if not cameras:
            raise DatasetError("cameras is empty; give at least one camera name, e.g. ['corner3']")
        for camera in cameras:
            if not isinstance(camera, str) or not _CAMERA_NAME.match(camera):
                raise DatasetError(
                    f"camera name {camera!r} must be letters, digits, '_' or '-' (it becomes a folder name)"
                )
        if len(set(cameras)) != len(cameras):
            raise DatasetError(f"cameras {cameras} name a camera twice; list each once")
        if len(image_size) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 2 for v in image_size):
            raise DatasetError(f"image_size={image_size!r} must be (height, width) in pixels, each an int >= 2")
        height, width = image_size
        if height % 2 or width % 2:
            raise DatasetError(
                f"image_size={image_size!r}: H.264 video in yuv420p needs an even height and width; use e.g. "
                f"({height + height % 2}, {width + width % 2})"
            )
        for label, names in (("state_names", state_names), ("action_names", action_names)):
            if not names or not all(isinstance(n, str) and n for n in names):
                raise DatasetError(f"{label} must be a non-empty list of non-empty strings, one per vector entry")
            if len(set(names)) != len(names):
                raise DatasetError(f"{label} repeats a name: {names}")
        if root.exists():
            if not root.is_dir():
                raise DatasetError(f"{root} exists and is a file; choose a new folder for the dataset")
            if (root / INFO_PATH).is_file():
                raise DatasetError(
                    f"{root} already holds a dataset; open it with DatasetWriter.open() to append episodes"
                )
            if any(p.is_file() for p in root.rglob("*")):
                raise DatasetError(f"{root} exists and is not empty; choose a new (or empty) folder for the dataset")
        root.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock(root)

        video_info = {
            "video.height": height,
            "video.width": width,
            "video.codec": "h264",
            "video.pix_fmt": VIDEO_PIX_FMT,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        }
        features: dict[str, dict[str, Any]] = {
            STATE_KEY: {"dtype": "float32", "shape": [len(state_names)], "names": state_names},
            ACTION_KEY: {"dtype": "float32", "shape": [len(action_names)], "names": action_names},
        }
        for camera in cameras:
            features[IMAGE_PREFIX + camera] = {
                "dtype": "video",
                "shape": [height, width, 3],
                "names": ["height", "width", "channels"],
                "info": dict(video_info),
            }
        features.update({k: dict(v) for k, v in STEP_FEATURES.items()})
        features.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": fps,
            "splits": {},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH,
            "features": features,
        }
        try:
            atomic_write(root / INFO_PATH, _json_bytes(info))
        except BaseException:
            os.close(lock_fd)
            raise
        return cls(root, info, lock_fd)

    @classmethod
    def open(cls, root: str | Path) -> DatasetWriter:
        """Re-open a dataset made by :meth:`create` to append episodes (resume recording).

        Repairs what a killed writer left behind (see the module docstring) before returning.
        """
        root = Path(root)
        info = _read_info(root)
        _check_writer_schema(root, info["features"])
        for key, template in (("data_path", DATA_PATH), ("video_path", VIDEO_PATH)):
            if info.get(key) != template:
                raise DatasetError(
                    f"{root / INFO_PATH}: {key} is {info.get(key)!r}; DatasetWriter writes {template!r} and appends "
                    "only to datasets laid out that way: record into a new folder"
                )
        lock_fd = _lock(root)
        try:
            writer = cls(root, info, lock_fd)
        except BaseException:
            os.close(lock_fd)
            raise
        try:
            writer._recover()
        except BaseException:
            # Through the writer, which forgets the descriptor: its __del__ must not close that number again
            # once the kernel has given it to another file.
            writer._unlock()
            raise
        return writer

    @classmethod
    def open_or_create(cls, root: str | Path, **spec: Any) -> DatasetWriter:
        """:meth:`open` when ``root`` holds a dataset (checking that ``spec`` matches it), else :meth:`create`."""
        root = Path(root)
        if not (root / INFO_PATH).is_file():
            return cls.create(root, **spec)
        writer = cls.open(root)
        try:
            writer._check_matches(**spec)
        except BaseException:
            writer._unlock()
            raise
        return writer

    # ------------------------------------------------------------------------------ state
    @property
    def num_episodes(self) -> int:
        """Finished (committed) episodes."""
        return len(self._rows)

    @property
    def num_frames(self) -> int:
        return int(self._info["total_frames"])

    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    @property
    def frames_in_episode(self) -> int:
        """Frames added since the last save_episode / clear_episode."""
        return 0 if self._buffer is None else len(self._buffer)

    # ------------------------------------------------------------------------------ recording
    def add_frame(
        self,
        *,
        state: Any,
        action: Any,
        images: Mapping[str, np.ndarray],
        reward: float = 0.0,
        success: bool = False,
        done: bool = False,
    ) -> None:
        """Append one step: the observation (state and camera frames) and the action taken from it.

        ``reward``, ``success`` and ``done`` are what the step that followed reported (``next.*``).
        ``images`` maps each camera (``"corner3"`` or ``"observation.images.corner3"``) to uint8 [H, W, 3].
        """
        self._check_open()
        state_arr = self._vector("state", state, len(self.state_names))
        action_arr = self._vector("action", action, len(self.action_names))
        frames = self._images(images)
        if not isinstance(reward, (int, float, np.integer, np.floating)) or not math.isfinite(float(reward)):
            raise DatasetError(f"reward={reward!r} must be a finite number")
        if self._buffer is None:
            self._buffer = self._start_episode()
        buffer = self._buffer
        for camera, frame in frames.items():
            buffer.encoders[camera].write(frame)
            pixels = frame.reshape(-1, 3)
            buffer.image_sums[camera] += pixels.sum(axis=0, dtype=np.int64)
            buffer.image_sq_sums[camera] += np.einsum("ij,ij->j", pixels, pixels, dtype=np.int64)
            np.minimum(buffer.image_mins[camera], pixels.min(axis=0), out=buffer.image_mins[camera])
            np.maximum(buffer.image_maxs[camera], pixels.max(axis=0), out=buffer.image_maxs[camera])
        buffer.states.append(state_arr)
        buffer.actions.append(action_arr)
        buffer.rewards.append(float(reward))
        buffer.successes.append(bool(success))
        buffer.dones.append(bool(done))

    def save_episode(self, task: str, success: bool | None = None) -> int:
        """Write the frames added since the last save as one episode; returns its episode index.

        :param task: what the episode shows, in words (e.g. "open the drawer"); becomes its task_index.
        :param success: whether the episode achieved the task; default: ``next.success`` at any frame.
        """
        self._check_open()
        if not isinstance(task, str) or not task.strip():
            raise DatasetError(
                f"task={task!r} must be a non-empty sentence describing the episode, e.g. 'open the drawer'"
            )
        if self._buffer is None or len(self._buffer) == 0:
            raise DatasetError("save_episode() has no frames to save; call add_frame() for each step first")
        try:
            return self._save(self._buffer, task, success)
        except BaseException as e:
            # Whatever reached disk is either committed or repaired by the next open(); this object
            # no longer knows which, so it stops here rather than guess.
            self._failed = f"{type(e).__name__}: {e}"
            raise

    def _save(self, buffer: _EpisodeBuffer, task: str, success: bool | None) -> int:
        for encoder in buffer.encoders.values():
            encoder.close()  # waits for ffmpeg to finish the file
        buffer.encoders.clear()

        episode_index = len(self._rows)
        length = len(buffer)
        start = int(self._info["total_frames"])
        new_task = task not in self._tasks
        tasks = self._tasks + [task] if new_task else self._tasks
        task_index = tasks.index(task)
        episode_success = any(buffer.successes) if success is None else bool(success)

        columns = self._frame_columns(buffer, episode_index, start, task_index)
        stats = {key: _numeric_stats(values) for key, values in columns.items()}
        for camera in self.cameras:
            stats[IMAGE_PREFIX + camera] = self._image_stats(buffer, camera)
        data_bytes = _parquet_bytes(self._frame_table(columns))
        staged_data = buffer.staging / "data.parquet"
        with open(staged_data, "wb") as f:
            f.write(data_bytes)

        number = self._next_file_number
        chunk, file = _chunk_file(number)
        row: dict[str, Any] = {
            "episode_index": episode_index,
            "tasks": [task],
            "length": length,
            "success": episode_success,
            "data/chunk_index": chunk,
            "data/file_index": file,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
            DATA_SHA256: hashlib.sha256(data_bytes).hexdigest(),
        }
        for camera in self.cameras:
            key = IMAGE_PREFIX + camera
            row[f"videos/{key}/chunk_index"] = chunk
            row[f"videos/{key}/file_index"] = file
            row[f"videos/{key}/from_timestamp"] = 0.0
            row[f"videos/{key}/to_timestamp"] = length / self.fps
            # ffmpeg has finished the file (encoder.close() above): hash it once, from the page cache.
            row[VIDEO_SHA256.format(video_key=key)] = sha256_file(buffer.staging / f"{camera}.mp4")
        meta_number = self._meta_file_number
        meta_rows = self._meta_file_rows
        if len(meta_rows) >= EPISODES_PER_META_FILE:
            meta_number, meta_rows = meta_number + 1, []
        meta_chunk, meta_file = _chunk_file(meta_number)
        row["meta/episodes/chunk_index"] = meta_chunk
        row["meta/episodes/file_index"] = meta_file
        for key, parts in stats.items():
            for name, value in parts.items():
                row[f"stats/{key}/{name}"] = np.asarray(value).tolist()

        # The plan (what open() may undo if this save does not commit), then the files (new names nothing
        # refers to yet), then metadata, info.json last: the commit.
        moves = [
            (
                buffer.staging / f"{camera}.mp4",
                VIDEO_PATH.format(video_key=IMAGE_PREFIX + camera, chunk_index=chunk, file_index=file),
            )
            for camera in self.cameras
        ] + [(staged_data, DATA_PATH.format(chunk_index=chunk, file_index=file))]
        _write_save_plan(
            self.root,
            {
                "episode_index": episode_index,
                "total_tasks": len(self._tasks),
                "files": [dst for _, dst in moves],
                "info_sha256": sha256_file(self.root / INFO_PATH),  # the commit record this save starts from
            },
        )
        for src, dst in moves:
            _move_into_place(src, self.root / dst)
        if new_task:
            atomic_write(self.root / TASKS_PATH, _tasks_bytes(tasks))
        meta_rows = meta_rows + [row]
        atomic_write(
            self.root / EPISODES_PATH.format(chunk_index=meta_chunk, file_index=meta_file),
            _parquet_bytes(_rows_table(meta_rows)),
        )
        episode_stats = self._episode_stats + [stats]
        atomic_write(self.root / STATS_PATH, _json_bytes(_stats_to_json(_aggregate_stats(episode_stats))))
        info = dict(self._info)
        info["total_episodes"] = episode_index + 1
        info["total_frames"] = start + length
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{episode_index + 1}"}
        atomic_write(self.root / INFO_PATH, _json_bytes(info))
        with contextlib.suppress(OSError):  # committed: nothing to undo (a plan left behind is for an older index)
            (self.root / SAVE_PLAN_PATH).unlink()

        # Committed: now the in-memory state follows.
        self._info = info
        self._tasks = tasks
        self._rows.append(row)
        self._episode_stats = episode_stats
        self._meta_file_number, self._meta_file_rows = meta_number, meta_rows
        self._next_file_number = number + 1
        shutil.rmtree(buffer.staging, ignore_errors=True)
        self._buffer = None
        return episode_index

    def clear_episode(self) -> None:
        """Drop the frames added since the last save (e.g. a failed demonstration)."""
        if self._buffer is None:
            return
        for encoder in self._buffer.encoders.values():
            encoder.kill()  # the file is thrown away anyway
        shutil.rmtree(self._buffer.staging, ignore_errors=True)
        self._buffer = None

    def finalize(self) -> None:
        """Finish writing and release the dataset. Every saved episode is already on disk; this only checks
        that none is pending and lets another writer open the folder. Safe to call twice."""
        if self._lock_fd is None:
            return
        if self._buffer is not None and len(self._buffer) > 0 and self._failed is None:
            raise DatasetError(
                f"an episode of {len(self._buffer)} frames is not saved; call save_episode(task=...) to keep it "
                "or clear_episode() to drop it before finalize()"
            )
        self.clear_episode()
        if self._failed is None:
            shutil.rmtree(self.root / STAGING_DIR, ignore_errors=True)
        # else: a save failed half-way and its plan (.staging/save.json) tells open() what to undo.
        self._unlock()

    close = finalize

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.clear_episode()  # an exception mid-episode: keep the finished episodes, drop the partial one
        self.finalize()

    def __del__(self) -> None:
        # An abandoned writer must not leave ffmpeg processes waiting for frames.
        try:
            self.clear_episode()
            self._unlock()
        except Exception:
            pass

    # ------------------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise DatasetError(
                f"this DatasetWriter for {self.root} is finalized; open it again with DatasetWriter.open()"
            )
        if self._failed is not None:
            raise DatasetError(
                f"a save_episode() of this writer failed ({self._failed}); finalize() it and re-open {self.root} "
                "with DatasetWriter.open(), which keeps every finished episode and cleans up the rest"
            )

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _vector(self, label: str, value: Any, size: int) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DatasetError(f"{label} must be a vector of {size} numbers; got {type(value).__name__}: {e}") from e
        if arr.shape != (size,):
            names = self.state_names if label == "state" else self.action_names
            raise DatasetError(
                f"{label} has shape {arr.shape}, but this dataset's {label} has shape ({size},) "
                f"(names {names[:6]}{'...' if size > 6 else ''}); pass one value per entry"
            )
        if not np.all(np.isfinite(arr)):
            raise DatasetError(f"{label} contains NaN or inf at entries {np.flatnonzero(~np.isfinite(arr)).tolist()}")
        return arr

    def _images(self, images: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not isinstance(images, Mapping):
            raise DatasetError(f"images must be a dict camera -> uint8 [H, W, 3] array; got {type(images).__name__}")
        frames: dict[str, np.ndarray] = {}
        for name, frame in images.items():
            camera = name.removeprefix(IMAGE_PREFIX)
            if camera not in self.cameras:
                raise DatasetError(f"camera {name!r} is not in this dataset; its cameras are {self.cameras}")
            frames[camera] = frame
        missing = [c for c in self.cameras if c not in frames]
        if missing:
            raise DatasetError(
                f"images lacks camera(s) {missing}; every frame needs one image per camera {self.cameras}"
            )
        height, width = self.image_size
        for camera, frame in frames.items():
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
                got = frame.dtype if isinstance(frame, np.ndarray) else type(frame).__name__
                raise DatasetError(
                    f"image for camera {camera!r} is {got}; pass uint8 RGB "
                    "(for floats in [0, 1]: (x * 255).astype(np.uint8))"
                )
            if frame.shape != (height, width, 3):
                raise DatasetError(
                    f"image for camera {camera!r} has shape {frame.shape}; this dataset's frames are "
                    f"(height, width, 3) = {(height, width, 3)}: render at that size"
                )
            frames[camera] = np.ascontiguousarray(frame)
        return frames

    def _start_episode(self) -> _EpisodeBuffer:
        staging = self.root / STAGING_DIR / f"episode-{len(self._rows):06d}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        height, width = self.image_size
        encoders = {camera: VideoEncoder(staging / f"{camera}.mp4", width, height, self.fps) for camera in self.cameras}
        zeros = {c: np.zeros(3, dtype=np.int64) for c in self.cameras}
        return _EpisodeBuffer(
            staging=staging,
            encoders=encoders,
            states=[],
            actions=[],
            rewards=[],
            successes=[],
            dones=[],
            image_sums={c: v.copy() for c, v in zeros.items()},
            image_sq_sums={c: v.copy() for c, v in zeros.items()},
            image_mins={c: np.full(3, 255, dtype=np.uint8) for c in self.cameras},
            image_maxs={c: np.zeros(3, dtype=np.uint8) for c in self.cameras},
        )

    def _frame_columns(
        self, buffer: _EpisodeBuffer, episode_index: int, start: int, task_index: int
    ) -> dict[str, np.ndarray]:
        length = len(buffer)
        frame_index = np.arange(length, dtype=np.int64)
        return {
            STATE_KEY: np.stack(buffer.states),
            ACTION_KEY: np.stack(buffer.actions),
            "next.reward": np.asarray(buffer.rewards, dtype=np.float32),
            "next.success": np.asarray(buffer.successes, dtype=bool),
            "next.done": np.asarray(buffer.dones, dtype=bool),
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(length, episode_index, dtype=np.int64),
            "index": np.arange(start, start + length, dtype=np.int64),
            "task_index": np.full(length, task_index, dtype=np.int64),
        }

    @staticmethod
    def _frame_table(columns: dict[str, np.ndarray]) -> pa.Table:
        arrays: dict[str, pa.Array] = {}
        for key, values in columns.items():
            if values.ndim == 2:  # a vector feature: fixed-size list, as HF datasets' Sequence(length=n)
                flat = pa.array(values.reshape(-1), type=pa.float32())
                arrays[key] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
            else:
                arrays[key] = pa.array(values)
        return pa.table(arrays)

    def _image_stats(self, buffer: _EpisodeBuffer, camera: str) -> dict[str, np.ndarray]:
        """Per-channel stats of every pixel of the episode, scaled to [0, 1] and shaped (3, 1, 1) as LeRobot's."""
        height, width = self.image_size
        n = len(buffer) * height * width
        mean = buffer.image_sums[camera] / n
        variance = np.maximum(buffer.image_sq_sums[camera] / n - mean**2, 0.0)

        def shaped(v: np.ndarray) -> np.ndarray:
            return (np.asarray(v, dtype=np.float64) / 255.0).reshape(3, 1, 1)

        return {
            "min": shaped(buffer.image_mins[camera]),
            "max": shaped(buffer.image_maxs[camera]),
            "mean": shaped(mean),
            "std": shaped(np.sqrt(variance)),
            "count": np.array([len(buffer)], dtype=np.int64),
        }

    def _recover(self) -> None:
        """Bring the folder back to its last committed state and load that state (see the module docstring).

        Everything is checked before anything changes: when the folder disagrees with info.json in a way
        no interrupted save explains, this raises and leaves every file as it was.
        """
        root, info = self.root, self._info
        total = info["total_episodes"]
        by_file = _read_meta_files(root, info)
        rows = _committed_rows(root, info, by_file)
        tasks = _read_tasks(root)
        plan = _read_save_plan(root)
        if plan is not None and (
            plan["episode_index"] != total or plan["info_sha256"] != sha256_file(root / INFO_PATH)
        ):
            # It committed (a kill after info.json), or info.json changed since the save began (edited,
            # restored, damaged): either way it is not known to be uncommitted, so nothing of it is undone.
            plan = None
        planned = set(plan["files"]) if plan is not None else set()

        committed_files: set[str] = set()
        numbers = [-1]
        for row in rows:
            for what, relative, _ in _row_files(info, row):
                committed_files.add(relative)
                if not (root / relative).is_file():
                    raise DatasetError(
                        f"{root / relative} (episode {row['episode_index']}'s {what}) is missing; restore it from a "
                        f"backup (`roboreward demos verify {root}` lists every missing or damaged file)"
                    )
            numbers.append(row["data/chunk_index"] * CHUNKS_SIZE + row["data/file_index"])
            for key in _video_keys(info["features"]):
                numbers.append(row[f"videos/{key}/chunk_index"] * CHUNKS_SIZE + row[f"videos/{key}/file_index"])
        planned -= committed_files  # a file a committed episode refers to is never the save's to undo

        # Rows beyond total_episodes: only the interrupted save's own row (its index, exactly its files) is undone.
        extra = [(path, row) for path, rows_ in by_file.items() for row in rows_ if row["episode_index"] >= total]
        undo = [
            (path, row)
            for path, row in extra
            if plan is not None
            and row["episode_index"] == total
            and {f for _, f, _ in _row_files(info, row)} == planned
        ]
        if len(extra) != len(undo) or len(undo) > 1:
            all_rows = [row for file_rows in by_file.values() for row in file_rows]
            suggestion = _suggested_totals(all_rows, tasks)
            files = [f for _, row in extra for _, f, _ in _row_files(info, row)]
            raise DatasetError(
                f"{root}: {EPISODES_DIR}/ has rows for episodes "
                f"{sorted(row['episode_index'] for _, row in extra)[:10]} "
                f"beyond the {total} that {INFO_PATH} counts (total_episodes), and no interrupted save made them; "
                f"they refer to {', '.join(files[:6])}{' ...' if len(files) > 6 else ''}. Nothing was changed. If "
                f"{INFO_PATH} was edited or damaged, "
                + (f"set {suggestion} in it" if suggestion else "correct its totals")
                + f" (`roboreward demos verify {root}` checks the result); to drop those episodes, move their rows "
                "and files out of the dataset together"
            )

        # Data and video files no row refers to: only the interrupted save's are removed.
        referenced = committed_files | planned
        stray = [f for f in _data_files_on_disk(root) if f not in referenced]
        if stray:
            raise DatasetError(
                f"{root}: {', '.join(stray[:6])}{' ...' if len(stray) > 6 else ''} "
                f"{'is' if len(stray) == 1 else 'are'} in the dataset but no episode of {EPISODES_DIR}/ refers to "
                f"{'it' if len(stray) == 1 else 'them'} and no interrupted save made "
                f"{'it' if len(stray) == 1 else 'them'} (LeRobot would load {'it' if len(stray) == 1 else 'them'} "
                "as part of the dataset). Nothing was changed: move such files out of the dataset, or restore the "
                f"rows of {EPISODES_DIR}/ that referred to them from a backup"
            )

        total_tasks = info.get("total_tasks", len(tasks))
        added_task = plan is not None and len(tasks) == total_tasks + 1 and plan["total_tasks"] == total_tasks
        if len(tasks) < total_tasks or (len(tasks) > total_tasks and not added_task):
            raise DatasetError(
                f"{root}: {INFO_PATH} counts {total_tasks} tasks (total_tasks) but {TASKS_PATH} has {len(tasks)}, "
                f"and no interrupted save explains it; nothing was changed. Correct total_tasks in {INFO_PATH}, "
                f"or restore {TASKS_PATH} from a backup"
            )
        frames = sum(row["length"] for row in rows)
        if frames != info["total_frames"]:
            raise DatasetError(
                f"{root}: {INFO_PATH} counts {info['total_frames']} frames (total_frames) but its {total} episodes "
                f"hold {frames}; nothing was changed. Set total_frames to {frames} in {INFO_PATH} if that file "
                "was edited, or restore it from a backup"
            )

        # Every change below undoes part of the interrupted save (or drops scratch files).
        shutil.rmtree(root / STAGING_DIR, ignore_errors=True)
        for sub in ("meta", "data", "videos"):
            for tmp in (root / sub).rglob("*.tmp"):
                if not tmp.is_dir():
                    tmp.unlink()
        for path, row in undo:
            kept = [r for r in by_file[path] if r is not row]
            if kept:
                atomic_write(path, _parquet_bytes(_rows_table(kept)))
            else:
                path.unlink()
            by_file[path] = kept
        for relative in sorted(planned):
            with contextlib.suppress(FileNotFoundError):  # a kill before that file was renamed in
                (root / relative).unlink()
        if len(tasks) > total_tasks:  # a task first seen in the interrupted save
            tasks = tasks[:total_tasks]
            if tasks:
                atomic_write(root / TASKS_PATH, _tasks_bytes(tasks))
            else:
                (root / TASKS_PATH).unlink()

        self._tasks = tasks
        self._rows = rows
        self._episode_stats = [_stats_from_row(row) for row in rows]
        if rows:
            # Stats may predate the last commit (a kill between stats.json and info.json): rewrite them.
            atomic_write(root / STATS_PATH, _json_bytes(_stats_to_json(_aggregate_stats(self._episode_stats))))
        elif (root / STATS_PATH).exists():
            (root / STATS_PATH).unlink()
        self._next_file_number = max(numbers) + 1
        if rows:
            last = rows[-1]
            self._meta_file_number = last["meta/episodes/chunk_index"] * CHUNKS_SIZE + last["meta/episodes/file_index"]
            meta_rows = by_file.get(root / _meta_path(last), [])
            self._meta_file_rows = [row for row in meta_rows if row["episode_index"] < total]

    def _check_matches(
        self,
        *,
        fps: int,
        cameras: Sequence[str],
        image_size: tuple[int, int],
        state_names: Sequence[str],
        action_names: Sequence[str],
        robot_type: str | None = None,
    ) -> None:
        """Appending must not change what the dataset is: same rate, cameras, frame size and vector sizes."""
        problems = []
        if fps != self.fps:
            problems.append(f"fps {fps} != {self.fps}")
        if list(cameras) != self.cameras:
            problems.append(f"cameras {list(cameras)} != {self.cameras}")
        if tuple(image_size) != self.image_size:
            problems.append(f"image size (height, width) {tuple(image_size)} != {self.image_size}")
        if len(state_names) != len(self.state_names):
            problems.append(f"state size {len(state_names)} != {len(self.state_names)}")
        if len(action_names) != len(self.action_names):
            problems.append(f"action size {len(action_names)} != {len(self.action_names)}")
        if robot_type != self.robot_type:
            problems.append(f"robot_type {robot_type!r} != {self.robot_type!r}")
        if problems:
            raise DatasetError(
                f"{self.root} holds a dataset recorded differently ({'; '.join(problems)}); record into a new "
                "folder, or use the settings it was recorded with to append"
            )


def _lock(root: Path) -> int:
    """Take the folder's writer lock (flock on the directory itself: no lock file to go stale)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DatasetError(
            f"another DatasetWriter has {root} open (in this or another process); finalize() it, or wait for it to end"
        ) from None
    return fd


def _check_writer_schema(root: Path, features: dict[str, Any]) -> None:
    required = [STATE_KEY, ACTION_KEY, *STEP_FEATURES, *DEFAULT_FEATURES]
    missing = [key for key in required if key not in features]
    videos = [key for key, f in features.items() if f.get("dtype") == "video"]
    images = [key for key, f in features.items() if f.get("dtype") == "image"]
    if missing or not videos or images:
        if missing:
            detail = f"missing features {missing}"
        else:
            detail = "no video features" if not videos else f"image features {images}"
        raise DatasetError(
            f"{root} is a LeRobot v3.0 dataset that roboreward's DatasetWriter did not make ({detail}); "
            "append to it with the tool that made it, or record into a new folder"
        )
    if any(not key.startswith(IMAGE_PREFIX) for key in videos):
        raise DatasetError(
            f"{root}: video features {videos} are not all named {IMAGE_PREFIX}<camera>; DatasetWriter needs that"
        )
    shapes = {tuple(features[key]["shape"]) for key in videos}
    if len(shapes) != 1:
        raise DatasetError(
            f"{root}: its cameras have different frame shapes {sorted(shapes)}; DatasetWriter needs one size"
        )
    for key in (STATE_KEY, ACTION_KEY):
        names = features[key].get("names")
        if not isinstance(names, list) or len(names) != features[key]["shape"][0]:
            raise DatasetError(f"{root}: feature {key!r} has no list of names, one per entry; DatasetWriter needs them")


# ------------------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class EpisodeInfo:
    """One finished episode, from the metadata alone."""

    index: int
    length: int
    task: str
    success: bool
    from_index: int  # global frame indices [from_index, to_index)
    to_index: int


@dataclass(frozen=True)
class Episode:
    """An episode's per-frame arrays (frame t: the observation, the action taken, what the step returned)."""

    index: int
    task: str
    success: bool
    state: np.ndarray  # float32 [T, n]
    action: np.ndarray  # float32 [T, m]
    reward: np.ndarray  # float32 [T]   next.reward
    step_success: np.ndarray  # bool [T]  next.success
    done: np.ndarray  # bool [T]  next.done
    timestamp: np.ndarray  # float32 [T], seconds from the episode start
    frame_index: np.ndarray  # int64 [T]

    def __len__(self) -> int:
        return len(self.state)


class DatasetReader:
    """Reads a LeRobot v3.0 dataset: episode list, per-episode arrays, decoded camera frames.

    Only committed episodes are visible (``info.json``'s ``total_episodes``): a dataset whose writer
    was killed reads as the episodes it finished. Never writes to the folder, so it is safe to read
    while a writer appends (it sees the episodes committed when it was made). :meth:`episode` and
    :meth:`frames` check each file against the checksum in its episode's row before using it.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.info = _read_info(self.root)
        features = self.info["features"]
        if STATE_KEY not in features or ACTION_KEY not in features:
            raise DatasetError(f"{self.root} has no {STATE_KEY!r} or {ACTION_KEY!r} feature; roboreward needs both")
        self.features: dict[str, dict[str, Any]] = features
        self.fps: int = self.info["fps"]
        self.robot_type: str | None = self.info.get("robot_type")
        self.cameras: list[str] = [
            key.removeprefix(IMAGE_PREFIX)
            for key, f in features.items()
            if f["dtype"] == "video" and key.startswith(IMAGE_PREFIX)
        ]
        self._rows = _committed_rows(self.root, self.info, _read_meta_files(self.root, self.info))
        tasks = _read_tasks(self.root)
        self.tasks: list[str] = tasks[: self.info.get("total_tasks", len(tasks))]
        frames = sum(row["length"] for row in self._rows)
        if frames != self.info["total_frames"]:
            raise DatasetError(
                f"{self.root}: {INFO_PATH} counts {self.info['total_frames']} frames (total_frames) but its "
                f"{len(self._rows)} episodes hold {frames}; correct total_frames, or restore {INFO_PATH} from a "
                f"backup (`roboreward demos verify {self.root}` shows what meta/ holds)"
            )
        self.episodes: list[EpisodeInfo] = [
            EpisodeInfo(
                index=row["episode_index"],
                length=row["length"],
                task=str(row["tasks"][0]) if row.get("tasks") else "",
                success=bool(row["success"]) if row.get("success") is not None else False,
                from_index=row["dataset_from_index"],
                to_index=row["dataset_to_index"],
            )
            for row in self._rows
        ]

    def __len__(self) -> int:
        return len(self.episodes)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return self.info["total_frames"]

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Dataset stats from meta/stats.json (empty before the first episode)."""
        path = self.root / STATS_PATH
        if not path.is_file():
            return {}
        try:
            raw = json.loads(path.read_bytes().decode("utf-8"))
            return {key: {name: np.asarray(value) for name, value in parts.items()} for key, parts in raw.items()}
        except (OSError, ValueError, AttributeError, TypeError) as e:
            raise DatasetError(
                f"{path} cannot be read as LeRobot's stats ({type(e).__name__}: {_one_line(e)}); it is rewritten "
                f"from the episodes' own stats when the dataset is next opened for appending "
                f"(DatasetWriter.open({str(self.root)!r}).finalize())"
            ) from e

    def episode(self, index: int) -> Episode:
        """The per-frame arrays of episode ``index`` (its data file checked against its checksum first)."""
        row = self._row(index)
        chunk, file = row["data/chunk_index"], row["data/file_index"]
        path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
        where = f"{path} (episode {index}'s data)"
        expected = row.get(DATA_SHA256)
        source: Any = path
        if expected is not None:  # one read: hashed, then parsed from memory
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise DatasetError(f"{where} is missing; {self._restore}") from None
            except OSError as e:
                raise DatasetError(f"{where} cannot be read ({_one_line(e)}); {self._restore}") from e
            found = hashlib.sha256(data).hexdigest()
            if found != expected:
                raise _checksum_error(path, "data", row, expected, found)
            source = pa.BufferReader(data)
        elif not path.is_file():
            raise DatasetError(f"{where} is missing; {self._restore}")
        try:
            table = pq.read_table(source, filters=[("episode_index", "=", index)]).sort_by("frame_index")
        except (pa.ArrowException, OSError, ValueError, KeyError) as e:
            raise DatasetError(f"{where} cannot be read as Parquet ({_one_line(e)}); {self._restore}") from e
        if table.num_rows != row["length"]:
            raise DatasetError(
                f"{where} holds {table.num_rows} frames of episode {index}, its metadata says {row['length']}; "
                f"{self._restore}"
            )

        def column(key: str, dtype: Any, default: Any = None) -> np.ndarray:
            if key not in table.column_names:
                if default is None:
                    raise DatasetError(f"{where} has no column {key!r}; {self._restore}")
                return np.full(table.num_rows, default, dtype=dtype)
            try:
                values = table.column(key).combine_chunks()
                if pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type):
                    flat = values.flatten().to_numpy(zero_copy_only=False)
                    width = self.features[key]["shape"][0] if key in self.features else -1
                    return flat.astype(dtype).reshape(table.num_rows, width)
                return values.to_numpy(zero_copy_only=False).astype(dtype)
            except (pa.ArrowException, ValueError, TypeError) as e:
                raise DatasetError(
                    f"{where}: column {key!r} ({table.schema.field(key).type}) does not hold "
                    f"{self.features.get(key, {}).get('shape', '')} {np.dtype(dtype).name} values per frame "
                    f"({_one_line(e)}); {self._restore}"
                ) from e

        info = self.episodes[index]
        return Episode(
            index=index,
            task=info.task,
            success=info.success,
            state=column(STATE_KEY, np.float32),
            action=column(ACTION_KEY, np.float32),
            reward=column("next.reward", np.float32, np.nan),
            step_success=column("next.success", bool, False),
            done=column("next.done", bool, False),
            timestamp=column("timestamp", np.float32),
            frame_index=column("frame_index", np.int64),
        )

    def frames(self, index: int, camera: str) -> np.ndarray:
        """Decoded frames of episode ``index`` from ``camera`` (name or feature key), uint8 [T, H, W, 3].

        The video file is checked against its checksum before ffmpeg decodes it.
        """
        import imageio_ffmpeg

        row = self._row(index)
        key = _camera_key(camera)
        if key not in self.features or self.features[key]["dtype"] != "video":
            raise DatasetError(f"camera {camera!r} is not in this dataset; its cameras are {self.cameras}")
        chunk, file = row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]
        path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
        what = f"{key.removeprefix(IMAGE_PREFIX)} video"
        where = f"{path} (episode {index}'s {what})"
        if not path.is_file():
            raise DatasetError(f"{where} is missing; {self._restore}")
        expected = row.get(VIDEO_SHA256.format(video_key=key))
        if expected is not None:
            try:
                found = sha256_file(path)
            except OSError as e:
                raise DatasetError(f"{where} cannot be read ({_one_line(e)}); {self._restore}") from e
            if found != expected:
                raise _checksum_error(path, what, row, expected, found)
        first = round(row[f"videos/{key}/from_timestamp"] * self.fps)
        length = row["length"]
        try:
            reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration) as e:
            raise DatasetError(f"{where} cannot be decoded ({_ffmpeg_reason(e)}); {self._restore}") from e
        width, height = meta["size"]
        shape, names = self.features[key]["shape"], self.features[key].get("names")
        if isinstance(names, list) and len(names) == len(shape) and {"height", "width"} <= set(names):
            size = (shape[names.index("width")], shape[names.index("height")])
            if (width, height) != size:
                reader.close()
                raise DatasetError(
                    f"{where} has {width}x{height} frames but {INFO_PATH} says {key} is {size[0]}x{size[1]}; "
                    f"{self._restore}"
                )
        out = np.empty((length, height, width, 3), dtype=np.uint8)
        count = 0
        try:
            for i, data in enumerate(reader):
                if i < first:
                    continue
                if count == length:
                    break
                out[count] = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
                count += 1
        except (OSError, RuntimeError, ValueError) as e:
            raise DatasetError(f"{where} cannot be decoded ({_ffmpeg_reason(e)}); {self._restore}") from e
        finally:
            reader.close()
        if count != length:
            raise DatasetError(
                f"{where} has {count} frames from frame {first}; its metadata says {length}: the file is truncated "
                f"or not this episode's; {self._restore}"
            )
        return out

    @property
    def _restore(self) -> str:
        return (
            "restore it from a backup, or record the episode again "
            f"(`roboreward demos verify {self.root}` lists every missing or damaged file)"
        )

    def _row(self, index: int) -> dict[str, Any]:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self._rows):
            raise DatasetError(f"episode {index!r} is not in {self.root}; it has episodes 0..{len(self._rows) - 1}")
        return self._rows[int(index)]


# ------------------------------------------------------------------------------------- verify
@dataclass
class VerifyReport:
    """What :func:`verify_dataset` found: ``problems`` (one line each, naming the file and the fix; none when
    the dataset is sound) and ``notes`` (true but harmless, e.g. episodes whose rows have no checksums)."""

    root: Path
    episodes: int = 0  # committed episodes
    frames: int = 0
    files: int = 0  # data and video files of committed episodes looked at
    hashed: int = 0  # of those, checked against their SHA-256
    hashed_bytes: int = 0
    unchecked: list[int] = field(default_factory=list)  # committed episodes whose rows have no checksums
    decoded: bool = False  # every committed episode's data read and frames decoded
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = f"{self.episodes} episodes, {self.frames} frames, {self.files} files"
        if self.problems:
            return f"{self.root}: {len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} ({counts})"
        checked = f"{self.hashed} match their SHA-256 ({self.hashed_bytes / 1e6:.1f} MB)"
        if self.unchecked:
            checked += f", {self.files - self.hashed} have no checksum"
        return f"{self.root}: sound ({counts}; {checked}{'; all decoded' if self.decoded else ''})"


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts: list[str] = []
    for index in sorted(indices):
        if parts and index == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{index}"
        else:
            parts.append(str(index))
    return ", ".join(parts)


def _writer_active(root: Path) -> bool:
    """Whether a DatasetWriter holds the folder's lock (probed with a shared lock, dropped at once)."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the probe's lock too
    return False


def verify_dataset(root: str | Path, *, decode: bool = False) -> VerifyReport:
    """Check a dataset without changing it: what ``roboreward demos verify DIR`` runs.

    Checks ``info.json`` (every value, and its totals against ``meta/``), every ``meta/episodes`` row,
    the task table and ``stats.json``; that every file of every committed episode exists and matches
    the SHA-256 in its row, and that each data file's footer holds the episode's frame count; that no
    episode row beyond ``total_episodes`` and no data or video file that no row refers to is in the
    folder (LeRobot would load them). With ``decode``, also reads every episode's data and decodes every
    frame of every video. Reads each file once (hashing costs about 1 ms per MB).
    """
    root = Path(root)
    report = VerifyReport(root=root)
    problems = report.problems
    try:
        info = _read_info(root)
        by_file = _read_meta_files(root, info)
    except DatasetError as e:
        problems.append(str(e))
        return report
    if _writer_active(root):
        report.notes.append(
            f"a DatasetWriter has {root} open: an append may be under way, and a save it has not committed shows "
            "up below as an interrupted one"
        )
    total = info["total_episodes"]
    all_rows = [row for rows in by_file.values() for row in rows]
    rows = sorted((row for row in all_rows if row["episode_index"] < total), key=lambda row: row["episode_index"])
    try:
        _committed_rows(root, info, by_file)
    except DatasetError as e:
        problems.append(str(e))
    try:
        tasks: list[str] | None = _read_tasks(root)
    except DatasetError as e:
        problems.append(str(e))
        tasks = None

    report.episodes = len(rows)
    report.frames = sum(row["length"] for row in rows)
    if report.frames != info["total_frames"]:
        problems.append(
            f"{root / INFO_PATH}: total_frames is {info['total_frames']} but its {len(rows)} episodes hold "
            f"{report.frames}; set total_frames to {report.frames}, or restore {INFO_PATH} from a backup"
        )
    start = 0
    for row in rows:
        if row["dataset_from_index"] != start:
            problems.append(
                f"{root / _meta_path(row)}: episode {row['episode_index']} starts at frame "
                f"{row['dataset_from_index']} (dataset_from_index) but the episodes before it end at {start}; "
                f"restore {_meta_path(row)} from a backup"
            )
        start = row["dataset_to_index"]

    # Rows beyond total_episodes: an interrupted save's, or not explained at all.
    plan = _read_save_plan(root)
    if plan is not None and (plan["episode_index"] != total or plan["info_sha256"] != sha256_file(root / INFO_PATH)):
        plan = None
    planned = set(plan["files"]) if plan is not None else set()
    referenced = {f for row in all_rows for _, f, _ in _row_files(info, row)}
    extra = sorted((row for row in all_rows if row["episode_index"] >= total), key=lambda row: row["episode_index"])
    interrupted = [
        row for row in extra
        if plan is not None and row["episode_index"] == total
        and {f for _, f, _ in _row_files(info, row)} == planned
    ][:1]
    unexplained = [row for row in extra if row not in interrupted]
    committed_files = {f for row in rows for _, f, _ in _row_files(info, row)}
    leftover = sorted((planned - committed_files) & set(_data_files_on_disk(root)))
    repair = (
        f"opening the dataset for appending once removes it (`roboreward demos record ... --out {root}`, or "
        f"DatasetWriter.open({str(root)!r}).finalize())"
    )
    if interrupted or leftover:
        parts = [f"episode {total}'s row in {_meta_path(interrupted[0])}"] if interrupted else []
        parts += [", ".join(leftover)] if leftover else []
        problems.append(
            f"{root}: a save that was interrupted left {' and '.join(parts)} (not committed: {INFO_PATH} counts "
            f"{total} episodes; LeRobot would load them); {repair}"
        )
    if unexplained:
        suggestion = _suggested_totals(all_rows, tasks) if tasks is not None else ""
        problems.append(
            f"{root}: {EPISODES_DIR}/ has rows for episodes {_ranges([r['episode_index'] for r in unexplained])} "
            f"beyond the {total} that {INFO_PATH} counts (total_episodes), which no interrupted save made; if "
            f"{INFO_PATH} was edited or damaged, "
            + (f"set {suggestion} in it" if suggestion else "correct its totals")
            + ", otherwise move those rows and their files out of the dataset together"
        )
    stray = [f for f in _data_files_on_disk(root) if f not in referenced and f not in planned]
    if stray:
        them = "them" if len(stray) > 1 else "it"
        problems.append(
            f"{root}: no episode refers to {', '.join(stray[:6])}{' ...' if len(stray) > 6 else ''} "
            f"({len(stray)} file{'s' if len(stray) > 1 else ''}; LeRobot would load {them} as part of the dataset); "
            f"move {them} out, or restore the rows of {EPISODES_DIR}/ that referred to {them} from a backup"
        )

    if tasks is not None:
        total_tasks = info.get("total_tasks", len(tasks))
        from_plan = plan is not None and len(tasks) == total_tasks + 1 and plan["total_tasks"] == total_tasks
        if len(tasks) < total_tasks or (len(tasks) > total_tasks and not from_plan):
            problems.append(
                f"{root / INFO_PATH}: total_tasks is {total_tasks} but {TASKS_PATH} has {len(tasks)} tasks; "
                f"correct total_tasks, or restore {TASKS_PATH} from a backup"
            )
        known = set(tasks[:total_tasks])
        unknown = [row["episode_index"] for row in rows if any(t not in known for t in (row.get("tasks") or []))]
        if unknown:
            problems.append(
                f"{root / TASKS_PATH} lacks the tasks of episodes {_ranges(unknown)}; restore it from a backup"
            )
    stats_path = root / STATS_PATH
    if stats_path.is_file():
        try:
            if not isinstance(json.loads(stats_path.read_bytes().decode("utf-8")), dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            problems.append(
                f"{stats_path} cannot be read ({_one_line(e)}); opening the dataset for appending rewrites it from "
                f"the episodes' own stats (DatasetWriter.open({str(root)!r}).finalize())"
            )
    elif rows:
        report.notes.append(f"{stats_path} is missing; opening the dataset for appending writes it")

    # Every file of every committed episode: there, and the bytes its row records.
    hashes: dict[str, str] = {}
    lengths: dict[str, int] = {}  # data file -> frames the rows that refer to it hold
    for row in all_rows:
        data = _row_files(info, row)[0][1]
        lengths[data] = lengths.get(data, 0) + row["length"]
    damaged: set[int] = set()
    for row in rows:
        index = row["episode_index"]
        lacks_checksum = False
        for what, relative, expected in _row_files(info, row):
            path = root / relative
            report.files += 1
            if not path.is_file():
                problems.append(f"{path} (episode {index}'s {what}) is missing; restore it from a backup, or record "
                                "the episode again")
                damaged.add(index)
                continue
            if expected is None:
                lacks_checksum = True
            else:
                if relative not in hashes:
                    try:
                        hashes[relative] = sha256_file(path)
                        report.hashed_bytes += path.stat().st_size
                    except OSError as e:
                        problems.append(f"{path} (episode {index}'s {what}) cannot be read ({_one_line(e)})")
                        damaged.add(index)
                        continue
                report.hashed += 1
                if hashes[relative] != expected:
                    problems.append(str(_checksum_error(path, what, row, expected, hashes[relative])))
                    damaged.add(index)
                    continue
            if what == "data":
                try:
                    in_file = pq.ParquetFile(path).metadata.num_rows
                except (pa.ArrowException, OSError, ValueError) as e:
                    problems.append(f"{path} (episode {index}'s data) cannot be read as Parquet ({_one_line(e)}); "
                                    "restore it from a backup, or record the episode again")
                    damaged.add(index)
                    continue
                if in_file != lengths[relative]:
                    problems.append(
                        f"{path} (episode {index}'s data) holds {in_file} frames but the episodes that refer to it "
                        f"hold {lengths[relative]}; restore it from a backup, or record the episode again"
                    )
                    damaged.add(index)
        if lacks_checksum:
            report.unchecked.append(index)
    if report.unchecked:
        report.notes.append(
            f"episodes {_ranges(report.unchecked)} ({len(report.unchecked)} of {len(rows)}) have no checksums "
            f"(their rows in {EPISODES_DIR}/ have no {DATA_SHA256} / {VIDEO_SHA256.format(video_key='<camera>')} "
            f"columns): their files were checked for presence{' and decoded' if decode else ''} only"
        )
    scratch = [STAGING_DIR + "/"] if (root / STAGING_DIR).exists() else []
    scratch += [str(p.relative_to(root)) for sub in ("meta", "data", "videos") for p in (root / sub).rglob("*.tmp")]
    if scratch:
        report.notes.append(
            f"{root} holds a writer's scratch files ({', '.join(scratch[:4])}): an episode being recorded, or one a "
            "kill interrupted; readers ignore them and the next append removes them"
        )

    if decode:
        try:
            reader = DatasetReader(root)
        except DatasetError:
            report.notes.append("nothing was decoded: the dataset does not open for reading (see the problems)")
            return report
        for info_ in reader.episodes:
            if info_.index in damaged:
                continue
            try:
                reader.episode(info_.index)
                for camera in reader.cameras:
                    reader.frames(info_.index, camera)
            except DatasetError as e:
                problems.append(str(e))
        report.decoded = True
    return report
