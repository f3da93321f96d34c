"""Train a policy with stable-baselines3 on a learned reward, as an experiment config says.

A run folder holds everything needed to continue, evaluate and deploy::

    runs/<name>-<time>/
      config.yaml          the resolved config (file + overrides); resume and eval read only this
      checkpoints/step_N/  periodic checkpoints (see roboreward.policies.checkpoints)
      model.zip            the final policy
      tb/                  TensorBoard logs: rollout/ep_rew_mean (learned), rollout/ep_true_rew_mean,
                           rollout/success_rate, train/...
      progress*.csv        the same scalars as CSV, one file per training session

The reward trained on is the ``reward`` section's (the env's own for ``type: env``), shaped by
``shaping.potential`` when the config has one: ``r' = r + γΦ(s') − Φ(s)`` with ``γ`` the algorithm's
discount (``rollout/ep_rew_mean`` is then the shaped return; the unshaped reward is in each step's
``info["unshaped_reward"]``).
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv

from roboreward.config import load_config, save_config
from roboreward.envs.make import make_env, make_vec_env
from roboreward.experiment import ExperimentConfig
from roboreward.policies.bc import BC_POLICY, BCRegularisedSAC, Demonstrations, load_demonstrations, start_from_demonstrations
from roboreward.policies.callbacks import Checkpointer, EpisodeStats, ProgressBar
from roboreward.policies.checkpoints import list_checkpoints, read_state, restore_checkpoint
from roboreward.rewards.base import RewardModel, make_reward_model

CONFIG_FILE = "config.yaml"
FINAL_MODEL = "model.zip"
RESUME_SEED_STRIDE = 100_003  # env seed offset per resumed session (a prime, far from n_envs offsets)


def build_algorithm(config: ExperimentConfig, env: VecEnv | None = None, demos: Demonstrations | None = None) -> BaseAlgorithm:
    """A fresh SB3 algorithm for ``config``; with no env, one un-rendered env supplies the spaces.

    With ``demos`` (training a config with a ``bc`` section) it is a :class:`BCRegularisedSAC` that
    imitates them; its saved models are plain SAC models, which is what evaluation builds.
    """
    algo = config.algo
    if env is None:
        env = make_env(config.env, render=False)
    cls, extra = algo.algorithm_class(), {}
    if demos is not None:
        cls, extra = BCRegularisedSAC, {"bc_weight": config.bc.weight, "critic_warmup": config.bc.critic_warmup}
    model = cls(
        algo.policy,
        env,
        policy_kwargs={"net_arch": list(algo.net_arch)},
        seed=config.seed,
        device=config.train.device,
        verbose=0,
        **algo.hyperparams,
        **extra,
    )
    if demos is not None:
        model.set_demonstrations(demos)
    return model


def shaping_potential(config: ExperimentConfig, reward_model: RewardModel | None) -> RewardModel | None:
    """``Φ`` of the config's shaping section (None without one); a potential equal to the reward section
    reuses the reward model rather than building (and fitting) it twice."""
    potential = config.shaping.potential
    if potential is None:
        return None
    if reward_model is not None and potential == config.reward:
        return reward_model
    return make_reward_model(potential)


def new_run_dir(config: ExperimentConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(config.runs_dir) / f"{config.name}-{stamp}"
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = Path(config.runs_dir) / f"{config.name}-{stamp}-{suffix}"
    return run_dir


def train(config: ExperimentConfig, run_dir: Path | None = None) -> Path:
    """Train from scratch into ``run_dir`` (a new folder under ``config.runs_dir`` by default)."""
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(config)
    if (run_dir / CONFIG_FILE).exists():
        raise FileExistsError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick a new folder")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG_FILE)
    try:
        return _learn(config, run_dir, checkpoint=None)
    except Exception:
        # Failed before writing anything (bad demos folder, env id, reward weights): leave no folder that looks
        # like a run but holds only its config. Anything more (logs, checkpoints) stays, to resume or inspect.
        if created and [p.name for p in run_dir.iterdir()] == [CONFIG_FILE]:
            shutil.rmtree(run_dir)
        raise


def resume(run_dir: Path) -> Path:
    """Continue an interrupted run from its newest complete checkpoint, with its saved config."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {CONFIG_FILE}); pass the folder `roboreward train` printed")
    config = load_config(run_dir / CONFIG_FILE)
    checkpoints = list_checkpoints(run_dir)
    return _learn(config, run_dir, checkpoint=checkpoints[-1] if checkpoints else None)


