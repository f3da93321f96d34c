"""Simulated cockpit devices that speak the real protocol on real pseudo-terminals.

Each simulated device opens a pty pair (``os.openpty()``), links the slave end from a stable path
(as udev links ``/dev/serial/by-id/...``), and writes frames into the master end from a background
thread at a set rate. A driver opens that path with pyserial exactly as it would open the real
microcontroller, so tests and the no-hardware demo exercise the same bytes, termios and unplug
behaviour as the hardware::

    with SimulatedExoskeletonArm(side="left", rate_hz=200, noise=0.002) as exo:
        with ExoskeletonArm(ExoskeletonArmConfig(port=exo.port, side="left")) as arm:
            action = arm.get_action()            # {'joint_0.pos': ..., ...}
            reading = arm.latest_reading
        exo.truth_for(reading).values            # the clean scripted angles of that frame

Motion is scripted (by default one sinusoid per joint / channel / axis; pass ``motion=`` for
another function of time) and every frame's clean values are recorded, keyed by the frame's
timestamp, so a test can compare what the driver saw with what the device meant to send.

Faults (:class:`FaultConfig`): dropouts (a reading is produced, numbered and never sent), noise,
flipped bits, bursts of garbage between frames, frames cut short. :meth:`SimulatedDevice.inject`
sends chosen raw values in the next frames, CRC-valid: a NaN or infinite angle, or an ADC count
the sensor cannot produce, as faulty firmware or a failing sensor would. :meth:`SimulatedDevice.unplug`
closes the pty and removes the link, as pulling the USB cable does (the driver's reads fail at
once); ``unplug(mode="silent")`` keeps the port but stops sending (a hung device);
:meth:`SimulatedDevice.replug` brings the device back on the same path, rebooted (sequence from 0).

The device clock (``t_us`` in every frame) is the host's ``time.monotonic_ns() // 1000``, so
``reading.t_received - reading.t_device`` is the device-to-driver latency.
"""

from __future__ import annotations

import collections
import math
import os
import shutil
import tempfile
import threading
import time
import tty
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from roboreward.teleop.protocol import (
    ArmReading,
    DeviceType,
    GloveReading,
    PedalReading,
    Reading,
    Side,
    encode_frame,
)

Motion = Callable[[float], Sequence[float]]


@dataclass(kw_only=True)
class FaultConfig:
    """What goes wrong on the wire, per frame (probabilities in 0..1)."""

    dropout: float = 0.0  # the reading is produced and numbered but never sent: a sequence gap
    bit_flip: float = 0.0  # one random bit of the frame is flipped: the parser sees a bad CRC
    garbage: float = 0.0  # a burst of random bytes goes out before the frame
    garbage_max_bytes: int = 32
    truncate: float = 0.0  # only the first part of the frame is sent

    def __post_init__(self) -> None:
        for name in ("dropout", "bit_flip", "garbage", "truncate"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"FaultConfig.{name} is a probability; got {p}, expected 0..1")
        if self.garbage_max_bytes < 1:
            raise ValueError("FaultConfig.garbage_max_bytes must be >= 1")


@dataclass
class SimStats:
    """What the simulated device did, to compare with the parser's counters."""

    produced: int = 0  # readings numbered (sent or not)
    sent: int = 0  # frames written intact
    dropped: int = 0  # readings not sent (dropout)
    bit_flips: int = 0
    garbage_bursts: int = 0
    garbage_bytes: int = 0
    truncated: int = 0
    overflow: int = 0  # writes refused because nobody read the port and its buffer was full


@dataclass(frozen=True)
class TruthSample:
    """The clean scripted values of one frame, before noise and quantisation."""

    t_device_us: int
    seq: int
    values: np.ndarray
    buttons: int = 0


