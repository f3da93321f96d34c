"""The errors roboreward raises for problems that a user can fix.

Every such error derives from :class:`RoborewardError` and its message names the problem (the key, the
file, the value) and the fix. The command line prints these as one line and exits with status 2;
any other exception is a bug in roboreward and keeps its traceback.

The concrete kinds also derive from ``ValueError``: a bad value is what they are, and code that
checks a value with ``except ValueError`` keeps working.
"""

from __future__ import annotations


class RoborewardError(Exception):
    """Base of every error whose message tells the user what to fix."""


class ConfigError(RoborewardError, ValueError):
    """A config value, a config file or a command-line argument (a folder, a name) is not what is needed."""


class DatasetError(RoborewardError, ValueError):
    """A dataset folder or a value given to its writer is not what is needed."""


class CheckpointError(RoborewardError, ValueError):
    """A training checkpoint, saved model or exported policy is incomplete or damaged, or none can be used."""


class DeviceError(RoborewardError, ConnectionError):
    """A robot or a teleoperation device cannot be reached, or stopped sending what it should."""


class WriteError(RoborewardError, OSError):
    """A file could not be written (a full disk, a read-only folder); the previous version, if any, is still there."""


class SetupError(RoborewardError):
    """Something roboreward needs from the machine is missing: a package, model weights, a library."""


class NonFiniteError(RoborewardError, ValueError):
    """A reward, return or command came out NaN or infinite; it is refused rather than learned from or written."""


__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "DeviceError",
    "NonFiniteError",
    "RoborewardError",
    "SetupError",
    "WriteError",
]
