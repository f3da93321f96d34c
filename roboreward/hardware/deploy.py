"""``roboreward deploy RUN_DIR --robot ROBOT``: run a trained policy on a robot over ROS 2, behind a safety layer.

::

    roboreward deploy runs/franka_reach-20261201-101500 --robot franka            # until Ctrl-C / SIGTERM
    roboreward deploy RUN_DIR --robot franka --policy onnx --max-step 0.01 --duration 60 --stats deploy.json
    roboreward deploy RUN_DIR --robot franka safety.max_step=0.01 safety.on_stale=stop rate_hz=25   # the same keys
    roboreward deploy RUN_DIR --robot my_robot.yaml control.rate_hz=500 state.joint_state.rate_hz=500
    roboreward deploy RUN_DIR --robot franka --discovery subnet --domain-id 3      # a real robot on the LAN

**Timing.** Each command is computed *in the joint-state callback* (the executor thread): state in,
observation, policy, safety, publish, with no hand-off to another thread, so the observation-to-command
latency is the compute time (~0.1-0.3 ms for an MLP with onnxruntime) rather than up to a period of
waiting for a timer. The robot's state stream clocks the loop, decimated to the control rate by the
states' header stamps (the robot's clock, immune to transport jitter): control steps are due on a grid of
periods, and the first state stamped at a step's due time (less a slack for jitter) gets its command, so a 100 Hz
joint state gives a 50 Hz loop, a 50 Hz one an exact 4 Hz loop, and a bunch of late states still gives one command each. *Missed deadlines* are control periods without a command
(stamp gaps: the state never came, or came too late and was replaced) and commands published more
than a period after their state: after its stamp when the robot stamps on this machine's clock (sim-robot,
a driver on this computer: the time the state took to reach the callback counts), else after the callback
began. ``--realtime PRIO`` runs the process's threads (DDS's receive threads too) with SCHED_FIFO, which keeps
other processes on a busy machine from delaying them. While the node runs, Python's GIL switch interval is
0.2 ms, so no other thread of the node holds a state callback up for longer.

A **supervisor** thread ticks at the control rate with a plain sleep (it needs no precision, so it
never busy-waits and never takes the GIL from the callback): it runs the watchdog, sends hold
commands while the e-stop is engaged or the state is stale, publishes the mode and ``/diagnostics``.

**Safety** (:mod:`roboreward.hardware.safety`): every command, the policy's and the holds, passes
through one :class:`~roboreward.hardware.safety.SafetyLayer` under one lock. The policy never sees the
publisher. What happens when:

- the policy outputs NaN/inf: the hold command goes out instead, counted (``nonfinite``);
- the policy raises: the e-stop latches with the error as its reason;
- the joint state is older than ``stale_after_periods`` control periods: hold commands at the control
  rate (``on_stale: hold``, resumes when state returns) or the e-stop latches (``on_stale: stop``);
- the e-stop is triggered (``~/estop`` service, ``std_srvs/Trigger``; or ``true`` on the ``~/estop``
  topic, ``std_msgs/Bool``): hold commands until ``~/reset`` (Trigger) is called. ``false`` on the topic
  does nothing: only the reset service releases it.

Topics of the node (``roboreward_deploy``): ``~/mode`` (``std_msgs/String``, transient local: ``waiting``,
``running``, ``hold: state stale``, ``estop: REASON``; published on change), ``/diagnostics``
(``diagnostic_msgs/DiagnosticArray`` at ~1 Hz: loop rate, latency p50/p99/max, missed deadlines, limit
hits, holds, state age, e-stop).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from roboreward.config import apply_override, bounded, check_fields, from_dict
from roboreward.errors import ConfigError
from roboreward.hardware.crowd import CrowdNavigationController, CrowdTopicsConfig, is_crowd_run, load_crowd_policy
from roboreward.hardware.locomotion import LocomotionController, LocomotionDeployConfig
from roboreward.hardware.realtime import set_fifo_priority, set_fifo_priority_for_process
from roboreward.hardware.robot import RobotConfig, RobotState, load_robot_config
from roboreward.hardware.safety import EStop, SafetyConfig, SafetyLayer, Watchdog
from roboreward.io import atomic_write, atomic_write_npz
from roboreward.policies.export import PolicyRunner
from roboreward.signals import on_signals

NODE_NAME = "roboreward_deploy"
# A state is taken for the control step due at T when stamped after T - slack, the slack being this fraction of a
# control period or half the state stream's own interval, whichever is less (stamp jitter at equal rates; the
# state nearest the grid when the stream is faster).
DUE_SLACK = 0.35
TIMING_CAPACITY = 1 << 20  # commands whose timing is kept (35 min at 500 Hz); older ones are overwritten
# A state's stamp is taken to be on this machine's clock (so its age counts toward the deadline) when it arrived
# between STAMP_CLOCK_SLACK before and STAMP_CLOCK_WINDOW after its stamp; a robot with another clock is judged
# on the in-process latency alone.
GIL_SWITCH_INTERVAL_S = 0.0002  # while the node runs (Python's default: 0.005)
STAMP_CLOCK_SLACK = 0.001
STAMP_CLOCK_WINDOW = 1.0


@dataclass(kw_only=True)
class DeployConfig:
    """How ``roboreward deploy`` runs; the robot file gives the defaults left at None."""

    rate_hz: float | None = bounded(None, "control rate; default: the robot's control.rate_hz", gt=0, le=2000)
    # The brief's watchdog: state older than N control periods -> hold (or stop). Default: the robot's
    # control.stale_after_periods.
    stale_after_periods: float | None = bounded(None, "control periods without state before the watchdog acts", gt=0)
    diagnostics_hz: float = bounded(1.0, "how often /diagnostics is published", gt=0, le=50)
    # A loop thread at normal priority can wait milliseconds for a CPU on a busy machine; SCHED_FIFO runs
    # it first. Both threads sleep between states, so they cannot hog a CPU.
    realtime_priority: int | None = bounded(
        None, "SCHED_FIFO priority (1-99) of the process's threads; needs CAP_SYS_NICE; null: normal", ge=1, le=99
    )
    # rclpy's SingleThreadedExecutor rebuilds its wait set in Python for every message (~0.1-0.3 ms of CPU);
    # the events executor (rclpy.experimental, C++) dispatches callbacks without that.
    executor: Literal["events", "single"] = "events"
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    # --locomotion: the walking policy's command topics (roboreward.hardware.locomotion)
    locomotion: LocomotionDeployConfig = field(default_factory=LocomotionDeployConfig)
    # a crowd-navigation run: the people, scan and goal topics (roboreward.hardware.crowd)
    crowd: CrowdTopicsConfig = field(default_factory=CrowdTopicsConfig)

    def __post_init__(self) -> None:
        check_fields(self)


@runtime_checkable
class Controller(Protocol):
    """What the deploy node runs when a command needs more than the robot file's observation and action mapping:
    a walking policy (:class:`~roboreward.hardware.locomotion.LocomotionController`) or a crowd-navigation
    policy (:class:`~roboreward.hardware.crowd.CrowdNavigationController`). It subscribes its own topics on the
    node, and turns each control period's robot state into a command for the safety layer."""

    counts: dict[str, int]

    def attach(self, node: Any) -> None: ...

    def check_state(self, state: RobotState) -> None: ...

    def command_for(self, state: RobotState) -> np.ndarray: ...

    def describe(self) -> str: ...


