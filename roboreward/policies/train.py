"""Train a policy with stable-baselines3 on a learned reward, as an experiment config says.

A run folder holds everything needed to continue, evaluate and deploy::

    runs/<name>-<time>/
      config.yaml          the resolved config (file + overrides); resume and eval read only this
      checkpoints/step_N/  periodic checkpoints, and one where Ctrl-C/SIGTERM stopped it (see
                           roboreward.policies.checkpoints and callbacks.Checkpointer)
      model.zip            the final policy
      tb/                  TensorBoard logs: rollout/ep_rew_mean (learned), rollout/ep_true_rew_mean,
                           rollout/success_rate, train/...
      progress*.csv        the same scalars as CSV, one file per training session (never overwritten)

The reward trained on is the ``reward`` section's (the env's own for ``type: env``), shaped by
``shaping.potential`` when the config has one: ``r' = r + γΦ(s') − Φ(s)`` with ``γ`` the algorithm's
discount (``rollout/ep_rew_mean`` is then the shaped return; the unshaped reward is in each step's
``info["unshaped_reward"]``).

Ctrl-C (or SIGTERM) stops training at the next point where the state is consistent — after the current
step for SAC/TD3, after the current rollout for PPO — with a checkpoint there; a second Ctrl-C stops at
once, keeping the checkpoints already on disk. Before the first training step (distilling a teacher,
cloning demos) a signal stops at once; a distilled policy already saved is what ``--resume`` starts from.
Either way :func:`train` and :func:`resume` end with ``KeyboardInterrupt`` (the command line exits with
status 130): the run is not finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv

from roboreward.config import save_config
from roboreward.envs.make import make_env, make_vec_env
from roboreward.errors import ConfigError
from roboreward.experiment import ExperimentConfig, load_experiment
from roboreward.io import atomic_write
from roboreward.policies.bc import (
    BC_POLICY,
    BCRegularisedSAC,
    Demonstrations,
    demo_rewards,
    load_demonstrations,
    start_from_demonstrations,
)
from roboreward.policies.callbacks import BestPolicy, Checkpointer, EpisodeStats, ProgressBar, stop_on_signals
from roboreward.policies.checkpoints import find_resumable, list_checkpoints, load_weights, save_model
from roboreward.rewards.base import RewardConfig, RewardModel, make_reward_model
from roboreward.signals import on_signals

CONFIG_FILE = "config.yaml"
FINAL_MODEL = "model.zip"
TRAIN_SUMMARY = "train_summary.json"  # steps, training seconds over every session, last checkpoint
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
    if config.symmetry.weight > 0:
        from roboreward.policies.symmetry import SymmetricPPO

        try:
            mirror = env.get_attr("mirror")[0] if isinstance(env, VecEnv) else env.get_wrapper_attr("mirror")
        except AttributeError:
            mirror = None  # SymmetricPPO says what is missing
        cls, extra = SymmetricPPO, {"symmetry_weight": config.symmetry.weight,
                                    "symmetry_epochs": config.symmetry.epochs, "mirror": mirror}
    if demos is not None:
        cls, extra = BCRegularisedSAC, {"bc_weight": config.bc.weight, "bc_anneal_steps": config.bc.anneal_steps,
                                    "critic_warmup": config.bc.critic_warmup, "demo_fraction": config.bc.demo_fraction}
    if algo.relabel_rewards:
        from gymnasium import spaces

        from roboreward.policies.relabel import RelabellingDictReplayBuffer, RelabellingReplayBuffer

        dict_obs = isinstance(env.observation_space, spaces.Dict)
        extra["replay_buffer_class"] = RelabellingDictReplayBuffer if dict_obs else RelabellingReplayBuffer
    model = cls(
        algo.policy,
        env,
        policy_kwargs=algo.policy_kwargs(),
        seed=config.seed,
        device=config.train.device,
        verbose=0,
        **algo.sb3_kwargs(),
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
    return training_reward_model(potential, config)


def training_reward_model(reward: RewardConfig, config: ExperimentConfig) -> RewardModel | None:
    """The model of a reward section for training: here, or in a Ray reward server (``server: ray``)."""
    if reward.server == "ray":
        from roboreward.distributed.reward_server import serve

        return serve(reward, config.ray)
    return make_reward_model(reward)


def _connect_ray(config: ExperimentConfig) -> None:
    """Join (or start) the job's Ray cluster once, sized for all its actors, when any part runs on Ray."""
    servers = sum(r is not None and r.server == "ray" for r in (config.reward, config.shaping.potential))
    if config.env.backend != "ray" and not servers:
        return
    from roboreward.distributed.cluster import connect

    actors = config.ray.actors(config.env.n_envs) if config.env.backend == "ray" else 0
    ray = connect(config.ray, cpus_needed=actors * config.ray.cpus_per_actor + servers)
    resources = ray.cluster_resources()
    where = [f"{actors} rollout actors of {config.ray.envs_per_actor} envs"] if actors else []
    where += [f"{servers} reward server(s)"] if servers else []
    print(f"ray: {len(ray.nodes())} node(s), {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
          + ", ".join(where))


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
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or pick a new folder")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / CONFIG_FILE)
    try:
        return _learn(config, run_dir, resuming=False)
    except Exception:
        # Failed before writing anything (bad demos folder, env id, reward weights): leave no folder that looks
        # like a run but holds only its config. Anything more (logs, checkpoints) stays, to resume or inspect.
        if created and [p.name for p in run_dir.iterdir()] == [CONFIG_FILE]:
            shutil.rmtree(run_dir)
        raise


