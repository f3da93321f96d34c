"""``roboreward rewards``: check a reward model against the truth before training on it.

Examples::

    roboreward rewards evaluate configs/perceptual_drawer_open.yaml --demos demos/drawer-open --rollouts random:10
    roboreward rewards evaluate runs/arm_reach_goal_image-20261126-231500 --demos demos/reach --no-video
    roboreward rewards evaluate configs/arm_reach.yaml reward.scale=5 --demos demos/reach --episodes 10 11 12 \\
        --rollouts demos/reach-failed --out reach_eval

CONFIG_OR_RUN_DIR is an experiment YAML or a run folder (its ``config.yaml``); its ``reward:`` section
builds the model, its ``env:`` section runs random rollouts, ``algo.hyperparams.gamma`` is the STARC
discount. The metrics are defined in :mod:`roboreward.rewards.diagnostics`.

Only argparse and the config module are imported here; the models, MuJoCo and matplotlib load when the
command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from roboreward.config import arg_number
from roboreward.errors import ConfigError
from roboreward.experiment import load_experiment

DEFAULT_ROLLOUTS = "random:5"


def add_parsers(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``rewards`` (with its ``evaluate`` subcommand) to the ``roboreward`` command."""
    rewards = subparsers.add_parser(
        "rewards", help="reward model diagnostics", description="Reward model diagnostics."
    )
    sub = rewards.add_subparsers(dest="rewards_command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser(
        "evaluate",
        help="score a reward model on held-out demos and rollouts: Spearman, VOC, success accuracy, STARC",
        description="Score the reward model of an experiment config (or of a run) on held-out demonstrations and "
        "on random or failed rollouts: Spearman correlation with true progress, value-order correlation (VOC), "
        "success/failure accuracy and ROC-AUC, and the STARC distance to the env's reward. Writes metrics.json, "
        "reward_vs_progress.png and rewards.mp4.",
    )
    p.add_argument("config", metavar="CONFIG_OR_RUN_DIR", help="an experiment YAML, or a run folder with config.yaml")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config, e.g. reward.scale=5")
    p.add_argument("--demos", type=Path, required=True, metavar="DATASET",
                   help="a LeRobot v3 dataset of demonstrations (e.g. from `roboreward demos record`)")
    p.add_argument("--episodes", type=arg_number(int, ge=0), nargs="+", metavar="I",
                   help="demo episodes to evaluate (default: every episode the reward model did not learn from)")
    p.add_argument("--rollouts", default=DEFAULT_ROLLOUTS, metavar="random:N|DATASET",
                   help=f"random:N episodes of uniform random actions in the config's env, a dataset of (failed) "
                   f"rollouts, or none (default: {DEFAULT_ROLLOUTS})")
    p.add_argument("--max-steps", type=arg_number(int, ge=1), help="cut random rollouts after this many steps (default: the env's limit)")
    p.add_argument("--camera", nargs="+", dest="cameras", metavar="CAMERA",
                   help="the dataset camera(s) the reward model sees, several tiled side by side (default: the reward "
                   "model's cameras, else the reward's or the env's camera, else the dataset's only one)")
    p.add_argument("--score", choices=["max", "final", "mean"], default="max",
                   help="episode score for success detection: max, final or mean learned reward (default: max)")
    p.add_argument("--gamma", type=arg_number(ge=0, le=1), help="STARC discount (default: the config's algo.hyperparams.gamma)")
    p.add_argument("--seed", type=arg_number(int, ge=0, le=2**32 - 1), help="seed of rollouts, folds and samples (default: the config's seed)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: RUN_DIR/reward_eval, or RUNS_DIR/NAME/reward_eval for a config file)")
    p.add_argument("--no-video", action="store_true", help="skip rewards.mp4")
    p.set_defaults(run=run_rewards)
    return rewards


def run_rewards(args: argparse.Namespace) -> int:
    """Run a parsed ``roboreward rewards ...`` command; errors are ValueErrors for the CLI to print."""
    if args.rewards_command == "evaluate":
        return _evaluate(args)
    raise ValueError(f"unknown rewards subcommand {args.rewards_command!r}")


