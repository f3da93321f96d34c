"""The live teleoperation session: cockpit devices drive a robot, and demonstrations are recorded.

One operator wears exoskeleton arms and Hall-sensor gloves and stands on a pedal (HOMIE); the
session turns their readings into robot commands and, on request, records episodes::

    devices (reader threads) --latest reading--> command thread --TeleopCommand--> CommandSink
                                                                                   (simulated robot, or ROS 2)
    main thread: steps the simulation in real time, drains every reading, handles buttons, keys and
                 unplugs, records frames at the dataset's fps, prints status

Why two threads: a command must follow a reading within a few milliseconds (goal: p99 < 5 ms), but
recording renders camera frames, which on a CPU takes tens to hundreds of milliseconds. The
command thread polls the drivers every ``command_poll_s`` (0.5 ms) and hands a command to the sink
as soon as any device has a new reading; MuJoCo releases the GIL while it steps and renders, and the
session shortens the interpreter's GIL switch interval, so the command path never waits for a frame.

Which device drives what (device names are also the ``--devices`` keys of ``roboreward teleop run``):

==============  ===========================================================================
``exo_left``    the robot's left arm joints (``robot.arm_joints['left']``), one exoskeleton joint
``exo_right``   each (isomorphic: calibrated angle = joint target)
``glove_left``  the left hand's joints, through the hand's retargeting map
``glove_right`` (:mod:`roboreward.teleop.retarget`)
``pedal``       walking: forward / backward / turn / squat (:class:`PedalMapper`); buttons record
==============  ===========================================================================

Recording controls (pedal buttons and keys; :class:`ButtonsConfig`, :class:`KeysConfig`):

============  ===========  ====  ===========================================================
action        pedal button key   what it does
============  ===========  ====  ===========================================================
start/stop    0            r     idle: start an episode; recording: save it (success false)
success       1            s     save the episode marked successful
discard       2            d     drop the episode being recorded
quit          --           q     end the session (an episode in progress is saved, interrupted)
============  ===========  ====  ===========================================================

Hot unplug: when a driver reports its device gone (cable pulled: at once; silent: after
``stale_after_s`` = 50 ms) the command thread holds the robot within one poll: arms and hands stay
where they are and the walking command ramps to a stop at the pedal mapping's rate limits. An
episode being recorded is saved and marked interrupted (``reason`` names the device). When every
device reads again the session resumes, blending from the held pose to the operator's over
``resume_blend_s`` so the robot does not jump.

Datasets are LeRobot v3.0 (:mod:`roboreward.datasets.lerobot_v3`): ``observation.state`` is the
robot's joint positions (then its base pose, for a walking robot), ``action`` the joint targets
commanded (then the walking command), one video per camera. What LeRobot's layout has no place for
is written beside it, per episode, under ``ROOT/teleop/`` (:class:`TeleopDataset` reads it):

- ``episode-NNNNNN.json``: ``interrupted`` and ``reason``, ``success``, robot, devices (ports,
  calibration files), the episode's start time;
- ``episode-NNNNNN.frames.parquet``: per frame the host time, whether the robot was held, and per
  device the timestamp of the reading the recorded command came from;
- ``episode-NNNNNN.readings.parquet``: every device reading of the episode (raw values, sequence
  number, device and host timestamps, the frame it arrived in).

These are written (atomically) before the dataset commits the episode, so a kill leaves either
both or a sidecar the next session deletes. A session killed mid-episode (``kill -9``) cannot save
that episode; it leaves ``teleop/recording.json``, which the next session opening the dataset
moves into ``teleop/lost.json`` so the loss is on record.

Saving takes as long as rendering the episode's frames that are still waiting (a CPU may render
slower than the recorded fps); the status line shows the save's progress (frames rendered of the
episode's total, frames per second, time left). Ending the session (``q``, :meth:`TeleopSession.end`,
which ``roboreward teleop run`` calls on SIGTERM and SIGHUP, e.g. the terminal closing) first
finishes every save asked for and saves an episode being recorded as interrupted; only a
KeyboardInterrupt during that wait (a second Ctrl-C) gives the saves up, and the session then says at
once which episodes are lost (the next session lists the one being written in
``teleop/lost.json``). Output goes
through a :class:`Console`: on a terminal the status line is redrawn in place, elsewhere it is a
plain line every ``status_interval_s``; a write that fails (a terminal that hung up, a closed pipe)
silences the console instead of stopping the save.

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

import abc
import collections
import contextlib
import importlib
import io
import json
import math
import os
import queue
import re
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from roboreward.config import ConfigError, bounded
from roboreward.io import atomic_write
from roboreward.teleop.calibration import LocoCommand, PedalMapper, PedalMappingConfig
from roboreward.teleop.devices import (
    ExoskeletonArmConfig,
    HallGloveConfig,
    PedalConfig,
    SerialTeleoperator,
    TeleoperatorConfig,
    make_teleoperator,
)
from roboreward.teleop.protocol import ArmReading, GloveReading, PedalReading, Reading

# --------------------------------------------------------------------------------------------
# Device names

DEVICE_NAMES = ("exo_left", "exo_right", "glove_left", "glove_right", "pedal")
_DEVICE_NAME = re.compile(r"^(?:(exo|glove)_(left|right)|pedal)$")
_DEVICE_TYPES = {"exo": "exoskeleton_arm", "glove": "hall_glove", "pedal": "pedal"}

EVENTS = ("start_stop", "success", "discard", "quit")


def parse_device_name(name: str) -> tuple[str, str | None]:
    """``"exo_left"`` -> ``("exo", "left")``, ``"pedal"`` -> ``("pedal", None)``; anything else is a ConfigError."""
    m = _DEVICE_NAME.match(name)
    if m is None:
        raise ConfigError(f"unknown device name {name!r}; use one of {list(DEVICE_NAMES)}")
    if name == "pedal":
        return "pedal", None
    return m.group(1), m.group(2)


def device_config(name: str, port: str, **fields: Any) -> TeleoperatorConfig:
    """The driver config for device ``name`` (see :data:`DEVICE_NAMES`) on ``port``; ``fields`` set the rest."""
    kind, side = parse_device_name(name)
    if kind == "exo":
        return ExoskeletonArmConfig(port=port, side=side, **fields)  # type: ignore[arg-type]
    if kind == "glove":
        return HallGloveConfig(port=port, side=side, **fields)  # type: ignore[arg-type]
    return PedalConfig(port=port, **fields)


def _check_device_config(name: str, config: TeleoperatorConfig) -> None:
    kind, side = parse_device_name(name)
    want = _DEVICE_TYPES[kind]
    got = getattr(config, "type_name", type(config).__name__)
    if got != want:
        raise ConfigError(f"devices.{name}.type: {got!r}, but a device named {name!r} must be a {want!r}")
    if side is not None and getattr(config, "side", side) != side:
        raise ConfigError(f"devices.{name}.side: {config.side!r} contradicts the name {name!r}; use side: {side}")


# --------------------------------------------------------------------------------------------
# Configs


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


@dataclass(kw_only=True)
class RecordConfig:
    """Where and how episodes are recorded (LeRobot v3.0, see :mod:`roboreward.datasets.lerobot_v3`)."""

    root: str | None = bounded(None, "dataset folder (new, or a dataset to append to); null: do not record")
    task: str = bounded("teleoperated demonstration", "what the episodes show, in words (the task text)")
    fps: int = bounded(30, "frames per second recorded (state, command, camera frames)", ge=1, le=500)
    cameras: list[str] = bounded([], "cameras to record; empty: all of the robot's cameras")
    width: int = bounded(128, "camera frame width in pixels (even)", ge=2, le=4096)
    height: int = bounded(96, "camera frame height in pixels (even)", ge=2, le=4096)
    # On a CPU, rendering and video encoding can take every core; the devices' readers must come first.
    worker_nice: int = bounded(10, "nice value of the thread that renders, encodes and saves (0: normal)", ge=0, le=19)

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ConfigError(
                f"record.width/height: {self.width}x{self.height}; H.264 video needs even sizes, e.g. "
                f"{self.width + self.width % 2}x{self.height + self.height % 2}"
            )
        if not self.task.strip():
            raise ConfigError("record.task: empty; describe what the episodes show, e.g. 'pick up the red cube'")


@dataclass(kw_only=True)
class RosSinkConfig:
    """``sink: ros2``: the ROS 2 robot the commands go to (:mod:`roboreward.hardware.teleop_sink`)."""

    robot: str | None = bounded(None, "robot file: a name in configs/robots (e.g. franka) or a YAML path")
    # The teleop robots use their MuJoCo model's joint names, a robot file its driver's.
    joint_map: dict[str, str | None] = bounded(
        {}, "teleop joint -> robot joint (null: not sent), over configs/teleop/ros/<teleop robot>.yaml; else same name"
    )
    hold_joints: list[str] = bounded([], "robot joints the session does not drive: held where they are at the start")
    domain_id: int | None = bounded(None, "ROS_DOMAIN_ID (null: the environment's)", ge=0, le=232)
    discovery: Literal["localhost", "subnet"] = bounded("localhost", "DDS discovery: this machine, or the LAN")
    rate_hz: float | None = bounded(None, "commands per second; null: the robot file's control.rate_hz", gt=0, le=2000)
    # The devices, their calibration and the teleop robot's limits are not the robot's: its own file is.
    velocity_scale: float = bounded(1.0, "fraction of each joint's velocity limit a command may use", gt=0.0, le=1.0)
    position_margin: float = bounded(0.0, "keep targets this far inside the robot file's limits (rad or m)", ge=0.0)
    connect_timeout_s: float = bounded(10.0, "seconds to wait for the robot's first joint state", gt=0.0, le=600.0)


@dataclass(kw_only=True)
class SessionConfig:
    """Everything one ``roboreward teleop run`` needs."""

    robot: str = bounded("g1", "robot to drive: 'g1' (with hands, walking base) or 'franka'")
    devices: dict[str, TeleoperatorConfig] = bounded({}, "device name (exo_left, glove_right, pedal, ...) -> driver")
    pedal_mapping: PedalMappingConfig = field(default_factory=PedalMappingConfig)
    buttons: ButtonsConfig = field(default_factory=ButtonsConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    sink: str = bounded("sim", "where commands go: 'sim' (MuJoCo here) or a registered sink such as 'ros2'")
    ros: RosSinkConfig = field(default_factory=RosSinkConfig)
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
    max_sim_lag_s: float = bounded(0.25, "a simulation further behind real time than this skips ahead", gt=0.0)
    # On a terminal the line is redrawn in place, so it may change faster than a log should grow.
    status_interval_s: float = bounded(
        2.0, "seconds between status lines (redrawn in place on a terminal, at least twice a second); 0: none",
        ge=0.0,
    )

    def __post_init__(self) -> None:
        for name, device in self.devices.items():
            _check_device_config(name, device)
        if self.sink == "ros2" and self.ros.robot is None:
            raise ConfigError(
                "ros.robot: missing; sink: ros2 needs the robot file to command, e.g. --ros-robot franka "
                "(configs/robots/franka.yaml) or ros.robot=path/to/robot.yaml"
            )


# --------------------------------------------------------------------------------------------
# Commands and where they go


@dataclass(frozen=True)
class TeleopCommand:
    """One command from the session to the robot.

    :param t: host ``time.monotonic()`` when the command was made.
    :param targets: joint position targets in ``joint_names`` order (arms, then hands); None while the
        robot is held (keep the held pose).
    :param base: the walking command (robots with a base; None otherwise).
    :param sources: device name -> device timestamp (µs) of the newest reading the command reflects.
    """

    t: float
    targets: np.ndarray | None
    base: LocoCommand | None
    sources: Mapping[str, int]
    held: bool = False


@dataclass
class Observation:
    """What the robot looked like at one instant, for a recorded frame.

    :param state: the state vector (``CommandSink.state_names``).
    :param images: camera -> uint8 RGB frame, when the sink has them ready (cameras of a real robot).
    :param render: otherwise a function that renders this instant's frames later, from another
        thread (a simulation snapshot): recording never waits for a renderer.
    """

    state: np.ndarray
    images: dict[str, np.ndarray] | None = None
    render: Callable[[], dict[str, np.ndarray]] | None = None

    def frames(self) -> dict[str, np.ndarray]:
        if self.images is not None:
            return self.images
        return {} if self.render is None else self.render()


class CommandSink(abc.ABC):
    """Where the session's commands go: the simulated robot here, or a robot behind ROS 2.

    ``send`` and ``hold`` are called from the command thread and must return quickly (they are on
    the latency path); ``advance``, ``observe`` and ``applied_action`` from the session's main thread.
    A sink for a real robot registers itself with :func:`register_sink` (the ROS 2 bridge in
    :mod:`roboreward.hardware` is the intended one) and is chosen with ``sink:`` in the session config.
    """

    name: str = "sink"

    @property
    @abc.abstractmethod
    def joint_names(self) -> list[str]:
        """Order of ``TeleopCommand.targets``."""

    @property
    def has_base(self) -> bool:
        """True when the robot walks (takes ``TeleopCommand.base``)."""
        return False

    @abc.abstractmethod
    def send(self, command: TeleopCommand) -> None:
        """Take ``command``; never blocks for long (called on the command path)."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Keep the arms and hands where they are now until the next command with targets."""

    def advance(self, now: float) -> int:
        """Let the robot run up to host time ``now`` (a simulation steps; a real robot runs itself). Steps taken."""
        return 0

    @abc.abstractmethod
    def observe(self, cameras: Sequence[str]) -> Observation:
        """The robot's state now, and its frames from ``cameras`` (ready, or rendered later)."""

    @property
    @abc.abstractmethod
    def state_names(self) -> list[str]: ...

    @property
    def action_names(self) -> list[str]:
        """Names of :meth:`applied_action`: joint targets, then the walking command."""
        names = [f"{n}.target" for n in self.joint_names]
        return names + list(BASE_COMMAND_NAMES) if self.has_base else names

    @abc.abstractmethod
    def applied_action(self) -> tuple[np.ndarray, TeleopCommand | None]:
        """The command the robot is executing, as a vector (``action_names``), and the command itself."""

    def recording_metadata(self) -> dict[str, Any]:
        """What reading this sink's recordings back needs (each episode's teleop sidecar keeps it as ``sink``):
        e.g. the ROS 2 sink's joint renaming, so that ``teleop replay`` finds each joint's columns."""
        return {}

    def close(self) -> None:
        """Release the robot connection."""


