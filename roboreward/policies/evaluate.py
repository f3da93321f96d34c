"""Evaluate a trained run: returns under the learned and the true reward, success, a video, a plot.

Writes into ``RUN_DIR/eval/`` (or ``out_dir``):

- ``metrics.json``: success rate, learned and true returns (mean, std), episode length, how well
  the learned reward tracks the true one step by step (Pearson and Spearman correlation), and for envs
  that report ``info["metrics"]`` at the end of an episode (crowd navigation: collisions by kind, path,
  SPL, intrusions, ...) their means under ``episode_metrics`` — ``nav_time`` over successful episodes
  only, as CrowdNav reports it;
- ``episodes.mp4``: the first episodes, rendered large, with the learned and true reward of every
  step written on the frame and the small frame the reward model saw inset in the corner;
- ``reward_plot.png``: learned against true reward over the first episode, and a scatter of the two
  over all steps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from roboreward.envs.make import make_env
from roboreward.envs.rendering import FrameRenderer, RenderOptions
from roboreward.errors import CheckpointError, ConfigError, NonFiniteError
from roboreward.experiment import ExperimentConfig
from roboreward.io import atomic_write
from roboreward.policies.acting import Actor, Episode, run_episode
from roboreward.policies.callbacks import BEST_POLICY
from roboreward.policies.checkpoints import (
    list_checkpoints,
    load_weights,
    read_state,
    refitted_model_file,
    restore_reward_normalizer,
)
from roboreward.policies.train import FINAL_MODEL, build_algorithm, load_run_config
from roboreward.rewards.base import make_reward_model
from roboreward.rewards.metrics import pearson, spearman
from roboreward.rewards.wrappers import FRAME_KEY, LearnedReward

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never replay training seeds


def find_model(run_dir: Path, checkpoint: str | None = None, policy: str = "final") -> Path:
    """The named model of a run (a checkpoint, ``best``, a model file), else the one ``policy`` (``eval.policy``)
    names: the best on validation (``best/model.zip``), or the final model — or the newest checkpoint's if
    training did not finish."""
    if checkpoint is None and policy == BEST_POLICY:
        best = run_dir / BEST_POLICY / "model.zip"
        if not best.is_file():
            raise CheckpointError(f"{run_dir} has no {BEST_POLICY}/model.zip (eval.policy: best): no validation has "
                                  "run yet; train on, or score the final model with eval.policy=final")
        return best
    if checkpoint is not None:  # a path, a model file in the run (bc_policy.zip), or a checkpoint's name
        candidates = [Path(checkpoint), run_dir / checkpoint, run_dir / "checkpoints" / checkpoint]
        path = next((p for p in candidates if p.exists()), candidates[-1])
        path = path / "model.zip" if path.is_dir() else path
        if not path.is_file():
            names = [p.name for p in list_checkpoints(run_dir)] + sorted(p.name for p in run_dir.glob("*.zip"))
            raise ConfigError(f"checkpoint {checkpoint!r} not found; {run_dir} has {names}")
        return path
    if (run_dir / FINAL_MODEL).is_file():
        return run_dir / FINAL_MODEL
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise CheckpointError(f"{run_dir} has no {FINAL_MODEL} and no checkpoint; train it first")
    return checkpoints[-1] / "model.zip"


def evaluate(
    run_dir: str | Path,
    episodes: int | None = None,
    checkpoint: str | None = None,
    out_dir: str | Path | None = None,
    video: bool | None = None,
    overrides: Sequence[str] = (),
) -> dict:
    """Run the policy of ``run_dir`` for ``episodes`` fresh episodes; ``overrides`` (``key=value``) change the
    run's config for the evaluation only, e.g. ``env.kwargs.scenario.n_humans=30`` for a denser crowd."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, overrides)
    if overrides and config.env.id == "roboreward/CrowdNav-v0":  # a density sweep keeps the trained observation rows
        from roboreward.envs.crowd.evaluation import with_observation_rows

        trained = make_env(load_run_config(run_dir).env, render=False)
        config.env.kwargs = with_observation_rows(config.env.kwargs, trained.observation_space)
        trained.close()
    episodes = episodes or config.eval.episodes
    video = config.eval.video if video is None else video
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)

    model_path = find_model(run_dir, checkpoint, config.eval.policy)
    policy = build_algorithm(config)
    load_weights(policy, model_path)
    state_dir = training_state_dir(run_dir, model_path)
    reward_model = evaluation_reward_model(config, state_dir)
    env = make_env(config.env, render=True)
    if reward_model is not None:
        env = LearnedReward(env, reward_model)
        if state_dir is not None:  # the learned-reward normaliser (reward.normalize) as training left it
            restore_reward_normalizer(env, read_state(state_dir))

    recorder = VideoRecorder(env, config, reward_model is not None) if video and config.eval.video_episodes else None
    results: list[Episode] = []
    try:
        actor = Actor(policy, deterministic=config.eval.deterministic)
        for ep in tqdm(range(episodes), desc="eval", unit="episode", dynamic_ncols=True):
            on_step = None
            if recorder is not None and ep < config.eval.video_episodes:
                on_step = partial(recorder.add, index=ep)
            try:
                episode = run_episode(env, actor, config.seed + EVAL_SEED_OFFSET + ep, on_step)
            except NonFiniteError as e:
                raise NonFiniteError(f"{e}; nothing was written (model {model_path})") from None
            results.append(episode)
    finally:
        env.close()

    metrics = summarise(results)
    metrics.update(model=str(model_path.relative_to(run_dir) if model_path.is_relative_to(run_dir) else model_path),
                   deterministic=config.eval.deterministic, env=config.env.id, reward=config.reward.type_name,
                   overrides=list(overrides))
    _write_json(out_dir / "metrics.json", metrics)
    plot_rewards(results, out_dir / "reward_plot.png", learned_name=config.reward.type_name)
    if recorder is not None:
        recorder.write(out_dir / "episodes.mp4")
    print(
        f"{episodes} episodes: success {metrics['success_rate']:.0%}, "
        f"learned return {metrics['learned_return']['mean']:.2f}, true return {metrics['true_return']['mean']:.2f} -> {out_dir}"
    )
    return metrics


