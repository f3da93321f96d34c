"""Demonstration datasets: LeRobot v3.0 layout (``lerobot_v3``) and scripted recording (``record``).

Names are resolved on first use, so ``roboreward --help`` does not import pyarrow, pandas or MuJoCo.

- :class:`DatasetWriter` / :class:`DatasetReader`: write (kill-safe, resumable, checksummed) and read a dataset.
- :func:`verify_dataset`: check every file against its checksum and the metadata against itself.
- :func:`record_scripted_demos`: roll out Meta-World's scripted expert into a dataset.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DatasetWriter": "roboreward.datasets.lerobot_v3",
    "DatasetReader": "roboreward.datasets.lerobot_v3",
    "DatasetError": "roboreward.errors",
    "Episode": "roboreward.datasets.lerobot_v3",
    "EpisodeInfo": "roboreward.datasets.lerobot_v3",
    "VerifyReport": "roboreward.datasets.lerobot_v3",
    "verify_dataset": "roboreward.datasets.lerobot_v3",
    "record_scripted_demos": "roboreward.datasets.record",
    "RecordSummary": "roboreward.datasets.record",
}

__all__ = ["DatasetError", "DatasetReader", "DatasetWriter", "Episode", "EpisodeInfo", "RecordSummary",
           "VerifyReport", "record_scripted_demos", "verify_dataset"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
