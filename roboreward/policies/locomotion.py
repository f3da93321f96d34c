"""A locomotion layer: velocity commands and robot state in, joint position targets out, from an ONNX policy.

A HOMIE-style cockpit drives a humanoid's body with a pedal (walk, turn, squat) while the operator's
arms drive its arms; something has to turn "walk forward at 0.5 m/s" into 29 joint targets fifty
times a second. :class:`LocomotionPolicy` is that something: one interface for any ONNX locomotion
policy, described by a small YAML file (:class:`LocomotionPolicyConfig`, shipped ones in
``roboreward/configs/locomotion/``)::

    policy = load_locomotion_policy("g1_holosoma")        # the shipped default
    policy.reset()
    targets = policy.act((0.5, 0.0, 0.0, 0.75), state)     # (vx, vy, yaw rate, base height), LocomotionState
    # -> float64[29] joint position targets in policy.joint_names order, for a PD loop at policy.kp / policy.kd

The shipped default, ``g1_holosoma``, is the Unitree G1 (29 DoF) walking policy of Amazon FAR's
holosoma (Apache-2.0; its FastSAC network, ``onnx=`` picks the PPO one), run from the installed
``holosoma-inference`` package (``make setup`` installs it): trained in simulation at 50 Hz, with
velocity commands and a gait phase. Its MuJoCo model (for the closed loop) is
:class:`roboreward.envs.g1.G1Sim`.

What the config describes, and how it becomes the network's input (the conventions are holosoma's):

- **Observation**: the terms in ``observation`` are concatenated in the order listed, each one
  multiplied by its ``scale`` and cast to float32. holosoma concatenates its terms sorted by name
  (the G1 file lists them that way), which is why ``actions`` comes first. Terms:
  ``base_ang_vel`` (body-frame gyro, 3), ``projected_gravity`` (gravity's unit direction in the body
  frame, 3), ``command_lin_vel`` (vx, vy), ``command_ang_vel`` (yaw rate), ``command_base_height``
  (for policies that take a height), ``dof_pos`` (joint positions minus the reference pose),
  ``dof_vel``, ``actions`` (the previous raw network output, clipped), ``sin_phase`` /
  ``cos_phase`` (the gait phase of the left and right foot).
- **History**: with ``history_length`` H, each term's block holds its last H values, oldest first,
  zeros before the first step.
- **Gait phase** (:class:`GaitClock`): two clocks, left foot at 0 and right at pi after
  :meth:`LocomotionPolicy.reset`, advancing by ``2 pi / (control_hz * gait_period_s)`` per step and
  wrapped to [-pi, pi). A command below ``stand_threshold`` (speed and yaw rate) holds both at pi
  (standing); the first moving command after standing restarts them at (0, pi).
- **Action**: the network's output is clipped to ``+-action_clip``; the joint targets are
  ``reference_pose + action_scale * action``, the reference pose being ``default_pose`` unless the
  policy squats (below). ``kp`` / ``kd`` are the gains of the PD loop the
  policy was trained with (``torque = kp * (target - q) - kd * dq``); the layer returns targets, and
  whoever drives the motors applies the gains.
- **Commands** are clipped to ``command_ranges`` (what the policy was trained on; the command
  actually used is :attr:`LocomotionPolicy.last_command`). ``base_height`` reaches the network
  through a ``command_base_height`` term, or — for a policy that reads no height, like holosoma's —
  through its reference pose (``squat``, :class:`SquatConfig`): the legs' default pose bends to the
  commanded height, so the policy balances around a squat as it balances around standing. With
  neither, ``command_ranges.base_height`` is null and the height is checked finite, then ignored.

Loading checks the ONNX file against the config before any step: its one input must take exactly
the observation size the terms add up to and its output one value per joint; the metadata holosoma
writes into its files (``dof_names``, ``kp``, ``kd``, ``command_ranges``), when present, must equal
the config. A missing file, a mismatch or a missing package stops with a :class:`ConfigError` or
:class:`SetupError` that names the file, what was expected and what was found.

Non-finite values never reach the network: a NaN passes every ``<``/``>`` test, so commands, state
and the network's output are checked with ``isfinite`` and refused with :class:`NonFiniteError`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from roboreward.config import bounded, check_fields, find_named, load_config, package_dir, shipped_names
from roboreward.envs.geometry import flat_foot_leg
from roboreward.errors import CheckpointError, ConfigError, NonFiniteError, SetupError
from roboreward.hardware.robot import rotation_from_quaternion
from roboreward.policies.export import onnx_session

# --------------------------------------------------------------------------------------------
# The interface: commands and state


class LocomotionCommand(NamedTuple):
    """What the operator (or a planner) asks of the body; a plain 4-tuple works too."""

    vx: float  # m/s, forward (body frame) positive
    vy: float  # m/s, left positive
    yaw_rate: float  # rad/s, counter-clockwise positive
    base_height: float  # m, pelvis above the soles; for policies with a command_base_height term or a squat


@dataclass(frozen=True)
class LocomotionState:
    """What the policy reads from the robot, joints in the policy's joint order.

    ``base_angular_velocity`` is in the base (pelvis) frame, as the IMU's gyro reads it. Give the
    base orientation either as ``projected_gravity`` (gravity's unit direction in the base frame,
    (0, 0, -1) when upright) or as ``base_quaternion`` (w, x, y, z; base to world).
    """

    joint_positions: np.ndarray  # rad
    joint_velocities: np.ndarray  # rad/s
    base_angular_velocity: np.ndarray  # rad/s, base frame
    base_quaternion: np.ndarray | None = None  # (w, x, y, z)
    projected_gravity: np.ndarray | None = None

    def gravity_in_base(self) -> np.ndarray:
        """Gravity's unit direction in the base frame: given, or rotated from the quaternion."""
        if self.projected_gravity is not None:
            return np.asarray(self.projected_gravity, dtype=np.float64)
        if self.base_quaternion is None:
            raise ValueError("LocomotionState needs base_quaternion or projected_gravity; both are None")
        q = np.asarray(self.base_quaternion, dtype=np.float64)
        if q.shape != (4,):
            raise ValueError(f"base_quaternion must be 4 numbers (w, x, y, z), got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise NonFiniteError(f"base_quaternion is NaN or infinite ({q.tolist()}); refused before the network")
        if not 0.5 < np.linalg.norm(q) < 2.0:  # normalised below; a norm far from 1 is a wrong field, not rounding
            raise ValueError(f"base_quaternion must have norm ~1 (w, x, y, z), got {q.tolist()}")
        return rotation_from_quaternion(q).T @ np.array([0.0, 0.0, -1.0])


# --------------------------------------------------------------------------------------------
# The config

TermName = Literal[
    "base_ang_vel",
    "projected_gravity",
    "command_lin_vel",
    "command_ang_vel",
    "command_base_height",
    "dof_pos",
    "dof_vel",
    "actions",
    "sin_phase",
    "cos_phase",
]

# Sizes of the terms that do not depend on the joint count (the others have one value per joint).
_FIXED_TERM_SIZES = {
    "base_ang_vel": 3,
    "projected_gravity": 3,
    "command_lin_vel": 2,
    "command_ang_vel": 1,
    "command_base_height": 1,
    "sin_phase": 2,  # left foot, right foot
    "cos_phase": 2,
}


@dataclass(kw_only=True)
class ObservationTerm:
    """One block of the observation vector: ``value * scale``, ``size`` numbers per step of history."""

    name: TermName
    size: int = bounded(1, "numbers per step; checked against what the term holds", ge=1, le=4096)
    scale: float = bounded(1.0, "multiplies the value before it enters the network")

    def __post_init__(self) -> None:
        check_fields(self, "observation")  # a term built in Python is held to the YAML's rules


@dataclass(kw_only=True)
class CommandRanges:
    """The commands the policy was trained on (``[low, high]``); commands outside are clipped."""

    vx: tuple[float, float] = bounded((-1.0, 1.0), "forward speed (m/s)")
    vy: tuple[float, float] = bounded((-1.0, 1.0), "sideways speed (m/s), left positive")
    yaw_rate: tuple[float, float] = bounded((-1.0, 1.0), "turn rate (rad/s), counter-clockwise positive")
    # null: the policy takes no height (no height input, no squat); the height is checked finite and ignored.
    base_height: tuple[float, float] | None = bounded(None, "base height (m); null if the policy takes none", gt=0.0)

    def __post_init__(self) -> None:
        check_fields(self, "command_ranges")
        for key in ("vx", "vy", "yaw_rate", "base_height"):
            span = getattr(self, key)
            if span is None:
                continue
            if span[0] > span[1]:
                raise ConfigError(f"command_ranges.{key}: low {span[0]} > high {span[1]}; give [low, high]")
            if key != "base_height" and not span[0] <= 0.0 <= span[1]:
                raise ConfigError(f"command_ranges.{key}: {list(span)} must include 0, or the robot cannot stand still")


@dataclass(kw_only=True)
class SquatConfig:
    """A height command for a policy that reads none: its legs' reference pose squats instead.

    A walking policy observes its joints relative to ``default_pose`` and acts in offsets from it, so
    moving that reference moves the posture it balances around. For a commanded pelvis height ``h``
    the knees bend to ``k`` with the feet kept flat under the hips (the planar leg of
    :func:`~roboreward.envs.geometry.flat_foot_leg`): the hip-to-ankle distance
    ``sqrt(thigh² + shank² + 2 thigh shank cos k)`` shrinks by ``standing_height - h``, and hip pitch,
    knee and ankle pitch move by the planar leg's change from the default knee angle; the hips pitch
    ``lean`` rad further per metre of squat, which keeps the body's weight over the feet (without it
    the G1 sits back and falls below ~0.62 m). The reference follows the command at ``rate``, so a
    jump of the command is a smooth squat. What a policy trained standing does with it is measured,
    not promised: ``command_ranges.base_height`` is the range it holds (benchmarks/g1_homie.py).
    """

    legs: list[list[str]] = bounded([], "per leg: [hip pitch, knee, ankle pitch] joint names")
    thigh: float = bounded(0.0, "hip pitch axis to knee axis (m)", gt=0.0, le=5.0)
    shank: float = bounded(0.0, "knee axis to ankle pitch axis (m)", gt=0.0, le=5.0)
    standing_height: float = bounded(0.0, "pelvis height above the soles in default_pose (m)", gt=0.0, le=5.0)
    lean: float = bounded(0.0, "hip pitch added per metre below standing_height (rad/m)", ge=-10.0, le=10.0)
    rate: float = bounded(0.3, "fastest change of the reference height (m/s)", gt=0.0, le=10.0)

    def __post_init__(self) -> None:
        check_fields(self, "squat")
        if not self.legs or any(len(leg) != 3 for leg in self.legs):
            raise ConfigError(f"squat.legs: {self.legs!r}; give each leg as [hip pitch, knee, ankle pitch] joint names")


def _hip_to_ankle(squat: SquatConfig, knee: float) -> float:
    """Distance from the hip pitch axis to the ankle pitch axis with the knee bent by ``knee`` (rad)."""
    a, b = squat.thigh, squat.shank
    return math.sqrt(a * a + b * b + 2.0 * a * b * math.cos(knee))


@dataclass(kw_only=True)
class LocomotionPolicyConfig:
    """An ONNX locomotion policy and the conventions it was trained with (one YAML in configs/locomotion)."""

    name: str = bounded("", "policy name, for messages")
    # "PACKAGE:relative/path.onnx" (a file inside an installed Python package) or a path, relative
    # to the YAML file's folder unless absolute.
    onnx: str = bounded("", "the ONNX file: PACKAGE:relative/path or a path")
    joint_names: list[str] = bounded([], "the policy's joints, in the order of its actions and joint observations")
    default_pose: dict[str, float] = bounded({}, "per joint: the position (rad) actions are offsets from")
    kp: dict[str, float] = bounded({}, "per joint: PD stiffness (N m/rad) the policy was trained with")
    kd: dict[str, float] = bounded({}, "per joint: PD damping (N m s/rad) the policy was trained with")
    observation: list[ObservationTerm] = bounded([], "the observation terms, in the order they are concatenated")
    history_length: int = bounded(1, "steps of history per term (oldest first)", ge=1, le=64)
    action_scale: float = bounded(0.25, "target = reference pose + action_scale * action", gt=0.0, le=10.0)
    action_clip: float = bounded(100.0, "the raw action is clipped to +-action_clip", gt=0.0)
    control_hz: float = bounded(50.0, "policy steps per second", gt=0.0, le=1000.0)
    gait_period_s: float = bounded(1.0, "one gait cycle (s), for the phase clocks", gt=0.0, le=10.0)
    stand_threshold: float = bounded(0.01, "speed (m/s) and yaw rate (rad/s) below which the phase stands", ge=0.0)
    command_ranges: CommandRanges = field(default_factory=CommandRanges)
    squat: SquatConfig | None = None  # a policy without a height input squats by its reference pose

    def __post_init__(self) -> None:
        check_fields(self)  # what from_dict checks as it reads YAML, for a config built in Python
        if not self.onnx:
            raise ConfigError("onnx: empty; give the ONNX file as PACKAGE:relative/path.onnx or a path")
        if not self.joint_names:
            raise ConfigError("joint_names: empty; list the policy's joints in its action order")
        if len(set(self.joint_names)) != len(self.joint_names):
            dup = next(n for n in self.joint_names if self.joint_names.count(n) > 1)
            raise ConfigError(f"joint_names: {dup!r} is listed twice")
        for key in ("default_pose", "kp", "kd"):
            values = getattr(self, key)
            missing = [n for n in self.joint_names if n not in values]
            extra = [n for n in values if n not in self.joint_names]
            if missing or extra:
                raise ConfigError(
                    f"{key}: must give one value per joint of joint_names; missing {missing}, not a joint {extra}"
                )
            if key != "default_pose" and any(v < 0 for v in values.values()):
                bad = {n: v for n, v in values.items() if v < 0}
                raise ConfigError(f"{key}: gains must be >= 0, got {bad}")
        if not self.observation:
            raise ConfigError("observation: empty; list the terms the network reads, in order")
        names = [t.name for t in self.observation]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ConfigError(f"observation: term {dup!r} is listed twice")
        n = len(self.joint_names)
        for i, term in enumerate(self.observation):
            expected = _FIXED_TERM_SIZES.get(term.name, n)
            if term.size != expected:
                raise ConfigError(
                    f"observation[{i}] ({term.name}): size {term.size}, but the term holds {expected} numbers"
                    + ("" if term.name in _FIXED_TERM_SIZES else f" (one per joint of joint_names, {n})")
                )
        has_height = "command_base_height" in names
        if has_height and self.command_ranges.base_height is None:
            raise ConfigError(
                "command_ranges.base_height: null, but the observation has a command_base_height term; give [low, high]"
            )
        takes_height = has_height or self.squat is not None
        if has_height and self.squat is not None:
            raise ConfigError("squat: the policy reads command_base_height and squats by itself; remove the squat section")
        if not takes_height and self.command_ranges.base_height is not None:
            raise ConfigError(
                "command_ranges.base_height: given, but no observation term reads the height and there is no squat "
                "section; set it to null (the policy takes no height), add a command_base_height term or a squat"
            )
        if self.squat is not None:
            if self.command_ranges.base_height is None:
                raise ConfigError("command_ranges.base_height: null, but the squat section needs the heights it "
                                  "reaches; give [low, high]")
            unknown = [n for leg in self.squat.legs for n in leg if n not in self.joint_names]
            if unknown:
                raise ConfigError(f"squat.legs: {unknown} are not joints of joint_names")
            low, high = self.command_ranges.base_height
            for hip, knee, ankle in self.squat.legs:
                if _hip_to_ankle(self.squat, self.default_pose[knee]) - (self.squat.standing_height - low) <= abs(
                        self.squat.thigh - self.squat.shank):
                    raise ConfigError(
                        f"command_ranges.base_height: {low} m is deeper than the leg of {knee!r} can squat (thigh "
                        f"{self.squat.thigh} m, shank {self.squat.shank} m, standing at {self.squat.standing_height} m); "
                        "raise the low end"
                    )
            if high > self.squat.standing_height + 1e-9:
                raise ConfigError(
                    f"command_ranges.base_height: high {high} m is above squat.standing_height "
                    f"{self.squat.standing_height} m; the squat only bends the legs from the default pose"
                )

    @property
    def observation_size(self) -> int:
        """Length of the network's input vector: every term's size times the history length."""
        return sum(t.size for t in self.observation) * self.history_length


def locomotion_policy_names() -> list[str]:
    """The policies shipped in ``roboreward/configs/locomotion``."""
    return shipped_names("locomotion")


def load_locomotion_config(
    name_or_path: str | Path = "g1_holosoma", overrides: Sequence[str] = ()
) -> LocomotionPolicyConfig:
    """A shipped policy config by name or a YAML file; ``overrides`` as ``key=value``.

    A relative ``onnx`` path is made absolute against the YAML file's folder.
    """
    path = find_named(name_or_path, "locomotion")
    config = load_config(path, list(overrides), cls=LocomotionPolicyConfig)
    if _PACKAGE_FILE.fullmatch(config.onnx) is None and not Path(config.onnx).is_absolute():
        config.onnx = str((path.parent / config.onnx).resolve())
    return config


def load_locomotion_policy(name_or_path: str | Path = "g1_holosoma", overrides: Sequence[str] = ()) -> LocomotionPolicy:
    """:func:`load_locomotion_config` then :class:`LocomotionPolicy`: ready to :meth:`~LocomotionPolicy.act`."""
    path = find_named(name_or_path, "locomotion")
    return LocomotionPolicy(load_locomotion_config(path, overrides), source=str(path))


# --------------------------------------------------------------------------------------------
# Finding and checking the ONNX file

# "package:relative/path": a top-level package name (found without importing it), then a path inside it.
_PACKAGE_FILE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?!//)(.+)")


def resolve_onnx_path(spec: str) -> Path:
    """The file ``spec`` names: ``PACKAGE:relative/path`` inside an installed package, or a path.

    A package that is not installed is a :class:`SetupError` (``make setup`` installs the ones
    roboreward ships configs for); a file that is not there, a :class:`ConfigError` that lists the
    ONNX files the folder does hold.
    """
    match = _PACKAGE_FILE.fullmatch(spec)
    if match is None:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"onnx: {spec!r} does not exist; give the policy's ONNX file (a path or PACKAGE:path)")
        return path
    package, rel = match.groups()
    try:
        path = package_dir(package) / rel
    except SetupError as e:
        raise SetupError(f"onnx: {spec!r}: {e}") from None
    if not path.is_file():
        folder = path.parent
        there = sorted(p.name for p in folder.glob("*.onnx")) if folder.is_dir() else []
        where = f"; {folder} holds {there}" if there else f"; {folder} holds no ONNX file"
        raise ConfigError(f"onnx: {spec!r}: the package {package!r} has no file {rel!r} (looked for {path}){where}")
    return path


