"""The guided calibration behind ``roboreward teleop calibrate DEVICE``: talk the operator through poses, fit, save.

Calibrations are fitted on *raw* readings (the driver's :meth:`~roboreward.teleop.devices.SerialTeleoperator.drain`
queue holds the frames exactly as decoded, before any calibration), so the device is opened without a
calibration file whatever its config says. One procedure per device kind:

- exoskeleton arm: hold the robot's zero pose, then a reference pose that turns every joint by a known
  angle; offsets come from the zero pose and each joint's sign from which way it moved
  (:func:`~roboreward.teleop.calibration.calibrate_arm_from_samples`); the robot's joint limits are
  written into the file when given.
- glove: open the hand wide and make a tight fist, several times, while recording; each channel's
  range is what it covered (:func:`~roboreward.teleop.calibration.calibrate_glove_from_samples`).
- pedal: feet off (rest and noise give the dead zones), then each axis in turn pressed fully (a
  rocker rocked to both ends) (:func:`~roboreward.teleop.calibration.calibrate_pedal_from_samples`).

Every step is announced through ``prompt`` with a tag in brackets (``[zero]``, ``[reference]``,
``[open-close]``, ``[rest]``, ``[axis 2]``), so a script or a test can tell the steps apart; the
operator presses Enter to record (or types ``q`` to stop). After Enter the first ``settle_s`` are
dropped (pressing a key jolts the pose), then ``seconds`` of readings are kept. A recording the fit
rejects (a joint moved while it should be still, a channel that never moved) is explained and the
device's steps start over, up to ``attempts`` times. Example::

    cal = run_guided_calibration(HallGloveConfig(port="/dev/ttyACM1", side="left"), "calibration/glove_left.yaml")
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from roboreward.errors import ConfigError
from roboreward.teleop.calibration import (
    Calibration,
    CalibrationError,
    PedalMappingConfig,
    calibrate_arm_from_samples,
    calibrate_glove_from_samples,
    calibrate_pedal_from_samples,
    save_calibration,
)
from roboreward.teleop.devices import (
    ExoskeletonArmConfig,
    HallGloveConfig,
    PedalConfig,
    SerialTeleoperator,
    TeleoperatorConfig,
    make_teleoperator,
)

# The reference pose (robot joint angles, rad, exoskeleton joint order: shoulder pitch, roll, yaw,
# elbow, wrist roll, pitch, yaw). Every joint is 0.5 rad or more from zero so each one's sign is
# measured; roll and yaw are mirrored between the sides so the pose is the same for both arms:
# upper arm forward and out, forearm bent up, wrist turned.
ARM_REFERENCE_POSES: dict[str, tuple[float, ...]] = {
    "left": (-0.5, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5),
    "right": (-0.5, -0.5, -0.5, 1.0, -0.5, 0.5, -0.5),
}


# How the prompts name the joints of a 7-joint arm (the exoskeleton's order).
ARM_JOINT_LABELS = (
    "shoulder pitch", "shoulder roll", "shoulder yaw", "elbow", "wrist roll", "wrist pitch", "wrist yaw"
)


class CalibrationAborted(CalibrationError):
    """The operator stopped the calibration; nothing was saved."""


def run_guided_calibration(
    device_config: TeleoperatorConfig,
    out_path: str | Path,
    *,
    prompt: Callable[[str], str] | None = None,
    print_fn: Callable[[str], object] = print,
    seconds: float = 3.0,
    settle_s: float = 0.3,
    attempts: int = 3,
    arm_zero_pose: Sequence[float] | None = None,
    arm_reference_pose: Sequence[float] | None = None,
    joint_limits: Sequence[tuple[float, float]] | None = None,
    pedal_centered_axes: Sequence[int] | None = None,
) -> Calibration:
    """Walk the operator through calibrating one device, save the YAML to ``out_path`` and return it.

    :param device_config: the device (its ``port``; its ``calibration`` file is ignored while calibrating).
    :param prompt: asks the operator to get ready; returns what they typed (``q`` stops). Default: ``input``,
        looked up at call time.
    :param print_fn: progress and results.
    :param seconds: recording length per step (for the glove, time to open and close several times).
    :param settle_s: dropped at the start of each recording.
    :param attempts: tries when a recording is rejected, before giving up with its reason.
    :param arm_zero_pose: robot joint angles of the zero pose; all zeros by default.
    :param arm_reference_pose: robot joint angles of the reference pose, from which joint signs are
        measured; :data:`ARM_REFERENCE_POSES` for the arm's side by default.
    :param joint_limits: robot joint limits ``[(lower, upper)] * J`` written into an arm calibration
        (``TeleopRobot.arm_limits(side)``); +-pi if None.
    :param pedal_centered_axes: self-centring (rocker) axes; the default pedal mapping's yaw axis by default.
    """
    prompt = input if prompt is None else prompt
    if seconds <= 0 or settle_s < 0:
        raise ValueError(f"seconds must be > 0 and settle_s >= 0, got seconds={seconds}, settle_s={settle_s}")
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    if isinstance(device_config, ExoskeletonArmConfig):
        steps, fit = _arm_procedure(device_config, arm_zero_pose, arm_reference_pose, joint_limits)
    elif isinstance(device_config, HallGloveConfig):
        steps, fit = _glove_procedure(device_config)
    elif isinstance(device_config, PedalConfig):
        steps, fit = _pedal_procedure(device_config, pedal_centered_axes)
    else:
        raise ConfigError(
            f"cannot calibrate a {type(device_config).__name__}; calibrate an exoskeleton arm, glove or pedal"
        )
    out_path = Path(out_path)
    # Fit on raw readings: the driver must not apply (or even load) an old calibration.
    device = make_teleoperator(dataclasses.replace(device_config, calibration=None))
    assert isinstance(device, SerialTeleoperator)
    with device:
        print_fn(f"Calibrating {device.name} on {device_config.port}: {len(steps)} steps, {seconds:g} s each.")
        for attempt in range(1, attempts + 1):
            recordings = [
                _record(device, tag, text, prompt, print_fn, seconds, settle_s, i + 1, len(steps))
                for i, (tag, text) in enumerate(steps)
            ]
            try:
                calibration = fit(recordings)
                break
            except CalibrationError as e:
                if attempt == attempts:
                    raise
                print_fn(f"That recording cannot be used: {e}")
                print_fn(f"Let's record again (attempt {attempt + 1} of {attempts}).")
    save_calibration(calibration, out_path)
    print_fn(_summary(calibration))
    print_fn(f"Saved to {out_path}")
    return calibration


# --------------------------------------------------------------------------------------------
# Procedures: the steps (tag, instruction) and the fit of their recordings


def _arm_procedure(config, zero_pose, reference_pose, limits):
    n = config.n_joints
    q0 = np.zeros(n) if zero_pose is None else np.asarray(zero_pose, dtype=np.float64)
    if reference_pose is None:
        if n != 7:
            raise ConfigError(f"no default reference pose for a {n}-joint arm; pass arm_reference_pose ({n} angles)")
        reference_pose = ARM_REFERENCE_POSES[config.side]
    q1 = np.asarray(reference_pose, dtype=np.float64)
    for what, q in (("arm_zero_pose", q0), ("arm_reference_pose", q1)):
        if q.shape != (n,):
            raise ConfigError(f"{what} must have {n} joint angles (the arm's n_joints), got {q.shape}")
    if limits is not None and len(limits) != n:
        raise ConfigError(f"joint_limits gives {len(limits)} (lower, upper) pairs for a {n}-joint arm")
    labels = list(config.joint_names) or (list(ARM_JOINT_LABELS) if n == 7 else [f"joint {i}" for i in range(n)])
    steps = [
        ("zero", f"Hold the {config.side} exoskeleton in the robot's zero pose ({_degrees(q0, labels)}), still."),
        ("reference", f"Hold the {config.side} exoskeleton in the reference pose ({_degrees(q1, labels)}), still."),
    ]

    def fit(recordings):
        zero, reference = (np.array([r.angles for r in rec]) for rec in recordings)
        return calibrate_arm_from_samples(
            zero, side=config.side, robot_zero=q0, reference=(reference, q1), limits=limits
        )

    return steps, fit


def _glove_procedure(config):
    steps = [
        ("open-close", f"Wearing the {config.side} glove: open the hand wide, then make a tight fist; keep opening "
                       "and closing (spread and bend every finger) until the recording ends."),
    ]

    def fit(recordings):
        return calibrate_glove_from_samples(np.array([r.channels for r in recordings[0]]), side=config.side)

    return steps, fit


def _pedal_procedure(config, centered_axes):
    n = config.n_axes
    if centered_axes is None:
        yaw = PedalMappingConfig().yaw_axis
        centered_axes = [yaw] if yaw is not None and yaw < n else []
    bad = [a for a in centered_axes if not 0 <= a < n]
    if bad:
        raise ConfigError(f"pedal_centered_axes: axis {bad[0]} is out of range for a pedal with {n} axes")
    centered = [i in centered_axes for i in range(n)]
    steps = [("rest", "Take your feet off the pedal.")]
    for i in range(n):
        if centered[i]:
            steps.append((f"axis {i}", f"Rock axis {i} (the turn rocker) to both ends a few times, then let go."))
        else:
            steps.append((f"axis {i}", f"Press axis {i} all the way down and release it, a few times."))

    def fit(recordings):
        rest = np.array([r.axes for r in recordings[0]])
        pressed = np.concatenate([np.array([r.axes for r in rec]) for rec in recordings[1:]])
        return calibrate_pedal_from_samples(rest, pressed, centered=centered)

    return steps, fit


# --------------------------------------------------------------------------------------------
# Recording


def _record(device, tag, text, prompt, print_fn, seconds, settle_s, index, total):
    answer = prompt(f"[{tag}] Step {index}/{total}: {text} Press Enter to record {seconds:g} s (q to quit): ")
    if str(answer).strip().lower() in ("q", "quit", "exit"):
        raise CalibrationAborted("calibration stopped by the operator; nothing was saved")
    if settle_s:
        time.sleep(settle_s)
    device.drain()  # drop what arrived before and while settling
    unplugs = device.unplugs
    deadline = time.monotonic() + seconds
    readings = []
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.05, left))
        readings.extend(device.drain())
    readings.extend(device.drain())
    if device.unplugs != unplugs or not device.is_connected:
        raise CalibrationError(
            f"{device.name} on {device.config.port} dropped out during step [{tag}]; check the cable, "
            "then calibrate again"
        )
    expected = seconds * 10  # far below any cockpit device's rate (>= 100 Hz)
    if len(readings) < max(2, expected):
        raise CalibrationError(
            f"only {len(readings)} readings arrived from {device.config.port} in {seconds:g} s during step [{tag}]; "
            "the device is sending too slowly or dropping frames"
        )
    print_fn(f"[{tag}] recorded {len(readings)} readings.")
    return readings


def _degrees(q: np.ndarray, labels: Sequence[str]) -> str:
    return ", ".join(f"{label} {math.degrees(v):+.0f}°" for label, v in zip(labels, q))


def _summary(calibration: Calibration) -> str:
    lines = [f"{calibration.type_name} calibration:"]  # type: ignore[attr-defined]
    for name in ("joints", "channels", "axes"):
        for i, item in enumerate(getattr(calibration, name, [])):
            fields = ", ".join(f"{f.name}={_fmt(getattr(item, f.name))}" for f in dataclasses.fields(item))
            lines.append(f"  {name[:-1] if name != 'axes' else 'axis'} {i}: {fields}")
    return "\n".join(lines)


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


__all__ = ["ARM_JOINT_LABELS", "ARM_REFERENCE_POSES", "CalibrationAborted", "run_guided_calibration"]
