"""The live teleoperation session: cockpit devices drive a robot, and demonstrations are recorded.

One operator wears exoskeleton arms and Hall-sensor gloves and stands on a pedal (HOMIE); the
session turns their readings into robot commands and, on request, records episodes::

    devices (reader threads) --latest reading--> command thread --TeleopCommand--> CommandSink
                                                                                   (sink: sim, or ros2)
    main thread: advances the sink (steps the simulation in real time), drains every reading, handles
                 buttons, keys and unplugs, hands a frame to the recording thread at the dataset's fps,
                 prints status
    recording thread: renders the frames, encodes the videos, saves the episodes

:class:`TeleopSession` builds and runs these parts, each in a module of its own:

- :mod:`~roboreward.teleop.cockpit`: the devices by name (``exo_left`` ... ``pedal``) and what each drives;
- :mod:`~roboreward.teleop.command_loop`: the command thread (reading -> command within a millisecond
  or so), which holds the robot when a device is unplugged and resumes when it returns;
- :mod:`~roboreward.teleop.sinks`: where commands go, picked by the config's ``sink:`` section
  (:mod:`~roboreward.teleop.sim_sink`, :mod:`roboreward.hardware.teleop_sink`);
- :mod:`~roboreward.teleop.controls`: the pedal buttons and keys that start, save and discard episodes;
- :mod:`~roboreward.teleop.recorder` and :mod:`~roboreward.teleop.recording_worker`: episodes into a
  LeRobot v3.0 dataset with a teleop sidecar (every device reading, the interrupted flag), off the
  main thread; :mod:`~roboreward.teleop.dataset` reads them back;
- :mod:`~roboreward.teleop.console`: the messages and the status line.

An unplug while recording ends the episode: it is saved, marked interrupted (``reason`` names the
device). Saving takes as long as rendering the episode's frames that are still waiting (a CPU may
render slower than the recorded fps); the status line shows the save's progress (frames rendered of
the episode's total, frames per second, time left). Ending the session (``q``, :meth:`TeleopSession.end`,
which ``roboreward teleop run`` calls on SIGTERM and SIGHUP, e.g. the terminal closing) first
finishes every save asked for and saves an episode being recorded as interrupted; only a
KeyboardInterrupt during that wait (a second Ctrl-C) gives the saves up, and the session then says at
once which episodes are lost (the next session lists the one being written in ``teleop/lost.json``).

Device faults: a frame with a NaN or infinite value, or a count outside the sensor's range, is
dropped by the driver like a corrupted frame (:mod:`roboreward.teleop.devices`); the robot keeps
its last valid command, and the count is in :class:`DeviceStats` (``rejected``) and the status line.

Example::

    config = SessionConfig(robot="franka", devices={"exo_right": device_config("exo_right", "/dev/ttyUSB0")},
                           record=RecordConfig(root="demos/franka_pick", task="pick up the cube"))
    with TeleopSession(config) as session:
        session.run()                      # until 'q', Ctrl-C or session.request("quit")
    print(session.stats().format())
"""

from __future__ import annotations

import math
import os
import queue
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from roboreward.config import bounded
from roboreward.errors import ConfigError, RoborewardError
from roboreward.teleop.calibration import PedalMapper, PedalMappingConfig
from roboreward.teleop.cockpit import check_device_config
from roboreward.teleop.command_loop import CommandLoop, DeviceSlot, LatencyTracker, device_slots
from roboreward.teleop.console import Console
from roboreward.teleop.controls import EVENTS, ButtonsConfig, ButtonWatcher, KeyboardControl, KeysConfig, keys_help
from roboreward.teleop.dataset import LOST_FILE, TELEOP_DIR
from roboreward.teleop.devices import SerialTeleoperator, TeleoperatorConfig
from roboreward.teleop.protocol import Reading
from roboreward.teleop.recorder import EpisodeRecorder, RecordConfig
from roboreward.teleop.recording_worker import RecordingWorker, SaveProgress
from roboreward.teleop.sim_sink import SimSinkConfig
from roboreward.teleop.sinks import CommandSink, SinkConfig


