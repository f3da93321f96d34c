"""Gymnasium's MuJoCo humanoid in a grassy outdoor scene, asked to take a pose named in a sentence.

## Description
The environment of VLM-RM ("Vision-Language Models are Zero-Shot Reward Models for Reinforcement
Learning", Rocamonde et al., ICLR 2024): the humanoid of Gymnasium's ``Humanoid-v5`` (its
``humanoid.xml``, loaded from the installed gymnasium and changed in memory) must kneel, sit in
lotus, do the splits, raise its arms... with the reward coming from a vision-language model that
compares rendered frames with a sentence such as "a humanoid robot kneeling" (``reward.type: clip``
with the task's prompts, see ``configs/humanoid_<task>.yaml``).

CLIP judges pictures, so the scene is made to look like a photograph rather than a physics demo
(the paper found this matters): a blue-sky skybox, a grass floor, a lighter robot-grey body, and
the camera ``scene`` that follows the body's centre of mass from the front-left at a distance
that keeps a standing body with raised arms, and a body lying flat, in the frame.

Each task of :data:`POSE_TASKS` also has a hand-written check of the pose from the MuJoCo state
(joint angles, body heights, where the hands and feet are). It is the ground truth a learned
reward is compared with: the env's own ``reward`` is the check's dense score, and
``info["is_success"]`` says whether the pose holds. Every check is a short list of
:class:`Criterion` thresholds, documented with the task's entry below; the score is their mean
and each criterion's part reaches 1 exactly at its threshold, so ``score == 1`` exactly when
``is_success``.

## Action space
``Box(-0.4, 0.4, (17,), float32)``: torques of the 17 joint motors, as in ``Humanoid-v5`` (motor
gears 25-300).

## Observation space
``Box(-inf, inf, (45,), float64)``: ``qpos[2:]`` (torso height and orientation quaternion, then the
17 joint angles, 22 numbers; the x-y position is left out as in ``Humanoid-v5``) and ``qvel``
(23 numbers: torso linear and angular velocity, joint velocities). ``Humanoid-v5``'s ``cinert``,
``cvel``, actuator and contact forces are left out.

## Rewards
With a ``task``: ``reward = reward_pose + reward_ctrl``, ``reward_pose`` = the task's pose score
in [0, 1] and ``reward_ctrl = -ctrl_cost_weight · ‖action‖²`` (at most 0.14 with the default
weight). Without a task (``task=None``, the registered default): ``reward = reward_standing +
reward_ctrl`` with ``reward_standing`` the ``standing_up`` score, and ``is_success`` is always
False. ``info`` also has ``pose_score`` (the score, also without a task: then of ``standing_up``),
``torso_height`` and ``is_success``. A learned reward replaces ``reward``; this one stays as the
ground truth it is compared with.

## Starting state
``Humanoid-v5``'s: standing, torso at 1.4 m, with uniform noise of ``±reset_noise_scale`` on every
``qpos`` and ``qvel`` entry. The body drops a few centimetres onto its feet in the first steps.

## Episode end
``fixed_length=True`` (the default, as VLM-RM requires): no termination; the registered id
truncates after 100 steps (1.5 s of simulated time at ``frame_skip`` 5), so every episode has
the same length and learned-reward returns stay comparable. ``fixed_length=False``: terminate as
``Humanoid-v5`` does, when the torso height leaves ``healthy_z_range`` ((1.0, 2.0) m); that ends
kneeling, lotus and splits attempts (their torso is lower), so lower the range's floor for those.
``is_success`` at the last step is the episode's success.

## Rendering
``render_mode="rgb_array"`` frames come from :class:`roboreward.envs.rendering.FrameRenderer`.
Cameras: ``scene`` (the default) and Gymnasium's ``track`` (side view from 4 m). The grass does
not reflect, so ``reflections`` changes nothing here; ``shadows`` draws the body's shadow.

## Arguments
``task``: a key of :data:`POSE_TASKS` or None; ``fixed_length``; ``healthy_z_range``;
``ctrl_cost_weight`` (0.05); ``frame_skip`` (5); ``reset_noise_scale`` (0.01); render options
(``width``, ``height``, ``camera``, ``shadows``, ``reflections``, ``multisample``), see
:class:`roboreward.envs.rendering.RenderOptions`.

## Version history
- v0: first version.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from roboreward.envs.rendering import FrameRenderer, RenderOptions, mujoco
from roboreward.errors import ConfigError

GYMNASIUM_HUMANOID_XML = Path(gym.__file__).resolve().parent / "envs" / "mujoco" / "assets" / "humanoid.xml"
BASELINE_PROMPTS = ["a humanoid robot"]

# The "scene" camera: where it looks from, relative to the body's centre of mass (it tracks it).
CAMERA_DISTANCE = 3.2  # metres from the centre of mass: a 2 m tall body with raised arms fits
CAMERA_AZIMUTH = 35.0  # degrees from straight ahead (+x, where the body faces) towards its left
CAMERA_ELEVATION = 10.0  # degrees above the horizontal, looking down at the body
CAMERA_FOVY = 45.0
# Where the camera aims in the initial pose: a little above its centre of mass (0.95 m), so that
# raised hands (up to ~2 m) keep a margin at the top of the frame.
CAMERA_TARGET_HEIGHT = 1.03


# ==================================================================================== pose checks
@dataclass(frozen=True)
class Criterion:
    """One thresholded feature of a pose: passes at ``threshold`` or beyond (away from ``zero``).

    Its part of the score is 0 at ``zero`` (and beyond), 1 at ``threshold`` (and beyond), linear in
    between; ``threshold < zero`` means smaller values are better.
    """

    name: str
    value: float
    threshold: float
    zero: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.threshold > self.zero else self.value <= self.threshold

    @property
    def score(self) -> float:
        return float(np.clip((self.value - self.zero) / (self.threshold - self.zero), 0.0, 1.0))


@dataclass(frozen=True)
class PoseFeatures:
    """What the checks look at, from a forward-computed ``MjData``.

    Positions in metres, world frame (floor at z = 0) unless a name says otherwise; angles in
    degrees. Pairs are ordered (right, left). Body frames: x forward, y to the body's left, z up
    (when standing). The knee is the shin body's origin, the hip the thigh body's origin (the
    joints), the foot and hand the centres of their sphere geoms.
    """

    torso_height: float
    torso_tilt: float  # angle between the torso's up axis and the vertical
    pelvis_height: float
    head_height: float  # centre of the head sphere (radius 0.09 m)
    hip: np.ndarray  # (2, 3)
    knee: np.ndarray  # (2, 3)
    foot: np.ndarray  # (2, 3), foot sphere centres (radius 0.075 m)
    foot_bottom: np.ndarray  # (2,), lowest point of each foot sphere
    knee_flexion: np.ndarray  # (2,), 0 = straight leg, 160 = fully bent
    hand: np.ndarray  # (2, 3), hand sphere centres (radius 0.04 m)
    hand_in_torso: np.ndarray  # (2, 3)
    hand_in_pelvis: np.ndarray  # (2, 3)
    elbow_in_pelvis: np.ndarray  # (2, 3)

    @classmethod
    def of(cls, model: mujoco.MjModel, data: mujoco.MjData) -> PoseFeatures:
        torso_pos, torso_rot = data.body("torso").xpos, data.body("torso").xmat.reshape(3, 3)
        pelvis_pos, pelvis_rot = data.body("pelvis").xpos, data.body("pelvis").xmat.reshape(3, 3)
        sides = ("right", "left")
        hand = np.array([data.geom(f"{s}_hand").xpos for s in sides])
        elbow = np.array([data.body(f"{s}_lower_arm").xpos for s in sides])
        foot = np.array([data.geom(f"{s}_foot").xpos for s in sides])
        foot_radius = np.array([model.geom(f"{s}_foot").size[0] for s in sides])
        return cls(
            torso_height=float(torso_pos[2]),
            torso_tilt=float(np.degrees(np.arccos(np.clip(torso_rot[2, 2], -1.0, 1.0)))),
            pelvis_height=float(pelvis_pos[2]),
            head_height=float(data.geom("head").xpos[2]),
            hip=np.array([data.body(f"{s}_thigh").xpos for s in sides]),
            knee=np.array([data.body(f"{s}_shin").xpos for s in sides]),
            foot=foot,
            foot_bottom=foot[:, 2] - foot_radius,
            knee_flexion=np.degrees([-data.joint(f"{s}_knee").qpos[0] for s in sides]),
            hand=hand,
            hand_in_torso=(hand - torso_pos) @ torso_rot,
            hand_in_pelvis=(hand - pelvis_pos) @ pelvis_rot,
            elbow_in_pelvis=(elbow - pelvis_pos) @ pelvis_rot,
        )


def _horizontal_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a[:2] - b[:2]))


def _standing_up(f: PoseFeatures) -> list[Criterion]:
    """Standing up: upright torso at standing height, feet on the ground.

    - ``torso_height >= 1.2`` m (score 0 at 0.6): the torso stands at 1.3-1.4 m on straight legs,
      ~0.95 m when kneeling upright, ~0.2 m lying down.
    - ``torso_tilt <= 20`` degrees (0 at 90).
    - ``lower_foot_bottom <= 0.15`` m (0 at 0.5): on its feet, not in the middle of a jump (the
      initial pose has its feet 0.11 m up: it starts just above the floor).
    """
    return [
        Criterion("torso_height", f.torso_height, 1.2, 0.6),
        Criterion("torso_tilt", f.torso_tilt, 20.0, 90.0),
        Criterion("lower_foot_bottom", float(f.foot_bottom.min()), 0.15, 0.5),
    ]


def _kneeling(f: PoseFeatures) -> list[Criterion]:
    """Kneeling on both knees, torso upright, weight on the knees.

    - ``higher_knee_height <= 0.15`` m (0 at 0.55): both knees on the floor (the knee joint of a
      shin resting on the floor is 0.05-0.1 m up; standing, 0.53 m).
    - ``lesser_knee_flexion >= 60`` degrees (0 at 0): both legs folded at the knee.
    - ``pelvis_height >= 0.3`` m (0 at 0.05): on the knees (or sitting on the heels), not sitting
      on the floor (then the pelvis is ~0.1-0.2 m up) — this tells kneeling from lotus.
    - ``torso_tilt <= 30`` degrees (0 at 90): upright, not on all fours.
    Kneeling on one knee does not count.
    """
    return [
        Criterion("higher_knee_height", float(f.knee[:, 2].max()), 0.15, 0.55),
        Criterion("lesser_knee_flexion", float(f.knee_flexion.min()), 60.0, 0.0),
        Criterion("pelvis_height", f.pelvis_height, 0.3, 0.05),
        Criterion("torso_tilt", f.torso_tilt, 30.0, 90.0),
    ]


def _lotus(f: PoseFeatures) -> list[Criterion]:
    """Sitting cross-legged: seated on the floor, upright, knees bent and wide, feet tucked in.

    - ``pelvis_height <= 0.3`` m (0 at 0.9): seated on the floor (0.1-0.2 m when sitting).
    - ``torso_tilt <= 30`` degrees (0 at 90): sitting up.
    - ``lesser_knee_flexion >= 90`` degrees (0 at 0).
    - ``knee_spread >= 0.5`` m (0 at 0.2): horizontal distance between the knees (0.18 standing).
    - ``feet_tucked_in >= 0.25`` m (0 at 0): knee spread minus the horizontal distance between the
      feet — knees out, feet in, as in a cross-legged seat, not legs stretched out in a V.
    The model's hips cannot turn out far enough to put each foot on the opposite thigh (a true
    lotus) or even across the midline, so the check asks for the tailor seat the body can reach:
    feet drawn in under the body, knees out to the sides.
    """
    knee_spread = _horizontal_distance(f.knee[0], f.knee[1])
    foot_spread = _horizontal_distance(f.foot[0], f.foot[1])
    return [
        Criterion("pelvis_height", f.pelvis_height, 0.3, 0.9),
        Criterion("torso_tilt", f.torso_tilt, 30.0, 90.0),
        Criterion("lesser_knee_flexion", float(f.knee_flexion.min()), 90.0, 0.0),
        Criterion("knee_spread", knee_spread, 0.5, 0.2),
        Criterion("feet_tucked_in", knee_spread - foot_spread, 0.25, 0.0),
    ]


def _splits(f: PoseFeatures) -> list[Criterion]:
    """The splits: legs spread wide and straight, crotch low, both feet on the floor, not lying.

    - ``leg_angle >= 140`` degrees (0 at 20): angle between the two hip-to-foot lines (180 is a
      perfect split, ~0 standing). The model's hips reach ~165 at most (flexion 110, extension 20,
      plus abduction and rotation), so 140 is "within 40 degrees of a straight line".
    - ``higher_knee_flexion <= 30`` degrees (0 at 90): straight legs.
    - ``pelvis_height <= 0.5`` m (0 at 1.0): sunk towards the floor (0.97 m standing).
    - ``higher_foot_height <= 0.2`` m (0 at 0.7): both feet (sphere centres) on the floor, so legs
      spread in the air while lying on the back do not count.
    - ``torso_tilt <= 60`` degrees (0 at 90): the torso rises from the pelvis, not lying flat.
    """
    legs = f.foot - f.hip
    cos = float(legs[0] @ legs[1] / (np.linalg.norm(legs[0]) * np.linalg.norm(legs[1])))
    return [
        Criterion("leg_angle", float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))), 140.0, 20.0),
        Criterion("higher_knee_flexion", float(f.knee_flexion.max()), 30.0, 90.0),
        Criterion("pelvis_height", f.pelvis_height, 0.5, 1.0),
        Criterion("higher_foot_height", float(f.foot[:, 2].max()), 0.2, 0.7),
        Criterion("torso_tilt", f.torso_tilt, 60.0, 90.0),
    ]


def _arms_raised(f: PoseFeatures) -> list[Criterion]:
    """Both arms raised: both hands above the top of the head, torso upright.

    - ``lower_hand_above_head >= 0.15`` m (0 at -0.45): height of the lower hand's centre above
      the head's centre (head radius 0.09 m, so ~6 cm clear of the top of the head). The default
      pose holds the hands forward at shoulder height, -0.13.
    - ``torso_tilt <= 30`` degrees (0 at 90).
    """
    return [
        Criterion("lower_hand_above_head", float(f.hand[:, 2].min() - f.head_height), 0.15, -0.45),
        Criterion("torso_tilt", f.torso_tilt, 30.0, 90.0),
    ]


HIP_POINT = np.array([0.0, 0.2, 0.08])  # in the pelvis frame, mirrored for the right: the side of the waist


def _hands_on_hips(f: PoseFeatures) -> list[Criterion]:
    """Hands on hips (akimbo): each hand at the side of the waist, elbows out to the sides.

    In the pelvis frame (so it holds whatever the body's orientation):
    - ``farther_hand_to_hip <= 0.1`` m (0 at 0.5): distance from each hand's centre to its side's
      hip point, ``(0, ±0.2, 0.08)`` from the pelvis — the outside of the waist just above the hip
      joint (the pelvis is 0.16 m wide each side).
    - ``elbow_out >= 0.05`` m (0 at -0.15): each elbow is farther out to the side than its hand.
    """
    hip_points = np.array([HIP_POINT * (1, -1, 1), HIP_POINT])
    to_hip = np.linalg.norm(f.hand_in_pelvis - hip_points, axis=1)
    elbow_out = np.abs(f.elbow_in_pelvis[:, 1]) - np.abs(f.hand_in_pelvis[:, 1])
    return [
        Criterion("farther_hand_to_hip", float(to_hip.max()), 0.1, 0.5),
        Criterion("elbow_out", float(elbow_out.min()), 0.05, -0.15),
    ]


def _one_leg(f: PoseFeatures) -> list[Criterion]:
    """Standing on one leg: upright at standing height, one foot on the floor, the other lifted.

    - ``torso_height >= 1.1`` m (0 at 0.6) and ``torso_tilt <= 25`` degrees (0 at 90): standing.
    - ``lower_foot_bottom <= 0.05`` m (0 at 0.4): the standing foot is on the floor.
    - ``higher_foot_bottom >= 0.25`` m (0 at 0): the other foot is clearly lifted.
    """
    return [
        Criterion("torso_height", f.torso_height, 1.1, 0.6),
        Criterion("torso_tilt", f.torso_tilt, 25.0, 90.0),
        Criterion("lower_foot_bottom", float(f.foot_bottom.min()), 0.05, 0.4),
        Criterion("higher_foot_bottom", float(f.foot_bottom.max()), 0.25, 0.0),
    ]


def _arms_crossed(f: PoseFeatures) -> list[Criterion]:
    """Arms crossed in front of the body: each hand over on the other side, at chest height.

    In the torso frame (origin between the shoulders, 0.06 m below them):
    - ``hands_crossed >= 0.05`` m (0 at -0.2): how far the hand that is least across is past the
      body's midline on the other side (the right hand to the left, the left to the right);
      the default pose has the hands in front of their shoulders, -0.17.
    - ``hands_in_front >= 0.1`` m (0 at -0.1): both hands in front of the torso.
    - ``hands_off_chest_height <= 0`` m (0 at 0.4): how far the hand farther from chest height
      is outside the band from 0.35 m below to 0.15 m above the torso's origin.
    The model's shoulders cannot fold the forearms flat against the chest, so crossed arms here
    are forearms crossing in front of the body, hands beyond the opposite side of the chest.
    """
    hands = f.hand_in_torso
    off_band = np.maximum(np.maximum(-0.35 - hands[:, 2], hands[:, 2] - 0.15), 0.0)
    return [
        Criterion("hands_crossed", float(min(hands[0, 1], -hands[1, 1])), 0.05, -0.2),
        Criterion("hands_in_front", float(hands[:, 0].min()), 0.1, -0.1),
        Criterion("hands_off_chest_height", float(off_band.max()), 0.0, 0.4),
    ]


@dataclass(frozen=True)
class PoseTask:
    """A pose named in words (for the CLIP reward) and checked by hand (for the ground truth)."""

    name: str
    goal_prompts: list[str]
    criteria: Callable[[PoseFeatures], list[Criterion]]
    baseline_prompts: list[str] = field(default_factory=lambda: list(BASELINE_PROMPTS))

    @property
    def description(self) -> str:
        return (self.criteria.__doc__ or "").strip()

    def explain(self, model: mujoco.MjModel, data: mujoco.MjData) -> list[Criterion]:
        """Each criterion of the check with its value, for debugging a pose."""
        return self.criteria(PoseFeatures.of(model, data))

    def check(self, model: mujoco.MjModel, data: mujoco.MjData) -> tuple[float, bool]:
        """``(score in [0, 1], success)``: the mean of the criteria's parts, and whether all pass."""
        criteria = self.explain(model, data)
        return float(np.mean([c.score for c in criteria])), all(c.passed for c in criteria)


POSE_TASKS: dict[str, PoseTask] = {
    task.name: task
    for task in [
        PoseTask("kneeling", ["a humanoid robot kneeling"], _kneeling),
        PoseTask("lotus", ["a humanoid robot seated down, meditating in the lotus position"], _lotus),
        PoseTask("splits", ["a humanoid robot practicing gymnastics, doing the splits"], _splits),
        PoseTask("arms_raised", ["a humanoid robot standing up, with both arms raised above its head"], _arms_raised),
        PoseTask("standing_up", ["a humanoid robot standing up"], _standing_up),
        PoseTask("hands_on_hips", ["a humanoid robot standing up with its hands on its hips"], _hands_on_hips),
        PoseTask("one_leg", ["a humanoid robot standing up on one leg"], _one_leg),
        PoseTask("arms_crossed", ["a humanoid robot standing up, with its arms crossed"], _arms_crossed),
    ]
}


# ==================================================================================== the model
def _look_at_xyaxes(direction_to_camera: np.ndarray) -> str:
    """``xyaxes`` of a camera at ``direction_to_camera`` from its target, looking at it, image upright."""
    forward = -direction_to_camera / np.linalg.norm(direction_to_camera)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.4f}" for v in (*right, *up))


