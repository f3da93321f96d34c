"""The simulated robots the cockpit drives: MuJoCo models with their arms, hands, base and cameras.

A teleoperation session needs little from a robot: a flat vector of joint targets in a fixed order
(arms, then hands), position control that tracks them, a way to move the base from the pedal, and
camera frames. :class:`TeleopRobot` gives exactly that for any MJCF described by a YAML file in
``configs/teleop/robots/`` (``g1.yaml``: the Unitree G1 with two Dex3 hands; ``franka.yaml``: the
Franka Panda with its gripper)::

    robot = make_teleop_robot("g1", cameras=["head"], size=(320, 240))
    q_arm = robot.arms_from_exoskeleton("left", exo_left.get_action_array())   # joint i -> joint i
    q_hand = robot.hands_from_glove("left", glove_left_channels)               # retargeted, clamped
    robot.set_targets(robot.compose_targets(arms={"left": q_arm}, hands={"left": q_hand}))
    robot.set_base_command(pedal_mapper.update(axes, robot.dt), robot.dt)
    robot.step()                                                               # physics for robot.dt
    frame = robot.render("head")                                               # uint8 [240, 320, 3]

Arms are isomorphic to the exoskeleton: the YAML lists each arm's joints in kinematic order from
the shoulder, exoskeleton joint i drives the i-th listed joint, and the robot checks at build time
that the list really is one chain in that order. Hands are either ``dexterous`` (a
:class:`~roboreward.teleop.retarget.HandRetargeter` from ``configs/teleop/hands``) or a
``gripper`` (its finger joints move together with the glove's mean closure).

Control: every commanded joint must be moved by a position actuator of the model (a joint or fixed
tendon actuator with an affine bias, ``force = kp * ctrl - kp * length - kv * velocity``, as MJCF's
``<position>`` and Franka's ``<general>`` servos are). The controls that put each actuator's
equilibrium at the targets are computed from the actuator parameters (``ctrl = -(b0 + b1 * gear *
length_target) / kp``), so a tendon-driven gripper is commanded in finger-joint units like the rest.
Joints the operator does not drive (legs, waist) are held at the keyframe, unless a walking base's
policy drives them.

Base (G1), from the pedal's :class:`~roboreward.teleop.calibration.LocoCommand`:

- ``base.type: walking`` (the G1 file's): the robot stands on its legs on the floor and a locomotion
  policy (``base.locomotion``, the holosoma G1 policy) walks and turns it, its legs and waist
  servoed at the policy's gains, the arms and hands the operator's (:mod:`roboreward.teleop.walking`).
- ``base.type: kinematic``: forward velocity and yaw rate are integrated into the pelvis pose, the
  pelvis height follows the squat command, and the legs are posed kinematically (a planar
  hip-knee-ankle solution that keeps the feet flat and under the hips) so the feet stay on the floor
  while squatting; the feet glide, they do not step.
- ``base.type: fixed`` keeps the pelvis where the keyframe puts it.

The arms and hands are simulated physically under the moving base in every case.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from roboreward.config import ChoiceConfig, bounded, find_named, load_config, shipped_names
from roboreward.envs.geometry import flat_foot_leg, lowest_point
from roboreward.envs.rendering import FrameRenderer, RenderOptions  # sets MUJOCO_GL=egl before mujoco loads
from roboreward.hardware.robot import yaw_from_quaternion
from roboreward.errors import ConfigError
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.mjcf import body_id, cached_model, joint_id, joint_limits_from_model, resolve_model_path
from roboreward.teleop.retarget import HandRetargeter, load_hand_retargeting
from roboreward.teleop.walking import WalkingBase

import mujoco  # noqa: E402  (after rendering: it picks the GL backend)


# --------------------------------------------------------------------------------------------
# Configs


@dataclass(kw_only=True)
class CameraConfig:
    """A camera to render; added to the model unless ``existing``."""

    name: str = bounded("", "camera name, used by render(name)")
    existing: bool = bounded(False, "the model already has this camera; nothing below is used")
    body: str = bounded("world", "body the camera is attached to ('world' for a fixed camera)")
    pos: list[float] = bounded([0.0, 0.0, 0.0], "position in the body's frame (m)")
    xyaxes: list[float] = bounded([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "camera x (right) and y (up) axes in the body frame")
    fovy: float = bounded(45.0, "vertical field of view (degrees)", gt=0.0, lt=180.0)
    # 'track' keeps the camera's offset from its body fixed in world axes: a follow camera that does not spin.
    mode: Literal["fixed", "track", "trackcom"] = "fixed"

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("cameras[].name: empty; name every camera")
        if len(self.pos) != 3:
            raise ConfigError(f"cameras.{self.name}.pos: expected 3 numbers, got {self.pos}")
        if len(self.xyaxes) != 6:
            raise ConfigError(
                f"cameras.{self.name}.xyaxes: expected 6 numbers (x axis, then y axis), got {self.xyaxes}"
            )


@dataclass(kw_only=True)
class TeleopHandConfig(ChoiceConfig):
    """What one side's glove drives; ``type`` picks ``dexterous`` or ``gripper``."""


@TeleopHandConfig.register_subclass("dexterous")
@dataclass(kw_only=True)
class DexterousHandConfig(TeleopHandConfig):
    """A multi-fingered hand driven through a retargeting map (configs/teleop/hands)."""

    retargeting: str = bounded("", "hand retargeting name (configs/teleop/hands/NAME.yaml) or YAML path")