class ActionToCommand:
    """``robot.command_from_action`` as ``offset + scale * clip(action, -1, 1)`` into preallocated buffers.

    Every mapping a robot file defines is affine in the clipped action; this computes it in four ufunc
    calls instead of rebuilding the limit arrays per call (~0.1 ms on a slow CPU, a twentieth of the
    500 Hz latency budget). It is checked against the robot's own method at construction and falls
    back to it when they differ.
    """

    def __init__(self, robot: RobotConfig) -> None:
        self.robot = robot
        n = robot.action_space.shape[0]
        self.offset = robot.command_from_action(np.zeros(n)).astype(np.float64)
        self.scale = robot.command_from_action(np.ones(n)).astype(np.float64) - self.offset
        self._buffer = np.empty(n, dtype=np.float64)
        probes = [-np.ones(n), *np.random.default_rng(0).uniform(-1.5, 1.5, size=(4, n))]
        self.exact = not (np.isfinite(self.offset).all() and np.isfinite(self.scale).all()) or any(
            not np.allclose(self._affine(a), robot.command_from_action(a), rtol=1e-12, atol=1e-12) for a in probes
        )

    def _affine(self, action: np.ndarray) -> np.ndarray:
        out = self._buffer
        np.maximum(action, -1.0, out=out)
        np.minimum(out, 1.0, out=out)
        out *= self.scale
        out += self.offset
        return out

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.exact:
            return self.robot.command_from_action(action)
        return self._affine(action)