def training_state_dir(run_dir: Path, model_path: Path) -> Path | None:
    """The checkpoint that holds the training state going with ``model_path``: its own folder, the last
    checkpoint for the final ``model.zip``; None for a policy saved before training (``bc_policy.zip``)."""
    if (model_path.parent / "state.json").is_file():
        return model_path.parent
    if model_path != run_dir / FINAL_MODEL:
        return None
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints and (checkpoints[-1] / "state.json").is_file() else None


def evaluation_reward_model(config: ExperimentConfig, state_dir: Path | None):
    """The experiment's reward model as the policy was trained on it: a model refitted while training
    (``reward.refit_every``) comes with the head of ``state_dir``'s checkpoint, not the demos-only fit."""
    model = make_reward_model(config.reward)
    saved = None if state_dir is None else refitted_model_file(state_dir)
    if model is not None and saved is not None and saved.is_file():
        model.load(saved)
    return model


def summarise(episodes: list[Episode]) -> dict:
    learned = np.array([sum(e.learned) for e in episodes])
    true = np.array([sum(e.true) for e in episodes])
    steps_learned = np.concatenate([e.learned for e in episodes])
    steps_true = np.concatenate([e.true for e in episodes])
    return {
        "episodes": len(episodes),
        "success_rate": float(np.mean([e.success for e in episodes])),
        "success_any_step_rate": float(np.mean([e.success_any for e in episodes])),
        "learned_return": {"mean": float(learned.mean()), "std": float(learned.std())},
        "true_return": {"mean": float(true.mean()), "std": float(true.std())},
        "episode_length": float(np.mean([len(e.true) for e in episodes])),
        "reward_correlation": {  # None (null) where undefined, e.g. a constant reward
            "pearson": pearson(steps_learned, steps_true),
            "spearman": spearman(steps_learned, steps_true),
        },
        **({"episode_metrics": episode_metrics(episodes)} if any(e.metrics for e in episodes) else {}),
    }