def _learn(config: ExperimentConfig, run_dir: Path, checkpoint: Path | None) -> Path:
    if config.train.torch_threads is not None:
        torch.set_num_threads(config.train.torch_threads)
    session = read_state(checkpoint).get("session", 0) + 1 if checkpoint is not None else 0
    reward_model = make_reward_model(config.reward)
    potential = shaping_potential(config, reward_model)
    gamma = config.shaping_gamma if potential is not None else None
    # A resumed session gets other env seeds, so it does not replay the first session's episodes.
    seed = config.seed + RESUME_SEED_STRIDE * session
    demos = load_demonstrations(config.bc, config.env) if config.bc.enabled else None
    venv = make_vec_env(config.env, reward_model, seed=seed, potential=potential, gamma=gamma)
    model = build_algorithm(config, venv, demos)
    if gamma is not None and model.gamma != gamma:  # the shaping term must use the learner's own discount
        raise RuntimeError(f"shaping used gamma={gamma} but {type(model).__name__} learns with gamma={model.gamma}")
    elapsed_before = 0.0
    if checkpoint is not None:
        elapsed_before = restore_checkpoint(model, checkpoint).get("train_seconds", 0.0)
        print(f"resuming {run_dir} from {checkpoint.name} ({model.num_timesteps} steps done)")
    else:
        if session == 0 and (run_dir / "progress.csv").exists():
            print(f"{run_dir} has no complete checkpoint yet: training starts over")
        if demos is not None:
            done = start_from_demonstrations(model, demos, config, reward_model, run_dir, config.train.progress_bar)
            print(f"behaviour cloning from {config.bc.demos}: " + ", ".join(f"{k} {v}" for k, v in done.items())
                  + f"; the starting policy alone: {run_dir / BC_POLICY}")
    model.set_logger(_logger(run_dir, session))

    stats = EpisodeStats()
    checkpointer = Checkpointer(run_dir, config.train.checkpoint_every, config.train.keep_checkpoints, elapsed_before, session)
    callbacks = [stats, checkpointer]
    if config.train.progress_bar:
        callbacks.append(ProgressBar(config.train.total_timesteps, stats))
    remaining = config.train.total_timesteps - model.num_timesteps
    started = time.monotonic()
    try:
        if remaining > 0:
            model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=checkpoint is None, log_interval=4)
        final = checkpointer.save() if remaining > 0 else None
        model.save(run_dir / "model.tmp.zip")  # then renamed: a kill never leaves a half-written model.zip
        (run_dir / "model.tmp.zip").replace(run_dir / FINAL_MODEL)
    except KeyboardInterrupt:
        saved = checkpointer.save()
        print(f"\ninterrupted at {model.num_timesteps} steps; saved {saved}; continue with: roboreward train --resume {run_dir}")
        raise
    finally:
        venv.close()
    summary = {
        "timesteps": model.num_timesteps,
        "train_seconds": round(elapsed_before + time.monotonic() - started, 1),
        "last_checkpoint": final.name if final else None,
        **{f"recent_{k}": round(v, 4) for k, v in stats.summary().items()},
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"trained {model.num_timesteps} steps in {summary['train_seconds']} s -> {run_dir}")
    return run_dir


def _logger(run_dir: Path, session: int) -> Logger:
    csv_name = "progress.csv" if session == 0 else f"progress-resume{session}.csv"
    return Logger(folder=str(run_dir), output_formats=[TensorBoardOutputFormat(str(run_dir / "tb")), CSVOutputFormat(str(run_dir / csv_name))])