def humanoid_pose_xml() -> str:
    """Gymnasium's humanoid.xml, re-dressed for CLIP: sky, grass, a grey body and the ``scene`` camera."""
    root = ET.fromstring(GYMNASIUM_HUMANOID_XML.read_text())

    visual = root.find("visual")
    ET.SubElement(visual, "headlight", ambient="0.3 0.3 0.3", diffuse="0.4 0.4 0.4", specular="0.1 0.1 0.1")
    ET.SubElement(visual, "quality", shadowsize="2048")

    asset = root.find("asset")
    for texture in asset.findall("texture"):
        if texture.get("type") == "skybox":  # light blue overhead, hazy white at the horizon
            texture.attrib = dict(type="skybox", builtin="gradient", rgb1="0.35 0.58 0.88", rgb2="0.93 0.95 0.98",
                                  width="512", height="512")
        elif texture.get("name") == "texplane":  # grass: two greens in 1 m squares, speckled
            texture.attrib = dict(name="texplane", type="2d", builtin="checker", rgb1="0.36 0.58 0.22",
                                  rgb2="0.31 0.52 0.18", mark="random", markrgb="0.47 0.66 0.29", random="0.15",
                                  width="512", height="512")
        elif texture.get("name") == "texgeom":  # white, lightly speckled; the geoms' rgba colours it
            texture.attrib = dict(name="texgeom", type="cube", builtin="flat", rgb1="1 1 1", rgb2="1 1 1",
                                  mark="random", markrgb="0.9 0.9 0.9", random="0.05", width="127", height="1278")
    for material in asset.findall("material"):
        if material.get("name") == "MatPlane":
            material.attrib = dict(name="MatPlane", texture="texplane", texrepeat="20 20", reflectance="0",
                                   shininess="0", specular="0")
        elif material.get("name") == "geom":
            material.attrib = dict(name="geom", texture="texgeom", texuniform="true", specular="0.3", shininess="0.3")

    root.find("default/geom").set("rgba", "0.72 0.74 0.78 1")  # robot grey instead of gymnasium's tan

    worldbody = root.find("worldbody")
    for geom in worldbody.findall("geom"):
        if geom.get("name") == "floor":
            geom.attrib.pop("rgba", None)  # gymnasium tints the floor pale green; the texture has its own colours
    light = worldbody.find("light")
    light.set("castshadow", "true")
    light.set("dir", "-0.3 -0.2 -1")  # a high sun from behind the camera, so the lit side faces it
    light.set("diffuse", "0.6 0.6 0.6")

    torso = worldbody.find("body[@name='torso']")
    az, el = np.radians(CAMERA_AZIMUTH), np.radians(CAMERA_ELEVATION)
    direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    # Camera positions are relative to the torso (at 1.4 m in the initial pose); trackcom then keeps
    # the camera's offset from the centre of mass, and its orientation, as the body moves.
    pos = direction * CAMERA_DISTANCE + [0.0, 0.0, CAMERA_TARGET_HEIGHT - float(torso.get("pos").split()[2])]
    camera = ET.Element("camera", name="scene", mode="trackcom", pos=" ".join(f"{v:.4f}" for v in pos),
                        xyaxes=_look_at_xyaxes(direction), fovy=f"{CAMERA_FOVY}")
    torso.insert(0, camera)
    return ET.tostring(root, encoding="unicode")