@TeleopHandConfig.register_subclass("gripper")
@dataclass(kw_only=True)
class GripperConfig(TeleopHandConfig):
    """A parallel gripper: its finger joints go from ``open`` to ``closed`` with the glove's mean closure."""

    joints: list[str] = bounded([], "finger joints, all commanded together")
    open: float = bounded(0.04, "finger joint position with the hand open (m or rad)")
    closed: float = bounded(0.0, "finger joint position with a fist")
    channels: list[int] = bounded([], "glove channels averaged into the closure; all channels if empty")

    def __post_init__(self) -> None:
        if not self.joints:
            raise ConfigError("hands.*.joints: empty; list the gripper's finger joints")


@dataclass(kw_only=True)
class BaseConfig:
    """How the base moves. See the module docstring for what each ``type`` does."""

    type: Literal["fixed", "kinematic", "walking"] = "fixed"
    # fixed / kinematic: the free joint is removed and its body made a mocap body: a base with infinite
    # mass, placed exactly where the command puts it, whose motion the arms do not push back on.
    # walking: the free joint stays; the legs carry the robot.
    free_joint: str | None = bounded(None, "the model's free joint (floating base); null for an arm")
    # Per side [hip_pitch, knee, ankle_pitch]: the planar chain posed for the commanded height.
    legs: dict[str, list[str]] = bounded({}, "per side the hip pitch, knee and ankle pitch joints, for squatting")
    feet: list[str] = bounded([], "foot bodies; their lowest collision point rests on the floor")
    initial_height: float | None = bounded(None, "base height (m) at start; the keyframe's if null", gt=0.0)
    # walking: see roboreward.teleop.walking
    locomotion: str = bounded("g1_holosoma", "walking: the locomotion policy (configs/locomotion NAME or a YAML)")
    arm_observation: Literal["commanded", "measured"] = bounded(
        "commanded", "walking: what the policy reads of the operator's arms: its own targets, or the real state"
    )
    fall_height: float = bounded(0.35, "walking: a pelvis below this height (m) is a fall", gt=0.0)

    def __post_init__(self) -> None:
        for side, joints in self.legs.items():
            if len(joints) != 3:
                raise ConfigError(f"base.legs.{side}: expected [hip_pitch, knee, ankle_pitch], got {joints}")
        if self.type in ("kinematic", "walking") and self.free_joint is None:
            raise ConfigError(f"base.type: {self.type!r} needs base.free_joint (the floating base it moves)")
        if self.legs and not self.feet:
            raise ConfigError("base.feet: empty; squatting needs the foot bodies that stay on the floor")
        if self.type == "walking" and not self.feet:
            raise ConfigError("base.feet: empty; a walking robot starts with these foot bodies on the floor")


@dataclass(kw_only=True)
class TeleopRobotConfig:
    """One robot the cockpit can drive (one YAML in ``configs/teleop/robots``)."""

    name: str = bounded("", "robot name")
    model: str = bounded("", "MJCF scene: a path relative to this file, or pkg://PACKAGE/PATH")
    keyframe: str | None = bounded(None, "keyframe to start from (and hold undriven joints at)")
    control_dt: float = bounded(
        0.02, "seconds of physics per step(); rounded to whole physics timesteps", gt=0.0, le=1.0
    )
    # Exoskeleton joint i drives arms[side][i]: list the joints shoulder first, in kinematic order.
    arms: dict[str, list[str]] = bounded({}, "per side ('left'/'right') the arm joints, shoulder first")
    hands: dict[str, TeleopHandConfig] = bounded({}, "per side what the glove drives")
    base: BaseConfig = field(default_factory=BaseConfig)
    floor: bool = bounded(False, "add a floor, a light and a sky (for bare robot models that have none)")
    show_sites: bool = bounded(False, "render the model's sites (frames, markers)")
    # Real arms (Franka, and the G1's low-level controller) add a gravity model to the servo torque;
    # without it a stiff servo still sags by torque / kp (6 mrad on Franka's joint 4).
    gravity_compensation: bool = bounded(True, "add the bias forces (gravity, Coriolis) at the commanded joints")
    cameras: list[CameraConfig] = bounded([], "cameras to render, in order; the first is the default")

    def __post_init__(self) -> None:
        if not self.arms:
            raise ConfigError("arms: empty; give at least one side's arm joints")
        for part, sides in (("arms", self.arms), ("hands", self.hands)):
            for side in sides:
                if side not in ("left", "right"):
                    raise ConfigError(f"{part}.{side}: unknown side {side!r}; use 'left' or 'right'")
        for side in self.hands:
            if side not in self.arms:
                raise ConfigError(f"hands.{side}: there is no {side} arm; hands follow the arms' sides")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f"cameras: a name is listed twice in {names}")
        if not self.cameras:
            raise ConfigError("cameras: empty; give at least one camera to render")


def teleop_robot_names() -> list[str]:
    """The robots shipped in ``roboreward/configs/teleop/robots``."""
    return shipped_names("teleop robot")


