"""Device calibration (saved as YAML) and the pedal's mapping to locomotion commands.

Three calibrations, one per device kind, each a config dataclass selected by ``type`` in its YAML:

- ``exoskeleton_arm`` (:class:`ArmCalibration`): per joint an ``offset``, a ``sign`` and robot
  ``lower``/``upper`` limits. The exoskeleton is isomorphic to the robot arm: exoskeleton joint i
  drives robot joint i, ``q_i = clip(sign_i * (raw_i - offset_i), lower_i, upper_i)``; no inverse
  kinematics, so there is no retargeting error to tune.
- ``hall_glove`` (:class:`GloveCalibration`): per Hall-sensor channel the raw ``min``/``max`` seen
  while the operator opened and closed the hand; ``(raw - min) / (max - min)`` clipped to 0..1.
  Which end means "closed" is the retargeting map's business (it maps channels to hand joints).
- ``pedal`` (:class:`PedalCalibration`): per axis the raw travel (``min`` at rest, ``max`` fully
  pressed; self-centring axes also a ``center``) and a ``dead_zone`` so a resting foot commands 0.

``calibrate_*_from_samples`` compute them from short recordings (hold the zero pose; open and
close the hand; rest then press each pedal) and stop with a :class:`CalibrationError` that says
what to redo when a recording cannot be right. Saved and loaded with the project's strict YAML
config loader::

    cal = calibrate_glove_from_samples(samples, side="left")
    save_calibration(cal, "calibration/glove_left.yaml")
    cal = load_calibration("calibration/glove_left.yaml")     # an equal GloveCalibration
    cal.apply(raw_channels)                                    # float64 in 0..1

:class:`PedalMapper` turns normalised pedal axes into a :class:`LocoCommand` (forward/backward
velocity, yaw rate, base height for squatting) with rate limits, and ramps to a stop when the
pedal goes away (``update(None, dt)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from roboreward.config import ChoiceConfig, bounded, load_config, save_config
from roboreward.errors import ConfigError, RoborewardError


class CalibrationError(RoborewardError, ValueError):
    """A calibration recording or file cannot give a usable calibration; the message says what to redo."""


@dataclass(kw_only=True)
class Calibration(ChoiceConfig):
    """Base of the device calibrations; ``type`` in the YAML picks the subclass."""

    def apply(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Exoskeleton arm


@dataclass(kw_only=True)
class JointCalibration:
    """One exoskeleton joint driving the robot joint of the same index."""

    offset: float = bounded(0.0, "raw exoskeleton angle (rad) that means robot angle 0")
    # Mirrored mounting (a left-arm part reused on the right) turns the joint the other way.
    sign: int = bounded(1, "+1 if the exoskeleton joint turns like the robot joint, -1 if mirrored", choices=(-1, 1))
    # Limits protect the robot: a worn exoskeleton can reach angles the robot joint cannot.
    lower: float = bounded(-math.pi, "robot joint lower limit (rad); commands are clipped to it")
    upper: float = bounded(math.pi, "robot joint upper limit (rad); commands are clipped to it")

    def __post_init__(self) -> None:
        if self.sign not in (-1, 1):
            raise ConfigError(f"joint sign must be 1 or -1, got {self.sign!r}")
        if not self.lower < self.upper:
            raise ConfigError(f"joint limits must satisfy lower < upper, got [{self.lower}, {self.upper}]")


@Calibration.register_subclass("exoskeleton_arm")
@dataclass(kw_only=True)
class ArmCalibration(Calibration):
    """Per-joint offset, sign and limits of one exoskeleton arm (joint 0 = shoulder first)."""

    side: Literal["left", "right"] = "left"
    joints: list[JointCalibration] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        self._offset = np.array([j.offset for j in self.joints], dtype=np.float64)
        self._sign = np.array([j.sign for j in self.joints], dtype=np.float64)
        self._lower = np.array([j.lower for j in self.joints], dtype=np.float64)
        self._upper = np.array([j.upper for j in self.joints], dtype=np.float64)

    @classmethod
    def identity(cls, n_joints: int, side: str = "left") -> ArmCalibration:
        """Raw angles pass through unchanged (limits at +-pi): for simulation and first tests."""
        return cls(side=side, joints=[JointCalibration() for _ in range(n_joints)])

    def apply(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        """Robot joint angles (rad) from raw exoskeleton angles."""
        raw = np.asarray(raw, dtype=np.float64)
        if raw.shape != self._offset.shape:
            raise ValueError(f"expected {len(self.joints)} joint angles, got shape {raw.shape}")
        return np.clip(self._sign * (raw - self._offset), self._lower, self._upper)


def calibrate_arm_from_samples(
    zero_pose: np.ndarray,
    *,
    side: str = "left",
    robot_zero: Sequence[float] | None = None,
    signs: Sequence[int] | None = None,
    reference: tuple[np.ndarray, Sequence[float]] | None = None,
    limits: Sequence[tuple[float, float]] | None = None,
    max_motion: float = 0.03,
) -> ArmCalibration:
    """Offsets (and optionally signs) from a recording of the operator holding a known pose.

    :param zero_pose: raw angles ``[T, J]`` recorded while the operator holds the pose whose robot
        joint angles are ``robot_zero`` (all zeros by default: arms down, the robot's zero pose).
    :param signs: per-joint +-1 if known from the mechanical design; +1 if None.
    :param reference: optional ``(samples [T, J], robot_pose [J])`` of a second held pose; every
        joint whose robot angle differs from ``robot_zero`` by more than 0.2 rad gets its sign from
        which way the raw angle moved.
    :param limits: robot joint limits ``[(lower, upper)] * J``; +-pi if None.
    :param max_motion: a joint whose raw angle spans more than this (rad, 5th to 95th percentile)
        while it should be still makes the recording invalid.
    """
    zero_pose = _samples(zero_pose, "zero_pose")
    n = zero_pose.shape[1]
    q0 = np.zeros(n) if robot_zero is None else _vector(robot_zero, n, "robot_zero")
    sign = np.ones(n) if signs is None else _vector(signs, n, "signs")
    if not np.all(np.isin(sign, (-1, 1))):
        raise CalibrationError(f"signs must all be +1 or -1, got {list(sign)}")
    _check_still(zero_pose, max_motion, "zero pose")
    raw0 = np.median(zero_pose, axis=0)
    if reference is not None:
        ref_samples, ref_pose = reference
        ref_samples = _samples(ref_samples, "reference samples")
        if ref_samples.shape[1] != n:
            raise CalibrationError(f"the reference recording has {ref_samples.shape[1]} joints, the zero pose {n}")
        _check_still(ref_samples, max_motion, "reference pose")
        q1 = _vector(ref_pose, n, "reference robot pose")
        raw1 = np.median(ref_samples, axis=0)
        for i in np.flatnonzero(np.abs(q1 - q0) > 0.2):
            moved = raw1[i] - raw0[i]
            if abs(moved) < 0.1 * abs(q1[i] - q0[i]):
                raise CalibrationError(
                    f"joint {i} barely moved between the zero and the reference pose ({moved:+.3f} rad raw for "
                    f"{q1[i] - q0[i]:+.3f} rad expected); check that joint's sensor, then record both poses again"
                )
            sign[i] = math.copysign(1.0, moved * (q1[i] - q0[i]))
    offset = raw0 - sign * q0
    lim = [(-math.pi, math.pi)] * n if limits is None else list(limits)
    if len(lim) != n:
        raise CalibrationError(f"got {len(lim)} joint limits for {n} joints")
    joints = [
        JointCalibration(offset=float(offset[i]), sign=int(sign[i]), lower=float(lim[i][0]), upper=float(lim[i][1]))
        for i in range(n)
    ]
    return ArmCalibration(side=side, joints=joints)


# --------------------------------------------------------------------------------------------
# Glove


@dataclass(kw_only=True)
class ChannelCalibration:
    """The raw range of one Hall-sensor channel."""

    min: float = bounded(0.0, "raw reading that maps to 0")
    max: float = bounded(4095.0, "raw reading that maps to 1")

    def __post_init__(self) -> None:
        if not self.max > self.min:
            raise ConfigError(f"a glove channel needs max > min, got min={self.min}, max={self.max}")


@Calibration.register_subclass("hall_glove")
@dataclass(kw_only=True)
class GloveCalibration(Calibration):
    """Per-channel min/max of one Hall-sensor glove; :meth:`apply` normalises to 0..1."""

    side: Literal["left", "right"] = "left"
    channels: list[ChannelCalibration] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._min = np.array([c.min for c in self.channels], dtype=np.float64)
        self._span = np.array([c.max - c.min for c in self.channels], dtype=np.float64)

    @classmethod
    def identity(cls, n_channels: int, side: str = "left", adc_max: int = 4095) -> GloveCalibration:
        """The full ADC range maps to 0..1."""
        return cls(side=side, channels=[ChannelCalibration(min=0.0, max=float(adc_max)) for _ in range(n_channels)])

    def apply(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if raw.shape != self._min.shape:
            raise ValueError(f"expected {len(self.channels)} glove channels, got shape {raw.shape}")
        return np.clip((raw - self._min) / self._span, 0.0, 1.0)


def calibrate_glove_from_samples(
    samples: np.ndarray, *, side: str = "left", percentile: float = 1.0, min_range: float = 100.0
) -> GloveCalibration:
    """Min/max per channel from a recording of the operator opening and closing the hand fully.

    :param samples: raw channels ``[T, C]``.
    :param percentile: the ends are the ``percentile`` and ``100 - percentile`` percentiles, so a
        few noise spikes do not stretch the range.
    :param min_range: a channel spanning fewer raw counts than this did not move: the recording is
        rejected, naming the channels.
    """
    samples = _samples(samples, "glove samples")
    if not 0.0 <= percentile < 50.0:
        raise CalibrationError(f"percentile must be in [0, 50), got {percentile}")
    lo = np.percentile(samples, percentile, axis=0)
    hi = np.percentile(samples, 100.0 - percentile, axis=0)
    still = np.flatnonzero(hi - lo < min_range)
    if still.size:
        raise CalibrationError(
            f"glove channels {still.tolist()} moved less than {min_range:g} counts; open the hand wide and make a "
            "tight fist a few times (spread and bend every finger), then record again"
        )
    return GloveCalibration(
        side=side, channels=[ChannelCalibration(min=float(a), max=float(b)) for a, b in zip(lo, hi)]
    )


# --------------------------------------------------------------------------------------------
# Pedal


@dataclass(kw_only=True)
class PedalAxisCalibration:
    """One pedal axis: raw travel and dead zone.

    A plain axis maps ``min`` (at rest) .. ``max`` (fully pressed) to 0..1. A self-centring axis
    (``centered``: a rocker for turning) maps ``min`` .. ``center`` .. ``max`` to -1 .. 0 .. 1.
    """

    min: float = bounded(0.0, "raw reading at rest (plain) or at one end (centred)")
    max: float = bounded(4095.0, "raw reading fully pressed (plain) or at the other end (centred)")
    centered: bool = bounded(False, "a self-centring axis: output -1..1 around center")
    center: float = bounded(2047.5, "raw reading at rest of a centred axis")
    # Without a dead zone a foot resting on the pedal (or ADC noise) makes the robot creep.
    dead_zone: float = bounded(0.05, "fraction of the travel near rest that reads as exactly 0", ge=0.0, lt=0.5)

    def __post_init__(self) -> None:
        if not self.max > self.min:
            raise ConfigError(f"a pedal axis needs max > min, got min={self.min}, max={self.max}")
        if self.centered and not self.min < self.center < self.max:
            raise ConfigError(
                f"a centred pedal axis needs min < center < max, got {self.min}, {self.center}, {self.max}"
            )


@Calibration.register_subclass("pedal")
@dataclass(kw_only=True)
class PedalCalibration(Calibration):
    """Per-axis travel and dead zones of the pedal; :meth:`apply` gives 0..1 (or -1..1 if centred)."""

    axes: list[PedalAxisCalibration] = field(default_factory=list)

    def __post_init__(self) -> None:
        a = self.axes
        self._min = np.array([x.min for x in a], dtype=np.float64)
        self._max = np.array([x.max for x in a], dtype=np.float64)
        self._center = np.array([x.center if x.centered else x.min for x in a], dtype=np.float64)
        self._centered = np.array([x.centered for x in a], dtype=bool)
        self._dead = np.array([x.dead_zone for x in a], dtype=np.float64)

    @classmethod
    def identity(cls, n_axes: int, adc_max: int = 4095, dead_zone: float = 0.0) -> PedalCalibration:
        return cls(axes=[PedalAxisCalibration(min=0.0, max=float(adc_max), dead_zone=dead_zone) for _ in range(n_axes)])

    def apply(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if raw.shape != self._min.shape:
            raise ValueError(f"expected {len(self.axes)} pedal axes, got shape {raw.shape}")
        above = raw >= self._center
        span = np.where(above, self._max - self._center, self._center - self._min)
        span = np.where(span > 0, span, 1.0)
        x = np.clip((raw - self._center) / span, -1.0, 1.0)  # plain axes: center == min, so x >= 0
        mag = np.abs(x)
        out = np.where(mag <= self._dead, 0.0, np.sign(x) * (mag - self._dead) / (1.0 - self._dead))
        return np.where(self._centered, out, np.maximum(out, 0.0))


def calibrate_pedal_from_samples(
    rest: np.ndarray,
    pressed: np.ndarray,
    *,
    centered: Sequence[bool] | None = None,
    noise_sigmas: float = 4.0,
    min_dead_zone: float = 0.03,
    min_travel: float = 200.0,
) -> PedalCalibration:
    """Travel and dead zones from two recordings: feet off (``rest``), then every axis through its travel.

    :param rest: raw axes ``[T, A]`` with no foot on the pedal.
    :param pressed: raw axes ``[T2, A]`` while each pedal is pressed fully (and each rocker is
        rocked to both ends); only its extremes matter.
    :param centered: which axes self-centre (rockers); none by default.
    :param noise_sigmas: the dead zone covers the rest noise out to this many standard deviations,
        and is at least ``min_dead_zone`` of the travel.
    :param min_travel: an axis whose travel is shorter (raw counts) was not pressed: the recording
        is rejected, naming the axes.
    """
    rest = _samples(rest, "rest samples")
    pressed = _samples(pressed, "pressed samples")
    n = rest.shape[1]
    if pressed.shape[1] != n:
        raise CalibrationError(f"the rest recording has {n} axes, the pressed recording {pressed.shape[1]}")
    cen = [False] * n if centered is None else [bool(c) for c in centered]
    if len(cen) != n:
        raise CalibrationError(f"centered lists {len(cen)} axes for a pedal with {n}")
    rest_mid = np.median(rest, axis=0)
    rest_sd = rest.std(axis=0)
    both = np.concatenate([rest, pressed])
    lo = np.percentile(both, 0.5, axis=0)
    hi = np.percentile(both, 99.5, axis=0)
    axes = []
    short = []
    for i in range(n):
        if cen[i]:  # rocker: rest in the middle, both ends reached while rocking
            lo_i, hi_i = float(lo[i]), float(hi[i])
            travel = min(rest_mid[i] - lo_i, hi_i - rest_mid[i])
        else:  # plain pedal: rest is one end
            lo_i, hi_i = float(rest_mid[i]), float(hi[i])
            travel = hi_i - lo_i
        if travel < min_travel:
            short.append(i)
            continue
        dead = max(min_dead_zone, noise_sigmas * float(rest_sd[i]) / travel)
        if dead >= 0.5:
            raise CalibrationError(
                f"pedal axis {i} is too noisy at rest (sd {rest_sd[i]:.1f} counts over a travel of {travel:.0f}); "
                "check its wiring, keep feet off the pedal, and record again"
            )
        center = float(rest_mid[i]) if cen[i] else (lo_i + hi_i) / 2
        axes.append(PedalAxisCalibration(min=lo_i, max=hi_i, centered=cen[i], center=center, dead_zone=dead))
    if short:
        raise CalibrationError(
            f"pedal axes {short} travelled less than {min_travel:g} counts; press each pedal all the way down "
            "(rock each rocker to both ends) during the second recording"
        )
    return PedalCalibration(axes=axes)


# --------------------------------------------------------------------------------------------
# Pedal -> locomotion commands


@dataclass(kw_only=True)
class PedalMappingConfig:
    """Which pedal axis commands what, how fast, and how quickly commands may change.

    Axes are indices into the calibrated pedal reading (plain axes 0..1, rockers -1..1); None
    disables that command. Heights are the robot base (pelvis) height: the G1 stands near 0.74 m.
    """

    forward_axis: int | None = bounded(0, "axis whose press walks forward", ge=0)
    backward_axis: int | None = bounded(1, "axis whose press walks backward", ge=0)
    yaw_axis: int | None = bounded(2, "self-centring axis for turning; positive = counter-clockwise", ge=0)
    squat_axis: int | None = bounded(3, "axis whose press lowers the base from stand to min height", ge=0)
    max_forward_speed: float = bounded(0.8, "m/s at a fully pressed forward pedal", ge=0.0, le=3.0)
    max_backward_speed: float = bounded(0.4, "m/s at a fully pressed backward pedal", ge=0.0, le=3.0)
    max_yaw_rate: float = bounded(1.0, "rad/s at a fully rocked yaw axis", ge=0.0, le=6.0)
    stand_height: float = bounded(0.74, "base height (m) with the squat pedal released", gt=0.0)
    min_height: float = bounded(0.40, "base height (m) with the squat pedal fully pressed", gt=0.0)
    # Rate limits: a walking policy falls if its command jumps; a stomp on the pedal must ramp.
    max_accel: float = bounded(1.0, "m/s^2: largest change of the velocity command per second", gt=0.0)
    max_yaw_accel: float = bounded(3.0, "rad/s^2: largest change of the yaw-rate command per second", gt=0.0)
    max_height_rate: float = bounded(0.3, "m/s: largest change of the height command per second", gt=0.0)
    # A long pause between updates (a stalled loop) must not let the command jump in one step.
    max_dt: float = bounded(0.1, "s: longer update intervals are treated as this long", gt=0.0)

    def __post_init__(self) -> None:
        if not self.min_height <= self.stand_height:
            raise ConfigError(f"min_height ({self.min_height}) must be <= stand_height ({self.stand_height})")


@dataclass(frozen=True)
class LocoCommand:
    """A locomotion command for the body policy."""

    vx: float  # m/s, forward positive
    yaw_rate: float  # rad/s, counter-clockwise positive
    height: float  # m, base height


class PedalMapper:
    """Calibrated pedal axes -> rate-limited :class:`LocoCommand`; see :class:`PedalMappingConfig`."""

    def __init__(self, config: PedalMappingConfig | None = None) -> None:
        self.config = config or PedalMappingConfig()
        self.reset()

    def reset(self, height: float | None = None) -> LocoCommand:
        """Stand still at ``height`` (the stand height by default), at once, without ramping."""
        self._vx = 0.0
        self._yaw = 0.0
        self._height = self.config.stand_height if height is None else float(height)
        return self.command

    @property
    def command(self) -> LocoCommand:
        return LocoCommand(self._vx, self._yaw, self._height)

    def target(self, axes: Sequence[float] | np.ndarray | None) -> LocoCommand:
        """The command the pedal asks for, before rate limits; None (no pedal) asks to stop where it is."""
        c = self.config
        if axes is None:
            return LocoCommand(0.0, 0.0, self._height)

        def axis(i: int | None) -> float:
            if i is None:
                return 0.0
            if i >= len(axes):
                raise ValueError(f"pedal mapping uses axis {i} but the pedal reading has {len(axes)} axes")
            return float(axes[i])

        vx = c.max_forward_speed * min(max(axis(c.forward_axis), 0.0), 1.0)
        vx -= c.max_backward_speed * min(max(axis(c.backward_axis), 0.0), 1.0)
        yaw = c.max_yaw_rate * min(max(axis(c.yaw_axis), -1.0), 1.0)
        squat = min(max(axis(c.squat_axis), 0.0), 1.0)
        height = c.stand_height - squat * (c.stand_height - c.min_height)
        return LocoCommand(vx, yaw, height)

    def update(self, axes: Sequence[float] | np.ndarray | None, dt: float) -> LocoCommand:
        """Move the command towards :meth:`target` by at most the rate limits over ``dt`` seconds."""
        c = self.config
        dt = min(max(float(dt), 0.0), c.max_dt)
        goal = self.target(axes)
        self._vx = _step(self._vx, goal.vx, c.max_accel * dt)
        self._yaw = _step(self._yaw, goal.yaw_rate, c.max_yaw_accel * dt)
        self._height = _step(self._height, goal.height, c.max_height_rate * dt)
        return self.command


def _step(value: float, goal: float, limit: float) -> float:
    return value + min(max(goal - value, -limit), limit)


# --------------------------------------------------------------------------------------------
# Files


def save_calibration(calibration: Calibration, path: str | Path) -> None:
    """Write ``calibration`` as YAML (with its ``type``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(calibration, path)


def load_calibration(path: str | Path, expected: type[Calibration] | None = None) -> Calibration:
    """Read a calibration YAML; with ``expected``, a file of another kind is a :class:`ConfigError`."""
    calibration = load_config(path, cls=Calibration)
    if expected is not None and not isinstance(calibration, expected):
        got, want = calibration.type_name, expected.type_name  # type: ignore[attr-defined]
        raise ConfigError(f"{path}: is a {got!r} calibration, expected {want!r}")
    return calibration


# --------------------------------------------------------------------------------------------
# Helpers


def _samples(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise CalibrationError(f"{what} must be an array [T, n] with at least 2 samples, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise CalibrationError(f"{what} contain NaN or infinite values")
    return x


def _vector(v: Sequence[float], n: int, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (n,):
        raise CalibrationError(f"{what} must have {n} values, got shape {v.shape}")
    return v


def _check_still(samples: np.ndarray, max_motion: float, pose: str) -> None:
    spread = np.percentile(samples, 95, axis=0) - np.percentile(samples, 5, axis=0)
    moving = np.flatnonzero(spread > max_motion)
    if moving.size:
        worst = float(spread[moving].max())
        raise CalibrationError(
            f"joints {moving.tolist()} moved (up to {worst:.3f} rad) while the {pose} should be held still; "
            f"hold the pose steadily and record again (allowed: {max_motion} rad)"
        )


__all__ = [
    "ArmCalibration",
    "Calibration",
    "CalibrationError",
    "ChannelCalibration",
    "GloveCalibration",
    "JointCalibration",
    "LocoCommand",
    "PedalAxisCalibration",
    "PedalCalibration",
    "PedalMapper",
    "PedalMappingConfig",
    "calibrate_arm_from_samples",
    "calibrate_glove_from_samples",
    "calibrate_pedal_from_samples",
    "load_calibration",
    "save_calibration",
]
