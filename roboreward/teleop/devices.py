"""Drivers for the cockpit's serial devices, behind a LeRobot-style ``Teleoperator`` interface.

A :class:`Teleoperator` is built from a config dataclass registered by name (``exoskeleton_arm``,
``hall_glove``, ``pedal``), knows its ``action_features`` before it connects, and is used as::

    config = ExoskeletonArmConfig(port="/dev/serial/by-id/usb-exo-left", side="left")
    with make_teleoperator(config) as arm:      # connect(): opens the port, waits for a first frame
        while running:
            if not arm.is_connected:            # unplugged, or silent for more than stale_after_s
                hold_the_robot()
                continue
            action = arm.get_action()           # {'joint_0.pos': rad, ...}: latest reading, calibrated

Each driver owns a reader thread: pyserial reads whatever bytes have arrived, a
:class:`~roboreward.teleop.parser.StreamParser` turns them into readings, and the newest reading
is kept for :meth:`SerialTeleoperator.get_action` (which never blocks) while every reading is also
queued for :meth:`SerialTeleoperator.drain` (for recording).

Unplug and replug: a read error (cable pulled) closes the port at once, and the thread then tries
to reopen the same path every ``reconnect_interval_s``; a device that stays silent is noticed by
``last_reading_age`` exceeding ``stale_after_s``. Either way :attr:`is_connected` turns False
within 100 ms (tests measure it) and True again when readings resume.

Impossible values: the decoder rejects a frame with a NaN or infinite angle like a corrupted one
(``parser.stats.bad_payload``), and a glove or pedal driver drops a reading with a count above its
``adc_max`` (:attr:`SerialTeleoperator.out_of_range`). A dropped reading is not the latest one, so
the robot keeps the last valid command; if only such frames come, the device goes stale and the
session holds the robot. :attr:`SerialTeleoperator.rejected_frames` counts both. Calibration
(:mod:`roboreward.teleop.calibration`) is applied in ``get_action``; without a calibration file it
is the identity (raw radians, full ADC range), which suits the simulated devices.
"""

from __future__ import annotations

import abc
import collections
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import serial

from roboreward.config import ChoiceConfig, bounded
from roboreward.errors import ConfigError, DeviceError
from roboreward.registry import Registered
from roboreward.teleop.calibration import (
    ArmCalibration,
    Calibration,
    GloveCalibration,
    PedalCalibration,
    load_calibration,
)
from roboreward.teleop.parser import StreamParser
from roboreward.teleop.protocol import ArmReading, DeviceType, GloveReading, PedalReading, Reading, Side


class DeviceNotConnectedError(DeviceError):
    """The device is not connected (never connected, or disconnected)."""


class DeviceAlreadyConnectedError(ConnectionError):
    """``connect()`` was called on a connected device."""


# --------------------------------------------------------------------------------------------
# Configs


@dataclass(kw_only=True)
class TeleoperatorConfig(ChoiceConfig):
    """Base of every teleoperation device's config; ``type`` in YAML picks the subclass."""

    port: str = bounded("", "serial port, e.g. /dev/ttyACM0 or a stable /dev/serial/by-id/... link")
    baudrate: int = bounded(1_000_000, "UART speed; ignored by USB-CDC devices and ptys", ge=1200)
    calibration: str | None = bounded(None, "calibration YAML (roboreward.teleop.calibration); identity if null")
    # The session must notice a silent device within 100 ms: at 200 Hz, 50 ms is 10 missed frames.
    stale_after_s: float = bounded(0.05, "no reading for this long counts as disconnected", gt=0.0, le=1.0)
    reconnect_interval_s: float = bounded(0.02, "seconds between attempts to reopen a vanished port", gt=0.0, le=5.0)
    connect_timeout_s: float = bounded(2.0, "connect() fails if no valid frame arrives within this", gt=0.0)
    # Bounds how long disconnect() waits for the reader thread; reads return as soon as bytes arrive.
    read_timeout_s: float = bounded(0.02, "longest a single read waits for bytes", gt=0.0, le=1.0)
    queue_size: int = bounded(8192, "readings kept for drain() (oldest dropped first)", ge=1)
    # On a busy machine a reader thread at normal priority can wait milliseconds for a CPU; with
    # SCHED_FIFO the kernel runs it first. It sleeps in select() between frames, so it cannot hog.
    realtime_priority: int | None = bounded(
        None, "SCHED_FIFO priority (1-99) for the reader thread; needs CAP_SYS_NICE; null: normal", ge=1, le=99
    )


