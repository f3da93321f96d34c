"""SB3 callbacks: episode statistics (learned vs true return, success), progress bar, checkpoints."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from roboreward.policies.checkpoints import save_checkpoint


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
    """Save a checkpoint every ``every`` env steps (and once at the end), keeping the newest ``keep``."""

    def __init__(self, run_dir: Path, every: int, keep: int, elapsed_before: float = 0.0, session: int = 0):
        super().__init__()
        self.session = session
        self.run_dir = Path(run_dir)
        self.every = every
        self.keep = keep
        self.elapsed_before = elapsed_before
        self._started = time.monotonic()
        self._next = 0
        self._last: tuple[int, Path] | None = None

    def _on_training_start(self) -> None:
        self._started = time.monotonic()
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self.save()
            self._next += self.every
        return True

    def save(self) -> Path:
        if self._last is not None and self._last[0] == self.model.num_timesteps:
            return self._last[1]  # the end of training fell on a periodic save
        elapsed = self.elapsed_before + time.monotonic() - self._started
        path = save_checkpoint(self.model, self.run_dir, self.keep, {"train_seconds": elapsed, "session": self.session})
        self._last = (self.model.num_timesteps, path)
        return path
