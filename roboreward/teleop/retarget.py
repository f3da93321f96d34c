"""Glove retargeting: calibrated Hall-sensor channels -> joint targets of any dexterous hand.

A glove measures the operator's fingers; a robot hand has other joints, other ranges and often
fewer fingers. The mapping between them is data, not code: one YAML file per hand model in
``configs/teleop/hands/`` lists, per hand joint, a linear map from the glove's calibrated channels
(0 = open/extended/spread, 1 = closed/flexed/together; see
:class:`~roboreward.teleop.calibration.GloveCalibration`) and optionally a coupling to another
joint of the hand::

    q[j] = offset[j] + sum_k gain[j, k] * channel[k] + ratio[j] * q[coupled_to[j]]

then clamps ``q[j]`` to the joint's limits read from the hand's MJCF. Coupling expresses what the
mechanism or the anatomy ties together (a distal joint following its proximal one,
``DIP = 0.7 * PIP``); couplings are evaluated in dependency order, a coupled joint sees the other
joint's *clamped* target, and a cycle is a configuration error.

Robots have a left and a right hand that are mirror images, so a file describes one canonical hand
and its ``sides``: per side the prefix of the MJCF joint names and whether that side is mirrored.
On a mirrored side every joint marked ``mirror: true`` (those whose axis flips under the
reflection, e.g. the G1 hand's z-axis joints) has its target negated before clamping.

    config = load_hand_retargeting("g1_hand")            # configs/teleop/hands/g1_hand.yaml
    retarget = HandRetargeter(config, side="left")       # joint limits read from config.model
    q = retarget(glove.calibration.apply(raw_channels))  # float64 [len(config.joints)], in config order
    retarget.joint_names                                 # ['left_hand_thumb_0_joint', ...]

:class:`HandRetargeter` also takes the limits directly (``joint_limits=`` a mapping from joint name
to ``(lower, upper)``, or an array ``[J, 2]`` in config order), which is how a robot that already
holds its compiled model builds one (:mod:`roboreward.teleop.robots`); otherwise they are read from the
hand's MJCF (:mod:`roboreward.teleop.mjcf`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from roboreward.config import bounded, find_named, load_config, shipped_names
from roboreward.errors import ConfigError

SIDES = ("left", "right")


@dataclass(kw_only=True)
class HandJointMap:
    """How one hand joint follows the glove."""

    name: str = bounded("", "MJCF joint name without the side's prefix, e.g. 'index_0_joint'")
    channels: list[int] = bounded([], "calibrated glove channels (indices) that drive this joint")
    gains: list[float] = bounded([], "rad (or m) per unit of each listed channel; one per channel")
    offset: float = bounded(0.0, "target when every listed channel reads 0 (and any coupled joint is at 0)")
    coupled_to: str | None = bounded(None, "another joint of this file whose clamped target is added, times ratio")
    ratio: float = bounded(0.0, "factor on coupled_to's target, e.g. 0.7 for DIP = 0.7 * PIP")
    # A joint whose axis is reflected by the left/right mirror turns the other way on the mirrored side.
    mirror: bool = bounded(False, "negate the target on a mirrored side (axis flips under the reflection)")


@dataclass(kw_only=True)
class HandSideConfig:
    """One side of the robot: where its hand's joints are in the MJCF, and whether it is the mirror image."""

    prefix: str = bounded("", "prepended to every joint name, e.g. 'left_hand_'")
    mirrored: bool = bounded(False, "this side is the mirror image of the canonical hand the file describes")


