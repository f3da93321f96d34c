"""The Unitree G1 (29 DoF) in MuJoCo under joint PD control: the robot a locomotion policy walks.

A walking policy only transfers to a simulator that reproduces what it was trained on: the same
model, the same low-level control and the same timing. :class:`G1Sim` is that simulator for the
holosoma G1 policy (:mod:`roboreward.policies.locomotion`): the robot only, reset and stepped,
with the commands and rewards of any task kept out of it::

    policy = load_locomotion_policy("g1_holosoma")
    sim = G1Sim.for_policy(policy.config)
    state = sim.reset()                                    # default pose, feet on the floor
    for _ in range(250):                                   # 5 s at 50 Hz
        state = sim.step(policy.act((0.5, 0.0, 0.0, 0.75), state))
    sim.base_position                                      # -> about 1.9 m forward

- **Model**: the G1 29-DoF MJCF holosoma trains on (``holosoma/data/robots/g1/g1_29dof.xml`` in the
  installed ``holosoma`` package; ``make setup`` installs it), on a flat floor. Its feet touch the
  floor through the file's own contact pairs (friction 0.8), which name a geom ``floor`` that the
  file leaves to the scene; this module adds it.
- **Control**: the MJCF drives every joint with a torque motor. Each physics step applies
  ``torque = kp * (target - q) - kd * dq``, recomputed from the current state as holosoma's
  training does, clipped to the tighter of the motor's ``ctrlrange`` and the joint's
  ``actuatorfrcrange`` (for the hip roll that is the motor's 88 N m; holosoma's own MuJoCo runs
  clip there too, its training at 139 N m; standing, walking and turning never reach either).
- **Timing**: physics at 200 Hz (5 ms, holosoma's ``fps=200``), ``control_decimation`` 4: one
  :meth:`G1Sim.step` is one 50 Hz policy step.

State comes back as the policy reads it (:class:`~roboreward.policies.locomotion.LocomotionState`,
joints in the policy's order, gyro in the pelvis frame), and the pelvis pose and velocity are
attributes for whoever scores the walk.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.config import package_dir
from roboreward.envs.geometry import lowest_point
from roboreward.envs.rendering import mujoco  # sets MUJOCO_GL before mujoco loads
from roboreward.errors import ConfigError, NonFiniteError, SetupError
from roboreward.hardware.robot import yaw_from_quaternion
from roboreward.policies.locomotion import LocomotionState

PHYSICS_DT = 0.005  # holosoma's simulator fps=200 (holosoma/config_values/simulator.py)


def holosoma_g1_mjcf_path() -> Path:
    """holosoma's G1 29-DoF MJCF, found in the installed ``holosoma`` package without importing it."""
    path = package_dir("holosoma") / "data" / "robots" / "g1" / "g1_29dof.xml"
    if not path.is_file():
        raise SetupError(f"the installed holosoma package has no G1 model at {path}; `make setup` installs the one "
                         "roboreward pins")
    return path


@functools.lru_cache(maxsize=4)
def _compiled_model(path: str, physics_dt: float) -> mujoco.MjModel:
    """The G1 on a floor, compiled once per process (meshes take about a second); callers copy it."""
    spec = mujoco.MjSpec.from_file(path)
    spec.option.timestep = physics_dt
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05],
                            rgba=[0.55, 0.58, 0.62, 1])
    spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1], directional=True, diffuse=[0.7, 0.7, 0.7])
    return spec.compile()