def load_teleop_robot_config(name_or_path: str | Path, overrides: Sequence[str] = ()) -> TeleopRobotConfig:
    """A shipped robot by name (``"g1"``, ``"franka"``) or a YAML file; ``overrides`` as ``key=value``."""
    path = find_named(name_or_path, "teleop robot")
    config = load_config(path, list(overrides), cls=TeleopRobotConfig)  # its errors name the file
    config.model = str(resolve_model_path(config.model, path.parent))
    for hand in config.hands.values():  # a hand file next to the robot file
        if isinstance(hand, DexterousHandConfig) and hand.retargeting.endswith((".yaml", ".yml")):
            hand.retargeting = str((path.parent / hand.retargeting).resolve())
    return config


# --------------------------------------------------------------------------------------------
# Building the MuJoCo model


def _build_model(config: TeleopRobotConfig) -> tuple[mujoco.MjModel, str | None]:
    """The compiled model, and the name of the body made kinematic (None for a fixed-base arm)."""
    spec = mujoco.MjSpec.from_file(str(resolve_model_path(config.model)))
    if config.floor:
        _add_floor(spec)
    base_body = None
    if config.base.type == "walking":
        base_body = _free_body(spec, config.base.free_joint)
    elif config.base.free_joint is not None:
        base_body = _make_base_kinematic(spec, config.base.free_joint)
        _exclude_leg_contacts(spec, config.base, base_body)
    if not config.show_sites:
        for site in spec.sites:
            site.group = 5  # the renderer shows groups 0-2 by default
    for cam in config.cameras:
        if cam.existing:
            continue
        parent = spec.worldbody if cam.body == "world" else spec.body(cam.body)
        if parent is None:
            raise ConfigError(f"cameras.{cam.name}.body: body {cam.body!r} is not in the model")
        c = parent.add_camera(name=cam.name, pos=list(cam.pos), fovy=cam.fovy, mode=_CAMERA_MODES[cam.mode])
        c.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
        c.alt.xyaxes = list(cam.xyaxes)
    try:
        model = spec.compile()
    except ValueError as e:
        raise ConfigError(f"robot {config.name!r}: the model does not compile: {e}") from e
    for cam in config.cameras:
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam.name) < 0:
            raise ConfigError(f"cameras.{cam.name}: marked existing but the model has no such camera")
    return model, base_body


def _free_body(spec: mujoco.MjSpec, free_joint: str) -> str:
    """The body that ``free_joint`` (a free joint of a child of the world) moves."""
    joint = spec.joint(free_joint)
    if joint is None:
        names = [j.name for j in spec.joints]
        raise ConfigError(f"base.free_joint: {free_joint!r} is not in the model; its joints: {names[:8]}...")
    if joint.type != mujoco.mjtJoint.mjJNT_FREE:
        raise ConfigError(f"base.free_joint: {free_joint!r} is not a free joint")
    body = joint.parent
    if body.parent is not None and body.parent.name != spec.worldbody.name:
        raise ConfigError(f"base.free_joint: {free_joint!r} moves {body.name!r}, which is not a child of the world")
    return body.name


def _make_base_kinematic(spec: mujoco.MjSpec, free_joint: str) -> str:
    """Replace the free joint by a mocap body, carrying the keyframes' base poses over to mocap poses."""
    body = spec.body(_free_body(spec, free_joint))
    joint = spec.joint(free_joint)
    sizes = {mujoco.mjtJoint.mjJNT_FREE: (7, 6), mujoco.mjtJoint.mjJNT_BALL: (4, 3)}
    qadr = vadr = 0
    for j in spec.joints:
        if j.name == free_joint:
            break
        nq, nv = sizes.get(j.type, (1, 1))
        qadr, vadr = qadr + nq, vadr + nv
    for key in spec.keys:
        qpos, qvel = list(key.qpos), list(key.qvel)
        if qpos:
            key.mpos, key.mquat = qpos[qadr:qadr + 3], qpos[qadr + 3:qadr + 7]
            key.qpos = qpos[:qadr] + qpos[qadr + 7:]
        if qvel:
            key.qvel = qvel[:vadr] + qvel[vadr + 6:]
    joint.delete()
    body.mocap = True
    return body.name


def _exclude_leg_contacts(spec: mujoco.MjSpec, base: BaseConfig, base_body: str) -> None:
    """Kinematic legs need no contacts with the floor or the base: skipping them halves the G1's physics step.

    The hands still collide with the legs, and the arms with the torso.
    """
    for side, joints in base.legs.items():
        joint = spec.joint(joints[0])
        if joint is None:
            raise ConfigError(f"base.legs.{side}: joint {joints[0]!r} is not in the model")
        stack, leg = [joint.parent], []
        while stack:
            body = stack.pop()
            leg.append(body.name)
            stack.extend(body.bodies)
        for name in leg:
            spec.add_exclude(bodyname1=spec.worldbody.name, bodyname2=name)
            spec.add_exclude(bodyname1=base_body, bodyname2=name)


_CAMERA_MODES = {
    "fixed": mujoco.mjtCamLight.mjCAMLIGHT_FIXED,
    "track": mujoco.mjtCamLight.mjCAMLIGHT_TRACK,
    "trackcom": mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM,
}