BASE_COMMAND_NAMES = ("base.vx", "base.yaw_rate", "base.height")

SinkFactory = Callable[["SessionConfig", Any], CommandSink]
_SINKS: dict[str, SinkFactory] = {}


def register_sink(name: str, factory: SinkFactory) -> None:
    """Make ``sink: NAME`` in a session config build a sink with ``factory(config, robot_layout)``.

    ``robot_layout`` is the simulated robot for ``sim`` and None for others (a real robot has its own).
    """
    if name in _SINKS:
        raise ValueError(f"command sink {name!r} is already registered")
    _SINKS[name] = factory


def make_sink(name: str, config: SessionConfig, robot: Any) -> CommandSink:
    if name == "ros2" and "ros2" not in _SINKS:
        with contextlib.suppress(ImportError):
            importlib.import_module("roboreward.hardware.teleop_sink")  # registers 'ros2' when the bridge has one
    if name not in _SINKS:
        hint = (
            "; the ROS 2 bridge (roboreward.hardware) does not provide a teleoperation command sink yet: "
            "use sink: sim, or register one with roboreward.teleop.session.register_sink('ros2', factory)"
            if name == "ros2"
            else ""
        )
        raise ConfigError(f"sink: unknown command sink {name!r}; registered: {sorted(_SINKS)}{hint}")
    return _SINKS[name](config, robot)


