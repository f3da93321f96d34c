"""``roboreward teleop``: calibrate the cockpit's devices, drive a robot live and record, replay recordings.

Examples::

    roboreward teleop calibrate exo_left --port /dev/ttyUSB0 --robot g1     # writes calibration/exo_left.yaml
    roboreward teleop run --robot g1 --devices exo_left=/dev/ttyUSB0 exo_right=/dev/ttyUSB1 \\
        glove_left=/dev/ttyACM0 glove_right=/dev/ttyACM1 pedal=/dev/ttyUSB2 --calibration-dir calibration \\
        --record demos/g1_pick --task "pick up the box"
    roboreward teleop run --robot franka --simulated --record demos/try     # no hardware: simulated devices
    roboreward teleop run --robot g1 --simulated record.fps=15 command_poll_s=0.001
    roboreward teleop run --robot franka --simulated --sink ros2 --ros-robot franka --domain-id 7   # a ROS 2 robot
    roboreward teleop run --robot franka --simulated sink.type=ros2 sink.robot=franka sink.rate_hz=100
    roboreward teleop replay demos/g1_pick --episode 3

The session config's ``sink:`` section says where commands go (``type: sim`` or ``ros2``, and that sink's
keys); ``--sink``, ``--ros-robot``, ``--domain-id`` and ``--discovery`` set it, as ``sink.KEY=VALUE``
overrides do.

Only argparse, the config module and the cockpit's device names are imported here; drivers, MuJoCo and
the dataset code load when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from roboreward.config import arg_number
from roboreward.errors import ConfigError
from roboreward.teleop.cockpit import DEVICE_NAMES


def add_parsers(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``teleop`` (with ``calibrate``, ``run`` and ``replay``) to the ``roboreward`` command."""
    teleop = subparsers.add_parser(
        "teleop", help="teleoperation cockpit: calibrate devices, drive a robot and record, replay",
        description="Teleoperation with exoskeleton arms, Hall-sensor gloves and a pedal (HOMIE-style cockpit).",
    )
    sub = teleop.add_subparsers(dest="teleop_command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser(
        "calibrate", help="guided calibration of one device; writes its calibration YAML",
        description="Talk the operator through the poses that calibrate one device, fit, and save the YAML "
        "that `teleop run` reads (--calibration NAME=FILE or --calibration-dir).",
    )
    p.add_argument("device", metavar="DEVICE", choices=DEVICE_NAMES, help=f"one of {', '.join(DEVICE_NAMES)}")
    p.add_argument("--port", required=True, help="the device's serial port, e.g. /dev/ttyUSB0")
    p.add_argument("--out", type=Path, help="calibration file to write (default: calibration/DEVICE.yaml)")
    p.add_argument("--robot", help="an exoskeleton's robot (g1, franka): writes its arm's joint limits into the file")
    p.add_argument("--zero-pose", choices=("zero", "home"), default="zero",
                   help="exoskeleton: the pose held first: all joints at 0, or the robot's home pose (needs --robot; "
                   "use it when 0 is outside a joint's range, as for the Franka's joint 4)")
    p.add_argument("--seconds", type=arg_number(gt=0, le=600), default=3.0, help="recording time per step (default: 3)")
    p.add_argument("--n", type=arg_number(int, ge=1, le=64), metavar="COUNT",
                   help="joints (exoskeleton), channels (glove) or axes (pedal) of the device (default: 7, 15, 4)")
    p.set_defaults(run=run_calibrate)

    p = sub.add_parser(
        "run", help="drive a MuJoCo robot live from the devices; record episodes",
        description="Drive a robot from the cockpit's devices. Record with the pedal's buttons (0 start/stop, "
        "1 save as success, 2 discard) or the keys r, s, d; q quits. A viewer opens when a display exists. "
        "SIGTERM, or SIGHUP (the terminal closing), ends the session like q: saves in progress finish and an "
        "episode being recorded is saved, marked interrupted; the exit status is then 128 + the signal's number.",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="session config overrides, e.g. record.fps=15 command_poll_s=0.001 viewer=off")
    p.add_argument("--robot", default=None, help="robot to drive: g1 or franka (default: the config's, g1)")
    p.add_argument("--base", choices=("walking", "kinematic", "fixed"),
                   help="how the robot's base moves (base): walking on its legs (the G1's default), kinematic "
                   "(the pelvis glides and squats with the pedal) or fixed")
    p.add_argument("--devices", nargs="+", metavar="NAME=PORT", default=[],
                   help=f"devices and their ports; names: {', '.join(DEVICE_NAMES)}")
    p.add_argument("--simulated", action="store_true",
                   help="spawn simulated devices on ptys for every arm, hand (and the pedal, for a walking robot)")
    p.add_argument("--calibration", nargs="+", metavar="NAME=FILE", default=[], help="calibration file per device")
    p.add_argument("--calibration-dir", type=Path, metavar="DIR",
                   help="use DIR/NAME.yaml as the calibration of each device that has one")
    p.add_argument("--config", type=Path, help="session YAML (roboreward.teleop.session.SessionConfig)")
    p.add_argument("--record", type=Path, metavar="DIR", help="dataset folder to record episodes into")
    p.add_argument("--task", help="what the recorded episodes show, in words")
    p.add_argument("--fps", type=arg_number(int, ge=1, le=240), help="recorded frames per second (default: 30)")
    p.add_argument("--cameras", nargs="+", metavar="CAMERA", help="cameras to record (default: all of the robot's)")
    p.add_argument("--size", nargs=2, type=arg_number(int, ge=2, le=4096), metavar=("WIDTH", "HEIGHT"), help="camera frame size (default: 128 96)")
    p.add_argument("--viewer", choices=("auto", "on", "off"), help="MuJoCo viewer window (default: auto)")
    p.add_argument("--duration", type=arg_number(gt=0), metavar="SECONDS", help="stop after this long (default: until q)")
    p.add_argument("--sink", metavar="TYPE",
                   help="where commands go (sink.type): sim (the MuJoCo robot here; default) or ros2 (a ROS 2 robot)")
    p.add_argument("--ros-robot", metavar="ROBOT",
                   help="--sink ros2: the robot file (sink.robot), a name in configs/robots (franka) or a YAML path; "
                   "implies --sink ros2")
    p.add_argument("--domain-id", type=arg_number(int, ge=0, le=232),
                   help="--sink ros2: ROS_DOMAIN_ID (sink.domain_id), 0..232 (default: the environment's)")
    p.add_argument("--discovery", choices=["localhost", "subnet"],
                   help="--sink ros2: DDS discovery range (sink.discovery): localhost (default, this machine only) "
                   "or subnet (the LAN)")
    p.add_argument("--realtime", type=arg_number(int, ge=1, le=99), metavar="PRIO",
                   help="run the device readers and the command thread at this SCHED_FIFO priority (1-99; needs "
                   "CAP_SYS_NICE): keeps latency low on a busy machine")
    p.set_defaults(run=run_session)

    p = sub.add_parser(
        "replay", help="replay a recorded episode in simulation and report tracking error",
        description="Replay the recorded commands of an episode on the simulated robot it was recorded with and "
        "compare the replayed joint trajectories with the recorded ones.",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET", help="a dataset recorded by `roboreward teleop run`")
    p.add_argument("--episode", type=arg_number(int, ge=0), nargs="+", help="episodes to replay (default: all)")
    p.add_argument("--fail-above", type=arg_number(ge=0), metavar="RAD",
                   help="exit with status 1 if any episode's RMS joint error exceeds this")
    p.set_defaults(run=run_replay)
    return teleop


# --------------------------------------------------------------------------------------------
# Handlers (heavy imports inside)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"{what} {item!r} must look like NAME=VALUE, e.g. exo_left=/dev/ttyUSB0")
        if name not in DEVICE_NAMES:
            raise ConfigError(f"{what} {item!r}: unknown device {name!r}; use one of {list(DEVICE_NAMES)}")
        if name in out:
            raise ConfigError(f"{what}: {name!r} is given twice")
        out[name] = value
    return out


def run_calibrate(args: argparse.Namespace) -> int:
    from roboreward.teleop.calibrate import CalibrationAborted, run_guided_calibration
    from roboreward.teleop.cockpit import device_config, parse_device_name

    kind, side = parse_device_name(args.device)
    count_field = {"exo": "n_joints", "glove": "n_channels", "pedal": "n_axes"}[kind]
    fields = {count_field: args.n} if args.n is not None else {}
    config = device_config(args.device, args.port, **fields)
    out = args.out or Path("calibration") / f"{args.device}.yaml"
    extra: dict = {}
    if args.zero_pose == "home" and (kind != "exo" or not args.robot):
        raise ConfigError("--zero-pose home is for an exoskeleton and needs --robot (the robot's home pose)")
    if kind == "exo" and args.robot:
        from roboreward.teleop.robots import make_teleop_robot

        robot = make_teleop_robot(args.robot)
        try:
            if side not in robot.arm_joints:
                raise ConfigError(f"{robot.name} has no {side} arm; its arms: {sorted(robot.arm_joints)}")
            extra["joint_limits"] = robot.arm_limits(side)
            if args.zero_pose == "home":
                index = {n: i for i, n in enumerate(robot.joint_names)}
                extra["arm_zero_pose"] = [float(robot.targets[index[n]]) for n in robot.arm_joints[side]]
        finally:
            robot.close()
    try:
        run_guided_calibration(config, out, seconds=args.seconds, **extra)
    except CalibrationAborted:
        print("calibration stopped; nothing saved")
        return 1
    return 0


# Simulated devices send from threads of the session's own process, so a busy machine delays them as
# much as it delays the readers; a longer silence before "unplugged" keeps the demo from stuttering.
SIMULATED_STALE_AFTER_S = 0.25


def _session_config(args: argparse.Namespace, robot_name: str | None, ports: dict[str, str]):
    """The SessionConfig from --config, the flags and the overrides; ``ports`` are the devices' ports."""
    from roboreward.config import apply_override, from_dict, read_yaml
    from roboreward.errors import ConfigError
    from roboreward.teleop.cockpit import device_config
    from roboreward.teleop.session import SessionConfig

    data: dict = {}
    if args.config is not None:
        data = read_yaml(args.config, "session config") or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{args.config}: the top level must be a mapping of keys to values")
    if robot_name is not None:
        data["robot"] = robot_name
    devices = data.setdefault("devices", {}) or {}
    data["devices"] = devices
    calibrations = _pairs(args.calibration, "--calibration")
    for name in ports:
        if args.calibration_dir is not None and (args.calibration_dir / f"{name}.yaml").is_file():
            calibrations.setdefault(name, str(args.calibration_dir / f"{name}.yaml"))
    for name, port in ports.items():
        base = device_config(name, port)
        entry = {"type": base.type_name, "port": port, **({"side": base.side} if hasattr(base, "side") else {})}
        if args.simulated:
            entry["stale_after_s"] = SIMULATED_STALE_AFTER_S
        if args.realtime is not None:
            entry["realtime_priority"] = args.realtime
        entry.update(devices.get(name) or {})
        entry["port"] = port
        devices[name] = entry
    unused = sorted(set(calibrations) - set(devices))
    if unused and devices:
        raise ConfigError(f"--calibration names {unused}, which are not among the devices {sorted(devices)}")
    for name, path in calibrations.items():
        if name not in devices:
            continue
        if not Path(path).is_file():
            raise ConfigError(f"calibration file {path!r} for {name} does not exist")
        devices[name]["calibration"] = str(path)
    record = data.setdefault("record", {}) or {}
    data["record"] = record
    if args.record is not None:
        record["root"] = str(args.record)
    for key, value in (("task", args.task), ("fps", args.fps), ("cameras", args.cameras)):
        if value is not None:
            record[key] = value
    if args.size is not None:
        record["width"], record["height"] = args.size
    if args.viewer is not None:
        data["viewer"] = args.viewer
    if args.base is not None:
        data["base"] = args.base
    if args.realtime is not None:
        data["command_realtime_priority"] = args.realtime
    _sink_flags(args, data, SessionConfig().sink.type_name)
    for override in args.overrides:
        apply_override(data, override)
    return from_dict(SessionConfig, data)


# The flags that set keys of the ROS 2 sink's section: flag -> key.
_ROS_FLAGS = {"ros_robot": "robot", "domain_id": "domain_id", "discovery": "discovery"}


def _sink_flags(args: argparse.Namespace, data: dict, default_type: str) -> None:
    """Set the ``sink:`` section of the session config ``data`` from --sink and the ROS 2 flags.

    A ROS 2 flag implies ``type: ros2`` unless --sink or the file names another type, which is an error;
    a type other than the file's starts the section afresh (the file's keys are another sink's).
    """
    ros = {key: getattr(args, flag) for flag, key in _ROS_FLAGS.items() if getattr(args, flag) is not None}
    if args.sink is None and not ros:
        return
    sink = data.get("sink") or {}
    if not isinstance(sink, dict):
        return  # from_dict names the malformed section
    file_type = sink.get("type", default_type)
    kind = args.sink or ("ros2" if ros and "type" not in sink else file_type)
    if ros and kind != "ros2":
        flags = ", ".join("--" + flag.replace("_", "-") for flag, key in _ROS_FLAGS.items() if key in ros)
        raise ConfigError(f"{flags}: options of --sink ros2, but the sink is {kind!r}")
    data["sink"] = {**(sink if kind == file_type else {}), **ros, "type": kind}


def _reclaim_overrides(args: argparse.Namespace) -> None:
    """``--devices a=/dev/x record.fps=15``: argparse hands trailing overrides to the list option; take them back."""
    import dataclasses

    from roboreward.teleop.session import SessionConfig

    fields = {f.name for f in dataclasses.fields(SessionConfig)}
    for option in ("devices", "calibration", "cameras"):
        items = getattr(args, option) or []
        keep = []
        for item in items:
            key, sep, _ = item.partition("=")
            if sep and ("." in key or key in fields):
                args.overrides.append(item)
            else:
                keep.append(item)
        setattr(args, option, keep if keep or option != "cameras" else None)


# What ending the session on each signal is called in the episode's ``reason`` and on screen.
_SIGNAL_REASONS = {
    "SIGTERM": "the session was asked to stop (SIGTERM)",
    "SIGHUP": "the terminal hung up (SIGHUP)",
}


def run_session(args: argparse.Namespace) -> int:
    import os
    import signal
    import sys

    _reclaim_overrides(args)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from roboreward.signals import on_signals
    from roboreward.teleop.cockpit import simulated_cockpit
    from roboreward.teleop.console import Console, point_at_devnull
    from roboreward.teleop.session import TeleopSession

    if args.simulated == bool(args.devices):
        raise ConfigError("give the devices (--devices exo_left=/dev/ttyUSB0 ...) or --simulated, one of the two")
    ports = _pairs(args.devices, "--devices")
    sims: dict = {}
    robot = None
    # Validate everything that needs no robot before building one (seconds for the G1).
    config = _session_config(args, args.robot, ports)
    from roboreward.teleop.robots import make_teleop_robot

    rec = config.record
    robot = make_teleop_robot(config.robot, cameras=rec.cameras or None, size=(rec.width, rec.height),
                              overrides=config.robot_overrides())
    session = None
    console = Console()
    terminals = [fd for fd in (1, 2) if os.isatty(fd)]
    received: list[signal.Signals] = []

    def end_on_signal(sig: signal.Signals) -> None:
        # Like 'q': the main loop ends at its next turn, saves already asked for finish and the episode in
        # progress is saved. A second signal changes nothing, so it cannot cut a save short either.
        if sig == signal.SIGHUP:
            point_at_devnull(terminals)
        received.append(sig)
        if session is None:  # still setting up: nothing recorded yet
            raise KeyboardInterrupt
        session.end(_SIGNAL_REASONS[sig.name])

    try:
        with on_signals(end_on_signal, (signal.SIGTERM, signal.SIGHUP)):
            if args.simulated:
                sims = simulated_cockpit(robot)
                for sim in sims.values():
                    sim.start()
                ports = {name: sim.port for name, sim in sims.items()}
                console.print(f"simulated devices: {', '.join(f'{n}={p}' for n, p in ports.items())}")
            config = _session_config(args, args.robot, ports)
            session = TeleopSession(config, robot=robot, console=console)
            console.print(f"driving {robot.name} with {', '.join(config.devices)}"
                          + (f"; recording into {rec.root}" if config.record.root
                             else "; not recording (--record DIR)"))
            try:
                with session:
                    session.run(duration=args.duration)
            finally:
                if session._started:
                    console.print(session.stats().format())
    finally:
        for sim in sims.values():
            sim.stop()
        if session is not None and session.saves_interrupted:
            # A Ctrl-C gave up the saves: what was saved is on disk and the lost episode is listed. The recording
            # thread may still be inside a frame with its GL contexts (abandoned), and even once it has ended, an
            # orderly interpreter exit after an interrupted GL job has crashed in EGL's teardown (SIGSEGV, seen
            # in CI). End the process as Ctrl-C asked, closing the robot first unless a thread may still use it.
            if not session.abandoned:
                robot.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        robot.close()
    return 128 + received[0] if received else 0


def run_replay(args: argparse.Namespace) -> int:
    from roboreward.teleop.replay import replay_dataset

    results = replay_dataset(args.dataset, episodes=args.episode)
    for result in results:
        print(result.format())
    if args.fail_above is not None:
        worst = max(r.rms for r in results)
        if worst > args.fail_above:
            print(f"RMS joint error {worst:.4f} rad exceeds --fail-above {args.fail_above}")
            return 1
    return 0
