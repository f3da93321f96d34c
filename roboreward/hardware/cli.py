"""``roboreward`` subcommands of the ROS 2 bridge (see :mod:`roboreward.cli`): ``sim-robot``,
``deploy``, ``export`` and ``record``. Only argparse is imported here; rclpy, MuJoCo and torch load
when a command runs.
"""

from __future__ import annotations

import argparse


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add the bridge's subcommands; each sets ``run=`` to its handler."""
    _add_sim_robot(subparsers)
    _add_deploy(subparsers)
    _add_export(subparsers)
    _add_record(subparsers)


def _add_sim_robot(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward sim-robot ROBOT``."""


def _add_deploy(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward deploy RUN_DIR --robot ROBOT``."""


def _add_export(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward export RUN_DIR``."""


def _add_record(subparsers: argparse._SubParsersAction) -> None:
    """``roboreward record --robot ROBOT``."""