class SimulatedRobotSink(CommandSink):
    """Commands to a MuJoCo :class:`~roboreward.teleop.robots.TeleopRobot` stepped in real time.

    ``send`` only stores the command (a reference assignment, safe from any thread); the main thread
    applies the newest one before each physics step in :meth:`advance`, so the robot is never touched
    by two threads at once. ``apply_latency`` holds, per applied command, the time from the command
    being made to the simulation using it.
    """

    name = "sim"

    def __init__(self, robot: Any, *, max_lag_s: float = 0.25, frame_size: tuple[int, int] = (128, 96)) -> None:
        self.robot = robot
        self.max_lag_s = max_lag_s
        self.frame_size = frame_size  # (width, height) of rendered snapshots
        self._render_data: Any = None
        self._renderers: dict[str, Any] = {}
        self._joint_names = list(robot.joint_names)
        self._has_base = robot_has_base(robot)
        self._lock = threading.Lock()
        self._pending: TeleopCommand | None = None
        self._hold_at: float | None = None  # set by hold(), taken by the next physics step
        self._held_at: float | None = None
        self._applied: TeleopCommand | None = None
        self._targets = np.asarray(robot.targets, dtype=np.float64).copy()
        self._base = LocoCommand(0.0, 0.0, _base_height(robot))
        self._next_step: float | None = None
        self.steps = 0
        self.skipped_s = 0.0  # simulated time dropped because the loop fell behind
        self.apply_latency: collections.deque[float] = collections.deque(maxlen=1 << 16)

    @property
    def joint_names(self) -> list[str]:
        return self._joint_names

    @property
    def has_base(self) -> bool:
        return self._has_base

    @property
    def state_names(self) -> list[str]:
        names = [f"{n}.pos" for n in self._joint_names]
        return names + list(BASE_POSE_NAMES) if self._has_base else names

    def send(self, command: TeleopCommand) -> None:
        with self._lock:
            self._pending = command

    def hold(self) -> None:
        with self._lock:
            self._hold_at = time.monotonic()

    def advance(self, now: float) -> int:
        robot = self.robot
        dt = float(robot.dt)
        if self._next_step is None:
            self._next_step = now
        if now - self._next_step > self.max_lag_s:  # a stall (e.g. a slow render): drop time, don't race
            self.skipped_s += now - self._next_step
            self._next_step = now
        n = 0
        while self._next_step <= now:
            self._apply_pending()
            if self._has_base:
                robot.set_base_command(self._base, dt)
            robot.step()
            self._next_step += dt
            n += 1
        self.steps += n
        return n

    def _apply_pending(self) -> None:
        with self._lock:
            command, self._pending = self._pending, None
            hold_at, self._hold_at = self._hold_at, None
        if hold_at is not None:
            self.robot.hold()
            self._targets = np.asarray(self.robot.targets, dtype=np.float64)
            self._held_at = hold_at
        if command is None:
            return
        # Targets made before the latest hold are stale (the device was already gone): keep holding.
        if command.targets is not None and (self._held_at is None or command.t > self._held_at):
            self._targets = self.robot.set_targets(command.targets)
        if command.base is not None:
            self._base = command.base
        self._applied = command
        self.apply_latency.append(time.monotonic() - command.t)

    def observe(self, cameras: Sequence[str]) -> Observation:
        """State now, and a snapshot of the simulation that :meth:`render_snapshot` renders later."""
        robot = self.robot
        state = np.asarray(robot.joint_positions(), dtype=np.float64)
        if self._has_base:
            state = np.concatenate([state, np.asarray(robot.base_pose(), dtype=np.float64)])
        d = robot.data
        snapshot = (d.qpos.copy(), d.mocap_pos.copy(), d.mocap_quat.copy())
        cams = tuple(cameras)
        return Observation(state=state, render=lambda: self.render_snapshot(snapshot, cams))

    def render_snapshot(self, snapshot: tuple[np.ndarray, ...], cameras: Sequence[str]) -> dict[str, np.ndarray]:
        """Frames of a simulation snapshot, drawn with this sink's own MjData and renderers.

        Call from one thread only (the session's frame worker): its GL contexts live there. The
        robot's model is only read, so the simulation keeps stepping meanwhile.
        """
        import mujoco

        from roboreward.envs.rendering import FrameRenderer, RenderOptions

        m = self.robot.model
        if self._render_data is None:
            self._render_data = mujoco.MjData(m)
        d = self._render_data
        d.qpos[:], d.mocap_pos[:], d.mocap_quat[:] = snapshot
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_camlight(m, d)
        frames = {}
        for camera in cameras:
            renderer = self._renderers.get(camera)
            if renderer is None:
                width, height = self.frame_size
                renderer = self._renderers[camera] = FrameRenderer(
                    m, RenderOptions(width=width, height=height, camera=camera)
                )
            frames[camera] = renderer.render(d)
        return frames

    def close_renderers(self) -> None:
        """Release the GL contexts of :meth:`render_snapshot` (from the thread that rendered)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def applied_action(self) -> tuple[np.ndarray, TeleopCommand | None]:
        action = self._targets
        if self._has_base:
            b = self._base
            action = np.concatenate([action, [b.vx, b.yaw_rate, b.height]])
        return np.asarray(action, dtype=np.float64), self._applied

    def close(self) -> None:
        self.close_renderers()
        self.robot.close()


register_sink(
    "sim",
    lambda config, robot: SimulatedRobotSink(
        robot, max_lag_s=config.max_sim_lag_s, frame_size=(config.record.width, config.record.height)
    ),
)


BASE_POSE_NAMES = ("base.x", "base.y", "base.yaw", "base.height")


def robot_has_base(robot: Any) -> bool:
    """True for a robot whose base the pedal moves (``base.type: kinematic`` in its teleop YAML)."""
    explicit = getattr(robot, "has_base", None)
    if explicit is not None:
        return bool(explicit)
    base = getattr(getattr(robot, "config", None), "base", None)
    return getattr(base, "type", None) == "kinematic"


def _base_height(robot: Any) -> float:
    return float(np.asarray(robot.base_pose(), dtype=np.float64)[3]) if robot_has_base(robot) else 0.0


# --------------------------------------------------------------------------------------------
# Latency accounting


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


# --------------------------------------------------------------------------------------------
# Buttons and keys


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


# --------------------------------------------------------------------------------------------
# Output


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
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())  # type: ignore[union-attr]
            finally:
                os.close(devnull)
            stream.flush()  # type: ignore[union-attr]  # what the failed write left buffered goes to /dev/null


def format_duration(seconds: float) -> str:
    """``7`` -> ``"7 s"``, ``125`` -> ``"2 min 5 s"``, ``inf`` -> ``"?"``."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60} s"


