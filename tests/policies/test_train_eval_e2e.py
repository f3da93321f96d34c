"""train -> checkpoint -> kill -> resume -> eval, through the real CLI in real processes."""

import json
import os
import signal
import subprocess
import sys
import time

import imageio.v2 as imageio
import imageio.v3 as iio
import pytest

pytestmark = pytest.mark.slow

TOTAL = 900
SMALL = [
    f"train.total_timesteps={TOTAL}",
    "train.checkpoint_every=200",
    "train.keep_checkpoints=10",
    "env.n_envs=2",
    "algo.hyperparams.learning_starts=100",
    "algo.hyperparams.gradient_steps=1",
    "algo.hyperparams.buffer_size=5000",
    "eval.episodes=3",
    "eval.video_episodes=1",
    "eval.video_size=128",
]


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "roboreward.cli", *args], env=env, **kwargs)


def wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"training exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_train_kill_resume_eval(tmp_path, repo_root):
    run = tmp_path / "run"
    proc = cli("train", str(repo_root / "configs" / "arm_reach.yaml"), *SMALL, "--run-dir", str(run))
    first = run / "checkpoints" / "step_000000200"
    wait_for(lambda: (first / "state.json").exists(), 240, proc)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up
    proc.wait()
    assert not (run / "model.zip").exists(), "the kill came after training finished; the test needs a slower run"
    done_before = max(json.loads((p / "state.json").read_text())["num_timesteps"] for p in (run / "checkpoints").glob("step_*[0-9]"))
    assert done_before < TOTAL

    resumed = cli("train", "--resume", str(run), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resuming" in out and f"({done_before} steps done)" in out
    final = json.loads((run / "checkpoints" / f"step_{TOTAL:09d}" / "state.json").read_text())
    assert final["num_timesteps"] == TOTAL and final["session"] == 1
    assert (run / "model.zip").is_file() and (run / "progress.csv").is_file() and (run / "progress-resume1.csv").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["timesteps"] == TOTAL

    evaluation = cli("eval", str(run), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = evaluation.communicate(timeout=600)
    assert evaluation.returncode == 0, out
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["episodes"] == 3 and 0.0 <= metrics["success_rate"] <= 1.0
    assert metrics["episode_length"] == 50
    assert metrics["learned_return"]["mean"] <= 0.0 and metrics["true_return"]["mean"] < 0.0
    assert -1.0 <= metrics["reward_correlation"]["pearson"] <= 1.0
    with imageio.get_reader(run / "eval" / "episodes.mp4", "ffmpeg") as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 50 and frames[0].shape == (128, 128, 3)  # one episode, at eval.video_size
    plot = iio.imread(run / "eval" / "reward_plot.png")
    assert plot.ndim == 3 and plot.shape[0] > 100


def test_resume_and_eval_reject_a_folder_that_is_not_a_run(tmp_path):
    for args in (("train", "--resume", str(tmp_path)), ("eval", str(tmp_path))):
        proc = cli(*args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2 and "is not a run folder" in out


def test_a_train_that_fails_before_training_leaves_no_run_folder(tmp_path, repo_root):
    runs = tmp_path / "runs"
    proc = cli("train", str(repo_root / "configs" / "arm_reach.yaml"), f"runs_dir={runs}", f"bc.demos={tmp_path / 'none'}",
               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "bc.demos" in out and "roboreward demos record" in out and "--cameras  " not in out
    assert not runs.exists() or list(runs.iterdir()) == [], "a failed start left a run folder behind"