def _add_floor(spec: mujoco.MjSpec) -> None:
    spec.add_texture(name="teleop_sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT, rgb1=[0.3, 0.5, 0.7], rgb2=[0.0, 0.0, 0.0],
                     width=512, height=3072)
    spec.add_texture(name="teleop_floor", type=mujoco.mjtTexture.mjTEXTURE_2D,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, rgb1=[0.2, 0.3, 0.4], rgb2=[0.1, 0.2, 0.3],
                     width=300, height=300)
    material = spec.add_material(name="teleop_floor")
    textures = list(material.textures)
    textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "teleop_floor"
    material.textures = textures
    material.texrepeat = [5, 5]
    material.texuniform = True
    spec.visual.rgba.haze = [0.15, 0.25, 0.35, 1.0]  # the default white haze draws a bright horizon line
    spec.worldbody.add_geom(name="teleop_floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05],
                            material="teleop_floor")
    spec.worldbody.add_light(name="teleop_light", pos=[0, 0, 3], dir=[0, 0, -1], directional=True,
                             diffuse=[0.7, 0.7, 0.7])


def _model_for(config: TeleopRobotConfig) -> tuple[mujoco.MjModel, str | None]:
    cams = tuple((c.name, c.existing, c.body, tuple(c.pos), tuple(c.xyaxes), c.fovy, c.mode) for c in config.cameras)
    base = (config.base.type == "walking", config.base.free_joint, tuple((k, tuple(v)) for k, v in sorted(config.base.legs.items())))
    key = ("robot", config.model, base, config.floor, config.show_sites, cams)
    # Each robot gets its own copy: renderers and options write into the model.
    model, base_body = cached_model(key, lambda: _build_model(config))
    return copy.deepcopy(model), base_body


# --------------------------------------------------------------------------------------------
# The robot