@TeleoperatorConfig.register_subclass("exoskeleton_arm")
@dataclass(kw_only=True)
class ExoskeletonArmConfig(TeleoperatorConfig):
    """An isomorphic exoskeleton arm: joint i drives the robot arm's joint i."""

    side: Literal["left", "right"] = "left"
    n_joints: int = bounded(7, "joints on the arm (the cockpit's arms have 7)", ge=1, le=24)
    joint_names: list[str] = bounded([], "names of the action keys '<name>.pos'; joint_0.. if empty")

    def __post_init__(self) -> None:
        if self.joint_names and len(self.joint_names) != self.n_joints:
            raise ConfigError(f"joint_names lists {len(self.joint_names)} names for n_joints={self.n_joints}")


@TeleoperatorConfig.register_subclass("hall_glove")
@dataclass(kw_only=True)
class HallGloveConfig(TeleoperatorConfig):
    """A glove of Hall-effect sensors, one channel per finger joint (15 or more per hand)."""

    side: Literal["left", "right"] = "left"
    n_channels: int = bounded(15, "Hall-sensor channels", ge=1, le=32)
    adc_max: int = bounded(4095, "largest raw reading (12-bit ADC: 4095); the uncalibrated 0..1 range", ge=1)


@TeleoperatorConfig.register_subclass("pedal")
@dataclass(kw_only=True)
class PedalConfig(TeleoperatorConfig):
    """The foot pedal: analog axes (forward, backward, turn, squat) and buttons."""

    n_axes: int = bounded(4, "analog axes", ge=1, le=16)
    n_buttons: int = bounded(4, "buttons reported in the action", ge=0, le=16)
    adc_max: int = bounded(4095, "largest raw reading; the uncalibrated 0..1 range", ge=1)


# --------------------------------------------------------------------------------------------
# The interface


class Teleoperator(Registered, abc.ABC):
    """A device an operator drives the robot with (LeRobot's ``Teleoperator`` shape).

    Subclasses declare ``name`` (the config's registered type) and ``config_class``.
    """

    kind = "teleoperator"
    config_class: ClassVar[type[TeleoperatorConfig]]

    def __init__(self, config: TeleoperatorConfig) -> None:
        super().__init__(config)
        self.config: TeleoperatorConfig = config

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, type]:
        """Action keys and their types; available before :meth:`connect`."""

    @property
    def feedback_features(self) -> dict[str, type]:
        """The cockpit's devices take no feedback (no haptics)."""
        return {}

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def get_action(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def disconnect(self) -> None: ...

    def __enter__(self) -> Teleoperator:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={getattr(self.config, 'port', '?')!r})"


def make_teleoperator(config: TeleoperatorConfig) -> Teleoperator:
    """The driver registered for ``config``'s type."""
    try:
        return Teleoperator.build(config)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from e


# --------------------------------------------------------------------------------------------
# Serial drivers


@dataclass
class DeviceStatus:
    """A snapshot of a driver's link, for logs and the session's status line."""

    connected: bool
    port_open: bool
    last_reading_age: float
    readings: int
    unplugs: int
    reconnects: int
    foreign_frames: int
    last_error: str | None
    parser: dict[str, int] = field(default_factory=dict)
    out_of_range: int = 0  # readings dropped for a value outside the sensor's range


