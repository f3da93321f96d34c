"""The live session: simulated devices on real ptys -> session -> MuJoCo robot -> LeRobot dataset.

Everything is real: the devices speak the cockpit protocol on ptys, the drivers read them with
pyserial, the robots are part A's MuJoCo models, episodes are written by the dataset writer, and
the kill test kills a real ``roboreward teleop run`` process driven from a pty keyboard.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

from roboreward.config import ConfigError, from_dict
from roboreward.datasets.lerobot_v3 import DatasetReader, DatasetWriter
from roboreward.teleop.calibration import ArmCalibration, JointCalibration, save_calibration
from roboreward.teleop.protocol import ArmReading, PedalReading, Side
from roboreward.teleop.session import (
    ButtonsConfig,
    ButtonWatcher,
    EpisodeRecorder,
    KeyboardControl,
    KeysConfig,
    RecordConfig,
    SessionConfig,
    TeleopDataset,
    TeleopSession,
    arm_motion,
    device_config,
    make_sink,
    parse_device_name,
    read_lost_episodes,
)
from roboreward.teleop.simulated import SimulatedExoskeletonArm, SimulatedGlove, SimulatedPedal

REPO = Path(__file__).resolve().parents[2]


def _can_realtime() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True
    except (OSError, AttributeError):
        return False


# Under a heavily shared CPU, threads can wait > 50 ms for a core; SCHED_FIFO (when allowed) keeps
# the readers and the command thread on time, as a cockpit machine would be configured.
RT = 10 if _can_realtime() else None


class ButtonPedal(SimulatedPedal):
    """A pedal whose buttons are pressed on request (device clock = host monotonic clock)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(n_buttons=4, **kwargs)
        self._presses: list[tuple[float, float, int]] = []

    def press(self, button: int, hold_s: float = 0.15) -> None:
        t = time.monotonic()
        self._presses.append((t, t + hold_s, button))

    def buttons_at(self, t: float) -> int:
        bits = 0
        for start, end, button in self._presses:
            if start <= t < end:
                bits |= 1 << button
        return bits


@pytest.fixture(scope="module")
def franka():
    from roboreward.teleop.robots import make_teleop_robot

    robot = make_teleop_robot("franka", cameras=["front"], size=(64, 48))
    yield robot
    robot.close()


@pytest.fixture
def sims():
    started = []

    def start(sim):
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()


# --------------------------------------------------------------------------------------------
# Configs, buttons, keys


def test_device_names_configs_and_their_errors():
    assert parse_device_name("exo_left") == ("exo", "left")
    assert parse_device_name("pedal") == ("pedal", None)
    with pytest.raises(ConfigError, match="unknown device name 'exo_middle'.*exo_left"):
        parse_device_name("exo_middle")
    cfg = device_config("glove_right", "/dev/ttyACM1", n_channels=16)
    assert cfg.type_name == "hall_glove" and cfg.side == "right" and cfg.n_channels == 16

    data = {"robot": "franka", "devices": {"exo_right": {"type": "exoskeleton_arm", "side": "right", "port": "/x"}}}
    assert from_dict(SessionConfig, data).devices["exo_right"].port == "/x"
    bad_side = {"devices": {"exo_right": {"type": "exoskeleton_arm", "side": "left", "port": "/x"}}}
    with pytest.raises(ConfigError, match="side.*contradicts the name 'exo_right'"):
        from_dict(SessionConfig, bad_side)
    bad_type = {"devices": {"pedal": {"type": "hall_glove", "port": "/x"}}}
    with pytest.raises(ConfigError, match="devices.pedal.type.*must be a 'pedal'"):
        from_dict(SessionConfig, bad_type)
    with pytest.raises(ConfigError, match="one button for two actions"):
        from_dict(SessionConfig, {"buttons": {"success": 0}})
    with pytest.raises(ConfigError, match="keys.quit.*one printable character"):
        from_dict(SessionConfig, {"keys": {"quit": "qq"}})
    with pytest.raises(ConfigError, match="even sizes"):
        from_dict(SessionConfig, {"record": {"width": 65}})
    with pytest.raises(ConfigError, match="command_poll_s"):
        from_dict(SessionConfig, {"command_poll_s": 0.5})
    with pytest.raises(ConfigError, match="ros.robot: missing"):
        make_sink("ros2", SessionConfig(), None)
    with pytest.raises(ConfigError, match="devices: empty.*--simulated"):
        TeleopSession(SessionConfig(robot="franka"), robot=object(), keyboard=False)