class SimulatedDevice:
    """Base of the simulated devices: pty, link, sender thread, faults, ground truth.

    :param rate_hz: readings per second.
    :param noise: standard deviation of Gaussian noise added to every value, in device units
        (radians for arms, ADC counts for gloves and pedals).
    :param faults: wire faults; none by default.
    :param seed: seeds the noise, the faults and the default motion.
    :param link_path: the stable path drivers open; a fresh temporary path if None.
    :param motion: ``motion(t) -> values`` in device units at time ``t`` (seconds, device clock);
        sinusoids if None.
    :param truth_capacity: how many recent frames' ground truth to keep.
    """

    device_type: ClassVar[DeviceType]
    kind: ClassVar[str]

    def __init__(
        self,
        *,
        n_values: int,
        rate_hz: float = 200.0,
        noise: float = 0.0,
        faults: FaultConfig | None = None,
        seed: int = 0,
        link_path: str | os.PathLike | None = None,
        motion: Motion | None = None,
        truth_capacity: int = 100_000,
    ) -> None:
        if rate_hz <= 0 or rate_hz > 10_000:
            raise ValueError(f"rate_hz must be in (0, 10000], got {rate_hz}")
        if noise < 0:
            raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}")
        self.n_values = n_values
        self.rate_hz = float(rate_hz)
        self.noise = float(noise)
        self.faults = faults or FaultConfig()
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._motion = motion or self._default_motion(np.random.default_rng(seed + 1_000_003))
        self._own_dir: str | None = None
        if link_path is None:
            self._own_dir = tempfile.mkdtemp(prefix="roboreward-sim-")
            # Removed by stop(), or when the device is collected or the interpreter exits without one.
            self._remove_own_dir = weakref.finalize(self, shutil.rmtree, self._own_dir, ignore_errors=True)
            link_path = os.path.join(self._own_dir, self.kind)
        self.port = os.fspath(link_path)
        self.stats = SimStats()
        self.truth: dict[int, TruthSample] = {}
        self._truth_capacity = truth_capacity
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._seq = 0
        self._injected: collections.deque[tuple[tuple[float, ...], int | None]] = collections.deque()
        self._plugged = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> SimulatedDevice:
        """Open the pty, create the link and start sending."""
        if self._thread is not None:
            raise RuntimeError(f"simulated {self.kind} is already running")
        self._open_pty()
        self._plugged.set()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sending, close the pty and remove the link (and its temporary folder)."""
        self._stop.set()
        self._plugged.set()  # wake the thread if it waits while unplugged
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        with self._lock:
            self._close_pty()
        if self._own_dir is not None:
            self._remove_own_dir()
            self._own_dir = None

    def __enter__(self) -> SimulatedDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def is_plugged(self) -> bool:
        return self._plugged.is_set()

    def unplug(self, mode: Literal["close", "silent"] = "close") -> None:
        """Simulate pulling the cable.

        ``"close"``: the pty is closed and the link removed; the driver's next read fails, and its
        attempts to reopen the path fail until :meth:`replug`. ``"silent"``: the port stays but no
        more bytes come (a hung microcontroller); only the driver's staleness check notices.
        """
        if mode not in ("close", "silent"):
            raise ValueError(f"mode must be 'close' or 'silent', got {mode!r}")
        with self._lock:
            self._plugged.clear()
            if mode == "close":
                self._close_pty()

    def replug(self) -> None:
        """Bring the device back on the same path, freshly booted: sequence numbers restart at 0."""
        with self._lock:
            if self._master is None:
                self._open_pty()
                self._seq = 0
            self._plugged.set()

    def inject(self, values: Sequence[float], *, buttons: int | None = None) -> None:
        """Send ``values`` exactly (no noise, no clipping) in the next frame, which is CRC-valid and numbered
        in sequence; call again to queue more. Ground truth records them as sent.

        For a fault the drivers must reject: ``float('nan')`` or ``float('inf')`` as an arm angle, or a glove
        or pedal count above the sensor's range (a count must still fit the frame's uint16). ``buttons``:
        the pedal's bitfield for that frame (default: the scripted buttons).
        """
        if len(values) != self.n_values:
            raise ValueError(f"inject() needs {self.n_values} values for this {self.kind}, got {len(values)}")
        if self.device_type != DeviceType.EXOSKELETON_ARM and not all(
            float(v).is_integer() and 0 <= v <= 0xFFFF for v in values
        ):
            raise ValueError(f"a {self.kind} frame carries whole counts 0..65535 (uint16), got {list(values)}")
        self._injected.append((tuple(values), buttons))

    # -- ground truth ----------------------------------------------------------------------

    def motion(self, t: float) -> np.ndarray:
        """The clean scripted values at device time ``t`` (seconds)."""
        return np.asarray(self._motion(t), dtype=np.float64)

    def truth_for(self, reading: Reading) -> TruthSample:
        """The ground truth of the frame ``reading`` was decoded from (looked up by its timestamp)."""
        return self.truth[reading.t_device_us]

    # -- internals -------------------------------------------------------------------------

    def _default_motion(self, rng: np.random.Generator) -> Motion:
        raise NotImplementedError

    def _make_reading(self, seq: int, t_us: int, clean: np.ndarray, rng: np.random.Generator) -> tuple[Reading, int]:
        """The reading to send (noise and quantisation applied) and its buttons (0 if none)."""
        raise NotImplementedError

    def _exact_reading(self, seq: int, t_us: int, values: tuple[float, ...], buttons: int | None) -> Reading:
        """A reading carrying ``values`` as they are (for :meth:`inject`)."""
        raise NotImplementedError

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, no CR/LF translation: bytes pass unchanged
        os.set_blocking(master, False)  # a full buffer drops frames (like a UART) instead of blocking
        name = os.ttyname(slave)
        tmp = f"{self.port}.{os.getpid()}.{threading.get_ident()}.tmp"
        os.symlink(name, tmp)
        os.replace(tmp, self.port)  # atomic: the path never points at a stale pty
        self._master, self._slave = master, slave

    def _close_pty(self) -> None:
        try:
            os.unlink(self.port)
        except FileNotFoundError:
            pass
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        while not self._stop.is_set():
            if not self._plugged.is_set():
                self._plugged.wait(0.05)
                next_t = time.monotonic()
                continue
            now = time.monotonic()
            if now < next_t:
                time.sleep(next_t - now)
                continue
            self._send_one()
            next_t += period
            if time.monotonic() - next_t > 0.05:
                next_t = time.monotonic()  # far behind (a stalled machine): resume, don't burst

    def _send_one(self) -> None:
        rng = self._rng
        faults = self.faults
        with self._lock:
            if self._master is None or not self._plugged.is_set():
                return  # unplugged between the thread's check and here
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFFFF
            self.stats.produced += 1
            t_us = time.monotonic_ns() // 1000
            if self._injected:
                values, chosen = self._injected.popleft()
                reading = self._exact_reading(seq, t_us, values, chosen)
                clean, buttons = np.asarray(values, dtype=np.float64), getattr(reading, "buttons", 0)
            else:
                clean = self.motion(t_us * 1e-6)
                reading, buttons = self._make_reading(seq, t_us, clean, rng)
            self._record(TruthSample(t_us, seq, clean, buttons))
            if faults.dropout and rng.random() < faults.dropout:
                self.stats.dropped += 1
                return
            data = bytearray(encode_frame(reading))
            intact = True
            if faults.bit_flip and rng.random() < faults.bit_flip:
                bit = int(rng.integers(len(data) * 8))
                data[bit // 8] ^= 1 << (bit % 8)
                self.stats.bit_flips += 1
                intact = False
            if faults.truncate and rng.random() < faults.truncate:
                data = data[: int(rng.integers(1, len(data)))]
                self.stats.truncated += 1
                intact = False
            if faults.garbage and rng.random() < faults.garbage:
                burst = rng.integers(0, 256, int(rng.integers(1, faults.garbage_max_bytes + 1)), dtype=np.uint8)
                data = bytearray(burst.tobytes()) + data
                self.stats.garbage_bursts += 1
                self.stats.garbage_bytes += len(burst)
            try:
                written = os.write(self._master, data)
            except (BlockingIOError, OSError):
                self.stats.overflow += 1
                return
            if written < len(data):
                self.stats.overflow += 1
            elif intact:
                self.stats.sent += 1

    def _record(self, sample: TruthSample) -> None:
        truth = self.truth
        truth[sample.t_device_us] = sample
        if len(truth) > self._truth_capacity + self._truth_capacity // 8:  # trim in batches, oldest first
            for key in list(truth)[: len(truth) - self._truth_capacity]:
                del truth[key]


def _sinusoids(rng: np.random.Generator, n: int, center: np.ndarray, amplitude: np.ndarray) -> Motion:
    freq = rng.uniform(0.2, 1.0, n)  # Hz: the pace of a person moving
    phase = rng.uniform(0.0, 2 * math.pi, n)
    two_pi_f = 2 * math.pi * freq

    def motion(t: float) -> np.ndarray:
        return center + amplitude * np.sin(two_pi_f * t + phase)

    return motion


class SimulatedExoskeletonArm(SimulatedDevice):
    """An exoskeleton arm: ``n_joints`` float32 angles in radians (default 7)."""

    device_type = DeviceType.EXOSKELETON_ARM
    kind = "exoskeleton_arm"

    def __init__(self, *, side: str | Side = "left", n_joints: int = 7, **kwargs) -> None:
        self.side = Side.parse(side)
        self.kind = f"exoskeleton_arm_{self.side.name.lower()}"
        super().__init__(n_values=n_joints, **kwargs)

    def _default_motion(self, rng: np.random.Generator) -> Motion:
        n = self.n_values
        return _sinusoids(rng, n, rng.uniform(-0.3, 0.3, n), rng.uniform(0.2, 0.8, n))

    def _make_reading(self, seq, t_us, clean, rng):
        values = clean + rng.normal(0.0, self.noise, clean.shape) if self.noise else clean
        return ArmReading(seq, t_us * 1e-6, 0.0, self.side, tuple(values.tolist())), 0

    def _exact_reading(self, seq, t_us, values, buttons):
        return ArmReading(seq, t_us * 1e-6, 0.0, self.side, tuple(float(v) for v in values))


class SimulatedGlove(SimulatedDevice):
    """A Hall-sensor glove: ``n_channels`` uint16 readings of a 12-bit ADC (default 15 channels)."""

    device_type = DeviceType.GLOVE
    kind = "glove"
    ADC_MAX = 4095

    def __init__(self, *, side: str | Side = "left", n_channels: int = 15, **kwargs) -> None:
        self.side = Side.parse(side)
        self.kind = f"glove_{self.side.name.lower()}"
        super().__init__(n_values=n_channels, **kwargs)

    def _default_motion(self, rng: np.random.Generator) -> Motion:
        n = self.n_values
        return _sinusoids(rng, n, rng.uniform(1500, 2500, n), rng.uniform(400, 1200, n))

    def _make_reading(self, seq, t_us, clean, rng):
        values = clean + rng.normal(0.0, self.noise, clean.shape) if self.noise else clean
        counts = np.clip(np.rint(values), 0, self.ADC_MAX).astype(int)
        return GloveReading(seq, t_us * 1e-6, 0.0, self.side, tuple(counts.tolist())), 0

    def _exact_reading(self, seq, t_us, values, buttons):
        return GloveReading(seq, t_us * 1e-6, 0.0, self.side, tuple(int(v) for v in values))


class SimulatedPedal(SimulatedDevice):
    """A pedal: ``n_axes`` uint16 axes of a 12-bit ADC (default 4) and ``n_buttons`` buttons.

    The default motion presses each axis between 0 and 4095 slowly; buttons toggle as square waves
    (button ``i`` at ``0.5 + 0.25 i`` Hz). Ground truth ``values`` are the clean axes and
    ``buttons`` the bitfield.
    """

    device_type = DeviceType.PEDAL
    kind = "pedal"
    ADC_MAX = 4095

    def __init__(self, *, n_axes: int = 4, n_buttons: int = 4, **kwargs) -> None:
        if not 0 <= n_buttons <= 16:
            raise ValueError(f"a pedal frame carries 0..16 buttons, got {n_buttons}")
        self.n_buttons = n_buttons
        super().__init__(n_values=n_axes, **kwargs)

    def _default_motion(self, rng: np.random.Generator) -> Motion:
        n = self.n_values
        half = self.ADC_MAX / 2
        return _sinusoids(rng, n, np.full(n, half), np.full(n, half))

    def buttons_at(self, t: float) -> int:
        bits = 0
        for i in range(self.n_buttons):
            if math.sin(2 * math.pi * (0.5 + 0.25 * i) * t) > 0:
                bits |= 1 << i
        return bits

    def _make_reading(self, seq, t_us, clean, rng):
        values = clean + rng.normal(0.0, self.noise, clean.shape) if self.noise else clean
        counts = np.clip(np.rint(values), 0, self.ADC_MAX).astype(int)
        buttons = self.buttons_at(t_us * 1e-6)
        return PedalReading(seq, t_us * 1e-6, 0.0, tuple(counts.tolist()), buttons), buttons

    def _exact_reading(self, seq, t_us, values, buttons):
        bits = self.buttons_at(t_us * 1e-6) if buttons is None else buttons
        return PedalReading(seq, t_us * 1e-6, 0.0, tuple(int(v) for v in values), bits)


__all__ = [
    "FaultConfig",
    "SimStats",
    "SimulatedDevice",
    "SimulatedExoskeletonArm",
    "SimulatedGlove",
    "SimulatedPedal",
    "TruthSample",
]
