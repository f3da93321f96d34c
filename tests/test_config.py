from pathlib import Path

import pytest

from roboreward.config import ConfigError, apply_override, from_dict, load_config, save_config, to_dict
from roboreward.experiment import ExperimentConfig
from roboreward.rewards.base import EnvRewardConfig
from roboreward.rewards.goal_image import GoalImageRewardConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def build(*overrides: str) -> ExperimentConfig:
    data: dict = {}
    for o in overrides:
        apply_override(data, o)
    return from_dict(ExperimentConfig, data)


def test_defaults_are_the_embedded_job():
    cfg = build()
    assert cfg.env.id == "roboreward/ArmReach-v0"
    assert isinstance(cfg.reward, GoalImageRewardConfig)
    assert cfg.algo.name == "sac"


def test_arm_reach_yaml_spells_out_the_defaults(repo_root):
    assert to_dict(load_config(repo_root / "configs" / "arm_reach.yaml")) == to_dict(ExperimentConfig())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), ExperimentConfig)


def test_overrides_are_typed():
    cfg = build("train.total_timesteps=1e4", "algo.hyperparams.learning_rate=3e-4", "env.render.shadows=true", "algo.net_arch=[64, 64]")
    assert cfg.train.total_timesteps == 10_000 and isinstance(cfg.train.total_timesteps, int)
    assert cfg.algo.hyperparams["learning_rate"] == pytest.approx(3e-4)
    assert cfg.env.render.shadows is True
    assert cfg.algo.net_arch == [64, 64]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.bogus=1", "train.bogus: unknown key"),
        ("train.total_timesteps=lots", "train.total_timesteps: expected an integer, got 'lots'"),
        ("env.n_envs=0", "env.n_envs: 0 is too small; it must be >= 1"),
        ("env.render.multisample=3", "env.render.multisample: 3 is not allowed; choose one of [0, 2, 4, 8]"),
        ("env.vectorization=threads", "env.vectorization: 'threads' is not allowed; choose one of ['dummy', 'subproc']"),
        ("env.render.shadows=maybe", "env.render.shadows: expected true or false, got 'maybe'"),
        ("reward.type=clip_magic", "reward.type: unknown RewardConfig type 'clip_magic'"),
        ("reward.scale=-1", "reward.scale: -1.0 is too small; it must be > 0"),
        ("algo.hyperparams.lr=0.1", "algo.hyperparams.lr: not a SAC hyperparameter"),
        ("train", "must look like key.sub=value"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError, match=None) as info:
        build(override)
    assert message in str(info.value)


def test_section_without_type_keeps_default_kind_and_type_switches_kind():
    assert build("reward.scale=5").reward.scale == 5.0
    assert isinstance(build("reward.type=env").reward, EnvRewardConfig)


def test_saved_config_round_trips(tmp_path):
    cfg = build("reward.scale=2.5", "env.n_envs=2", "algo.name=ppo", "algo.hyperparams={n_steps: 64}")
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