class SerialTeleoperator(Teleoperator, abc.ABC):
    """A device on a serial port speaking :mod:`roboreward.teleop.protocol`, read by a thread."""

    device_type: ClassVar[DeviceType]

    def __init__(self, config: TeleoperatorConfig) -> None:
        super().__init__(config)
        if not config.port:
            raise ConfigError(f"{self.name}.port is empty; give the device's serial port, e.g. /dev/ttyACM0")
        self.calibration = self._load_calibration()
        self.parser = StreamParser()
        self._serial: serial.Serial | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._first = threading.Event()
        self._latest: Reading | None = None
        self._last_rx = -math.inf  # host time of the latest accepted reading
        self._port_open = False
        self._queue: collections.deque[Reading] = collections.deque(maxlen=config.queue_size)
        self.readings = 0
        self.unplugs = 0
        self.reconnects = 0
        self.foreign_frames = 0
        self.out_of_range = 0  # readings dropped because a value is outside the sensor's range
        self.last_unplug_at: float | None = None  # host time the port last failed
        self.last_error: str | None = None
        self._foreign_example: Reading | None = None
        self._out_of_range_example: Reading | None = None

    # -- per-device hooks ----------------------------------------------------------------

    @abc.abstractmethod
    def _default_calibration(self) -> Calibration: ...

    @abc.abstractmethod
    def _check_calibration(self, calibration: Calibration) -> None: ...

    @abc.abstractmethod
    def _accepts(self, reading: Reading) -> bool:
        """True for readings of this device (type, side, count); others are counted as foreign."""

    def _in_range(self, reading: Reading) -> bool:
        """True when every value of ``reading`` is one the sensor can produce; others are dropped and counted.

        Angles need no check here: the decoder already rejects non-finite ones, and the protocol sets no
        other bound on a raw angle.
        """
        return True

    @abc.abstractmethod
    def _to_action(self, reading: Reading) -> dict[str, Any]: ...

    # -- Teleoperator --------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """The port is open and the latest reading is at most ``stale_after_s`` old."""
        return (
            self._thread is not None
            and self._port_open
            and time.monotonic() - self._last_rx <= self.config.stale_after_s
        )

    @property
    def disconnected_since(self) -> float | None:
        """Host time (``time.monotonic()``) from which :attr:`is_connected` has been False; None while connected.

        The earlier of the port failing and the latest reading going stale: the instant a session
        polling :attr:`is_connected` would first have seen the device gone.
        """
        if self.is_connected:
            return None
        since = self._last_rx + self.config.stale_after_s
        if not self._port_open and self.last_unplug_at is not None and self.last_unplug_at > self._last_rx:
            since = min(since, self.last_unplug_at)
        return since

    @property
    def last_reading_age(self) -> float:
        """Seconds since the latest reading arrived (``inf`` before the first)."""
        return time.monotonic() - self._last_rx

    @property
    def latest_reading(self) -> Reading | None:
        """The newest raw reading (uncalibrated), or None."""
        return self._latest

    @property
    def rejected_frames(self) -> int:
        """Frames dropped as damaged or impossible: bad CRC, length, type or payload (a NaN or infinite
        angle included), and readings with a value outside the sensor's range."""
        return self.parser.stats.rejected_frames + self.out_of_range

    def connect(self) -> None:
        """Open the port, start the reader thread and wait for a first valid frame of this device."""
        if self._thread is not None:
            raise DeviceAlreadyConnectedError(f"{self!r} is already connected")
        self._stop.clear()
        self._first.clear()
        self._thread = threading.Thread(target=self._run, name=f"teleop-{self.name}", daemon=True)
        self._thread.start()
        if not self._first.wait(self.config.connect_timeout_s):
            self._shutdown()
            raise DeviceNotConnectedError(self._why_no_frames())

    def get_action(self) -> dict[str, Any]:
        """The latest reading, calibrated, as ``action_features`` keys; never waits.

        Check :attr:`is_connected` first: after an unplug this keeps returning the last reading.
        """
        if self._thread is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected; call connect() first")
        reading = self._latest
        if reading is None:  # pragma: no cover - connect() waits for a first reading
            raise DeviceNotConnectedError(f"{self!r} has no reading yet")
        return self._to_action(reading)

    def drain(self) -> list[Reading]:
        """Every reading received since the previous call (up to ``queue_size``), oldest first."""
        out = []
        q = self._queue
        while q:
            try:
                out.append(q.popleft())
            except IndexError:  # pragma: no cover - raced with the reader (never: it only appends)
                break
        return out

    def disconnect(self) -> None:
        if self._thread is None:
            raise DeviceNotConnectedError(f"{self!r} is not connected")
        self._shutdown()

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self._shutdown()

    def status(self) -> DeviceStatus:
        return DeviceStatus(
            connected=self.is_connected,
            port_open=self._port_open,
            last_reading_age=self.last_reading_age,
            readings=self.readings,
            unplugs=self.unplugs,
            reconnects=self.reconnects,
            foreign_frames=self.foreign_frames,
            last_error=self.last_error,
            parser=self.parser.stats.as_dict(),
            out_of_range=self.out_of_range,
        )

    # -- internals -----------------------------------------------------------------------

    def _load_calibration(self) -> Calibration:
        if self.config.calibration is None:
            return self._default_calibration()
        calibration = load_calibration(self.config.calibration)
        self._check_calibration(calibration)
        return calibration

    def _shutdown(self) -> None:
        self._stop.set()
        ser = self._serial
        if ser is not None:
            try:
                ser.cancel_read()
            except Exception:  # noqa: BLE001 - the port may be closing under us
                pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = None
        self._port_open = False

    def _open(self) -> serial.Serial | None:
        try:
            ser = serial.Serial(self.config.port, self.config.baudrate, timeout=self.config.read_timeout_s)
        except (serial.SerialException, OSError, ValueError) as e:
            self.last_error = f"could not open {self.config.port}: {e}"
            return None
        self.parser.clear()
        self.parser.reset_sequences()  # the device may have rebooted while away
        return ser

    def _close(self, error: str | None) -> None:
        ser, self._serial = self._serial, None
        self._port_open = False
        if error is not None:
            self.last_error = error
            self.unplugs += 1
            self.last_unplug_at = time.monotonic()
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a vanished device may fail; it is gone either way
                pass
        self.parser.clear()

    def _run(self) -> None:
        opened_before = False
        if self.config.realtime_priority is not None:
            try:  # pid 0: this thread only
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.config.realtime_priority))
            except (OSError, AttributeError) as e:
                self.last_error = f"real-time priority refused ({e}); reading at normal priority"
        try:
            while not self._stop.is_set():
                if self._serial is None:
                    ser = self._open()
                    if ser is None:
                        self._stop.wait(self.config.reconnect_interval_s)
                        continue
                    self._serial = ser
                    self._port_open = True
                    if opened_before:
                        self.reconnects += 1
                    opened_before = True
                ser = self._serial
                try:
                    data = ser.read(ser.in_waiting or 1)
                    if len(data) == 1:  # woke on the first byte of a frame: take the rest that came with it
                        waiting = ser.in_waiting
                        if waiting:
                            data += ser.read(waiting)
                except (serial.SerialException, OSError, TypeError, ValueError) as e:
                    # TypeError/ValueError: pyserial on a file descriptor closed under it
                    if not self._stop.is_set():
                        self._close(f"{self.config.port}: {e}")
                    continue
                if not data:
                    continue
                now = time.monotonic()
                for reading in self.parser.feed(data, now):
                    if not self._accepts(reading):
                        self.foreign_frames += 1
                        self._foreign_example = reading
                        continue
                    if not self._in_range(reading):
                        self.out_of_range += 1
                        self._out_of_range_example = reading
                        continue
                    self._latest = reading
                    self._last_rx = now
                    self.readings += 1
                    self._queue.append(reading)
                    self._first.set()
        finally:
            self._close(None)

    def _why_no_frames(self) -> str:
        kind = f"{self.name} ({self._describe()})"
        if self.foreign_frames and self._foreign_example is not None:
            r = self._foreign_example
            return (
                f"{self.config.port} sends {type(r).__name__} frames{_side_text(r)}, not {kind}; "
                "check which device is on this port and the config's side/counts"
            )
        if self.last_error and not self.parser.stats.bytes_in:
            return f"{self.last_error}; is the device plugged in and the path right?"
        if self.out_of_range and self._out_of_range_example is not None:
            return (
                f"{self.config.port}: every {kind} reading had a value above adc_max={self.config.adc_max} "
                f"(largest {self._largest_value(self._out_of_range_example)}); set adc_max to the sensor's "
                "largest raw reading (4095 for a 12-bit ADC, 65535 for 16-bit), or check the device's firmware"
            )
        stats = self.parser.stats
        return (
            f"no {kind} frame arrived on {self.config.port} within {self.config.connect_timeout_s} s "
            f"({stats.bytes_in} bytes read, {stats.rejected_frames} frames rejected, {stats.bad_payload} of them "
            "malformed or with NaN/infinite values); check the device is powered and flashed with the cockpit "
            "protocol firmware"
        )

    def _largest_value(self, reading: Reading) -> float:
        return max(getattr(reading, "channels", None) or getattr(reading, "axes", ()) or (math.nan,))

    def _describe(self) -> str:
        return ""


