"""Checkpoints that survive a kill, checked before they are trusted, and loaded without unpickling anything.

A checkpoint is a folder ``checkpoints/step_<N>/`` holding

- ``model.zip``: SB3's own format (open it with ``SAC.load`` if you like),
- ``replay_buffer.npz``: an off-policy algorithm's buffer, as plain arrays,
- ``state.json``: counters needed to continue (timesteps, episodes, updates), and the running
  statistics of the learned-reward normaliser when the reward config turns it on
  (``reward.normalize``), so a resumed run and its evaluation keep the training's reward scale.

It is written into ``step_<N>.tmp/`` and renamed into place only when complete; each file is flushed
to disk (fsync) before the rename and the folders after it, so a crash, a ``kill -9`` or a power cut
leaves either a whole checkpoint or a ``.tmp`` folder that is ignored.

A checkpoint holds the state between two env steps of SB3's loop: the transitions of its
``num_timesteps`` steps are in the buffer, the episodes that ended on them are counted and the
gradient steps they called for are done (see :class:`~roboreward.policies.callbacks.Checkpointer`).
What a resume cannot carry over is the envs' episodes in progress: the resumed session starts new ones.

Before a resume trusts a checkpoint, :func:`load_checkpoint` reads and checks all of it without
touching the model: the files are present, ``state.json`` is a JSON object whose counters are
non-negative integers (``num_timesteps`` equal to the folder's ``N``), the weights have the model's
names and shapes, the buffer's arrays have the model's buffer shapes (observation and action sizes,
``n_envs``, a length that agrees with ``pos``/``full``), and the normaliser's statistics are there
when the reward uses one. :func:`find_resumable` walks the checkpoints newest first, says which it
skips and why, and moves those aside (``step_<N>.damaged``) so that pruning never keeps them in place
of good ones.

Loading never unpickles: the model is rebuilt from the run's saved config and only tensors are read
(``torch.load(..., weights_only=True)`` inside SB3's ``load_from_zip_file(load_data=False)``), and the
replay buffer is read with ``np.load(allow_pickle=False)``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import get_device

from roboreward.config import is_finite_number, is_whole_number
from roboreward.errors import CheckpointError
from roboreward.io import atomic_write, atomic_write_npz, fsync_dir
from roboreward.rewards.postprocess import RunningNormalizer

_BUFFER_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
_COUNTERS = ("num_timesteps", "episode_num", "n_updates")
_FOLDER = re.compile(r"step_(\d+)")
DAMAGED_SUFFIX = ".damaged"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """Every renamed-into-place ``step_<N>`` folder of a run, oldest first, whether or not it is intact."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _FOLDER.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run (``step_<N>`` folders with a ``state.json``), oldest first.

    ``.tmp`` folders (a save that did not finish) and ``.damaged`` ones (set aside by a resume) are not listed.
    """
    return [p for p in checkpoint_folders(run_dir) if (p / "state.json").is_file()]


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, keep: int, extra_state: dict | None = None) -> Path:
    """Write ``checkpoints/step_<num_timesteps>/`` for ``model`` and delete all but the newest ``keep``.

    Call it between two steps of SB3's loop (not from a callback's ``on_step``, which runs before SB3
    stores the step's transitions): the counters, weights and buffer must describe the same moment.
    """
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        root.mkdir(parents=True)
        fsync_dir(root.parent)
    final = root / f"step_{model.num_timesteps:09d}"
    tmp = root / (final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
        rb = model.replay_buffer
        n = rb.buffer_size if rb.full else rb.pos
        arrays = {f: getattr(rb, f)[:n] for f in _BUFFER_FIELDS if getattr(rb, f, None) is not None}
        atomic_write_npz(tmp / "replay_buffer.npz", {"pos": np.asarray(rb.pos), "full": np.asarray(rb.full), **arrays})
    _write_policy(model, tmp, extra_state)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_policy_folder(model: BaseAlgorithm, folder: Path, extra_state: dict | None = None) -> None:
    """Write ``folder`` (replacing it) with what evaluating ``model`` as it is now needs: ``model.zip``, the reward
    heads refitted so far and the reward normaliser (``state.json``) — a checkpoint without the replay buffer.
    A kill while it is written leaves the previous folder or the new one, and an ignored ``.tmp`` folder."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_policy(model, tmp, extra_state)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def _write_policy(model: BaseAlgorithm, folder: Path, extra_state: dict | None) -> None:
    """``model.zip``, the refitted reward heads and ``state.json`` (counters, normaliser, ``extra_state``) into ``folder``."""
    save_model(model, folder / "model.zip")
    state = {
        "num_timesteps": model.num_timesteps,
        "episode_num": model._episode_num,
        "n_updates": getattr(model, "_n_updates", 0),
        **(extra_state or {}),
    }
    normalizer = reward_normalizer(model.get_env())
    if normalizer is not None:
        state["reward_normalizer"] = normalizer.state_dict()
    for role, learner in refitting_models(model.get_env()).items():  # a reward refitted on the agent's failures
        learner.save(refitted_model_file(folder, role))
        state[f"{role}_refits"] = learner.refits
    atomic_write(folder / "state.json", json.dumps(state, indent=2).encode())


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """SB3's ``model.zip`` for ``model``, written with :func:`~roboreward.io.atomic_write`: a kill never leaves
    half a file."""
    zipped = io.BytesIO()
    model.save(zipped)
    atomic_write(path, zipped.getvalue())