# --------------------------------------------------------------------------------------------
# Recording


TELEOP_DIR = "teleop"
_EPISODE_STEM = "episode-{index:06d}"
_MARKER = "recording.json"
_LOST = "lost.json"


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _parquet(columns: dict[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink, compression="snappy")
    return sink.getvalue().to_pybytes()


class EpisodeRecorder:
    """Episodes of a teleoperation session into a LeRobot v3.0 dataset plus the teleop sidecar files.

    :meth:`start`, then per frame :meth:`add_frame` and per drained batch :meth:`add_readings`, then
    :meth:`save` (or :meth:`discard`). :meth:`close` saves an episode in progress as interrupted.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        fps: int,
        cameras: Sequence[str],
        image_size: tuple[int, int],
        state_names: Sequence[str],
        action_names: Sequence[str],
        robot_type: str,
        task: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        from roboreward.datasets.lerobot_v3 import DatasetWriter

        self.root = Path(root)
        self.task = task
        self.fps = fps
        self.metadata = dict(metadata or {})
        self.writer = DatasetWriter.open_or_create(
            self.root, fps=fps, cameras=list(cameras), image_size=tuple(image_size), state_names=list(state_names),
            action_names=list(action_names), robot_type=robot_type,
        )
        self.dir = self.root / TELEOP_DIR
        self.lost_on_open = self._recover()
        self.recording = False
        self._reset()

    # -- state -----------------------------------------------------------------------------

    @property
    def num_episodes(self) -> int:
        return self.writer.num_episodes

    @property
    def frames(self) -> int:
        """Frames of the episode in progress."""
        return len(self._frame_t)

    def _reset(self) -> None:
        self._t0 = 0.0
        self._started_unix = 0.0
        self._pending: dict[str, Any] | None = None  # the newest frame, written once the next arrives
        self._frame_t: list[float] = []
        self._frame_held: list[bool] = []
        self._frame_sources: dict[str, list[int]] = {}
        self._readings: list[tuple[str, int, float, float, int, tuple[float, ...], int]] = []

    def _recover(self) -> list[dict[str, Any]]:
        """Clean up after a killed session: stale sidecars, and a lost episode's marker -> lost.json."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()
        committed = self.writer.num_episodes
        for path in self.dir.glob("episode-*"):
            m = re.match(r"episode-(\d+)\.", path.name)
            if m and int(m.group(1)) >= committed:  # written just before a kill, never committed
                path.unlink()
        marker = self.dir / _MARKER
        if not marker.is_file():
            return []
        try:
            entry = json.loads(marker.read_text())
        except json.JSONDecodeError:
            entry = {}
        entry["noticed_unix"] = time.time()
        lost = read_lost_episodes(self.root) + [entry]
        atomic_write(self.dir / _LOST, _json(lost))
        marker.unlink()
        return [entry]

    # -- recording -------------------------------------------------------------------------

    def start(self, t: float) -> None:
        if self.recording:
            raise RuntimeError("an episode is already being recorded; save or discard it first")
        self._reset()
        self.recording = True
        self._t0 = t
        self._started_unix = time.time()
        marker = {"episode_index": self.writer.num_episodes, "started_unix": self._started_unix, "pid": os.getpid(),
                  "task": self.task}
        atomic_write(self.dir / _MARKER, _json(marker))

    def add_frame(
        self, t: float, state: np.ndarray, action: np.ndarray, images: Mapping[str, np.ndarray], *, held: bool,
        sources: Mapping[str, int],
    ) -> None:
        if not self.recording:
            raise RuntimeError("add_frame() outside an episode; call start() first")
        self._flush_pending(done=False, success=False)
        self._pending = {"state": state, "action": action, "images": dict(images)}
        self._frame_t.append(t - self._t0)
        self._frame_held.append(bool(held))
        k = len(self._frame_t) - 1
        for name, t_us in sources.items():
            column = self._frame_sources.setdefault(name, [-1] * k)
            column.append(int(t_us))
        for column in self._frame_sources.values():
            if len(column) < k + 1:
                column.append(-1)

    def add_readings(self, device: str, readings: Sequence[Reading]) -> None:
        """Every reading of ``device`` that arrived since the last call (they land in the current frame)."""
        if not self.recording:
            return
        frame = max(len(self._frame_t) - 1, 0)
        t0 = self._t0
        out = self._readings
        for r in readings:
            if isinstance(r, ArmReading):
                values, buttons = r.angles, 0
            elif isinstance(r, GloveReading):
                values, buttons = tuple(float(c) for c in r.channels), 0
            elif isinstance(r, PedalReading):
                values, buttons = tuple(float(a) for a in r.axes), r.buttons
            else:  # pragma: no cover - the drivers only deliver these
                continue
            out.append((device, r.seq, r.t_device, r.t_received - t0, frame, values, buttons))

    def _flush_pending(self, *, done: bool, success: bool) -> None:
        if self._pending is None:
            return
        p, self._pending = self._pending, None
        self.writer.add_frame(state=p["state"], action=p["action"], images=p["images"], success=success, done=done)

    def save(self, *, success: bool, interrupted: bool = False, reason: str | None = None) -> int | None:
        """Write the episode (sidecar first, then the dataset's commit); its index, or None if it had no frames."""
        if not self.recording:
            raise RuntimeError("save() outside an episode")
        self.recording = False
        if not self._frame_t:
            self.writer.clear_episode()
            self._remove_marker()
            return None
        success = bool(success) and not interrupted
        self._flush_pending(done=True, success=success)
        index = self.writer.num_episodes
        self._write_sidecar(index, success=success, interrupted=interrupted, reason=reason)
        saved = self.writer.save_episode(task=self.task, success=success)
        assert saved == index
        self._remove_marker()
        self._reset()
        return index

    def discard(self) -> None:
        if not self.recording:
            return
        self.recording = False
        self._pending = None
        self.writer.clear_episode()
        self._remove_marker()
        self._reset()

    def close(self, reason: str = "the session ended") -> int | None:
        """Save an episode in progress as interrupted (``reason``), then release the dataset."""
        index = None
        try:
            if self.recording:
                index = self.save(success=False, interrupted=True, reason=reason)
        finally:
            self.writer.finalize()
        return index

    def _remove_marker(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / _MARKER).unlink()

    def _write_sidecar(self, index: int, *, success: bool, interrupted: bool, reason: str | None) -> None:
        import pyarrow as pa

        stem = _EPISODE_STEM.format(index=index)
        n = len(self._frame_t)
        frames: dict[str, Any] = {
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "t": pa.array(np.asarray(self._frame_t, dtype=np.float64)),
            "held": pa.array(np.asarray(self._frame_held, dtype=bool)),
        }
        for name, column in sorted(self._frame_sources.items()):
            frames[f"source.{name}"] = pa.array(np.asarray(column, dtype=np.int64))
        rows = self._readings
        readings = {
            "device": pa.array([r[0] for r in rows], type=pa.string()),
            "seq": pa.array([r[1] for r in rows], type=pa.int32()),
            "t_device": pa.array([r[2] for r in rows], type=pa.float64()),
            "t_received": pa.array([r[3] for r in rows], type=pa.float64()),
            "frame_index": pa.array([r[4] for r in rows], type=pa.int64()),
            "values": pa.array([list(r[5]) for r in rows], type=pa.list_(pa.float64())),
            "buttons": pa.array([r[6] for r in rows], type=pa.int32()),
        }
        meta = {
            "episode_index": index,
            "length": n,
            "task": self.task,
            "success": success,
            "interrupted": interrupted,
            "reason": reason,
            "started_unix": self._started_unix,
            "duration_s": float(self._frame_t[-1] + 1.0 / self.fps),
            "fps": self.fps,
            **self.metadata,
        }
        atomic_write(self.dir / f"{stem}.frames.parquet", _parquet(frames))
        atomic_write(self.dir / f"{stem}.readings.parquet", _parquet(readings))
        atomic_write(self.dir / f"{stem}.json", _json(meta))


# --------------------------------------------------------------------------------------------
# Reading what was recorded


@dataclass(frozen=True)
class DeviceReadings:
    """Every reading of one device during an episode (arrays of equal length)."""

    seq: np.ndarray  # int32
    t_device: np.ndarray  # seconds, device clock
    t_received: np.ndarray  # seconds since the episode started, host clock
    frame_index: np.ndarray  # int64: the dataset frame being recorded when it arrived
    values: np.ndarray  # float64 [N, n]: raw joint angles / glove channels / pedal axes
    buttons: np.ndarray  # int32 (pedal), 0 otherwise

    def __len__(self) -> int:
        return len(self.seq)


@dataclass(frozen=True)
class TeleopEpisode:
    """The teleoperation side of one recorded episode (the dataset holds state, action and video)."""

    index: int
    success: bool
    interrupted: bool
    reason: str | None
    meta: dict[str, Any]
    frame_time: np.ndarray  # [T] seconds since the episode started (host clock)
    held: np.ndarray  # [T] bool: the robot was held (a device gone) during this frame
    sources: dict[str, np.ndarray]  # device -> [T] device timestamp (µs) behind the frame's command; -1: none
    readings: dict[str, DeviceReadings]


def read_lost_episodes(root: str | Path) -> list[dict[str, Any]]:
    """Episodes a killed session could not save (from ``teleop/lost.json``); [] if none."""
    path = Path(root) / TELEOP_DIR / _LOST
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data) if isinstance(data, list) else []