class G1Sim:
    """The holosoma G1 in MuJoCo, its joints PD-controlled towards targets at a policy's gains.

    :param joint_names: the controlled joints, in the order of targets and states (all 29, any order).
    :param kp, kd: per joint (name -> gain) or arrays in ``joint_names`` order.
    :param default_pose: per joint (name -> rad) or an array: the pose :meth:`reset` stands the robot in.
    :param control_hz: :meth:`step`s per second; a whole number of physics steps each.
    :param physics_dt: the physics timestep (s).

    Attributes: ``model`` / ``data`` (MuJoCo), ``dt`` (seconds per step), ``substeps``,
    ``torque_limits`` (N m per joint), ``torques`` (the last physics step's).
    """

    def __init__(
        self,
        *,
        joint_names: Sequence[str],
        kp: Mapping[str, float] | Sequence[float] | np.ndarray,
        kd: Mapping[str, float] | Sequence[float] | np.ndarray,
        default_pose: Mapping[str, float] | Sequence[float] | np.ndarray,
        control_hz: float = 50.0,
        physics_dt: float = PHYSICS_DT,
    ) -> None:
        self.joint_names = list(joint_names)
        self.kp = self._per_joint(kp, "kp", nonnegative=True)
        self.kd = self._per_joint(kd, "kd", nonnegative=True)
        self.default_pose = self._per_joint(default_pose, "default_pose")
        if not (math.isfinite(control_hz) and control_hz > 0 and math.isfinite(physics_dt) and physics_dt > 0):
            raise ConfigError(f"control_hz and physics_dt must be finite and > 0, got {control_hz}, {physics_dt}")
        self.substeps = round(1.0 / (control_hz * physics_dt))
        if self.substeps < 1 or abs(self.substeps * physics_dt * control_hz - 1.0) > 1e-6:
            raise ConfigError(
                f"control at {control_hz:g} Hz ({1e3 / control_hz:g} ms) is not a whole number of "
                f"{physics_dt * 1e3:g} ms physics steps; choose a control period that is a multiple of the physics step"
            )
        self.dt = self.substeps * physics_dt

        self.model = copy.deepcopy(_compiled_model(str(holosoma_g1_mjcf_path()), float(physics_dt)))
        self.data = mujoco.MjData(self.model)
        m = self.model
        free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        if len(free) != 1:
            raise ConfigError(f"the G1 model has {len(free)} free joints; expected one floating base")
        self._free_q, self._free_v = int(m.jnt_qposadr[free[0]]), int(m.jnt_dofadr[free[0]])
        self._base_body = int(m.jnt_bodyid[free[0]])
        joints = self._joint_ids(self.joint_names)
        self._qadr, self._vadr = m.jnt_qposadr[joints], m.jnt_dofadr[joints]
        self._actuators, self.torque_limits = self._motors(joints)
        self._collision_geom_ids = self._collision_geoms()
        self.torques = np.zeros(len(self.joint_names))
        self.reset()

    @classmethod
    def for_policy(cls, config: Any, **kwargs: Any) -> G1Sim:
        """The simulator a :class:`~roboreward.policies.locomotion.LocomotionPolicyConfig` asks for:
        its joints, gains, default pose and rate."""
        return cls(joint_names=config.joint_names, kp=config.kp, kd=config.kd, default_pose=config.default_pose,
                   control_hz=config.control_hz, **kwargs)

    # -- set-up ----------------------------------------------------------------------------------

    def _per_joint(self, values: Any, key: str, nonnegative: bool = False) -> np.ndarray:
        if isinstance(values, Mapping):
            missing = [n for n in self.joint_names if n not in values]
            if missing:
                raise ConfigError(f"{key}: no value for joints {missing}")
            out = np.array([float(values[n]) for n in self.joint_names])
        else:
            out = np.asarray(values, dtype=np.float64).reshape(-1)
            if out.shape != (len(self.joint_names),):
                raise ConfigError(f"{key}: expected {len(self.joint_names)} values (joint_names order), got {out.size}")
        if not np.all(np.isfinite(out)) or (nonnegative and np.any(out < 0)):
            rule = "finite and >= 0" if nonnegative else "finite"
            raise ConfigError(f"{key}: every value must be {rule}, got {out.tolist()}")
        return out

    def _joint_ids(self, names: list[str]) -> np.ndarray:
        m = self.model
        hinges = [m.joint(j).name for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]
        missing = [n for n in names if n not in hinges]
        if missing:
            raise ConfigError(f"joints {missing} are not hinge joints of the G1 model; its joints: {hinges}")
        if len(set(names)) != len(names):
            raise ConfigError(f"joint_names lists a joint twice: {names}")
        unlisted = [n for n in hinges if n not in names]
        if unlisted:  # an unlisted joint would hang limp: the policy must command the whole body
            raise ConfigError(f"joint_names leaves out {unlisted}; the G1 needs a target for every joint")
        return np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in names])

    def _motors(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The torque motor of each joint and its limit (the tighter of ctrlrange and actuatorfrcrange)."""
        m = self.model
        actuators, limits = [], []
        for name, j in zip(self.joint_names, joints):
            found = [a for a in range(m.nu) if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
                     and m.actuator_trnid[a, 0] == j]
            if len(found) != 1:
                raise ConfigError(f"joint {name!r} has {len(found)} actuators in the G1 model; expected one motor")
            a = found[0]
            is_motor = (m.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED and m.actuator_gainprm[a, 0] == 1.0
                        and m.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_NONE and m.actuator_gear[a, 0] == 1.0)
            if not is_motor:
                raise ConfigError(f"the G1 model's actuator for {name!r} is not a torque motor; PD control needs one")
            limit = math.inf
            if m.actuator_ctrllimited[a]:
                limit = min(limit, -m.actuator_ctrlrange[a, 0], m.actuator_ctrlrange[a, 1])
            if m.jnt_actfrclimited[j]:
                limit = min(limit, -m.jnt_actfrcrange[j, 0], m.jnt_actfrcrange[j, 1])
            actuators.append(a)
            limits.append(limit)
        return np.array(actuators), np.array(limits)

    def _collision_geoms(self) -> np.ndarray:
        m = self.model
        floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        return np.array([g for g in range(m.ngeom) if g != floor and (m.geom_contype[g] or m.geom_conaffinity[g])])

    def _lowest_point(self) -> float:
        """World z of the robot's lowest collision point (geom bounding boxes; exact for the capsule soles)."""
        return lowest_point(self.model, self.data, self._collision_geom_ids)

    # -- stepping ----------------------------------------------------------------------------------

    def reset(self, x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> LocomotionState:
        """Stand still in the default pose at ``(x, y)`` facing ``yaw``, the soles on the floor."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._free_q:self._free_q + 7] = [x, y, 1.0, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        d.qpos[self._qadr] = self.default_pose
        mujoco.mj_forward(m, d)
        d.qpos[self._free_q + 2] -= self._lowest_point()
        mujoco.mj_forward(m, d)
        self._targets = self.default_pose.copy()
        self.torques = np.zeros(len(self.joint_names))
        self._unstable_at_reset = int(d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number)
        return self.state()

    def step(self, targets: Sequence[float] | np.ndarray) -> LocomotionState:
        """Hold ``targets`` (rad, ``joint_names`` order) for one control period; the state after it."""
        q_target = np.asarray(targets, dtype=np.float64)
        if q_target.shape != (len(self.joint_names),):
            raise ValueError(
                f"expected {len(self.joint_names)} joint targets (joint_names order), got shape {q_target.shape}"
            )
        if not np.all(np.isfinite(q_target)):
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(q_target))]
            raise NonFiniteError(f"joint targets for {bad} are NaN or infinite; nothing was applied")
        self._targets = q_target.copy()
        m, d = self.model, self.data
        for _ in range(self.substeps):
            tau = self.kp * (q_target - d.qpos[self._qadr]) - self.kd * d.qvel[self._vadr]
            np.clip(tau, -self.torque_limits, self.torque_limits, out=tau)
            d.ctrl[self._actuators] = tau
            mujoco.mj_step(m, d)
        self.torques = tau
        return self.state()

    def state(self) -> LocomotionState:
        """Joints in ``joint_names`` order; the pelvis gyro in its own frame (a free joint's angular
        velocity is body-frame in MuJoCo) and its orientation."""
        d, q, v = self.data, self._free_q, self._free_v
        return LocomotionState(
            joint_positions=d.qpos[self._qadr].copy(),
            joint_velocities=d.qvel[self._vadr].copy(),
            base_angular_velocity=d.qvel[v + 3:v + 6].copy(),
            base_quaternion=d.qpos[q + 3:q + 7].copy(),
        )

    # -- what a task scores --------------------------------------------------------------------------

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def targets(self) -> np.ndarray:
        """The joint targets held now."""
        return self._targets.copy()

    @property
    def base_position(self) -> np.ndarray:
        """The pelvis position (m, world)."""
        return self.data.qpos[self._free_q:self._free_q + 3].copy()

    @property
    def base_height(self) -> float:
        """The pelvis height above the floor (m)."""
        return float(self.data.qpos[self._free_q + 2])

    @property
    def base_yaw(self) -> float:
        return yaw_from_quaternion(self.data.qpos[self._free_q + 3:self._free_q + 7])

    @property
    def base_linear_velocity(self) -> np.ndarray:
        """The pelvis velocity (m/s, world frame)."""
        return self.data.qvel[self._free_v:self._free_v + 3].copy()

    @property
    def diverged(self) -> bool:
        """True once MuJoCo found the physics unstable since :meth:`reset` (it then resets the state itself)."""
        return int(self.data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number) > self._unstable_at_reset

    def __repr__(self) -> str:
        return f"G1Sim(joints={len(self.joint_names)}, dt={self.dt:g}, substeps={self.substeps})"


__all__ = ["PHYSICS_DT", "G1Sim", "holosoma_g1_mjcf_path"]