def load_weights(model: BaseAlgorithm, model_zip: Path) -> None:
    """Load parameters, optimiser states and variables (SAC's entropy coefficient) into ``model``.

    A missing, damaged or mismatched file (another net_arch) is a :class:`CheckpointError` naming it.
    """
    try:
        params, variables = _read_weights(Path(model_zip), model)
    except CheckpointError as e:
        raise CheckpointError(f"{model_zip}: {e}; train the run again or pick another checkpoint") from None
    _set_weights(model, params, variables)


def read_state(path: Path) -> dict:
    """The counters of a checkpoint folder (``state.json``), unchecked; :func:`load_checkpoint` checks them."""
    return json.loads((Path(path) / "state.json").read_text())


@dataclass
class LoadedCheckpoint:
    """A checkpoint read into memory and checked against a model, not yet applied to it."""

    path: Path
    state: dict[str, Any]
    params: dict[str, Any]
    variables: dict[str, torch.Tensor]
    buffer: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def session(self) -> int:
        return self.state.get("session", 0)

    def apply(self, model: BaseAlgorithm) -> dict:
        """Put weights, counters, replay buffer and normaliser statistics into ``model``; returns the state."""
        _set_weights(model, self.params, self.variables)
        model.num_timesteps = self.state["num_timesteps"]
        model._episode_num = self.state["episode_num"]
        if hasattr(model, "_n_updates"):
            model._n_updates = self.state["n_updates"]
        restore_reward_normalizer(model.get_env(), self.state)
        for role, learner in refitting_models(model.get_env()).items():
            saved = refitted_model_file(self.path, role)
            if saved.is_file():  # the head as refitted when the checkpoint was written, not the demos-only fit
                learner.load(saved)
                learner.refits = int(self.state.get(f"{role}_refits", 0))
        if self.buffer is not None:
            assert isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None
            rb = model.replay_buffer
            for f, values in self.buffer.items():
                if f not in ("pos", "full"):
                    getattr(rb, f)[: len(values)] = values
            rb.pos, rb.full = int(self.buffer["pos"]), bool(self.buffer["full"])
        return self.state


def load_checkpoint(path: Path, model: BaseAlgorithm) -> LoadedCheckpoint:
    """Read checkpoint folder ``path`` and check it fits ``model``; ``model`` is not changed.

    :raises CheckpointError: the checkpoint is incomplete, damaged or made for another model; the message
        says what is wrong, without the folder's name (the caller adds it).
    """
    path = Path(path)
    match = _FOLDER.fullmatch(path.name)
    if match is None:
        raise CheckpointError(f"the folder name is not step_<N> (got {path.name!r})")
    needs_normalizer = reward_normalizer(model.get_env()) is not None
    state = _check_state(path / "state.json", int(match.group(1)), needs_normalizer)
    params, variables = _read_weights(path / "model.zip", model)
    buffer = None
    if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
        buffer = _read_buffer(path / "replay_buffer.npz", model)
    return LoadedCheckpoint(path, state, params, variables, buffer)


def restore_checkpoint(model: BaseAlgorithm, path: Path) -> dict:
    """Check checkpoint folder ``path`` (:func:`load_checkpoint`), then restore it into ``model``; returns its state.

    :raises CheckpointError: naming the folder and what is wrong with it; ``model`` is then unchanged.
    """
    try:
        loaded = load_checkpoint(path, model)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {path} cannot be used: {e}") from None
    return loaded.apply(model)


