"""The ``roboreward`` command.

Examples::

    roboreward train                                   # the embedded default job (roboreward/default_job.yaml)
    roboreward train configs/arm_reach.yaml train.total_timesteps=5000 env.n_envs=2
    roboreward train --resume runs/arm_reach_goal_image-20261126-231500
    roboreward eval runs/arm_reach_goal_image-20261126-231500 --episodes 50
    roboreward envs

Subcommands of the parts live with them: ``demos`` in :mod:`roboreward.datasets.cli`, ``rewards`` in
:mod:`roboreward.rewards.cli`, the ROS 2 bridge's ``sim-robot``/``deploy``/``export``/``record`` in
:mod:`roboreward.hardware.cli`, ``teleop`` in :mod:`roboreward.teleop.cli`. Each such module imports only
argparse at the top and exposes ``add_parsers(subparsers)``; every parser it adds sets ``run=`` (a function
``args -> exit code``) with ``set_defaults``, so this module dispatches them all the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import importlib

from roboreward.config import ConfigError, arg_number
from roboreward.errors import RoborewardError

# Modules that add their own subcommands (see the module docstring).
COMMAND_MODULES = (
    "roboreward.datasets.cli",
    "roboreward.rewards.cli",
    "roboreward.hardware.cli",
    "roboreward.teleop.cli",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roboreward", description="Robot RL with learned rewards.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a policy from an experiment config", description="Train a policy.")
    p.add_argument("config", nargs="?", help="experiment YAML (default: the embedded default job)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.total_timesteps=5000")
    p.add_argument("--run-dir", type=Path, help="folder for this run (default: RUNS_DIR/NAME-TIME)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its newest checkpoint")

    p = sub.add_parser("eval", help="evaluate a run: metrics.json, video, reward plot", description="Evaluate a run.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=arg_number(int, ge=1), help="episodes to run (default: the config's eval.episodes)")
    p.add_argument("--checkpoint", help="a checkpoint folder name or path (default: the final model)")
    p.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/eval)")
    p.add_argument("--no-video", action="store_true", help="skip the video")

    sub.add_parser("envs", help="list registered envs with their spaces and reward options")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parsers(sub)

    args = parse_args(parser, argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            from roboreward.policies.evaluate import evaluate

            evaluate(args.run_dir, episodes=args.episodes, checkpoint=args.checkpoint, out_dir=args.out,
                     video=False if args.no_video else None)
            return 0
        if args.command == "envs":
            from roboreward.envs.catalogue import print_envs

            print_envs()
            return 0
        if hasattr(args, "run"):
            return int(args.run(args))
    except (RoborewardError, FileExistsError, ValueError) as e:
        print(f"roboreward {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        # A path the user gave that cannot be used: one line naming it, not a traceback.
        where = f": {e.filename}" if e.filename else ""
        print(f"roboreward {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that ``key=value`` overrides may also follow the options.

    argparse fills a command's ``overrides`` positional only before its first option, so
    ``deploy RUN --robot franka control.rate_hz=200`` would be refused; the overrides after the options
    are added to the ones before.
    """
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if extra and (overrides != extra or not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.overrides = [*(args.overrides or []), *overrides]
    return args


def _train(args: argparse.Namespace) -> int:
    from roboreward.policies.train import resume, train

    if args.resume is not None:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its saved config; give no config file or overrides with it")
        resume(args.resume)
        return 0
    overrides = list(args.overrides)
    if args.config and "=" in args.config:  # `roboreward train key=value` with the default config
        overrides.insert(0, args.config)
        args.config = None
    config = _default_config(overrides) if args.config is None else _load(args.config, overrides)
    train(config, args.run_dir)
    return 0


def _load(path: str, overrides: list[str]):
    from roboreward.config import load_config

    return load_config(path, overrides)


def _default_config(overrides: list[str]):
    from roboreward.experiment import DEFAULT_JOB

    return _load(str(DEFAULT_JOB), overrides)


if __name__ == "__main__":
    sys.exit(main())