def test_button_watcher_fires_on_presses_once_debounced():
    watcher = ButtonWatcher(ButtonsConfig(start_stop=0, success=1, discard=2, debounce_s=0.1))
    assert watcher.feed(0b001, 0.0) == []  # held when the pedal appeared: not a press
    assert watcher.feed(0b000, 0.01) == []
    assert watcher.feed(0b001, 0.20) == ["start_stop"]
    assert watcher.feed(0b001, 0.21) == []  # still held
    assert watcher.feed(0b000, 0.22) == []
    assert watcher.feed(0b001, 0.23) == []  # contact bounce 30 ms after the press
    assert watcher.feed(0b000, 0.30) == []
    assert watcher.feed(0b110, 0.50) == ["success", "discard"]
    assert watcher.feed(0b1000, 0.60) == []  # button 3 does nothing
    watcher.reset()  # a replugged pedal
    assert watcher.feed(0b010, 0.9) == []


def test_keyboard_control_reads_keys_from_a_terminal_and_restores_it():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        keys = KeyboardControl(KeysConfig(), fd=slave)
        assert keys.active
        during = termios.tcgetattr(slave)
        assert not during[3] & termios.ICANON and not during[3] & termios.ISIG and not during[3] & termios.ECHO
        os.write(master, b"rSdxq\x03")
        deadline = time.monotonic() + 2
        events: list[str] = []
        while len(events) < 5 and time.monotonic() < deadline:
            events += keys.poll()
        assert events == ["start_stop", "success", "discard", "quit", "interrupt"]
        assert keys.poll() == []
        keys.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
    r, w = os.pipe()  # not a terminal: inactive, never blocks
    try:
        assert not KeyboardControl(KeysConfig(), fd=r).active
    finally:
        os.close(r)
        os.close(w)


# --------------------------------------------------------------------------------------------
# Recording: sidecar, interrupted episodes, lost episodes


def _recorder(root: Path) -> EpisodeRecorder:
    return EpisodeRecorder(root, fps=10, cameras=["cam"], image_size=(8, 8), state_names=["a.pos", "b.pos"],
                           action_names=["a.target", "b.target"], robot_type="test", task="test the recorder",
                           metadata={"robot": "test"})


def _frames(rec: EpisodeRecorder, n: int, t0: float) -> None:
    for k in range(n):
        t = t0 + k * 0.1
        img = np.full((8, 8, 3), 10 * k, dtype=np.uint8)
        rec.add_frame(t, np.array([k, -k], float), np.array([k + 0.5, 0.0]), {"cam": img}, held=k == 2,
                      sources={"exo_left": 1000 + k})
        reading = ArmReading(seq=k, t_device=5.0 + k * 0.004, t_received=t + 0.001, side=Side.LEFT,
                             angles=(0.1 * k, 0.2))
        rec.add_readings("exo_left", [reading])
        rec.add_readings("pedal", [PedalReading(seq=k, t_device=7.0, t_received=t, axes=(1, 2, 3), buttons=5)])