def find_resumable(run_dir: Path, model: BaseAlgorithm) -> LoadedCheckpoint | None:
    """The newest checkpoint of ``run_dir`` that fits ``model``, read (not applied); None when the run has none.

    Each newer one that does not fit is reported on one line (folder and reason) and renamed to
    ``step_<N>.damaged``: kept for inspection, but out of the way of pruning and of the resumed
    session's own checkpoints.

    :raises CheckpointError: the run has checkpoints but none can be used. Starting over instead would
        silently throw away the training the user asked to continue (and prune the damaged folders with
        it), the way ``SAC.load`` on a damaged file raises rather than returning a fresh model; the
        message lists every checkpoint with its reason and says how to start over deliberately.
    """
    folders = checkpoint_folders(run_dir)
    rejected: list[tuple[Path, str]] = []
    for folder in reversed(folders):
        try:
            loaded = load_checkpoint(folder, model)
        except CheckpointError as e:
            rejected.append((folder, str(e)))
            continue
        for bad, reason in rejected:
            moved = _set_aside(bad)
            print(f"skipping checkpoint {bad}: {reason}; moved to {moved.name}")
        return loaded
    if not rejected:
        return None
    reasons = "; ".join(f"{folder.name}: {reason}" for folder, reason in rejected)
    raise CheckpointError(
        f"{checkpoint_dir(run_dir)} has no checkpoint that can be resumed from ({reasons}); to start this run "
        f"over, move that folder away and resume again, or start a new run with `roboreward train`"
    )


def reward_normalizer(env) -> RunningNormalizer | None:
    """The learned-reward normaliser of the reward wrapper inside ``env`` (a vector env or an env), if any."""
    while env is not None:
        postprocess = getattr(env, "postprocess", None)
        if postprocess is not None:
            return postprocess.normalizer
        env = getattr(env, "venv", None) or getattr(env, "env", None)
    return None


def refitted_model_file(checkpoint: Path, role: str = "reward") -> Path:
    """Where a checkpoint keeps the head of its ``role`` model (``reward``, ``potential``) as refitted then."""
    return checkpoint / f"{role}_model.npz"


def refitting_models(env) -> dict[str, Any]:
    """The models that the reward wrappers inside ``env`` refit on the agent's episodes, by role (``reward``,
    ``potential``): their refitted heads are part of a checkpoint."""
    out: dict[str, Any] = {}
    while env is not None:
        own = vars(env)  # not getattr: a VecEnvWrapper hands on attributes of the envs it wraps
        feed = own.get("feed")
        if feed is not None and feed.model is not None:
            out["potential" if "potential" in own else "reward"] = feed.model
        env = own.get("venv") or own.get("env")
    return out


def restore_reward_normalizer(env, state: dict) -> bool:
    """Load a checkpoint's normaliser statistics into ``env``'s reward wrapper; False when either side has none."""
    normalizer = reward_normalizer(env)
    if normalizer is None or "reward_normalizer" not in state:
        return False
    normalizer.load_state_dict(state["reward_normalizer"])
    return True


def _set_weights(model: BaseAlgorithm, params: dict, variables: dict | None) -> None:
    model.set_parameters(params, exact_match=True, device=model.device)
    for name, value in (variables or {}).items():
        _attribute(model, name).data.copy_(value.data)


