"""The ``roboreward`` command: every part's subcommands are there, and starting it stays light."""

import subprocess
import sys

from roboreward.cli import main


def test_every_part_adds_its_subcommands(capsys):
    try:
        main(["--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for command in ("train", "eval", "envs", "demos", "rewards", "sim-robot", "deploy", "export", "record", "teleop"):
        assert f"    {command}" in out, f"`roboreward {command}` is missing from --help:\n{out}"


def test_the_cli_does_not_import_torch_or_rclpy_until_a_command_needs_them():
    # `roboreward sim-robot` and `roboreward teleop run` must start in a moment; torch alone takes seconds.
    heavy = "('torch', 'rclpy', 'mujoco', 'open_clip')"
    code = f"import sys, roboreward.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing roboreward.cli imported {out}"


def test_reward_types_resolve_without_importing_the_package_first():
    code = (
        "from roboreward.config import from_dict; from roboreward.rewards.base import RewardConfig; "
        "print(type(from_dict(RewardConfig, {'type': 'clip', 'goal_prompts': ['a robot'], 'alpha': 0})).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "ClipRewardConfig"