class TeleopRobot:
    """A MuJoCo robot under position control, driven joint by joint by the cockpit.

    Build with :func:`make_teleop_robot`. Attributes: ``name``, ``joint_names`` (arms then hands, the
    order of every target/position vector), ``arm_joints`` / ``hand_joints`` (side -> names),
    ``lower`` / ``upper`` (the commanded joints' limits), ``dt`` (seconds per :meth:`step`),
    ``cameras``, ``model`` / ``data`` (MuJoCo).
    """

    def __init__(
        self,
        config: TeleopRobotConfig,
        *,
        cameras: Sequence[str] | None = None,
        size: tuple[int, int] = (320, 240),
    ) -> None:
        self.config = config
        self.name = config.name
        self.model, self._base_body_name = _model_for(config)
        self.data = mujoco.MjData(self.model)
        m = self.model
        if config.keyframe is not None:
            kid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, config.keyframe)
            if kid < 0:
                keys = [m.key(i).name for i in range(m.nkey)]
                raise ConfigError(f"keyframe: {config.keyframe!r} is not in the model; its keyframes: {keys}")
            self._key_id: int | None = kid
        else:
            self._key_id = None
        self._substeps = max(1, round(config.control_dt / m.opt.timestep))
        self.dt = self._substeps * m.opt.timestep

        # Joints: arms (left before right), then hands in the same side order.
        sides = [s for s in ("left", "right") if s in config.arms]
        self.arm_joints: dict[str, list[str]] = {s: list(config.arms[s]) for s in sides}
        for side in sides:
            self._check_chain(side, self.arm_joints[side])
        all_limits = {m.joint(i).name: tuple(joint_limits_from_model(m, [m.joint(i).name])[0]) for i in range(m.njnt)}
        self._retargeters: dict[str, HandRetargeter] = {}
        self._grippers: dict[str, GripperConfig] = {}
        self.hand_joints: dict[str, list[str]] = {}
        for side in sides:
            hand = config.hands.get(side)
            if hand is None:
                continue
            if isinstance(hand, DexterousHandConfig):
                retargeter = HandRetargeter(load_hand_retargeting(hand.retargeting), all_limits, side=side)
                self._retargeters[side] = retargeter
                self.hand_joints[side] = list(retargeter.joint_names)
            elif isinstance(hand, GripperConfig):
                self._grippers[side] = hand
                self.hand_joints[side] = list(hand.joints)
        self.joint_names: list[str] = [n for s in sides for n in self.arm_joints[s]]
        self.joint_names += [n for s in sides if s in self.hand_joints for n in self.hand_joints[s]]
        if len(set(self.joint_names)) != len(self.joint_names):
            dup = next(n for n in self.joint_names if self.joint_names.count(n) > 1)
            raise ConfigError(f"joint {dup!r} is driven twice (by an arm and a hand, or by both sides)")
        self._jid = np.array([joint_id(m, n) for n in self.joint_names])
        for n, j in zip(self.joint_names, self._jid):
            if m.jnt_type[j] not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                raise ConfigError(f"joint {n!r} is not a hinge or slide joint; only 1-DoF joints can be commanded")
        self._qadr = m.jnt_qposadr[self._jid]
        self._vadr = m.jnt_dofadr[self._jid]
        limits = joint_limits_from_model(m, self.joint_names)
        self.lower = limits[:, 0].copy()
        self.upper = limits[:, 1].copy()
        index = {n: i for i, n in enumerate(self.joint_names)}
        self._arm_index = {s: np.array([index[n] for n in self.arm_joints[s]]) for s in sides}
        self._hand_index = {s: np.array([index[n] for n in self.hand_joints[s]]) for s in self.hand_joints}
        for side, grip in self._grippers.items():
            lo, hi = self.lower[self._hand_index[side]], self.upper[self._hand_index[side]]
            for value, what in ((grip.open, "open"), (grip.closed, "closed")):
                if np.any(value < lo - 1e-9) or np.any(value > hi + 1e-9):
                    raise ConfigError(f"hands.{side}.{what}: {value} is outside the finger joints' limits")

        # A walking base re-tunes its joints' servos to the policy's gains: before the servo map is read.
        self._walker: WalkingBase | None = None
        if config.base.type == "walking":
            b = config.base
            self._walker = WalkingBase(m, self.joint_names, self.dt, free_joint=b.free_joint or "",
                                       locomotion=b.locomotion, arm_observation=b.arm_observation,
                                       fall_height=b.fall_height)
        self._setup_actuators()
        self._setup_base()

        self.cameras: list[str] = [c.name for c in config.cameras]
        if cameras is not None:
            unknown = [c for c in cameras if c not in self.cameras]
            if unknown:
                raise ConfigError(
                    f"camera {unknown[0]!r} is not configured for {self.name}; choose from {self.cameras}"
                )
            self.cameras = list(cameras)
        width, height = size
        self._render_options = RenderOptions(width=int(width), height=int(height))  # validates the size
        self._renderers: dict[str, FrameRenderer] = {}
        self.reset()

    # -- set-up ------------------------------------------------------------------------------

    def _check_chain(self, side: str, joints: list[str]) -> None:
        """Exoskeleton joint i drives joint i: the list must be one chain, shoulder first."""
        m = self.model
        bodies = [m.jnt_bodyid[joint_id(m, n)] for n in joints]
        for k in range(1, len(bodies)):
            b = bodies[k]
            while b not in (0, bodies[k - 1]):
                b = m.body_parentid[b]
            if b != bodies[k - 1]:
                raise ConfigError(
                    f"arms.{side}: {joints[k]!r} does not come after {joints[k - 1]!r} in the kinematic chain; "
                    "list the arm joints shoulder first, in chain order (exoskeleton joint i drives joint i)"
                )

    def _setup_actuators(self) -> None:
        """Find the position actuators and the linear map joint targets -> controls."""
        m = self.model
        # length_a = gear_a * sum_j C[a, j] * q_j for joint and fixed-tendon transmissions
        C = np.zeros((m.nu, m.njnt))
        servo = np.zeros(m.nu, dtype=bool)
        for a in range(m.nu):
            gain, b1 = m.actuator_gainprm[a, 0], m.actuator_biasprm[a, 1]
            if m.actuator_biastype[a] != mujoco.mjtBias.mjBIAS_AFFINE or gain <= 0 or b1 >= 0:
                continue  # not a position servo (a motor, a velocity servo...)
            if m.actuator_gaintype[a] != mujoco.mjtGain.mjGAIN_FIXED:
                continue
            trn, obj = m.actuator_trntype[a], m.actuator_trnid[a, 0]
            one_dof = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
            if trn == mujoco.mjtTrn.mjTRN_JOINT and m.jnt_type[obj] in one_dof:
                C[a, obj] = m.actuator_gear[a, 0]
            elif trn == mujoco.mjtTrn.mjTRN_TENDON:
                adr, num = m.tendon_adr[obj], m.tendon_num[obj]
                if not np.all(m.wrap_type[adr:adr + num] == mujoco.mjtWrap.mjWRAP_JOINT):
                    continue  # a spatial tendon: its length is not linear in the joints
                for w in range(adr, adr + num):
                    C[a, m.wrap_objid[w]] += m.actuator_gear[a, 0] * m.wrap_prm[w]
            else:
                continue
            servo[a] = True
        driven = servo[:, None] & (C != 0)
        for n, j in zip(self.joint_names, self._jid):
            if not driven[:, j].any():
                raise ConfigError(
                    f"joint {n!r} has no position actuator in {self.name}'s model; teleoperation commands joints "
                    "through position servos (<position>, or <general> with an affine bias)"
                )
        gain = np.where(servo, m.actuator_gainprm[:, 0], 1.0)
        # equilibrium: gain * ctrl + b0 + b1 * length = 0
        self._ctrl_matrix = np.where(servo[:, None], -m.actuator_biasprm[:, 1:2] * C / gain[:, None], 0.0)
        self._ctrl_offset = np.where(servo, -m.actuator_biasprm[:, 0] / gain, 0.0)
        self._servo = servo
        limited = m.actuator_ctrllimited.astype(bool)
        self._ctrl_lo = np.where(limited, m.actuator_ctrlrange[:, 0], -np.inf)
        self._ctrl_hi = np.where(limited, m.actuator_ctrlrange[:, 1], np.inf)
        self._hinge_slide = np.isin(m.jnt_type, (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE))
        held = driven.any(axis=0) & self._hinge_slide  # every joint a servo holds
        if self.config.base.type == "walking":
            # Only the operator's joints: the legs' policy was trained on plain PD, without a gravity model.
            held &= np.isin(np.arange(m.njnt), self._jid)
        self._comp_dofs = m.jnt_dofadr[np.flatnonzero(held)]

    def _setup_base(self) -> None:
        m, b = self.model, self.config.base
        self._mocap: int | None = None
        if self._base_body_name is not None:  # the free joint's body (a mocap body unless walking)
            self._base_body = body_id(m, self._base_body_name, "base.free_joint")
            if b.type != "walking":
                self._mocap = int(m.body_mocapid[self._base_body])
        else:
            self._base_body = next((i for i in range(1, m.nbody) if m.body_parentid[i] == 0), 0)
        self._legs: dict[str, np.ndarray] = {}
        for side, joints in b.legs.items():
            ids = np.array([joint_id(m, n) for n in joints])
            clash = [n for n in joints if n in self.joint_names]
            if clash:
                raise ConfigError(f"base.legs.{side}: {clash[0]!r} is also an arm or hand joint")
            self._legs[side] = ids
        self._feet = [body_id(m, name, "base.feet") for name in b.feet]
        self._squat_table: tuple[np.ndarray, np.ndarray] | None = None
        if self._legs and b.type != "walking":  # the legs posed for squatting; a walking base's policy moves them
            if self._mocap is None:
                raise ConfigError("base.legs: squatting needs a kinematic base; set base.free_joint")
            self._squat_table = self._build_squat_table()

    def _initial_qpos(self) -> np.ndarray:
        return self.model.key_qpos[self._key_id].copy() if self._key_id is not None else self.model.qpos0.copy()

    def _build_squat_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Base height above the soles -> leg angles (hip pitch, knee, ankle pitch), feet flat under the hips.

        Planar two-link solution with thigh and shank lengths measured in the model, evaluated with
        MuJoCo's kinematics so heights are exact; knee angles past any joint limit are left out.
        """
        m = self.model
        d = mujoco.MjData(m)
        d.qpos[:] = self._initial_qpos()
        hip, knee, ankle = next(iter(self._legs.values()))
        d.mocap_pos[self._mocap] = [0.0, 0.0, 1.0]
        d.mocap_quat[self._mocap] = [1.0, 0.0, 0.0, 0.0]
        for ids in self._legs.values():
            d.qpos[m.jnt_qposadr[ids]] = 0.0
        mujoco.mj_kinematics(m, d)
        p_hip, p_knee, p_ankle = (d.xanchor[j][[0, 2]] for j in (hip, knee, ankle))
        a, b = np.linalg.norm(p_knee - p_hip), np.linalg.norm(p_ankle - p_knee)
        ranges = [m.jnt_range[j] for j in (hip, knee, ankle)]
        knees, heights, angles = [], [], []
        for k in np.linspace(max(0.0, ranges[1][0]), ranges[1][1], 400):
            q = np.array(flat_foot_leg(a, b, k))
            if any(not lo - 1e-9 <= v <= hi + 1e-9 for v, (lo, hi) in zip(q, ranges)):
                break
            for ids in self._legs.values():
                d.qpos[m.jnt_qposadr[ids]] = q
            mujoco.mj_kinematics(m, d)
            heights.append(1.0 - self._sole_height(d))
            knees.append(k)
            angles.append(q)
        h = np.array(heights)
        if len(h) < 2 or np.any(np.diff(h) >= 0):
            raise ConfigError(f"base.legs: cannot pose {self.name}'s legs for squatting (heights not monotonic)")
        return h[::-1].copy(), np.array(angles)[::-1].copy()  # ascending heights for np.interp

    def _sole_height(self, d: mujoco.MjData) -> float:
        """Lowest point of the feet's collision geoms (world z)."""
        m = self.model
        feet = [g for g in range(m.ngeom)
                if m.geom_bodyid[g] in self._feet and (m.geom_contype[g] or m.geom_conaffinity[g])]
        return lowest_point(m, d, feet)

    # -- the cockpit's interface --------------------------------------------------------------

    @property
    def has_base(self) -> bool:
        """True when the pedal moves the base (``base.type`` kinematic or walking): commands and recordings carry it."""
        return self.config.base.type in ("kinematic", "walking")

    @property
    def walking(self) -> WalkingBase | None:
        """The locomotion policy's side of a walking base (``base.type: walking``), else None."""
        return self._walker

    @property
    def fallen(self) -> bool:
        """A walking robot is down (pelvis below ``base.fall_height``, or unstable physics); never for other bases."""
        return self._walker is not None and self._walker.fallen(self.data)

    @property
    def height_range(self) -> tuple[float, float]:
        """Base heights (m) the legs can reach with flat feet (walking: that the policy takes); (h, h) if one."""
        if self._walker is not None:
            return self._walker.height_range
        if self._squat_table is None:
            h = self.base_pose()[3]
            return h, h
        heights = self._squat_table[0]
        return float(heights[0]), float(heights[-1])

    def reset(self) -> None:
        """Back to the keyframe: targets at the start pose, base at its initial pose."""
        m, d = self.model, self.data
        if self._key_id is not None:
            mujoco.mj_resetDataKeyframe(m, d, self._key_id)  # qpos, qvel, mocap poses
        else:
            mujoco.mj_resetData(m, d)
        if self._walker is not None:  # standing in the policy's default pose, soles on the floor
            self._walker.reset(d, self._sole_height)
        self._hold_all = d.qpos[m.jnt_qposadr].copy()  # per joint (1-DoF entries used)
        self._base: np.ndarray | None = None
        if self._mocap is not None:
            x, y, z = d.mocap_pos[self._mocap]
            h0 = self.config.base.initial_height
            self._base = np.array([x, y, yaw_from_quaternion(d.mocap_quat[self._mocap]), z if h0 is None else h0])
            if self._squat_table is not None:
                self._base[3] = float(np.clip(self._base[3], *self.height_range))
            self._write_base(self._base)
            self._pose_legs(self._base[3])
        self._base_from = None if self._base is None else self._base.copy()
        self._targets = np.clip(d.qpos[self._qadr], self.lower, self.upper)
        self._apply_ctrl()
        mujoco.mj_forward(m, d)

    def set_targets(self, targets: Sequence[float] | np.ndarray) -> np.ndarray:
        """Command joint positions (``joint_names`` order); returns them clamped to the limits, as sent."""
        q = np.asarray(targets, dtype=np.float64)
        if q.shape != (len(self.joint_names),):
            raise ValueError(
                f"{self.name} takes {len(self.joint_names)} joint targets (joint_names order), got shape {q.shape}"
            )
        if not np.all(np.isfinite(q)):
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(q))]
            raise ValueError(f"joint targets must be finite; NaN or inf for {bad}")
        self._targets = np.clip(q, self.lower, self.upper)
        self._apply_ctrl()
        return self._targets.copy()

    @property
    def targets(self) -> np.ndarray:
        """The targets currently commanded (clamped)."""
        return self._targets.copy()

    def hold(self) -> np.ndarray:
        """Command the current joint positions (keep still where the robot is, e.g. when a device drops out)."""
        return self.set_targets(np.clip(self.joint_positions(), self.lower, self.upper))

    def arms_from_exoskeleton(self, side: str, calibrated_joint_angles: Sequence[float] | np.ndarray) -> np.ndarray:
        """The ``side`` arm's targets: exoskeleton joint i -> ``arm_joints[side][i]``, clamped to its limits."""
        idx = self._side_index(self._arm_index, side, "arm")
        q = np.asarray(calibrated_joint_angles, dtype=np.float64)
        if q.shape != (len(idx),):
            raise ConfigError(
                f"{self.name}'s {side} arm has {len(idx)} joints ({self.arm_joints[side]}); the exoskeleton gave "
                f"{q.shape[0] if q.ndim == 1 else q.shape} angles; use a {len(idx)}-joint exoskeleton (n_joints)"
            )
        if not np.all(np.isfinite(q)):
            raise ValueError(f"exoskeleton angles must be finite, got {q.tolist()}")
        return np.clip(q, self.lower[idx], self.upper[idx])

    def hands_from_glove(self, side: str, calibrated_channels: Sequence[float] | np.ndarray) -> np.ndarray:
        """The ``side`` hand's targets from calibrated glove channels (0 open .. 1 closed)."""
        idx = self._side_index(self._hand_index, side, "hand")
        if side in self._retargeters:
            return self._retargeters[side](calibrated_channels)
        grip = self._grippers[side]
        x = np.asarray(calibrated_channels, dtype=np.float64)
        if x.ndim != 1 or not np.all(np.isfinite(x)):
            raise ValueError(f"glove channels must be a finite 1-D array, got {x!r}")
        chans = grip.channels or list(range(len(x)))
        if max(chans) >= len(x):
            raise ConfigError(f"hands.{side}.channels uses channel {max(chans)} but the glove sent {len(x)} channels")
        closure = float(np.clip(x[chans], 0.0, 1.0).mean())
        q = np.full(len(idx), grip.open + (grip.closed - grip.open) * closure)
        return np.clip(q, self.lower[idx], self.upper[idx])

    def compose_targets(
        self,
        arms: Mapping[str, np.ndarray] | None = None,
        hands: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """A full target vector: the current targets with the given sides' arm/hand parts replaced."""
        q = self._targets.copy()
        for part, index in ((arms, self._arm_index), (hands, self._hand_index)):
            for side, values in (part or {}).items():
                idx = self._side_index(index, side, "arm" if index is self._arm_index else "hand")
                q[idx] = values
        return q

    def arm_limits(self, side: str) -> list[tuple[float, float]]:
        """``[(lower, upper)] * 7`` of the ``side`` arm: the limits to write into the exoskeleton calibration."""
        idx = self._side_index(self._arm_index, side, "arm")
        return [(float(self.lower[i]), float(self.upper[i])) for i in idx]

    def set_base_command(self, command: LocoCommand, dt: float) -> None:
        """Apply a pedal command for ``dt`` seconds (normally ``self.dt``); a fixed base ignores it.

        Kinematic: the base moves by the command over ``dt``. Walking: the policy walks to it from the next step.
        """
        if self._walker is not None:
            self._walker.set_command(command)
            return
        if self.config.base.type != "kinematic" or self._base is None:
            return  # a fixed base ignores the pedal
        vx, wz, h = float(command.vx), float(command.yaw_rate), float(command.height)
        if not all(math.isfinite(v) for v in (vx, wz, h, dt)) or dt < 0:
            raise ValueError(f"base command must be finite with dt >= 0, got {command} for dt={dt}")
        x, y, yaw, _ = self._base
        mid = yaw + 0.5 * wz * dt  # midpoint heading: exact for constant-curvature motion to second order
        lo, hi = self.height_range
        self._base = np.array([x + vx * math.cos(mid) * dt, y + vx * math.sin(mid) * dt, yaw + wz * dt,
                               float(np.clip(h, lo, hi))])

    def step(self) -> None:
        """Advance the physics by ``dt`` (``control_dt`` rounded to whole timesteps).

        A kinematic base glides to its commanded pose over the step; a walking base's policy sets its
        joints' targets once at the start of the step, from the state then.
        """
        m, d = self.model, self.data
        n = self._substeps
        if self._walker is not None:
            self._hold_all[self._walker.own_joint_ids] = self._walker.targets(d)
            self._apply_ctrl()
        start, end = self._base_from, self._base
        for i in range(n):
            if start is not None and end is not None:  # the base glides from its last pose to the commanded one
                pose = start + (end - start) * (i + 1) / n
                self._write_base(pose)
                self._pose_legs(pose[3])
            if self.config.gravity_compensation:
                # qfrc_bias of the latest forward pass (at most one physics step old)
                d.qfrc_applied[self._comp_dofs] = d.qfrc_bias[self._comp_dofs]
            mujoco.mj_step(m, d)
        if end is not None:
            mujoco.mj_forward(m, d)  # positions of the final base pose, for rendering and base_pose()
            self._base_from = end.copy()

    def joint_positions(self) -> np.ndarray:
        """Measured positions of ``joint_names``."""
        return self.data.qpos[self._qadr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._vadr].copy()

    def base_pose(self) -> np.ndarray:
        """``[x, y, yaw, height]`` of the base body (the pelvis for the G1) in the world."""
        d = self.data
        if self._mocap is not None:
            pos, quat = d.mocap_pos[self._mocap], d.mocap_quat[self._mocap]
        elif self._walker is not None:  # the free joint's pose now (xpos lags one physics step)
            q = self._walker.free_qpos
            pos, quat = d.qpos[q:q + 3], d.qpos[q + 3:q + 7]
        else:
            pos, quat = d.xpos[self._base_body], d.xquat[self._base_body]
        return np.array([pos[0], pos[1], yaw_from_quaternion(quat), pos[2]])

    def render(self, camera: str | None = None) -> np.ndarray:
        """A ``uint8 [H, W, 3]`` frame from ``camera`` (the first of ``cameras`` by default)."""
        name = self.cameras[0] if camera is None else camera
        if name not in self.cameras:
            raise ConfigError(f"camera {name!r} is not enabled for {self.name}; enabled: {self.cameras}")
        renderer = self._renderers.get(name)
        if renderer is None:
            o = self._render_options
            renderer = FrameRenderer(self.model, RenderOptions(width=o.width, height=o.height, camera=name))
            self._renderers[name] = renderer
        return renderer.render(self.data)

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> TeleopRobot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TeleopRobot({self.name!r}, joints={len(self.joint_names)}, dt={self.dt:g}, cameras={self.cameras})"

    # -- internals -----------------------------------------------------------------------------

    def _side_index(self, index: dict[str, np.ndarray], side: str, part: str) -> np.ndarray:
        if side not in index:
            raise ConfigError(f"{self.name} has no {side!r} {part}; its {part}s: {sorted(index)}")
        return index[side]

    def _apply_ctrl(self) -> None:
        q = self._hold_all.copy()
        q[self._jid] = self._targets
        ctrl = self._ctrl_matrix @ np.where(self._hinge_slide, q, 0.0) + self._ctrl_offset
        self.data.ctrl[:] = np.where(self._servo, np.clip(ctrl, self._ctrl_lo, self._ctrl_hi), 0.0)

    def _write_base(self, pose: np.ndarray) -> None:
        x, y, yaw, h = pose
        self.data.mocap_pos[self._mocap] = [x, y, h]
        self.data.mocap_quat[self._mocap] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]

    def _pose_legs(self, height: float | None = None) -> None:
        """Pose the legs kinematically for base ``height``: the table puts the soles at z = 0 (the floor)."""
        if self._squat_table is None:
            return
        h = self._base[3] if height is None else height  # type: ignore[index]
        heights, angles = self._squat_table
        q = np.array([np.interp(h, heights, angles[:, i]) for i in range(3)])
        m, d = self.model, self.data
        for ids in self._legs.values():
            d.qpos[m.jnt_qposadr[ids]] = q
            d.qvel[m.jnt_dofadr[ids]] = 0.0
            self._hold_all[ids] = q



def make_teleop_robot(
    name_or_config: str | Path | TeleopRobotConfig,
    *,
    cameras: Sequence[str] | None = None,
    size: tuple[int, int] = (320, 240),
    overrides: Sequence[str] = (),
) -> TeleopRobot:
    """Build a robot from a shipped name (``"g1"``, ``"franka"``), a YAML path, or a config.

    :param cameras: camera names to enable (a subset of the config's); all configured ones if None.
    :param size: ``(width, height)`` of rendered frames.
    :param overrides: ``key=value`` changes to the robot file (``base.type=kinematic``); not with a config.
    """
    if isinstance(name_or_config, TeleopRobotConfig):
        if overrides:
            raise ValueError("overrides apply to a robot file; change the TeleopRobotConfig itself instead")
        config = name_or_config
    else:
        config = load_teleop_robot_config(name_or_config, overrides)
    return TeleopRobot(config, cameras=cameras, size=size)


__all__ = [
    "BaseConfig",
    "CameraConfig",
    "DexterousHandConfig",
    "GripperConfig",
    "TeleopHandConfig",
    "TeleopRobot",
    "TeleopRobotConfig",
    "load_teleop_robot_config",
    "make_teleop_robot",
    "teleop_robot_names",
]
