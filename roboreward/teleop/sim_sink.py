"""``sink: sim`` (the default): the session's commands move the teleop robot's MuJoCo model, stepped here.

The main thread steps the simulation in real time (:meth:`SimulatedRobotSink.advance`, one control
step of ``robot.dt`` at a time); the command thread only stores the newest command, which is applied
before the next step, so the model is never touched by two threads at once. A simulation that falls
further behind real time than ``sink.max_lag_s`` (a stall) drops the time instead of racing to catch
up, and counts it (``skipped_s``). A walking robot that falls (:attr:`TeleopRobot.fallen`) is stood up
again at the start, its arms at their start pose until the next command, and counted (``falls``).

Recording never waits for a renderer: :meth:`SimulatedRobotSink.observe` takes a snapshot of the
simulation (positions and mocap poses), and the session's recording thread renders it later with
the sink's own ``MjData`` and renderers, while the simulation steps on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from roboreward.config import bounded
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.dataset import BASE_POSE_NAMES
from roboreward.teleop.sinks import CommandSink, Observation, SinkConfig, TeleopCommand


class SimulatedRobotSink(CommandSink):
    """Commands to a MuJoCo :class:`~roboreward.teleop.robots.TeleopRobot` stepped in real time.

    ``send`` only stores the command (a reference assignment, safe from any thread); the main thread
    applies the newest one before each physics step in :meth:`advance`. ``apply_latency`` holds, per
    applied command, the time from the command being made to the simulation using it. The robot is
    the caller's: :meth:`close` releases the sink's renderers only.
    """

    name = "sim"
    applied_at = "simulation step"

    def __init__(self, robot: Any, *, max_lag_s: float = 0.25, frame_size: tuple[int, int] = (128, 96)) -> None:
        super().__init__()
        self.robot = robot
        self.max_lag_s = max_lag_s
        self.frame_size = frame_size  # (width, height) of rendered snapshots
        self._render_data: Any = None
        self._renderers: dict[str, Any] = {}
        self._joint_names = list(robot.joint_names)
        self._has_base = bool(robot.has_base)
        self._lock = threading.Lock()
        self._pending: TeleopCommand | None = None
        self._hold_at: float | None = None  # set by hold(), taken by the next physics step
        self._held_at: float | None = None
        self._applied: TeleopCommand | None = None
        self._targets = np.asarray(robot.targets, dtype=np.float64).copy()
        height = float(np.asarray(robot.base_pose(), dtype=np.float64)[3]) if self._has_base else 0.0
        self._base = LocoCommand(0.0, 0.0, height)
        self._next_step: float | None = None
        self.steps = 0
        self.skipped_s = 0.0

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
            if robot.fallen:
                robot.reset()
                self._targets = np.asarray(robot.targets, dtype=np.float64).copy()
                self.falls += 1
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

        Call from one thread only (the session's recording thread): its GL contexts live there. The
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

    def open_viewer(self) -> Any:
        """MuJoCo's passive viewer on the simulated robot (the main thread syncs it after each step)."""
        import mujoco.viewer

        return mujoco.viewer.launch_passive(self.robot.model, self.robot.data, show_left_ui=False,
                                            show_right_ui=False)

    def close(self) -> None:
        self.close_renderers()


@SinkConfig.register_subclass("sim")
@dataclass(kw_only=True)
class SimSinkConfig(SinkConfig):
    """``sink: {type: sim}``: the teleop robot's MuJoCo model, stepped by the session in real time."""

    max_lag_s: float = bounded(0.25, "a simulation further behind real time than this skips ahead", gt=0.0)

    def build(self, robot: Any, *, frame_size: tuple[int, int] = (128, 96)) -> SimulatedRobotSink:
        return SimulatedRobotSink(robot, max_lag_s=self.max_lag_s, frame_size=frame_size)


__all__ = ["SimSinkConfig", "SimulatedRobotSink"]