class TeleopDataset:
    """A dataset recorded by the session: the LeRobot reader plus each episode's teleop sidecar.

    ``interrupted_episodes`` lists the indices of episodes cut short by an unplug, a crash or the end
    of the session; ``lost_episodes`` the ones a killed session could not save at all.
    """

    def __init__(self, root: str | Path) -> None:
        from roboreward.datasets.lerobot_v3 import DatasetReader

        self.root = Path(root)
        self.reader = DatasetReader(self.root)

    def __len__(self) -> int:
        return len(self.reader)

    def meta(self, index: int) -> dict[str, Any]:
        self.reader._row(index)  # the dataset's own bounds check and message
        path = self.root / TELEOP_DIR / (_EPISODE_STEM.format(index=index) + ".json")
        if not path.is_file():
            from roboreward.datasets.lerobot_v3 import DatasetError

            raise DatasetError(
                f"{path} is missing: episode {index} of {self.root} was not recorded by `roboreward teleop run` "
                "(or its teleop files were deleted)"
            )
        return json.loads(path.read_text())

    def is_interrupted(self, index: int) -> bool:
        return bool(self.meta(index).get("interrupted", False))

    @property
    def interrupted_episodes(self) -> list[int]:
        out = []
        for i in range(len(self)):
            with contextlib.suppress(ValueError):
                if self.is_interrupted(i):
                    out.append(i)
        return out

    @property
    def lost_episodes(self) -> list[dict[str, Any]]:
        return read_lost_episodes(self.root)

    def episode(self, index: int) -> TeleopEpisode:
        import pyarrow.parquet as pq

        meta = self.meta(index)
        stem = self.root / TELEOP_DIR / _EPISODE_STEM.format(index=index)
        frames = pq.read_table(f"{stem}.frames.parquet").to_pydict()
        sources = {
            key.removeprefix("source."): np.asarray(values, dtype=np.int64)
            for key, values in frames.items()
            if key.startswith("source.")
        }
        table = pq.read_table(f"{stem}.readings.parquet")
        devices = table.column("device").to_pylist()
        readings: dict[str, DeviceReadings] = {}
        for name in sorted(set(devices)):
            mask = np.asarray([d == name for d in devices])
            rows = np.flatnonzero(mask)
            values = table.column("values").to_pylist()

            def col(key: str, dtype: Any, rows: np.ndarray = rows) -> np.ndarray:
                return np.asarray(table.column(key).to_numpy(zero_copy_only=False), dtype=dtype)[rows]

            readings[name] = DeviceReadings(
                seq=col("seq", np.int32),
                t_device=col("t_device", np.float64),
                t_received=col("t_received", np.float64),
                frame_index=col("frame_index", np.int64),
                values=np.asarray([values[i] for i in rows], dtype=np.float64),
                buttons=col("buttons", np.int32),
            )
        if len(frames["t"]) != self.reader.episodes[index].length:
            from roboreward.datasets.lerobot_v3 import DatasetError

            raise DatasetError(
                f"{stem}.frames.parquet has {len(frames['t'])} frames but episode {index} has "
                f"{self.reader.episodes[index].length}; the dataset is damaged"
            )
        return TeleopEpisode(
            index=index,
            success=bool(meta.get("success", False)),
            interrupted=bool(meta.get("interrupted", False)),
            reason=meta.get("reason"),
            meta=meta,
            frame_time=np.asarray(frames["t"], dtype=np.float64),
            held=np.asarray(frames["held"], dtype=bool),
            sources=sources,
            readings=readings,
        )


