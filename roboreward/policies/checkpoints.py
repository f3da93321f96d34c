"""Checkpoints that survive a kill, and loading them without unpickling anything.

A checkpoint is a folder ``checkpoints/step_<N>/`` holding

- ``model.zip``: SB3's own format (open it with ``SAC.load`` if you like),
- ``replay_buffer.npz``: an off-policy algorithm's buffer, as plain arrays,
- ``state.json``: counters needed to continue (timesteps, episodes, updates), and the running
  statistics of the learned-reward normaliser when the reward config turns it on
  (``reward.normalize``), so a resumed run and its evaluation keep the training's reward scale.

It is written into ``step_<N>.tmp/`` and renamed into place only when complete, so a crash or a
``kill -9`` leaves either a whole checkpoint or a ``.tmp`` folder that is ignored.

Loading never unpickles: the model is rebuilt from the run's saved config and only tensors are read
(``torch.load(..., weights_only=True)`` inside SB3's ``load_from_zip_file(load_data=False)``), and the
replay buffer is read with ``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import get_device

from roboreward.rewards.postprocess import RunningNormalizer

_BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    done = [p for p in root.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp") and (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.split("_")[1]))


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, keep: int, extra_state: dict | None = None) -> Path:
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{model.num_timesteps:09d}"
    tmp = root / (final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save(tmp / "model.zip")
    if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
        rb = model.replay_buffer
        n = rb.buffer_size if rb.full else rb.pos
        arrays = {f: getattr(rb, f)[:n] for f in _BUFFER_FIELDS if getattr(rb, f, None) is not None}
        np.savez(tmp / "replay_buffer.npz", pos=rb.pos, full=rb.full, **arrays)
    state = {
        "num_timesteps": model.num_timesteps,
        "episode_num": model._episode_num,
        "n_updates": getattr(model, "_n_updates", 0),
        **(extra_state or {}),
    }
    normalizer = reward_normalizer(model.get_env())
    if normalizer is not None:
        state["reward_normalizer"] = normalizer.state_dict()
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_weights(model: BaseAlgorithm, model_zip: Path) -> None:
    """Load parameters, optimiser states and variables (SAC's entropy coefficient) into ``model``."""
    _, params, variables = load_from_zip_file(model_zip, load_data=False, device=get_device(model.device))
    model.set_parameters(params, exact_match=True, device=model.device)
    for name, value in (variables or {}).items():
        target = model
        for part in name.split(".")[:-1]:
            target = getattr(target, part)
        getattr(target, name.split(".")[-1]).data.copy_(value.data)


def read_state(path: Path) -> dict:
    """The counters of a checkpoint folder (``state.json``)."""
    return json.loads((Path(path) / "state.json").read_text())


def restore_checkpoint(model: BaseAlgorithm, path: Path) -> dict:
    """Restore weights, counters and replay buffer from a checkpoint folder; returns its state."""
    state = read_state(path)
    load_weights(model, path / "model.zip")
    model.num_timesteps = state["num_timesteps"]
    model._episode_num = state["episode_num"]
    if hasattr(model, "_n_updates"):
        model._n_updates = state["n_updates"]
    restore_reward_normalizer(model.get_env(), state)
    buffer_file = path / "replay_buffer.npz"
    if isinstance(model, OffPolicyAlgorithm) and buffer_file.is_file():
        rb = model.replay_buffer
        with np.load(buffer_file, allow_pickle=False) as data:
            for f in _BUFFER_FIELDS:
                if f in data:
                    getattr(rb, f)[: len(data[f])] = data[f]
            rb.pos, rb.full = int(data["pos"]), bool(data["full"])
    return state


def reward_normalizer(env) -> RunningNormalizer | None:
    """The learned-reward normaliser of the reward wrapper inside ``env`` (a vector env or an env), if any."""
    while env is not None:
        postprocess = getattr(env, "postprocess", None)
        if postprocess is not None:
            return postprocess.normalizer
        env = getattr(env, "venv", None) or getattr(env, "env", None)
    return None


def restore_reward_normalizer(env, state: dict) -> bool:
    """Load a checkpoint's normaliser statistics into ``env``'s reward wrapper; False when either side has none."""
    normalizer = reward_normalizer(env)
    if normalizer is None or "reward_normalizer" not in state:
        return False
    normalizer.load_state_dict(state["reward_normalizer"])
    return True
