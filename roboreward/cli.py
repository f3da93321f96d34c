"""The ``roboreward`` command.

Examples::

    roboreward train                                   # the embedded default job (default_job)
    roboreward train arm_reach train.total_timesteps=5000 env.n_envs=2
    roboreward eval runs/arm_reach_goal_image-20261126-231500 --episodes 50
    roboreward deploy runs/franka_reach-20261201-101500 --robot franka control.rate_hz=100
    roboreward envs

Every subcommand lives with its part: ``train``/``eval`` in :mod:`roboreward.policies.cli`, ``envs`` in
:mod:`roboreward.envs.cli`, ``demos`` in :mod:`roboreward.datasets.cli`, ``rewards`` in
:mod:`roboreward.rewards.cli`, the ROS 2 bridge's ``sim-robot``/``deploy``/``export``/``record`` in
:mod:`roboreward.hardware.cli`, ``teleop`` in :mod:`roboreward.teleop.cli`. Each such module imports only
argparse and the config module at the top and exposes ``add_parsers(subparsers)``; every parser it adds
sets ``run=`` (a function ``args -> exit code``) with ``set_defaults``, so this module dispatches them
all the same way. A :class:`~roboreward.errors.RoborewardError` (a problem the user can fix) prints as
one line with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from roboreward.errors import RoborewardError

# The modules that add the subcommands, in --help's order (see the module docstring).
COMMAND_MODULES = (
    "roboreward.policies.cli",
    "roboreward.envs.cli",
    "roboreward.datasets.cli",
    "roboreward.rewards.cli",
    "roboreward.hardware.cli",
    "roboreward.teleop.cli",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="roboreward", description="Robot RL with learned rewards.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parsers(sub)
    args = parse_args(parser, argv)
    try:
        return int(args.run(args))
    except RoborewardError as e:  # the user's to fix, and the message says how; anything else is a bug
        print(f"roboreward {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


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


if __name__ == "__main__":
    sys.exit(main())
