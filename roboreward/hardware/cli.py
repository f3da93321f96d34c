"""``roboreward`` subcommands of the ROS 2 bridge (see :mod:`roboreward.cli`): ``sim-robot``,
``deploy``, ``export`` and ``record``. Only argparse and the config
module are imported here; rclpy, MuJoCo and torch load when a command runs.
"""

from __future__ import annotations

import argparse

from roboreward.config import arg_number


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the bridge's subcommands; each sets ``run=`` to its handler."""
    _add_sim_robot(subparsers)
    _add_deploy(subparsers)
    _add_export(subparsers)
    _add_record(subparsers)


def _add_sim_robot(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward sim-robot ROBOT``."""
    p = subparsers.add_parser(
        "sim-robot",
        help="run a MuJoCo simulation of a robot behind its ROS 2 topics",
        description="Simulate ROBOT in MuJoCo and publish it as a ROS 2 robot: subscribe its command topic, publish "
        "its state topics (and camera) at their rates. Stops on Ctrl-C, SIGTERM or --duration.",
    )
    p.add_argument("robot", help="a robot in configs/robots (franka, g1, diff_drive) or a robot YAML path")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the robot file, e.g. control.rate_hz=200; "
                   "with --crowd, crowd.KEY=VALUE set the crowd (crowd.scenario.n_humans=10)")
    p.add_argument("--crowd", metavar="SCENARIO", default=None,
                   help="put the base (diff_drive) in a crowd: a scenario (circle_crossing, square_crossing, corridor, "
                   "doorway, room), or a crowd run folder / experiment YAML whose crowd to use; publishes /scan, "
                   "/people, /goal_pose and /crowd/event too")
    p.add_argument("--seed", type=arg_number(int, ge=0, le=2**31 - 1), default=0,
                   help="--crowd: episode k is seeded seed + k (default 0)")
    p.add_argument("--sensor-rate", type=arg_number(gt=0, le=100), default=10.0,
                   help="--crowd: scan and people messages per second (default 10)")
    p.add_argument("--domain-id", type=arg_number(int, ge=0, le=232), default=None, help="ROS_DOMAIN_ID, 0..232 (default: the environment's)")
    p.add_argument(
        "--discovery",
        choices=["localhost", "subnet"],
        default="localhost",
        help="DDS discovery range: localhost (default, this machine only) or subnet (visible on the LAN)",
    )
    p.add_argument("--no-images", action="store_true", help="do not render or publish the camera topic")
    p.add_argument("--duration", type=arg_number(gt=0), default=None, help="stop after this many seconds (default: until stopped)")
    p.add_argument("--realtime-factor", type=arg_number(gt=0, le=1000), default=1.0, help="sim seconds per wall second (default 1)")
    p.add_argument("--realtime", type=arg_number(int, ge=1, le=99), default=None, metavar="PRIO",
                   help="run the tick loop and DDS's threads with SCHED_FIFO at this priority (1-99; needs "
                   "CAP_SYS_NICE; the render thread stays at normal priority)")

    def run(args: argparse.Namespace) -> int:
        from roboreward.hardware.robot import load_robot_config

        if args.crowd is not None:
            from roboreward.hardware.crowd_sim_robot import run_from_args as run_crowd

            return run_crowd(args)
        load_robot_config(args.robot, list(args.overrides))  # a bad robot file stops before rclpy and MuJoCo load
        from roboreward.hardware.sim_robot import run_from_args

        return run_from_args(args)

    p.set_defaults(run=run)


def _add_deploy(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward deploy RUN_DIR --robot ROBOT``."""
    p = subparsers.add_parser(
        "deploy", help="run a trained policy on a robot over ROS 2, behind a safety layer",
        description="Run the policy of RUN_DIR (its ONNX export or SB3 model) on ROBOT at the control rate, through a "
        "safety layer (limits, per-step change, NaN hold, watchdog, latching e-stop on /roboreward_deploy/estop, "
        "reset on /roboreward_deploy/reset). Stops on Ctrl-C, SIGTERM or --duration.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?",
                   help="a run folder, or an export folder holding policy.onnx (or give --locomotion)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="overrides of the deploy settings (rate_hz, stale_after_periods, diagnostics_hz, executor, "
                   "realtime_priority, safety.max_step, safety.velocity_scale, safety.position_margin, safety.on_stale; "
                   "the flags below are shorthands for them) or of the robot file (control.rate_hz=200, ...)")
    p.add_argument("--robot", required=True,
                   help="a robot in configs/robots (franka, g1, g1_walking, diff_drive) or a robot YAML")
    p.add_argument("--locomotion", metavar="POLICY",
                   help="run a walking policy instead of RUN_DIR: a name in configs/locomotion (g1_holosoma) or a YAML; "
                   "it walks on /cmd_vel and takes arm targets on /teleop/joint_targets (locomotion.* keys)")
    p.add_argument("--policy", choices=["auto", "onnx", "sb3"], default="auto",
                   help="auto (default): the ONNX export when it is up to date with the model, else SB3")
    p.add_argument("--checkpoint", help="an SB3 checkpoint folder name or path (default: the final model)")
    p.add_argument("--domain-id", type=arg_number(int, ge=0, le=232), default=None, help="ROS_DOMAIN_ID, 0..232 (default: the environment's)")
    p.add_argument("--discovery", choices=["localhost", "subnet"], default="localhost",
                   help="DDS discovery range: localhost (default, this machine only) or subnet (a robot on the LAN)")
    p.add_argument("--duration", type=arg_number(gt=0), default=None, help="stop after this many seconds (default: until stopped)")
    p.add_argument("--rate-hz", type=arg_number(gt=0, le=2000), default=None, help="control rate (default: the robot's control.rate_hz)")
    p.add_argument("--stale-after-periods", type=arg_number(gt=0, le=1000), default=None,
                   help="control periods without joint state before the watchdog acts (default: the robot's)")
    p.add_argument("--on-stale", choices=["hold", "stop"], default=None,
                   help="hold (default): hold while state is stale, resume when it returns; stop: latch the e-stop")
    p.add_argument("--max-step", type=arg_number(gt=0), default=None, help="largest change of a command per control step")
    p.add_argument("--velocity-scale", type=arg_number(gt=0, le=1), default=None, help="fraction of the velocity limits to use (0, 1]")
    p.add_argument("--position-margin", type=arg_number(ge=0), default=None, help="keep targets this far inside the position limits")
    p.add_argument("--stats", default=None, metavar="FILE", help="write the run's summary (timing, counters) as JSON")
    p.add_argument("--realtime", type=arg_number(int, ge=1, le=99), default=None, metavar="PRIO",
                   help="run the loop threads with SCHED_FIFO at this priority (1-99; needs CAP_SYS_NICE)")
    p.add_argument("--executor", choices=["events", "single"], default=None,
                   help="rclpy executor: events (default; C++ dispatch) or single (SingleThreadedExecutor)")
    p.add_argument("--timings", default=None, metavar="FILE.npz",
                   help="write each command's state arrival and publish time (for benchmarks/deploy_loop.py)")

    def run(args: argparse.Namespace) -> int:
        from roboreward.hardware.deploy import run_from_args

        return run_from_args(args)

    p.set_defaults(run=run)


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward export RUN_DIR``."""
    from pathlib import Path

    p = subparsers.add_parser(
        "export", help="export a run's deterministic policy to ONNX (RUN_DIR/export/policy.onnx + policy.json)",
        description="Export the deterministic policy of a run to ONNX, checked against SB3's predict.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--checkpoint", help="a checkpoint folder name or path (default: the final model)")
    p.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/export)")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from roboreward.policies.export import export_policy

    path = export_policy(args.run_dir, checkpoint=args.checkpoint, out_dir=args.out)
    print(f"exported {args.run_dir} -> {path}")
    return 0


def _add_record(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward record --robot ROBOT``."""
    p = subparsers.add_parser(
        "record", help="record a robot's state, commands and camera from ROS 2 as a LeRobot v3 dataset",
        description="Record ROBOT over ROS 2 into a demonstration dataset (LeRobot v3.0 layout): one frame per "
        "command on its command topic, with the state it answered and the newest camera frame. Appends to an "
        "existing dataset recorded the same way. Stops after --episodes, --duration, Ctrl-C or SIGTERM.",
    )
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the robot file, e.g. state.image.width=64")
    p.add_argument("--robot", required=True, help="a robot in configs/robots (franka, g1, diff_drive) or a robot YAML")
    p.add_argument("--out", required=True, help="dataset folder (created, or appended to)")
    p.add_argument("--task", default=None, help="what the episodes show, in words (default: 'ROBOT: recorded from ROS 2')")
    p.add_argument("--episodes", type=arg_number(int, ge=1), default=None, help="stop after this many episodes (default: until stopped)")
    p.add_argument("--episode-seconds", type=arg_number(gt=0, le=86400), default=30.0, help="longest episode, seconds (default 30)")
    p.add_argument("--idle-seconds", type=arg_number(gt=0, le=3600), default=1.0,
                   help="an episode also ends when commands pause this long (default 1)")
    p.add_argument("--duration", type=arg_number(gt=0), default=None, help="stop after this many seconds (default: until stopped)")
    p.add_argument("--domain-id", type=arg_number(int, ge=0, le=232), default=None, help="ROS_DOMAIN_ID, 0..232 (default: the environment's)")
    p.add_argument("--discovery", choices=["localhost", "subnet"], default="localhost",
                   help="DDS discovery range: localhost (default, this machine only) or subnet (a robot on the LAN)")

    def run(args: argparse.Namespace) -> int:
        from roboreward.hardware.record import run_from_args

        return run_from_args(args)

    p.set_defaults(run=run)