def load_run_config(run_dir: Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The config a run was trained with (its ``config.yaml``), with ``key=value`` overrides (evaluation under
    other conditions); a folder that is not a run is a ConfigError."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no {CONFIG_FILE}); pass the folder `roboreward train` printed")
    return load_experiment(run_dir / CONFIG_FILE, overrides)


def resume(run_dir: Path, ray_address: str | None = None) -> Path:
    """Continue an interrupted run from its newest usable checkpoint, with its saved config.

    Checkpoints are checked before they are trusted (see :func:`~roboreward.policies.checkpoints.find_resumable`):
    a damaged newest one is skipped, with its folder and reason printed, for the one before it. A run with
    no checkpoint at all starts over in its folder; one whose checkpoints are all unusable raises
    :class:`~roboreward.errors.CheckpointError` rather than throwing its training away. ``ray_address``
    runs the resumed session's Ray parts on another cluster than the saved config's ``ray.address``.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    if ray_address is not None:  # where a run's envs and reward server run is not what it learns: it may move
        config = dataclasses.replace(config, ray=dataclasses.replace(config.ray, address=ray_address))
    return _learn(config, run_dir, resuming=True)


def _learn(config: ExperimentConfig, run_dir: Path, resuming: bool) -> Path:
    with _torch_threads(config.train.torch_threads):
        _connect_ray(config)
        reward_model = training_reward_model(config.reward, config)
        potential = shaping_potential(config, reward_model)
        gamma = config.shaping_gamma if potential is not None else None
        try:
            demos = load_demonstrations(config.bc, config.env) if config.bc.enabled else None
            with _workers_ignore_interrupts(config.env.vectorization == "subproc" and config.env.backend == "local"):
                venv = make_vec_env(config.env, reward_model, seed=config.seed, potential=potential, gamma=gamma,
                                    ray=config.ray)
            try:
                return _learn_in(config, run_dir, resuming, venv, reward_model, potential, demos, gamma)
            finally:
                venv.close()
        finally:
            for model in {id(m): m for m in (reward_model, potential) if m is not None}.values():
                if hasattr(model, "close"):
                    model.close()  # a reward server's actor


def _learn_in(config: ExperimentConfig, run_dir: Path, resuming: bool, venv: VecEnv, reward_model: RewardModel | None,
              potential: RewardModel | None, demos: Demonstrations | None, gamma: float | None) -> Path:
    model = build_algorithm(config, venv, demos)
    if gamma is not None and model.gamma != gamma:  # the shaping term must use the learner's own discount
        raise RuntimeError(f"shaping used gamma={gamma} but {type(model).__name__} learns with gamma={model.gamma}")
    if config.algo.relabel_rewards:  # before anything (the demos) enters the buffer
        from roboreward.policies.relabel import Relabeller

        model.replay_buffer.relabeller = Relabeller(reward_model, potential, model.gamma)
    checkpoint = find_resumable(run_dir, model) if resuming else None
    session, elapsed_before = 0, 0.0
    if checkpoint is not None:
        state = checkpoint.apply(model)
        session, elapsed_before = checkpoint.session + 1, state.get("train_seconds", 0.0)
        # A resumed session gets other env and sampling seeds, so it does not replay the first session's
        # episodes (building the model seeded everything with config.seed again).
        model.set_random_seed(config.seed + RESUME_SEED_STRIDE * session)
        apart = ""
        if demos is not None and config.bc.demos_in_buffer and config.bc.demo_fraction > 0:
            model.set_demo_buffer(demos, demo_rewards(demos, reward_model))  # kept apart, so not in the checkpoint
            apart = f"; {model.demo_buffer.size()} demo transitions kept apart"
        print(f"resuming {run_dir} from {checkpoint.path.name} ({model.num_timesteps} steps done{apart})")
    else:
        if resuming:
            print(f"{run_dir} has no checkpoint yet: training starts over")
        with _stop_at_once_on_signals(run_dir):
            if config.teacher.enabled:
                _start_from_teacher(model, venv, config, run_dir, resuming)
            if demos is not None:
                done = start_from_demonstrations(model, demos, config, reward_model, run_dir, config.train.progress_bar)
                print(f"behaviour cloning from {config.bc.demos}: " + ", ".join(f"{k} {v}" for k, v in done.items())
                      + f"; the starting policy alone: {run_dir / BC_POLICY}")
    if config.teacher.enabled:  # distilled (now or in the session resumed): the envs stop labelling
        venv.env_method("drop_teacher")
    model.set_logger(_logger(run_dir, session))

    stats = EpisodeStats()
    checkpointer = Checkpointer(run_dir, config.train.checkpoint_every, config.train.keep_checkpoints, elapsed_before, session)
    callbacks = [stats, checkpointer]
    if config.train.validate_every:
        callbacks.append(BestPolicy(config, run_dir, reward_model))
    if config.train.progress_bar:
        callbacks.append(ProgressBar(config.train.total_timesteps, stats))
    remaining = config.train.total_timesteps - model.num_timesteps
    started = time.monotonic()
    final = None
    try:
        with stop_on_signals(checkpointer):
            if remaining > 0:
                model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=checkpoint is None, log_interval=4)
            if checkpointer.stopped:
                last = checkpointer.last
                saved = f"checkpoint {last}" if last else "no new checkpoint (no step was taken)"
                print(f"\nstopped by {checkpointer.stop_reason} at {checkpointer.stopped_at} steps with {saved}; "
                      f"continue with: roboreward train --resume {run_dir}")
                raise KeyboardInterrupt
            final = checkpointer.save() if remaining > 0 else None
            save_model(model, run_dir / FINAL_MODEL)
    except KeyboardInterrupt:
        if not checkpointer.stopped:  # a second Ctrl-C, or one outside the main thread: wherever it landed
            newest = list_checkpoints(run_dir)
            kept = f"the newest checkpoint is {newest[-1]}" if newest else "there is no checkpoint yet"
            print(f"\ninterrupted at once at {model.num_timesteps} steps, without saving; {kept}; "
                  f"continue with: roboreward train --resume {run_dir}")
        raise
    finally:
        model.logger.close()
    summary = {
        "timesteps": model.num_timesteps,
        "train_seconds": round(elapsed_before + time.monotonic() - started, 1),
        "last_checkpoint": final.name if final else None,
        **{f"recent_{k}": round(v, 4) for k, v in stats.summary().items()},
    }
    atomic_write(run_dir / TRAIN_SUMMARY, json.dumps(summary, indent=2).encode())
    print(f"trained {model.num_timesteps} steps in {summary['train_seconds']} s -> {run_dir}")
    return run_dir


def _start_from_teacher(model: BaseAlgorithm, venv: VecEnv, config: ExperimentConfig, run_dir: Path, resuming: bool) -> None:
    """Distil the teacher into ``model`` and save the result; a resumed run that has it already loads it instead
    (the distillation is minutes of rollouts that a stop before the first checkpoint must not throw away)."""
    from roboreward.policies.distill import DISTILLED_POLICY, distill

    distilled = run_dir / DISTILLED_POLICY
    if resuming and distilled.is_file():
        load_weights(model, distilled)
        print(f"starting from the teacher distilled in an earlier session: {distilled}")
        return
    done = distill(model, venv, config.teacher, config.train.progress_bar)
    save_model(model, distilled)
    print("distilled the teacher: " + ", ".join(f"{k} {v:.4g}" for k, v in done.items())
          + f"; the starting policy alone: {distilled}")


@contextmanager
def _stop_at_once_on_signals(run_dir: Path) -> Iterator[None]:
    """Ctrl-C or SIGTERM while inside ends training at once with ``KeyboardInterrupt``.

    The stages before the first training step (distillation, cloning) have no consistent point to stop
    at, but a SIGTERM must still unwind: without this it kills the process where it stands, and the env
    workers die on a broken pipe instead of being closed.
    """

    def handle(sig: signal.Signals) -> None:
        raise KeyboardInterrupt(sig.name)

    try:
        with on_signals(handle):
            yield
    except KeyboardInterrupt as e:
        print(f"\n{e.args[0] if e.args else 'SIGINT'}: training stopped before its first training step; what it "
              f"saved in {run_dir} is kept; continue with: roboreward train --resume {run_dir}")
        raise


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` (None: unchanged) while training, and put back afterwards, so a
    caller's process (a notebook, a test session) keeps its own setting."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _workers_ignore_interrupts(subproc: bool):
    """Start env worker processes with SIGINT and SIGTERM ignored (``vectorization: subproc``).

    Ctrl-C in a terminal (and a scheduler's SIGTERM) reaches every process of the group; workers that died
    of it would take the envs away before training reaches the checkpoint it stops at. An ignored
    disposition survives the forkserver's exec, so its workers keep it (a forkserver this process
    started earlier keeps its own); they still exit when training closes them or dies.
    """
    return on_signals(None) if subproc else contextlib.nullcontext()


def _logger(run_dir: Path, session: int) -> Logger:
    """TensorBoard into ``tb/`` and a CSV file of this session's own that no other session's overwrites.

    The CSV is ``progress.csv`` for the first session and ``progress-resume<session>.csv`` for a resumed
    one; when that name is taken (two resumes from the same checkpoint, a run started over) the next free
    ``...-2.csv``, ``...-3.csv`` is claimed (created exclusively, so two processes never share one).
    """
    stem = "progress" if session == 0 else f"progress-resume{session}"
    path, n = run_dir / f"{stem}.csv", 1
    while True:
        try:
            path.open("x").close()
            break
        except FileExistsError:
            n += 1
            path = run_dir / f"{stem}-{n}.csv"
    outputs = [TensorBoardOutputFormat(str(run_dir / "tb")), CSVOutputFormat(str(path))]
    return Logger(folder=str(run_dir), output_formats=outputs)
