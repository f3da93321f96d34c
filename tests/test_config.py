from pathlib import Path

import pytest

from roboreward.config import apply_override, from_dict, save_config, to_dict
from roboreward.errors import ConfigError
from roboreward.experiment import ExperimentConfig, load_experiment
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
    assert to_dict(load_experiment(repo_root / "configs" / "arm_reach.yaml")) == to_dict(ExperimentConfig())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    assert isinstance(load_experiment(path), ExperimentConfig)


def test_yes_no_on_off_are_words_as_in_yaml_1_2():
    """YAML 1.1 read ``viewer: off`` as False, and ``viewer=off`` failed with "False is not allowed"."""
    from roboreward.teleop.session import SessionConfig

    data: dict = {}
    for override in ("viewer=off", "record.task=no", "sink.type=sim"):
        apply_override(data, override)
    config = from_dict(SessionConfig, data)
    assert config.viewer == "off" and config.record.task == "no"


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
        ("env.vectorization=threads", "env.vectorization: 'threads' is not allowed; choose one of ['dummy', 'subproc', 'batched']"),
        ("env.render.shadows=maybe", "env.render.shadows: expected true or false, got 'maybe'"),
        ("env.render.shadows=yes", "env.render.shadows: expected true or false, got 'yes'"),  # YAML 1.2: a word
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
    assert load_experiment(tmp_path / "config.yaml") == cfg


def test_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------------------------- the number rule
@pytest.mark.parametrize(
    "override, message",
    [
        ("reward.scale=.nan", "reward.scale: nan is not a finite number; it must be a finite number > 0"),
        ("reward.scale=.inf", "reward.scale: inf is not a finite number"),
        ("bc.lr=.nan", "bc.lr: nan is not a finite number"),
        ("bc.weight=.inf", "bc.weight: inf is not a finite number; it must be a finite number >= 0"),
        ("shaping.gamma=.nan", "shaping.gamma: nan is not a finite number"),
        ("shaping.gamma=1.5", "shaping.gamma: 1.5 is too large; it must be <= 1"),
        ("env.kwargs={noise: .nan}", "env.kwargs.noise: nan is not a finite number"),
        ("train.total_timesteps=1e30", "train.total_timesteps: expected an integer, got 1e+30"),
        ("train.total_timesteps=1e12", "train.total_timesteps: 1000000000000 is too large"),
        ("seed=-1", "seed: -1 is too small; it must be >= 0"),
        ("bc.episodes=[0, -3]", "bc.episodes[1]: -3 is too small; it must be >= 0"),
        ("algo.net_arch=[64, 0]", "algo.net_arch[1]: 0 is too small; it must be >= 1"),
        ("algo.hyperparams.batch_size=0", "algo.hyperparams.batch_size: 0 is too small; it must be >= 1"),
        ("algo.hyperparams.gamma=5", "algo.hyperparams.gamma: 5.0 is too large; it must be <= 1"),
        ("algo.hyperparams.gamma=0", "algo.hyperparams.gamma: 0.0 is too small; it must be > 0"),
        ("algo.hyperparams.tau=.nan", "algo.hyperparams.tau: nan is not a finite number"),
        ("algo.hyperparams.learning_rate=abc", "algo.hyperparams.learning_rate: 'abc' is not a rate; give a number > 0"),
        ("algo.hyperparams.learning_rate=-1e-3", "algo.hyperparams.learning_rate: -0.001 is too small"),
        ("algo.hyperparams.learning_rate=lin_0", "algo.hyperparams.learning_rate: 'lin_0' is not a rate"),
        ("algo.hyperparams.learning_rate=[1]", "algo.hyperparams.learning_rate: [1] matches none of"),
        ("algo.hyperparams.gradient_steps=0", "algo.hyperparams.gradient_steps: 0 never trains"),
        ("algo.hyperparams.train_freq=[0, step]", "algo.hyperparams.train_freq[0]: 0 is too small"),
        ("algo.hyperparams.train_freq=[4, minute]", "algo.hyperparams.train_freq[1]: 'minute' is not allowed"),
        ("algo.hyperparams.ent_coef=auto_nan", "algo.hyperparams.ent_coef: 'auto_nan' is not allowed"),
        ("algo.hyperparams.buffer_size=abc", "algo.hyperparams.buffer_size: expected an integer, got 'abc'"),
        ("algo.hyperparams.action_noise=0.1", "algo.hyperparams.action_noise: not a SAC hyperparameter"),
        ("env.backend=cluster", "env.backend: 'cluster' is not allowed; choose one of ['local', 'ray']"),
        ("reward.server=gpu", "reward.server: 'gpu' is not allowed; choose one of ['local', 'ray']"),
        ("reward.batch_size=0", "reward.batch_size: 0 is too small; it must be >= 1"),
        ("ray.envs_per_actor=0", "ray.envs_per_actor: 0 is too small; it must be >= 1"),
        ("ray.cpus_per_actor=.nan", "ray.cpus_per_actor: nan is not a finite number"),
        ("ray.cpus_per_actor=0", "ray.cpus_per_actor: 0.0 is too small; it must be > 0"),
        ("ray.max_restarts=-1", "ray.max_restarts: -1 is too small; it must be >= 0"),
        ("ray.server_gpus=some", "ray.server_gpus: 'some' is not allowed; give a number >= 0 or auto"),
        ("ray.server_gpus=.inf", "ray.server_gpus: inf is not a finite number"),
        ("ray.address=' '", "ray.address: empty; give auto, HOST:PORT"),
    ],
)
def test_every_number_is_finite_and_in_range_and_hyperparameters_are_typed(override, message):
    with pytest.raises(ConfigError) as info:
        build(override)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["algo.name=ppo", "algo.hyperparams.clip_range=.nan"], "algo.hyperparams.clip_range: nan is not a finite number"),
        (["algo.name=ppo", "algo.hyperparams.gae_lambda=1.5"], "algo.hyperparams.gae_lambda: 1.5 is too large"),
        (["algo.name=ppo", "algo.hyperparams.batch_size=1"], "1 cannot normalise advantages"),
        (["algo.name=ppo", "algo.hyperparams.n_steps=1", "env.n_envs=1"], "PPO needs a rollout of at least 2 steps"),
        (["algo.name=ppo", "algo.hyperparams.target_kl=0"], "algo.hyperparams.target_kl: 0.0 is too small"),
    ],
)
def test_ppo_hyperparameters_are_checked(overrides, message):
    with pytest.raises(ConfigError) as info:
        build(*overrides)
    assert message in str(info.value)


