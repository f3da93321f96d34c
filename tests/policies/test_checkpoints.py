import json
import os
import re
import shutil
import signal
import zipfile

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from roboreward.config import apply_override, from_dict
from roboreward.errors import CheckpointError
from roboreward.experiment import ExperimentConfig
from roboreward.policies.callbacks import Checkpointer, stop_on_signals
from roboreward.policies.checkpoints import (
    find_resumable,
    list_checkpoints,
    load_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from roboreward.policies.train import build_algorithm

# Small networks and batches: the tests check bookkeeping, and SAC's updates dominate their time.
SMALL_SAC = (
    "algo.hyperparams.learning_starts=50", "algo.hyperparams.buffer_size=1000", "algo.net_arch=[32, 32]",
    "algo.hyperparams.batch_size=32", "algo.hyperparams.gradient_steps=1",
)
NEWER, OLDER = "step_000000200", "step_000000100"


def config(*overrides):
    data: dict = {}
    for o in ("reward.type=env", *overrides):
        apply_override(data, o)
    return from_dict(ExperimentConfig, data)


def test_checkpoint_round_trip_restores_weights_counters_buffer_and_entropy(tmp_path):
    cfg = config(*SMALL_SAC)
    model = build_algorithm(cfg)
    model.learn(300)
    path = save_checkpoint(model, tmp_path, keep=2)

    fresh = build_algorithm(cfg)
    state = restore_checkpoint(fresh, path)
    assert state["num_timesteps"] == fresh.num_timesteps == 300
    for a, b in zip(model.policy.state_dict().values(), fresh.policy.state_dict().values()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(model.log_ent_coef, fresh.log_ent_coef)
    assert fresh.replay_buffer.pos == model.replay_buffer.pos == 300
    np.testing.assert_array_equal(fresh.replay_buffer.observations[:300], model.replay_buffer.observations[:300])
    np.testing.assert_array_equal(fresh.replay_buffer.rewards[:300], model.replay_buffer.rewards[:300])


def test_ppo_checkpoint_round_trip(tmp_path):
    cfg = config("algo.name=ppo", "algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64", "env.n_envs=1")
    assert cfg.algo.hyperparams["n_epochs"] == 10  # PPO's defaults, not SAC's
    model = build_algorithm(cfg)
    model.learn(128)
    path = save_checkpoint(model, tmp_path, keep=1)
    assert not (path / "replay_buffer.npz").exists()
    fresh = build_algorithm(cfg)
    restore_checkpoint(fresh, path)
    assert fresh.num_timesteps == 128
    for a, b in zip(model.policy.state_dict().values(), fresh.policy.state_dict().values()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(
        model.policy.optimizer.state_dict()["state"][0]["exp_avg"], fresh.policy.optimizer.state_dict()["state"][0]["exp_avg"]
    )


def test_only_complete_checkpoints_count_and_old_ones_are_pruned(tmp_path):
    model = build_algorithm(config(*SMALL_SAC))
    for steps in (100, 200, 300):
        model.num_timesteps = steps
        save_checkpoint(model, tmp_path, keep=2)
    (tmp_path / "checkpoints" / "step_000000400.tmp").mkdir()  # a save killed half-way
    (tmp_path / "checkpoints" / "step_000000050.damaged").mkdir()  # set aside by a resume
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000200", "step_000000300"]


def test_each_file_is_fsynced_before_the_rename_and_the_rename_after_it(tmp_path, monkeypatch):
    model = build_algorithm(config(*SMALL_SAC))
    model.learn(60)
    synced: list[tuple[str, bool]] = []  # (path synced, whether the final folder existed then)
    final = tmp_path / "checkpoints" / "step_000000060"
    real_fsync = os.fsync

    def spy(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), final.is_dir()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    save_checkpoint(model, tmp_path, keep=2)
    tmp_folder = str(final) + ".tmp"
    for name in ("model.zip", "replay_buffer.npz", "state.json"):
        assert (f"{tmp_folder}/{name}.tmp", False) in synced, f"{name} was not flushed before the rename: {synced}"
    assert synced[-1] == (str(final.parent), True), "the checkpoints folder was not synced after the rename"


# --- checking a checkpoint before trusting it -------------------------------------------------------


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """A run folder with intact checkpoints at 100 and 200 steps, and a fresh model of the same config."""
    cfg = config(*SMALL_SAC)
    run = tmp_path_factory.mktemp("run")
    model = build_algorithm(cfg)
    model.learn(100)
    save_checkpoint(model, run, keep=5)
    model.learn(100, reset_num_timesteps=False)
    save_checkpoint(model, run, keep=5)
    return run, build_algorithm(cfg)


def _edit_state(path, **changes):
    state = json.loads((path / "state.json").read_text())
    state.update(changes)
    (path / "state.json").write_text(json.dumps(state))


def _edit_buffer(path, edit):
    with np.load(path / "replay_buffer.npz") as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    np.savez(path / "replay_buffer.npz", **arrays)


def _truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _garble_member(file, member):
    """Overwrite bytes in the middle of one zip member's data; the zip's directory stays intact."""
    with zipfile.ZipFile(file) as z:
        info = z.getinfo(member)
    data = bytearray(file.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    data[start:start + 16] = b"\xff" * 16
    file.write_bytes(bytes(data))


def _other_net_arch_model(path):
    other = build_algorithm(config(*SMALL_SAC, "algo.net_arch=[16, 16]"))
    other.save(path / "model.zip")


# damage done to the newer checkpoint -> the reason a resume must give (text, or a pattern where truncation
# can fail in either of two places)
DAMAGE = {
    "state.json garbled": (lambda p: (p / "state.json").write_text('{"num_timesteps": 2'), "state.json is not readable JSON"),
    "state.json not an object": (lambda p: (p / "state.json").write_text("[200, 3, 5]"), "state.json holds a list"),
    "state.json missing": (lambda p: (p / "state.json").unlink(), "state.json is missing"),
    "counter missing": (lambda p: (p / "state.json").write_text('{"num_timesteps": 200, "episode_num": 4}'), "no 'n_updates'"),
    "counter a string": (lambda p: _edit_state(p, num_timesteps="200"), "num_timesteps is '200'"),
    "counter a float": (lambda p: _edit_state(p, num_timesteps=200.0), "num_timesteps is 200.0"),
    "counter a bool": (lambda p: _edit_state(p, n_updates=True), "n_updates is True"),
    "counter negative": (lambda p: _edit_state(p, episode_num=-1), "episode_num is -1"),
    "session negative": (lambda p: _edit_state(p, session=-2), "session is -2"),
    "steps not the folder's": (lambda p: _edit_state(p, num_timesteps=100), "num_timesteps is 100, the folder name says 200"),
    "model.zip missing": (lambda p: (p / "model.zip").unlink(), "model.zip is missing"),
    "model.zip truncated": (lambda p: _truncate(p / "model.zip"), re.compile("model.zip (cannot be read|holds no weights)")),
    "model.zip of another net_arch": (_other_net_arch_model, "has shape"),
    "buffer missing": (lambda p: (p / "replay_buffer.npz").unlink(), "replay_buffer.npz is missing"),
    "buffer truncated": (lambda p: _truncate(p / "replay_buffer.npz"), "replay_buffer.npz cannot be read"),
    "buffer garbled": (lambda p: _garble_member(p / "replay_buffer.npz", "observations.npy"), "replay_buffer.npz cannot be read"),
    "buffer without a field": (lambda p: _edit_buffer(p, lambda a: a.pop("rewards")), "replay_buffer.npz has no rewards"),
    "buffer pos out of range": (lambda p: _edit_buffer(p, lambda a: a.update(pos=np.asarray(5000))), "pos is"),
    "buffer shorter than pos": (lambda p: _edit_buffer(p, lambda a: a.update(pos=np.asarray(199))), "observations has shape (200, 1"),
    "buffer of other observations": (
        lambda p: _edit_buffer(p, lambda a: a.update(observations=a["observations"][..., :-1])), "observations has shape"),
    "buffer of other n_envs": (
        lambda p: _edit_buffer(p, lambda a: a.update(actions=np.repeat(a["actions"], 2, axis=1))), "actions has shape (200, 2"),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_newest_checkpoint_is_skipped_for_the_previous_one(damage, two_checkpoints, tmp_path, capsys):
    base, fresh = two_checkpoints
    run = tmp_path / "run"
    shutil.copytree(base, run)
    break_it, reason = DAMAGE[damage]
    break_it(run / "checkpoints" / NEWER)

    loaded = find_resumable(run, fresh)

    assert loaded is not None and loaded.path.name == OLDER and loaded.state["num_timesteps"] == 100
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    said = reason.search(out[0]) if isinstance(reason, re.Pattern) else reason in out[0]
    assert NEWER in out[0] and said and f"moved to {NEWER}.damaged" in out[0], out[0]
    assert [p.name for p in list_checkpoints(run)] == [OLDER]  # out of the way of pruning
    assert (run / "checkpoints" / f"{NEWER}.damaged").is_dir()
    assert fresh.num_timesteps == 0 and fresh.replay_buffer.pos == 0  # checking changed nothing


def test_intact_checkpoints_are_used_as_they_are(two_checkpoints, tmp_path, capsys):
    base, fresh = two_checkpoints
    run = tmp_path / "run"
    shutil.copytree(base, run)
    loaded = find_resumable(run, fresh)
    assert loaded is not None and loaded.path.name == NEWER
    assert capsys.readouterr().out == ""
    assert find_resumable(tmp_path / "no-run", fresh) is None  # nothing to resume: the caller starts over


def test_no_usable_checkpoint_is_an_error_listing_each_one_and_moves_nothing(two_checkpoints, tmp_path):
    base, fresh = two_checkpoints
    run = tmp_path / "run"
    shutil.copytree(base, run)
    (run / "checkpoints" / NEWER / "replay_buffer.npz").unlink()
    _edit_state(run / "checkpoints" / OLDER, episode_num=-1)
    with pytest.raises(CheckpointError) as e:
        find_resumable(run, fresh)
    message = str(e.value)
    assert f"{NEWER}: replay_buffer.npz is missing" in message and f"{OLDER}: state.json: episode_num is -1" in message
    assert "move that folder away" in message
    assert [p.name for p in list_checkpoints(run)] == [OLDER, NEWER]


def test_restoring_a_damaged_checkpoint_names_it_and_leaves_the_model_alone(two_checkpoints, tmp_path):
    base, fresh = two_checkpoints
    run = tmp_path / "run"
    shutil.copytree(base, run)
    before = {k: v.clone() for k, v in fresh.policy.state_dict().items()}
    _edit_buffer(run / "checkpoints" / NEWER, lambda a: a.update(next_observations=a["next_observations"][:-1]))
    with pytest.raises(CheckpointError, match=f"checkpoint .*{NEWER} cannot be used: replay_buffer.npz: next_observations"):
        restore_checkpoint(fresh, run / "checkpoints" / NEWER)
    assert fresh.num_timesteps == 0
    for key, value in fresh.policy.state_dict().items():
        torch.testing.assert_close(value, before[key])


# --- where checkpoints are taken, and stopping on a signal -----------------------------------------------


class SendSignals(BaseCallback):
    """Send this process ``signals`` from inside SB3's loop, right after env step ``at``."""

    def __init__(self, at: int, *signals: int):
        super().__init__()
        self.at, self.signals = at, signals

    def _on_step(self) -> bool:
        if self.model.num_timesteps == self.at:
            for s in self.signals:
                os.kill(os.getpid(), s)
        return True


def test_a_signal_stops_sac_after_the_step_with_a_consistent_checkpoint(tmp_path):
    model = build_algorithm(config(*SMALL_SAC))
    checkpointer = Checkpointer(tmp_path, every=1000, keep=2)
    previous = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(checkpointer):
        model.learn(1000, callback=CallbackList([SendSignals(80, signal.SIGTERM), checkpointer]))
    assert signal.getsignal(signal.SIGTERM) is previous

    assert checkpointer.stopped and checkpointer.stop_reason == "SIGTERM" and checkpointer.stopped_at == 80
    assert model.num_timesteps == 81  # SB3 took one more env step, which the stop kept it from using
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000080"]
    loaded = load_checkpoint(list_checkpoints(tmp_path)[0], build_algorithm(config(*SMALL_SAC)))
    assert int(loaded.buffer["pos"]) == 80  # the step the signal came on is in the buffer
    assert loaded.state["n_updates"] == 80 - 50  # and its gradient step is done (learning_starts=50)
    assert loaded.state["episode_num"] == 1 and int(loaded.buffer["dones"].sum()) == 1


def test_a_signal_stops_ppo_after_the_rollout_and_a_second_one_at_once(tmp_path):
    cfg = config("algo.name=ppo", "algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64", "algo.net_arch=[32, 32]")
    model = build_algorithm(cfg)
    checkpointer = Checkpointer(tmp_path / "once", every=1000, keep=2)
    with stop_on_signals(checkpointer):
        model.learn(1000, callback=CallbackList([SendSignals(10, signal.SIGINT), checkpointer]))
    assert checkpointer.stopped and checkpointer.stopped_at == 64  # PPO is consistent between rollouts only
    state = json.loads((tmp_path / "once" / "checkpoints" / "step_000000064" / "state.json").read_text())
    assert state["n_updates"] == 10  # the update on that rollout: n_epochs=10 over one batch of 64

    model = build_algorithm(cfg)
    checkpointer = Checkpointer(tmp_path / "twice", every=1000, keep=2)
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with stop_on_signals(checkpointer):
            model.learn(1000, callback=CallbackList([SendSignals(10, signal.SIGTERM, signal.SIGINT), checkpointer]))
    assert signal.getsignal(signal.SIGINT) is previous
    assert model.num_timesteps == 10 and not checkpointer.stopped
    assert list_checkpoints(tmp_path / "twice") == []  # nothing written at an inconsistent point