# --------------------------------------------------------------------------------------------
# The command path


@dataclass
class _Slot:
    """One connected device and where its readings go."""

    name: str
    kind: str  # "exo", "glove" or "pedal"
    side: str | None
    driver: SerialTeleoperator
    index: np.ndarray | None  # entries of the target vector it drives (arms, hands)
    connected: bool = True
    last: Reading | None = None
    suspect_since: float | None = None  # when the driver first reported it gone (not yet confirmed)


class CommandLoop:
    """The hot path, in its own thread: newest readings -> :class:`TeleopCommand` -> sink; unplug -> hold.

    Every ``poll_s`` it checks each driver: a new reading updates that device's part of the target
    vector (exoskeleton: calibrated angles clamped to the arm's limits; glove: retargeted hand joints;
    pedal: the rate-limited walking command) and a command goes to the sink at once. Latency per
    reading = the moment ``sink.send`` returned - the reading's ``t_received``.
    """

    def __init__(
        self,
        slots: Sequence[_Slot],
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
        fresh: list[tuple[_Slot, Reading]] = []
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

    def _take(self, slot: _Slot, reading: Reading, now: float) -> None:
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


# --------------------------------------------------------------------------------------------
# The session


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
    apply_latency_ms: tuple[float, float, float]

    def format(self) -> str:
        lines = [f"{'device':<12} {'rate Hz':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'rejected':>8}"
                 "  (latency: reading -> command)"]
        for d in self.devices:
            p50, p99, mx = d.latency_ms
            state = "" if d.connected else "  UNPLUGGED"
            lines.append(f"{d.name:<12} {d.rate_hz:8.1f} {p50:7.3f} {p99:7.3f} {mx:7.2f} {d.rejected:8d}{state}")
        p50, p99, _ = self.apply_latency_ms
        if not math.isnan(p50):
            lines.append(f"command -> simulation step: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        lines.append(
            f"{self.seconds:.1f} s, {self.commands} commands, held {self.holds}x, episodes saved "
            f"{self.episodes_saved} ({self.episodes_interrupted} interrupted), frames {self.frames_recorded} "
            f"({self.frames_late} late, {self.render_backlog} waiting)"
            + (f", simulation skipped {self.sim_skipped_s:.2f} s" if self.sim_skipped_s else "")
        )
        return "\n".join(lines)


def _percentiles_ms(values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    v = np.asarray(values, dtype=np.float64)
    if not len(v):
        return (math.nan,) * 3
    p50, p99 = np.percentile(v, [50, 99])
    return float(p50 * 1e3), float(p99 * 1e3), float(v.max() * 1e3)


class _Worker:
    """One thread that runs submitted functions in order: the recorder and the frame renderers live in it.

    The main loop only submits (never waits), so rendering, video encoding and saving never delay
    the simulation or the status of the devices. An exception stops the work and is re-raised by
    :meth:`check` in the main thread; :meth:`cancel` stops it on purpose. Either way the jobs still
    queued are dropped, except cleanup jobs (releasing what the thread made, e.g. GL contexts).
    """

    def __init__(self, name: str, nice: int = 0) -> None:
        self._queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.cancelled = False
        self.nice = nice
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any], *, cleanup: bool = False) -> None:
        """Queue ``fn``; a ``cleanup`` job runs even after a failure or :meth:`cancel`."""
        if not cleanup:
            self.check()
        self._queue.put((fn, cleanup))

    def cancel(self) -> None:
        """Drop the jobs still queued (but cleanup jobs); the one running now finishes."""
        self.cancelled = True

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the thread to end (after :meth:`stop`); True if it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the worker after everything submitted before it; wait for and return its result."""
        box: list[Any] = []
        self.submit(lambda: box.append(fn()))
        self.flush()
        return box[0]

    def flush(self) -> None:
        self._queue.join()
        self.check()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"recording failed: {self.error!r}") from self.error

    def stop(self, on_wait: Callable[[], Any] | None = None, every_s: float = 0.25) -> None:
        """Finish everything submitted, then end the thread; ``on_wait()`` runs every ``every_s`` meanwhile."""
        self._queue.put(None)
        while not self.join(every_s):
            if on_wait is not None:
                on_wait()

    def _run(self) -> None:
        if self.nice:
            # Linux: nice is per thread, and threads (llvmpipe's rasterisers) and processes (ffmpeg)
            # started from here inherit it, so rendering yields the CPU to the devices' readers.
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                fn, cleanup = item
                if cleanup or (self.error is None and not self.cancelled):  # else drain without running
                    fn()
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread by check()
                if self.error is None:
                    self.error = e
            finally:
                self._queue.task_done()


@dataclass(frozen=True)
class _PendingSave:
    """An episode the operator ended whose frames the worker has not all rendered and saved yet.

    ``first`` and ``last`` count frames handed to the worker (``TeleopSession._frames_submitted``):
    the episode's frames are numbers ``first .. last - 1``, and the worker takes frames in order.
    """

    index: int
    first: int
    last: int

    @property
    def frames(self) -> int:
        return self.last - self.first


# Samples of the worker's progress older than this do not count towards its current rate.
_RATE_WINDOW_S = 5.0


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
        self._started = False
        self._quit = False
        self._end_reason = "the session ended"
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self.drivers: dict[str, SerialTeleoperator] = {}
        self.recorder: EpisodeRecorder | None = None
        self._worker: _Worker | None = None
        self._recording = False  # the main thread's view; the recorder (in the worker) follows in order
        self._readings: dict[str, list[Reading]] = {}  # drained since the last recorded frame
        self._episode = 0  # index the next episode will have (the main thread's count)
        self._episodes_saved = 0
        self._episodes_interrupted = 0
        self._frames_recorded = 0
        # Save progress. The main thread counts frames handed to the worker, the worker the ones it has
        # rendered and added (each counter written by one thread only).
        self._frames_submitted = 0
        self._frames_done = 0
        self._episode_first = 0  # _frames_submitted when the episode being recorded started
        self._saves: collections.deque[_PendingSave] = collections.deque()  # oldest first
        self._progress: collections.deque[tuple[float, int]] = collections.deque()  # (time, _frames_done)
        self.keyboard: KeyboardControl | None = None
        self._viewer: Any = None
        self._saved_switch: float | None = None
        self.robot = robot
        self.sink: CommandSink | None = None
        self.slots: list[_Slot] = []
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
            self.robot = make_teleop_robot(config.robot, cameras=cameras, size=(rec.width, rec.height))
        robot = self.robot
        self.has_base = robot_has_base(robot)
        self.cameras = list(rec.cameras) if rec.cameras else list(robot.cameras)
        index = {n: i for i, n in enumerate(robot.joint_names)}

        slots = []
        for name, device in config.devices.items():
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
            slots.append(_Slot(name=name, kind=kind, side=side, driver=driver, index=idx))  # type: ignore[arg-type]

        mapper = None
        if self.has_base and any(s.kind == "pedal" for s in slots):
            from dataclasses import replace

            mapping = config.pedal_mapping
            lo, hi = robot.height_range
            stand = float(np.clip(_base_height(robot), lo, hi))
            low = float(np.clip(mapping.min_height, lo, stand))
            mapper = PedalMapper(replace(mapping, stand_height=stand, min_height=low))
        self.mapper = mapper
        self.slots = slots
        self.sink = make_sink(config.sink, config, robot)
        sink_cameras = getattr(self.sink, "cameras", None)
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
                metadata={"robot": robot.name, "devices": devices_meta, "joint_names": robot.joint_names,
                          "sink": {"type": config.sink, **self.sink.recording_metadata()}},
            )
            self._episode = self.recorder.num_episodes
            for entry in self.recorder.lost_on_open:
                self.print(
                    f"note: a previous session was killed while recording episode {entry.get('episode_index')}; "
                    f"it is listed in {Path(rec.root) / TELEOP_DIR / _LOST}"
                )
            self._worker = _Worker("teleop-recorder", nice=rec.worker_nice)
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
        return [p.index for p in list(self._saves)]

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
                self._sample_progress(now)
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
            if self._recording:
                attempt(lambda: self._stop_episode(success=False, interrupted=True, reason=self._end_reason,
                                                   announce=False))
            saves = list(self._saves)
            if saves:
                several = len(saves) > 1
                self.print(f"{self._end_reason}: ending once episode{'s' if several else ''} "
                           f"{', '.join(str(p.index) for p in saves)} {'are' if several else 'is'} saved "
                           f"({'episode ' + str(saves[0].index) + ': ' if several else ''}{self._save_state(saves[0])})")
            if isinstance(self.sink, SimulatedRobotSink):  # GL contexts close in the thread that made them
                worker.submit(self.sink.close_renderers, cleanup=True)
            next_status = [0.0 if math.isfinite(self._status_period()) else math.inf]

            def show_progress() -> None:
                now = time.monotonic()
                self._sample_progress(now)
                if now >= next_status[0]:
                    self.console.status(self._save_progress() or "closing the dataset ...")
                    next_status[0] = now + self._status_period()

            try:
                worker.stop(on_wait=show_progress)
            except KeyboardInterrupt as e:  # give up the saves, and say at once which episodes are lost
                errors.append(e)
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
                        f"{self.recorder.root} lists the one being written in {TELEOP_DIR}/{_LOST}"  # type: ignore[union-attr]
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
        if self.sink is not None and not isinstance(self.sink, SimulatedRobotSink):
            attempt(self.sink.close)  # a connection of the sink's own (ROS 2), whoever built the robot
        if self._own_robot and self.robot is not None:
            attempt(self.sink.close if isinstance(self.sink, SimulatedRobotSink) else self.robot.close)
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
                self._episode_first = self._frames_submitted
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
        pending = None
        if self._frames_submitted > self._episode_first:
            pending = _PendingSave(self._episode, self._episode_first, self._frames_submitted)
            self._episode += 1
            self._saves.append(pending)

        def save() -> None:
            try:
                index = recorder.save(success=success, interrupted=interrupted, reason=reason)
            finally:
                if pending is not None:
                    self._saves.popleft()
            self._saved(index, interrupted=interrupted, success=success, reason=reason)

        self._worker.submit(save)
        if announce and pending is not None:
            waiting = pending.last - max(self._frames_done, pending.first)
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

        def record() -> None:
            if recorder.recording:
                recorder.add_frame(now, observation.state, action, observation.frames(), held=held, sources=sources)
                for name, batch in readings.items():  # they arrived while this frame was the newest
                    recorder.add_readings(name, batch)
            self._frames_done += 1

        self._worker.submit(record)
        self._frames_submitted += 1
        self._frames_recorded += 1

    def _open_viewer(self) -> None:
        mode = self.config.viewer
        display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        if mode == "off" or (mode == "auto" and not display):
            return
        if not display:
            raise ConfigError("viewer: 'on' needs a display (DISPLAY is not set); use viewer: auto or off")
        if not hasattr(self.robot, "model") or not isinstance(self.sink, SimulatedRobotSink):
            self.print("no viewer: the robot is not a local MuJoCo simulation")
            return
        import mujoco.viewer

        self._viewer = mujoco.viewer.launch_passive(self.robot.model, self.robot.data, show_left_ui=False,
                                                    show_right_ui=False)

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
        if isinstance(self.sink, SimulatedRobotSink):
            self.sink.apply_latency.clear()
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
        apply = sink.apply_latency if isinstance(sink, SimulatedRobotSink) else []
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
            sim_skipped_s=sink.skipped_s if isinstance(sink, SimulatedRobotSink) else 0.0,
            apply_latency_ms=_percentiles_ms(list(apply)),
        )

    def _status_period(self) -> float:
        """Seconds between status updates: ``status_interval_s``, at most 0.5 s when redrawn in place."""
        every = self.config.status_interval_s
        if not every:
            return math.inf
        return min(every, 0.5) if self.console.interactive else every

    def _sample_progress(self, now: float) -> None:
        """Note how many frames the worker has finished, at most every 0.25 s, for its rate."""
        samples = self._progress
        if samples and now - samples[-1][0] < 0.25:
            return
        samples.append((now, self._frames_done))
        while len(samples) > 2 and now - samples[1][0] >= _RATE_WINDOW_S:
            samples.popleft()

    def _render_rate(self) -> float | None:
        """Frames the worker finished per second over the last few seconds; None until it can tell."""
        samples = self._progress
        if len(samples) < 2:
            return None
        (t0, n0), (t1, n1) = samples[0], samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 >= 0.5 else None

    def _save_progress(self) -> str | None:
        """The oldest unfinished save, in words: ``saving episode 3: 45/150 frames rendered, 7.1 frames/s, 15 s
        left``; None if there is none."""
        saves = list(self._saves)
        if not saves:
            return None
        more = f" (then {len(saves) - 1} more)" if len(saves) > 1 else ""
        return f"saving episode {saves[0].index}: {self._save_state(saves[0])}{more}"

    def _save_state(self, save: _PendingSave) -> str:
        """How far ``save`` is: frames rendered of its total, the rate and the time left, or writing its files."""
        done = min(max(self._frames_done - save.first, 0), save.frames)
        if done >= save.frames:
            return f"{save.frames} frames rendered, writing its files"
        rate = self._render_rate()
        timing = ""
        if rate is not None:
            left = (save.frames - done) / rate if rate > 0 else math.inf
            timing = f", {rate:.1f} frames/s, {format_duration(left)} left"
        return f"{done}/{save.frames} frames rendered{timing}"

    def _status_line(self) -> str:
        parts = [f"REC episode {self._episode}" if self._recording else "idle"]
        progress = self._save_progress()
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
        behind = self._frames_submitted - self._frames_done
        if self._recording and progress is None and behind > 2 * self.config.record.fps:
            rate = self._render_rate()
            pace = f" at {rate:.1f} frames/s" if rate is not None else ""
            parts.append(f"rendering {behind} frames behind{pace} (recording at {self.config.record.fps})")
        return " | ".join(parts)


def _reason_for(exc_type: type[BaseException], exc: BaseException | None) -> str:
    if issubclass(exc_type, KeyboardInterrupt):
        return "the session was interrupted (Ctrl-C)"
    return f"the session crashed: {exc_type.__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# Simulated cockpit (no hardware)


def simulated_cockpit(
    robot: Any,
    names: Sequence[str] | None = None,
    *,
    rate_hz: float = 250.0,
    seed: int = 0,
    noise: bool = True,
    pedal_motion: Callable[[float], Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Simulated devices on ptys for ``robot``: its arms' exoskeletons, its hands' gloves and a pedal.

    Arms move slowly (0.1-0.4 Hz) around the middle of each joint's range, within a quarter of it, so
    the identity calibration keeps every command inside the limits; gloves open and close; the pedal
    presses forward gently now and then (no buttons: record with the keyboard). Not started.
    """
    from roboreward.teleop.simulated import SimulatedExoskeletonArm, SimulatedGlove, SimulatedPedal

    if names is None:
        names = [f"exo_{s}" for s in robot.arm_joints] + [f"glove_{s}" for s in robot.hand_joints]
        if robot_has_base(robot):
            names.append("pedal")
    rng = np.random.default_rng(seed)
    devices: dict[str, Any] = {}
    for i, name in enumerate(names):
        kind, side = parse_device_name(name)
        if kind == "exo":
            limits = np.asarray(robot.arm_limits(side), dtype=np.float64)
            devices[name] = SimulatedExoskeletonArm(
                side=side, n_joints=len(limits), rate_hz=rate_hz, noise=0.001 if noise else 0.0, seed=seed + i,
                motion=arm_motion(limits, rng),
            )
        elif kind == "glove":
            devices[name] = SimulatedGlove(side=side, rate_hz=rate_hz, noise=3.0 if noise else 0.0, seed=seed + i)
        else:
            motion = pedal_motion or _gentle_pedal
            devices[name] = SimulatedPedal(rate_hz=rate_hz, noise=2.0 if noise else 0.0, seed=seed + i, n_buttons=0,
                                           motion=motion)
    return devices


