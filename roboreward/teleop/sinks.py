"""Where the session's commands go: the :class:`CommandSink` interface, and the ``sink:`` config section.

The session turns device readings into a :class:`TeleopCommand` (joint targets of the teleop robot,
the walking command) and hands it to a sink, which moves a robot and tells the session what the
robot looked like (:class:`Observation`) for each recorded frame. Two sinks ship:

- ``sim`` (:mod:`roboreward.teleop.sim_sink`, the default): the teleop robot's MuJoCo model, stepped
  here in real time;
- ``ros2`` (:mod:`roboreward.hardware.teleop_sink`): a robot file's command topic over ROS 2, for
  ``roboreward sim-robot`` or a real robot's driver.

The session config picks one with its ``sink:`` section, whose ``type`` selects a :class:`SinkConfig`
subclass as ``reward: type:`` does for reward models; the other keys configure that sink::

    sink:
      type: ros2
      robot: franka          # the ROS 2 sink's keys: roboreward.hardware.teleop_sink.RosSinkConfig
      domain_id: 7

A new kind of sink is a :class:`CommandSink` plus a config registered with
``@SinkConfig.register_subclass("name")`` whose :meth:`SinkConfig.build` makes it.
"""

from __future__ import annotations

import abc
import collections
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from roboreward.config import ChoiceConfig
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.dataset import BASE_COMMAND_NAMES


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
    the latency path); ``advance``, ``observe``, ``applied_action`` and ``open_viewer`` from the
    session's main thread; ``close_renderers`` from the recording thread, which renders frames.

    ``apply_latency`` holds, per command the robot took, the seconds from the command being made to
    the robot taking it (the moment named by ``applied_at``); the session reports its percentiles.
    """

    name: ClassVar[str] = "sink"
    applied_at: ClassVar[str] = "the robot"  # where apply_latency ends, for the session's statistics
    skipped_s: float = 0.0  # robot time dropped because the session fell behind (a simulation only)
    falls: int = 0  # a walking simulated robot fell and was stood up again

    def __init__(self) -> None:
        self.apply_latency: collections.deque[float] = collections.deque(maxlen=1 << 16)

    @property
    @abc.abstractmethod
    def joint_names(self) -> list[str]:
        """Order of ``TeleopCommand.targets``."""

    @property
    def has_base(self) -> bool:
        """True when the robot walks (takes ``TeleopCommand.base``)."""
        return False

    @property
    def cameras(self) -> list[str] | None:
        """The cameras this sink's robot brings (a real robot's image topics); None: the session renders the
        teleop robot's own cameras."""
        return None

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

    def open_viewer(self) -> Any | None:
        """A window showing the robot as it moves (it has ``sync()``, ``is_running()`` and ``close()``); None when
        the robot is not a simulation of this process."""
        return None

    def close_renderers(self) -> None:
        """Release what rendering the frames of :meth:`observe` made (GL contexts), in the thread that rendered."""

    def close(self) -> None:
        """Release what this sink opened (a robot connection, its renderers); the robot it was given is the caller's."""


@dataclass(kw_only=True)
class SinkConfig(ChoiceConfig, abc.ABC):
    """The ``sink:`` section of the session config; ``type`` picks the kind (``sim`` or ``ros2``)."""

    builtin_modules: ClassVar[tuple[str, ...]] = ("roboreward.teleop.sim_sink", "roboreward.hardware.teleop_sink")

    @abc.abstractmethod
    def build(self, robot: Any, *, frame_size: tuple[int, int] = (128, 96)) -> CommandSink:
        """The sink, for the session's teleop robot ``robot`` (its joints are what the commands hold).

        :param frame_size: ``(width, height)`` of the recorded camera frames.
        """


__all__ = ["CommandSink", "Observation", "SinkConfig", "TeleopCommand"]
