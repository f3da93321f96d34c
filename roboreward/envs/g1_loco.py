"""The Unitree G1 learning HOMIE's body: walk, turn and squat to a commanded height while its arms move anywhere.

## Description
HOMIE's cockpit needs a lower-body policy that walks at the pedal's velocity, squats to the pedal's
height and keeps its balance whatever pose the operator's arms take. This env trains one: the G1
of :class:`roboreward.envs.g1.G1Sim` (holosoma's 29-DoF MJCF, torque PD at the holosoma policy's
gains, 50 Hz control) with

- **commands** (:class:`CommandRanges`): forward and sideways velocity, yaw rate and pelvis height
  (0.45-0.75 m), resampled every ``resample_s``; a fraction of the commands is "stand still". Heights
  follow a curriculum: at first within ``height_start`` of the top of the range (a walking policy
  stands near 0.75 m), reaching ``height_step`` lower after each episode that tracked its heights;
- **the upper-body pose curriculum** (:class:`ArmCurriculum`): the 14 arm joints are not the
  policy's; they are driven to random poses, re-drawn every ``repose_s`` and approached at up to
  ``speed`` rad/s. A pose is ``default + r * (uniform(joint range) - default)``, with the ratio ``r``
  drawn from HOMIE's truncated exponential on [0, 1]: concentrated near 0 while the curriculum's
  level ``r_u`` is low and uniform as it reaches 1. ``r_u`` rises by ``step`` after each episode whose
  mean velocity-tracking reward exceeds ``promote_above`` (a policy that still walks well under
  the arm motion it has);
- **domain randomisation** (:class:`DomainRandomization`): floor friction, a payload on the torso,
  PD gain scale, pushes (a velocity kick to the pelvis) and a one-step action delay;
- **HOMIE-style rewards** (:class:`RewardWeights`; every term is in ``info`` as ``reward_<term>``,
  weighted): velocity and yaw-rate tracking, height tracking, knee/height coupling (the knees bend
  as the squat table for the commanded height says, so the robot squats with its legs rather than
  folding at the waist), upright posture, hip and waist posture, foot contacts that follow the gait
  phase, and regularisation (vertical and roll/pitch base velocity, action rate, torque, joint
  acceleration), plus a survival bonus and a fall penalty;
- **mirror symmetry** (:class:`G1Mirror`): the left/right reflection of observations and actions,
  for data augmentation and a symmetry loss;
- **a teacher** (``teacher: g1_holosoma``): a walking policy whose lower-body action for each
  observation (it reads the arms as its own targets, as in the cockpit) is ``info["teacher_action"]``
  of ``reset`` and ``step``, for distilling it into the policy before RL
  (:mod:`roboreward.policies.distill`). holosoma reads no height; the locomotion layer squats its
  reference pose to the command down to 0.65 m (``squat`` in its config), so below that its labels
  stay at 0.65 m and RL must learn the rest.

## Action space
``Box(-10, 10, (15,), float32)``: offsets of the 15 lower-body joints (legs, waist; the order of
:attr:`G1LocoEnv.policy_joints`) from the default pose, times 0.25 rad (holosoma's action scale).

## Observation space
``Box(-inf, inf, (87,), float32)``, in order: pelvis angular velocity x 0.25 (3), gravity in the
pelvis frame (3), the command (vx, vy, yaw rate, height; 4), all 29 joint positions minus the
default pose, all 29 joint velocities x 0.05, the previous action (15), sin and cos of the left and
right gait phase (4). The arms are observed as they are (the policy learns to live with them).

## Episode end
Terminated when the pelvis drops below 0.3 m, tilts past ``max_tilt`` (gravity's horizontal
component in the pelvis frame) or the physics diverges; truncated by the registered time limit
(1000 steps, 20 s). Time-outs are not failures; ``info["is_success"]`` is True while the robot is on
its feet, so at the last step it says whether the episode ended standing.

## Arguments
``config``: a :class:`G1LocoConfig` (or its fields as keyword arguments, e.g.
``gym.make("roboreward/G1Loco-v0", arm_curriculum={"fixed": 0.6})``).

## Version history
- v0: first version.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from roboreward.config import bounded, check_fields, from_dict
from roboreward.envs.g1 import G1Sim
from roboreward.envs.geometry import flat_foot_leg, lowest_point
from roboreward.envs.rendering import mujoco
from roboreward.errors import ConfigError
from roboreward.hardware.robot import rotation_from_quaternion
from roboreward.policies.locomotion import GaitClock, load_locomotion_config

ARM_KEYWORDS = ("shoulder", "elbow", "wrist")


# --------------------------------------------------------------------------------------------
# Config


@dataclass(kw_only=True)
class CommandRanges:
    """What the pedal can ask, ``[low, high]`` each."""

    vx: tuple[float, float] = bounded((-0.6, 1.0), "forward speed (m/s)")
    vy: tuple[float, float] = bounded((-0.4, 0.4), "sideways speed (m/s), left positive")
    yaw_rate: tuple[float, float] = bounded((-1.0, 1.0), "turn rate (rad/s), counter-clockwise positive")
    height: tuple[float, float] = bounded((0.45, 0.75), "pelvis height (m)", gt=0.0)
    # The height curriculum: commands start within `height_start` of the top of the range, and the lowest
    # one drops by `height_step` after each episode whose mean height reward exceeds `height_promote_above`.
    height_start: float = bounded(0.05, "how far below the top of the height range commands reach at first (m)",
                                  ge=0.0)
    height_step: float = bounded(0.02, "the reach grows by this after a good episode (m)", ge=0.0)
    height_promote_above: float = bounded(0.7, "mean height reward (0..1) that counts as good", ge=0.0, le=1.0)
    stand_fraction: float = bounded(0.15, "fraction of commands that are 'stand still' (at a random height)",
                                     ge=0.0, le=1.0)
    resample_s: tuple[float, float] = bounded((4.0, 8.0), "seconds between new commands", gt=0.0)

    def __post_init__(self) -> None:
        check_fields(self, "commands")
        for key in ("vx", "vy", "yaw_rate", "height", "resample_s"):
            lo, hi = getattr(self, key)
            if lo > hi:
                raise ConfigError(f"commands.{key}: low {lo} > high {hi}; give [low, high]")


@dataclass(kw_only=True)
class ArmCurriculum:
    """HOMIE's upper-body pose curriculum (see the module docstring)."""

    start: float = bounded(0.0, "curriculum level r_u at the start", ge=0.0, le=1.0)
    step: float = bounded(0.05, "r_u rises by this after a good episode", ge=0.0, le=1.0)
    promote_above: float = bounded(0.75, "mean velocity-tracking reward (0..1) that counts as good", ge=0.0, le=1.0)
    # For evaluation: every pose at exactly this fraction of the range, no curriculum.
    fixed: float | None = bounded(None, "a fixed arm range fraction instead of the curriculum", ge=0.0, le=1.0)
    repose_s: tuple[float, float] = bounded((1.0, 3.0), "seconds between new arm poses", gt=0.0)
    speed: float = bounded(2.0, "fastest arm joint motion towards a pose (rad/s)", gt=0.0)


