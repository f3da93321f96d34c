"""SB3 callbacks: episode statistics (learned vs true return, success), progress bar, checkpoints and clean stops,
validation that keeps the best policy."""

from __future__ import annotations

import os
import signal
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from roboreward.envs.make import make_env
from roboreward.policies.acting import Actor, run_episode
from roboreward.policies.checkpoints import read_state, save_checkpoint, save_policy_folder
from roboreward.rewards.wrappers import LearnedReward
from roboreward.signals import STOP_SIGNALS, on_signals


class EpisodeStats(BaseCallback):
    """Keep the last ``window`` finished episodes and log them under ``rollout/``.

    SB3 already logs ``rollout/ep_rew_mean`` — the return of the reward the agent optimises, which
    is the *learned* one here. This adds the ground truth beside it, ``rollout/ep_true_rew_mean``,
    and the learned one again under an unambiguous name, ``rollout/ep_learned_rew_mean``.
    """

    def __init__(self, window: int = 100):
        super().__init__()
        self.learned_returns: deque[float] = deque(maxlen=window)
        self.true_returns: deque[float] = deque(maxlen=window)
        self.successes: deque[float] = deque(maxlen=window)

    def _on_step(self) -> bool:
        for info, done in zip(self.locals["infos"], self.locals["dones"]):
            if not done:
                continue
            if "episode" in info:
                self.learned_returns.append(info["episode"]["r"])
            if "true_episode" in info:
                self.true_returns.append(info["true_episode"]["r"])
            if "is_success" in info:
                self.successes.append(float(info["is_success"]))
        if self.true_returns and self.learned_returns:
            self.logger.record("rollout/ep_true_rew_mean", float(np.mean(self.true_returns)))
            self.logger.record("rollout/ep_learned_rew_mean", float(np.mean(self.learned_returns)))
        return True

    def summary(self, last: int = 20) -> dict[str, float]:
        out = {}
        for key, values in (("success", self.successes), ("true_return", self.true_returns), ("learned_return", self.learned_returns)):
            if values:
                out[key] = float(np.mean(list(values)[-last:]))
        return out


class ProgressBar(BaseCallback):
    """A tqdm bar over env steps, showing recent success rate and returns."""

    def __init__(self, total_timesteps: int, stats: EpisodeStats):
        super().__init__()
        self.total = total_timesteps
        self.stats = stats
        self._bar = None
        self._last_postfix = 0.0

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.total, initial=self.num_timesteps, unit="step", dynamic_ncols=True, desc="train")

    def _on_step(self) -> bool:
        assert self._bar is not None
        self._bar.update(self.num_timesteps - self._bar.n)
        now = time.monotonic()
        if now - self._last_postfix > 1.0:
            self._bar.set_postfix({k: f"{v:.2f}" for k, v in self.stats.summary().items()}, refresh=False)
            self._last_postfix = now
        return True

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.update(self.num_timesteps - self._bar.n)
            self._bar.close()


