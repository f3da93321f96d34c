"""``roboreward sim-robot ROBOT``: a MuJoCo simulation published as a ROS 2 robot.

Everything on the policy's side of the bridge (``RosRobotEnv``, ``roboreward deploy``, recording)
can then be run and tested without hardware, over the very topics, message types and QoS the real
robot uses::

    roboreward sim-robot franka                          # until Ctrl-C / SIGTERM
    roboreward sim-robot g1 --domain-id 7 --no-images --duration 30
    roboreward sim-robot my_robot.yaml control.rate_hz=200 --realtime-factor 0.5
    roboreward sim-robot franka --discovery subnet       # visible to other machines on the LAN
    roboreward sim-robot franka --realtime 10            # SCHED_FIFO loop (needs CAP_SYS_NICE)

What the node does, in one thread plus a render thread:

- ticks at the fastest state topic's rate on absolute deadlines (sim time = wall time x ``--realtime-factor``).
  Half a millisecond before each tick it takes the newest command straight from the subscription (no executor:
  a Python ``spin_once`` costs ~0.3 ms) and steps the physics to the tick; at the tick it publishes. A command
  that arrives in between still counts: the physics goes back to its snapshot and steps again
  (``physics_redone``). Position targets are held; velocity/torque targets and twists drop to zero when commands
  stop for ``control.command_timeout_s`` (a real driver's watchdog does the same);
- publishes each state topic at its ``rate_hz`` (sim time), stamped with the ROS time the state belongs to,
  the joint state from one preallocated message filled in place. JointState lists the joints in *MuJoCo's*
  order, which may differ from the robot file's, so that a subscriber that assumes the order instead of
  reading the names fails in tests;
- renders the camera in its own thread (an EGL context of its own, on a copy of the state), so a
  slow frame never delays joint states; a frame not finished before the next is due is skipped and
  counted;
- never bursts: a tick the loop wakes for more than a period late publishes only its newest state (the ticks
  in between are counted as ``ticks_skipped``); when it cannot keep up for more than 0.25 s of sim time, it
  skips ahead (counted as a lag reset).

A ``ready`` line on stdout says when the topics exist; a summary line follows on exit.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from roboreward.envs.rendering import FrameRenderer, RenderOptions, mujoco
from roboreward.errors import ConfigError
from roboreward.hardware.realtime import set_fifo_priority_for_process, set_normal_priority, tight_timer_slack
from roboreward.hardware.robot import RobotConfig, load_robot_config
from roboreward.hardware.ros import (
    CommandSubscriber,
    JointStateWriter,
    RosSession,
    StatePublisher,
    image_message,
    imu_message,
    odometry_message,
)
from roboreward.hardware.sim import RobotSimulation
from roboreward.signals import on_signals

MAX_LAG_S = 0.25  # sim seconds behind wall time before skipping ahead
# Wall seconds before a tick at which the command is taken and the physics stepped (a quarter period at most), so
# that at the tick only the publication is left: the state leaves ~0.1 ms after its stamp instead of ~0.4 ms.
PREPARE_LEAD_S = 0.0005


class _ImageWorker(threading.Thread):
    """Renders the newest requested state in its own thread and publishes it; skips what it cannot keep up with."""

    def __init__(self, sim: RobotSimulation, publish):
        super().__init__(name="sim-robot-render", daemon=True)
        self.sim = sim
        self.cfg = sim.robot.state.image
        self._publish = publish
        self._data = mujoco.MjData(sim.model)
        self._cond = threading.Condition()
        self._request: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None
        self._stopping = False
        self.rendered = 0
        self.skipped = 0
        self.error: BaseException | None = None
        self.ready = threading.Event()  # set once the GL context exists (or failed)

    def request(self, data: mujoco.MjData, stamp: float) -> None:
        with self._cond:
            if self._request is not None:
                self.skipped += 1
            self._request = (data.qpos.copy(), data.mocap_pos.copy(), data.mocap_quat.copy(), stamp)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def run(self) -> None:
        # Normal priority even when the loop runs SCHED_FIFO (this thread would inherit it): a frame takes
        # milliseconds on the CPU, and the renderer's own threads, started from here, must not hold a CPU the
        # loop needs at its next tick.
        set_normal_priority()
        renderer = None
        try:
            options = RenderOptions(width=self.cfg.width, height=self.cfg.height, camera=self.cfg.camera or "front")
            renderer = FrameRenderer(self.sim.model, options)
            self.ready.set()
            while True:
                with self._cond:
                    while self._request is None and not self._stopping:
                        self._cond.wait()
                    if self._stopping:
                        return
                    qpos, mocap_pos, mocap_quat, stamp = self._request
                    self._request = None
                self._data.qpos[:] = qpos
                self._data.mocap_pos[:] = mocap_pos
                self._data.mocap_quat[:] = mocap_quat
                mujoco.mj_kinematics(self.sim.model, self._data)
                mujoco.mj_camlight(self.sim.model, self._data)
                frame = renderer.render(self._data)
                self._publish(image_message(frame, stamp, self.cfg.frame_id, self.cfg.encoding))
                self.rendered += 1
        except BaseException as e:  # reported by the node on exit
            self.error = e
        finally:
            self.ready.set()
            if renderer is not None:
                renderer.close()


class SimRobotNode:
    """The simulated robot behind ROS 2 topics. :meth:`run` until stopped or for ``duration`` seconds.

    :param images: publish the camera topic (if the robot has one).
    :param realtime_factor: sim seconds per wall second (rates are in sim time).
    :param realtime_priority: SCHED_FIFO priority (1-99) of the tick loop and DDS's threads; the render thread
        stays at normal priority, so a slow frame cannot hold a CPU from the loop. None: normal priority.
    """

    def __init__(
        self,
        robot: RobotConfig | str | Path,
        *,
        domain_id: int | None = None,
        discovery: str = "localhost",
        images: bool = True,
        realtime_factor: float = 1.0,
        realtime_priority: int | None = None,
    ):
        if not realtime_factor > 0:
            raise ConfigError(f"--realtime-factor {realtime_factor} must be > 0 (1 = real time)")
        if realtime_priority is not None and not 1 <= realtime_priority <= 99:
            raise ConfigError(f"--realtime {realtime_priority} must be a SCHED_FIFO priority, 1..99")
        self.realtime_priority = realtime_priority
        self.realtime_refused: str | None = None
        self.robot = load_robot_config(robot)
        self.sim = RobotSimulation(self.robot)
        self.realtime_factor = realtime_factor
        self.session = RosSession(f"sim_robot_{self.robot.name}", domain_id=domain_id, discovery=discovery, spin=False)
        self.discovery = discovery
        self.states = StatePublisher(self.session.node, self.robot)
        self.commands = CommandSubscriber(self.session.node, self.robot)
        # MuJoCo's joint order (by qpos address), deliberately not the robot file's.
        self.publish_order = np.argsort(self.sim.qpos_adr, kind="stable").tolist()
        self.periods = {slot: 1.0 / cfg.rate_hz for slot, cfg in self.robot.state.topics().items()}
        self.image_worker: _ImageWorker | None = None
        if not images:
            self.periods.pop("image", None)
        elif "image" in self.periods:
            self.image_worker = _ImageWorker(self.sim, lambda msg: self.states.publish("image", msg))
        self.lag_resets = 0
        self.ticks_skipped = {slot: 0 for slot in self.periods}
        self.physics_redone = 0
        self._applied: np.ndarray | None = None  # the targets the physics runs with
        self.stop_event = threading.Event()
        # The joint state is one preallocated message, filled in place from MuJoCo's arrays every tick.
        self._joint_state = JointStateWriter(self.robot, self.publish_order)
        self._qpos_adr = self.sim.qpos_adr[self.publish_order]
        self._dof_adr = self.sim.dof_adr[self.publish_order]

    def describe(self) -> str:
        names = self.robot.joint_names
        topics = ", ".join(f"{self.robot.state.topics()[s].topic} ({1.0 / p:g} Hz)" for s, p in self.periods.items())
        cmd = self.robot.command
        return (
            f"sim-robot {self.robot.name}: ready; ROS_DOMAIN_ID={self.session.domain_id}, discovery {self.discovery}; "
            f"publishing {topics}; joint states in MuJoCo order {[names[i] for i in self.publish_order]}; "
            f"commands on {cmd.topic} ({cmd.type}, {self.robot.control.mode})"
        )

    def _targets(self, now: float) -> np.ndarray | None:
        targets, received_at = self.commands.latest()
        if targets is None:
            return None
        holds = self.robot.control.mode == "position" and self.robot.action_kind == "joint_targets"
        if not holds and now - received_at > self.robot.control.command_timeout_s:
            return np.zeros_like(targets)
        return targets

    def _publish(self, slot: str, stamp: float) -> None:
        sim, robot = self.sim, self.robot
        cfg = robot.state.topics()[slot]
        if slot == "joint_state":
            d, w = sim.data, self._joint_state
            np.take(d.qpos, self._qpos_adr, out=w.position)
            np.take(d.qvel, self._dof_adr, out=w.velocity)
            np.take(d.qfrc_actuator, self._dof_adr, out=w.effort)
            self.states.publish(slot, w.stamp(stamp))
        elif slot == "imu":
            self.states.publish(slot, imu_message(sim.imu_state(), stamp, cfg.frame_id))
        elif slot == "odometry":
            self.states.publish(slot, odometry_message(sim.odometry_state(), stamp, cfg.frame_id or "odom"))
        elif slot == "image" and self.image_worker is not None:
            self.image_worker.request(sim.data, stamp)

    def _new_targets(self, now: float) -> np.ndarray | None:
        """Take the waiting commands; the targets to apply if they differ from the ones applied last, else None."""
        self.commands.poll()
        targets = self._targets(now)
        last = self._applied
        if targets is None or targets is last or (last is not None and np.array_equal(targets, last)):
            return None
        return targets

    def _ros_clock_offset(self, previous: float | None, tries: int = 5) -> float:
        """ROS time minus monotonic time, from the tightest of a few bracketed readings.

        A reading preempted between the two clocks would shift every following stamp by the preemption (off the
        robot's tick grid), so a bracket wider than 50 us is not trusted: the previous offset is kept instead.
        """
        best: tuple[float, float] | None = None
        for _ in range(tries):
            before = time.monotonic()
            ros = self.session.now()
            after = time.monotonic()
            if best is None or after - before < best[0]:
                best = (after - before, ros - 0.5 * (before + after))
        width, offset = best  # type: ignore[misc]
        return offset if previous is None or width < 50e-6 else previous

    def run(self, duration: float | None = None) -> dict[str, Any]:
        """Publish until :attr:`stop_event` is set or for ``duration`` seconds; returns :meth:`summary`.

        Each tick of the fastest state topic takes two wake-ups: :data:`PREPARE_LEAD_S` before it, the newest
        command is applied and the physics stepped to the tick; at the tick, the state is published at once. A
        command that arrives in between is not lost: the physics goes back to its snapshot and steps again with
        it (``physics_redone``), so the state always reflects every command that arrived before its tick.
        """
        sim, rtf, ts = self.sim, self.realtime_factor, self.sim.timestep
        if self.realtime_priority is not None:  # this loop and DDS's threads (the render thread resets itself)
            self.realtime_refused = set_fifo_priority_for_process(self.realtime_priority)
            if self.realtime_refused:
                warnings.warn(f"sim-robot {self.robot.name}: {self.realtime_refused}", RuntimeWarning, stacklevel=2)
        if self.image_worker is not None:  # the GL context takes a moment: start the clock after it
            self.image_worker.start()
            self.image_worker.ready.wait(timeout=30.0)
        tight_timer_slack()
        periods = self.periods
        lead = min(PREPARE_LEAD_S, 0.25 * min(periods.values()) / rtf)
        start = time.monotonic()
        wall0, sim0 = start, sim.time
        ros_offset, next_resync = self._ros_clock_offset(None), start + 1.0
        next_due = {slot: sim0 for slot in periods}
        while not self.stop_event.is_set():
            due = min(next_due.values())
            wake = wall0 + (due - sim0) / rtf
            now = time.monotonic()
            if duration is not None and min(now, wake) - start >= duration:
                break
            snapshot = None
            if wake - lead > now:  # prepare: the newest command, and the physics up to the tick
                time.sleep(wake - lead - now)  # absolute deadlines: sleeping late never shifts the ticks after it
                targets = self._new_targets(time.monotonic())
                if targets is not None:
                    sim.apply(targets)
                    self._applied = targets
                snapshot = sim.snapshot()
                sim.advance_to(due)
                now = time.monotonic()
            if wake > now:
                time.sleep(wake - now)
                now = time.monotonic()
            goal = sim0 + (now - wall0) * rtf  # the sim time it is now
            if goal - due > MAX_LAG_S:  # could not keep up: skip ahead instead of publishing old states
                self.lag_resets += 1
                wall0, sim0 = now, sim.time
                next_due = {slot: sim0 + p for slot, p in periods.items()}
                continue
            # Each due topic publishes once, its newest tick: ticks that passed while the loop was late are
            # skipped (counted), never sent in a burst of states that are already old.
            tick, publish = due, []
            for slot, slot_due in next_due.items():
                if slot_due <= goal + 0.5 * ts:
                    period = periods[slot]
                    passed = int((goal + 0.5 * ts - slot_due) / period)
                    if passed:
                        self.ticks_skipped[slot] += passed
                        slot_due += passed * period
                    next_due[slot] = slot_due + period
                    publish.append(slot)
                    tick = max(tick, slot_due)
            targets = self._new_targets(now)  # a command that came after the preparation: step again with it
            if targets is not None:
                if snapshot is not None:
                    sim.restore(snapshot)
                    self.physics_redone += 1
                sim.apply(targets)
                self._applied = targets
            sim.advance_to(tick)
            if now >= next_resync:  # stamps follow the ROS clock, even if it is slewed against the monotonic one
                ros_offset, next_resync = self._ros_clock_offset(ros_offset), now + 1.0
            stamp = ros_offset + wall0 + (sim.time - sim0) / rtf
            for slot in publish:
                self._publish(slot, stamp)
        if self.image_worker is not None:
            self.image_worker.stop()
            self.image_worker.join(timeout=5.0)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "published": dict(self.states.published),
            "commands_received": self.commands.received,
            "commands_rejected": self.commands.rejected,
            "lag_resets": self.lag_resets,
            "ticks_skipped": dict(self.ticks_skipped),
            "physics_redone": self.physics_redone,
            "sim_time": round(self.sim.time, 3),
        }
        if self.commands.rejected:
            out["last_rejected_because"] = self.commands.last_error
        if self.realtime_refused:
            out["realtime"] = self.realtime_refused
        if self.image_worker is not None:
            out["images_skipped"] = self.image_worker.skipped
            if self.image_worker.error is not None:
                out["render_error"] = repr(self.image_worker.error)
        return out

    def close(self) -> None:
        self.session.close()
        self.sim.close()


def run_from_args(args: argparse.Namespace) -> int:
    """The ``sim-robot`` command's handler (see :mod:`roboreward.hardware.cli`)."""
    if args.duration is not None and not args.duration > 0:
        raise ConfigError(f"--duration {args.duration} must be > 0 seconds (leave it out to run until stopped)")
    robot = load_robot_config(args.robot, list(args.overrides or []))
    node = SimRobotNode(
        robot,
        domain_id=args.domain_id,
        discovery=args.discovery,
        images=not args.no_images,
        realtime_factor=args.realtime_factor,
        realtime_priority=args.realtime,
    )
    try:
        with on_signals(lambda sig: node.stop_event.set()):
            print(node.describe(), flush=True)
            summary = node.run(args.duration)
        print(f"sim-robot {robot.name}: stopped; {summary}", flush=True)
    finally:
        node.close()
    if "render_error" in summary:
        print(f"sim-robot {robot.name}: error: rendering failed: {summary['render_error']}", file=sys.stderr)
        return 1
    return 0


__all__ = ["SimRobotNode", "run_from_args"]
