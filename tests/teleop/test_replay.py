"""Replay of recorded episodes: a consistent recording reproduces, a broken one does not, errors are clear.

Episodes are recorded here the way the session records them (commands applied at each control
step, a frame = the state after every step begun by the frame's time and the command in force),
on part A's MuJoCo robots, into real LeRobot v3 datasets with the teleop sidecar.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from roboreward.cli import main
from roboreward.datasets.lerobot_v3 import DatasetError
from roboreward.teleop.calibration import LocoCommand
from roboreward.teleop.dataset import TeleopDataset
from roboreward.teleop.recorder import EpisodeRecorder
from roboreward.teleop.replay import recorded_joint_columns, replay_dataset, replay_episode
from roboreward.teleop.sim_sink import SimulatedRobotSink


@pytest.fixture(scope="module")
def franka():
    from roboreward.teleop.robots import make_teleop_robot

    robot = make_teleop_robot("franka", cameras=["front"], size=(16, 16))
    yield robot
    robot.close()


def _record(root, robot, *, seconds: float, fps: int = 25, lag_frames: int = 0, base: LocoCommand | None = None,
            interrupted: bool = False) -> None:
    """Drive ``robot`` along smooth targets and record as the session does; ``lag_frames`` breaks it."""
    robot.reset()
    sink = SimulatedRobotSink(robot)
    rec = EpisodeRecorder(root, fps=fps, cameras=["front"], image_size=(16, 16), state_names=sink.state_names,
                          action_names=sink.action_names, robot_type=robot.name, task="replay test")
    start = robot.targets
    span = np.minimum(0.4, 0.3 * (robot.upper - robot.lower))
    freq = np.linspace(0.3, 0.6, len(start))

    def target(t: float) -> np.ndarray:
        return np.clip(start + span * np.sin(2 * math.pi * freq * t), robot.lower, robot.upper)

    dt, period = robot.dt, 1.0 / fps
    rec.start(0.0)
    frames, actions = [], []
    t_step, applied = 0.0, target(0.0)
    for k in range(round(seconds * fps)):
        t_frame = k * period
        while t_step <= t_frame + 1e-9:  # every step begun by the frame's time
            applied = robot.set_targets(target(t_step))
            if base is not None:
                robot.set_base_command(base, dt)
            robot.step()
            t_step += dt
        state = robot.joint_positions()
        if sink.has_base:
            state = np.concatenate([state, robot.base_pose()])
        frames.append((t_frame, state))
        actions.append(np.concatenate([applied, [base.vx, base.yaw_rate, base.height]]) if sink.has_base else applied)
    for k, (t, state) in enumerate(frames):
        action = actions[max(k - lag_frames, 0)]
        rec.add_frame(t, state, action, {"front": np.zeros((16, 16, 3), np.uint8)}, held=False, sources={})
    rec.save(success=True, interrupted=interrupted, reason="exo_right unplugged" if interrupted else None)
    rec.writer.finalize()


def test_a_consistent_recording_replays_closely_and_a_lagged_one_does_not(tmp_path, franka):
    _record(tmp_path / "good", franka, seconds=2.0)
    _record(tmp_path / "lagged", franka, seconds=2.0, lag_frames=4)  # commands 160 ms late: a timestamp bug
    good = replay_episode(tmp_path / "good", 0, robot=franka)
    franka.reset()
    lagged = replay_episode(tmp_path / "lagged", 0, robot=franka)
    assert good.frames == 50 and good.robot == "franka" and good.success and not good.interrupted
    assert good.rms < 0.002, good.format()
    assert lagged.rms > 5 * good.rms and lagged.rms > 0.02, (good.rms, lagged.rms)
    assert {g.name for g in good.groups} == {"right arm", "right hand"}
    np.testing.assert_allclose(good.replayed[0], good.recorded[0], atol=1e-6)  # starts at the recorded state
    assert good.command_rms > good.rms  # servo lag shows against the commands, cancels against the recording
    text = good.format()
    assert "replay vs recording" in text and "replay vs commands" in text and "right arm" in text


def test_replay_cli_reports_and_gates_on_the_error(tmp_path, franka, capsys):
    _record(tmp_path / "ds", franka, seconds=1.0, interrupted=True)
    assert main(["teleop", "replay", str(tmp_path / "ds"), "--fail-above", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "episode 0: franka, 25 frames" in out and "interrupted (exo_right unplugged)" in out
    assert main(["teleop", "replay", str(tmp_path / "ds"), "--fail-above", "1e-9"]) == 1
    assert "exceeds --fail-above" in capsys.readouterr().out
    assert main(["teleop", "replay", str(tmp_path / "ds"), "--episode", "3"]) == 2
    assert "episode 3 is not in" in capsys.readouterr().err
    assert main(["teleop", "replay", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("base, seconds, tolerance", [("kinematic", 1.2, 0.01), ("walking", 2.5, 0.05)])
def test_replay_refuses_another_robot_and_replays_the_g1_base(tmp_path, franka, base, seconds, tolerance):
    """The kinematic base replays exactly; the walking one closes its loop again (its legs are not in the recording)."""
    from roboreward.teleop.robots import make_teleop_robot

    _record(tmp_path / "franka", franka, seconds=0.4)
    g1 = make_teleop_robot("g1", size=(16, 16), overrides=[f"base.type={base}"])
    try:
        with pytest.raises(DatasetError, match="not recorded with g1's joints"):
            replay_episode(tmp_path / "franka", 0, robot=g1)
        g1.reset()
        _record(tmp_path / "g1", g1, seconds=seconds, fps=25, base=LocoCommand(0.4, 0.3, 0.7))
        g1.reset()
        result = replay_episode(TeleopDataset(tmp_path / "g1"), 0, robot=g1)
    finally:
        g1.close()
    ep = TeleopDataset(tmp_path / "g1").reader.episode(0)
    moved = np.hypot(*(ep.state[-1, -4:-2] - ep.state[0, -4:-2]))
    print(f"{base}: moved {moved:.2f} m; replay base error {result.base_position_error:.4f} m, "
          f"{result.base_yaw_error:.4f} rad")
    assert moved > 0.25  # it walked (0.4 m/s; the walking base starts from standing)
    assert result.base_position_error is not None and result.base_position_error < tolerance
    assert result.base_yaw_error < tolerance
    assert result.rms < 0.02, result.format()
    assert {g.name for g in result.groups} == {"left arm", "right arm", "left hand", "right hand"}


def test_replay_dataset_replays_every_episode(tmp_path, franka):
    _record(tmp_path / "ds", franka, seconds=0.4)
    empty = EpisodeRecorder(tmp_path / "empty", fps=25, cameras=["front"], image_size=(16, 16),
                            state_names=["a"], action_names=["b"], robot_type="franka", task="t")
    empty.writer.finalize()
    with pytest.raises(DatasetError, match="no finished episodes"):
        replay_dataset(tmp_path / "empty")
    results = replay_dataset(tmp_path / "ds")
    assert [r.episode for r in results] == [0] and results[0].frames == 10


def test_recorded_joint_columns_follow_the_sinks_renaming():
    names = ["joint1", "joint2", "finger"]
    # A simulation session: the robot's own names, in its order.
    own = recorded_joint_columns(names, [f"{n}.pos" for n in names], [f"{n}.target" for n in names], {})
    assert own == ([0, 1, 2], [0, 1, 2], [0, 1, 2])
    # Through the ROS 2 sink: the robot file's names in the file's order; the finger was not sent.
    state = ["arm_b.pos", "arm_a.pos"]
    action = ["arm_b.target", "arm_a.target"]
    mapped = recorded_joint_columns(names, state, action, {"joint1": "arm_a", "joint2": "arm_b", "finger": None})
    assert mapped == ([0, 1], [1, 0], [1, 0])
    # A joint whose columns are missing is left out, not matched to a neighbour.
    assert recorded_joint_columns(names, state, action, {"joint1": "arm_c"}) == ([], [], [])
