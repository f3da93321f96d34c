"""The ``roboreward`` command: every part's subcommands are there, starting it stays light, arguments after the
options are read, and user errors are one line."""

import subprocess
import sys

import pytest

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


def test_overrides_may_follow_the_options(tmp_path, capsys):
    # A robot override after --robot reaches the robot file (and its NaN is refused, naming the key).
    assert main(["deploy", str(tmp_path), "--robot", "franka", "control.rate_hz=.nan"]) == 2
    assert "franka.yaml: control.rate_hz: nan is not a finite number" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # an unknown option is still refused
        main(["deploy", str(tmp_path), "--robot", "franka", "--bogus"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # as is an override on a command that takes none
        main(["envs", "train.seed=1"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "{tmp}/missing.yaml"], "experiment config '{tmp}/missing.yaml' does not exist"),
        (["train", "{tmp}"], "config file '{tmp}' is a folder, not a file"),
        (["eval", "{tmp}/none"], "is not a run folder"),
        (["sim-robot", "{tmp}/robot.yaml"], "robot file '{tmp}/robot.yaml' does not exist"),
    ],
)
def test_user_errors_are_one_line_with_status_2(tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_bad_numbers_on_the_command_line_name_the_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sim-robot", "franka", "--realtime-factor", "nan"])
    assert e.value.code == 2
    assert "argument --realtime-factor: nan is not a finite number" in capsys.readouterr().err


def test_a_bug_is_not_dressed_as_a_user_error(tmp_path):
    """Only a RoborewardError is a one-line user error (status 2); any other exception keeps its traceback
    and ends the command with status 1, as an uncaught exception does."""
    code = ("import sys, roboreward.cli as cli, roboreward.policies.cli as policies\n"
            "def broken(args): raise ValueError('an internal bug')\n"
            "policies.run_eval = broken\n"
            f"sys.exit(cli.main(['eval', {str(tmp_path)!r}]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 1
    assert "Traceback" in run.stderr and "ValueError: an internal bug" in run.stderr
    assert "error: an internal bug" not in run.stderr
