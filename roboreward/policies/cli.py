"""``roboreward train`` and ``roboreward eval`` (see :mod:`roboreward.cli`).

Examples::

    roboreward train                                   # the embedded default job (default_job)
    roboreward train arm_reach train.total_timesteps=5000 env.n_envs=2      # a shipped experiment by name
    roboreward train my_experiment.yaml --run-dir runs/mine
    roboreward train --resume runs/arm_reach_goal_image-20261126-231500
    roboreward eval runs/arm_reach_goal_image-20261126-231500 --episodes 50

Only argparse and the config module are imported here; torch, SB3 and MuJoCo load when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from roboreward.config import arg_number, shipped_names
from roboreward.errors import ConfigError


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``eval``; each sets ``run=`` to its handler."""
    p = subparsers.add_parser("train", help="train a policy from an experiment config", description="Train a policy.")
    p.add_argument("config", nargs="?",
                   help=f"an experiment YAML, or a shipped one by name ({', '.join(shipped_names('experiment'))}); "
                   "default: default_job")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.total_timesteps=5000")
    p.add_argument("--run-dir", type=Path, help="folder for this run (default: RUNS_DIR/NAME-TIME)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run from its newest checkpoint")
    p.add_argument("--ray-address", metavar="ADDRESS",
                   help="the Ray cluster of env.backend: ray / reward.server: ray: auto or HOST:PORT "
                   "(default: the config's ray.address; none starts Ray on this machine)")
    p.set_defaults(run=run_train)

    p = subparsers.add_parser("eval", help="evaluate a run: metrics.json, video, reward plot", description="Evaluate a run.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=arg_number(int, ge=1), help="episodes to run (default: the config's eval.episodes)")
    p.add_argument("--checkpoint", help="a checkpoint folder name or path (default: the final model)")
    p.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/eval)")
    p.add_argument("--no-video", action="store_true", help="skip the video")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="change the run's config for this evaluation only, e.g. env.kwargs.scenario.n_humans=30")
    p.set_defaults(run=run_eval)


def run_train(args: argparse.Namespace) -> int:
    from roboreward.experiment import DEFAULT_JOB, load_experiment
    from roboreward.policies.train import resume, train

    if args.resume is not None:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its saved config; give no config file or overrides with it")
        resume(args.resume, ray_address=args.ray_address)
        return 0
    overrides = list(args.overrides)
    if args.config and "=" in args.config:  # `roboreward train key=value` with the default config
        overrides.insert(0, args.config)
        args.config = None
    if args.ray_address is not None:
        overrides.append(f"ray.address={args.ray_address}")
    train(load_experiment(args.config or DEFAULT_JOB, overrides), args.run_dir)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from roboreward.policies.evaluate import evaluate

    evaluate(args.run_dir, episodes=args.episodes, checkpoint=args.checkpoint, out_dir=args.out, overrides=args.overrides,
             video=False if args.no_video else None)
    return 0