def lowest_point(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Height of the lowest point of the body's geoms (spheres and capsules; others by bounding sphere)."""
    lowest = np.inf
    for g in range(model.ngeom):
        if model.geom_bodyid[g] == 0:
            continue
        z, size = data.geom_xpos[g, 2], model.geom_size[g]
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE:
            bottom = z - size[0]
        elif model.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE:
            bottom = z - abs(data.geom_xmat[g, 8]) * size[1] - size[0]
        else:
            bottom = z - model.geom_rbound[g]
        lowest = min(lowest, bottom)
    return float(lowest)


# ==================================================================================== the env
class HumanoidPoseEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 67}
    default_camera = "scene"  # used when camera is None

    def __init__(
        self,
        task: str | None = None,
        fixed_length: bool = True,
        healthy_z_range: tuple[float, float] = (1.0, 2.0),
        ctrl_cost_weight: float = 0.05,
        frame_skip: int = 5,
        reset_noise_scale: float = 1e-2,
        render_mode: str | None = None,
        width: int = 64,
        height: int = 64,
        camera: str | None = "scene",
        shadows: bool = False,
        reflections: bool = False,
        multisample: int = 0,
    ):
        if task is not None and task not in POSE_TASKS:
            raise ConfigError(f"task={task!r} is not a pose task; choose one of {sorted(POSE_TASKS)} or None")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r} is not supported; use 'rgb_array' or None")
        if frame_skip < 1:
            raise ConfigError(f"frame_skip={frame_skip} must be >= 1")
        if not healthy_z_range[0] < healthy_z_range[1]:
            raise ConfigError(f"healthy_z_range={healthy_z_range} must be (low, high) with low < high")
        self.task = task
        self.pose_task = POSE_TASKS[task] if task is not None else None
        self.fixed_length = fixed_length
        self.healthy_z_range = tuple(healthy_z_range)
        self.ctrl_cost_weight = ctrl_cost_weight
        self.frame_skip = frame_skip
        self.reset_noise_scale = reset_noise_scale
        self.render_mode = render_mode
        self.render_options = RenderOptions(
            width=width, height=height, camera=camera, shadows=shadows, reflections=reflections, multisample=multisample
        )

        self.model = mujoco.MjModel.from_xml_string(humanoid_pose_xml())
        self.data = mujoco.MjData(self.model)
        self.init_qpos = self.model.qpos0.copy()
        self.init_qvel = np.zeros(self.model.nv)
        self._renderer: FrameRenderer | None = None
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.dt))}

        ctrl_range = self.model.actuator_ctrlrange
        self.action_space = spaces.Box(
            ctrl_range[:, 0].astype(np.float32), ctrl_range[:, 1].astype(np.float32), dtype=np.float32
        )
        self._action_low, self._action_high = ctrl_range[:, 0].copy(), ctrl_range[:, 1].copy()
        obs_size = self.model.nq - 2 + self.model.nv
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_size,), dtype=np.float64)

    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep * self.frame_skip)

    # ---------------------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        s = self.reset_noise_scale
        self.data.qpos[:] = self.init_qpos + self.np_random.uniform(-s, s, self.model.nq)
        self.data.qvel[:] = self.init_qvel + self.np_random.uniform(-s, s, self.model.nv)
        mujoco.mj_forward(self.model, self.data)
        return self._get_obs(), self._get_info(*self.pose_check())

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), self._action_low, self._action_high)
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        # mj_step leaves positions-derived quantities (body positions, the tracking camera) one
        # substep behind qpos: recompute them, so the frame, the pose check and the obs agree.
        mujoco.mj_forward(self.model, self.data)
        score, success = self.pose_check()
        reward, terms = self._get_rew(action, score)
        info = self._get_info(score, success)
        info.update(terms)
        terminated = (not self.fixed_length) and not self.is_healthy
        return self._get_obs(), reward, terminated, False, info

    def render(self):
        if self.render_mode != "rgb_array":
            raise RuntimeError(
                "HumanoidPoseEnv was made without render_mode='rgb_array'; pass it to gym.make to render"
            )
        return self._frame_renderer().render(self.data)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ---------------------------------------------------------------------------------- poses
    @property
    def is_healthy(self) -> bool:
        low, high = self.healthy_z_range
        return bool(low < self.data.qpos[2] < high)

    def pose_check(self, task: str | None = None) -> tuple[float, bool]:
        """``(score, success)`` of a pose task (default: this env's) in the current state."""
        name = task if task is not None else (self.task or "standing_up")
        return POSE_TASKS[name].check(self.model, self.data)

    def set_pose(
        self,
        joints: Mapping[str, float] | None = None,
        orientation: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
        xy: Sequence[float] = (0.0, 0.0),
        height: float | None = None,
    ) -> None:
        """Put the body in a pose by hand (for tests and reference images), at rest.

        ``joints``: joint name -> angle in degrees, within the joint's range (others at 0: the
        model's reference pose, standing, with the knees 2 degrees past their straight limit);
        ``orientation``: the torso's quaternion (w, x, y, z); ``height``: the torso's height, or
        None to lower the body until its lowest point touches the floor.
        """
        self.data.qpos[:] = self.model.qpos0
        self.data.qvel[:] = 0.0
        for name, degrees in (joints or {}).items():
            low, high = np.degrees(self.model.joint(name).range)
            if not low - 1e-6 <= degrees <= high + 1e-6:
                raise ConfigError(f"joint {name!r} at {degrees} degrees is outside its range [{low:g}, {high:g}]")
            self.data.joint(name).qpos[0] = np.radians(degrees)
        quat = np.asarray(orientation, dtype=np.float64)
        self.data.qpos[3:7] = quat / np.linalg.norm(quat)
        self.data.qpos[0:2] = xy
        mujoco.mj_forward(self.model, self.data)
        self.data.qpos[2] = height if height is not None else self.data.qpos[2] - lowest_point(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)

    # ---------------------------------------------------------------------------------- helpers
    def _frame_renderer(self) -> FrameRenderer:
        if self._renderer is None:
            self._renderer = FrameRenderer(self.model, self.render_options, default_camera=self.default_camera)
        return self._renderer

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[2:], self.data.qvel])

    def _get_rew(self, action: np.ndarray, score: float) -> tuple[float, dict[str, float]]:
        reward_ctrl = -self.ctrl_cost_weight * float(np.square(action).sum())
        name = "reward_pose" if self.task is not None else "reward_standing"
        return score + reward_ctrl, {name: score, "reward_ctrl": reward_ctrl}

    def _get_info(self, score: float, success: bool) -> dict[str, Any]:
        return {
            "pose_score": score,
            "torso_height": float(self.data.qpos[2]),
            "is_success": bool(success) if self.task is not None else False,
        }


def random_action_frames(n: int, size: int, task: str = "kneeling", seed: int = 0) -> np.ndarray:
    """``uint8 [n, size, size, 3]``: the humanoid rendered after each of ``n`` small random actions.

    Realistic frames for CLIP benchmarks and tests, the same for the same arguments (reset with
    ``seed``, actions uniform in ±0.4 from ``numpy.random.default_rng(seed)``).
    """
    from roboreward.envs.make import make_env
    from roboreward.experiment import EnvConfig, RenderConfig

    env = make_env(EnvConfig(id="roboreward/HumanoidPose-v0", kwargs={"task": task},
                             render=RenderConfig(width=size, height=size)))
    try:
        env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        frames = []
        for _ in range(n):
            env.step(rng.uniform(-0.4, 0.4, size=env.action_space.shape).astype(np.float32))
            frames.append(env.render())
    finally:
        env.close()
    return np.stack(frames)