class LoopTimings:
    """State stamp, arrival and publish time of each policy command (a ring of TIMING_CAPACITY), for latency,
    rate and missed deadlines."""

    def __init__(self, capacity: int = TIMING_CAPACITY) -> None:
        self.stamp = np.zeros(capacity, dtype=np.float64)  # the state's header stamp (the robot's clock)
        self.arrival = np.zeros(capacity, dtype=np.float64)  # time.monotonic() when its callback began
        self.published = np.zeros(capacity, dtype=np.float64)  # time.monotonic() after the command's publish
        self.published_wall = np.zeros(capacity, dtype=np.float64)  # time.time() then: the stamps' clock
        self.count = 0
        self.capacity = capacity

    def add(self, stamp: float, arrival: float, published: float, published_wall: float = math.nan) -> None:
        i = self.count % self.capacity
        self.stamp[i] = stamp
        self.arrival[i] = arrival
        self.published[i] = published
        self.published_wall[i] = published_wall
        self.count += 1

    def since(self, start: int) -> tuple[np.ndarray, np.ndarray]:
        """(arrival, published) of the commands numbered ``start`` .. now (the newest ``capacity`` at most)."""
        idx = self._indices(start)
        return self.arrival[idx], self.published[idx]

    def stamps_since(self, start: int) -> np.ndarray:
        return self.stamp[self._indices(start)]

    def published_wall_since(self, start: int) -> np.ndarray:
        return self.published_wall[self._indices(start)]

    def ages_since(self, start: int) -> np.ndarray:
        """Seconds from each command's state stamp to its publication (meaningful when the robot stamps with
        this machine's clock, as ``sim-robot`` and a ros2_control driver on the same computer do)."""
        idx = self._indices(start)
        return self.published_wall[idx] - self.stamp[idx]

    def _indices(self, start: int) -> np.ndarray:
        end = self.count
        start = max(start, end - self.capacity)
        return np.arange(start, end) % self.capacity


def latency_summary(arrival: np.ndarray, published: np.ndarray) -> dict[str, float]:
    """Latency percentiles (ms) and the achieved command rate (Hz) of a span of commands."""
    if len(arrival) == 0:
        return {"commands": 0}
    lat = (published - arrival) * 1e3
    p50, p90, p99, p999 = np.percentile(lat, [50, 90, 99, 99.9])
    span = published[-1] - published[0]
    return {
        "commands": int(len(lat)),
        "rate_hz": float((len(lat) - 1) / span) if span > 0 else 0.0,
        "latency_p50_ms": float(p50),
        "latency_p90_ms": float(p90),
        "latency_p99_ms": float(p99),
        "latency_p999_ms": float(p999),
        "latency_max_ms": float(lat.max()),
    }


