"""What the bridge's multi-process tests share: a ROS domain per test, the child processes' environment, and a
``roboreward`` command in a subprocess whose output a thread collects."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

_used_domains: set[int] = set()  # over the whole session, so no two tests (of any module) share a domain


@pytest.fixture
def domain_id(monkeypatch):
    """A ROS domain (1..100) no other test of this session uses; ROS_DOMAIN_ID is restored afterwards."""
    rng = random.SystemRandom()
    while (d := rng.randint(1, 100)) in _used_domains:
        pass
    _used_domains.add(d)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(d))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return d


def ros_child_env(domain: int, **extra: str) -> dict[str, str]:
    """The environment of a ROS 2 child process: its domain, discovery on this machine only, unbuffered output."""
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               **extra)
    env.setdefault("MUJOCO_GL", "egl")
    return env


class CollectedProcess:
    """A command in a subprocess; a thread collects its output lines. ``name`` is what failures call it."""

    def __init__(self, cmd: list[str], env: dict[str, str], name: str):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 90.0) -> str:
        """The first output line containing ``text``; fails the test if the process exits or times out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                time.sleep(0.3)
                pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.output}")
            time.sleep(0.05)
        pytest.fail(f"{self.name} did not print {text!r} within {timeout} s:\n{self.output}")

    def wait(self, timeout: float = 60.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5.0)
        return rc

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGKILL: no clean-up at all) and wait; a process that ignores it for 20 s is killed.
        Returns the exit status (negative: the signal that ended it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5.0)
        return self.proc.returncode


class SimRobotProcess(CollectedProcess):
    """``roboreward sim-robot ROBOT`` in a subprocess; :meth:`wait_ready` waits for its ready line."""

    def __init__(self, robot, domain: int, *extra: str):
        cmd = [sys.executable, "-m", "roboreward.cli", "sim-robot", str(robot), "--domain-id", str(domain), *extra]
        super().__init__(cmd, ros_child_env(domain), "sim-robot")

    def wait_ready(self, timeout: float = 60.0) -> str:
        return self.wait_for(": ready;", timeout)


@pytest.fixture
def sim_robot():
    """``sim_robot(robot, domain, *options)``: a ready :class:`SimRobotProcess`; killed after the test if still up."""
    started: list[SimRobotProcess] = []

    def start(robot, domain: int, *extra: str) -> SimRobotProcess:
        process = SimRobotProcess(robot, domain, *extra)
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(timeout=10)


class RoborewardProcess(CollectedProcess):
    """A ``roboreward`` command (the full CLI) in a subprocess."""

    def __init__(self, domain: int, *args: str):
        self.args = args
        super().__init__([sys.executable, "-m", "roboreward.cli", *args],
                         ros_child_env(domain, OMP_NUM_THREADS="1"), f"`roboreward {args[0]}`")
