"""``roboreward record`` against ``roboreward sim-robot`` over real DDS (own ROS domain, loopback): command-clocked
frames with the state and camera, in the LeRobot v3 layout, episodes split by length and by pauses, kill-safe."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import yaml

from roboreward.datasets.lerobot_v3 import DatasetReader
from roboreward.errors import ConfigError
from roboreward.hardware.record import RosRecorder, action_names, state_names
from roboreward.hardware.robot import RobotConfig, load_robot_config, robot_config_path

from .conftest import RoborewardProcess as Process

SMALL_CAMERA = ["state.image.width=64", "state.image.height=64"]


class CommandSource:
    """Publishes position commands at the control rate from this process, remembering every one it sent."""

    def __init__(self, robot, domain: int):
        from roboreward.hardware.ros import CommandPublisher, RosSession

        self.robot = robot
        self.session = RosSession("test_commands", domain_id=domain)
        self.publisher = CommandPublisher(self.session.node, robot)
        self.sent: list[np.ndarray] = []
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period = 1.0 / self.robot.control.rate_hz
        phases = np.arange(self.robot.n_joints)
        t0 = next_tick = time.monotonic()
        while not self._stop.is_set():
            next_tick += period
            time.sleep(max(0.0, next_tick - time.monotonic()))
            if self.paused.is_set():
                continue
            t = time.monotonic() - t0
            targets = self.robot.home_position + 0.15 * np.sin(2 * np.pi * 0.5 * t + phases)
            self.publisher.publish(targets)
            self.sent.append(targets)

    def wait_until_matched(self, subscribers: int, timeout: float = 30.0) -> None:
        """Wait until ``subscribers`` command subscriptions have matched this publisher (discovery can take seconds)."""
        deadline = time.monotonic() + timeout
        while self.publisher.publisher.get_subscription_count() < subscribers:
            if time.monotonic() > deadline:
                pytest.fail(f"no {subscribers} command subscriber(s) matched within {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.session.close()


@pytest.fixture
def ros_parts():
    made = []
    yield made
    for part in reversed(made):
        part.stop(signal.SIGKILL) if isinstance(part, Process) else part.close()


class Rig(NamedTuple):
    robot: RobotConfig  # franka's robot file, with SMALL_CAMERA
    sim: Process  # sim-robot franka
    source: CommandSource  # the commands, from this process
    record: Process  # roboreward record
    out: Path  # where record writes the dataset


@pytest.fixture
def record_from_sim_robot(tmp_path, domain_id, ros_parts):
    """Starts sim-robot franka and a command source, waits until sim-robot takes the commands, then starts
    ``roboreward record`` with the given arguments (robot, output folder and domain are filled in)."""

    def start(*record_args: str) -> Rig:
        robot = load_robot_config("franka", SMALL_CAMERA)
        out = tmp_path / "demos"
        sim = Process(domain_id, "sim-robot", "franka", *SMALL_CAMERA, "--domain-id", str(domain_id))
        ros_parts.append(sim)
        source = CommandSource(robot, domain_id)
        ros_parts.append(source)
        sim.wait_for(": ready;")
        source.wait_until_matched(subscribers=1)  # sim-robot takes the commands (DDS discovery done) before recording
        record = Process(domain_id, "record", *SMALL_CAMERA, "--robot", "franka", "--out", str(out), *record_args,
                         "--domain-id", str(domain_id))
        ros_parts.append(record)
        return Rig(robot, sim, source, record, out)

    return start


@pytest.mark.slow
def test_record_episodes_from_sim_robot(record_from_sim_robot):
    # Episode 0 ends at a pause in the commands, episode 1 at its length (1 s = 50 frames).
    robot, sim, source, record, out = record_from_sim_robot(
        "--task", "hold the arm near home", "--episodes", "2", "--episode-seconds", "1", "--idle-seconds", "0.5")
    record.wait_for("receiving state, camera and commands")
    time.sleep(0.4)
    source.paused.set()
    record.wait_for("saved episode 0", timeout=30)
    source.paused.clear()
    assert record.proc.wait(timeout=60) == 0, record.output

    reader = DatasetReader(out)
    assert reader.info["codebase_version"] == "v3.0" and reader.fps == 50 and reader.robot_type == "franka"
    assert reader.cameras == ["front"] and reader.num_episodes == 2
    first, second = reader.episode(0), reader.episode(1)
    assert 5 <= len(first) < 50, len(first)  # the pause ended it, not its length
    assert len(second) == 50
    assert reader.episodes[0].task == "hold the arm near home"
    assert reader.features["observation.state"]["names"][:2] == ["panda_joint1.pos", "panda_joint2.pos"]
    for episode in (first, second):
        assert episode.done[-1] and not episode.done[:-1].any()
        assert episode.state.shape == (len(episode), 14) and np.isfinite(episode.state).all()
    # Every recorded action is a command this process sent, joint by joint in the robot file's order.
    sent = np.stack([robot.action_from_command(c) for c in source.sent])
    for action in np.concatenate([first.action, second.action]):
        assert np.abs(sent - action).max(axis=1).min() < 1e-6
    # The state is the robot following those commands: once it caught up with the jump after the pause, its joint
    # positions track the commanded ones (a joint-order mix-up would be off by tenths of a radian).
    commanded = np.stack([robot.command_from_action(a) for a in second.action])
    error = np.abs(second.state[25:, :7] - commanded[25:]).max()
    assert error < 0.1, f"state off the commands by {error:.3f} rad; sim-robot said:\n{sim.output}"
    frames = reader.frames(1, "front")
    assert frames.shape == (50, 64, 64, 3) and frames.std() > 5.0  # a rendered scene, not a blank image


@pytest.mark.slow
def test_record_killed_mid_episode_keeps_finished_episodes(record_from_sim_robot):
    rig = record_from_sim_robot("--episode-seconds", "0.5")
    rig.record.wait_for("saved episode 1", timeout=60)
    time.sleep(0.3)  # inside episode 2
    rig.record.proc.send_signal(signal.SIGKILL)
    rig.record.proc.wait()
    reader = DatasetReader(rig.out)
    assert reader.num_episodes >= 2
    assert all(e.length == 25 for e in reader.episodes)
    assert reader.episodes[0].task == "franka: recorded from ROS 2"


def test_names_follow_the_robot_file():
    franka = load_robot_config("franka")
    assert state_names(franka)[:1] == ["panda_joint1.pos"] and state_names(franka)[7] == "panda_joint1.vel"
    assert action_names(franka)[6] == "panda_joint7.position"
    base = load_robot_config("diff_drive")
    assert len(state_names(base)) == base.observation_size and action_names(base) == ["linear_x", "angular_z"]
    g1 = load_robot_config("g1")
    assert len(state_names(g1)) == g1.observation_size and len(set(state_names(g1))) == g1.observation_size


def test_robot_without_camera_is_refused(tmp_path):
    data = yaml.safe_load(robot_config_path("franka").read_text())
    del data["state"]["image"]
    path = tmp_path / "blind.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="no camera"):
        RosRecorder(path, tmp_path / "out", task="anything")
    assert not (tmp_path / "out").exists()