def _attribute(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _set_aside(folder: Path) -> Path:
    target = folder.with_name(folder.name + DAMAGED_SUFFIX)
    n = 1
    while target.exists():
        n += 1
        target = folder.with_name(f"{folder.name}{DAMAGED_SUFFIX}-{n}")
    folder.rename(target)
    fsync_dir(folder.parent)
    return target


def _check_state(path: Path, steps_in_name: int, needs_normalizer: bool) -> dict:
    if not path.is_file():
        raise CheckpointError("state.json is missing")
    try:
        state = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"state.json is not readable JSON ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"state.json holds a {type(state).__name__}, not an object of counters")
    for key in _COUNTERS:
        if key not in state:
            raise CheckpointError(f"state.json has no {key!r}")
        if not is_whole_number(state[key]):
            raise CheckpointError(f"state.json: {key} is {state[key]!r}, not a non-negative integer")
    if state["num_timesteps"] != steps_in_name:
        raise CheckpointError(
            f"state.json: num_timesteps is {state['num_timesteps']}, the folder name says {steps_in_name}"
        )
    if "session" in state and not is_whole_number(state["session"]):
        raise CheckpointError(f"state.json: session is {state['session']!r}, not a non-negative integer")
    if "train_seconds" in state and not is_finite_number(state["train_seconds"], 0):
        raise CheckpointError(f"state.json: train_seconds is {state['train_seconds']!r}, not a non-negative number")
    if needs_normalizer:
        stats = state.get("reward_normalizer")
        if stats is None:
            raise CheckpointError(
                "state.json has no reward_normalizer statistics, which this run's reward.normalize needs"
            )
        if not (
            isinstance(stats, dict) and is_whole_number(stats.get("count"))
            and is_finite_number(stats.get("mean")) and is_finite_number(stats.get("m2"), 0)
        ):
            raise CheckpointError(
                f"state.json: reward_normalizer is {stats!r}, not {{count: int >= 0, mean: number, m2: number >= 0}}"
            )
    return state


def _read_weights(path: Path, model: BaseAlgorithm) -> tuple[dict, dict]:
    if not path.is_file():
        raise CheckpointError("model.zip is missing")
    try:
        _, params, variables = load_from_zip_file(path, load_data=False, device=get_device(model.device))
    except Exception as e:  # a damaged zip or tensor file fails in zipfile, torch or SB3, with many types
        raise CheckpointError(f"model.zip cannot be read ({type(e).__name__}: {e})") from None
    variables = variables or {}
    expected = set(model.get_parameters())
    if not params:  # zipfile can take a cut-off archive's last inner .pth (itself a zip) for the whole file
        raise CheckpointError("model.zip holds no weights (a truncated or garbled file?)")
    if set(params) != expected:
        raise CheckpointError(f"model.zip holds {sorted(params)}, the model needs {sorted(expected)}")
    for name, saved in params.items():
        target = _attribute(model, name)
        if isinstance(target, torch.optim.Optimizer):
            _check_optimizer(name, saved, target)
        else:
            _check_tensors(name, saved, getattr(target, "_orig_mod", target).state_dict())
    for name, value in variables.items():
        try:
            target = _attribute(model, name)
        except AttributeError:
            raise CheckpointError(f"model.zip holds the variable {name!r}, which the model does not have") from None
        if not isinstance(value, torch.Tensor) or value.shape != target.shape:
            raise CheckpointError(f"model.zip: {name} does not have the model's shape {tuple(target.shape)}")
    return params, variables


def _check_tensors(name: str, saved: Any, current: dict) -> None:
    if not isinstance(saved, dict) or set(saved) != set(current):
        raise CheckpointError(f"model.zip: the tensors of {name} are not the model's (another net_arch or policy?)")
    for key, value in current.items():
        if not isinstance(saved[key], torch.Tensor) or saved[key].shape != value.shape:
            shape = tuple(saved[key].shape) if isinstance(saved[key], torch.Tensor) else type(saved[key]).__name__
            raise CheckpointError(f"model.zip: {name}.{key} has shape {shape}, the model's is {tuple(value.shape)}")


def _check_optimizer(name: str, saved: Any, optimizer: torch.optim.Optimizer) -> None:
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or not isinstance(saved.get("state"), dict):
        raise CheckpointError(f"model.zip: {name} is not an optimiser state")
    sizes = [len(g.get("params", ())) for g in groups if isinstance(g, dict)]
    if sizes != [len(g["params"]) for g in optimizer.param_groups]:
        raise CheckpointError(f"model.zip: {name} optimises other parameters than the model's")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, entries in saved["state"].items():
        if not (isinstance(index, int) and 0 <= index < len(params) and isinstance(entries, dict)):
            raise CheckpointError(f"model.zip: {name} has state for a parameter the model does not have")
        for key, value in entries.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[index].shape:
                raise CheckpointError(
                    f"model.zip: {name} {key} has shape {tuple(value.shape)}, its parameter {tuple(params[index].shape)}"
                )


def _read_buffer(path: Path, model: OffPolicyAlgorithm) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError("replay_buffer.npz is missing (resuming without it would start from an empty buffer)")
    rb = model.replay_buffer
    assert rb is not None
    fields = [f for f in _BUFFER_FIELDS if getattr(rb, f, None) is not None]
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [f for f in ("pos", "full", *fields) if f not in data.files]
            if missing:
                raise CheckpointError(f"replay_buffer.npz has no {', '.join(missing)}")
            arrays = {f: data[f] for f in ("pos", "full", *fields)}  # reading each member checks its CRC
    except CheckpointError:
        raise
    except Exception as e:  # truncated or garbled: zipfile, zlib or numpy errors
        raise CheckpointError(f"replay_buffer.npz cannot be read ({type(e).__name__}: {e})") from None
    pos, full = arrays["pos"], arrays["full"]
    if pos.shape != () or pos.dtype.kind not in "iu" or not 0 <= int(pos) < rb.buffer_size:
        raise CheckpointError(f"replay_buffer.npz: pos is {pos!r}, not an index below buffer_size {rb.buffer_size}")
    if full.shape != () or full.dtype != np.bool_:
        raise CheckpointError(f"replay_buffer.npz: full is {full!r}, not a boolean")
    rows = rb.buffer_size if bool(full) else int(pos)
    for f in fields:
        target = getattr(rb, f)
        expected = (rows, *target.shape[1:])
        if arrays[f].shape != expected:
            raise CheckpointError(
                f"replay_buffer.npz: {f} has shape {arrays[f].shape}, expected {expected} "
                f"(rows from pos={int(pos)}, full={bool(full)}; then n_envs and the model's sizes)"
            )
        if not np.can_cast(arrays[f].dtype, target.dtype, casting="same_kind"):
            raise CheckpointError(f"replay_buffer.npz: {f} is {arrays[f].dtype}, the buffer holds {target.dtype}")
    return arrays
