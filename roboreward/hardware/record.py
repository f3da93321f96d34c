"""``roboreward record --robot ROBOT``: record a robot's state, commands and camera from ROS 2 as demonstrations.

::

    roboreward record --robot franka --out demos/franka --task "reach the cup" --episodes 10 --episode-seconds 20
    roboreward record --robot franka state.image.width=64 state.image.height=64 --out demos/small --domain-id 7

The result is a dataset in the project's demonstration format (LeRobot v3.0 layout, written by
:class:`~roboreward.datasets.lerobot_v3.DatasetWriter`: kill-safe, appendable, readable by
``DatasetReader`` and LeRobot), so reward models and policies learn from real episodes exactly as from
scripted ones.

**What a frame is.** Recording is clocked by the *commands*: each command message on the robot's
command topic (from ``roboreward deploy``, a teleoperation node, a ROS 2 controller) makes one frame,
pairing the command with the state it answered — the newest state at the moment the command arrived,
which is the state a policy at the control rate acted on:

- ``observation.state``: the robot's observation vector (``RobotConfig.observation_from_state``:
  the terms of the robot file, e.g. joint positions and velocities, in the file's joint order);
- ``action``: the command as the policy's action in ``[-1, 1]`` (``RobotConfig.action_from_command``),
  so a policy trained on the dataset outputs what the robot file maps to commands;
- ``observation.images.<camera>``: the newest camera frame (cameras are slower than control rates,
  so a frame repeats until the next arrives);
- ``next.done`` on the last frame of each episode; reward 0 and success false (a real robot has no
  reward: the reward models are what provide it).

The dataset's fps is the robot's control rate. An episode ends after ``--episode-seconds`` of frames
or when commands pause for ``--idle-seconds``; the recorder stops after ``--episodes`` episodes,
``--duration`` seconds or a signal, saving the episode in progress (a ``kill -9`` loses only that one).
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.errors import ConfigError
from roboreward.hardware.robot import OBSERVATION_TERMS, RobotConfig, load_robot_config
from roboreward.signals import on_signals

NODE_NAME = "roboreward_record"
QUEUE_FRAMES = 2000  # frames waiting for the encoder (40 s at 50 Hz); more and the oldest are dropped


def state_names(robot: RobotConfig) -> list[str]:
    """One name per entry of the observation vector: ``panda_joint1.pos``, ``imu_orientation.0``, ..."""
    suffix = {"joint_position": "pos", "joint_velocity": "vel", "joint_effort": "effort"}
    names: list[str] = []
    for term in robot.observation:
        if OBSERVATION_TERMS[term][1] is None:
            names += [f"{joint}.{suffix[term]}" for joint in robot.joint_names]
        else:
            names += [f"{term}.{i}" for i in range(OBSERVATION_TERMS[term][1])]  # type: ignore[arg-type]
    return names


def action_names(robot: RobotConfig) -> list[str]:
    if robot.action_kind == "twist":
        return ["linear_x", "angular_z"]
    return [f"{joint}.{robot.control.mode}" for joint in robot.joint_names]


@dataclass
class _Frame:
    state: np.ndarray
    action: np.ndarray
    image: np.ndarray | None
    received_at: float


class RosRecorder:
    """Subscribes a robot's state, camera and command topics and writes command-clocked frames (see the module doc).

    :param robot: the robot description (name, path or :class:`RobotConfig`); it must have a camera.
    :param out: the dataset folder (created, or appended to when it holds a dataset recorded the same way).
    :param task: the episodes' task sentence.
    """

    def __init__(
        self,
        robot: RobotConfig | str | Path,
        out: str | Path,
        *,
        task: str,
        domain_id: int | None = None,
        discovery: str = "localhost",
    ) -> None:
        from roboreward.datasets.lerobot_v3 import DatasetWriter
        from roboreward.hardware.ros import (
            MESSAGE_CLASSES,
            JointOrder,
            RosSession,
            StateSubscriber,
            qos_profile,
        )

        self.robot = robot = load_robot_config(robot)
        image = robot.state.image
        if image is None:
            raise ConfigError(
                f"robot {robot.name!r} has no camera (state.image); the demonstration format stores video, so "
                "add the camera topic to the robot file"
            )
        if not isinstance(task, str) or not task.strip():
            raise ConfigError(f"--task {task!r} must describe the episodes in words, e.g. 'reach the cup'")
        fps = robot.control.rate_hz
        if abs(fps - round(fps)) > 1e-9:
            raise ConfigError(f"control.rate_hz: {fps} is not a whole number; the dataset's fps must be an integer")
        self.task = task
        self.camera = image.camera or "camera"
        self.image_shape = (image.height, image.width, 3)
        self.fps = int(round(fps))
        self.writer = DatasetWriter.open_or_create(
            out,
            fps=self.fps,
            cameras=[self.camera],
            image_size=(image.height, image.width),
            state_names=state_names(robot),
            action_names=action_names(robot),
            robot_type=robot.name,
        )
        self.queue: queue.Queue[_Frame | BaseException] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.counts = {"frames": 0, "episodes": 0, "no_state": 0, "no_image": 0, "bad_state": 0, "bad_command": 0,
                       "dropped": 0}
        self._stop = threading.Event()
        self._order = JointOrder(robot)
        try:
            self.session = RosSession(NODE_NAME, domain_id=domain_id, discovery=discovery, spin=False)
            self.states = StateSubscriber(self.session.node, robot)
            cmd = robot.command
            assert cmd is not None and cmd.type is not None  # load_robot_config checked it
            self.session.node.create_subscription(
                MESSAGE_CLASSES[cmd.type], cmd.topic, self._on_command, qos_profile(cmd.qos)
            )
        except BaseException:
            self.writer.finalize()
            raise
        self._spinner = threading.Thread(target=self._spin, name="record-ros", daemon=True)

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException, ShutdownException

        while not self._stop.is_set() and self.session.context.ok():
            try:
                self.session.executor.spin_once(timeout_sec=0.05)
            except (ExternalShutdownException, ShutdownException):
                break

    def _on_command(self, msg: Any) -> None:
        """A command arrived (executor thread): pair it with the newest state and camera frame."""
        from roboreward.hardware.ros import targets_from_command

        now = time.monotonic()
        try:
            targets = targets_from_command(self.robot, msg, self._order)
        except ValueError:
            self.counts["bad_command"] += 1
            return
        state = self.states.state
        if state is None:
            self.counts["no_state"] += 1
            return
        if state.image is None:
            self.counts["no_image"] += 1
            return
        image = state.image.data
        if image.shape != self.image_shape:
            topic = self.robot.state.image.topic  # type: ignore[union-attr]
            self._put(ValueError(
                f"camera frames on {topic} are {image.shape[1]}x{image.shape[0]}, but the robot "
                f"file says {self.image_shape[1]}x{self.image_shape[0]}; record with the same state.image.width/height "
                "as the camera (or sim-robot) uses"
            ))
            return
        try:
            observation = self.robot.observation_from_state(state)
        except ValueError:
            self.counts["bad_state"] += 1
            return
        if not np.all(np.isfinite(targets)):
            self.counts["bad_command"] += 1
            return
        action = self.robot.action_from_command(targets)
        self._put(_Frame(observation, action, image.copy(), now))

    def _put(self, item: _Frame | BaseException) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.counts["dropped"] += 1

    def stop(self) -> None:
        self._stop.set()

    def run(
        self,
        *,
        episodes: int | None = None,
        episode_seconds: float = 30.0,
        idle_seconds: float = 1.0,
        duration: float | None = None,
        on_episode: Any = None,
        on_first_frame: Any = None,
    ) -> dict[str, Any]:
        """Record until ``episodes`` are saved, ``duration`` passes or :meth:`stop`; returns counters.

        :param episode_seconds: an episode ends after this many seconds of frames (at the dataset's fps).
        :param idle_seconds: an episode also ends when no command comes for this long.
        :param on_episode: called with each saved episode's index (e.g. to print progress).
        :param on_first_frame: called once, when the first frame (state, camera and command together) arrives.
        """
        if episodes is not None and episodes < 1:
            raise ConfigError(f"--episodes {episodes} must be >= 1 (leave it out to record until stopped)")
        if not episode_seconds > 0 or not idle_seconds > 0:
            raise ConfigError("--episode-seconds and --idle-seconds must be > 0")
        max_frames = max(1, int(round(episode_seconds * self.fps)))
        started = time.monotonic()
        self._spinner.start()
        pending: _Frame | None = None  # the newest frame: added once the next shows it was not the last
        saved = 0

        def finish(last: _Frame) -> None:
            nonlocal saved
            self._add(last, done=True)
            index = self.writer.save_episode(self.task)
            saved += 1
            self.counts["episodes"] += 1
            if on_episode is not None:
                on_episode(index)

        try:
            while not self._stop.is_set() and (episodes is None or saved < episodes):
                if duration is not None and time.monotonic() - started >= duration:
                    break
                try:
                    item = self.queue.get(timeout=0.05)
                except queue.Empty:
                    item = None
                if isinstance(item, BaseException):
                    raise item
                now = item.received_at if item is not None else time.monotonic()
                if pending is not None and now - pending.received_at > idle_seconds:  # commands paused
                    finish(pending)
                    pending = None
                    if episodes is not None and saved >= episodes:
                        break
                if item is None:
                    continue
                if on_first_frame is not None and not self.counts["frames"] and pending is None:
                    on_first_frame()
                if pending is not None:
                    self._add(pending, done=False)
                pending = item
                if self.writer.frames_in_episode + 1 >= max_frames:
                    finish(pending)
                    pending = None
            if pending is not None:  # stopped mid-episode: keep what was recorded
                finish(pending)
        finally:
            self._stop.set()
            self._spinner.join(timeout=2.0)
        return {**self.counts, "dataset_episodes": self.writer.num_episodes, "dataset_frames": self.writer.num_frames}

    def _add(self, frame: _Frame, done: bool) -> None:
        self.writer.add_frame(state=frame.state, action=frame.action, images={self.camera: frame.image}, done=done)
        self.counts["frames"] += 1

    def close(self) -> None:
        self._stop.set()
        if self._spinner.is_alive():
            self._spinner.join(timeout=2.0)
        try:
            self.session.close()
        finally:
            if self.writer.frames_in_episode:
                self.writer.clear_episode()
            self.writer.finalize()

    def __enter__(self) -> RosRecorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_from_args(args: argparse.Namespace) -> int:
    """The ``record`` command's handler (see :mod:`roboreward.hardware.cli`)."""
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration {args.duration} must be > 0 seconds (leave it out to record until stopped)")
    robot = load_robot_config(args.robot, list(args.overrides or []))
    task = args.task or f"{robot.name}: recorded from ROS 2"
    recorder = RosRecorder(robot, args.out, task=task, domain_id=args.domain_id, discovery=args.discovery)

    try:
        with on_signals(lambda sig: recorder.stop()):
            print(
                f"record {robot.name}: ready; ROS_DOMAIN_ID={recorder.session.domain_id}, discovery {args.discovery}; "
                f"one frame per command on {robot.command.topic} "  # type: ignore[union-attr]
                f"at {recorder.fps} fps -> {args.out}",
                flush=True,
            )
            summary = recorder.run(
                episodes=args.episodes, episode_seconds=args.episode_seconds, idle_seconds=args.idle_seconds,
                duration=args.duration,
                on_episode=lambda i: print(f"record {robot.name}: saved episode {i}", flush=True),
                on_first_frame=lambda: print(f"record {robot.name}: receiving state, camera and commands", flush=True),
            )
    finally:
        recorder.close()
    print(f"record {robot.name}: stopped; {summary}", flush=True)
    return 0


__all__ = ["RosRecorder", "action_names", "run_from_args", "state_names"]