@dataclass(kw_only=True)
class DomainRandomization:
    """What changes from episode to episode so that the policy does not overfit one simulator."""

    enabled: bool = True
    friction: tuple[float, float] = bounded((0.4, 1.2), "floor friction coefficient", gt=0.0)
    payload_kg: tuple[float, float] = bounded((-1.0, 3.0), "mass added to the torso (kg)")
    gain_scale: tuple[float, float] = bounded((0.9, 1.1), "factor on kp and kd", gt=0.0)
    push_every_s: tuple[float, float] = bounded((5.0, 10.0), "seconds between pushes", gt=0.0)
    push_velocity: float = bounded(0.5, "largest horizontal velocity kick of a push (m/s)", ge=0.0)
    delay_probability: float = bounded(0.5, "chance an episode applies each action one step late", ge=0.0, le=1.0)


@dataclass(kw_only=True)
class RewardWeights:
    """Weights of the reward terms (0 turns one off); see :meth:`G1LocoEnv.reward_terms` for each term."""

    lin_vel: float = 1.5
    yaw_rate: float = 0.8
    height: float = 1.0
    knee: float = -0.3
    upright: float = -2.0
    hip_posture: float = -0.5
    waist_posture: float = -0.5
    feet_phase: float = 0.2
    lin_vel_z: float = -1.0
    ang_vel_xy: float = -0.05
    action_rate: float = -0.01
    torque: float = -1e-5
    joint_acc: float = -2.5e-7
    alive: float = 0.15
    fall: float = -10.0


