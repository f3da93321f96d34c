"""The cockpit's devices by name: which driver each one is, what it drives, and a simulated cockpit.

One operator wears exoskeleton arms and Hall-sensor gloves and stands on a pedal (HOMIE). Each device
has a name, which is also its key under ``devices:`` in the session config and in ``--devices`` of
``roboreward teleop run``:

==============  ===========================================================================
``exo_left``    the robot's left arm joints (``robot.arm_joints['left']``), one exoskeleton joint
``exo_right``   each (isomorphic: calibrated angle = joint target)
``glove_left``  the left hand's joints, through the hand's retargeting map
``glove_right`` (:mod:`roboreward.teleop.retarget`)
``pedal``       walking: forward / backward / turn / squat (:class:`~roboreward.teleop.calibration.PedalMapper`);
                its buttons control recording (:mod:`roboreward.teleop.controls`)
==============  ===========================================================================

The name fixes the driver and the side (:func:`device_config`), so a config cannot wire a glove as
the pedal. Without hardware, :func:`simulated_cockpit` puts simulated devices on ptys for whatever
arms, hands and base a robot has::

    sims = simulated_cockpit(robot)          # {"exo_right": SimulatedExoskeletonArm, "glove_right": ...}
    for sim in sims.values():
        sim.start()
    devices = {name: device_config(name, sim.port) for name, sim in sims.items()}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from roboreward.errors import ConfigError

if TYPE_CHECKING:  # the drivers (pyserial) load when a config is made, not when a CLI lists the names
    from roboreward.teleop.devices import TeleoperatorConfig

DEVICE_NAMES = ("exo_left", "exo_right", "glove_left", "glove_right", "pedal")
_DEVICE_NAME = re.compile(r"^(?:(exo|glove)_(left|right)|pedal)$")
_DEVICE_TYPES = {"exo": "exoskeleton_arm", "glove": "hall_glove", "pedal": "pedal"}


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
    from roboreward.teleop.devices import ExoskeletonArmConfig, HallGloveConfig, PedalConfig

    kind, side = parse_device_name(name)
    if kind == "exo":
        return ExoskeletonArmConfig(port=port, side=side, **fields)  # type: ignore[arg-type]
    if kind == "glove":
        return HallGloveConfig(port=port, side=side, **fields)  # type: ignore[arg-type]
    return PedalConfig(port=port, **fields)


def check_device_config(name: str, config: TeleoperatorConfig) -> None:
    """A ConfigError unless ``config`` is the driver (and side) that the device name ``name`` says."""
    kind, side = parse_device_name(name)
    want = _DEVICE_TYPES[kind]
    got = getattr(config, "type_name", type(config).__name__)
    if got != want:
        raise ConfigError(f"devices.{name}.type: {got!r}, but a device named {name!r} must be a {want!r}")
    if side is not None and getattr(config, "side", side) != side:
        raise ConfigError(f"devices.{name}.side: {config.side!r} contradicts the name {name!r}; use side: {side}")


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
        if robot.has_base:
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
    "DEVICE_NAMES",
    "arm_motion",
    "check_device_config",
    "device_config",
    "parse_device_name",
    "simulated_cockpit",
]