def test_the_env_reward_has_no_server():
    with pytest.raises(ConfigError, match=r"reward.server: the env's own reward \(type: env\) is computed by each env"):
        build("reward={type: env, server: ray}")


def test_hyperparameters_are_typed_and_schedules_become_functions():
    cfg = build("algo.hyperparams.learning_rate=lin_1e-3", "algo.hyperparams.train_freq=[2, episode]",
                "algo.hyperparams.batch_size=64.0")
    assert cfg.algo.hyperparams["batch_size"] == 64 and isinstance(cfg.algo.hyperparams["batch_size"], int)
    kwargs = cfg.algo.sb3_kwargs()
    assert kwargs["train_freq"] == (2, "episode")  # SB3 takes a tuple, never a list
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3) and kwargs["learning_rate"](0.25) == pytest.approx(2.5e-4)
    assert build("algo.hyperparams.learning_rate=3e-4").algo.sb3_kwargs()["learning_rate"] == pytest.approx(3e-4)


def test_a_linear_schedule_round_trips_and_trains(tmp_path):
    from roboreward.policies.train import build_algorithm

    cfg = build("algo.hyperparams.learning_rate=lin_1e-3", "algo.hyperparams.train_freq=[1, step]", "algo.net_arch=[8]")
    save_config(cfg, tmp_path / "config.yaml")
    assert load_experiment(tmp_path / "config.yaml") == cfg
    model = build_algorithm(cfg)
    assert model.lr_schedule(0.5) == pytest.approx(5e-4)


@pytest.mark.parametrize("name", ["sac", "ppo", "recurrent_ppo"])
def test_hyperparameter_schema_matches_the_sb3_constructor(name):
    """Every SB3 argument that a YAML value can express is in the schema, with SB3's default."""
    import dataclasses
    import inspect

    from roboreward.experiment import HYPERPARAMS, AlgoConfig

    signature = inspect.signature(AlgoConfig(name=name).algorithm_class().__init__).parameters
    not_from_yaml = {"self", "policy", "env", "seed", "device", "tensorboard_log", "verbose", "policy_kwargs",
                     "_init_setup_model", "action_noise", "replay_buffer_class", "replay_buffer_kwargs",
                     "rollout_buffer_class", "rollout_buffer_kwargs"}
    fields = {f.name: f.default for f in dataclasses.fields(HYPERPARAMS[name])}
    assert set(fields) == set(signature) - not_from_yaml
    for key, default in fields.items():
        assert default == signature[key].default, key


def test_check_fields_catches_values_set_in_python():
    from roboreward.config import check_fields
    from roboreward.experiment import TrainConfig

    cfg = TrainConfig()
    check_fields(cfg)
    cfg.total_timesteps = float("nan")
    with pytest.raises(ConfigError, match="total_timesteps: nan is not a finite number"):
        check_fields(cfg)


def test_arg_number_names_what_a_flag_allows():
    import argparse
    import re

    from roboreward.config import arg_number

    parser = argparse.ArgumentParser(prog="p", exit_on_error=False)
    parser.add_argument("--max-step", type=arg_number(gt=0))
    parser.add_argument("--count", type=arg_number(int, ge=1, le=9))
    assert parser.parse_args(["--max-step", "0.5", "--count", "3"]).max_step == 0.5
    for argv, message in ((["--max-step", "nan"], "nan is not a finite number; it must be a finite number > 0"),
                          (["--max-step=-inf"], "-inf is not a finite number"),
                          (["--max-step", "0"], "0.0 is too small; it must be > 0"),
                          (["--max-step", "lots"], "'lots' is not a number"),
                          (["--count", "10"], "10 is too large; it must be <= 9"),
                          (["--count", "1.5"], "'1.5' is not an integer")):
        with pytest.raises(argparse.ArgumentError, match=re.escape(message)):
            parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------- reading files
@pytest.mark.parametrize(
    "content, message",
    [
        (b"env:\n  n_envs: [1\n", "line 3, column 1: invalid YAML"),
        (b"env: !!python/object/apply:os.system ['touch PWNED']\n", "never Python objects"),
        (b"env:\n\tn_envs: 2\n", "invalid YAML"),
        (bytes(range(256)), "is not a text file"),
        (b"env: {}\x00\n", "is a binary file"),
        (b"- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_unreadable_config_files_are_one_line_errors_naming_the_file(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    assert message in str(info.value) and "bad.yaml" in str(info.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    (tmp_path / "configs.yaml").mkdir()
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_experiment(tmp_path / "configs.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "none.yaml")


def test_errors_in_a_file_name_the_file_and_the_key(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("reward:\n  type: goal_image\n  scale: .nan\n")
    with pytest.raises(ConfigError, match=r"job\.yaml: reward\.scale: nan is not a finite number"):
        load_experiment(path)
