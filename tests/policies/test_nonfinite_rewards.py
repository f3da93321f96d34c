"""A reward that comes out NaN or infinite stops training and evaluation with a named error; nothing is written."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from roboreward.config import apply_override, from_dict, save_config
from roboreward.errors import ConfigError, NonFiniteError
from roboreward.experiment import ExperimentConfig, load_experiment
from roboreward.rewards.base import RewardBatch, RewardConfig, RewardModel


@RewardConfig.register_subclass("nan_after_test")
@dataclass(kw_only=True)
class NanAfterConfig(RewardConfig):
    """A reward of 0, then NaN from the ``after``-th call on (a model whose weights went bad)."""

    after: int = 0


class NanAfterReward(RewardModel):
    name = "nan_after_test"
    config_class = NanAfterConfig
    requires_frames = False

    def __init__(self, config: NanAfterConfig):
        super().__init__(config)
        self.calls = 0

    def compute(self, batch: RewardBatch) -> np.ndarray:
        self.calls += 1
        return np.full(len(batch), np.nan if self.calls > self.config.after else 0.0, dtype=np.float32)


def tiny(*overrides: str) -> ExperimentConfig:
    data: dict = {}
    for o in ["algo.name=ppo", "env.n_envs=1", "train.total_timesteps=64", "algo.hyperparams.n_steps=64",
              "algo.hyperparams.batch_size=32", "algo.hyperparams.n_epochs=1", "train.progress_bar=false",
              "algo.net_arch=[16]", "eval.episodes=2", "eval.video=false", *overrides]:
        apply_override(data, o)
    return from_dict(ExperimentConfig, data)


def test_the_reward_model_refuses_to_return_nan():
    model = NanAfterReward(NanAfterConfig(after=1))
    np.testing.assert_array_equal(model(RewardBatch(observations=np.zeros((3, 2)))), np.zeros(3))
    with pytest.raises(NonFiniteError, match="reward model 'nan_after_test' returned 3 non-finite reward"):
        model(RewardBatch(observations=np.zeros((3, 2))))


def test_training_stops_at_the_first_nan_reward(tmp_path):
    from roboreward.policies.train import train

    with pytest.raises(NonFiniteError, match="nan_after_test"):
        train(tiny("reward.type=nan_after_test", "reward.after=10"), tmp_path / "run")
    assert not (tmp_path / "run" / "model.zip").exists()


def test_eval_refuses_nan_returns_and_writes_no_metrics(tmp_path, capsys):
    from roboreward.cli import main
    from roboreward.policies.evaluate import evaluate
    from roboreward.policies.train import train

    run = train(tiny("reward.type=env"), tmp_path / "run")
    config = load_experiment(run / "config.yaml")
    assert evaluate(run)["learned_return"]["mean"] == pytest.approx(evaluate(run)["true_return"]["mean"])
    (run / "eval" / "metrics.json").unlink()

    nan_config = from_dict(ExperimentConfig, {**_plain(config), "reward": {"type": "nan_after_test", "after": 20}})
    save_config(nan_config, run / "config.yaml")
    with pytest.raises(NonFiniteError, match="reward model 'nan_after_test' returned 1 non-finite reward"):
        evaluate(run)
    assert not (run / "eval" / "metrics.json").exists()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "returned 1 non-finite reward" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1

    # A NaN written into a run's config.yaml by hand is refused when the run is read, naming the file and key.
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("after: 20", "after: .nan"))
    assert main(["eval", str(run)]) == 2
    assert "config.yaml: reward.after: expected an integer, got nan" in capsys.readouterr().err


def test_a_reward_that_cannot_score_stops_training_before_any_env_starts(tmp_path):
    from roboreward.policies.train import train

    with pytest.raises(ConfigError, match="the progress reward is not fitted: set reward.demos"):
        train(tiny("reward.type=progress"), tmp_path / "run")


def _plain(config: ExperimentConfig) -> dict:
    from roboreward.config import to_dict

    return to_dict(config)
