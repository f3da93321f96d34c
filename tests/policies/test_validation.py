"""Validation while training (``train.validate_every``): the best policy kept in RUN/best/, scored by eval.

Real SAC on ArmReach with the env's own reward (2 envs, 50-step episodes); validations every 100 env steps.
"""

import csv

import numpy as np
import pytest
import torch

from roboreward.config import from_dict
from roboreward.envs.make import make_env
from roboreward.errors import CheckpointError, ConfigError
from roboreward.experiment import ExperimentConfig
from roboreward.policies.acting import Actor, run_episode
from roboreward.policies.callbacks import VALIDATION_SEED_OFFSET, BestPolicy
from roboreward.policies.checkpoints import load_weights
from roboreward.policies.evaluate import EVAL_SEED_OFFSET, evaluate, find_model, training_state_dir
from roboreward.policies.train import build_algorithm, train

EPISODES = 3


def config(tmp_path, **train_section):
    return from_dict(ExperimentConfig, {
        "name": "validation",
        "runs_dir": str(tmp_path / "runs"),
        "reward": {"type": "env"},
        "env": {"n_envs": 2},
        "algo": {"net_arch": [32, 32],
                 "hyperparams": {"learning_starts": 50, "buffer_size": 1000, "batch_size": 32, "gradient_steps": 1}},
        "train": {"total_timesteps": 400, "checkpoint_every": 200, "progress_bar": False, "torch_threads": 1,
                  **train_section},
        "eval": {"episodes": 2, "video": False},
    })


@pytest.fixture(scope="module")
def validated_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validated")
    cfg = config(tmp, validate_every=100, validate_episodes=EPISODES)
    return train(cfg, tmp / "run"), cfg


def replay_validation(cfg, model_zip):
    """(success rate, mean return) of the policy in ``model_zip`` on the validation episodes, played again."""
    policy = build_algorithm(cfg)
    load_weights(policy, model_zip)
    env = make_env(cfg.env, render=False)
    try:
        actor = Actor(policy, deterministic=True)
        played = [run_episode(env, actor, cfg.seed + VALIDATION_SEED_OFFSET + k) for k in range(EPISODES)]
    finally:
        env.close()
    return float(np.mean([e.success for e in played])), float(np.mean([sum(e.true) for e in played]))


def test_every_validation_is_logged_and_the_best_one_is_kept_with_its_policy(validated_run):
    run, cfg = validated_run
    rows = list(csv.DictReader((run / "validations.csv").open()))
    assert [int(r["step"]) for r in rows] == [100, 200, 300, 400]
    scores = [(float(r["success_rate"]), float(r["learned_return"])) for r in rows]
    best = BestPolicy(cfg, run).best  # what a resumed run would read: the score to beat
    assert (best["success_rate"], best["learned_return"]) == max(scores)
    assert best["step"] == int(rows[scores.index(max(scores))]["step"]) and best["episodes"] == EPISODES
    # The policy in best/ is the one that scored it: played again on the same episodes, the same figures.
    success, returns = replay_validation(cfg, run / "best" / "model.zip")
    assert success == best["success_rate"] and returns == pytest.approx(best["learned_return"], rel=1e-9)
    assert not list(run.glob("best.*")), "no temporary folder is left behind"


def test_validation_changes_nothing_in_training(validated_run, tmp_path):
    run, cfg = validated_run
    plain = train(config(tmp_path), tmp_path / "plain")
    with_validation, without = build_algorithm(cfg), build_algorithm(cfg)
    load_weights(with_validation, run / "model.zip")
    load_weights(without, plain / "model.zip")
    for a, b in zip(with_validation.policy.parameters(), without.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not (plain / "best").exists() and not (plain / "validations.csv").exists()


def test_eval_scores_the_best_policy_when_the_config_says_so(validated_run, tmp_path):
    run, cfg = validated_run
    assert find_model(run) == run / "model.zip"
    best = evaluate(run, overrides=["eval.policy=best"], out_dir=tmp_path / "eval")
    assert best["model"] == "best/model.zip"
    assert evaluate(run, checkpoint="best", out_dir=tmp_path / "named")["true_return"] == best["true_return"]
    assert training_state_dir(run, run / "best" / "model.zip") == run / "best"  # its reward heads, not the final's
    # Validation and evaluation play different episodes.
    assert not {cfg.seed + VALIDATION_SEED_OFFSET + k for k in range(EPISODES)} & {
        cfg.seed + EVAL_SEED_OFFSET + k for k in range(1_000_000)}


def test_best_policy_needs_validation(tmp_path):
    with pytest.raises(ConfigError, match="train.validate_every"):
        from_dict(ExperimentConfig, {"eval": {"policy": "best"}})
    with pytest.raises(CheckpointError, match="no validation has run yet"):
        find_model(tmp_path, policy="best")
