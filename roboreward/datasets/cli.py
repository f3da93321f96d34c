"""``roboreward demos``: record demonstration datasets (LeRobot v3.0 layout) and check them.

Examples::

    roboreward demos record reach --episodes 20 --cameras corner3 topview --out demos/reach
    roboreward demos record door-open --episodes 50 --out demos/door --size 128 --seed 100
    roboreward demos record reach --episodes 20 --cameras corner3 topview --out demos/reach   # appends 20 more
    roboreward demos verify demos/reach            # every file against its checksum; exit status 2 on a problem
    roboreward demos verify demos/reach --decode   # and decode every frame

Only argparse and the config module are imported here; the recording code (MuJoCo, pyarrow) loads when the
command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from roboreward.config import arg_number

# Kept in sync with roboreward.envs.METAWORLD_ENV_IDS by tests; listed here so --help needs no MuJoCo.
TASK_NAMES = ["reach", "push", "door-open", "drawer-open", "button-press", "pick-place"]


def add_parsers(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``demos`` (with its ``record`` and ``verify`` subcommands) to the ``roboreward`` command."""
    demos = subparsers.add_parser(
        "demos", help="record demonstration datasets (LeRobot v3.0)", description="Demonstration datasets."
    )
    sub = demos.add_subparsers(dest="demos_command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser(
        "record",
        help="record a scripted expert (Meta-World's, or ORCA in the crowd) into a dataset",
        description="Roll out a scripted expert (Meta-World's per task; ORCA as the robot for crowd) and write each "
        "rollout as an episode of a LeRobot v3.0 dataset (appends when --out already holds one). A kill loses at "
        "most the episode in progress.",
    )
    p.add_argument("task", metavar="TASK",
                   help=f"one of {', '.join(TASK_NAMES)}, crowd, or a roboreward/MetaWorld-*-v3 env id")
    p.add_argument("--episodes", type=arg_number(int, ge=1, le=1_000_000), default=10, help="rollouts to record (default: 10)")
    p.add_argument("--cameras", nargs="+", default=None, metavar="CAMERA",
                   help="cameras to render each step (Meta-World: corner3 (default), corner, corner2, corner4, "
                   "topview, behindGripper, gripperPOV; crowd: topdown)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", dest="env_overrides",
                   help="the env's configuration, repeatable, e.g. --env scenario.name=room --env humans.react_to_robot=0")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="dataset folder (new, or a dataset to append to)")
    p.add_argument("--size", type=arg_number(int, ge=2, le=4096), default=96, help="frame width and height in pixels, even (default: 96)")
    p.add_argument("--seed", type=arg_number(int, ge=0, le=2**31 - 1), default=0, help="episode i of the dataset resets with SEED + i (default: 0)")
    p.add_argument("--max-steps", type=arg_number(int, ge=1), help="cut episodes after this many steps (default: the env's 200)")
    p.add_argument("--task-text", help="the episodes' task description (default: a sentence per task)")
    p.set_defaults(run=run_demos)

    p = sub.add_parser(
        "verify",
        help="check a dataset: every file against its checksum, the metadata against itself",
        description="Check a dataset without changing it: meta/info.json and meta/ agree, every file of every "
        "committed episode exists and matches the SHA-256 its episode row records, and no file or row is there "
        "that LeRobot would load but no episode accounts for. Prints one line per problem and a summary; exit "
        "status 0 when the dataset is sound, 2 otherwise.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the dataset folder")
    p.add_argument("--decode", action="store_true",
                   help="also read every episode's data and decode every video frame (slower)")
    p.set_defaults(run=run_demos)
    return demos


def env_kwargs(overrides: list[str]) -> dict:
    """``--env a.b=value`` options as the env's nested keyword arguments (values read as YAML)."""
    from roboreward.config import apply_override

    kwargs: dict = {}
    for override in overrides:
        apply_override(kwargs, override)
    return kwargs


def run_demos(args: argparse.Namespace) -> int:
    """Run a parsed ``roboreward demos ...`` command; errors are ValueErrors for the CLI to print."""
    if args.demos_command == "record":
        from roboreward.datasets.record import record_scripted_demos

        summary = record_scripted_demos(
            args.task,
            args.out,
            episodes=args.episodes,
            cameras=args.cameras,
            width=args.size,
            height=args.size,
            seed=args.seed,
            max_steps=args.max_steps,
            task=args.task_text,
            env_kwargs=env_kwargs(args.env_overrides),
        )
        print(
            f"recorded {len(summary.episodes)} episodes of {summary.env_id} ({summary.frames} frames, success "
            f"{summary.successes}/{len(summary.episodes)}): {summary.out_dir} now holds "
            f"{summary.total_episodes} episodes"
        )
        return 0
    if args.demos_command == "verify":
        from roboreward.datasets.lerobot_v3 import verify_dataset

        report = verify_dataset(args.dir, decode=args.decode)
        for problem in report.problems:
            print(f"problem: {problem}")
        for note in report.notes:
            print(f"note: {note}")
        print(report.summary())
        return 0 if report.ok else 2
    raise ValueError(f"unknown demos subcommand {args.demos_command!r}")