def _check_layout(session: Any, path: Path, config: LocomotionPolicyConfig, source: str) -> tuple[str, str]:
    """Input and output names, after checking sizes and the metadata against the config."""
    fix = f"the config ({source}) and the ONNX file ({path}) describe different policies"
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ConfigError(f"{path}: the network takes {len(inputs)} inputs {[i.name for i in inputs]}; "
                          "the locomotion layer feeds one observation vector")
    if not outputs:
        raise ConfigError(f"{path}: the network has no output")
    size_in = inputs[0].shape[-1] if inputs[0].shape else None
    if size_in != config.observation_size:
        terms = " + ".join(f"{t.name} {t.size}" for t in config.observation)
        raise ConfigError(
            f"{fix}: the network's input {inputs[0].name!r} takes {size_in} numbers (shape {inputs[0].shape}), "
            f"the config's observation has {config.observation_size} ({terms}, history {config.history_length})"
        )
    size_out = outputs[0].shape[-1] if outputs[0].shape else None
    if size_out != len(config.joint_names):
        raise ConfigError(
            f"{fix}: the network's output {outputs[0].name!r} has {size_out} numbers (shape {outputs[0].shape}), "
            f"the config has {len(config.joint_names)} joints"
        )
    for port in (inputs[0], outputs[0]):
        if port.type != "tensor(float)":
            raise ConfigError(f"{path}: {port.name!r} is {port.type}; the locomotion layer exchanges float32 tensors")

    meta = session.get_modelmeta().custom_metadata_map
    parsed: dict[str, Any] = {}
    for key in ("dof_names", "kp", "kd", "command_ranges"):
        if key in meta:
            try:
                parsed[key] = json.loads(meta[key])
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{path}: its metadata {key!r} is not JSON ({e}): {meta[key][:80]!r}") from None
    if "dof_names" in parsed and list(parsed["dof_names"]) != list(config.joint_names):
        theirs, ours = list(parsed["dof_names"]), list(config.joint_names)
        first = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
        raise ConfigError(
            f"{fix}: joint {first} is {theirs[first] if first < len(theirs) else None!r} in the file's metadata "
            f"(dof_names, {len(theirs)} joints) but {ours[first] if first < len(ours) else None!r} in joint_names "
            f"({len(ours)} joints)"
        )
    for key in ("kp", "kd"):
        if key not in parsed:
            continue
        theirs = np.asarray(parsed[key], dtype=np.float64).reshape(-1)
        ours = np.array([getattr(config, key)[n] for n in config.joint_names])
        if theirs.shape != ours.shape:
            raise ConfigError(f"{fix}: the file's metadata has {theirs.size} {key} gains, the config {ours.size}")
        bad = np.flatnonzero(~np.isclose(theirs, ours, rtol=1e-6, atol=1e-9))
        if bad.size:
            i = int(bad[0])
            raise ConfigError(
                f"{fix}: {key} of {config.joint_names[i]!r} is {theirs[i]:.9g} in the file's metadata but "
                f"{ours[i]:.9g} in the config ({bad.size} joints differ)"
            )
    ranges = parsed.get("command_ranges")
    if isinstance(ranges, dict):
        for theirs_key, ours_key in (("lin_vel_x", "vx"), ("lin_vel_y", "vy"), ("ang_vel_yaw", "yaw_rate")):
            if theirs_key in ranges:
                theirs = [float(v) for v in ranges[theirs_key]]
                ours = list(getattr(config.command_ranges, ours_key))
                if not np.allclose(theirs, ours):
                    raise ConfigError(
                        f"{fix}: command_ranges.{ours_key} is {ours} in the config, but the policy was trained on "
                        f"{theirs} ({theirs_key} in the file's metadata)"
                    )
    return inputs[0].name, outputs[0].name


