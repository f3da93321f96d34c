"""Replay a recorded teleoperation episode in simulation and measure how well it is reproduced.

A demonstration is only as good as its commands: a policy trained on it sees the recorded
``action`` (joint targets, walking command) and must be able to get the recorded ``observation.state``
from them. Replaying the commands open loop on the simulated robot checks exactly that, and catches
the usual recording faults (commands and states out of step, a wrong joint order, frames dropped)::

    result = replay_episode("demos/g1_pick", episode=3)
    print(result.format())
    result.rms                      # rad, replayed vs recorded joint positions, all joints and frames

The robot starts at the recorded first state (commanded joints; the rest at the robot's start pose).
The simulation then runs at its own control rate as it did while recording: each step uses the
recorded command at the step's start, interpolated between the frames around it (frame times are
the host times in the episode's teleop sidecar, else ``k / fps``), and the state is compared at every
frame time. Two errors are reported per joint group (each arm, each hand):

- *replay vs recording*: replayed minus recorded joint positions. Near zero when the recording is
  consistent; the simulated robot's own tracking lag appears in both, so it cancels.
- *replay vs commands*: replayed positions minus the commanded targets: how closely this robot's
  position servos follow the operator (its lag and steady-state error).

A walking robot's base is compared relative to its first pose (the replay starts the base at the
robot's start pose): position error in metres and heading error in radians.

Episodes recorded through the ROS 2 sink hold the robot *file's* joints (``panda_joint1.pos``); the
sink's renaming, kept in each episode's sidecar, maps them back to the teleop robot's joints, and
joints the sink did not send (a gripper with its own controller) stay at the start pose, uncompared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.datasets.lerobot_v3 import DatasetError
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.dataset import BASE_COMMAND_NAMES, BASE_POSE_NAMES, TeleopDataset


@dataclass
class GroupError:
    """RMS and worst error of a group of joints over an episode."""

    name: str
    joints: list[str]
    rms: float
    max: float
    worst_joint: str


@dataclass
class ReplayResult:
    """What :func:`replay_episode` measured for one episode."""

    episode: int
    robot: str
    frames: int
    seconds: float
    success: bool
    interrupted: bool
    reason: str | None
    joint_names: list[str]
    replayed: np.ndarray  # [T, J] joint positions of the replay at the frame times
    recorded: np.ndarray  # [T, J] recorded joint positions
    commanded: np.ndarray  # [T, J] recorded joint targets
    groups: list[GroupError] = field(default_factory=list)
    command_groups: list[GroupError] = field(default_factory=list)
    base_position_error: float | None = None  # m, max over frames, relative to the first pose
    base_yaw_error: float | None = None  # rad, max over frames

    @property
    def rms(self) -> float:
        """RMS of replayed - recorded joint positions over all joints and frames (rad; m for slides)."""
        return float(np.sqrt(np.mean((self.replayed - self.recorded) ** 2)))

    @property
    def max_error(self) -> float:
        return float(np.max(np.abs(self.replayed - self.recorded)))

    @property
    def command_rms(self) -> float:
        """RMS of replayed positions - commanded targets: how closely the robot tracks its commands."""
        return float(np.sqrt(np.mean((self.replayed - self.commanded) ** 2)))

    def format(self) -> str:
        status = "success" if self.success else "not marked successful"
        if self.interrupted:
            status += f", interrupted ({self.reason})"
        lines = [
            f"episode {self.episode}: {self.robot}, {self.frames} frames, {self.seconds:.1f} s, {status}",
            f"  replay vs recording: RMS {self.rms:.4f}, max {self.max_error:.4f} (rad; m for sliding joints)",
        ]
        lines += [f"    {g.name:<12} RMS {g.rms:.4f}  max {g.max:.4f} ({g.worst_joint})" for g in self.groups]
        lines.append(f"  replay vs commands:  RMS {self.command_rms:.4f} (the robot's tracking of the targets)")
        lines += [f"    {g.name:<12} RMS {g.rms:.4f}  max {g.max:.4f} ({g.worst_joint})" for g in self.command_groups]
        if self.base_position_error is not None:
            lines.append(
                f"  base, relative to its first pose: max position error {self.base_position_error:.4f} m, "
                f"heading {self.base_yaw_error:.4f} rad"
            )
        return "\n".join(lines)


def _group_errors(diff: np.ndarray, names: list[str], groups: dict[str, list[str]]) -> list[GroupError]:
    index = {n: i for i, n in enumerate(names)}
    out = []
    for label, joints in groups.items():
        idx = [index[j] for j in joints]
        d = np.abs(diff[:, idx])
        worst = int(np.argmax(d.max(axis=0)))
        out.append(GroupError(label, list(joints), float(np.sqrt(np.mean(d**2))), float(d.max()), joints[worst]))
    return out


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def _relative(poses: np.ndarray) -> np.ndarray:
    """``[T, 4]`` (x, y, yaw, height) -> positions and headings relative to the first pose, in its frame."""
    x0, y0, yaw0 = poses[0, 0], poses[0, 1], poses[0, 2]
    c, s = math.cos(-yaw0), math.sin(-yaw0)
    dx, dy = poses[:, 0] - x0, poses[:, 1] - y0
    return np.stack([c * dx - s * dy, s * dx + c * dy, _wrap(poses[:, 2] - yaw0), poses[:, 3]], axis=1)


def replay_episode(
    dataset: str | Path | Any,
    episode: int = 0,
    *,
    robot: Any = None,
) -> ReplayResult:
    """Replay ``episode`` of ``dataset`` (a folder, or a :class:`~roboreward.teleop.dataset.TeleopDataset`).

    :param robot: the :class:`~roboreward.teleop.robots.TeleopRobot` to replay on; by default one is
        built from the dataset's ``robot_type`` (and closed afterwards).
    """
    ds = dataset if isinstance(dataset, TeleopDataset) else TeleopDataset(dataset)
    reader = ds.reader
    ep = reader.episode(episode)
    try:
        teleop = ds.episode(episode)
    except DatasetError:
        teleop = None  # a dataset not recorded by the session: replay at k / fps, without its metadata
    own = robot is None
    if own:
        if not reader.robot_type:
            raise DatasetError(f"{ds.root} has no robot_type in meta/info.json; pass the robot to replay on")
        robot = _recorded_robot(ds, episode)
    try:
        return _replay(ds, episode, ep, teleop, robot)
    finally:
        if own:
            robot.close()


def _recorded_robot(ds: TeleopDataset, episode: int) -> Any:
    """The teleop robot an episode was recorded with: its ``robot_type``, with the base the session used."""
    from roboreward.teleop.robots import make_teleop_robot

    try:
        base = ds.episode(episode).meta.get("base")
    except DatasetError:
        base = None  # no sidecar: the robot file's own base
    overrides = [f"base.type={base}"] if base in ("walking", "kinematic", "fixed") else []
    return make_teleop_robot(ds.reader.robot_type, size=(16, 16), overrides=overrides)


def recorded_joint_columns(
    names: Sequence[str], state_names: Sequence[str], action_names: Sequence[str], joint_map: dict[str, str | None],
) -> tuple[list[int], list[int], list[int]]:
    """Where each of the robot's joints is in a recording: ``(joints, state columns, action columns)``.

    A session on the simulation records the robot's own joint names (``joint1.pos``, ``joint1.target``); one
    through the ROS 2 sink records the robot *file's* names, renamed by ``joint_map`` (teleop joint -> recorded
    joint; None: not sent, so not recorded). Joints the recording lacks are left out of all three lists.
    """
    state_index = {name: i for i, name in enumerate(state_names)}
    action_index = {name: i for i, name in enumerate(action_names)}
    joints, state_cols, action_cols = [], [], []
    for j, name in enumerate(names):
        recorded = joint_map.get(name, name)
        if recorded is None or f"{recorded}.pos" not in state_index or f"{recorded}.target" not in action_index:
            continue
        joints.append(j)
        state_cols.append(state_index[f"{recorded}.pos"])
        action_cols.append(action_index[f"{recorded}.target"])
    return joints, state_cols, action_cols


def _replay(ds, episode, ep, teleop, robot) -> ReplayResult:
    import mujoco

    names = list(robot.joint_names)
    n = len(names)
    features = ds.reader.features
    state_names = list(features["observation.state"]["names"])
    action_names = list(features["action"]["names"])
    # Recorded through the ROS 2 sink: its renaming is in the sidecar. Otherwise the robot's own joint names.
    joint_map = dict(((teleop.meta.get("sink") or {}).get("joint_map") or {}) if teleop is not None else {})
    sent, state_cols, action_cols = recorded_joint_columns(names, state_names, action_names, joint_map)
    if not sent:
        raise DatasetError(
            f"{ds.root} was not recorded with {robot.name}'s joints ({n} joints: {names[:3]}...): its state starts "
            f"{state_names[:3]}, its action {action_names[:3]}; replay it on the robot it was recorded with"
        )
    has_base = robot.has_base
    base_columns = set(BASE_COMMAND_NAMES) <= set(action_names) and set(BASE_POSE_NAMES) <= set(state_names)
    if has_base and not base_columns:
        raise DatasetError(f"{ds.root} has no base command and pose columns, but {robot.name} walks")
    T = len(ep)
    fps = ds.reader.fps
    times = teleop.frame_time if teleop is not None else np.arange(T) / fps
    state = ep.state.astype(np.float64)
    action = ep.action.astype(np.float64)
    recorded = state[:, state_cols]
    command_cols = action_cols + ([action_names.index(c) for c in BASE_COMMAND_NAMES] if has_base else [])
    commands = action[:, command_cols]
    k_sent = len(sent)

    # Start at the recorded first state: the recorded joints' positions, zero velocity; joints the recording
    # lacks (a gripper the ROS 2 sink did not send) stay at the robot's start pose and are not compared.
    m, d = robot.model, robot.data
    for j, q in zip(sent, recorded[0]):
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, names[j])
        d.qpos[m.jnt_qposadr[jid]] = q
        d.qvel[m.jnt_dofadr[jid]] = 0.0
    mujoco.mj_forward(m, d)
    held = np.asarray(robot.joint_positions(), dtype=np.float64).copy()

    def full_targets(values: np.ndarray) -> np.ndarray:
        targets = held.copy()
        targets[sent] = values
        return np.clip(targets, robot.lower, robot.upper)

    robot.set_targets(full_targets(recorded[0]))

    dt = float(robot.dt)
    replayed = np.empty((T, k_sent))
    poses = np.empty((T, 4)) if has_base else None

    def command_at(t: float) -> np.ndarray:
        """The recorded command at time ``t``, linear between frames (the robot got ~250 a second)."""
        i = int(np.searchsorted(times, t, side="right"))
        if i <= 0:
            return commands[0]
        if i >= T:
            return commands[-1]
        a = (t - times[i - 1]) / max(times[i] - times[i - 1], 1e-9)
        return commands[i - 1] + a * (commands[i] - commands[i - 1])

    # As when recording: a frame's state is the simulation after every step that began by the frame's
    # time, each step using the newest command at its start. Frame 0 is the starting state itself.
    step_start = float(times[0]) + dt  # the step begun at frame 0's time is in frame 0's state
    for k in range(T):
        while step_start <= times[k] + 1e-9:
            c = command_at(step_start)
            robot.set_targets(full_targets(c[:k_sent]))
            if has_base:
                vx, yaw_rate, height = (float(v) for v in c[k_sent:k_sent + 3])
                robot.set_base_command(LocoCommand(vx, yaw_rate, height), dt)
            robot.step()
            step_start += dt
        replayed[k] = np.asarray(robot.joint_positions())[sent]
        if poses is not None:
            poses[k] = robot.base_pose()

    compared = [names[j] for j in sent]
    commanded = np.clip(commands[:, :k_sent], robot.lower[sent], robot.upper[sent])
    groups = {f"{s} arm": robot.arm_joints[s] for s in robot.arm_joints}
    groups.update({f"{s} hand": robot.hand_joints[s] for s in robot.hand_joints})
    groups = {label: [j for j in joints if j in compared] for label, joints in groups.items()}
    groups = {label: joints for label, joints in groups.items() if joints}  # a hand that was not recorded
    result = ReplayResult(
        episode=episode,
        robot=robot.name,
        frames=T,
        seconds=float(times[-1] - times[0] + 1.0 / fps),
        success=bool(teleop.success if teleop is not None else ds.reader.episodes[episode].success),
        interrupted=bool(teleop.interrupted) if teleop is not None else False,
        reason=teleop.reason if teleop is not None else None,
        joint_names=compared,
        replayed=replayed,
        recorded=recorded,
        commanded=commanded,
        groups=_group_errors(replayed - recorded, compared, groups),
        command_groups=_group_errors(replayed - commanded, compared, groups),
    )
    if poses is not None:
        rec = _relative(state[:, [state_names.index(c) for c in BASE_POSE_NAMES]])
        rep = _relative(poses)
        result.base_position_error = float(np.max(np.hypot(rec[:, 0] - rep[:, 0], rec[:, 1] - rep[:, 1])))
        result.base_yaw_error = float(np.max(np.abs(_wrap(rec[:, 2] - rep[:, 2]))))
    return result


def replay_dataset(dataset: str | Path, episodes: Sequence[int] | None = None) -> list[ReplayResult]:
    """:func:`replay_episode` for each of ``episodes`` (all by default), on one robot."""
    ds = TeleopDataset(dataset)
    if len(ds) == 0:
        raise DatasetError(f"{dataset} has no finished episodes to replay")
    indices = list(range(len(ds))) if not episodes else list(episodes)
    for i in indices:
        ds.reader._row(i)  # out of range: the reader's message lists the episodes there are
    if not ds.reader.robot_type:
        raise DatasetError(f"{dataset} has no robot_type in meta/info.json; it was not recorded by `teleop run`")
    robot = _recorded_robot(ds, indices[0])
    try:
        results = []
        for i in indices:
            robot.reset()
            results.append(replay_episode(ds, i, robot=robot))
        return results
    finally:
        robot.close()


__all__ = ["GroupError", "ReplayResult", "replay_dataset", "replay_episode"]