@dataclass(kw_only=True)
class HandRetargetingConfig:
    """Glove channels -> hand joints for one hand model (one YAML in ``configs/teleop/hands``)."""

    name: str = bounded("", "hand model name, e.g. g1_hand")
    model: str = bounded(
        "", "MJCF holding the hand (for its joint limits): a path relative to this file, or pkg://PACKAGE/PATH"
    )
    n_channels: int = bounded(15, "glove channels the map is written for (the cockpit's gloves have 15)", ge=1, le=32)
    # Which raw end a sensor reaches when the finger closes depends on how the magnet is mounted.
    inverted_channels: list[int] = bounded([], "channels that fall as the finger closes; 1 - x is used for them")
    sides: dict[str, HandSideConfig] = bounded({}, "per side ('left'/'right') the joint-name prefix and mirroring")
    joints: list[HandJointMap] = bounded([], "the driven joints, in the order of the retargeter's output")

    def __post_init__(self) -> None:
        if not self.joints:
            raise ConfigError("joints: empty; list at least one hand joint with its channels or coupling")
        if not self.sides:
            raise ConfigError("sides: empty; give at least one side, e.g. sides: {right: {prefix: ''}}")
        for side in self.sides:
            if side not in SIDES:
                raise ConfigError(f"sides.{side}: unknown side {side!r}; use 'left' or 'right'")
        for i, c in enumerate(self.inverted_channels):
            self._check_channel(c, f"inverted_channels[{i}]")
        names = [j.name for j in self.joints]
        for i, joint in enumerate(self.joints):
            key = f"joints[{i}]"
            if not joint.name:
                raise ConfigError(f"{key}.name: empty; give the MJCF joint name without the side's prefix")
            if names.index(joint.name) != i:
                first = names.index(joint.name)
                raise ConfigError(f"{key}.name: {joint.name!r} is listed twice (also joints[{first}])")
            if len(joint.gains) != len(joint.channels):
                raise ConfigError(
                    f"{key}.gains: {len(joint.gains)} gains for {len(joint.channels)} channels; "
                    "give one gain per channel"
                )
            for k, c in enumerate(joint.channels):
                self._check_channel(c, f"{key}.channels[{k}]")
            if len(set(joint.channels)) != len(joint.channels):
                raise ConfigError(f"{key}.channels: {joint.channels} lists a channel twice; add the gains instead")
            if joint.coupled_to is not None:
                if joint.coupled_to == joint.name:
                    raise ConfigError(f"{key}.coupled_to: {joint.name!r} cannot be coupled to itself")
                if joint.coupled_to not in names:
                    raise ConfigError(
                        f"{key}.coupled_to: unknown joint {joint.coupled_to!r}{_suggest(joint.coupled_to, names)}; "
                        f"couple to one of the joints in this file: {names}"
                    )
            elif joint.ratio != 0.0:
                raise ConfigError(f"{key}.ratio: {joint.ratio} is set but coupled_to is not; name the joint to follow")
        self.evaluation_order()  # raises on a coupling cycle

    def _check_channel(self, c: int, key: str) -> None:
        if not 0 <= c < self.n_channels:
            raise ConfigError(
                f"{key}: channel {c} is out of range; the glove has n_channels={self.n_channels} "
                f"(channels 0..{self.n_channels - 1}); fix the index or n_channels"
            )

    def evaluation_order(self) -> list[int]:
        """Joint indices so that every coupled joint comes after the joint it follows."""
        index = {j.name: i for i, j in enumerate(self.joints)}
        order: list[int] = []
        state = [0] * len(self.joints)  # 0 new, 1 on the current path, 2 done

        def visit(i: int, path: list[str]) -> None:
            if state[i] == 2:
                return
            if state[i] == 1:
                cycle = path[path.index(self.joints[i].name):] + [self.joints[i].name]
                raise ConfigError(
                    f"joints[{i}].coupled_to: coupling cycle {' -> '.join(cycle)}; at least one joint in it must be "
                    "driven by channels only"
                )
            state[i] = 1
            follows = self.joints[i].coupled_to
            if follows is not None:
                visit(index[follows], path + [self.joints[i].name])
            state[i] = 2
            order.append(i)

        for i in range(len(self.joints)):
            visit(i, [])
        return order

    def joint_names(self, side: str) -> list[str]:
        """The MJCF joint names on ``side``, in config order."""
        prefix = self._side(side).prefix
        return [prefix + j.name for j in self.joints]

    def default_side(self) -> str:
        if len(self.sides) != 1:
            raise ConfigError(f"hand {self.name!r} has sides {sorted(self.sides)}; pass side='left' or side='right'")
        return next(iter(self.sides))

    def _side(self, side: str) -> HandSideConfig:
        if side not in self.sides:
            raise ConfigError(f"hand {self.name!r} has no {side!r} side; it has {sorted(self.sides)}")
        return self.sides[side]


def hand_retargeting_names() -> list[str]:
    """The hand models shipped in ``roboreward/configs/teleop/hands``."""
    return shipped_names("hand")


def load_hand_retargeting(name_or_path: str | Path, overrides: Sequence[str] = ()) -> HandRetargetingConfig:
    """A shipped hand by name (``"g1_hand"``) or a YAML file; ``overrides`` as ``key=value`` strings.

    A relative ``model`` path is resolved against the YAML's folder.
    """
    path = find_named(name_or_path, "hand")
    config = load_config(path, list(overrides), cls=HandRetargetingConfig)  # its errors name the file
    if config.model and not config.model.startswith("pkg://") and not Path(config.model).is_absolute():
        config = replace(config, model=str((path.parent / config.model).resolve()))
    return config