class Checkpointer(BaseCallback):
    """Save a checkpoint every ``every`` env steps, keeping the newest ``keep``; stop cleanly when asked.

    SB3 calls a callback's ``on_step`` right after ``env.step`` and *before* it stores that step's
    transitions in the replay buffer, counts the episodes that ended on it and runs the gradient steps it
    calls for. A checkpoint written there would miss all three (and a resume would lose them). So
    ``on_step`` only notes that a checkpoint is due, and it is written at the next ``on_rollout_start``,
    when SB3 is between two steps: for SAC/TD3 after the training that followed the step, for PPO after
    the update on the whole rollout. :meth:`save` is also called by the trainer when ``learn`` returns.

    :meth:`request_stop` (called by :func:`stop_on_signals` on Ctrl-C or SIGTERM) asks for the same
    consistent point: the next ``on_rollout_start`` writes a checkpoint and the next ``on_step`` returns
    False, which makes SB3 end ``learn`` before it uses the step it has just taken. :attr:`stopped` then
    says so; the model in memory is one env step past the checkpoint and must not be saved again.
    """

    def __init__(self, run_dir: Path, every: int, keep: int, elapsed_before: float = 0.0, session: int = 0):
        super().__init__()
        self.session = session
        self.run_dir = Path(run_dir)
        self.every = every
        self.keep = keep
        self.elapsed_before = elapsed_before
        self._started = time.monotonic()
        self._next = 0
        self._due = False
        self._start_timesteps = 0
        self._last: tuple[int, Path] | None = None
        self.stop_reason: str | None = None  # what asked to stop (a signal's name), None until asked
        self.stopped = False  # learn was ended by a stop request, after the checkpoint :attr:`last`
        self.stopped_at: int | None = None  # the step count training stopped at (the checkpoint's)

    @property
    def last(self) -> Path | None:
        """The checkpoint this session wrote last, if any."""
        return self._last[1] if self._last is not None else None

    def request_stop(self, reason: str) -> None:
        """End training at the next consistent point, with a checkpoint there (safe to call from a signal handler)."""
        self.stop_reason = reason

    def _on_training_start(self) -> None:
        self._started = time.monotonic()
        self._start_timesteps = self.model.num_timesteps
        self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.stopped:
            return False
        if self.model.num_timesteps >= self._next:
            self._due = True
            self._next = (self.model.num_timesteps // self.every + 1) * self.every
        return True

    def _on_rollout_start(self) -> None:
        if self._due or (self.stop_reason is not None and self.model.num_timesteps > self._start_timesteps):
            self.save()
            self._due = False
        if self.stop_reason is not None:
            self.stopped, self.stopped_at = True, self.model.num_timesteps

    def save(self) -> Path:
        """Write a checkpoint of the model as it is now; call it only between two steps of SB3's loop."""
        if self._last is not None and self._last[0] == self.model.num_timesteps:
            return self._last[1]  # the end of training fell on a periodic save
        elapsed = self.elapsed_before + time.monotonic() - self._started
        path = save_checkpoint(self.model, self.run_dir, self.keep, {"train_seconds": elapsed, "session": self.session})
        self._last = (self.model.num_timesteps, path)
        return path


BEST_POLICY = "best"  # RUN/best/: the policy that did best on the validation episodes
VALIDATIONS = "validations.csv"  # RUN/validations.csv: every validation's step and scores
VALIDATION_SEED_OFFSET = 2_000_000  # validation episodes: neither training's seeds nor evaluation's (1 000 000 + k)


class BestPolicy(BaseCallback):
    """Every ``every`` env steps, play ``episodes`` validation episodes with the policy and keep the best so far.

    Why: off-policy RL on a reward that is refitted while the policy trains does not improve monotonically — on
    the default job, a policy that succeeded in 88 % of fresh episodes at 110 000 steps succeeded in 54 % at
    120 000 — so the final model is one point of a curve, not its best. Each validation plays the episodes seeded
    ``seed + 2 000 000 + k``, which neither training nor ``roboreward eval`` (``seed + 1 000 000 + k``) plays, so
    an evaluation of the policy kept stays a fair figure. Success at the last step decides and the learned return
    breaks ties (the task's own reward never counts); an env without a success flag is judged on the learned
    return alone. Every validation is a line of ``RUN/validations.csv``; the best policy, its refitted reward heads
    and its scores go to ``RUN/best/`` (:func:`~roboreward.policies.checkpoints.save_policy_folder`), where a resumed
    run reads the score to beat.

    The policy acts deterministically in an env of its own, scored by the training's reward model as it is now;
    it samples nothing and touches neither the buffer nor the envs that train, so a run follows the same course
    with validation as without. Like SB3's ``EvalCallback`` it runs in ``on_step``: it only reads the weights.
    """

    def __init__(self, config: Any, run_dir: Path, reward_model: Any = None):
        super().__init__()
        self.config = config
        self.folder = Path(run_dir) / BEST_POLICY
        self.every = config.train.validate_every
        self.episodes = config.train.validate_episodes
        self.reward_model = reward_model
        self.best: dict | None = None
        if (self.folder / "state.json").is_file():
            self.best = read_state(self.folder).get("validation")
        self._env: Any = None
        self._next = 0

    def _on_training_start(self) -> None:
        self._next = (self.model.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.model.num_timesteps >= self._next:
            self._next = (self.model.num_timesteps // self.every + 1) * self.every
            self.validate()
        return True

    def validate(self) -> dict:
        """Play the validation episodes now; keep the policy in ``RUN/best/`` if it beats the best so far."""
        if self._env is None:
            self._env = validation_env(self.config, self.reward_model)
        result = {"step": self.model.num_timesteps, "episodes": self.episodes,
                  **play_validation(self._env, self.model, self.config.seed, self.episodes)}
        with open(self.folder.parent / VALIDATIONS, "a") as log:  # one line per validation: the curve to look at
            if log.tell() == 0:
                log.write("step,success_rate,learned_return\n")
            log.write(f"{result['step']},{result['success_rate']},{result['learned_return']}\n")
        self.logger.record("validation/success_rate", result["success_rate"])
        self.logger.record("validation/learned_return", result["learned_return"])
        if self.best is None or _score(result) > _score(self.best):
            self.best = result
            save_policy_folder(self.model, self.folder, {"validation": result})
        self.logger.record("validation/best_success_rate", self.best["success_rate"])
        self.logger.record("validation/best_step", self.best["step"])
        return result

    def _on_training_end(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def validation_env(config: Any, reward_model: Any = None) -> Any:
    """The env validation plays in: ``config.env``, scored by ``reward_model``'s own output (if any)."""
    env = make_env(config.env, render=reward_model is not None and reward_model.requires_frames)
    if reward_model is None:
        return env
    env = LearnedReward(env, reward_model)
    env.postprocess = None  # the model's own output: running statistics would make validations incomparable
    return env


def play_validation(env: Any, model: Any, seed: int, episodes: int) -> dict[str, float]:
    """Success rate (last step) and mean learned return of ``model`` acting deterministically in the validation
    episodes of a run seeded ``seed``."""
    actor = Actor(model, deterministic=True)
    played = [run_episode(env, actor, seed + VALIDATION_SEED_OFFSET + k) for k in range(episodes)]
    return {"success_rate": float(np.mean([e.success for e in played])),
            "learned_return": float(np.mean([sum(e.learned) for e in played]))}


def _score(result: dict) -> tuple[float, float]:
    return result["success_rate"], result["learned_return"]


@contextmanager
def stop_on_signals(checkpointer: Checkpointer, signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, the first Ctrl-C or SIGTERM stops training at the next consistent point with a checkpoint.

    A second one raises ``KeyboardInterrupt`` at once, wherever training is (a checkpoint being written
    is then left as an ignored ``.tmp`` folder; the ones before it stay). Outside the main thread, where
    Python cannot set handlers, nothing changes and Ctrl-C stays an immediate ``KeyboardInterrupt``.
    """

    def handle(sig: signal.Signals) -> None:
        if checkpointer.stop_reason is not None:
            raise KeyboardInterrupt
        checkpointer.request_stop(sig.name)
        # os.write, not print: a handler may run in the middle of another print (the progress bar's)
        os.write(2, f"\n{sig.name}: stopping with a checkpoint once this step (PPO: this rollout) "
                    "is done; Ctrl-C again stops at once\n".encode())

    with on_signals(handle, signals):
        yield