# --------------------------------------------------------------------------------------------
# The policy


class GaitClock:
    """The gait phase of the left and right foot, as holosoma's policies read it.

    Two clocks, left foot at 0 and right at pi after :meth:`reset`, advance by ``2 pi dt / period_s``
    per step, wrapped to [-pi, pi). A command below ``stand_threshold`` (speed and yaw rate) holds both
    at pi (both feet down); the first moving command after standing restarts them at (0, pi), so every
    walk starts on the same foot. :class:`LocomotionPolicy` and ``roboreward/G1Loco-v0`` share it, so a
    policy trained in the env sees the phase its teacher sees.
    """

    def __init__(self, dt: float, period_s: float, stand_threshold: float) -> None:
        self._step = 2.0 * math.pi * dt / period_s
        self.stand_threshold = stand_threshold
        self.reset()

    def reset(self) -> None:
        self.phase = np.array([0.0, math.pi])
        self.standing = False

    def advance(self, vx: float, vy: float, yaw_rate: float) -> np.ndarray:
        """One step under the command (vx, vy, yaw_rate); returns the phases (rad)."""
        if math.hypot(vx, vy) < self.stand_threshold and abs(yaw_rate) < self.stand_threshold:
            self.phase[:] = math.pi
            self.standing = True
        elif self.standing:
            self.phase[:] = (0.0, math.pi)
            self.standing = False
        else:
            self.phase = np.fmod(self.phase + self._step + math.pi, 2.0 * math.pi) - math.pi
        return self.phase