def test_recorder_writes_sidecar_flags_interrupted_and_lists_lost_episodes(tmp_path):
    root = tmp_path / "ds"
    rec = _recorder(root)
    rec.start(100.0)
    _frames(rec, 4, 100.0)
    assert rec.save(success=True) == 0
    rec.start(200.0)
    _frames(rec, 3, 200.0)
    assert rec.save(success=True, interrupted=True, reason="exo_left unplugged") == 1
    rec.start(300.0)
    _frames(rec, 2, 300.0)
    rec.discard()
    rec.start(400.0)  # a session killed here leaves its marker behind
    _frames(rec, 2, 400.0)
    rec.writer.clear_episode()
    rec.writer.finalize()
    assert (root / "teleop" / "recording.json").is_file()

    ds = TeleopDataset(root)
    assert len(ds) == 2 and ds.interrupted_episodes == [1]
    assert [e.success for e in ds.reader.episodes] == [True, False]  # interrupted is never a success
    ep0 = ds.episode(0)
    assert not ep0.interrupted and ep0.reason is None
    np.testing.assert_allclose(ep0.frame_time, [0.0, 0.1, 0.2, 0.3], atol=1e-9)
    assert ep0.held.tolist() == [False, False, True, False]
    assert ep0.sources["exo_left"].tolist() == [1000, 1001, 1002, 1003]
    exo = ep0.readings["exo_left"]
    assert exo.seq.tolist() == [0, 1, 2, 3] and exo.frame_index.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(exo.values[:, 0], [0.0, 0.1, 0.2, 0.3])
    np.testing.assert_allclose(exo.t_received, np.arange(4) * 0.1 + 0.001, atol=1e-9)
    assert ep0.readings["pedal"].buttons.tolist() == [5] * 4
    ep1 = ds.episode(1)
    assert ep1.interrupted and ep1.reason == "exo_left unplugged" and ep1.meta["length"] == 3
    assert ds.reader.episode(1).done.tolist() == [False, False, True]
    assert ds.reader.episode(0).step_success.tolist() == [False, False, False, True]
    assert ds.lost_episodes == []  # not yet noticed

    # A sidecar written just before a kill, for an episode the dataset never committed.
    (root / "teleop" / "episode-000002.json").write_text("{}")
    rec2 = _recorder(root)
    try:
        assert [e["episode_index"] for e in rec2.lost_on_open] == [2]
        assert not (root / "teleop" / "episode-000002.json").exists()
        assert not (root / "teleop" / "recording.json").exists()
        assert [e["episode_index"] for e in read_lost_episodes(root)] == [2]
        assert rec2.num_episodes == 2
    finally:
        rec2.writer.finalize()


# --------------------------------------------------------------------------------------------
# End to end on the Franka: buttons, recording, calibration, unplug, replug