def _side_text(r: Reading) -> str:
    side = getattr(r, "side", None)
    return f" ({side.name.lower()})" if side is not None else ""


class ExoskeletonArm(SerialTeleoperator):
    """An isomorphic exoskeleton arm: action ``{'<joint>.pos': robot angle in rad}``."""

    name = "exoskeleton_arm"
    config_class = ExoskeletonArmConfig
    device_type = DeviceType.EXOSKELETON_ARM
    config: ExoskeletonArmConfig

    def __init__(self, config: ExoskeletonArmConfig) -> None:
        self._side = Side.parse(config.side)
        self._names = list(config.joint_names) or [f"joint_{i}" for i in range(config.n_joints)]
        self._keys = [f"{n}.pos" for n in self._names]
        super().__init__(config)

    @property
    def action_features(self) -> dict[str, type]:
        return dict.fromkeys(self._keys, float)

    def _default_calibration(self) -> Calibration:
        return ArmCalibration.identity(self.config.n_joints, self.config.side)

    def _check_calibration(self, calibration: Calibration) -> None:
        if not isinstance(calibration, ArmCalibration):
            raise ConfigError(f"{self.config.calibration}: not an exoskeleton_arm calibration")
        if len(calibration.joints) != self.config.n_joints or calibration.side != self.config.side:
            raise ConfigError(
                f"{self.config.calibration}: calibrates a {calibration.side} arm with {len(calibration.joints)} "
                f"joints, but this device is a {self.config.side} arm with {self.config.n_joints}; recalibrate or "
                "fix the path"
            )

    def _accepts(self, reading: Reading) -> bool:
        return (
            isinstance(reading, ArmReading)
            and reading.side == self._side
            and len(reading.angles) == self.config.n_joints
        )

    def _to_action(self, reading: Reading) -> dict[str, Any]:
        q = self.calibration.apply(reading.angles)  # type: ignore[attr-defined]
        return dict(zip(self._keys, q.tolist()))

    def _describe(self) -> str:
        return f"{self.config.side}, {self.config.n_joints} joints"