def _load(config_arg: str, overrides: list[str]):
    """(config, run_dir or None) from a YAML file, a run folder, or overrides of the default job."""
    from roboreward.config import apply_override, from_dict
    from roboreward.errors import ConfigError
    from roboreward.experiment import ExperimentConfig
    from roboreward.policies.train import CONFIG_FILE

    path = Path(config_arg)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{path} is a folder without {CONFIG_FILE}; pass a run folder that `roboreward train` made, or an "
                "experiment YAML such as configs/arm_reach.yaml"
            )
        return load_experiment(path / CONFIG_FILE, overrides), path
    if path.is_file():
        return load_experiment(path, overrides), None
    if "=" in config_arg:  # `rewards evaluate reward.scale=5 --demos ...`: overrides of the default job
        data: dict = {}
        for override in [config_arg, *overrides]:
            apply_override(data, override)
        return from_dict(ExperimentConfig, data), None
    if "/" in config_arg or config_arg.endswith((".yaml", ".yml")):
        raise ConfigError(
            f"{config_arg!r} is neither an experiment YAML nor a run folder; pass e.g. configs/arm_reach.yaml, "
            "a shipped experiment's name such as arm_reach, or runs/NAME-TIME"
        )
    return load_experiment(config_arg, overrides), None  # a shipped experiment by name


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.rewards.base import EnvRewardConfig, make_reward_model
    from roboreward.rewards.diagnostics.episodes import choose_cameras, parse_rollouts, training_episodes
    from roboreward.rewards.diagnostics.evaluation import evaluate_reward_model

    config, run_dir = _load(args.config, list(args.overrides))
    if isinstance(config.reward, EnvRewardConfig):
        raise ConfigError(
            "reward.type is 'env': the env's own reward needs no diagnostics; evaluate a learned reward "
            "(reward.type=goal_image, perceptual, clip, ...)"
        )
    if config.train.torch_threads is not None:
        torch.set_num_threads(config.train.torch_threads)
    if not args.demos.is_dir():
        raise ConfigError(
            f"--demos {str(args.demos)!r} is not a dataset folder; record one first, e.g. `roboreward demos record "
            f"reach --episodes 10 --cameras corner3 --size 64 --out {args.demos}`"
        )
    # Check the inputs before building the model (fitting one can take minutes).
    plan = parse_rollouts(args.rollouts)
    hints = (getattr(config.reward, "camera", None), config.env.render.camera)
    views = getattr(config.reward, "cameras", None)  # a multi-view model's cameras, when its config names them
    required = list(views) if isinstance(views, (list, tuple)) else []
    demos = DatasetReader(args.demos)
    for reader in (demos, *([DatasetReader(plan[1])] if plan is not None and plan[0] == "dataset" else [])):
        if reader.cameras:
            choose_cameras(reader.cameras, args.cameras, required, hints, where=str(reader.root))
    unknown = sorted(set(args.episodes or []) - {e.index for e in demos.episodes})
    if unknown:
        raise ConfigError(f"--episodes {unknown} are not in {args.demos}; it has episodes 0..{len(demos) - 1}")
    gamma = args.gamma if args.gamma is not None else float(config.algo.hyperparams.get("gamma", 0.99))
    seed = config.seed if args.seed is None else args.seed
    out = args.out
    if out is None:
        out = (run_dir if run_dir is not None else Path(config.runs_dir) / config.name) / "reward_eval"

    # Hold out what the reward learned from: a model fitted on a demo scores it well for free.
    notes: list[str] = []
    trained_on = training_episodes(config.reward, args.demos)
    episodes = args.episodes
    held_out: bool | None = None if trained_on is None else True
    if trained_on is not None:
        if episodes is None:
            episodes = [e.index for e in demos.episodes if e.index not in trained_on]
            if not episodes:
                episodes, held_out = None, False
                notes.append(f"the reward model learned from every demo ({trained_on}); these scores are not held out")
        overlap = sorted(set(episodes or []) & set(trained_on))
        if overlap:
            held_out = False
            notes.append(f"demo episodes {overlap} are ones the reward model learned from; they are not held out")

    model = make_reward_model(config.reward)
    result = evaluate_reward_model(
        model,
        args.demos,
        episodes=episodes,
        rollouts=args.rollouts,
        env_config=config.env,
        cameras=args.cameras,
        camera_hints=hints,
        out_dir=out,
        gamma=gamma,
        seed=seed,
        max_steps=args.max_steps,
        score=args.score,
        video=not args.no_video,
        video_size=config.eval.video_size,
        fps=config.eval.fps,
        reward_name=config.reward.type_name,
        held_out=held_out,
        notes=notes,
        progress=True,
    )
    where = f"{result.demos['path']} episodes {_ranges(result.demos['episodes'])}" + (" (held out)" if held_out else "")
    rollouts = "" if result.rollouts is None else f" + rollouts {result.rollouts['source']}"
    print(f"reward {result.reward} on {where}{rollouts}")
    print(result.table())
    print(f"-> {out}: {', '.join(result.files)}")
    return 0


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts: list[str] = []
    for i in sorted(indices):
        if parts and parts[-1][1] == i - 1:
            parts[-1][1] = i
        else:
            parts.append([i, i])  # type: ignore[arg-type]
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts) or "none"