def arm_motion(limits: np.ndarray, rng: np.random.Generator) -> Callable[[float], np.ndarray]:
    """Slow sinusoids around the middle of each joint's range ``[J, 2]``, within a quarter of it."""
    lo, hi = limits[:, 0], limits[:, 1]
    span = np.where(np.isfinite(hi - lo), hi - lo, 2 * math.pi)
    mid = np.where(np.isfinite(lo + hi), (lo + hi) / 2, 0.0)
    amp = np.minimum(0.25 * span, 0.6)
    freq = rng.uniform(0.1, 0.4, len(lo))
    phase = rng.uniform(0, 2 * math.pi, len(lo))

    def motion(t: float) -> np.ndarray:
        return mid + amp * np.sin(2 * math.pi * freq * t + phase)

    return motion


def _gentle_pedal(t: float) -> np.ndarray:
    forward = 1500.0 * max(0.0, math.sin(2 * math.pi * 0.05 * t))  # walk forward for 10 s of every 20
    return np.array([forward, 0.0, 0.0, 0.0])


__all__ = [
    "BASE_COMMAND_NAMES",
    "BASE_POSE_NAMES",
    "ButtonWatcher",
    "ButtonsConfig",
    "CommandLoop",
    "CommandSink",
    "Console",
    "DEVICE_NAMES",
    "DeviceReadings",
    "EpisodeRecorder",
    "KeyboardControl",
    "KeysConfig",
    "LatencyTracker",
    "RecordConfig",
    "RosSinkConfig",
    "SessionConfig",
    "SessionStats",
    "SimulatedRobotSink",
    "TeleopCommand",
    "TeleopDataset",
    "TeleopEpisode",
    "TeleopSession",
    "arm_motion",
    "device_config",
    "format_duration",
    "make_sink",
    "parse_device_name",
    "read_lost_episodes",
    "register_sink",
    "simulated_cockpit",
]