def test_session_records_calibrated_device_motion_and_holds_on_unplug(tmp_path, franka, sims):
    robot = franka
    robot.reset()
    limits = np.asarray(robot.arm_limits("right"))
    offset = np.array([0.3, -0.2, 0.1, 0.0, 0.25, -0.15, 0.05])
    sign = np.array([1, -1, 1, -1, 1, 1, -1])
    q_motion = arm_motion(limits, np.random.default_rng(3))
    calib = ArmCalibration(side="right", joints=[
        JointCalibration(offset=float(o), sign=int(s), lower=float(lo), upper=float(hi))
        for o, s, (lo, hi) in zip(offset, sign, limits)
    ])
    save_calibration(calib, tmp_path / "exo_right.yaml")
    exo = sims(SimulatedExoskeletonArm(side="right", rate_hz=250, noise=0.001, seed=1,
                                       motion=lambda t: offset + sign * q_motion(t)))  # raw = sign*q + offset
    glove = sims(SimulatedGlove(side="right", rate_hz=250, noise=3.0, seed=2))
    pedal = sims(ButtonPedal(rate_hz=250, noise=2.0, seed=3, motion=lambda t: [0.0, 0.0, 0.0, 0.0]))
    rt = {"realtime_priority": RT}
    config = SessionConfig(
        robot="franka",
        devices={
            # Tolerate a loaded test machine: a cable pull (close) is noticed at once regardless.
            "exo_right": device_config("exo_right", exo.port, calibration=str(tmp_path / "exo_right.yaml"),
                                       stale_after_s=0.3, **rt),
            "glove_right": device_config("glove_right", glove.port, stale_after_s=0.3, **rt),
            "pedal": device_config("pedal", pedal.port, stale_after_s=0.3, **rt),
        },
        record=RecordConfig(root=str(tmp_path / "demo"), fps=20, width=64, height=48, cameras=["front"],
                            task="follow the exoskeleton"),
        command_realtime_priority=RT,
        resume_blend_s=0.3,
        status_interval_s=0,
        viewer="off",
    )
    messages: list[str] = []
    session = TeleopSession(config, robot=robot, keyboard=False, print_fn=messages.append)
    with session:
        session.run(duration=0.6)  # past the start blend
        pedal.press(0)  # start
        assert session.run(duration=3.0, until=lambda: session.recording).commands > 0
        assert session.recording
        session.run(duration=1.5)
        pedal.press(1)  # success
        session.run(duration=2.0, until=lambda: not session.recording)
        assert not session.recording

        pedal.press(0)  # second episode, cut short by the exoskeleton's cable
        session.run(duration=3.0, until=lambda: session.recording)
        session.run(duration=0.6)
        t_unplug = time.monotonic()
        exo.unplug()
        session.run(duration=1.0, until=lambda: session.held)
        assert session.held
        assert session.command_loop.held_since - t_unplug < 0.1  # noticed within 100 ms
        session.run(duration=0.1)
        held_targets = robot.targets
        positions = []
        session.run(duration=0.4, until=lambda: positions.append(robot.joint_positions()) and False)
        np.testing.assert_array_equal(robot.targets, held_targets)  # the glove keeps sending; nothing moves
        assert np.ptp(np.array(positions), axis=0).max() < 0.03
        assert not session.recording  # the episode was closed, interrupted

        exo.replug()
        session.run(duration=3.0, until=lambda: not session.held)
        assert not session.held
        session.run(duration=0.5)
        assert np.abs(robot.targets - held_targets).max() > 1e-3  # driven again
        stats = session.stats()
    assert any("exo_right unplugged" in m for m in messages) and any("resuming" in m for m in messages)
    assert stats.holds == 1
    for d in stats.devices:
        assert d.rate_hz > 150, d  # 250 Hz devices (a loaded CI machine gets some slack)

    ds = TeleopDataset(tmp_path / "demo")
    assert len(ds) == 2
    assert ds.reader.episodes[0].success and not ds.reader.episodes[1].success
    assert ds.interrupted_episodes == [1] and ds.episode(1).reason == "exo_right unplugged"
    assert ds.reader.robot_type == "franka"
    assert ds.reader.features["action"]["names"][:7] == [f"joint{i}.target" for i in range(1, 8)]

    ep = ds.reader.episode(0)
    tele = ds.episode(0)
    T = len(ep)
    assert 1.2 * 20 < T < 2.5 * 20
    assert abs(np.median(np.diff(tele.frame_time)) - 0.05) < 0.005  # 20 fps in host time
    assert not tele.held.any()
    # Commanded arm joints = calibrated exoskeleton reading: within the device's noise (1 mrad).
    arm = [robot.joint_names.index(n) for n in robot.arm_joints["right"]]
    hand = [robot.joint_names.index(n) for n in robot.hand_joints["right"]]
    truth_arm, truth_hand = [], []
    for k in range(T):
        raw = exo.truth[int(tele.sources["exo_right"][k])].values
        truth_arm.append(np.clip(sign * (raw - offset), limits[:, 0], limits[:, 1]))
        channels = glove.truth[int(tele.sources["glove_right"][k])].values
        closure = np.clip(channels / 4095.0, 0, 1).mean()
        truth_hand.append(np.full(len(hand), 0.04 * (1 - closure)))
    err = np.abs(ep.action[:, arm] - np.array(truth_arm))
    assert err.max() < 0.006, err.max()
    np.testing.assert_allclose(ep.action[:, hand], np.array(truth_hand), atol=2e-3)
    # ...and the scripted motion at those readings' device times is what the operator meant.
    t_dev = tele.sources["exo_right"] * 1e-6
    np.testing.assert_allclose(ep.action[:, arm], np.array([q_motion(t) for t in t_dev]), atol=0.006)
    # The robot follows: measured positions track the commands (position servos, slow motion).
    tracking = ep.state[:, arm] - ep.action[:, arm]
    assert np.sqrt(np.mean(tracking**2)) < 0.15, np.sqrt(np.mean(tracking**2, axis=0))
    # Every device reading of the episode is in the sidecar, raw, matching what the device sent.
    readings = tele.readings["exo_right"]
    assert len(readings) > 150 * T / 20
    for i in range(0, len(readings), 25):
        np.testing.assert_allclose(readings.values[i], offset + sign * q_motion(readings.t_device[i]), atol=0.006)
    assert np.all(np.diff(readings.t_received) >= 0)
    frames = ds.reader.frames(0, "front")
    assert frames.shape == (T, 48, 64, 3) and frames.std() > 1.0

    ep1 = ds.reader.episode(1)
    assert 0.3 * 20 < len(ep1) < 1.5 * 20  # ended at the unplug, ~0.6 s in


