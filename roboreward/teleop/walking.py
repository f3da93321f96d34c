"""A walking base for the cockpit: a locomotion policy moves the robot's legs while the operator moves its arms.

HOMIE's cockpit splits the body: the pedal commands the legs (walk, turn) through a lower-body
policy, the exoskeleton commands the arms joint by joint. :class:`WalkingBase` is that split for a
:class:`~roboreward.teleop.robots.TeleopRobot` with ``base.type: walking``: the robot keeps its free
joint (a real floating base on the floor), and each control step

1. reads the policy's state from the simulation (joints in the policy's order, the pelvis gyro and
   orientation),
2. runs the :class:`~roboreward.policies.locomotion.LocomotionPolicy` on the pedal's command,
3. sends the policy's targets to the joints the operator does not drive (legs, waist); the joints
   the operator drives (arms, hands) keep the operator's targets.

The joints the policy alone drives are servoed with the gains it was trained with: their position
actuators are re-tuned to its ``kp`` / ``kd`` when the robot is built, and get no gravity model (it
learned plain PD). The operator's arms keep the robot file's stiffer servos and gravity
compensation: at the policy's arm gains (kp 14 on the G1's shoulders) they lag the exoskeleton by
~0.07 rad after a 1 s move, and in six seeded runs of random arm motion over 30 % of the range it
fell once, against never with the stiff arms.

**What the policy sees of the arms** (``base.arm_observation``). A walking policy trained with its
own arms reads the arms' positions and velocities, and a pose it never produced (the operator's)
throws its balance off. ``commanded`` (the default) shows the policy its own arm targets at zero
velocity: what it would see had the arms followed it perfectly. The arms' real weight still moves
the body; the policy's feedback from the gyro, gravity and legs handles that part. ``measured``
feeds the true arm state. Measured on the G1 with the holosoma policy (benchmarks/teleop_walking.py,
arms re-posed every 2 s at up to 2 rad/s, 20 s episodes), falls per 100 episodes with
``measured`` -> ``commanded``: standing, arms over 30 % of their range 100 -> 0, over 60 % 100 -> 30;
walking at 0.5 m/s, 70 -> 0 and 100 -> 20.

The pedal's height command goes to the policy with the velocities. The shipped holosoma policy
reads no height; the locomotion layer squats its reference pose instead (``squat`` in its config),
over the range that holds: 0.65-0.757 m (:attr:`WalkingBase.height_range`, which the session's
pedal mapping clamps to; 0.639 m measured for 0.65). Walking in a squat is slow (~0.2 m/s for 0.5
commanded at 0.65 m). A policy without either has one height, and the squat pedal does nothing.

A pelvis below ``base.fall_height`` or an unstable simulation is a fall (:attr:`WalkingBase.fallen`):
the simulated sink stands the robot up again and counts it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np

import roboreward.envs.rendering  # noqa: F401  (sets MUJOCO_GL=egl before mujoco loads)
from roboreward.errors import ConfigError
from roboreward.policies.locomotion import LocomotionPolicy, LocomotionState, load_locomotion_policy
from roboreward.teleop.calibration import LocoCommand

import mujoco  # noqa: E402  (after rendering: it picks the GL backend)


class WalkingBase:
    """The legs of a teleop robot, walked by a locomotion policy; see the module docstring.

    :param model: the robot's compiled model (its copy: the policy joints' servo gains are set here).
    :param operator_joints: the joints the cockpit drives (arms, hands); the policy drives the rest of its joints.
    :param dt: the robot's control step (s); must be the policy's period.
    :param free_joint: the model's floating base; ``locomotion``, ``arm_observation``, ``fall_height``:
        the robot file's ``base.*`` keys of the same names.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        operator_joints: list[str],
        dt: float,
        *,
        free_joint: str,
        locomotion: str = "g1_holosoma",
        arm_observation: Literal["commanded", "measured"] = "commanded",
        fall_height: float = 0.35,
    ) -> None:
        self.model = model
        self.arm_observation = arm_observation
        self.fall_height = fall_height
        self.policy: LocomotionPolicy = load_locomotion_policy(locomotion)
        policy = self.policy
        if not math.isclose(dt, policy.dt, rel_tol=1e-6):
            raise ConfigError(
                f"control_dt: the robot steps every {dt:g} s but the locomotion policy {policy.config.name!r} "
                f"runs at {policy.config.control_hz:g} Hz; set control_dt to {policy.dt:g}"
            )
        m = model
        missing = [n for n in policy.joint_names if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) < 0]
        if missing:
            raise ConfigError(
                f"base.locomotion: the policy {policy.config.name!r} drives joints {missing} that the robot's model "
                "does not have; use a policy made for this robot"
            )
        self.joint_ids = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in policy.joint_names])
        self._qadr = m.jnt_qposadr[self.joint_ids]
        self._vadr = m.jnt_dofadr[self.joint_ids]
        operator = set(operator_joints)
        # Policy joints the operator also drives (the arms): the operator's targets win, and the
        # observation of them follows base.arm_observation.
        self.shared = np.array([i for i, n in enumerate(policy.joint_names) if n in operator], dtype=np.int64)
        self.own = np.array([i for i, n in enumerate(policy.joint_names) if n not in operator], dtype=np.int64)
        if self.own.size == 0:
            raise ConfigError(
                f"base.locomotion: every joint of the policy {policy.config.name!r} is an arm or hand joint; "
                "a walking base needs the policy to drive the legs"
            )
        self._set_servo_gains()

        free = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, free_joint)
        if free < 0 or m.jnt_type[free] != mujoco.mjtJoint.mjJNT_FREE:
            raise ConfigError(f"base.free_joint: {free_joint!r} is not a free joint of the model")
        self.free_qpos, self._free_v = int(m.jnt_qposadr[free]), int(m.jnt_dofadr[free])
        self.base_body = int(m.jnt_bodyid[free])
        self.command = LocoCommand(0.0, 0.0, 0.0)
        self.stand_height = math.nan  # set by reset(): the pelvis height standing in the default pose
        self._unstable_at_reset = 0

    def _set_servo_gains(self) -> None:
        """Re-tune each policy joint's position servo to the policy's PD gains (``kp * (target - q) - kd * dq``)."""
        m, policy = self.model, self.policy
        for i in self.own:
            name, j, kp, kd = policy.joint_names[i], self.joint_ids[i], policy.kp[i], policy.kd[i]
            servos = [a for a in range(m.nu) if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
                      and m.actuator_trnid[a, 0] == j and m.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
                      and m.actuator_gainprm[a, 0] > 0]
            if len(servos) != 1:
                raise ConfigError(
                    f"joint {name!r} has {len(servos)} position servos in the robot's model; a walking base "
                    "needs exactly one per policy joint (a <position> actuator)"
                )
            a = servos[0]
            gear = m.actuator_gear[a, 0]
            m.actuator_gainprm[a, 0] = kp / gear
            m.actuator_biasprm[a, :3] = [0.0, -kp / gear, -kd / gear]

    # -- the robot's calls -------------------------------------------------------------------------

    def reset(self, data: mujoco.MjData, sole_height: Callable[[mujoco.MjData], float]) -> None:
        """Stand in the policy's default pose at the origin, upright, the soles (``sole_height(data)``) on the floor."""
        m, d = self.model, data
        d.qpos[self.free_qpos:self.free_qpos + 7] = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        d.qvel[self._free_v:self._free_v + 6] = 0.0
        d.qpos[self._qadr] = self.policy.default_pose
        d.qvel[self._vadr] = 0.0
        mujoco.mj_forward(m, d)
        d.qpos[self.free_qpos + 2] -= sole_height(d)
        mujoco.mj_forward(m, d)
        self.stand_height = float(d.qpos[self.free_qpos + 2])
        self.command = LocoCommand(0.0, 0.0, self.stand_height)
        self.policy.reset()
        self._unstable_at_reset = int(d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number)

    @property
    def height_range(self) -> tuple[float, float]:
        """Base heights the policy can be commanded to; its standing height alone when it takes no height."""
        span = self.policy.config.command_ranges.base_height
        return (float(span[0]), float(span[1])) if span is not None else (self.stand_height, self.stand_height)

    def set_command(self, command: LocoCommand) -> None:
        values = (command.vx, command.yaw_rate, command.height)
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"base command must be finite, got {command}")
        self.command = command

    def targets(self, data: mujoco.MjData) -> np.ndarray:
        """One policy step on the state now: targets for the joints the policy alone drives (``own_joint_ids``)."""
        d, p = data, self.policy
        q = d.qpos[self._qadr].copy()
        dq = d.qvel[self._vadr].copy()
        if self.arm_observation == "commanded" and self.shared.size:
            # The arms as the policy would have them: at its own last targets, still.
            q[self.shared] = p.last_targets[self.shared]
            dq[self.shared] = 0.0
        state = LocomotionState(
            joint_positions=q,
            joint_velocities=dq,
            base_angular_velocity=d.qvel[self._free_v + 3:self._free_v + 6].copy(),  # body frame for a free joint
            base_quaternion=d.qpos[self.free_qpos + 3:self.free_qpos + 7].copy(),
        )
        c = self.command
        return p.act((c.vx, 0.0, c.yaw_rate, c.height), state)[self.own]

    def fallen(self, data: mujoco.MjData) -> bool:
        """The pelvis is below ``base.fall_height``, or MuJoCo found the simulation unstable since the reset."""
        unstable = int(data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number) > self._unstable_at_reset
        return unstable or float(data.qpos[self.free_qpos + 2]) < self.fall_height

    @property
    def own_joint_ids(self) -> np.ndarray:
        """Model joint ids of the joints the policy alone drives (legs, waist), in ``self.own`` order."""
        return self.joint_ids[self.own]


__all__ = ["WalkingBase"]
