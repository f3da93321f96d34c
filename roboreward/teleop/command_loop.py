"""The command path: the newest device readings become a robot command within a millisecond or so.

A command must follow a reading within a few milliseconds (goal: p99 < 5 ms), while the session's
main thread steps the simulation and hands frames to the recorder. So the command path has a thread
of its own, :class:`CommandLoop`: every ``command_poll_s`` (0.5 ms) it looks at each device's driver
(one :class:`DeviceSlot` per device: which entries of the target vector it drives) and, as soon as
any has a new reading, hands a :class:`~roboreward.teleop.sinks.TeleopCommand` to the sink. The
session shortens the interpreter's GIL switch interval, and MuJoCo releases the GIL while it steps
and renders, so this thread never waits for a frame. :class:`LatencyTracker` keeps, per device, the
time from a reading reaching the host to the command that reflects it.

Hot unplug: when a driver reports its device gone (cable pulled: at once; silent: after
``stale_after_s`` = 50 ms, and ``unplug_confirm_s`` more of healthy polling) the loop holds the
robot within one poll: arms and hands stay where they are and the walking command ramps to a stop
at the pedal mapping's rate limits. When every device reads again it resumes, blending from the
held pose to the operator's over ``resume_blend_s`` so the robot does not jump. The main thread
learns of both through the ``events`` queue (``("unplug", name, t, since)``, ``("replug", name, t)``).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from roboreward.errors import ConfigError
from roboreward.teleop.calibration import LocoCommand, PedalMapper
from roboreward.teleop.cockpit import parse_device_name
from roboreward.teleop.devices import SerialTeleoperator, TeleoperatorConfig, make_teleoperator
from roboreward.teleop.protocol import Reading
from roboreward.teleop.sinks import CommandSink, TeleopCommand


@dataclass
class DeviceSlot:
    """One connected device and where its readings go."""

    name: str
    kind: str  # "exo", "glove" or "pedal"
    side: str | None
    driver: SerialTeleoperator
    index: np.ndarray | None  # entries of the target vector it drives (arms, hands)
    connected: bool = True
    last: Reading | None = None
    suspect_since: float | None = None  # when the driver first reported it gone (not yet confirmed)


def device_slots(devices: Mapping[str, TeleoperatorConfig], robot: Any) -> list[DeviceSlot]:
    """A slot (and its driver, not connected) per device; a ConfigError for a device the robot has no part for."""
    index = {n: i for i, n in enumerate(robot.joint_names)}
    slots = []
    for name, device in devices.items():
        kind, side = parse_device_name(name)
        idx = None
        if kind == "exo":
            if side not in robot.arm_joints:
                raise ConfigError(
                    f"devices.{name}: {robot.name} has no {side} arm; its arms: {sorted(robot.arm_joints)}"
                )
            joints = robot.arm_joints[side]
            n_joints = device.n_joints  # type: ignore[attr-defined]
            if n_joints != len(joints):
                raise ConfigError(
                    f"devices.{name}.n_joints: {n_joints}, but {robot.name}'s {side} arm has "
                    f"{len(joints)} joints ({joints}); exoskeleton joint i drives arm joint i"
                )
            idx = np.array([index[n] for n in joints])
        elif kind == "glove":
            if side not in robot.hand_joints:
                raise ConfigError(
                    f"devices.{name}: {robot.name} has no {side} hand; its hands: {sorted(robot.hand_joints)}"
                )
            idx = np.array([index[n] for n in robot.hand_joints[side]])
        driver = make_teleoperator(device)
        slots.append(DeviceSlot(name=name, kind=kind, side=side, driver=driver, index=idx))
    return slots


class CommandLoop:
    """The hot path, in its own thread: newest readings -> :class:`TeleopCommand` -> sink; unplug -> hold.

    Every ``poll_s`` it checks each driver: a new reading updates that device's part of the target
    vector (exoskeleton: calibrated angles clamped to the arm's limits; glove: retargeted hand joints;
    pedal: the rate-limited walking command) and a command goes to the sink at once. Latency per
    reading = the moment ``sink.send`` returned - the reading's ``t_received``.
    """

    def __init__(
        self,
        slots: Sequence[DeviceSlot],
        sink: CommandSink,
        robot: Any,
        *,
        mapper: PedalMapper | None,
        latency: LatencyTracker,
        events: queue.SimpleQueue,
        poll_s: float = 0.0005,
        resume_blend_s: float = 0.5,
        realtime_priority: int | None = None,
        confirm_s: float = 0.005,
        stall_s: float = 0.01,
    ) -> None:
        self.slots = list(slots)
        self.confirm_s = confirm_s
        self.stall_s = stall_s
        self._last_poll = time.monotonic()
        self.sink = sink
        self.robot = robot
        self.mapper = mapper
        self.latency = latency
        self.events = events
        self.poll_s = poll_s
        self.resume_blend_s = resume_blend_s
        self.realtime_priority = realtime_priority
        start = np.asarray(robot.targets, dtype=np.float64)
        self.targets = start.copy()  # what the devices ask for (before blending)
        self.sent = start.copy()  # the last targets sent
        self._blend_from = start.copy()
        self._blend_start: float | None = None  # blending from the start pose / held pose while set
        self._base: LocoCommand | None = mapper.command if mapper is not None else None
        self._pedal_t: float | None = None
        self.held = False
        self.held_since: float | None = None
        self.holds = 0
        self.commands = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- thread ------------------------------------------------------------------------------

    def start(self, now: float | None = None) -> None:
        # The first command blends from the robot's start pose to the operator's: no jump at start.
        self._blend_start = time.monotonic() if now is None else now
        self._last_poll = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="teleop-command", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        if self.realtime_priority is not None:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.realtime_priority))
            except (OSError, AttributeError) as e:
                self.events.put(("message", f"command thread: real-time priority refused ({e}); normal priority"))
        sleep, poll, stop = time.sleep, self.poll, self._stop
        try:
            while not stop.is_set():
                poll()
                sleep(self.poll_s)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which ends the session
            self.error = e
            self.events.put(("error", e))

    # -- one poll ----------------------------------------------------------------------------

    def poll(self) -> TeleopCommand | None:
        """Look at every device once; send a command if anything new arrived. Returns it (or None)."""
        now = time.monotonic()
        fresh: list[tuple[DeviceSlot, Reading]] = []
        missing = False
        # After a stall of this thread (the whole process stalled: a fork, a page-in, an overloaded
        # machine) the readers have not had their turn yet: devices look silent that are not.
        stalled = now - self._last_poll > self.stall_s
        self._last_poll = now
        for slot in self.slots:
            driver = slot.driver
            ok = driver.is_connected
            if not ok and slot.connected:
                # Gone only once it stays gone for confirm_s of healthy polling (a few ms on top of
                # the driver's 50 ms), so a stall of this process is not taken for an unplug.
                if slot.suspect_since is None or stalled:
                    slot.suspect_since = now
                if now - slot.suspect_since < self.confirm_s:
                    continue
                slot.connected = False
                self.events.put(("unplug", slot.name, now, driver.disconnected_since))
            elif ok:
                slot.suspect_since = None
                if not slot.connected:
                    slot.connected = True
                    self.events.put(("replug", slot.name, now))
            if not ok:
                missing = True
                continue
            reading = driver.latest_reading
            if reading is None or reading is slot.last:
                continue
            slot.last = reading
            self._take(slot, reading, now)
            fresh.append((slot, reading))

        if missing:
            return self._hold(now)
        if self.held:  # every device is back: resume, blending from where the robot was held
            self.held = False
            self.held_since = None
            self._blend_from = self.sent.copy()
            self._blend_start = now
        if not fresh:
            return None
        targets = self.targets
        if self._blend_start is not None:
            a = 1.0 if self.resume_blend_s <= 0 else (now - self._blend_start) / self.resume_blend_s
            if a >= 1.0:
                self._blend_start = None
            else:
                targets = self._blend_from + a * (targets - self._blend_from)
        command = TeleopCommand(
            t=now,
            targets=targets.copy(),
            base=self._base,
            sources={s.name: s.last.t_device_us for s in self.slots if s.last is not None},
        )
        self.sink.send(command)
        sent = time.monotonic()
        self.sent = command.targets  # type: ignore[assignment]
        self.commands += 1
        add = self.latency.add
        for slot, reading in fresh:
            add(slot.name, sent - reading.t_received, sent - reading.t_device)
        return command

    def _take(self, slot: DeviceSlot, reading: Reading, now: float) -> None:
        driver = slot.driver
        if slot.kind == "exo":
            q = driver.calibration.apply(reading.angles)  # type: ignore[attr-defined]
            self.targets[slot.index] = self.robot.arms_from_exoskeleton(slot.side, q)
        elif slot.kind == "glove":
            x = driver.calibration.apply(reading.channels)  # type: ignore[attr-defined]
            self.targets[slot.index] = self.robot.hands_from_glove(slot.side, x)
        elif self.mapper is not None:
            axes = driver.calibration.apply(reading.axes)  # type: ignore[attr-defined]
            dt = 0.0 if self._pedal_t is None else now - self._pedal_t
            self._pedal_t = now
            self._base = self.mapper.update(axes, dt)

    def _hold(self, now: float) -> TeleopCommand | None:
        if not self.held:
            self.held = True
            self.held_since = now
            self.holds += 1
            self.sink.hold()
        if self.mapper is None:
            return None
        # A walking robot cannot stop dead: the walking command ramps to zero at the mapping's limits.
        dt = 0.0 if self._pedal_t is None else now - self._pedal_t
        self._pedal_t = now
        before = self._base
        self._base = self.mapper.update(None, dt)
        if self._base == before:
            return None
        command = TeleopCommand(t=now, targets=None, base=self._base, sources={}, held=True)
        self.sink.send(command)
        return command


class LatencyTracker:
    """Per device: seconds from a reading reaching the host (``t_received``) to the command reflecting it.

    Written by the command thread only (append into preallocated rings); read by anyone as copies.
    Also keeps ``t_device`` to command, which for the simulated devices (host clock) includes the pty.
    """

    def __init__(self, names: Sequence[str], capacity: int = 1 << 16) -> None:
        self.names = list(names)
        self.capacity = capacity
        self._host = {n: np.zeros(capacity) for n in self.names}
        self._device = {n: np.zeros(capacity) for n in self.names}
        self._count = dict.fromkeys(self.names, 0)

    def add(self, name: str, host: float, device: float) -> None:
        i = self._count[name]
        self._host[name][i % self.capacity] = host
        self._device[name][i % self.capacity] = device
        self._count[name] = i + 1

    def values(self, name: str, which: Literal["host", "device"] = "host") -> np.ndarray:
        n = min(self._count[name], self.capacity)
        return (self._host if which == "host" else self._device)[name][:n].copy()

    def count(self, name: str) -> int:
        return self._count[name]

    def reset(self) -> None:
        for n in self.names:
            self._count[n] = 0

    def percentiles(self, name: str, which: Literal["host", "device"] = "host") -> tuple[float, float, float]:
        """(p50, p99, max) in seconds; NaN without samples."""
        v = self.values(name, which)
        if not len(v):
            return (math.nan,) * 3
        p50, p99 = np.percentile(v, [50, 99])
        return float(p50), float(p99), float(v.max())


__all__ = ["CommandLoop", "DeviceSlot", "LatencyTracker", "device_slots"]