def test_silent_device_is_noticed_within_100_ms_and_the_session_resumes(franka, sims):
    franka.reset()
    exo = sims(SimulatedExoskeletonArm(side="right", rate_hz=250, seed=4,
                                       motion=arm_motion(np.asarray(franka.arm_limits("right")),
                                                         np.random.default_rng(0))))
    config = SessionConfig(robot="franka", devices={"exo_right": device_config("exo_right", exo.port,
                                                                                realtime_priority=RT)},
                           command_realtime_priority=RT, status_interval_s=0, viewer="off")
    session = TeleopSession(config, robot=franka, keyboard=False, print_fn=lambda m: None)
    with session:
        session.run(duration=0.3)
        worst = 0.0
        for _ in range(2):
            t0 = time.monotonic()
            exo.unplug(mode="silent")  # a hung microcontroller: the port stays, the bytes stop
            session.run(duration=1.0, until=lambda: session.held)
            assert session.held
            worst = max(worst, session.command_loop.held_since - t0)
            exo.replug()
            session.run(duration=1.0, until=lambda: not session.held)
            assert not session.held
    assert worst < 0.1, f"noticed after {worst * 1e3:.0f} ms"


# --------------------------------------------------------------------------------------------
# The G1: two arms' worth of devices, gloves to Dex3 hands, the pedal walks


def test_g1_pedal_walks_the_base_and_the_glove_closes_the_hand(sims):
    from roboreward.teleop.robots import make_teleop_robot

    robot = make_teleop_robot("g1", size=(64, 48))
    try:
        exo = sims(SimulatedExoskeletonArm(side="left", rate_hz=250, seed=5,
                                           motion=arm_motion(np.asarray(robot.arm_limits("left")),
                                                             np.random.default_rng(1))))
        glove = sims(SimulatedGlove(side="left", rate_hz=250, seed=6, motion=lambda t: np.full(15, 4095.0)))
        pedal = sims(SimulatedPedal(rate_hz=250, n_buttons=0, seed=7, motion=lambda t: [4095.0, 0.0, 0.0, 0.0]))
        devices = {"exo_left": exo, "glove_left": glove, "pedal": pedal}
        config = SessionConfig(
            robot="g1", devices={n: device_config(n, s.port, stale_after_s=0.3) for n, s in devices.items()},
            status_interval_s=0, viewer="off", resume_blend_s=0.1,
        )
        x0 = robot.base_pose()[0]
        session = TeleopSession(config, robot=robot, keyboard=False, print_fn=lambda m: None)
        with session:
            session.run(duration=2.0)
            base = robot.base_pose()
            fist = robot.hands_from_glove("left", np.ones(15))
            hand = [robot.joint_names.index(n) for n in robot.hand_joints["left"]]
            np.testing.assert_allclose(robot.targets[hand], fist)  # a closed glove closes the Dex3 hand
            stats = session.stats()
        # Full forward pedal: 0.8 m/s, ramped at 1 m/s^2; the simulation may lag real time here.
        assert base[0] - x0 > 0.2
        assert abs(base[1]) < 0.05  # straight ahead
        assert stats.holds == 0 and all(d.commands > 100 for d in stats.devices)
    finally:
        robot.close()


# --------------------------------------------------------------------------------------------
# kill -9 of `roboreward teleop run` while recording


def _read_until(proc: subprocess.Popen, fd: int, needle: str, buf: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in "".join(buf):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"waited for {needle!r}; the session printed:\n{''.join(buf)}")
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if chunk:
                buf.append(chunk.decode(errors="replace"))


