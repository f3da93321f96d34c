"""``roboreward`` subcommands of this part (see :mod:`roboreward.cli`). Only argparse is imported here."""

from __future__ import annotations

import argparse


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add this part's subcommands; each sets ``run=`` to its handler."""
