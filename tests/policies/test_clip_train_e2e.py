"""VLM-RM end to end: SAC on the humanoid with a CLIP reward, through roboreward's own ``train()``.

The CLIP is a tiny open_clip architecture with random weights (nothing is downloaded): the test checks
the plumbing — frames rendered in the envs, scored by CLIP in one batch per step, smoothed and
normalised, trained on, and logged beside the env's own pose score — not that the policy learns.
About 6 s on 2 idle cores (30 s when they are busy with other work), so it is not marked slow.
"""

import csv
import json

import numpy as np
import open_clip
import pytest

from roboreward.config import from_dict
from roboreward.envs.make import make_vec_env
from roboreward.experiment import ExperimentConfig
from roboreward.policies.checkpoints import list_checkpoints, read_state, restore_reward_normalizer, reward_normalizer
from roboreward.policies.train import train
from roboreward.rewards import make_reward_model

ARCH = "roboreward-test-tiny"
TINY_CLIP = {  # as tests/rewards/test_clip.py's: real open_clip classes, 2 layers of width 64, 32x32 input
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture
def tiny_clip(tmp_path):
    path = tmp_path / f"{ARCH}.json"
    path.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(path)
    return ARCH


def test_sac_on_the_humanoid_with_a_clip_reward_logs_learned_and_true_returns(tmp_path, tiny_clip):
    config = from_dict(ExperimentConfig, {
        "name": "clip_e2e",
        "runs_dir": str(tmp_path / "runs"),
        "env": {
            "id": "roboreward/HumanoidPose-v0",
            "n_envs": 2,
            "kwargs": {"task": "kneeling", "max_episode_steps": 25},  # short fixed-length episodes
            "render": {"width": 32, "height": 32},  # the tiny CLIP's input size
        },
        "reward": {
            "type": "clip", "model": tiny_clip, "weights": "random",
            "goal_prompts": ["a humanoid robot kneeling"], "baseline_prompts": ["a humanoid robot"],
            "smoothing_window": 3, "normalize": True,
        },
        "algo": {
            "name": "sac", "net_arch": [32, 32],
            "hyperparams": {"learning_starts": 100, "batch_size": 32, "buffer_size": 1000, "gradient_steps": 1},
        },
        "train": {"total_timesteps": 300, "checkpoint_every": 1000, "progress_bar": False, "torch_threads": 2},
    })
    run = train(config)

    with open(run / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows, "nothing was logged"
    logged = [r for r in rows if r.get("rollout/ep_rew_mean") and r.get("rollout/ep_true_rew_mean")]
    assert logged, f"no row has both returns; columns: {sorted(rows[0])}"
    learned = float(logged[-1]["rollout/ep_rew_mean"])
    true = float(logged[-1]["rollout/ep_true_rew_mean"])
    assert np.isfinite(learned) and np.isfinite(true)
    assert abs(learned) <= 25 * 10.0  # normalised learned rewards are clipped to ±10 a step
    assert -25 * 0.2 <= true <= 25 * 1.0  # a step: the pose score, in [0, 1], minus a control cost of at most 0.14
    assert float(logged[-1]["time/total_timesteps"]) >= 200
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["timesteps"] == 300 and (run / "model.zip").is_file()

    # The normaliser's statistics travel with the checkpoint: every learned reward of every env step was
    # seen, and a new reward wrapper (resume, eval) starts from them instead of from nothing.
    stats = read_state(list_checkpoints(run)[-1])["reward_normalizer"]
    assert stats["count"] == 300 and np.isfinite(stats["mean"]) and stats["m2"] > 0
    venv = make_vec_env(config.env, make_reward_model(config.reward), seed=1)
    try:
        assert reward_normalizer(venv).count == 0
        assert restore_reward_normalizer(venv, {"reward_normalizer": stats})
        assert reward_normalizer(venv).state_dict() == stats
    finally:
        venv.close()