@pytest.mark.slow
def test_kill_9_mid_episode_keeps_finished_episodes(tmp_path):
    out = tmp_path / "demo"
    master, slave = os.openpty()  # the session's keyboard
    env = dict(os.environ, MUJOCO_GL="egl", ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "roboreward.cli", "teleop", "run", "--robot", "franka", "--simulated",
           "--record", str(out), "--fps", "10", "--size", "64", "48", "--cameras", "front", "--viewer", "off",
           "status_interval_s=0"]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                            start_new_session=True)
    os.close(slave)
    buf: list[str] = []
    fd = proc.stdout.fileno()
    try:
        _read_until(proc, fd, "keys: 'r'", buf, 60)
        os.write(master, b"r")
        _read_until(proc, fd, "recording episode 0", buf, 10)
        time.sleep(0.8)
        os.write(master, b"r")
        _read_until(proc, fd, "episode 0 saved", buf, 20)
        os.write(master, b"r")
        _read_until(proc, fd, "recording episode 1", buf, 10)
        time.sleep(0.8)
        assert (out / "teleop" / "recording.json").is_file()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        os.close(master)
    assert proc.returncode == -signal.SIGKILL

    reader = DatasetReader(out)  # readable as it is, before any repair
    assert len(reader) == 1 and 4 <= reader.episodes[0].length <= 20
    assert reader.frames(0, "front").shape == (reader.episodes[0].length, 48, 64, 3)
    ds = TeleopDataset(out)
    assert not ds.episode(0).interrupted and ds.interrupted_episodes == []
    # The next session to open the folder repairs it and records the lost episode.
    rec = EpisodeRecorder(out, fps=10, cameras=["front"], image_size=(48, 64),
                          state_names=reader.features["observation.state"]["names"],
                          action_names=reader.features["action"]["names"], robot_type="franka", task="x")
    try:
        assert [e["episode_index"] for e in rec.lost_on_open] == [1]
        assert rec.num_episodes == 1
    finally:
        rec.writer.finalize()
    assert [e["episode_index"] for e in read_lost_episodes(out)] == [1]
    DatasetWriter.open(out).finalize()
    assert len(DatasetReader(out)) == 1
    assert not math.isnan(float(reader.episode(0).state.sum()))


# --------------------------------------------------------------------------------------------
# The CLI


def test_teleop_cli_errors_name_the_problem(tmp_path, capsys, sims):
    from roboreward.cli import main

    assert main(["teleop", "run", "--robot", "franka"]) == 2
    assert "--devices exo_left=/dev/ttyUSB0 ...) or --simulated" in capsys.readouterr().err
    assert main(["teleop", "run", "--devices", "exo_middle=/dev/x"]) == 2
    assert "unknown device 'exo_middle'" in capsys.readouterr().err
    assert main(["teleop", "run", "--devices", "exo_right=/dev/x", "--calibration", "exo_right=/no/such.yaml"]) == 2
    assert "calibration file '/no/such.yaml' for exo_right does not exist" in capsys.readouterr().err
    assert main(["teleop", "run", "--simulated", "record.fps=0"]) == 2
    assert "record.fps: 0 is too small" in capsys.readouterr().err
    assert main(["teleop", "run", "--devices", "exo_right=/dev/x", "record.fps=0"]) == 2  # an override, not a device
    assert "record.fps: 0 is too small" in capsys.readouterr().err
    # A port with nothing on it: the driver's own explanation, as a CLI error (no traceback).
    missing = tmp_path / "ttyUSB9"
    assert main(["teleop", "run", "--robot", "franka", "--devices", f"exo_right={missing}", "--viewer", "off",
                 "devices.exo_right.connect_timeout_s=0.3"]) == 2
    assert f"could not open {missing}" in capsys.readouterr().err


def test_teleop_calibrate_runs_the_guided_calibration_on_a_device(tmp_path, monkeypatch, sims, capsys):
    from roboreward.cli import main
    from roboreward.teleop.calibration import GloveCalibration, load_calibration

    glove = sims(SimulatedGlove(side="left", rate_hz=200, seed=8))
    monkeypatch.setattr("builtins.input", lambda prompt="": "")  # the operator presses Enter at each step
    out = tmp_path / "glove_left.yaml"
    assert main(["teleop", "calibrate", "glove_left", "--port", glove.port, "--out", str(out), "--seconds", "1.5"]) == 0
    calibration = load_calibration(out, GloveCalibration)
    assert len(calibration.channels) == 15 and calibration.side == "left"
    assert "Saved to" in capsys.readouterr().out
    assert main(["teleop", "calibrate", "pedal", "--port", glove.port, "--zero-pose", "home"]) == 2
    assert "--zero-pose home is for an exoskeleton" in capsys.readouterr().err