class HallGlove(SerialTeleoperator):
    """A Hall-sensor glove: action ``{'channel_<i>': 0..1}`` (per-channel min/max calibration)."""

    name = "hall_glove"
    config_class = HallGloveConfig
    device_type = DeviceType.GLOVE
    config: HallGloveConfig

    def __init__(self, config: HallGloveConfig) -> None:
        self._side = Side.parse(config.side)
        self._keys = [f"channel_{i}" for i in range(config.n_channels)]
        super().__init__(config)

    @property
    def action_features(self) -> dict[str, type]:
        return dict.fromkeys(self._keys, float)

    def _default_calibration(self) -> Calibration:
        return GloveCalibration.identity(self.config.n_channels, self.config.side, self.config.adc_max)

    def _check_calibration(self, calibration: Calibration) -> None:
        if not isinstance(calibration, GloveCalibration):
            raise ConfigError(f"{self.config.calibration}: not a hall_glove calibration")
        if len(calibration.channels) != self.config.n_channels or calibration.side != self.config.side:
            raise ConfigError(
                f"{self.config.calibration}: calibrates a {calibration.side} glove with {len(calibration.channels)} "
                f"channels, but this device is a {self.config.side} glove with {self.config.n_channels}"
            )

    def _accepts(self, reading: Reading) -> bool:
        return (
            isinstance(reading, GloveReading)
            and reading.side == self._side
            and len(reading.channels) == self.config.n_channels
        )

    def _in_range(self, reading: Reading) -> bool:
        return max(reading.channels) <= self.config.adc_max  # type: ignore[attr-defined]

    def _to_action(self, reading: Reading) -> dict[str, Any]:
        x = self.calibration.apply(reading.channels)  # type: ignore[attr-defined]
        return dict(zip(self._keys, x.tolist()))

    def _describe(self) -> str:
        return f"{self.config.side}, {self.config.n_channels} channels"


