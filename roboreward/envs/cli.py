"""``roboreward envs``: the registered envs, their spaces and reward options (see :mod:`roboreward.cli`)."""

from __future__ import annotations

import argparse


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("envs", help="list registered envs with their spaces and reward options")
    p.set_defaults(run=run_envs)


def run_envs(args: argparse.Namespace) -> int:  # noqa: ARG001
    from roboreward.envs.catalogue import print_envs

    print_envs()
    return 0
