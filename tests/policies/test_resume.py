"""Resuming through roboreward's own ``train()``/``resume()``: exact continuation, fallback, logs, stopping.

Real SAC on ArmReach (50-step episodes, no termination) with 2 envs and the env's own reward, so a
checkpoint's contents can be predicted exactly: after ``N`` steps the buffer holds ``N / 2`` rows, every
100 steps both envs end an episode, and SAC has done one gradient step per row past ``learning_starts``.
"""

import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import open_clip
import pytest

from roboreward.config import from_dict
from roboreward.envs.make import make_vec_env
from roboreward.errors import CheckpointError
from roboreward.experiment import ExperimentConfig
from roboreward.policies.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from roboreward.policies.train import build_algorithm, resume, train
from roboreward.rewards import make_reward_model

N_ENVS, LEARNING_STARTS = 2, 50


def small_config(tmp_path, total=300, **train):
    return from_dict(ExperimentConfig, {
        "name": "resume",
        "runs_dir": str(tmp_path / "runs"),
        "reward": {"type": "env"},
        "env": {"n_envs": N_ENVS},
        "algo": {
            "net_arch": [32, 32],
            "hyperparams": {"learning_starts": LEARNING_STARTS, "buffer_size": 1000, "batch_size": 32,
                            "train_freq": 1, "gradient_steps": 1},
        },
        "train": {"total_timesteps": total, "checkpoint_every": 100, "keep_checkpoints": 10,
                  "progress_bar": False, "torch_threads": 1, **train},
    })


def checkpoint_contents(path, config):
    """(state, replay buffer arrays) of a checkpoint, checked against a model of ``config``."""
    venv = make_vec_env(config.env, None, seed=0)
    try:
        loaded = load_checkpoint(path, build_algorithm(config, venv))
    finally:
        venv.close()
    return loaded.state, loaded.buffer