@dataclass(kw_only=True)
class G1LocoConfig:
    """Everything :class:`G1LocoEnv` does; every field is a keyword of ``gym.make("roboreward/G1Loco-v0")``."""

    locomotion: str = bounded("g1_holosoma", "the locomotion config whose joints, gains and default pose the G1 uses")
    commands: CommandRanges = field(default_factory=CommandRanges)
    arm_curriculum: ArmCurriculum = field(default_factory=ArmCurriculum)
    randomization: DomainRandomization = field(default_factory=DomainRandomization)
    rewards: RewardWeights = field(default_factory=RewardWeights)
    gait_period_s: float = bounded(1.0, "one gait cycle (s): the phase clocks the policy and the contact reward use",
                                   gt=0.0)
    max_tilt: float = bounded(0.8, "terminate when gravity's horizontal part in the pelvis frame exceeds this",
                              gt=0.0, le=1.0)
    # A walking policy whose action for the current state goes into info["teacher_action"] (for distillation).
    teacher: str | None = bounded(None, "a locomotion config (g1_holosoma) whose actions label each observation")

    def __post_init__(self) -> None:
        check_fields(self)


# --------------------------------------------------------------------------------------------
# Mirror symmetry


class G1Mirror:
    """The reflection of the G1 across its sagittal (x-z) plane, on joint vectors, observations and actions.

    A joint maps to its other-side twin (``left_*`` <-> ``right_*``; waist joints to themselves) with
    its sign flipped when it turns about the x or z axis (``roll``, ``yaw``), kept when about y
    (``pitch``, knee, elbow). Vectors in the pelvis frame flip their y component; angular velocities
    flip x and z. Applying a map twice is the identity.
    """

    def __init__(self, joint_names: list[str], action_joints: list[str]) -> None:
        self.joint_perm, self.joint_sign = self.joint_map(joint_names)
        self.action_perm, self.action_sign = self.joint_map(action_joints)
        n = len(joint_names)
        na = len(action_joints)
        # Observation layout (see the module docstring): indices and signs, built block by block.
        perm, sign = [], []

        def block(p: np.ndarray, s: np.ndarray) -> None:
            offset = len(perm)
            perm.extend((np.asarray(p) + offset).tolist())
            sign.extend(np.asarray(s, dtype=np.float64).tolist())

        block(np.arange(3), [-1.0, 1.0, -1.0])  # angular velocity: roll and yaw rates flip
        block(np.arange(3), [1.0, -1.0, 1.0])  # gravity: its y component flips
        block(np.arange(4), [1.0, -1.0, -1.0, 1.0])  # command: vy and yaw rate flip
        block(self.joint_perm, self.joint_sign)  # joint positions
        block(self.joint_perm, self.joint_sign)  # joint velocities
        block(self.action_perm, self.action_sign)  # previous action
        block(np.array([1, 0, 3, 2]), np.ones(4))  # sin, cos of (left, right) phase: the feet swap
        self.obs_perm = np.array(perm, dtype=np.int64)
        self.obs_sign = np.array(sign, dtype=np.float64)
        self.observation_size = 3 + 3 + 4 + 2 * n + na + 4

    @staticmethod
    def joint_map(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        index = {n: i for i, n in enumerate(names)}
        perm, sign = [], []
        for name in names:
            twin = name.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_")
            if twin not in index:
                raise ConfigError(f"mirror: joint {name!r} has no twin {twin!r} among {names}")
            perm.append(index[twin])
            sign.append(-1.0 if ("roll" in name or "yaw" in name) else 1.0)
        return np.array(perm, dtype=np.int64), np.array(sign, dtype=np.float64)

    def joints(self, q: np.ndarray) -> np.ndarray:
        return np.asarray(q)[..., self.joint_perm] * self.joint_sign

    def observation(self, obs: np.ndarray) -> np.ndarray:
        return (np.asarray(obs)[..., self.obs_perm] * self.obs_sign).astype(np.asarray(obs).dtype)

    def action(self, action: np.ndarray) -> np.ndarray:
        return (np.asarray(action)[..., self.action_perm] * self.action_sign).astype(np.asarray(action).dtype)


def mirror_quaternion(q: np.ndarray) -> np.ndarray:
    """The base orientation (w, x, y, z) reflected across the world x-z plane: roll and yaw change sign."""
    w, x, y, z = q
    return np.array([w, -x, y, -z])


# --------------------------------------------------------------------------------------------
# The env


def homie_arm_ratio(level: float, u: float) -> float:
    """HOMIE's arm-pose ratio for curriculum level ``level`` and a uniform ``u`` in [0, 1).

    The inverse CDF of an exponential with rate ``20 (1 - level)`` truncated to [0, 1]: most ratios
    are small while the level is low, and the distribution becomes uniform as the level reaches 1.
    """
    rate = 20.0 * (1.0 - level)
    if rate < 1e-6:
        return u
    return float(-math.log(1.0 - u * (1.0 - math.exp(-rate))) / rate)


class G1LocoEnv(gym.Env):
    """See the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, config: G1LocoConfig | None = None, render_mode: str | None = None, **kwargs: Any) -> None:
        if config is None:
            config = from_dict(G1LocoConfig, kwargs) if kwargs else G1LocoConfig()
        elif kwargs:
            raise ConfigError("give a G1LocoConfig or its fields as keywords, not both")
        self.config = config
        self.render_mode = render_mode
        loco = load_locomotion_config(config.locomotion)
        self.sim = G1Sim.for_policy(loco)
        self.joint_names = list(self.sim.joint_names)
        self.policy_joints = [n for n in self.joint_names if not any(k in n for k in ARM_KEYWORDS)]
        self.arm_joints = [n for n in self.joint_names if any(k in n for k in ARM_KEYWORDS)]
        index = {n: i for i, n in enumerate(self.joint_names)}
        self._legs = np.array([index[n] for n in self.policy_joints])
        self._arms = np.array([index[n] for n in self.arm_joints])
        self._knees = np.array([index[n] for n in self.joint_names if "knee" in n])
        self._hip_roll_yaw = np.array([index[n] for n in self.joint_names if "hip_roll" in n or "hip_yaw" in n])
        self._waist = np.array([index[n] for n in self.joint_names if n in ("waist_roll_joint", "waist_pitch_joint")])
        self.action_scale = loco.action_scale
        self._clock = GaitClock(self.sim.dt, config.gait_period_s, loco.stand_threshold)  # the teacher's clock
        self.default_pose = self.sim.default_pose.copy()
        self._kp0, self._kd0 = self.sim.kp.copy(), self.sim.kd.copy()
        m = self.sim.model
        self._arm_lo = m.jnt_range[[m.joint(n).id for n in self.arm_joints], 0]
        self._arm_hi = m.jnt_range[[m.joint(n).id for n in self.arm_joints], 1]
        self.mirror = G1Mirror(self.joint_names, self.policy_joints)
        self._torso = m.body("torso_link").id
        self._torso_mass = float(m.body_mass[self._torso])
        self._floor = m.geom("floor").id
        self._pair_friction = m.pair_friction.copy()
        self._feet = [self._foot_geoms(side) for side in ("left", "right")]
        self.knee_table = self._squat_knee_table()

        n_act = len(self.policy_joints)
        self.action_space = spaces.Box(-10.0, 10.0, (n_act,), np.float32)
        size = self.mirror.observation_size
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.arm_level = config.arm_curriculum.start
        self.height_reach = config.commands.height_start
        self.teacher = None
        if config.teacher is not None:
            from roboreward.policies.locomotion import load_locomotion_policy

            self.teacher = load_locomotion_policy(config.teacher)
            if self.teacher.joint_names != self.joint_names:
                raise ConfigError(f"teacher: {config.teacher!r} drives joints {self.teacher.joint_names}, not the G1's "
                                  f"{self.joint_names}")
        self._renderer = None
        self._episode_tracking: list[float] = []
        self._reset_state(np.random.default_rng(0))

    # -- set-up ------------------------------------------------------------------------------------

    def _foot_geoms(self, side: str) -> np.ndarray:
        m = self.sim.model
        ankle = m.body(f"{side}_ankle_roll_link").id
        return np.array([g for g in range(m.ngeom) if m.geom_bodyid[g] == ankle
                         and (m.geom_contype[g] or m.geom_conaffinity[g] or g in m.pair_geom1 or g in m.pair_geom2)])

    def _squat_knee_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Pelvis height above the soles -> knee angle, for legs that squat with flat feet under the hips.

        The planar hip-knee-ankle chain of :func:`~roboreward.envs.geometry.flat_foot_leg` with the thigh
        and shank lengths measured in the model, evaluated with MuJoCo's kinematics.
        """
        m = self.sim.model
        d = mujoco.MjData(m)
        index = {n: i for i, n in enumerate(self.joint_names)}
        qadr = {n: m.jnt_qposadr[m.joint(n).id] for n in self.joint_names}
        d.qpos[3:7] = [1, 0, 0, 0]
        d.qpos[2] = 1.0
        for n, i in index.items():
            d.qpos[qadr[n]] = self.default_pose[i] if any(k in n for k in ARM_KEYWORDS) else 0.0
        mujoco.mj_kinematics(m, d)
        hip, knee, ankle = (m.joint(f"left_{j}_joint").id for j in ("hip_pitch", "knee", "ankle_pitch"))
        p_hip, p_knee, p_ankle = (d.xanchor[j][[0, 2]] for j in (hip, knee, ankle))
        a, b = np.linalg.norm(p_knee - p_hip), np.linalg.norm(p_ankle - p_knee)
        heights, knees = [], []
        for k in np.linspace(0.0, 2.4, 241):
            hip_pitch, _, ankle_pitch = flat_foot_leg(a, b, k)
            for side in ("left", "right"):
                d.qpos[qadr[f"{side}_hip_pitch_joint"]] = hip_pitch
                d.qpos[qadr[f"{side}_knee_joint"]] = k
                d.qpos[qadr[f"{side}_ankle_pitch_joint"]] = ankle_pitch
            mujoco.mj_kinematics(m, d)
            soles = lowest_point(m, d, np.concatenate(self._feet))
            heights.append(float(d.qpos[2] - soles))
            knees.append(float(k))
        h = np.array(heights)
        order = np.argsort(h)
        return h[order], np.array(knees)[order]

    def knee_target(self, height: float) -> float:
        """The knee angle (rad) that puts the pelvis at ``height`` above flat feet (the squat table)."""
        heights, knees = self.knee_table
        return float(np.interp(height, heights, knees))

    # -- episodes ----------------------------------------------------------------------------------

    def _reset_state(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.sim.reset()
        self._t = 0.0
        self._clock.reset()
        self._action = np.zeros(len(self.policy_joints), dtype=np.float32)
        self._prev_action = self._action.copy()
        self._delayed_targets: np.ndarray | None = None
        self._arm_targets = self.default_pose[self._arms].copy()
        self._arm_goal = self._arm_targets.copy()
        self._prev_dq = np.zeros(len(self.joint_names))
        self._next_command = 0.0
        self._next_repose = 0.0
        self._next_push = math.inf
        self.command = np.array([0.0, 0.0, 0.0, 0.75])
        self._episode_tracking = []
        self._episode_height: list[float] = []

    def _randomize(self) -> None:
        r, rng, m = self.config.randomization, self._rng, self.sim.model
        if not r.enabled:
            m.pair_friction[:] = self._pair_friction
            m.body_mass[self._torso] = self._torso_mass
            self.sim.kp, self.sim.kd = self._kp0.copy(), self._kd0.copy()
            self._delay = False
            return
        friction = rng.uniform(*r.friction)
        m.pair_friction[:, :2] = friction
        m.body_mass[self._torso] = self._torso_mass + rng.uniform(*r.payload_kg)
        scale = rng.uniform(*r.gain_scale)
        self.sim.kp, self.sim.kd = self._kp0 * scale, self._kd0 * scale
        self._delay = bool(rng.random() < r.delay_probability)
        self._next_push = rng.uniform(*r.push_every_s)

    def _sample_command(self) -> None:
        c, rng = self.config.commands, self._rng
        low, high = c.height
        height = rng.uniform(max(low, high - self.height_reach), high)
        if rng.random() < c.stand_fraction:
            self.command = np.array([0.0, 0.0, 0.0, height])
        else:
            self.command = np.array([rng.uniform(*c.vx), rng.uniform(*c.vy), rng.uniform(*c.yaw_rate), height])
        self._next_command = self._t + rng.uniform(*c.resample_s)

    def _sample_arm_pose(self) -> None:
        a, rng = self.config.arm_curriculum, self._rng
        ratio = a.fixed if a.fixed is not None else homie_arm_ratio(self.arm_level, rng.random())
        default = self.default_pose[self._arms]
        self._arm_goal = default + ratio * (rng.uniform(self._arm_lo, self._arm_hi) - default)
        self._next_repose = self._t + rng.uniform(*a.repose_s)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is None:  # the run goes on: the episode that just ended moves the curricula (a seeded reset replays)
            self._promote()
        self._reset_state(self.np_random)
        self._randomize()
        self._sample_command()
        self._sample_arm_pose()
        info = {"arm_level": self.arm_level, "command": self.command.copy()}
        if self.teacher is not None:
            self.teacher.reset()
            info["teacher_action"] = self._teacher_action()
        return self._observation(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        act = np.clip(np.asarray(action, dtype=np.float32).reshape(-1), -10.0, 10.0)
        if act.shape != self.action_space.shape:
            raise ValueError(f"expected an action of shape {self.action_space.shape}, got {act.shape}")
        if not np.all(np.isfinite(act)):
            raise ValueError("the action has NaN or infinite entries")
        self._prev_action, self._action = self._action, act
        if self._t >= self._next_command:
            self._sample_command()
        if self._t >= self._next_repose:
            self._sample_arm_pose()
        limit = self.config.arm_curriculum.speed * self.sim.dt
        self._arm_targets = self._arm_targets + np.clip(self._arm_goal - self._arm_targets, -limit, limit)
        targets = self.default_pose.copy()
        targets[self._legs] += self.action_scale * act
        targets[self._arms] = self._arm_targets
        applied = targets
        if self._delay:  # the action of the previous step reaches the motors now
            applied = targets if self._delayed_targets is None else self._delayed_targets
            self._delayed_targets = targets
        if self._t >= self._next_push:
            kick = self._rng.uniform(-1.0, 1.0, 2) * self.config.randomization.push_velocity
            self.sim.data.qvel[0:2] += kick
            self._next_push = self._t + self._rng.uniform(*self.config.randomization.push_every_s)
        self.sim.step(applied)
        self._t += self.sim.dt
        self._clock.advance(*self.command[:3])
        terms = self.reward_terms()
        fallen = self._fallen()
        if fallen:
            terms["fall"] = 1.0
        weights = asdict(self.config.rewards)
        info = {f"reward_{k}": weights[k] * v for k, v in terms.items()}
        reward = float(sum(info.values()))
        self._episode_tracking.append(terms["lin_vel"])
        self._episode_height.append(terms["height"])
        self._prev_dq = self.sim.data.qvel[self.sim._vadr].copy()
        # Success (evaluation reads it at the last step): still on its feet.
        info.update(command=self.command.copy(), arm_level=self.arm_level, height_reach=self.height_reach,
                    base_height=self.sim.base_height,
                    is_success=not fallen)
        if fallen:
            info["fell"] = True
        if self.teacher is not None:
            info["teacher_action"] = self._teacher_action()
        return self._observation(), reward, fallen, False, info

    def _promote(self) -> None:
        """After an episode: widen the arm curriculum if it tracked the velocity well under its arms, and the
        height curriculum if it tracked the commanded heights."""
        a, c = self.config.arm_curriculum, self.config.commands
        if self._episode_tracking and np.mean(self._episode_tracking) > a.promote_above:
            self.arm_level = min(1.0, self.arm_level + a.step)
        if self._episode_height and np.mean(self._episode_height) > c.height_promote_above:
            self.height_reach = min(c.height[1] - c.height[0], self.height_reach + c.height_step)

    # -- what the policy sees and what it is paid ---------------------------------------------------

    def _base_frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gravity in the pelvis frame, the pelvis's linear and angular velocity in its own frame."""
        d, q = self.sim.data, self.sim._free_q
        rot = rotation_from_quaternion(d.qpos[q + 3:q + 7])
        gravity = rot.T @ np.array([0.0, 0.0, -1.0])
        lin = rot.T @ d.qvel[0:3]
        ang = d.qvel[3:6].copy()  # a free joint's angular velocity is in the body frame
        return gravity, lin, ang

    def _observation(self) -> np.ndarray:
        d = self.sim.data
        gravity, _, ang = self._base_frame()
        q = d.qpos[self.sim._qadr] - self.default_pose
        dq = d.qvel[self.sim._vadr]
        obs = np.concatenate([
            0.25 * ang, gravity, self.command, q, 0.05 * dq, self._action,
            np.sin(self._clock.phase), np.cos(self._clock.phase),
        ])
        return obs.astype(np.float32)

    def drop_teacher(self) -> None:
        """Stop labelling observations (distillation is over; the teacher costs ~10 % of a step)."""
        self.teacher = None

    def _teacher_action(self) -> np.ndarray:
        """The teacher's lower-body action now (this env's action units); it sees the arms at its own targets."""
        from roboreward.policies.locomotion import LocomotionState

        t, d = self.teacher, self.sim.data
        q = d.qpos[self.sim._qadr].copy()
        dq = d.qvel[self.sim._vadr].copy()
        q[self._arms], dq[self._arms] = t.last_targets[self._arms], 0.0
        f = self.sim._free_q
        state = LocomotionState(joint_positions=q, joint_velocities=dq, base_angular_velocity=d.qvel[3:6].copy(),
                                base_quaternion=d.qpos[f + 3:f + 7].copy())
        targets = t.act(self.command, state)
        return ((targets[self._legs] - self.default_pose[self._legs]) / self.action_scale).astype(np.float32)

    def _contacts(self) -> np.ndarray:
        """Whether each foot (left, right) touches the floor now."""
        d = self.sim.data
        touching = np.zeros(2, dtype=bool)
        for c in d.contact[: d.ncon]:
            for side, geoms in enumerate(self._feet):
                if (c.geom1 in geoms and c.geom2 == self._floor) or (c.geom2 in geoms and c.geom1 == self._floor):
                    touching[side] = True
        return touching

    def reward_terms(self) -> dict[str, float]:
        """Every reward term now, unweighted (``info`` has them weighted, as ``reward_<term>``):

        - ``lin_vel``: ``exp(-|v_xy - command_xy|^2 / 0.25)``, pelvis-frame velocity;
        - ``yaw_rate``: ``exp(-(w_z - command_yaw)^2 / 0.25)``;
        - ``height``: ``exp(-(h - command_h)^2 / 0.04)``, pelvis height above the floor (still 0.1 at
          0.3 m off, so a standing robot feels the pull of the lowest command);
        - ``knee``: ``|mean knee - knee_target(command_h)|`` (weight negative): squat with the knees,
          linear so that it pulls however far the knees are from the squat table's angle;
        - ``upright``: ``|gravity_xy|^2`` in the pelvis frame (weight negative);
        - ``hip_posture``: squared hip roll and yaw angles; ``waist_posture``: squared waist roll and pitch;
        - ``feet_phase``: +1 per foot whose contact matches the gait phase (stance when sin(phase) < 0),
          both feet down when standing; in [0, 1];
        - ``lin_vel_z``: ``v_z^2``; ``ang_vel_xy``: ``|w_xy|^2``;
        - ``action_rate``: ``|a - a_prev|^2``; ``torque``: ``|tau|^2``; ``joint_acc``: ``|ddq|^2``;
        - ``alive``: 1 every step; ``fall``: 1 on the step that ends the episode by a fall.
        """
        d, sim = self.sim.data, self.sim
        gravity, lin, ang = self._base_frame()
        c = self.command
        q = d.qpos[sim._qadr]
        dq = d.qvel[sim._vadr]
        contact = self._contacts()
        stance = np.ones(2, dtype=bool) if self._clock.standing else np.sin(self._clock.phase) < 0
        return {
            "lin_vel": math.exp(-float(np.sum((lin[:2] - c[:2]) ** 2)) / 0.25),
            "yaw_rate": math.exp(-float((ang[2] - c[2]) ** 2) / 0.25),
            "height": math.exp(-float((sim.base_height - c[3]) ** 2) / 0.04),
            "knee": abs(float(np.mean(q[self._knees])) - self.knee_target(c[3])),
            "upright": float(np.sum(gravity[:2] ** 2)),
            "hip_posture": float(np.sum(q[self._hip_roll_yaw] ** 2)),
            "waist_posture": float(np.sum(q[self._waist] ** 2)),
            "feet_phase": float(np.mean(contact == stance)),
            "lin_vel_z": float(lin[2] ** 2),
            "ang_vel_xy": float(np.sum(ang[:2] ** 2)),
            "action_rate": float(np.sum((self._action - self._prev_action) ** 2)),
            "torque": float(np.sum(sim.torques ** 2)),
            "joint_acc": float(np.sum(((dq - self._prev_dq) / sim.dt) ** 2)),
            "alive": 1.0,
            "fall": 0.0,
        }

    def _fallen(self) -> bool:
        gravity, _, _ = self._base_frame()
        return (self.sim.base_height < 0.3 or float(np.hypot(gravity[0], gravity[1])) > self.config.max_tilt
                or self.sim.diverged)

    # -- rendering ---------------------------------------------------------------------------------

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from roboreward.envs.rendering import FrameRenderer, RenderOptions

        if self._renderer is None:
            self._renderer = FrameRenderer(self.sim.model, RenderOptions(width=320, height=240))
        return self._renderer.render(self.sim.data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


__all__ = [
    "ArmCurriculum",
    "CommandRanges",
    "DomainRandomization",
    "G1LocoConfig",
    "G1LocoEnv",
    "G1Mirror",
    "RewardWeights",
    "homie_arm_ratio",
    "mirror_quaternion",
]