class HandRetargeter:
    """Calibrated glove channels -> clamped hand joint targets, for one side of one hand model.

    :param config: the hand's mapping.
    :param joint_limits: ``{mjcf_joint_name: (lower, upper)}`` or an array ``[J, 2]`` in config order;
        None reads them from ``config.model`` (compiles the MJCF: seconds for a full humanoid).
    :param side: which side's joint names and mirroring; may be omitted when the file has one side.
    """

    def __init__(
        self,
        config: HandRetargetingConfig,
        joint_limits: Mapping[str, Sequence[float]] | np.ndarray | None = None,
        *,
        side: str | None = None,
    ) -> None:
        self.config = config
        self.side = config.default_side() if side is None else side
        side_config = config._side(self.side)
        self.joint_names = config.joint_names(self.side)
        n_j, n_c = len(config.joints), config.n_channels
        if joint_limits is None:
            from roboreward.teleop.mjcf import joint_limits_from_mjcf

            if not config.model:
                raise ConfigError(f"hand {config.name!r}: model is empty, so joint limits must be passed")
            limits = joint_limits_from_mjcf(config.model, self.joint_names)
        elif isinstance(joint_limits, Mapping):
            missing = [n for n in self.joint_names if n not in joint_limits]
            if missing:
                raise ConfigError(
                    f"hand {config.name!r} ({self.side}): joint {missing[0]!r} is not in the robot's model"
                    f"{_suggest(missing[0], list(joint_limits))}; check the side prefix and joint names"
                )
            limits = np.array([joint_limits[n] for n in self.joint_names], dtype=np.float64)
        else:
            limits = np.asarray(joint_limits, dtype=np.float64)
            if limits.shape != (n_j, 2):
                raise ConfigError(
                    f"joint_limits must have shape ({n_j}, 2) for hand {config.name!r}, got {limits.shape}"
                )
        if not np.all(limits[:, 0] <= limits[:, 1]):
            bad = int(np.flatnonzero(limits[:, 0] > limits[:, 1])[0])
            raise ConfigError(f"joint {self.joint_names[bad]!r} has lower limit > upper: {limits[bad].tolist()}")
        self.lower = limits[:, 0].copy()
        self.upper = limits[:, 1].copy()
        self._gain = np.zeros((n_j, n_c))
        self._offset = np.array([j.offset for j in config.joints], dtype=np.float64)
        for i, joint in enumerate(config.joints):
            for c, g in zip(joint.channels, joint.gains):
                self._gain[i, c] = g
        flip = side_config.mirrored
        self._sign = np.array([-1.0 if flip and j.mirror else 1.0 for j in config.joints])
        index = {j.name: i for i, j in enumerate(config.joints)}
        self._order = config.evaluation_order()
        self._coupling = [
            (i, index[config.joints[i].coupled_to], config.joints[i].ratio)  # type: ignore[index]
            for i in self._order
            if config.joints[i].coupled_to is not None
        ]
        self._inverted = np.zeros(n_c, dtype=bool)
        self._inverted[list(config.inverted_channels)] = True

    @property
    def n_channels(self) -> int:
        return self.config.n_channels

    def __call__(self, channels: Sequence[float] | np.ndarray) -> np.ndarray:
        """Joint targets (float64, config order) from calibrated channels (0..1, clipped to it)."""
        x = np.asarray(channels, dtype=np.float64)
        if x.shape != (self.config.n_channels,):
            raise ConfigError(
                f"hand {self.config.name!r} expects {self.config.n_channels} glove channels, got shape {x.shape}; "
                "check the glove's n_channels or the hand file's n_channels"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError(f"glove channels contain NaN or infinite values: {x.tolist()}")
        x = np.clip(x, 0.0, 1.0)
        x = np.where(self._inverted, 1.0 - x, x)
        canonical = self._offset + self._gain @ x  # before coupling, mirroring and clamping
        if not self._coupling:
            return np.clip(self._sign * canonical, self.lower, self.upper)
        q = np.clip(self._sign * canonical, self.lower, self.upper)
        for i, follows, ratio in self._coupling:  # dependency order: `follows` is final already
            q[i] = np.clip(self._sign[i] * (canonical[i] + ratio * self._sign[follows] * q[follows]),
                           self.lower[i], self.upper[i])
        return q

    def __repr__(self) -> str:
        return f"HandRetargeter({self.config.name!r}, side={self.side!r}, joints={len(self.joint_names)})"


def _suggest(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


__all__ = [
    "HandJointMap",
    "HandRetargeter",
    "HandRetargetingConfig",
    "HandSideConfig",
    "hand_retargeting_names",
    "load_hand_retargeting",
]
