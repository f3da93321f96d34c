"""The safety layer between a policy and a robot: limits, a hold for bad actions, a watchdog, an e-stop.

A learned policy is a function nobody has checked on every input. What leaves the deploy loop for the
robot therefore always passes through :class:`SafetyLayer` (pure numpy, no ROS), which the policy cannot
bypass because it never sees the publisher:

- **NaN / inf** anywhere in a command: the whole command is replaced by the *hold* command and counted
  (a policy that emits one NaN is broken; trusting its other joints would be a guess).
- **Per-step change**: a position command moves at most ``velocity_limit × velocity_scale × period``
  (and at most ``max_step``, when set) from the previous command, so a jump in the policy's output
  becomes a ramp at the joint's velocity limit.
- **Position limits**: commands are clamped into ``[lower + margin, upper - margin]``; a velocity
  command is clamped to the joint's velocity limit and cut so that one period at that velocity cannot
  leave the position limits.
- Every clamp is counted per joint, for diagnostics.
- **The last act** of every call is a check of the command about to leave — finite, inside the
  position (or velocity, or effort) limits, within the per-step change — and anything that fails it
  is replaced by the hold command and counted (``rejected``). The clamps above should make that check
  pass every time; it is there so that no bug, setting or input can publish anything else.

Settings are checked when the layer is built: a NaN, infinite, zero or negative limit (``nan``
passes every ``<`` and ``>`` test, so each is checked explicitly) is a :class:`ConfigError`, never
"no limit". In position mode a command needs a reference to limit its step — the last command, or
before any the measured position — so the first command without a finite measured position is
refused (``ValueError``) instead of sent unlimited. A robot measured outside ``[lower + margin,
upper - margin]`` is commanded from the nearest point inside, as the hold command does.

The *hold* command keeps the robot where it was told to be: in position mode the last command that was
sent (or, before any, the measured position); in velocity and torque mode zeros (a torque-controlled
robot then relies on its own brakes or gravity compensation). A base commanded with twists is a
velocity-mode "robot" with two entries, ``(linear x, angular z)``, and no position limits.

:class:`Watchdog` notices state that stopped arriving (more than ``stale_after_periods`` control
periods old) and :class:`EStop` is a latch: once triggered (service, topic or watchdog), only an
explicit :meth:`EStop.reset` releases it. Both are thread-safe, as ROS callbacks run on other threads
than the control loop.

Example::

    safety = SafetyLayer.from_robot(robot, SafetyConfig(max_step=0.01))
    command = safety.filter(robot.command_from_action(action), position=state.position)
    if watchdog.stale() or estop.engaged:
        command = safety.hold(state.position)
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from roboreward.config import bounded, check_fields
from roboreward.errors import ConfigError

ControlMode = Literal["position", "velocity", "torque"]  # as RobotConfig.control.mode
MAX_PERIOD_S = 10.0  # a control period longer than this is a mistake (a rate in Hz given as a period, ...)


@dataclass(kw_only=True)
class SafetyConfig:
    """Limits the deploy loop enforces on top of the robot description's joint limits."""

    # The robot's own velocity limits can be far above what a first deployment should use.
    velocity_scale: float = bounded(1.0, "fraction of each joint's velocity limit commands may use", gt=0.0, le=1.0)
    # A hard cap on any joint's per-step change regardless of its velocity limit (rad or m per step;
    # in velocity mode: the largest change of the velocity command per step). null = no extra cap.
    max_step: float | None = bounded(None, "largest change of a command per control step", gt=0.0)
    # Commands at the very end of a joint's range drive it into its mechanical stop.
    position_margin: float = bounded(0.0, "keep position commands this far inside the limits (rad or m)", ge=0.0)
    # hold: keep sending the hold command while state is stale and resume when it returns.
    # stop: send the hold command and latch the e-stop, so that a person must reset it.
    on_stale: Literal["hold", "stop"] = "hold"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse a NaN, infinite or out-of-range setting (see :func:`roboreward.config.check_fields`)."""
        check_fields(self, "safety")
        if self.on_stale not in ("hold", "stop"):
            raise ConfigError(f"safety.on_stale: {self.on_stale!r} is not allowed; choose one of ['hold', 'stop']")


@dataclass
class SafetyCounters:
    """How often each safeguard acted, totals (commands) and per joint (clamped entries)."""

    commands: int = 0  # commands filtered
    nonfinite: int = 0  # commands replaced by the hold command because of NaN/inf
    rejected: int = 0  # commands the final check refused (replaced by the hold command)
    holds: int = 0  # hold commands sent (non-finite, stale state, e-stop)
    position_limited: int = 0  # commands with at least one entry clamped to the position limits
    step_limited: int = 0  # commands with at least one entry cut by the per-step change limit
    velocity_limited: int = 0  # velocity commands clamped to the velocity limit
    effort_limited: int = 0  # torque commands clamped to the effort limit
    per_joint: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> int64[n_joints]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k != "per_joint"}
        out["per_joint"] = {k: v.tolist() for k, v in self.per_joint.items()}
        return out


def _all_finite(values: np.ndarray) -> bool:
    return np.count_nonzero(np.isfinite(values)) == values.size  # ~3x faster than .all() on small arrays


_COUNTER_OF = {"position": "position_limited", "step": "step_limited", "velocity": "velocity_limited",
               "effort": "effort_limited"}


@dataclass(frozen=True)
class _Limits:
    """What the final check allows, per joint: each bound already widened by the clamps' rounding tolerance."""

    lower: np.ndarray  # position limits less the margin
    upper: np.ndarray
    step: np.ndarray  # largest change from the previous command (inf: none)
    magnitude: np.ndarray  # largest |command| in velocity and torque mode
    exact_lower: np.ndarray  # the position limits less the margin, unwidened (where a joint counts as inside)
    exact_upper: np.ndarray

    @classmethod
    def build(cls, lower, upper, step, magnitude, tolerance) -> _Limits:
        limits = cls(lower=lower - tolerance, upper=upper + tolerance, step=step + tolerance,
                     magnitude=magnitude + tolerance, exact_lower=lower.copy(), exact_upper=upper.copy())
        for name in ("lower", "upper", "step", "magnitude", "exact_lower", "exact_upper"):
            getattr(limits, name).setflags(write=False)
        return limits


