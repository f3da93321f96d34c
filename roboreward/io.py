"""Writing files so that a crash leaves them readable: a reader sees the old content or the new, never a mix.

Datasets, teleop sidecar files, exported policies, fitted reward models and reports are all read
back by a later process, possibly after this one was killed mid-write (``kill -9``, a power cut).
Every such file goes through :func:`atomic_write`: the bytes go to ``NAME.tmp``, are flushed to disk,
and ``os.replace`` puts them in place in one step; the folder is then synced so the rename itself
survives a crash. One implementation, so every writer gets the same guarantee.

Example::

    atomic_write(Path("export/policy.json"), json.dumps(meta).encode())
    atomic_write_npz(Path("reward.npz"), {"weights": w, "format_version": np.array(1)})
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from roboreward.errors import WriteError


_HASH_BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks: what a dataset's episode rows and an exported
    policy record, to notice a file that changed or was swapped."""
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` so that readers see the old content or the new, never a mix (temp + fsync + rename).

    Missing parent folders are made; a leftover ``NAME.tmp`` from a killed writer is overwritten.
    """
    _write_and_replace(path, lambda f: f.write(data))


def atomic_write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """:func:`atomic_write` of ``np.savez(arrays)``: plain arrays, read back with ``allow_pickle=False``.

    The archive is streamed into the temp file, not built in memory first.
    """
    _write_and_replace(path, lambda f: np.savez(f, **arrays))


def _write_and_replace(path: Path, write: Callable[[BinaryIO], object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:  # a full disk, a read-only folder: the user's to fix, and the old file is intact
        raise WriteError(f"cannot write {path}: {e.strerror or e}; free space or pick a folder you can write to") from e
