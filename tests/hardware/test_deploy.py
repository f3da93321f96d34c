"""``roboreward deploy`` against ``roboreward sim-robot`` over real DDS: each test starts its own processes in a ROS
domain of its own, discovery on loopback only.

- a trained policy drives the simulated robot; a policy whose fixed point exposes any joint-order mistake
  (the robot file lists the joints in reverse of MuJoCo's order) brings every joint to its own goal;
- killing the state publisher makes the watchdog hold within the configured number of periods;
- out-of-limit, NaN and inf actions never reach the robot;
- the e-stop (service and topic) latches and releases only on reset.

The decimation, NaN hold and watchdog-stop logic are also checked on a real node fed states directly.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from roboreward.hardware.robot import RobotState, load_robot_config, robot_config_path

from .conftest import RoborewardProcess as Process

# --------------------------------------------------------------------------------------------
# Processes, domains, observer


@pytest.fixture
def processes():
    started: list[Process] = []

    def start(domain: int, *args: str) -> Process:
        started.append(Process(domain, *args))
        return started[-1]

    yield start
    for p in reversed(started):
        p.stop(signal.SIGKILL if p.proc.poll() is None else signal.SIGTERM)


class Observer:
    """This process's view of the graph: joint states by name, commands, the deploy node's mode and diagnostics."""

    def __init__(self, robot, domain: int):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String

        from roboreward.hardware.ros import MESSAGE_CLASSES, RosSession, qos_profile

        self.robot = robot
        self.session = RosSession("test_observer", domain_id=domain)
        node = self.session.node
        self.lock = threading.Lock()
        self.states: list[tuple[float, dict[str, float]]] = []
        self.commands: list[tuple[float, np.ndarray]] = []
        self.modes: list[tuple[float, str]] = []
        self.diagnostics: list[dict[str, str]] = []
        js = robot.state.joint_state
        node.create_subscription(JointState, js.topic, self._on_state, qos_profile(js.qos))
        cmd = robot.command
        deep = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(MESSAGE_CLASSES[cmd.type], cmd.topic, self._on_command, deep)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(String, "/roboreward_deploy/mode", self._on_mode, latched)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_state(self, msg) -> None:
        now = time.monotonic()
        with self.lock:
            self.states.append((now, dict(zip(msg.name, msg.position))))

    def _on_command(self, msg) -> None:
        from roboreward.hardware.ros import targets_from_command

        now = time.monotonic()
        with self.lock:
            self.commands.append((now, targets_from_command(self.robot, msg)))

    def _on_mode(self, msg) -> None:
        with self.lock:
            self.modes.append((time.monotonic(), msg.data))

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith("roboreward_deploy"):
                with self.lock:
                    self.diagnostics.append({kv.key: kv.value for kv in status.values} | {"_level": str(status.level)})

    def commands_between(self, start: float, end: float = np.inf) -> list[tuple[float, np.ndarray]]:
        with self.lock:
            return [(t, c) for t, c in self.commands if start <= t <= end]

    def mode(self) -> str:
        with self.lock:
            return self.modes[-1][1] if self.modes else ""

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.01)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; modes {self.modes[-5:]}, "
                    f"{len(self.commands)} commands, {len(self.states)} states")

    def call(self, service: str, timeout: float = 20.0):
        from std_srvs.srv import Trigger

        client = self.session.node.create_client(Trigger, service)
        assert client.wait_for_service(timeout_sec=timeout), f"service {service} not found"
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert future.done(), f"{service} did not answer within {timeout} s"
        return future.result()

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def observers():
    made: list[Observer] = []

    def make(robot, domain: int) -> Observer:
        made.append(Observer(robot, domain))
        return made[-1]

    yield make
    for o in made:
        o.close()


@pytest.fixture
def observed_franka(domain_id, processes, observers):
    """The stock Franka: its robot file, and an observer of ``sim-robot franka`` (no camera), ready on the test's
    domain."""
    robot = load_robot_config("franka")
    sim = processes(domain_id, "sim-robot", "franka", "--domain-id", str(domain_id), "--no-images")
    sim.wait_for(": ready;")
    return robot, observers(robot, domain_id)


# --------------------------------------------------------------------------------------------
# Robots and policies


def reversed_franka(tmp_path: Path) -> Path:
    """Franka with its joints listed in reverse: the config order is the opposite of MuJoCo's (sim-robot's) order."""
    data = yaml.safe_load(robot_config_path("franka").read_text())
    data["name"] = "franka_reversed"
    data["joints"] = list(reversed(data["joints"]))
    path = tmp_path / "franka_reversed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


GOAL_OFFSETS = {f"panda_joint{i + 1}": d for i, d in enumerate([0.30, -0.20, 0.25, 0.30, -0.30, 0.20, -0.25])}


def write_linear_policy(robot, weights: np.ndarray, bias: np.ndarray, out: Path) -> Path:
    """An exported policy ``action = obs @ weights + bias`` (ONNX + policy.json), as `roboreward export` writes them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from roboreward.policies.export import _space_to_json

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["observation", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["action"])],
        "linear_policy",
        [helper.make_tensor_value_info("observation", TensorProto.FLOAT, ["batch", weights.shape[0]])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", weights.shape[1]])],
        [numpy_helper.from_array(weights.astype(np.float32), "W"),
         numpy_helper.from_array(bias.astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out / "policy.onnx")
    meta = {"format": "roboreward-policy-v1", "onnx": "policy.onnx", "input": "observation", "output": "action",
            "robot": robot.name, "joint_names": robot.joint_names,
            "observation_space": _space_to_json(robot.observation_space),
            "action_space": _space_to_json(robot.action_space)}
    (out / "policy.json").write_text(json.dumps(meta))
    return out


def goal_seeking_policy(robot, out: Path, gain: float = 0.5) -> tuple[Path, dict[str, float]]:
    """Target_i = g_i + gain (g_i - q_i) from the observed positions q: its fixed point is q = g only when the
    observation's joint order and the command's joint order are both right."""
    home = dict(zip(robot.joint_names, robot.home_position))
    goals = {name: home[name] + GOAL_OFFSETS[name] for name in robot.joint_names}
    g = np.array([goals[n] for n in robot.joint_names])
    mid = (robot.position_lower + robot.position_upper) / 2
    half = (robot.position_upper - robot.position_lower) / 2
    n, m = robot.n_joints, robot.observation_size
    assert robot.observation[0] == "joint_position"
    weights = np.zeros((m, n))
    weights[np.arange(n), np.arange(n)] = -gain / half
    bias = ((1 + gain) * g - mid) / half
    return write_linear_policy(robot, weights, bias, out), goals


def train_tiny_run(robot_path: Path, run_dir: Path) -> Path:
    """A PPO policy on roboreward/RobotSim-v0 for the robot file, a few hundred steps (seconds)."""
    from roboreward.config import apply_override, from_dict
    from roboreward.experiment import ExperimentConfig
    from roboreward.policies.train import train

    data: dict = {}
    for o in ["reward.type=env", "env.id=roboreward/RobotSim-v0", f"env.kwargs.robot={robot_path}", "algo.name=ppo",
              "env.n_envs=1", "train.total_timesteps=128", "algo.hyperparams.n_steps=128",
              "algo.hyperparams.batch_size=64", "algo.hyperparams.n_epochs=1", "train.progress_bar=false",
              "algo.net_arch=[64, 64]"]:
        apply_override(data, o)
    return train(from_dict(ExperimentConfig, data), run_dir)


# --------------------------------------------------------------------------------------------
# End to end over DDS


@pytest.mark.slow
def test_trained_policy_and_joint_order_round_trip(tmp_path, domain_id, processes, observers):
    import gymnasium as gym

    from roboreward.policies.export import OnnxPolicyRunner, SB3PolicyRunner, export_policy

    robot_path = reversed_franka(tmp_path)
    robot = load_robot_config(robot_path)
    sim = processes(domain_id, "sim-robot", str(robot_path), "--domain-id", str(domain_id), "--no-images")
    run_dir = train_tiny_run(robot_path, tmp_path / "run")
    export_policy(run_dir)
    onnx_runner, sb3_runner = OnnxPolicyRunner(run_dir / "export"), SB3PolicyRunner.from_run(run_dir)
    assert onnx_runner.joint_names == robot.joint_names  # the reversed order travels with the export
    env = gym.make("roboreward/RobotSim-v0", robot=str(robot_path))
    obs, _ = env.reset(seed=3)
    for _ in range(30):  # parity on observations the robot produces, not just random ones
        np.testing.assert_allclose(onnx_runner(obs), sb3_runner(obs), atol=1e-5)
        obs, *_ = env.step(sb3_runner(obs))
    env.close()
    sim.wait_for(": ready;")
    observer = observers(robot, domain_id)
    observer.wait_for(lambda: len(observer.states) > 5, what="joint states from sim-robot")
    start_positions = observer.states[-1][1]

    # 1. The trained policy (ONNX export) drives the robot, inside the limits, at the control rate.
    stats = tmp_path / "trained.json"
    deploy = processes(domain_id, "deploy", str(run_dir), "--robot", str(robot_path), "--policy", "onnx",
                       "--domain-id", str(domain_id), "--duration", "8", "--stats", str(stats))
    assert deploy.wait(timeout=120) == 0, deploy.output
    summary = json.loads(stats.read_text())
    # deploy's own count checks the rate; the observer only needs enough commands to check their bounds
    # (DDS discovery of deploy's new participant took up to ~3 s on a busy machine: hence an 8 s run).
    commands = observer.commands_between(0.0)
    assert len(commands) > 25, (len(commands), deploy.output)
    targets = np.stack([c for _, c in commands])
    assert np.isfinite(targets).all()
    assert (targets >= robot.position_lower).all() and (targets <= robot.position_upper).all()
    assert summary["commands"] >= 50 and 40 <= summary["rate_hz"] <= 60  # >= 1 s of commands at 50 Hz
    assert summary["safety"]["nonfinite"] == 0 and summary["estop_triggers"] == 0
    moved = max(abs(observer.states[-1][1][n] - start_positions[n]) for n in robot.joint_names)
    assert moved > 0.02, "the policy's commands did not move the simulated robot"
    assert observer.diagnostics, "no /diagnostics from the deploy node"
    keys = {"loop_rate_hz", "latency_p99_ms", "missed_deadlines", "step_limit_hits", "estop"}
    assert keys <= set(observer.diagnostics[-1])

    # 2. A policy whose fixed point is each joint at its own goal: only right joint order both ways reaches it.
    policy_dir, goals = goal_seeking_policy(robot, tmp_path / "goal_policy")
    before = len(observer.commands)
    deploy = processes(domain_id, "deploy", str(policy_dir), "--robot", str(robot_path), "--domain-id", str(domain_id),
                       "--duration", "8")  # discovery may take seconds; the rest is enough to converge
    assert deploy.wait(timeout=120) == 0, deploy.output
    time.sleep(0.5)
    last_command = dict(zip(robot.joint_names, observer.commands[-1][1]))
    final = observer.states[-1][1]
    assert len(observer.commands) - before > 50  # of ~250: see the note on discovery above
    for name in robot.joint_names:
        assert last_command[name] == pytest.approx(goals[name], abs=0.03), (name, last_command, goals)
        assert final[name] == pytest.approx(goals[name], abs=0.03), (name, final, goals)


@pytest.mark.slow
def test_watchdog_holds_within_configured_periods_when_state_stops(tmp_path, domain_id, processes, observers):
    robot = load_robot_config("franka")
    period, n_periods = 1.0 / robot.control.rate_hz, 5
    policy_dir, _ = goal_seeking_policy(robot, tmp_path / "policy")
    sim = processes(domain_id, "sim-robot", "franka", "--domain-id", str(domain_id), "--no-images")
    deploy = processes(domain_id, "deploy", str(policy_dir), "--robot", "franka", "--domain-id", str(domain_id),
                       "--stale-after-periods", str(n_periods), "--duration", "60")
    sim.wait_for(": ready;")
    deploy.wait_for(": ready;")
    observer = observers(robot, domain_id)
    observer.wait_for(
        lambda: observer.mode() == "running" and len(observer.commands) > 20 and len(observer.states) > 20,
        what="deploy running and joint states here",
    )

    sim.proc.send_signal(signal.SIGKILL)  # the state publisher dies mid-run
    sim.proc.wait()
    observer.wait_for(lambda: observer.mode() == "hold: state stale", timeout=5.0, what="the watchdog's hold")
    last_state = observer.states[-1][0]
    held_at = observer.modes[-1][0]
    waited = held_at - last_state
    # Stale after N periods, noticed at the next supervisor tick: within (N + 1) periods, plus transport slack.
    assert n_periods * period - 0.02 <= waited <= (n_periods + 1) * period + 0.1, waited

    time.sleep(1.0)
    holds = observer.commands_between(held_at + 0.05)
    assert len(holds) >= 25, "hold commands must keep coming at the control rate"
    first = holds[0][1]
    assert all(np.array_equal(c, first) for _, c in holds), "the robot must be held still while state is stale"
    observer.wait_for(lambda: observer.diagnostics and int(observer.diagnostics[-1]["watchdog_trips"]) >= 1,
                      timeout=5.0, what="a watchdog trip in /diagnostics")
    assert observer.diagnostics[-1]["mode"] == "hold: state stale"
    deploy.stop()
    summary = deploy.lines[-1]
    assert "'mode': 'hold: state stale'" in summary and "'watchdog_trips': 0" not in summary, summary


class BadPolicy:
    """A broken policy: out-of-limit actions, NaN and inf among ordinary ones."""

    def __init__(self, robot, seed: int = 0):
        from gymnasium import spaces

        self.observation_space = robot.observation_space
        self.action_space = spaces.Box(-1.0, 1.0, shape=robot.action_space.shape)
        self.joint_names = robot.joint_names
        self.robot = robot.name
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def __call__(self, observation):
        self.calls += 1
        n = self.action_space.shape[0]
        kind = self.calls % 5
        if kind == 0:
            action = self.rng.normal(0, 100, n)  # far outside [-1, 1]
        elif kind == 1:
            action = self.rng.uniform(-1, 1, n)
            action[self.rng.integers(n)] = np.nan
        elif kind == 2:
            action = np.full(n, self.rng.choice([np.inf, -np.inf]))
        else:
            action = self.rng.choice([-50.0, 50.0], n)
        return action.astype(np.float32)


@pytest.mark.slow
def test_out_of_limit_and_nan_actions_never_reach_the_robot(domain_id, observed_franka):
    from roboreward.hardware.deploy import DeployConfig, DeployNode
    from roboreward.hardware.safety import SafetyConfig

    robot, observer = observed_franka
    policy = BadPolicy(robot)
    config = DeployConfig(safety=SafetyConfig(max_step=0.02))
    with DeployNode(robot, policy, config, domain_id=domain_id) as node:
        node.start()
        observer.wait_for(lambda: len(observer.commands) >= 150, timeout=60.0, what="150 commands")
        summary = node.summary()
    period = 1.0 / robot.control.rate_hz
    commands = observer.commands_between(0.0)
    targets = np.stack([c for _, c in commands])
    assert np.isfinite(targets).all()
    assert (targets >= robot.position_lower).all() and (targets <= robot.position_upper).all()
    # Consecutive commands (no message lost in between: about one period apart) change by at most max_step.
    times = np.array([t for t, _ in commands])
    consecutive = np.abs(np.diff(times) - period) < 0.4 * period
    steps = np.abs(np.diff(targets, axis=0))[consecutive]
    assert consecutive.sum() > 50 and steps.max() <= 0.02 + 1e-9
    assert summary["safety"]["nonfinite"] >= 0.35 * policy.calls - 5
    assert summary["safety"]["step_limited"] > 0 and summary["policy_errors"] == 0
    time.sleep(0.3)
    measured = np.array([[s[n] for n in robot.joint_names] for _, s in observer.states])
    assert (measured >= robot.position_lower - 0.01).all() and (measured <= robot.position_upper + 0.01).all()


class SweepPolicy:
    """Actions that change every call, so held (constant) commands are unmistakable."""

    def __init__(self, robot):
        self.observation_space = robot.observation_space
        self.action_space = robot.action_space
        self.joint_names = robot.joint_names
        self.robot = robot.name
        self.t0 = time.monotonic()

    def __call__(self, observation):
        t = time.monotonic() - self.t0
        return (0.3 * np.sin(2 * np.pi * 0.5 * t + np.arange(self.action_space.shape[0]))).astype(np.float32)


@pytest.mark.slow
def test_estop_latches_until_reset(domain_id, observed_franka):
    from std_msgs.msg import Bool

    from roboreward.hardware.deploy import DeployNode

    robot, observer = observed_franka
    estop_topic = observer.session.node.create_publisher(Bool, "/roboreward_deploy/estop", 10)

    def varying(since: float) -> bool:
        cmds = observer.commands_between(since)
        return len(cmds) > 10 and not all(np.array_equal(c, cmds[0][1]) for _, c in cmds)

    def held(since: float, until: float) -> list:
        cmds = observer.commands_between(since, until)
        assert len(cmds) >= 0.6 * (until - since) * robot.control.rate_hz, "holds must keep coming at the control rate"
        assert all(np.array_equal(c, cmds[0][1]) for _, c in cmds), "commands changed while the e-stop was engaged"
        return cmds

    with DeployNode(robot, SweepPolicy(robot), domain_id=domain_id) as node:
        node.start()
        t = time.monotonic()
        observer.wait_for(lambda: varying(t), timeout=60.0, what="the policy's commands")

        response = observer.call("/roboreward_deploy/estop")
        t_stop = time.monotonic()
        assert response.success and node.estop.engaged
        observer.wait_for(lambda: observer.mode().startswith("estop"), timeout=5.0, what="mode estop")
        for _ in range(3):  # false on the topic does not release it
            estop_topic.publish(Bool(data=False))
            time.sleep(0.1)
        time.sleep(0.7)
        held(t_stop + 0.1, time.monotonic())
        assert node.estop.engaged and node.counts["estop_topic_ignored"] >= 1
        assert observer.call("/roboreward_deploy/estop").message.startswith("e-stop was already engaged")

        response = observer.call("/roboreward_deploy/reset")
        assert response.success and not node.estop.engaged
        t = time.monotonic()
        observer.wait_for(lambda: varying(t), timeout=10.0, what="the policy's commands after reset")
        assert observer.mode() == "running"

        estop_topic.publish(Bool(data=True))  # the topic engages it too
        observer.wait_for(lambda: node.estop.engaged, timeout=5.0, what="the e-stop from the topic")
        t_stop = time.monotonic()
        time.sleep(0.8)
        held(t_stop + 0.1, time.monotonic())
        assert node.estop.reason == "topic ~/estop"
        assert observer.call("/roboreward_deploy/reset").success
        assert not observer.call("/roboreward_deploy/reset").success  # nothing left to release


# --------------------------------------------------------------------------------------------
# The node's logic, fed states directly (real rclpy node, no robot on the other end)


def fake_state(robot, position, received_at, stamp=None) -> RobotState:
    n = robot.n_joints
    return RobotState(position=np.asarray(position, dtype=np.float64), velocity=np.zeros(n), effort=np.zeros(n),
                      received_at=received_at, stamp=received_at if stamp is None else stamp)


class ConstantPolicy:
    def __init__(self, robot, action):
        self.observation_space, self.action_space = robot.observation_space, robot.action_space
        self.joint_names, self.robot = robot.joint_names, robot.name
        self.action = np.asarray(action, dtype=np.float32)

    def __call__(self, observation):
        return self.action


def test_state_stream_is_decimated_to_the_control_rate(domain_id):
    from roboreward.hardware.deploy import DeployConfig, DeployNode

    robot = load_robot_config("franka")  # joint states at 100 Hz, control at 50 Hz
    node = DeployNode(robot, ConstantPolicy(robot, np.zeros(7)), DeployConfig(), domain_id=domain_id)
    try:
        t0 = time.monotonic()
        for k in range(100):  # 1 s of 100 Hz states stamped by the robot, arriving with jitter and in bunches
            arrival = t0 + k * 0.01 + (0.008 if k % 7 == 3 else 0.0005 * np.sin(k))
            node._on_state(fake_state(robot, robot.home_position, arrival, stamp=100.0 + k * 0.01))
        assert node.timings.count == 50 and node.counts["skipped_states"] == 50
        assert node.counts["missed_deadlines"] == 0
        # 200 ms without state: the 50 Hz slots in between had no command.
        node._on_state(fake_state(robot, robot.home_position, t0 + 1.22, stamp=101.2))
        assert node.counts["missed_deadlines"] == node.counts["state_gaps"] == 10
    finally:
        node.close()


@pytest.mark.parametrize("rate_hz", [4.0, 20.0, 50.0])
def test_a_faster_stream_gives_exactly_the_control_rate(domain_id, rate_hz):
    """50 Hz joint states (2 ms of jitter) drive a 4, 20 or 50 Hz loop: one command per period on average, each from
    the state nearest its due time (not "a period since the last used", which gave 5.6 Hz for 4)."""
    from roboreward.hardware.deploy import DeployConfig, DeployNode

    robot = load_robot_config("franka", ["state.joint_state.rate_hz=50"])
    node = DeployNode(robot, ConstantPolicy(robot, np.zeros(7)), DeployConfig(rate_hz=rate_hz), domain_id=domain_id)
    try:
        t0 = time.monotonic()
        for k in range(500):  # 10 s of states
            node._on_state(fake_state(robot, robot.home_position, t0 + k * 0.02,
                                      stamp=100.0 + k * 0.02 + 0.002 * np.sin(k)))
        assert node.timings.count == pytest.approx(10 * rate_hz, abs=1)
        gaps = np.diff(node.timings.stamps_since(0))
        assert np.all(np.abs(gaps - 1 / rate_hz) <= 0.02 + 0.004 + 1e-9)  # within one state interval of the grid
        assert node.counts["missed_deadlines"] == 0
    finally:
        node.close()


def test_nan_and_limits_through_the_node_and_policy_error_latches_estop(domain_id):
    from roboreward.hardware.deploy import DeployConfig, DeployNode

    robot = load_robot_config("franka")
    policy = ConstantPolicy(robot, np.full(7, np.nan))
    node = DeployNode(robot, policy, DeployConfig(), domain_id=domain_id)
    try:
        home = robot.home_position
        node._on_state(fake_state(robot, home, time.monotonic()))
        np.testing.assert_allclose(node.commands.last_targets, home)  # NaN -> hold where the robot is
        assert node.safety.counters.nonfinite == 1
        policy.action = np.full(7, 5.0, dtype=np.float32)  # far beyond +1: the upper limits, at the velocity limit
        node._on_state(fake_state(robot, home, time.monotonic() + 0.02))
        step = robot.velocity_limit / robot.control.rate_hz
        np.testing.assert_allclose(node.commands.last_targets, np.minimum(home + step, robot.position_upper))

        def broken(observation):
            raise RuntimeError("weights went missing")

        node.policy = broken
        node._on_state(fake_state(robot, home, time.monotonic() + 0.04))
        assert node.estop.engaged and "weights went missing" in node.estop.reason
        assert node.counts["policy_errors"] == 1
        published = node.commands.published
        node._on_state(fake_state(robot, home, time.monotonic() + 0.06))  # latched: no policy command
        assert node.commands.published == published
        assert node.reset_estop() and not node.estop.engaged
    finally:
        node.close()


def test_watchdog_stop_latches_the_estop_until_reset(domain_id):
    from roboreward.hardware.deploy import DeployConfig, DeployNode
    from roboreward.hardware.safety import SafetyConfig

    robot = load_robot_config("franka")
    config = DeployConfig(stale_after_periods=3, safety=SafetyConfig(on_stale="stop"))
    node = DeployNode(robot, ConstantPolicy(robot, np.zeros(7)), config, domain_id=domain_id)
    try:
        node.start()
        node._on_state(fake_state(robot, robot.home_position, time.monotonic()))
        deadline = time.monotonic() + 5.0
        while not node.estop.engaged and time.monotonic() < deadline:
            time.sleep(0.005)
        assert node.estop.engaged and node.estop.reason.startswith("watchdog")
        assert node.watchdog.trips == 1
        node._on_state(fake_state(robot, robot.home_position, time.monotonic()))  # state is back: still latched
        time.sleep(0.1)
        assert node.estop.engaged and node.mode.startswith("estop")
        assert node.reset_estop()
    finally:
        node.close()


def test_policy_for_another_robot_is_refused(tmp_path, capsys):
    from roboreward.cli import main

    franka = load_robot_config("franka")
    policy_dir, _ = goal_seeking_policy(franka, tmp_path / "policy")
    assert main(["deploy", str(policy_dir), "--robot", "g1", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not fit robot 'g1'" in err and "observation size" in err
    reordered = reversed_franka(tmp_path)
    assert main(["deploy", str(policy_dir), "--robot", str(reordered), "--duration", "1"]) == 2
    assert "joint order" in capsys.readouterr().err
    assert main(["deploy", str(policy_dir), "--robot", "franka", "--rate-hz", "500"]) == 2
    assert "joint-state rate" in capsys.readouterr().err


def test_action_to_command_matches_the_robot_mapping():
    from roboreward.hardware.deploy import ActionToCommand

    rng = np.random.default_rng(0)
    for name in ("franka", "g1", "diff_drive"):
        robot = load_robot_config(name)
        fast = ActionToCommand(robot)
        assert not fast.exact
        for _ in range(20):
            a = rng.uniform(-2, 2, robot.action_space.shape[0])
            np.testing.assert_allclose(fast(a), robot.command_from_action(a), rtol=1e-12, atol=1e-12)


def test_a_command_from_a_state_older_than_a_period_is_a_missed_deadline(domain_id):
    """The deadline runs from the state's stamp when the robot stamps on this machine's clock (sim-robot, a driver
    on this computer): time the state spent reaching the callback counts. Stamps on another clock: in-process only."""
    import sys as _sys

    from roboreward.hardware.deploy import DeployConfig, DeployNode

    robot = load_robot_config("franka")  # 50 Hz: a 20 ms period
    node = DeployNode(robot, ConstantPolicy(robot, np.zeros(7)), DeployConfig(), domain_id=domain_id)
    try:
        interval = _sys.getswitchinterval()
        node.start()
        assert _sys.getswitchinterval() < interval  # a state callback waits at most that long for the GIL
        home = robot.home_position
        stamp = time.time() - 0.002
        node._on_state(fake_state(robot, home, time.monotonic(), stamp=stamp))  # 2 ms old: on time
        time.sleep(0.045)
        # The next period's state, handed to the callback 45 ms after the first: > 20 ms old, though the callback
        # itself is quick.
        node._on_state(fake_state(robot, home, time.monotonic(), stamp=stamp + 0.020))
        assert node.timings.count == 2 and node.counts["state_gaps"] == 0
        assert node.counts["late_commands"] == 1 and node.counts["missed_deadlines"] == 1
        ages = node.timings.ages_since(0)
        assert 0.002 <= ages[0] < 0.02 and ages[1] > 0.02
        # A robot whose clock is elsewhere (stamps far from ours): judged on the in-process latency alone.
        elsewhere = time.time() + 5000.0
        node._on_state(fake_state(robot, home, time.monotonic(), stamp=elsewhere))
        node._on_state(fake_state(robot, home, time.monotonic(), stamp=elsewhere + 0.02))
        assert node.counts["late_commands"] == 1 and node.timings.count == 4
        assert node.summary()["late_commands"] == 1
    finally:
        node.close()
    assert _sys.getswitchinterval() == interval


# --------------------------------------------------------------------------------------------
# Settings that would disable a safeguard


BAD_DEPLOY_SETTINGS = [
    (["--position-margin", "nan"], "argument --position-margin: nan is not a finite number"),
    (["--max-step", "nan"], "argument --max-step: nan is not a finite number"),
    (["--max-step=-inf"], "argument --max-step: -inf is not a finite number"),
    (["--max-step", "0"], "argument --max-step: 0.0 is too small; it must be > 0"),
    (["--velocity-scale", "nan"], "argument --velocity-scale: nan is not a finite number"),
    (["--velocity-scale", "inf"], "argument --velocity-scale: inf is not a finite number"),
    (["--rate-hz", "nan"], "argument --rate-hz: nan is not a finite number"),
    (["--stale-after-periods", "inf"], "argument --stale-after-periods: inf is not a finite number"),
    (["safety.position_margin=.nan"], "safety.position_margin: nan is not a finite number"),
    (["safety.max_step=-1"], "safety.max_step: -1.0 is too small; it must be > 0"),
    (["safety.velocity_scale=.inf"], "safety.velocity_scale: inf is not a finite number"),
    (["control.rate_hz=.nan"], "control.rate_hz: nan is not a finite number"),
    (["control.stale_after_periods=-1"], "control.stale_after_periods: -1.0 is too small"),
]


@pytest.mark.slow
def test_nan_and_out_of_range_safety_settings_stop_deploy_before_any_command(tmp_path, domain_id, processes,
                                                                            observed_franka):
    """Against sim-robot in another process: each bad setting ends deploy with a one-line error that names it,
    and not one command reaches the robot's command topic."""
    robot, observer = observed_franka
    policy_dir, _ = goal_seeking_policy(robot, tmp_path / "policy")
    observer.wait_for(lambda: len(observer.states) > 5, what="joint states from sim-robot")
    for extra, message in BAD_DEPLOY_SETTINGS:
        deploy = processes(domain_id, "deploy", str(policy_dir), "--robot", "franka", "--domain-id", str(domain_id),
                           "--duration", "3", *extra)
        assert deploy.wait(timeout=60) == 2, (extra, deploy.output)
        assert message in deploy.output and "Traceback" not in deploy.output, (extra, deploy.output)
    assert observer.commands_between(0.0) == []
    # A good setting on the same robot does command it: the observer would have seen the bad ones' commands.
    deploy = processes(domain_id, "deploy", str(policy_dir), "--robot", "franka", "--domain-id", str(domain_id),
                       "--duration", "4", "--max-step", "0.01")
    assert deploy.wait(timeout=60) == 0, deploy.output
    observer.wait_for(lambda: len(observer.commands) > 10, what="commands of the good deploy")
    steps = np.abs(np.diff(np.stack([c for _, c in observer.commands]), axis=0))
    assert np.isfinite(steps).all() and steps.max() <= 0.01 + 1e-9


@pytest.mark.parametrize("key", ["position_margin", "max_step", "velocity_scale"])
def test_a_safety_config_changed_to_nan_after_it_was_built_is_refused_by_the_node(domain_id, key):
    from roboreward.errors import ConfigError
    from roboreward.hardware.deploy import DeployConfig, DeployNode

    robot = load_robot_config("franka")
    config = DeployConfig()
    setattr(config.safety, key, float("nan"))
    with pytest.raises(ConfigError, match=f"safety.{key}: nan is not a finite number"):
        DeployNode(robot, ConstantPolicy(robot, np.zeros(7)), config, domain_id=domain_id)


def test_a_state_without_a_finite_position_is_never_commanded_from(domain_id):
    """Before the first command the step limit starts from the measured position: a NaN there means no command."""
    from roboreward.hardware.deploy import DeployConfig, DeployNode

    robot = load_robot_config("franka")
    node = DeployNode(robot, ConstantPolicy(robot, np.full(7, 0.9)), DeployConfig(), domain_id=domain_id)
    try:
        broken = robot.home_position.copy()
        broken[3] = np.nan
        node._on_state(fake_state(robot, broken, time.monotonic()))
        assert node.commands.published == 0 and node.counts["state_errors"] == 1
        node._on_state(fake_state(robot, robot.home_position, time.monotonic() + 0.02))
        step = robot.velocity_limit / robot.control.rate_hz
        assert node.commands.published == 1
        assert (np.abs(node.commands.last_targets - robot.home_position) <= step + 1e-9).all()
        with pytest.raises(ValueError, match="non-finite"):
            node.commands.publish(np.full(7, np.nan))  # the publisher itself refuses NaN, whoever calls it
        assert node.commands.published == 1
    finally:
        node.close()


def test_deploy_settings_take_key_value_overrides_and_flags_are_shorthands_for_them():
    import argparse

    from roboreward.hardware.deploy import config_from_args

    args = argparse.Namespace(rate_hz=None, stale_after_periods=None, realtime=None, executor=None, on_stale="stop",
                              max_step=0.02, velocity_scale=None, position_margin=None,
                              overrides=["safety.max_step=0.01", "rate_hz=25", "control.rate_hz=100"])
    config, robot_overrides = config_from_args(args)
    assert config.safety.max_step == 0.01 and config.safety.on_stale == "stop" and config.rate_hz == 25
    assert robot_overrides == ["control.rate_hz=100"]