def expected_updates(steps):
    """SAC trains after each vector step once num_timesteps > learning_starts, gradient_steps=1."""
    return sum(1 for k in range(1, steps // N_ENVS + 1) if k * N_ENVS > LEARNING_STARTS)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    config = small_config(tmp)
    return train(config, tmp / "run"), config


def kill_after(run, steps):
    """Make ``run`` look killed right after its checkpoint at ``steps``: later checkpoints and results gone."""
    for path in list_checkpoints(run):
        if int(path.name.split("_")[1]) > steps:
            shutil.rmtree(path)
    (run / "model.zip").unlink(missing_ok=True)
    (run / "train_summary.json").unlink(missing_ok=True)


def test_every_checkpoint_holds_exactly_the_steps_it_is_named_after(finished_run):
    run, config = finished_run
    assert [p.name for p in list_checkpoints(run)] == ["step_000000100", "step_000000200", "step_000000300"]
    for path in list_checkpoints(run):
        state, buffer = checkpoint_contents(path, config)
        steps = state["num_timesteps"]
        assert int(buffer["pos"]) == steps // N_ENVS and not buffer["full"]  # the triggering step is stored
        assert state["episode_num"] == int(buffer["dones"].sum()) == N_ENVS * (steps // 100)  # its episodes counted
        assert buffer["dones"][-1].all()  # both envs ended an episode on that very step
        assert state["n_updates"] == expected_updates(steps)  # and its gradient step is done


def test_a_resumed_run_continues_from_the_checkpoint_exactly(finished_run, tmp_path, capsys):
    base, config = finished_run
    run = tmp_path / "run"
    shutil.copytree(base, run)
    kill_after(run, 200)
    _, before = checkpoint_contents(run / "checkpoints" / "step_000000200", config)
    capsys.readouterr()

    resume(run)

    assert "resuming" in capsys.readouterr().out and (run / "model.zip").is_file()
    state, buffer = checkpoint_contents(run / "checkpoints" / "step_000000300", config)
    assert state["session"] == 1 and int(buffer["pos"]) == 150
    for field in ("observations", "next_observations", "actions", "rewards", "dones"):
        np.testing.assert_array_equal(buffer[field][:100], before[field])  # the first 200 steps, as they were
    assert state["episode_num"] == int(buffer["dones"].sum()) == 6
    assert state["n_updates"] == expected_updates(300)  # one gradient step per row past learning_starts, none lost
    # The resumed session's envs were reset with other seeds than the first session's.
    assert not np.array_equal(buffer["observations"][100], buffer["observations"][0])


def test_resume_falls_back_past_a_damaged_checkpoint_and_no_log_is_overwritten(finished_run, tmp_path, capsys):
    base, config = finished_run
    run = tmp_path / "run"
    shutil.copytree(base, run)
    kill_after(run, 200)
    resume(run)  # a first resume from step 200, killed later
    with open(run / "progress-resume1.csv", "a") as f:
        f.write("the first resume's log\n")  # it logs nothing in 100 steps (SB3 logs every 4 episodes)
    first_resume_log = (run / "progress-resume1.csv").read_bytes()
    first_log = (run / "progress.csv").read_bytes()
    assert first_log
    (run / "model.zip").unlink()
    (run / "checkpoints" / "step_000000300" / "state.json").write_text('{"num_timesteps": 3')  # torn write
    capsys.readouterr()

    resume(run)  # a second resume: step 300 is damaged, so from step 200 again, as session 1 again

    out = capsys.readouterr().out
    assert f"skipping checkpoint {run / 'checkpoints' / 'step_000000300'}: state.json is not readable JSON" in out
    assert "resuming" in out and "from step_000000200 (200 steps done)" in out
    assert (run / "checkpoints" / "step_000000300.damaged").is_dir()
    state, buffer = checkpoint_contents(run / "checkpoints" / "step_000000300", config)
    assert state["session"] == 1 and int(buffer["pos"]) == 150
    assert (run / "progress-resume1.csv").read_bytes() == first_resume_log
    assert (run / "progress.csv").read_bytes() == first_log
    assert (run / "progress-resume1-2.csv").is_file()


def test_resume_without_any_usable_checkpoint_is_a_clear_error(finished_run, tmp_path):
    base, _ = finished_run
    run = tmp_path / "run"
    shutil.copytree(base, run)
    for path in list_checkpoints(run):
        (path / "replay_buffer.npz").unlink()
    with pytest.raises(CheckpointError, match="no checkpoint that can be resumed from .*step_000000300: replay_buffer.npz is missing"):
        resume(run)
    assert len(list_checkpoints(run)) == 3  # nothing moved or deleted


def test_sigterm_stops_training_at_a_consistent_checkpoint(tmp_path, capsys):
    config = small_config(tmp_path, total=20_000)
    run = tmp_path / "run"
    first = run / "checkpoints" / "step_000000100"

    def terminate_after_first_checkpoint():
        deadline = time.monotonic() + 300
        while not first.is_dir() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    sender = threading.Thread(target=terminate_after_first_checkpoint, daemon=True)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        train(config, run)
    sender.join()
    assert signal.getsignal(signal.SIGTERM) is previous

    out = capsys.readouterr().out
    newest = list_checkpoints(run)[-1]
    steps = int(newest.name.split("_")[1])
    assert f"stopped by SIGTERM at {steps} steps with checkpoint {newest}" in out
    assert f"roboreward train --resume {run}" in out
    state, buffer = checkpoint_contents(newest, config)
    assert int(buffer["pos"]) * N_ENVS == steps and state["n_updates"] == expected_updates(steps)
    assert not (run / "model.zip").exists()  # the run is not finished


def test_the_learned_reward_normaliser_statistics_are_required_when_the_reward_uses_them(tmp_path):
    arch = "roboreward-test-tiny-resume"
    tiny = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
    (tmp_path / f"{arch}.json").write_text(json.dumps(tiny))
    open_clip.add_model_config(tmp_path / f"{arch}.json")
    config = from_dict(ExperimentConfig, {
        "env": {"id": "roboreward/HumanoidPose-v0", "n_envs": 1, "render": {"width": 32, "height": 32}},
        "reward": {"type": "clip", "model": arch, "weights": "random", "goal_prompts": ["kneeling"],
                   "baseline_prompts": ["a humanoid"], "normalize": True},
        "algo": {"net_arch": [32, 32], "hyperparams": {"buffer_size": 100}},
    })
    venv = make_vec_env(config.env, make_reward_model(config.reward), seed=0)
    try:
        model = build_algorithm(config, venv)
        path = save_checkpoint(model, tmp_path, keep=1)
        assert load_checkpoint(path, model).state["reward_normalizer"]["count"] == 0
        state = json.loads((path / "state.json").read_text())
        del state["reward_normalizer"]
        (path / "state.json").write_text(json.dumps(state))
        with pytest.raises(CheckpointError, match="no reward_normalizer statistics"):
            load_checkpoint(path, model)
    finally:
        venv.close()

