import numpy as np
import torch

from roboreward.config import apply_override, from_dict
from roboreward.experiment import ExperimentConfig
from roboreward.policies.checkpoints import list_checkpoints, restore_checkpoint, save_checkpoint
from roboreward.policies.train import build_algorithm


SMALL_SAC = ("algo.hyperparams.learning_starts=50", "algo.hyperparams.buffer_size=1000")


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
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000200", "step_000000300"]
