"""How the operator controls the session: pedal buttons and keys, turned into events (start, save, discard, quit).

============  ===========  ====  ===========================================================
action        pedal button key   what it does
============  ===========  ====  ===========================================================
start/stop    0            r     idle: start an episode; recording: save it (success false)
success       1            s     save the episode marked successful
discard       2            d     drop the episode being recorded
quit          --           q     end the session (an episode in progress is saved, interrupted)
============  ===========  ====  ===========================================================

Both are configurable (:class:`ButtonsConfig`, :class:`KeysConfig`: the ``buttons:`` and ``keys:``
sections of the session config). A :class:`ButtonWatcher` turns the pedal's button bitfields into
events on presses, debounced; a :class:`KeyboardControl` reads single keys from the session's
terminal without Enter, and takes Ctrl-C as a key (``interrupt``) so that the encoders of an
episode being saved do not get the terminal's SIGINT.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import select
import sys
import termios
import tty
from dataclasses import dataclass

from roboreward.config import bounded
from roboreward.errors import ConfigError

# What the operator can ask of the session (``TeleopSession.request``), by button, key or call.
EVENTS = ("start_stop", "success", "discard", "quit")


@dataclass(kw_only=True)
class ButtonsConfig:
    """Pedal buttons (bit index in the pedal's button field) that control recording; null disables one."""

    start_stop: int | None = bounded(0, "idle: start an episode; recording: save it", ge=0, le=15)
    success: int | None = bounded(1, "save the episode being recorded, marked successful", ge=0, le=15)
    discard: int | None = bounded(2, "drop the episode being recorded", ge=0, le=15)
    # Switch contacts bounce for a few milliseconds; a bounce must not start and stop an episode.
    debounce_s: float = bounded(0.1, "presses of one button closer together than this count once", ge=0.0, le=2.0)

    def __post_init__(self) -> None:
        used = [b for b in (self.start_stop, self.success, self.discard) if b is not None]
        if len(set(used)) != len(used):
            raise ConfigError(f"buttons: {used} uses one button for two actions; give each action its own button")

    def mapping(self) -> dict[int, str]:
        pairs = (("start_stop", self.start_stop), ("success", self.success), ("discard", self.discard))
        return {button: event for event, button in pairs if button is not None}


@dataclass(kw_only=True)
class KeysConfig:
    """Keyboard keys (one character each, no Enter needed) that control the session from its terminal."""

    start_stop: str = bounded("r", "idle: start an episode; recording: save it")
    success: str = bounded("s", "save the episode being recorded, marked successful")
    discard: str = bounded("d", "drop the episode being recorded")
    quit: str = bounded("q", "end the session")

    def __post_init__(self) -> None:
        keys = self.mapping()
        for event, key in (("start_stop", self.start_stop), ("success", self.success), ("discard", self.discard),
                           ("quit", self.quit)):
            if len(key) != 1 or not key.isprintable():
                raise ConfigError(f"keys.{event}: {key!r} must be one printable character, e.g. 'r'")
        if len(keys) != 4:
            raise ConfigError(f"keys: {sorted(keys)} uses one key for two actions; give each action its own key")

    def mapping(self) -> dict[str, str]:
        return {self.start_stop: "start_stop", self.success: "success", self.discard: "discard", self.quit: "quit"}


class ButtonWatcher:
    """Pedal button bitfields -> recording events on presses (rising edges), debounced."""

    def __init__(self, config: ButtonsConfig) -> None:
        self.map = config.mapping()
        self.debounce_s = config.debounce_s
        self._state = 0
        self._last_press: dict[int, float] = {}
        self._primed = False

    def reset(self) -> None:
        """Forget the button state (a replugged pedal): a button held through the replug is no press."""
        self._primed = False

    def feed(self, buttons: int, t: float) -> list[str]:
        if not self._primed:  # the first reading only sets the state: a held button is not a press
            self._state, self._primed = buttons, True
            return []
        pressed = buttons & ~self._state
        self._state = buttons
        events = []
        for button, event in self.map.items():
            if pressed >> button & 1:
                last = self._last_press.get(button, -math.inf)
                self._last_press[button] = t
                if t - last >= self.debounce_s:
                    events.append(event)
        return events


INTERRUPT_KEYS = ("\x03", "\x1c")  # Ctrl-C and Ctrl-backslash: end the session (the episode in progress is kept)


class KeyboardControl:
    """Key presses from a terminal without Enter and without blocking (cbreak mode while the session runs).

    Ctrl-C and Ctrl-backslash arrive as keys (the terminal's signals are off meanwhile) and end the session
    like ``quit``, except that an episode in progress is saved, marked interrupted. Inactive (``poll``
    returns nothing) when ``fd`` is not a terminal, e.g. stdin from a pipe.
    """

    def __init__(self, keys: KeysConfig, fd: int | None = None) -> None:
        self.map = keys.mapping()
        if fd is None:
            try:
                fd = sys.stdin.fileno()
            except (AttributeError, ValueError, io.UnsupportedOperation):
                fd = -1
        self.fd = fd
        self.active = fd >= 0 and os.isatty(fd)
        self._saved: list | None = None
        if self.active:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)  # keys arrive one by one, not echoed
            # Ctrl-C as a key, not a SIGINT to the terminal's whole process group: that would also stop
            # the ffmpeg encoders of the episode being recorded, which must still be saved.
            attrs = termios.tcgetattr(fd)
            attrs[3] &= ~termios.ISIG
            termios.tcsetattr(fd, termios.TCSANOW, attrs)

    def poll(self) -> list[str]:
        if not self.active:
            return []
        events = []
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0)
            if not ready:
                return events
            try:
                data = os.read(self.fd, 64)
            except OSError:  # the terminal went away
                self.active = False
                return events
            if not data:
                self.active = False
                return events
            for ch in data.decode(errors="ignore"):
                if ch in INTERRUPT_KEYS:
                    events.append("interrupt")
                    continue
                event = self.map.get(ch) or self.map.get(ch.lower())
                if event is not None:
                    events.append(event)

    def close(self) -> None:
        if self._saved is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        self.active = False


def keys_help(keys: KeysConfig, buttons: ButtonsConfig) -> str:
    b = buttons

    def pedal(button: int | None) -> str:
        return f" / pedal button {button}" if button is not None else ""

    return (
        f"keys: '{keys.start_stop}'{pedal(b.start_stop)} start/stop recording, '{keys.success}'{pedal(b.success)} "
        f"save as success, '{keys.discard}'{pedal(b.discard)} discard, '{keys.quit}' quit"
    )


__all__ = [
    "EVENTS",
    "INTERRUPT_KEYS",
    "ButtonWatcher",
    "ButtonsConfig",
    "KeyboardControl",
    "KeysConfig",
    "keys_help",
]