class DeployNode:
    """The deploy node: policy on a robot over ROS 2 (see the module docstring). ``run()`` until stopped.

    :param robot: the robot description (name, path or :class:`RobotConfig`).
    :param policy: a :class:`~roboreward.policies.export.PolicyRunner` trained for this robot (observation in,
        action out), or a :class:`Controller` (state in, command out: a walking policy plus the teleop session's
        targets, or a crowd-navigation policy with its people, scan and goal, on topics of this node).
    :param config: rates, watchdog and safety limits (:class:`DeployConfig`).
    :param domain_id: ROS_DOMAIN_ID for this node (default: the environment's).
    :param discovery: ``localhost`` (default) or ``subnet`` for a real robot on the LAN.
    """

    def __init__(
        self,
        robot: RobotConfig | str | Path,
        policy: PolicyRunner | Controller,
        config: DeployConfig | None = None,
        *,
        domain_id: int | None = None,
        discovery: str = "localhost",
    ) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import Bool, String
        from std_srvs.srv import Trigger

        from roboreward.hardware.ros import CommandPublisher, RosSession, StateSubscriber

        self.robot = robot = load_robot_config(robot)
        self.policy = policy
        self.config = config = config if config is not None else DeployConfig()
        self.controller = policy if isinstance(policy, Controller) else None
        if self.controller is None:
            check_policy_fits_robot(policy, robot)  # a controller checked the robot when it was built
        # A crowd policy acts once per env step: the loop runs at that rate, whatever the robot file's.
        policy_hz = getattr(self.controller, "control_hz", None)
        if policy_hz is not None and config.rate_hz is not None and not math.isclose(config.rate_hz, policy_hz,
                                                                                     rel_tol=1e-6):
            raise ConfigError(f"rate_hz: {config.rate_hz:g} Hz, but the policy acts at {policy_hz:g} Hz (one command "
                              "per env step, 1 / env.kwargs.time_step); leave rate_hz out")
        self.rate_hz = float(policy_hz or config.rate_hz or robot.control.rate_hz)
        js_rate = robot.state.joint_state.rate_hz  # type: ignore[union-attr]
        if self.rate_hz > js_rate:  # type: ignore[operator]
            raise ConfigError(
                f"rate_hz: {self.rate_hz} is above the robot's joint-state rate {js_rate} Hz; the loop runs on "
                "joint states, so it cannot be faster: lower --rate-hz or raise state.joint_state.rate_hz"
            )
        self.period = 1.0 / self.rate_hz
        self.twist = robot.action_kind == "twist"
        self.safety = SafetyLayer.from_robot(robot, config.safety, period_s=self.period)
        self.to_command = ActionToCommand(robot)
        stale_periods = config.stale_after_periods or robot.control.stale_after_periods
        self.watchdog = Watchdog(self.period, stale_periods)
        self.estop = EStop()
        self.timings = LoopTimings()
        self.counts = {"missed_deadlines": 0, "state_gaps": 0, "late_commands": 0, "skipped_states": 0,
                       "state_errors": 0,
                       "policy_errors": 0, "holds_stale": 0, "holds_estop": 0, "estop_topic_ignored": 0}
        self._lock = threading.Lock()  # safety layer + command publisher
        self._due: float | None = None  # the stamp the next control step is due at (the robot's clock)
        self._previous_stamp = -math.inf  # the last state's stamp, used or not: the stream's interval
        self._mode = ""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started_at: float | None = None
        self._first_state_at: float | None = None  # DDS discovery takes from ms (loopback) to seconds (a busy LAN)
        self._switch_interval: float | None = None
        self.last_error = ""

        self.session = RosSession(NODE_NAME, domain_id=domain_id, discovery=discovery, spin=False)
        node = self.session.node
        self.commands = CommandPublisher(node, robot)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._mode_pub = node.create_publisher(String, "~/mode", latched)
        self._mode_msg = String()
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.create_service(Trigger, "~/estop", self._on_estop_service)
        node.create_service(Trigger, "~/reset", self._on_reset_service)
        node.create_subscription(Bool, "~/estop", self._on_estop_topic, 10)
        self.states = StateSubscriber(node, robot, on_joint_state=self._on_state)
        if self.controller is not None:
            self.controller.attach(node)
        self._set_mode("waiting")

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> DeployNode:
        """Start spinning (state callbacks) and the supervisor; returns at once."""
        if self._threads:
            return self
        gc.collect()
        gc.freeze()  # what exists now (torch, models, messages) is never scanned again: short GC pauses
        # Python hands the GIL to a waiting thread only every switch interval (5 ms by default): the supervisor's
        # diagnostics (~0.4 ms of Python once a second) or a service call could hold a state callback that long.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._realtime_process()
        self._started_at = time.monotonic()
        for target, name in ((self._spin, "deploy-ros"), (self._supervise, "deploy-supervisor")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def run(self, duration: float | None = None) -> dict[str, Any]:
        """Run until :meth:`stop` (or a signal handler calling it) or ``duration`` seconds; returns the summary."""
        self.start()
        self._stop.wait(duration)
        self.stop()
        return self.summary()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    def close(self) -> None:
        self.stop()
        self.session.close()

    def __enter__(self) -> DeployNode:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _realtime(self) -> None:
        """SCHED_FIFO for the calling thread (the node's own threads call it when they start)."""
        if self.config.realtime_priority is not None:
            self.last_error = set_fifo_priority(self.config.realtime_priority) or self.last_error

    def _realtime_process(self) -> None:
        """SCHED_FIFO for the threads that exist now: DDS's receive threads, which hand each state to the callback."""
        if self.config.realtime_priority is not None:
            self.last_error = set_fifo_priority_for_process(self.config.realtime_priority) or self.last_error

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException, ShutdownException

        self._realtime()
        executor = self.session.executor
        if self.config.executor == "events":
            from rclpy.experimental import EventsExecutor

            executor = EventsExecutor(context=self.session.context)
            executor.add_node(self.session.node)  # moves the node off the session's executor
        while not self._stop.is_set() and self.session.context.ok():
            try:
                executor.spin_once(timeout_sec=0.05)
            except (ExternalShutdownException, ShutdownException):
                break
        if executor is not self.session.executor:
            executor.remove_node(self.session.node)
            executor.shutdown()

    # ------------------------------------------------------------------------------ the control path
    def _on_state(self, state: RobotState) -> None:
        """A joint state arrived (executor thread): compute, check and publish the command for it."""
        arrival = state.received_at
        self.watchdog.feed(arrival)
        if self._first_state_at is None:
            self._first_state_at = arrival
        if self.estop.engaged or self._mode.startswith("hold"):
            return  # the supervisor sends the holds; a stale spell ends on its next tick
        interval, self._previous_stamp = state.stamp - self._previous_stamp, state.stamp
        due, period = self._due, self.period
        if due is not None and state.stamp < due - 2 * period:
            due = None  # the robot's clock went back (a restarted driver): start the grid again
        if due is not None:
            slack = min(DUE_SLACK * period, 0.5 * interval) if interval > 0 else DUE_SLACK * period
            if state.stamp < due - slack:
                self.counts["skipped_states"] += 1
                return
            late = (state.stamp - due) / period
            if late > 0.5:  # control periods that got no state, hence no command
                missed = int(late + 0.5)
                self.counts["missed_deadlines"] += missed
                self.counts["state_gaps"] += missed
                due += missed * period
            self._due = due + period
        else:
            self._due = state.stamp + period
        position = None if self.twist else state.position
        try:
            if self.controller is not None:
                self.controller.check_state(state)
                observation = None
            else:
                observation = self.robot.observation_from_state(state)
            if not self.safety.can_hold(position):
                raise ValueError("the joint position is not finite, and the first command needs one to start from")
        except ValueError as e:
            self.counts["state_errors"] += 1
            self.last_error = f"state: {e}"
            with self._lock:
                if self.safety.can_hold(position):
                    self._publish(self.safety.hold(position))
            return
        try:
            if self.controller is not None:
                command = self.controller.command_for(state)
            else:
                action = self.policy(observation)
        except Exception as e:  # a policy that raises is broken: stop, and say why
            self.counts["policy_errors"] += 1
            self.trigger_estop(f"policy error: {type(e).__name__}: {e}")
            return
        with self._lock:
            if self.estop.engaged:  # triggered while the policy ran
                return
            if self.controller is not None:
                self._publish(self.safety.filter(command, position))
            else:
                self._publish(self.safety.filter_action(action, self.to_command, position))
        published, published_wall = time.monotonic(), time.time()
        self.timings.add(state.stamp, arrival, published, published_wall)
        late = published - arrival
        age = published_wall - state.stamp  # the state's age when its command left, if it is stamped on our clock
        if -STAMP_CLOCK_SLACK <= age - late < STAMP_CLOCK_WINDOW:
            late = max(late, age)
        if late > self.period:
            self.counts["missed_deadlines"] += 1
            self.counts["late_commands"] += 1
        if self._mode != "running":
            self._set_mode("running")

    def _publish(self, command: np.ndarray) -> None:
        self.commands.publish(command)

    def _hold(self, reason: str) -> None:
        """Send the hold command (supervisor / e-stop), if there is anything to hold."""
        state = self.states.state
        position = None if (self.twist or state is None) else state.position
        with self._lock:
            if not self.safety.can_hold(position):
                return  # never commanded and never saw the robot: leave it alone
            self._publish(self.safety.hold(position))
        self.counts[reason] += 1

    def _supervise(self) -> None:
        self._realtime()
        period = self.period
        next_tick = time.monotonic() + period
        diag_every = 1.0 / self.config.diagnostics_hz
        next_diag = time.monotonic() + diag_every
        self._diag_start = 0
        self._diag_time = time.monotonic()
        while not self._stop.is_set():
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            next_tick += period
            if next_tick < now:  # overslept by more than a period (a loaded machine): don't catch up in a burst
                next_tick = now + period
            stale = self.watchdog.stale(now)
            if self.estop.engaged:
                self._hold("holds_estop")
                self._set_mode(f"estop: {self.estop.reason}")
            elif stale and self.watchdog.last_fed is not None:
                if self.config.safety.on_stale == "stop":
                    age = self.watchdog.age(now)
                    self.trigger_estop(f"watchdog: no joint state for {age * 1e3:.0f} ms")
                else:
                    self._hold("holds_stale")
                    self._set_mode("hold: state stale")
                self._due = None  # start again at the next state, without counting the hold as misses
            elif self._mode.startswith(("hold", "estop")):
                self._due = None
                self._set_mode("running")
            if now >= next_diag:
                next_diag += diag_every
                try:
                    self._publish_diagnostics(now)
                except Exception as e:  # diagnostics must never stop the supervisor
                    self.last_error = f"diagnostics: {e}"

    def _set_mode(self, mode: str) -> None:
        if mode == self._mode:
            return
        self._mode = mode
        self._mode_msg.data = mode
        self._mode_pub.publish(self._mode_msg)

    @property
    def mode(self) -> str:
        return self._mode

    # ------------------------------------------------------------------------------ e-stop
    def trigger_estop(self, reason: str) -> bool:
        """Latch the e-stop and send the hold command at once; False if it was already engaged."""
        engaged = self.estop.trigger(reason)
        if engaged:
            self._set_mode(f"estop: {reason}")
            self._hold("holds_estop")
        return engaged

    def reset_estop(self) -> bool:
        released = self.estop.reset()
        if released:
            if self.safety.mode == "position":  # the robot may have been moved meanwhile: ramp from where it is
                with self._lock:
                    self.safety.reset()
            self._due = None
            self._set_mode("running" if self.states.state is not None else "waiting")
        return released

    def _on_estop_service(self, request: Any, response: Any) -> Any:
        engaged = self.trigger_estop("service ~/estop")
        response.success = True
        response.message = "e-stop engaged" if engaged else f"e-stop was already engaged ({self.estop.reason})"
        return response

    def _on_reset_service(self, request: Any, response: Any) -> Any:
        released = self.reset_estop()
        response.success = released
        response.message = "e-stop released" if released else "e-stop was not engaged"
        return response

    def _on_estop_topic(self, msg: Any) -> None:
        if msg.data:
            self.trigger_estop("topic ~/estop")
        else:
            self.counts["estop_topic_ignored"] += 1  # latching: only ~/reset releases it

    # ------------------------------------------------------------------------------ reporting
    def summary(self) -> dict[str, Any]:
        """Counters and timing over the whole run so far (JSON-serialisable)."""
        arrival, published = self.timings.since(0)
        timing = latency_summary(arrival, published)
        slots = timing.get("commands", 0) + self.counts["missed_deadlines"]
        states = self.states.counters()
        return {
            "robot": self.robot.name,
            "control_rate_hz": self.rate_hz,
            "mode": self._mode,
            **timing,
            **self.counts,
            "missed_deadline_fraction": self.counts["missed_deadlines"] / slots if slots else 0.0,
            "safety": self.safety.counters.as_dict(),
            "watchdog_trips": self.watchdog.trips,
            "estop_engaged": self.estop.engaged,
            "estop_triggers": self.estop.triggers,
            "estop_reason": self.estop.reason,
            "states": states,
            "first_state_after_s": (
                None if self._first_state_at is None or self._started_at is None
                else round(self._first_state_at - self._started_at, 3)
            ),
            "commands_published": self.commands.published,
            "last_error": self.last_error,
            **({"controller": dict(self.controller.counts)} if self.controller is not None else {}),
        }

    def _publish_diagnostics(self, now: float) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        arrival, published = self.timings.since(self._diag_start)
        self._diag_start = self.timings.count
        window = latency_summary(arrival, published)
        elapsed = now - self._diag_time
        self._diag_time = now
        c = self.safety.counters
        age = self.watchdog.age(now)
        values = {
            "mode": self._mode,
            "loop_rate_hz": f"{len(arrival) / elapsed:.1f}" if elapsed > 0 else "0",
            "latency_p50_ms": f"{window.get('latency_p50_ms', math.nan):.3f}",
            "latency_p99_ms": f"{window.get('latency_p99_ms', math.nan):.3f}",
            "latency_max_ms": f"{window.get('latency_max_ms', math.nan):.3f}",
            "missed_deadlines": str(self.counts["missed_deadlines"]),
            "commands": str(c.commands),
            "nonfinite_actions": str(c.nonfinite),
            "position_limit_hits": str(c.position_limited),
            "step_limit_hits": str(c.step_limited),
            "velocity_limit_hits": str(c.velocity_limited),
            "effort_limit_hits": str(c.effort_limited),
            "holds": str(c.holds),
            "watchdog_trips": str(self.watchdog.trips),
            "state_age_ms": f"{age * 1e3:.1f}" if math.isfinite(age) else "never",
            "estop": "engaged" if self.estop.engaged else "released",
            "estop_reason": self.estop.reason,
            "policy_errors": str(self.counts["policy_errors"]),
        }
        status = DiagnosticStatus()
        status.name = f"{NODE_NAME}: {self.robot.name}"
        status.hardware_id = str(self.robot.name)
        if self.estop.engaged:
            status.level, status.message = DiagnosticStatus.ERROR, f"e-stop: {self.estop.reason}"
        elif self._mode.startswith("hold") or self._mode == "waiting":
            status.level, status.message = DiagnosticStatus.WARN, self._mode
        else:
            status.level, status.message = DiagnosticStatus.OK, "running"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray()
        msg.header.stamp = self.session.node.get_clock().now().to_msg()
        msg.status = [status]
        self._diag_pub.publish(msg)


def check_policy_fits_robot(policy: PolicyRunner, robot: RobotConfig) -> None:
    """Refuse a policy whose spaces or joint order differ from the robot's: it would command the wrong joints."""
    problems = []
    if tuple(policy.observation_space.shape) != tuple(robot.observation_space.shape):
        problems.append(
            f"observation size {policy.observation_space.shape} != the robot's {robot.observation_space.shape}"
        )
    if tuple(policy.action_space.shape) != tuple(robot.action_space.shape):
        problems.append(f"action size {policy.action_space.shape} != the robot's {robot.action_space.shape}")
    if policy.joint_names is not None and list(policy.joint_names) != list(robot.joint_names):
        problems.append(f"joint order {list(policy.joint_names)} != the robot's {robot.joint_names}")
    if problems:
        trained = f" (trained on {policy.robot!r})" if getattr(policy, "robot", None) else ""
        raise ConfigError(
            f"the policy{trained} does not fit robot {robot.name!r}: {'; '.join(problems)}. Deploy a policy trained "
            f"with env.kwargs.robot={robot.name}, or pass the robot file it was trained with"
        )


# The flags of `roboreward deploy` that are shorthands for keys of DeployConfig (`--max-step 0.01` is
# `safety.max_step=0.01`).
FLAG_KEYS = {
    "rate_hz": "rate_hz",
    "stale_after_periods": "stale_after_periods",
    "realtime": "realtime_priority",
    "executor": "executor",
    "on_stale": "safety.on_stale",
    "max_step": "safety.max_step",
    "velocity_scale": "safety.velocity_scale",
    "position_margin": "safety.position_margin",
}


def config_from_args(args: argparse.Namespace) -> tuple[DeployConfig, list[str]]:
    """The deploy settings and the robot file's overrides, from the command line.

    ``key=value`` overrides whose first part is a key of :class:`DeployConfig` (``rate_hz``,
    ``safety.max_step``, ...) set the deploy settings, after the flags that are shorthands for them
    (:data:`FLAG_KEYS`); every other override is the robot file's (``control.rate_hz=200``).
    """
    own = {f.name for f in dataclasses.fields(DeployConfig)}
    data: dict[str, Any] = {}
    for flag, key in FLAG_KEYS.items():
        value = getattr(args, flag, None)
        if value is not None:
            *sections, name = key.split(".")
            node = data
            for section in sections:
                node = node.setdefault(section, {})
            node[name] = value
    robot_overrides = []
    for override in args.overrides or []:
        if override.partition("=")[0].split(".")[0] in own:
            apply_override(data, override)
        else:
            robot_overrides.append(override)
    return from_dict(DeployConfig, data), robot_overrides


def run_from_args(args: argparse.Namespace) -> int:
    """The ``deploy`` command's handler (see :mod:`roboreward.hardware.cli`)."""
    from roboreward.policies.export import load_policy

    locomotion = getattr(args, "locomotion", None)
    if locomotion is not None and args.run_dir is not None and "=" in args.run_dir:
        args.overrides = [args.run_dir, *(args.overrides or [])]  # with --locomotion the first KEY=VALUE lands here
        args.run_dir = None
    if (locomotion is None) == (args.run_dir is None):
        raise ConfigError("give a RUN_DIR (a trained policy) or --locomotion POLICY (a walking policy), one of the two")
    config, robot_overrides = config_from_args(args)
    robot = load_robot_config(args.robot, robot_overrides)
    policy: PolicyRunner | Controller
    if locomotion is not None:
        from roboreward.policies.locomotion import load_locomotion_policy

        policy = LocomotionController(load_locomotion_policy(locomotion), robot, config.locomotion)
    elif is_crowd_run(args.run_dir):
        if args.policy == "onnx":
            raise ConfigError("--policy onnx: a crowd policy reads a Dict observation, which export does not take; "
                              "deploy runs its SB3 model (leave --policy out)")
        env_config, runner = load_crowd_policy(args.run_dir, args.checkpoint)
        policy = CrowdNavigationController(runner, env_config, robot, config.crowd)
    else:
        policy = load_policy(args.run_dir, backend=args.policy, checkpoint=args.checkpoint)
    torch = sys.modules.get("torch")  # an SB3 policy: one thread beats a pool for an MLP at batch 1
    threads = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(1)
        node = DeployNode(robot, policy, config, domain_id=args.domain_id, discovery=args.discovery)
        try:
            with on_signals(lambda sig: node._stop.set()):
                print(
                    f"deploy {robot.name}: ready; {_describe(policy)} at {node.rate_hz:g} Hz, ROS_DOMAIN_ID="
                    f"{node.session.domain_id}, discovery {args.discovery}; "
                    f"commands on {robot.command.topic}; "  # type: ignore[union-attr]
                    f"e-stop: service/topic /{NODE_NAME}/estop, reset: /{NODE_NAME}/reset",
                    flush=True,
                )
                summary = node.run(args.duration)
        finally:
            node.close()
    finally:
        if torch is not None:  # a caller's process (a test session) keeps its own setting
            torch.set_num_threads(threads)
    if args.stats is not None:
        atomic_write(Path(args.stats), (json.dumps(summary, indent=2) + "\n").encode())
    if args.timings is not None:  # per-command arrival and publish times (time.monotonic), for offline analysis
        arrival, published = node.timings.since(0)
        atomic_write_npz(Path(args.timings), {
            "stamp": node.timings.stamps_since(0), "arrival": arrival, "published": published,
            "published_wall": node.timings.published_wall_since(0), "period": np.array(node.period),
        })
    brief = {k: summary.get(k) for k in ("commands", "rate_hz", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
                                          "missed_deadlines", "watchdog_trips", "estop_triggers", "mode")}
    brief["nonfinite"] = summary["safety"]["nonfinite"]
    print(f"deploy {robot.name}: stopped; {brief}", flush=True)
    if summary["policy_errors"]:
        print(f"deploy {robot.name}: error: {summary['estop_reason']}", file=sys.stderr)
        return 1
    return 0


def _describe(policy: PolicyRunner | Controller) -> str:
    if isinstance(policy, Controller):
        return policy.describe()
    return type(policy).__name__


__all__ = [
    "ActionToCommand",
    "Controller",
    "DeployConfig",
    "DeployNode",
    "LoopTimings",
    "check_policy_fits_robot",
    "latency_summary",
    "run_from_args",
]