def episode_metrics(episodes: list[Episode]) -> dict[str, float | None]:
    """Means of the env's own episode metrics, summarised as the crowd env's test set summarises them."""
    from roboreward.envs.crowd.metrics import summarise

    return summarise([e.metrics for e in episodes if e.metrics])


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=2, allow_nan=False).encode())  # JSON has no NaN: never write one


def plot_rewards(episodes: list[Episode], path: Path, learned_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = episodes[0]
    fig, (ax, scatter) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, len(first.true) + 1)
    ax.plot(steps, first.learned, color="tab:blue", label=f"learned ({learned_name})")
    ax.set_xlabel("step")
    ax.set_ylabel("learned reward", color="tab:blue")
    twin = ax.twinx()
    twin.plot(steps, first.true, color="tab:orange", label="true (env)")
    twin.set_ylabel("true reward", color="tab:orange")
    ax.set_title(f"episode 1 ({'success' if first.success else 'failure'})")
    scatter.scatter(np.concatenate([e.true for e in episodes]), np.concatenate([e.learned for e in episodes]), s=4, alpha=0.4)
    scatter.set_xlabel("true reward")
    scatter.set_ylabel("learned reward")
    scatter.set_title(f"all steps, {len(episodes)} episodes")
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


class VideoRecorder:
    """Frames for people: large, with shadows and MSAA, rewards written on, the reward's view inset."""

    def __init__(self, env, config: ExperimentConfig, learned: bool):
        self.env = env
        self.config = config
        self.learned = learned
        self.frames: list[np.ndarray] = []
        self._renderer: FrameRenderer | None = None

    def _render(self, info: dict) -> np.ndarray:
        import cv2

        size = self.config.eval.video_size
        base = self.env.unwrapped
        if hasattr(base, "model") and hasattr(base, "data"):
            if self._renderer is None:  # the reward's camera, seen large and with shadows and MSAA
                camera = self.config.env.render.camera or getattr(base, "default_camera", -1)
                options = RenderOptions(width=size, height=size, camera=camera, shadows=True, multisample=4)
                self._renderer = FrameRenderer(base.model, options)
            return self._renderer.render(base.data)
        if hasattr(base, "render_at"):  # an env that draws at any size (the crowd world)
            return base.render_at(size)
        small = info.get(FRAME_KEY) if info.get(FRAME_KEY) is not None else self.env.render()
        return cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)

    def add(self, info: dict, episode: Episode, index: int) -> None:
        import cv2

        frame = np.ascontiguousarray(self._render(info))
        seen = info.get(FRAME_KEY)
        if seen is not None:  # the reward model's own view, top-right
            inset = cv2.resize(seen, (frame.shape[1] // 4, frame.shape[0] // 4), interpolation=cv2.INTER_NEAREST)
            frame[4 : 4 + inset.shape[0], -4 - inset.shape[1] : -4] = inset
        lines = [f"episode {index + 1}  step {len(episode.true)}"]
        if self.learned:
            lines.append(f"learned r {episode.learned[-1]:+.3f}  sum {sum(episode.learned):+.2f}")
        lines.append(f"true r {episode.true[-1]:+.3f}  sum {sum(episode.true):+.2f}")
        if episode.success:
            lines.append("success")
        scale = frame.shape[0] / 256
        line = int(14 * scale)
        banner = slice(0, line * len(lines) + int(6 * scale))
        frame[banner, : int(frame.shape[1] * 0.72)] //= 3  # a dark band keeps the text readable on any floor
        for i, text in enumerate(lines):
            cv2.putText(frame, text, (4, line * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (255, 255, 255), 1, cv2.LINE_AA)
        self.frames.append(frame)

    def write(self, path: Path) -> None:
        import imageio.v2 as imageio

        tmp = path.with_name(path.stem + ".tmp.mp4")
        with imageio.get_writer(tmp, fps=self.config.eval.fps, codec="libx264", macro_block_size=1, quality=7) as writer:
            for frame in self.frames:
                writer.append_data(frame)
        tmp.replace(path)
        if self._renderer is not None:
            self._renderer.close()