class SafetyLayer:
    """Turns any command a policy produces into one that respects the robot's limits (see the module doc).

    :param mode: what a command holds: joint ``position`` targets, ``velocity`` or ``torque``.
    :param lower: position lower limits, one per joint (``-inf`` for a continuous joint).
    :param upper: position upper limits.
    :param velocity_limit: largest speed per joint (rad/s or m/s), > 0.
    :param period_s: the control period (seconds): the time one command is applied.
    :param effort_limit: largest effort per joint; needed in torque mode.
    :param joint_names: for messages and diagnostics.
    :param config: the deploy-time limits (:class:`SafetyConfig`).
    """

    def __init__(
        self,
        *,
        mode: ControlMode,
        lower: Any,
        upper: Any,
        velocity_limit: Any,
        period_s: float,
        effort_limit: Any = None,
        joint_names: list[str] | None = None,
        config: SafetyConfig | None = None,
    ) -> None:
        if mode not in ("position", "velocity", "torque"):
            raise ConfigError(
                f"control mode {mode!r} is not one the safety layer knows; use position, velocity or torque"
            )
        self.mode = mode
        self.config = config if config is not None else SafetyConfig()
        self.lower = np.asarray(lower, dtype=np.float64).copy()
        self.upper = np.asarray(upper, dtype=np.float64).copy()
        self.velocity_limit = np.asarray(velocity_limit, dtype=np.float64).copy()
        n = self.lower.shape[0] if self.lower.ndim == 1 else -1
        self.joint_names = list(joint_names) if joint_names is not None else [f"joint_{i}" for i in range(max(n, 0))]
        for label, arr in (("upper", self.upper), ("velocity_limit", self.velocity_limit)):
            if arr.shape != self.lower.shape:
                raise ValueError(
                    f"{label} has shape {arr.shape} but lower has {self.lower.shape}; give one value per joint"
                )
        if self.lower.ndim != 1 or n == 0 or len(self.joint_names) != n:
            raise ValueError(
                f"limits must be 1-d with one entry per joint ({len(self.joint_names)} names), got {self.lower.shape}"
            )
        if np.isnan(self.lower).any() or np.isnan(self.upper).any() or (self.lower > self.upper).any():
            bad = [self.joint_names[i] for i in np.flatnonzero(~(self.lower <= self.upper))]
            raise ConfigError(f"joints {bad}: lower position limit above upper (or NaN); fix the robot description")
        if np.isposinf(self.lower).any() or np.isneginf(self.upper).any():
            bad = [self.joint_names[i] for i in np.flatnonzero(np.isposinf(self.lower) | np.isneginf(self.upper))]
            raise ConfigError(f"joints {bad}: a lower limit of +inf or an upper limit of -inf leaves no position to hold")
        if not (np.isfinite(self.velocity_limit).all() and (self.velocity_limit > 0).all()):
            raise ConfigError(f"velocity limits {self.velocity_limit.tolist()} must all be finite and > 0")
        if not (isinstance(period_s, (int, float, np.number)) and math.isfinite(period_s) and 0 < period_s <= MAX_PERIOD_S):
            raise ConfigError(
                f"period_s={period_s!r} must be a number of seconds in (0, {MAX_PERIOD_S}] (1 / control rate)"
            )
        self.period_s = float(period_s)
        if effort_limit is not None:
            self.effort_limit = np.asarray(effort_limit, dtype=np.float64).copy()
            if self.effort_limit.shape != self.lower.shape or not (
                np.isfinite(self.effort_limit).all() and (self.effort_limit > 0).all()
            ):
                raise ConfigError(f"effort limits {self.effort_limit.tolist()} need one finite value > 0 per joint")
        elif mode == "torque":
            raise ConfigError(
                "torque mode needs effort limits; the robot description must give an effort limit per joint"
            )
        else:
            self.effort_limit = None
        # The settings are re-checked here, not trusted: a config object can be changed after it was built.
        self.config.validate()

        margin = self.config.position_margin
        self.safe_lower = self.lower + margin
        self.safe_upper = self.upper - margin
        narrow = ~(self.safe_lower <= self.safe_upper)
        if narrow.any():
            names = [self.joint_names[i] for i in np.flatnonzero(narrow)]
            raise ConfigError(
                f"safety.position_margin: {margin} leaves no range for joints {names}; use a smaller margin"
            )
        self.speed = self.velocity_limit * self.config.velocity_scale
        # Largest change of a command per step: position from the velocity limit, velocity only by max_step.
        if mode == "position":
            with np.errstate(over="ignore"):  # an overflow is refused just below
                self.max_delta = self.speed * self.period_s
            if self.config.max_step is not None:
                self.max_delta = np.minimum(self.max_delta, self.config.max_step)
            if not (np.isfinite(self.max_delta).all() and (self.max_delta > 0).all()):
                raise ConfigError(
                    f"the per-step limit {self.max_delta.tolist()} (velocity limit x velocity_scale x period) is not a "
                    "finite positive number; check the robot's velocity limits and safety.velocity_scale"
                )
        else:
            self.max_delta = np.full(n, np.inf) if self.config.max_step is None else np.full(n, self.config.max_step)
        # The final check's own read-only copy of the limits, apart from the arrays the clamps work with, widened
        # by a rounding tolerance of the clamps' arithmetic.
        magnitude = self.speed if mode == "velocity" else self.effort_limit if mode == "torque" else np.zeros(n)
        self._check = _Limits.build(
            self.safe_lower, self.safe_upper, self.max_delta, magnitude,
            tolerance=1e-9 * (1.0 + np.maximum.reduce([
                np.where(np.isfinite(self.lower), np.abs(self.lower), 0.0),
                np.where(np.isfinite(self.upper), np.abs(self.upper), 0.0),
                magnitude,
            ])),
        )
        self._diff = np.empty(n, dtype=np.float64)
        self._ok = np.empty(n, dtype=bool)

        self.counters = SafetyCounters()
        for kind in ("position", "step", "velocity", "effort"):
            self.counters.per_joint[kind] = np.zeros(n, dtype=np.int64)
        self._last: np.ndarray | None = None  # the last command sent (after filtering)
        self._work = np.empty(n, dtype=np.float64)
        self._lo = np.empty(n, dtype=np.float64)
        self._hi = np.empty(n, dtype=np.float64)
        self._clipped = np.empty(n, dtype=np.float64)
        self._hit = np.empty(n, dtype=bool)
        self._has_step_limit = bool(np.isfinite(self.max_delta).any())

    @classmethod
    def from_robot(cls, robot: Any, config: SafetyConfig | None = None, period_s: float | None = None) -> SafetyLayer:
        """The safety layer for a :class:`~roboreward.hardware.robot.RobotConfig` at its control rate.

        A base commanded with twists gets ``(linear x, angular z)`` limited to ``base.max_linear`` and
        ``base.max_angular``.
        """
        period_s = period_s if period_s is not None else 1.0 / robot.control.rate_hz
        if getattr(robot, "action_kind", "joint_targets") == "twist":
            return cls(
                mode="velocity",
                lower=[-np.inf, -np.inf],
                upper=[np.inf, np.inf],
                velocity_limit=[robot.base.max_linear, robot.base.max_angular],
                period_s=period_s,
                joint_names=["linear_x", "angular_z"],
                config=config,
            )
        return cls(
            mode=robot.control.mode,
            lower=robot.position_lower,
            upper=robot.position_upper,
            velocity_limit=robot.velocity_limit,
            effort_limit=getattr(robot, "effort_limit", None),
            period_s=period_s,
            joint_names=list(robot.joint_names),
            config=config,
        )

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    @property
    def last_command(self) -> np.ndarray | None:
        """The last command this layer let through (a copy), or None before the first."""
        return None if self._last is None else self._last.copy()

    def reset(self) -> None:
        """Forget the last command: the next one is limited relative to the measured position again."""
        self._last = None

    # ------------------------------------------------------------------------------------------
    def filter(self, command: Any, position: Any = None) -> np.ndarray:
        """The safe version of ``command`` (config joint order); ``position`` is the measured joint position.

        Position mode needs a finite ``position`` for the first command (the per-step limit starts from
        it; without one this raises ``ValueError`` rather than send an unlimited step). In velocity mode
        it keeps the next period inside the position limits; without it only the fixed limits apply.
        """
        cmd = np.asarray(command, dtype=np.float64)
        if cmd.shape != (self.n_joints,):
            raise ValueError(
                f"command has shape {cmd.shape}; the robot has {self.n_joints} joints {self.joint_names} "
                "(check that the policy was trained for this robot)"
            )
        counters = self.counters
        counters.commands += 1
        pos = self._measured(position)
        if not _all_finite(cmd):
            counters.nonfinite += 1
            return self.hold(pos)
        out = self._work
        np.copyto(out, cmd)
        with np.errstate(over="ignore"):  # huge values clamp through +-inf correctly; the final check has the last word
            self._clamp(out, pos)
            safe = self._is_safe(out, pos)
        if not safe:
            counters.rejected += 1
            return self.hold(pos)
        self._last = out.copy()
        return out.copy()

    def _clamp(self, out: np.ndarray, pos: np.ndarray | None) -> None:
        """Limit ``out`` in place: position, step and velocity limits for the control mode (see the module doc)."""
        if self.mode == "position":
            reference = self._last if self._last is not None else self._entry_point(pos)
            self._limit_step(out, reference)
            self._clip(out, self.safe_lower, self.safe_upper, "position")
        elif self.mode == "velocity":
            self._clip(out, -self.speed, self.speed, "velocity")
            if self._last is not None:
                self._limit_step(out, self._last)
            if pos is not None:
                # One period at this velocity must not leave the position limits.
                np.subtract(self.safe_lower, pos, out=self._lo)
                np.subtract(self.safe_upper, pos, out=self._hi)
                self._lo /= self.period_s
                self._hi /= self.period_s
                np.minimum(self._lo, 0.0, out=self._lo)  # a joint outside its range may always move back in
                np.maximum(self._hi, 0.0, out=self._hi)
                self._clip(out, self._lo, self._hi, "position")
        else:  # torque
            self._clip(out, -self.effort_limit, self.effort_limit, "effort")
            if self._last is not None:
                self._limit_step(out, self._last)

    def filter_action(
        self, action: Any, to_command: Callable[[np.ndarray], np.ndarray], position: Any = None
    ) -> np.ndarray:
        """The safe command for a policy's ``action``: NaN/inf -> hold, else ``filter(to_command(action))``.

        The action is checked before ``to_command`` (e.g. ``RobotConfig.command_from_action``) sees it, so a
        broken policy output never reaches a mapping that would clip or refuse it.
        """
        act = np.asarray(action, dtype=np.float64)
        if not _all_finite(act):
            self.counters.commands += 1
            self.counters.nonfinite += 1
            return self.hold(position)
        return self.filter(to_command(act), position)

    def can_hold(self, position: Any = None) -> bool:
        """Whether :meth:`hold` has a command to send: always, except in position mode before the first
        command when no finite measured position is known."""
        return self.mode != "position" or self._last is not None or self._measured(position) is not None

    def hold(self, position: Any = None) -> np.ndarray:
        """The command that keeps the robot where it is (see the module doc); counted as a hold.

        Raises ``ValueError`` when there is nothing to hold (see :meth:`can_hold`).
        """
        if self.mode != "position":
            held = np.zeros(self.n_joints)
        elif self._last is not None:
            held = self._last.copy()
        else:
            pos = self._measured(position)
            if pos is None:
                raise ValueError(
                    "no command was sent yet and no finite measured position is known, so there is nothing to hold; "
                    "wait for the first robot state before commanding"
                )
            held = self._entry_point(pos)
        self.counters.holds += 1
        self._last = held.copy()
        return held

    def _measured(self, position: Any) -> np.ndarray | None:
        """The measured position as an array, or None when it is missing or broken (it then anchors nothing)."""
        if position is None:
            return None
        pos = np.asarray(position, dtype=np.float64)
        return pos if pos.shape == (self.n_joints,) and _all_finite(pos) else None

    def _entry_point(self, pos: np.ndarray | None) -> np.ndarray:
        """The first command's reference: the measured position, moved inside the safe range."""
        if pos is None:
            raise ValueError(
                "the first position command needs a finite measured position to limit its step from; "
                "wait for the first robot state before commanding"
            )
        return np.clip(pos, self.safe_lower, self.safe_upper)

    def _is_safe(self, out: np.ndarray, pos: np.ndarray | None) -> bool:
        """The final check, stated plainly on the limits fixed at build, independently of how the clamps got there.

        Every comparison with NaN is false, so a NaN anywhere fails it as well as the explicit finiteness test.
        """
        c, ok, diff, n = self._check, self._ok, self._diff, self.n_joints
        if not _all_finite(out):
            return False
        if self.mode == "position":
            reference = self._last if self._last is not None else np.clip(pos, c.exact_lower, c.exact_upper)
            np.subtract(out, reference, out=diff)
            np.abs(diff, out=diff)
            return (
                np.count_nonzero(np.greater_equal(out, c.lower, out=ok)) == n
                and np.count_nonzero(np.less_equal(out, c.upper, out=ok)) == n
                and np.count_nonzero(np.less_equal(diff, c.step, out=ok)) == n
            )
        np.abs(out, out=diff)
        if np.count_nonzero(np.less_equal(diff, c.magnitude, out=ok)) != n:
            return False
        if self._last is not None:
            np.subtract(out, self._last, out=diff)
            np.abs(diff, out=diff)
            if np.count_nonzero(np.less_equal(diff, c.step, out=ok)) != n:
                return False
        if self.mode == "velocity" and pos is not None:  # one period at this velocity stays inside the limits
            below, above = pos < c.exact_lower, pos > c.exact_upper
            inside = ~(below | above)
            after = pos + out * self.period_s
            return bool(
                np.all(after[inside] >= c.lower[inside]) and np.all(after[inside] <= c.upper[inside])
                and np.all(out[below] >= 0.0) and np.all(out[above] <= 0.0)
            )
        return True

    def _limit_step(self, out: np.ndarray, reference: np.ndarray) -> None:
        if not self._has_step_limit:
            return
        np.subtract(reference, self.max_delta, out=self._lo)
        np.add(reference, self.max_delta, out=self._hi)
        self._clip(out, self._lo, self._hi, "step")

    def _clip(self, out: np.ndarray, lo: np.ndarray, hi: np.ndarray, kind: str) -> None:
        # ufuncs into preallocated buffers: a deploy loop at 500 Hz runs this several times per command.
        clipped, hit = self._clipped, self._hit
        np.maximum(out, lo, out=clipped)
        np.minimum(clipped, hi, out=clipped)
        np.not_equal(clipped, out, out=hit)
        if np.count_nonzero(hit):
            self.counters.per_joint[kind] += hit
            attr = _COUNTER_OF[kind]
            setattr(self.counters, attr, getattr(self.counters, attr) + 1)
            np.copyto(out, clipped)