@dataclass(kw_only=True)
class SessionConfig:
    """Everything one ``roboreward teleop run`` needs."""

    robot: str = bounded("g1", "robot to drive: 'g1' (with hands, walking base) or 'franka'")
    # The G1's file walks it on its legs; kinematic glides the pelvis (and squats), fixed keeps it still.
    base: Literal["walking", "kinematic", "fixed"] | None = bounded(
        None, "how the robot's base moves (its file's base.type); null: as the robot file says"
    )
    devices: dict[str, TeleoperatorConfig] = bounded({}, "device name (exo_left, glove_right, pedal, ...) -> driver")
    pedal_mapping: PedalMappingConfig = field(default_factory=PedalMappingConfig)
    buttons: ButtonsConfig = field(default_factory=ButtonsConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    # type: sim (the MuJoCo robot here) or ros2 (a robot file's topics); the other keys are that sink's.
    sink: SinkConfig = field(default_factory=SimSinkConfig)
    viewer: Literal["auto", "on", "off"] = bounded("auto", "MuJoCo viewer window: auto = when a display exists")
    # 0.5 ms polling keeps the command a fraction of a millisecond behind the reading at ~2 % of a core.
    command_poll_s: float = bounded(0.0005, "how often the command thread looks for new readings", gt=0.0, le=0.01)
    # The interpreter lets one thread run 5 ms before switching: longer than the whole latency budget.
    gil_switch_interval_s: float | None = bounded(
        0.0005, "sys.setswitchinterval while the session runs; null: leave Python's 5 ms", gt=0.0, le=0.01
    )
    command_realtime_priority: int | None = bounded(
        None, "SCHED_FIFO priority (1-99) of the command thread; needs CAP_SYS_NICE; null: normal", ge=1, le=99
    )
    # A held robot resuming must not snap to wherever the operator's arms are now.
    resume_blend_s: float = bounded(0.5, "seconds to blend from the held pose to the devices' on resume", ge=0.0)
    unplug_confirm_s: float = bounded(
        0.005, "a device the driver reports gone must stay gone this long (healthy polling) to hold", ge=0.0, le=0.05
    )
    # On a terminal the line is redrawn in place, so it may change faster than a log should grow.
    status_interval_s: float = bounded(
        2.0, "seconds between status lines (redrawn in place on a terminal, at least twice a second); 0: none",
        ge=0.0,
    )

    def __post_init__(self) -> None:
        for name, device in self.devices.items():
            check_device_config(name, device)

    def robot_overrides(self) -> list[str]:
        """``key=value`` overrides of the robot file that this config asks for (``base``)."""
        return [f"base.type={self.base}"] if self.base is not None else []


@dataclass
class DeviceStats:
    """One device over the measurement window."""

    name: str
    rate_hz: float
    latency_ms: tuple[float, float, float]  # reading received -> command sent: p50, p99, max
    device_latency_ms: tuple[float, float, float]  # device timestamp -> command sent (host-clock devices only)
    commands: int  # readings turned into a command
    connected: bool
    unplugs: int
    reconnects: int
    # Frames dropped as damaged or impossible: bad CRC, length or payload, a NaN or infinite angle, a
    # count outside the sensor's range. The robot kept its last valid command meanwhile.
    rejected: int = 0


@dataclass
class SessionStats:
    """What :meth:`TeleopSession.stats` reports."""

    seconds: float
    devices: list[DeviceStats]
    held: bool
    holds: int
    commands: int
    episodes_saved: int
    episodes_interrupted: int
    frames_recorded: int
    frames_late: int
    render_backlog: int  # recording jobs (frames to render, saves) not done yet
    sim_skipped_s: float
    sim_falls: int  # a walking simulated robot fell and was stood up again
    apply_latency_ms: tuple[float, float, float]  # command made -> the robot took it (sink.apply_latency)
    applied_at: str = "the robot"  # where the sink's apply latency ends: "simulation step", "publish"

    def format(self) -> str:
        lines = [f"{'device':<12} {'rate Hz':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'rejected':>8}"
                 "  (latency: reading -> command)"]
        for d in self.devices:
            p50, p99, mx = d.latency_ms
            state = "" if d.connected else "  UNPLUGGED"
            lines.append(f"{d.name:<12} {d.rate_hz:8.1f} {p50:7.3f} {p99:7.3f} {mx:7.2f} {d.rejected:8d}{state}")
        p50, p99, _ = self.apply_latency_ms
        if not math.isnan(p50):
            lines.append(f"command -> {self.applied_at}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        lines.append(
            f"{self.seconds:.1f} s, {self.commands} commands, held {self.holds}x, episodes saved "
            f"{self.episodes_saved} ({self.episodes_interrupted} interrupted), frames {self.frames_recorded} "
            f"({self.frames_late} late, {self.render_backlog} waiting)"
            + (f", simulation skipped {self.sim_skipped_s:.2f} s" if self.sim_skipped_s else "")
            + (f", robot fell {self.sim_falls}x" if self.sim_falls else "")
        )
        return "\n".join(lines)


def _percentiles_ms(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return (math.nan,) * 3
    p50, p99 = np.percentile(v, [50, 99])
    return float(p50 * 1e3), float(p99 * 1e3), float(v.max() * 1e3)


class TeleopSession:
    """Devices + robot + recording, run by :meth:`run`; see the module docstring.

    :param config: the session.
    :param robot: a :class:`~roboreward.teleop.robots.TeleopRobot` to drive (built from
        ``config.robot`` if None; the session closes only a robot it built).
    :param keyboard: the key reader; a :class:`KeyboardControl` on stdin if None, ``False`` for none.
    :param print_fn: a function that takes each message and status line (called from the session's
        threads); give this or ``console``.
    :param console: where output goes; a :class:`Console` on stdout if neither is given.
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        robot: Any = None,
        keyboard: KeyboardControl | Literal[False] | None = None,
        print_fn: Callable[[str], None] | None = None,
        console: Console | None = None,
    ) -> None:
        if not config.devices:
            raise ConfigError(
                "devices: empty; give the cockpit's devices, e.g. --devices exo_left=/dev/ttyUSB0 pedal=/dev/ttyUSB2, "
                "or --simulated"
            )
        if print_fn is not None and console is not None:
            raise ValueError("TeleopSession takes print_fn or console, not both; wrap the function: Console(print_fn)")
        self.config = config
        self.console = console if console is not None else Console(print_fn)
        self.print = self.console.print
        self._own_robot = robot is None
        self._closed = False
        # close() was interrupted (KeyboardInterrupt) while saving and the job under way did not end within
        # seconds: the robot must not be closed while the worker thread may still use it.
        self.abandoned = False
        # close() gave up saves on a KeyboardInterrupt (abandoned or not): the process should end at once.
        self.saves_interrupted = False
        self._started = False
        self._quit = False
        self._end_reason = "the session ended"
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self.drivers: dict[str, SerialTeleoperator] = {}
        self.recorder: EpisodeRecorder | None = None
        self._worker: RecordingWorker | None = None
        self._recording = False  # the main thread's view; the recorder (in the worker) follows in order
        self._readings: dict[str, list[Reading]] = {}  # drained since the last recorded frame
        self._episode = 0  # index the next episode will have (the main thread's count)
        self._episodes_saved = 0
        self._episodes_interrupted = 0
        self._frames_recorded = 0
        self._progress = SaveProgress()  # frames handed to the worker, frames it has done, saves waiting
        self._episode_first = 0  # frames submitted when the episode being recorded started
        self.keyboard: KeyboardControl | None = None
        self._viewer: Any = None
        self._saved_switch: float | None = None
        self.robot = robot
        self.sink: CommandSink | None = None
        self.slots: list[DeviceSlot] = []
        try:
            self._build(keyboard)
        except BaseException:
            self.close()
            raise

    # -- building ----------------------------------------------------------------------------

    def _build(self, keyboard: KeyboardControl | Literal[False] | None) -> None:
        config = self.config
        rec = config.record
        if self.robot is None:
            from roboreward.teleop.robots import make_teleop_robot

            cameras = rec.cameras or None
            self.robot = make_teleop_robot(config.robot, cameras=cameras, size=(rec.width, rec.height),
                                           overrides=config.robot_overrides())
        robot = self.robot
        self.has_base = robot.has_base
        self.cameras = list(rec.cameras) if rec.cameras else list(robot.cameras)
        slots = device_slots(config.devices, robot)

        mapper = None
        if self.has_base and any(s.kind == "pedal" for s in slots):
            mapping = config.pedal_mapping
            lo, hi = robot.height_range
            stand = float(np.clip(robot.base_pose()[3], lo, hi))
            low = float(np.clip(mapping.min_height, lo, stand))
            mapper = PedalMapper(replace(mapping, stand_height=stand, min_height=low))
        self.mapper = mapper
        self.slots = slots
        self.sink = config.sink.build(robot, frame_size=(rec.width, rec.height))
        sink_cameras = self.sink.cameras
        if sink_cameras is not None:  # a real robot records its own cameras (e.g. a ROS 2 image topic)
            if not sink_cameras and rec.root is not None:
                raise ConfigError(
                    "record.root: the robot has no camera topic (state.image in its robot file) and a dataset needs "
                    "at least one camera; add the robot's camera topic, or leave out --record"
                )
            unknown = [c for c in rec.cameras if c not in sink_cameras]
            if unknown:
                raise ConfigError(f"record.cameras: {unknown} are not cameras of the robot; it has {sink_cameras}")
            self.cameras = list(rec.cameras) if rec.cameras else list(sink_cameras)
        self.latency = LatencyTracker([s.name for s in slots])
        self.command_loop = CommandLoop(
            slots, self.sink, robot, mapper=mapper, latency=self.latency, events=self._events,
            poll_s=config.command_poll_s, resume_blend_s=config.resume_blend_s,
            realtime_priority=config.command_realtime_priority, confirm_s=config.unplug_confirm_s,
        )
        self.buttons = ButtonWatcher(config.buttons)

        if rec.root is not None:
            devices_meta = {
                name: {"type": d.type_name, "port": d.port, "calibration": d.calibration,  # type: ignore[attr-defined]
                       **({"side": d.side} if hasattr(d, "side") else {})}
                for name, d in config.devices.items()
            }
            self.recorder = EpisodeRecorder(
                rec.root, fps=rec.fps, cameras=self.cameras, image_size=(rec.height, rec.width),
                state_names=self.sink.state_names, action_names=self.sink.action_names, robot_type=robot.name,
                task=rec.task,
                metadata={"robot": robot.name, "base": robot.config.base.type, "devices": devices_meta,
                          "joint_names": robot.joint_names,
                          "sink": {"type": config.sink.type_name, **self.sink.recording_metadata()}},
            )
            self._episode = self.recorder.num_episodes
            for entry in self.recorder.lost_on_open:
                self.print(
                    f"note: a previous session was killed while recording episode {entry.get('episode_index')}; "
                    f"it is listed in {Path(rec.root) / TELEOP_DIR / LOST_FILE}"
                )
            self._worker = RecordingWorker("teleop-recorder", nice=rec.worker_nice)
        if keyboard is None:
            keyboard = KeyboardControl(config.keys)
        self.keyboard = keyboard or None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Render a first frame per camera, connect every device (each waits for its first frame), start commanding."""
        if self._started:
            return
        if self._worker is not None and self.cameras:
            # The first frame of a camera builds its GL context: seconds on a CPU, partly holding the
            # GIL. Done now, before the devices stream, it cannot starve their reader threads.
            observation = self.sink.observe(self.cameras)  # type: ignore[union-attr]
            self._worker.call(observation.frames)
        for slot in self.slots:
            slot.driver.connect()
            self.drivers[slot.name] = slot.driver
            slot.last = None
        if self.config.gil_switch_interval_s is not None:
            self._saved_switch = sys.getswitchinterval()
            sys.setswitchinterval(self.config.gil_switch_interval_s)
        self._open_viewer()
        self._t_start = time.monotonic()
        self.reset_stats()
        self.command_loop.start(self._t_start)
        self._started = True

    def __enter__(self) -> TeleopSession:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self._end_reason == "the session ended":
            self._end_reason = _reason_for(exc_type, exc)
        self.close()

    def request(self, event: str) -> None:
        """Ask for ``start_stop``, ``success``, ``discard`` or ``quit`` as a button would (any thread)."""
        if event not in EVENTS:
            raise ValueError(f"unknown session event {event!r}; choose one of {list(EVENTS)}")
        self._requests.put(event)

    def end(self, reason: str) -> None:
        """End the session, from any thread or a signal handler (it only sets flags).

        :meth:`run` returns at its next turn (within milliseconds); closing then finishes every save
        already asked for and saves an episode being recorded, marked interrupted with ``reason``.
        A second call changes nothing.
        """
        if not self._quit:
            self._end_reason = reason
            self._quit = True

    @property
    def recording(self) -> bool:
        """An episode is being recorded (as the main loop sees it)."""
        return self._recording

    @property
    def pending_saves(self) -> list[int]:
        """Indices of the episodes ended but not yet saved, oldest first."""
        return [p.index for p in self._progress.pending]

    @property
    def held(self) -> bool:
        return self.command_loop.held

    def flush(self) -> None:
        """Wait until every frame and save asked for so far is on disk."""
        if self._worker is not None:
            self._worker.flush()

    def run(self, duration: float | None = None, until: Callable[[], bool] | None = None) -> SessionStats:
        """Drive the robot until 'quit' (key, :meth:`request`, a closed viewer), ``duration`` seconds or ``until()``."""
        self.start()
        rec = self.config.record
        period = 1.0 / rec.fps
        status_every = self._status_period()
        now = time.monotonic()
        end = None if duration is None else now + duration
        next_frame = now
        next_status = now + status_every
        if self.keyboard is not None and self.keyboard.active:
            self.print(keys_help(self.config.keys, self.config.buttons))
        try:
            while not self._quit:
                now = time.monotonic()
                if (end is not None and now >= end) or (until is not None and until()):
                    break
                if self._worker is not None:
                    self._worker.check()
                self.sink.advance(now)  # type: ignore[union-attr]
                self._drain(now)
                self._handle_events(now)
                if now >= next_frame:
                    if self._recording and now - next_frame > period:
                        self._frames_late += 1
                    self._frame(now)
                    next_frame = max(next_frame + period, now - period)  # one late frame may catch up, not more
                self._progress.sample(now)
                if now >= next_status:
                    self.console.status(self._status_line())
                    next_status = now + status_every
                delay = min(next_frame, now + 0.002) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        except BaseException as e:
            self._end_reason = _reason_for(type(e), e)
            raise
        return self.stats()

    def close(self) -> None:
        """Stop everything: an episode in progress is saved as interrupted (with the reason), devices released."""
        if self._closed:
            return
        self._closed = True
        errors: list[BaseException] = []

        def attempt(fn: Callable[[], Any]) -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 - close everything, then raise the first problem
                errors.append(e)

        if getattr(self, "command_loop", None) is not None:
            attempt(self.command_loop.stop)
        worker = self._worker
        if worker is not None:
            next_status = [0.0 if math.isfinite(self._status_period()) else math.inf]

            def show_progress() -> None:
                now = time.monotonic()
                self._progress.sample(now)
                if now >= next_status[0]:
                    self.console.status(self._progress.describe() or "closing the dataset ...")
                    next_status[0] = now + self._status_period()

            # GL contexts close in the thread that made them (a cleanup job runs even after a cancel).
            close_renderers = self.sink.close_renderers  # type: ignore[union-attr]
            try:  # a Ctrl-C anywhere in here gives up the saves, never leaves the worker rendering unasked
                if self._recording:
                    attempt(lambda: self._stop_episode(success=False, interrupted=True, reason=self._end_reason,
                                                       announce=False))
                saves = self._progress.pending
                if saves:
                    several = len(saves) > 1
                    first = f"episode {saves[0].index}: " if several else ""
                    self.print(f"{self._end_reason}: ending once episode{'s' if several else ''} "
                               f"{', '.join(str(p.index) for p in saves)} {'are' if several else 'is'} saved "
                               f"({first}{self._progress.state(saves[0])})")
                worker.submit(close_renderers, cleanup=True)
                worker.stop(on_wait=show_progress)
            except KeyboardInterrupt as e:  # give up the saves, and say at once which episodes are lost
                errors.append(e)
                self.saves_interrupted = True
                worker.submit(close_renderers, cleanup=True)  # again if it was: closing twice is harmless
                worker.cancel()  # the job under way (one frame, or a save) finishes; the rest is dropped
                try:
                    self.abandoned = not worker.join(5.0)
                except KeyboardInterrupt:
                    self.abandoned = True
                lost = self.pending_saves
                if lost:
                    self.print(
                        f"interrupted while saving: episode{'s' if len(lost) > 1 else ''} "
                        f"{', '.join(map(str, lost))} not saved; the next session to open "
                        f"{self.recorder.root} lists the one being written in {TELEOP_DIR}/{LOST_FILE}"  # type: ignore[union-attr]
                    )
                if not self.abandoned:  # drop the unsaved frames (and their encoders); keep the saved episodes
                    attempt(self.recorder.writer.clear_episode)  # type: ignore[union-attr]
                    attempt(self.recorder.writer.finalize)  # type: ignore[union-attr]
            else:
                attempt(worker.check)
                attempt(self.recorder.writer.finalize)  # type: ignore[union-attr]
            self.console.end_status()
        elif self.recorder is not None:
            attempt(self.recorder.close)
        for driver in self.drivers.values():
            attempt(lambda d=driver: d.disconnect() if d._thread is not None else None)
        if self.keyboard is not None:
            attempt(self.keyboard.close)
        if self._viewer is not None:
            attempt(self._viewer.close)
        if self._saved_switch is not None:
            sys.setswitchinterval(self._saved_switch)
        if self.abandoned:  # the worker thread is still at work with the sink's renderers and the robot
            self.console.end_status()
            raise errors[0]
        if self.sink is not None:
            attempt(self.sink.close)  # what the sink opened (its renderers, a ROS 2 connection)
        if self._own_robot and self.robot is not None:
            attempt(self.robot.close)
        self.console.end_status()
        if errors:
            raise errors[0]

    # -- the main loop's parts -------------------------------------------------------------------

    def _drain(self, now: float) -> None:
        for slot in self.slots:
            readings = slot.driver.drain()
            if not readings:
                continue
            self._counts[slot.name] += len(readings)
            if self._recording:
                self._readings.setdefault(slot.name, []).extend(readings)
            if slot.kind == "pedal":
                for r in readings:
                    for event in self.buttons.feed(r.buttons, r.t_received):  # type: ignore[attr-defined]
                        self._handle(event, now)

    def _handle_events(self, now: float) -> None:
        if self.keyboard is not None:
            for event in self.keyboard.poll():
                self._handle(event, now)
        while True:
            try:
                event = self._requests.get_nowait()
            except queue.Empty:
                break
            self._handle(event, now)
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
            kind = item[0]
            if kind == "error":
                if isinstance(item[1], RoborewardError):  # a device or robot problem that says what to fix
                    raise item[1]
                raise RuntimeError(f"the command thread failed: {item[1]!r}") from item[1]
            if kind == "message":
                self.print(item[1])
            elif kind == "unplug":
                _, name, t_noticed, since = item
                after = f", {1e3 * (t_noticed - since):.0f} ms after it went silent" if since is not None else ""
                self.print(f"{name} unplugged: robot held (noticed{after})")
                if self._recording:
                    self._stop_episode(success=False, interrupted=True, reason=f"{name} unplugged")
            elif kind == "replug":
                name = item[1]
                if name == "pedal":
                    self.buttons.reset()
                waiting = [s.name for s in self.slots if not s.connected]
                rest = f"; still waiting for {', '.join(waiting)}" if waiting else "; resuming"
                self.print(f"{name} is back{rest}")
        if self._viewer is not None and not self._viewer.is_running():
            self._quit = True

    def _handle(self, event: str, now: float) -> None:
        if event in ("quit", "interrupt"):
            self._quit = True
            self._end_reason = "the operator quit" if event == "quit" else "the session was interrupted (Ctrl-C)"
            return
        if self.recorder is None:
            self.print(f"{event}: not recording (no dataset folder; give --record DIR)")
            return
        if event == "start_stop":
            if self._recording:
                self._stop_episode(success=False)
            elif self.command_loop.held:
                gone = [s.name for s in self.slots if not s.connected]
                self.print(f"cannot start an episode while the robot is held ({', '.join(gone)} unplugged)")
            else:
                self._recording = True
                self._readings = {}
                self._episode_first = self._progress.submitted
                self._worker.submit(lambda: self.recorder.start(now))  # type: ignore[union-attr]
                self.print(f"recording episode {self._episode} ...")
        elif event in ("success", "discard"):
            if not self._recording:
                self.print(f"{event}: no episode is being recorded")
            elif event == "success":
                self._stop_episode(success=True)
            else:
                self._recording = False
                self._worker.submit(self.recorder.discard)  # type: ignore[union-attr]
                self.print(f"episode {self._episode} discarded")

    def _stop_episode(self, *, success: bool, interrupted: bool = False, reason: str | None = None,
                      announce: bool = True) -> None:
        """End the episode being recorded; the worker saves it after its remaining frames."""
        self._recording = False
        recorder = self.recorder
        assert recorder is not None and self._worker is not None
        readings, self._readings = self._readings, {}
        for name, batch in readings.items():
            self._worker.submit(lambda n=name, b=batch: recorder.add_readings(n, b))
        # The recorder saves an episode exactly when it got frames, and the worker gives it every frame
        # submitted while it was recording: so the main thread knows the index the save will get.
        progress = self._progress
        pending = progress.episode_ended(self._episode, self._episode_first)
        if pending is not None:
            self._episode += 1

        def save() -> None:
            try:
                index = recorder.save(success=success, interrupted=interrupted, reason=reason)
            finally:
                if pending is not None:
                    progress.save_done()
            self._saved(index, interrupted=interrupted, success=success, reason=reason)

        self._worker.submit(save)
        if announce and pending is not None:
            waiting = pending.last - max(progress.done, pending.first)
            self.print(f"saving episode {pending.index}: {pending.frames} frames"
                       + (f", {waiting} still to render" if waiting > 0 else ""))

    def _saved(self, index: int | None, *, interrupted: bool, success: bool = False, reason: str | None = None) -> None:
        """(worker thread) Count and report a saved episode."""
        if index is None:
            self.print("episode had no frames; nothing saved")
            return
        self._episodes_saved += 1
        if interrupted:
            self._episodes_interrupted += 1
            self.print(f"episode {index} saved, marked interrupted ({reason})")
        else:
            self.print(f"episode {index} saved{' as a success' if success else ''}")

    def _frame(self, now: float) -> None:
        if self._viewer is not None:
            self._viewer.sync()
        if not self._recording:
            return
        observation = self.sink.observe(self.cameras)  # type: ignore[union-attr]
        action, command = self.sink.applied_action()  # type: ignore[union-attr]
        held = self.command_loop.held
        sources = dict(command.sources) if command is not None else {}
        recorder = self.recorder
        assert recorder is not None and self._worker is not None

        readings, self._readings = self._readings, {}

        progress = self._progress

        def record() -> None:
            if recorder.recording:
                recorder.add_frame(now, observation.state, action, observation.frames(), held=held, sources=sources)
                for name, batch in readings.items():  # they arrived while this frame was the newest
                    recorder.add_readings(name, batch)
            progress.frame_done()

        self._worker.submit(record)
        progress.frame_submitted()
        self._frames_recorded += 1

    def _open_viewer(self) -> None:
        mode = self.config.viewer
        display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        if mode == "off" or (mode == "auto" and not display):
            return
        if not display:
            raise ConfigError("viewer: 'on' needs a display (DISPLAY is not set); use viewer: auto or off")
        self._viewer = self.sink.open_viewer()  # type: ignore[union-attr]
        if self._viewer is None:
            self.print("no viewer: the robot is not a local MuJoCo simulation")

    # -- statistics -------------------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Start a new measurement window (rates, latencies, frame counts)."""
        self._stats_t0 = time.monotonic()
        self._counts = {s.name: 0 for s in self.slots}
        self._base_unplugs = {s.name: s.driver.unplugs for s in self.slots}
        self._base_reconnects = {s.name: s.driver.reconnects for s in self.slots}
        self._base_rejected = {s.name: s.driver.rejected_frames for s in self.slots}
        self._commands0 = self.command_loop.commands
        self.latency.reset()
        self.sink.apply_latency.clear()  # type: ignore[union-attr]
        self._frames_recorded = 0
        self._frames_late = 0

    def stats(self) -> SessionStats:
        elapsed = max(time.monotonic() - self._stats_t0, 1e-9)
        devices = []
        for s in self.slots:
            host = tuple(1e3 * x for x in self.latency.percentiles(s.name))
            device = tuple(1e3 * x for x in self.latency.percentiles(s.name, "device"))
            devices.append(DeviceStats(
                name=s.name,
                rate_hz=self._counts[s.name] / elapsed,
                latency_ms=host,  # type: ignore[arg-type]
                device_latency_ms=device,  # type: ignore[arg-type]
                commands=self.latency.count(s.name),
                connected=s.connected,
                unplugs=s.driver.unplugs - self._base_unplugs[s.name],
                reconnects=s.driver.reconnects - self._base_reconnects[s.name],
                rejected=s.driver.rejected_frames - self._base_rejected[s.name],
            ))
        sink = self.sink
        assert sink is not None
        return SessionStats(
            seconds=elapsed,
            devices=devices,
            held=self.command_loop.held,
            holds=self.command_loop.holds,
            commands=self.command_loop.commands - self._commands0,
            episodes_saved=self._episodes_saved,
            episodes_interrupted=self._episodes_interrupted,
            frames_recorded=self._frames_recorded,
            frames_late=self._frames_late,
            render_backlog=self._worker.backlog if self._worker is not None else 0,
            sim_skipped_s=sink.skipped_s,
            sim_falls=sink.falls,
            apply_latency_ms=_percentiles_ms(list(sink.apply_latency)),
            applied_at=sink.applied_at,
        )

    def _status_period(self) -> float:
        """Seconds between status updates: ``status_interval_s``, at most 0.5 s when redrawn in place."""
        every = self.config.status_interval_s
        if not every:
            return math.inf
        return min(every, 0.5) if self.console.interactive else every

    def _status_line(self) -> str:
        parts = [f"REC episode {self._episode}" if self._recording else "idle"]
        progress = self._progress.describe()
        if progress is not None:
            parts.append(progress)
        elapsed = max(time.monotonic() - self._stats_t0, 1e-9)
        for s in self.slots:
            _, p99, _ = self.latency.percentiles(s.name)
            state = "" if s.connected else " UNPLUGGED"
            rejected = s.driver.rejected_frames - self._base_rejected[s.name]
            bad = f" {rejected} rejected" if rejected else ""
            parts.append(f"{s.name} {self._counts[s.name] / elapsed:.0f} Hz p99 {1e3 * p99:.1f} ms{bad}{state}")
        if self.command_loop.held:
            parts.append("HELD")
        if self.sink.falls:
            parts.append(f"FELL {self.sink.falls}x")
        behind = self._progress.behind
        if self._recording and progress is None and behind > 2 * self.config.record.fps:
            rate = self._progress.rate()
            pace = f" at {rate:.1f} frames/s" if rate is not None else ""
            parts.append(f"rendering {behind} frames behind{pace} (recording at {self.config.record.fps})")
        return " | ".join(parts)


def _reason_for(exc_type: type[BaseException], exc: BaseException | None) -> str:
    if issubclass(exc_type, KeyboardInterrupt):
        return "the session was interrupted (Ctrl-C)"
    return f"the session crashed: {exc_type.__name__}: {exc}"


__all__ = ["DeviceStats", "SessionConfig", "SessionStats", "TeleopSession"]