class Pedal(SerialTeleoperator):
    """The foot pedal: action ``{'axis_<i>': 0..1 (-1..1 for rockers), 'button_<j>': bool}``.

    Turn the axes into walking commands with :class:`roboreward.teleop.calibration.PedalMapper`.
    """

    name = "pedal"
    config_class = PedalConfig
    device_type = DeviceType.PEDAL
    config: PedalConfig

    def __init__(self, config: PedalConfig) -> None:
        self._axis_keys = [f"axis_{i}" for i in range(config.n_axes)]
        self._button_keys = [f"button_{i}" for i in range(config.n_buttons)]
        super().__init__(config)

    @property
    def action_features(self) -> dict[str, type]:
        return {**dict.fromkeys(self._axis_keys, float), **dict.fromkeys(self._button_keys, bool)}

    def _default_calibration(self) -> Calibration:
        return PedalCalibration.identity(self.config.n_axes, self.config.adc_max)

    def _check_calibration(self, calibration: Calibration) -> None:
        if not isinstance(calibration, PedalCalibration):
            raise ConfigError(f"{self.config.calibration}: not a pedal calibration")
        if len(calibration.axes) != self.config.n_axes:
            raise ConfigError(
                f"{self.config.calibration}: calibrates {len(calibration.axes)} pedal axes, "
                f"but this pedal has {self.config.n_axes}"
            )

    def _accepts(self, reading: Reading) -> bool:
        return isinstance(reading, PedalReading) and len(reading.axes) == self.config.n_axes

    def _in_range(self, reading: Reading) -> bool:
        return max(reading.axes) <= self.config.adc_max  # type: ignore[attr-defined]

    def _to_action(self, reading: Reading) -> dict[str, Any]:
        assert isinstance(reading, PedalReading)
        x = self.calibration.apply(reading.axes)  # type: ignore[attr-defined]
        action: dict[str, Any] = dict(zip(self._axis_keys, x.tolist()))
        for i, key in enumerate(self._button_keys):
            action[key] = bool(reading.buttons >> i & 1)
        return action

    def _describe(self) -> str:
        return f"{self.config.n_axes} axes"


__all__ = [
    "DeviceAlreadyConnectedError",
    "DeviceNotConnectedError",
    "DeviceStatus",
    "ExoskeletonArm",
    "ExoskeletonArmConfig",
    "HallGlove",
    "HallGloveConfig",
    "Pedal",
    "PedalConfig",
    "SerialTeleoperator",
    "Teleoperator",
    "TeleoperatorConfig",
    "make_teleoperator",
]