class Watchdog:
    """Says when the robot's state has not arrived for more than ``stale_after_periods`` control periods.

    :meth:`feed` on every state message (any thread); :meth:`stale` from the control loop. A watchdog
    that was never fed is stale: no command goes out before the first state.
    """

    def __init__(self, period_s: float, stale_after_periods: int, clock=time.monotonic) -> None:
        if not (period_s > 0):
            raise ValueError(f"period_s={period_s!r} must be > 0 (1 / control rate)")
        if isinstance(stale_after_periods, bool) or not isinstance(stale_after_periods, (int, float, np.number)) \
                or not stale_after_periods > 0:
            raise ValueError(f"stale_after_periods={stale_after_periods!r} must be a number of control periods > 0")
        self.timeout_s = float(period_s) * float(stale_after_periods)
        self.stale_after_periods = float(stale_after_periods)
        self._clock = clock
        self._last: float | None = None
        self._was_stale = True
        self.trips = 0  # transitions from fresh to stale
        self.stale_since: float | None = None  # when the current stale spell was noticed

    def feed(self, stamp: float | None = None) -> None:
        """A state arrived at ``stamp`` (the clock's time; default now)."""
        self._last = self._clock() if stamp is None else stamp

    @property
    def last_fed(self) -> float | None:
        return self._last

    def age(self, now: float | None = None) -> float:
        """Seconds since the last state (inf before the first)."""
        last = self._last
        if last is None:
            return float("inf")
        return (self._clock() if now is None else now) - last

    def stale(self, now: float | None = None) -> bool:
        """Whether state is too old now; counts a trip on each change from fresh to stale."""
        now = self._clock() if now is None else now
        is_stale = self.age(now) > self.timeout_s
        if is_stale and not self._was_stale:
            self.trips += 1
            self.stale_since = now
        elif not is_stale:
            self.stale_since = None
        self._was_stale = is_stale
        return is_stale


class EStop:
    """A latching emergency stop: :meth:`trigger` engages it, only :meth:`reset` releases it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engaged = False
        self.reason = ""
        self.triggers = 0  # engagements (a trigger while engaged does not count again)
        self.resets = 0

    @property
    def engaged(self) -> bool:
        return self._engaged

    def trigger(self, reason: str = "triggered") -> bool:
        """Engage (with a reason for diagnostics); returns False when it already was."""
        with self._lock:
            if self._engaged:
                return False
            self._engaged = True
            self.reason = reason
            self.triggers += 1
            return True

    def reset(self) -> bool:
        """Release; returns False when it was not engaged."""
        with self._lock:
            if not self._engaged:
                return False
            self._engaged = False
            self.reason = ""
            self.resets += 1
            return True


__all__ = ["ControlMode", "EStop", "SafetyConfig", "SafetyCounters", "SafetyLayer", "Watchdog"]
