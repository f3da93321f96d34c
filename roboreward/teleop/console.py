"""Where a session's output goes: messages, and one status line that is redrawn in place on a terminal.

A teleoperation session prints a status line several times a second (device rates, latencies, the
progress of a save) and the odd message (an unplugged device, a saved episode). On a terminal the
status line stays at the bottom, redrawn; in a log or a pipe each status is a plain line. A write
that fails (the terminal window closed, a pipe whose reader is gone) must not stop a save in
progress, so :class:`Console` never raises: it falls silent instead.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO


class Console:
    """Where the session's messages and its status line go.

    On a terminal the status line is redrawn in place (carriage return, erase to the end of the line,
    cut to the terminal's width so it never wraps) and messages print above it. Anywhere else (a pipe,
    a log file, a function taking lines) each status is a plain line and no control characters are
    written. Writing never raises: when a write fails (EIO from a terminal that hung up, EPIPE from a
    pipe whose reader is gone) the console falls silent and points that file descriptor at /dev/null,
    so that neither the session's threads nor the interpreter's final flush fail over it and an
    episode being saved is still saved. Safe to call from any thread.

    :param out: a text stream (default: ``sys.stdout`` when the console is made) or a function that
        takes one line.
    :param interactive: redraw the status line in place; default: ``out`` is a terminal.
    """

    def __init__(self, out: TextIO | Callable[[str], Any] | None = None, *, interactive: bool | None = None) -> None:
        if out is None:
            out = sys.stdout
        self._stream: TextIO | None = None
        self._line_fn: Callable[[str], Any] | None = None
        if hasattr(out, "write"):
            self._stream = out  # type: ignore[assignment]
            if interactive is None:
                try:
                    interactive = out.isatty()  # type: ignore[union-attr]
                except (AttributeError, ValueError, OSError):
                    interactive = False
        else:
            self._line_fn = out  # type: ignore[assignment]
            interactive = False  # a function takes whole lines: nothing to redraw
        self.interactive = bool(interactive)
        self.silenced = False  # a write failed: the output is gone
        self._status = ""  # the status line drawn at the bottom (interactive), "" if none
        self._lock = threading.RLock()

    def print(self, text: str) -> None:
        """A message: a line of its own (above the status line on a terminal)."""
        with self._lock:
            if self.interactive and self._status:
                self._write("\r\x1b[K" + text + "\n" + self._fit(self._status) + "\x1b[K")
            else:
                self._line(text)

    def status(self, text: str) -> None:
        """The status line: redrawn in place on a terminal, a plain line elsewhere."""
        with self._lock:
            if self.interactive:
                self._status = text
                self._write("\r" + self._fit(text) + "\x1b[K")
            else:
                self._line(text)

    def end_status(self) -> None:
        """Erase the status line (it is only ever the present state); what follows prints in its place."""
        with self._lock:
            if self.interactive and self._status:
                self._status = ""
                self._write("\r\x1b[K")

    def _fit(self, text: str) -> str:
        try:
            columns = os.get_terminal_size(self._stream.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            return text
        if columns <= 0 or len(text) < columns:  # 0: a terminal that does not say its size
            return text
        return text[: max(columns - 4, 1)] + "..."  # a wrapped line could not be redrawn in place

    def _line(self, text: str) -> None:
        if self._line_fn is not None:
            if not self.silenced:
                try:
                    self._line_fn(text)
                except OSError:
                    self.silenced = True
            return
        self._write(text + "\n")

    def _write(self, data: str) -> None:
        if self.silenced:
            return
        stream = self._stream
        try:
            stream.write(data)  # type: ignore[union-attr]
            stream.flush()  # type: ignore[union-attr]
        except UnicodeEncodeError:  # a terminal that cannot show some character: show the rest
            self._write(data.encode("ascii", "replace").decode("ascii"))
        except (OSError, ValueError):  # ValueError: the stream was closed
            self._silence()

    def _silence(self) -> None:
        self.silenced = True
        stream = self._stream
        with contextlib.suppress(AttributeError, ValueError, OSError, io.UnsupportedOperation):
            point_at_devnull([stream.fileno()])  # type: ignore[union-attr]
            stream.flush()  # type: ignore[union-attr]  # what the failed write left buffered goes to /dev/null


def point_at_devnull(fds: list[int]) -> None:
    """Point file descriptors (stdout, stderr) at /dev/null: after a terminal hangs up every write to it fails
    with EIO, and a failing print must not end a session that is still saving."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def format_duration(seconds: float) -> str:
    """``7`` -> ``"7 s"``, ``125`` -> ``"2 min 5 s"``, ``inf`` -> ``"?"``."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60} s"


__all__ = ["Console", "format_duration", "point_at_devnull"]