class LocomotionPolicy:
    """An ONNX locomotion policy: :meth:`act` turns commands and state into joint targets.

    Attributes: ``config``, ``joint_names``, ``default_pose`` / ``kp`` / ``kd`` (float64 arrays in
    joint order), ``dt`` (seconds per step), ``observation_size``, ``term_slices`` (term name ->
    its slice of the observation), and after each :meth:`act`: ``last_observation`` (float32, what
    the network read), ``last_action`` (the raw action, clipped), ``last_command`` (clipped) and
    ``reference_pose`` (what joints are observed against and actions add to: ``default_pose``, or
    the squat's pose for the height being followed).
    """

    def __init__(self, config: LocomotionPolicyConfig, *, source: str | None = None) -> None:
        """Load and check the ONNX file ``config.onnx``; ``source`` names the config in messages (its YAML file)."""
        self.config = config
        self.source = source or f"locomotion config {config.name!r}"  # the YAML file, when loaded from one
        self.path = resolve_onnx_path(config.onnx)
        self._session = onnx_session(self.path)
        self._input_name, self._output_name = _check_layout(self._session, self.path, config, self.source)

        self.joint_names = list(config.joint_names)
        self.default_pose = np.array([config.default_pose[n] for n in self.joint_names], dtype=np.float64)
        self.kp = np.array([config.kp[n] for n in self.joint_names], dtype=np.float64)
        self.kd = np.array([config.kd[n] for n in self.joint_names], dtype=np.float64)
        self.dt = 1.0 / config.control_hz
        self.observation_size = config.observation_size
        h = config.history_length
        self.term_slices: dict[str, slice] = {}
        start = 0
        for term in config.observation:
            self.term_slices[term.name] = slice(start, start + term.size * h)
            start += term.size * h
        self._squat_joints = np.array(
            [[self.joint_names.index(n) for n in leg] for leg in config.squat.legs] if config.squat else [],
            dtype=np.int64).reshape(-1, 3)
        ranges = config.command_ranges
        self._low = np.array([ranges.vx[0], ranges.vy[0], ranges.yaw_rate[0]])
        self._high = np.array([ranges.vx[1], ranges.vy[1], ranges.yaw_rate[1]])
        self._clock = GaitClock(self.dt, config.gait_period_s, config.stand_threshold)
        self._input = np.zeros((1, self.observation_size), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Start again: no previous action, empty history, phase clocks at (0, pi)."""
        n = len(self.joint_names)
        self._history = {t.name: np.zeros((self.config.history_length, t.size), dtype=np.float32)
                         for t in self.config.observation}
        self._clock.reset()
        self._reference_height = self.config.squat.standing_height if self.config.squat else math.nan
        self.reference_pose = self.default_pose.copy()
        self.last_action = np.zeros(n, dtype=np.float32)
        self.last_observation = np.zeros(self.observation_size, dtype=np.float32)
        self.last_command: LocomotionCommand | None = None

    @property
    def phase(self) -> np.ndarray:
        """The gait phase of the left and right foot (rad, in [-pi, pi])."""
        return self._clock.phase.copy()

    def act(self, command: LocomotionCommand | Sequence[float], state: LocomotionState) -> np.ndarray:
        """One policy step: float64 joint position targets in ``joint_names`` order.

        :param command: ``(vx, vy, yaw_rate, base_height)``; clipped to ``command_ranges`` (the
            height too, for a policy that reads it; otherwise only checked finite).
        :param state: the robot now (see :class:`LocomotionState`).
        """
        cmd = self._command(command)
        q, dq, w, gravity = self._state(state)
        if self.config.squat is not None:
            self._follow_height(cmd[3])

        # The phase moves before the observation is built, as in holosoma's loop (phase, then act).
        phase = self._clock.advance(*cmd[:3])

        values = {
            "base_ang_vel": w,
            "projected_gravity": gravity,
            "command_lin_vel": cmd[0:2],
            "command_ang_vel": cmd[2:3],
            "command_base_height": cmd[3:4],
            "dof_pos": q - self.reference_pose,
            "dof_vel": dq,
            "actions": self.last_action,
            "sin_phase": np.sin(phase),
            "cos_phase": np.cos(phase),
        }
        obs = self._input[0]
        for term in self.config.observation:
            history = self._history[term.name]
            history[:-1] = history[1:]
            history[-1] = np.asarray(values[term.name], dtype=np.float64) * term.scale
            obs[self.term_slices[term.name]] = history.reshape(-1)
        if not np.all(np.isfinite(obs)):  # inputs were checked; this catches an overflowing scale
            bad = [name for name, s in self.term_slices.items() if not np.all(np.isfinite(obs[s]))]
            raise NonFiniteError(f"{self.config.name}: observation terms {bad} are not finite; nothing was sent")

        action = self._session.run([self._output_name], {self._input_name: self._input})[0].reshape(-1)
        if not np.all(np.isfinite(action)):
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(action))]
            raise NonFiniteError(
                f"{self.config.name}: the network ({self.path}) returned NaN or inf for {bad} from a finite "
                "observation; the file may be damaged"
            )
        clip = self.config.action_clip
        self.last_action = np.clip(action, -clip, clip).astype(np.float32)
        self.last_observation = obs.copy()
        return self.last_targets

    @property
    def last_targets(self) -> np.ndarray:
        """The joint targets the last :meth:`act` returned (the default pose before the first): where the
        policy means its joints to be, which a caller driving some of them itself can show it instead."""
        return self.reference_pose + self.config.action_scale * self.last_action.astype(np.float64)

    def _follow_height(self, height: float) -> None:
        """Move the squat's reference height toward ``height`` (at most ``squat.rate``) and bend the reference pose
        (kept as it is while the height holds: the reference pose always belongs to the reference height)."""
        squat = self.config.squat
        step = squat.rate * self.dt
        moved = min(max(height - self._reference_height, -step), step)
        if moved == 0.0:
            return
        self._reference_height += moved
        depth = squat.standing_height - self._reference_height
        a, b = squat.thigh, squat.shank
        pose = self.default_pose.copy()
        for hip, knee, ankle in self._squat_joints:
            k0 = self.default_pose[knee]
            reach = _hip_to_ankle(squat, k0) - depth
            k = math.acos(min(1.0, max(-1.0, (reach * reach - a * a - b * b) / (2.0 * a * b))))
            pose[[hip, knee, ankle]] += np.subtract(flat_foot_leg(a, b, k), flat_foot_leg(a, b, k0))
            pose[hip] += squat.lean * depth
        self.reference_pose = pose

    # -- checks ----------------------------------------------------------------------------------

    def _command(self, command: LocomotionCommand | Sequence[float]) -> np.ndarray:
        try:
            cmd = np.array([float(v) for v in command], dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"command must be (vx, vy, yaw_rate, base_height) numbers, got {command!r}") from None
        if cmd.shape != (4,):
            raise ValueError(f"command must be 4 numbers (vx, vy, yaw_rate, base_height), got {len(cmd)}: {command!r}")
        if not np.all(np.isfinite(cmd)):
            bad = [f for f, v in zip(LocomotionCommand._fields, cmd) if not math.isfinite(v)]
            raise NonFiniteError(f"command {bad} is NaN or infinite ({cmd.tolist()}); refused before the network")
        cmd[:3] = np.clip(cmd[:3], self._low, self._high)
        height = self.config.command_ranges.base_height
        if height is not None:
            cmd[3] = min(max(cmd[3], height[0]), height[1])
        self.last_command = LocomotionCommand(*(float(v) for v in cmd))
        return cmd

    def _state(self, state: LocomotionState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = len(self.joint_names)
        parts = {
            "joint_positions": (np.asarray(state.joint_positions, dtype=np.float64), (n,)),
            "joint_velocities": (np.asarray(state.joint_velocities, dtype=np.float64), (n,)),
            "base_angular_velocity": (np.asarray(state.base_angular_velocity, dtype=np.float64), (3,)),
            "projected_gravity": (state.gravity_in_base(), (3,)),
        }
        for name, (value, shape) in parts.items():
            if value.shape != shape:
                raise ValueError(f"state.{name}: expected shape {shape} (joint order: joint_names), got {value.shape}")
            if not np.all(np.isfinite(value)):
                where = np.flatnonzero(~np.isfinite(value))
                which = [self.joint_names[i] for i in where] if shape == (n,) else where.tolist()
                raise NonFiniteError(f"state.{name} is NaN or infinite at {which}; refused before the network")
        return tuple(v for v, _ in parts.values())  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (f"LocomotionPolicy({self.config.name!r}, {self.path.name}, joints={len(self.joint_names)}, "
                f"observation={self.observation_size}, {self.config.control_hz:g} Hz)")


__all__ = [
    "CommandRanges",
    "GaitClock",
    "LocomotionCommand",
    "LocomotionPolicy",
    "LocomotionPolicyConfig",
    "LocomotionState",
    "ObservationTerm",
    "SquatConfig",
    "load_locomotion_config",
    "load_locomotion_policy",
    "locomotion_policy_names",
    "resolve_onnx_path",
]
