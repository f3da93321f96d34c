"""Shaping selected from an experiment config: r' = r + γΦ(s') − Φ(s), γ = the algorithm's gamma, Φ = progress."""

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecMonitor

from roboreward.config import apply_override, from_dict, save_config
from roboreward.envs.make import _VecRelayFrames, make_env, make_vec_env
from roboreward.errors import ConfigError
from roboreward.experiment import ExperimentConfig, load_experiment
from roboreward.policies.train import shaping_potential
from roboreward.rewards import ProgressReward, ProgressRewardConfig, RewardBatch, VecPotentialShaping, make_reward_model
from roboreward.rewards.wrappers import VecLearnedReward

CAMERAS = ["corner3", "topview"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The heads are tiny: a second thread only adds contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
ENV = "roboreward/MetaWorld-Reach-v3"


def build(*overrides: str) -> ExperimentConfig:
    data: dict = {}
    for o in overrides:
        apply_override(data, o)
    return from_dict(ExperimentConfig, data)


@pytest.fixture(scope="module")
def progress_file(tmp_path_factory):
    """A progress head fitted on one 30-step expert rollout seen by two 32x32 cameras."""
    import gymnasium as gym

    import roboreward.envs  # noqa: F401  (registers the ids)

    env = gym.make(ENV, render_mode="rgb_array", width=32, height=32)
    obs, _ = env.reset(seed=0)
    views: dict[str, list[np.ndarray]] = {c: [] for c in CAMERAS}
    for _ in range(30):
        for c, frame in env.unwrapped.render_cameras(CAMERAS).items():
            views[c].append(frame)
        obs, *_ = env.step(env.unwrapped.scripted_action(obs))
    env.close()
    model = ProgressReward(ProgressRewardConfig(train_steps=30)).fit([{c: np.stack(v) for c, v in views.items()}])
    return model.save(tmp_path_factory.mktemp("shaping") / "progress.npz")


def shaped_config(progress_file, *overrides: str) -> ExperimentConfig:
    return build(
        f"env.id={ENV}", "env.n_envs=2", "env.render.width=32", "env.render.height=32",
        f"env.render.cameras=[{', '.join(CAMERAS)}]", "reward.type=env",
        "shaping.potential.type=progress", f"shaping.potential.model_path={progress_file}", *overrides,
    )


# ---------------------------------------------------------------------------- the config section
def test_default_config_has_no_shaping():
    config = ExperimentConfig()
    assert config.shaping.potential is None and config.shaping.gamma == "auto"
    assert config.env.render.cameras == []


def test_gamma_is_the_algorithms(progress_file, tmp_path):
    config = shaped_config(progress_file, "algo.hyperparams.gamma=0.9")
    assert config.shaping_gamma == 0.9
    assert shaped_config(progress_file).shaping_gamma == 0.95  # the SAC default
    assert shaped_config(progress_file, "algo.name=ppo", "algo.hyperparams.gamma=0.97").shaping_gamma == 0.97
    assert shaped_config(progress_file, "algo.hyperparams.gamma=0.9", "shaping.gamma=0.9").shaping_gamma == 0.9
    save_config(config, tmp_path / "config.yaml")
    again = load_experiment(tmp_path / "config.yaml")
    assert again.shaping == config.shaping and again.env.render.cameras == CAMERAS


def test_shaping_config_errors_are_clear(progress_file):
    with pytest.raises(ConfigError, match=r"shaping.gamma: 0.99 differs from the learner's discount .*gamma=0.95"):
        shaped_config(progress_file, "shaping.gamma=0.99")
    with pytest.raises(ConfigError, match="shaping.gamma: 'sometimes' is not allowed; write auto"):
        shaped_config(progress_file, "shaping.gamma=sometimes")
    with pytest.raises(ConfigError, match="type env is the env's reward, not a potential"):
        build("shaping.potential.type=env")
    with pytest.raises(ConfigError, match=r"shaping.potential.type: unknown RewardConfig type None"):
        build("shaping.potential.model_path=x.npz")
    with pytest.raises(ConfigError, match="shaping.potential.bins: 1 is too small"):
        build("shaping.potential.type=progress", "shaping.potential.bins=1")
    with pytest.raises(ConfigError, match=r"shaping.scale: unknown key; shaping accepts \['gamma', 'potential'\]"):
        build("shaping.scale=2")


def test_a_potential_equal_to_the_reward_is_built_once(progress_file):
    config = shaped_config(progress_file, "reward.type=progress", f"reward.model_path={progress_file}")
    reward = make_reward_model(config.reward)
    assert shaping_potential(config, reward) is reward
    assert shaping_potential(shaped_config(progress_file), None) is not None
    other = shaped_config(
        progress_file, "reward.type=progress", f"reward.model_path={progress_file}", "reward.cache_size=10"
    )
    assert shaping_potential(other, reward) is not reward
    assert shaping_potential(build(), reward) is None


# ---------------------------------------------------------------------------- the wrappers it builds
def rollout(venv, steps: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    venv.reset()
    # VecMonitor keeps no reset infos of its own: the shaping wrapper below it has them, with Φ(s_0)
    reset_infos = [dict(i) for i in getattr(venv.venv, "reset_infos", [])]
    actions, out = [], []
    for _ in range(steps):
        a = rng.uniform(-1, 1, size=(venv.num_envs, 4)).astype(np.float32)
        obs, rewards, dones, infos = venv.step(a)
        actions.append(a)
        out.append((rewards, infos))
    return reset_infos, actions, out


def test_shaping_from_config_builds_the_right_wrappers(progress_file):
    config = shaped_config(progress_file, "algo.hyperparams.gamma=0.9")
    potential = shaping_potential(config, None)
    venv = make_vec_env(config.env, None, seed=config.seed, potential=potential, gamma=config.shaping_gamma)
    try:
        assert isinstance(venv, VecMonitor)
        shaping = venv.venv
        assert isinstance(shaping, VecPotentialShaping) and shaping.gamma == 0.9 and shaping.potential is potential
        assert isinstance(shaping.venv, _VecRelayFrames) and isinstance(shaping.venv.venv, VecLearnedReward)
        assert shaping.venv.venv.model is None  # r is the env's own (task) reward
        reset_infos, actions, steps = rollout(venv, 4)
    finally:
        venv.close()
    phi = np.array([info["potential"] for info in reset_infos])
    for rewards, infos in steps:
        next_phi = np.array([info["potential"] for info in infos])
        for i, info in enumerate(infos):
            assert "frame" not in info and "shaping_frame" not in info  # frames are consumed, not carried on
            assert info["unshaped_reward"] == pytest.approx(info["true_reward"])  # the base reward is the task's
            assert info["shaping"] == pytest.approx(0.9 * next_phi[i] - phi[i])
            assert rewards[i] == pytest.approx(info["unshaped_reward"] + info["shaping"], abs=1e-5)
        phi = next_phi
    # Φ is the progress model on the tiled views of the state reached: replay env 0 and score its frames
    env = make_env(config.env, render=True)
    model = ProgressReward.from_file(progress_file)
    env.reset(seed=config.seed)
    frames = [env.render()]
    for a in actions:
        env.step(a[0])
        frames.append(env.render())
    env.close()
    assert frames[0].shape == (32, 64, 3)
    expected = model(RewardBatch(frames=np.stack(frames)))
    got = [reset_infos[0]["potential"]] + [infos[0]["potential"] for _, infos in steps]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_progress_only_reward_and_shaping_by_the_same_model(progress_file):
    config = shaped_config(progress_file, "reward.type=progress", f"reward.model_path={progress_file}")
    reward = make_reward_model(config.reward)
    potential = shaping_potential(config, reward)
    venv = make_vec_env(config.env, reward, seed=1, potential=potential, gamma=config.shaping_gamma)
    try:
        reset_infos, _, steps = rollout(venv, 3)
    finally:
        venv.close()
    phi = np.array([info["potential"] for info in reset_infos])
    for rewards, infos in steps:
        for i, info in enumerate(infos):
            # r = Φ(s'): the learned progress is the reward (the env's is only logged), then shaped by Φ
            assert info["unshaped_reward"] == pytest.approx(info["learned_reward_raw"], abs=1e-6)
            assert info["learned_reward_raw"] == pytest.approx(info["potential"], abs=1e-6)
            assert rewards[i] == pytest.approx(info["potential"] * (1 + 0.95) - phi[i], abs=1e-5)
            assert "true_reward" in info
        phi = np.array([info["potential"] for info in infos])
    # and without shaping, the progress alone is the reward
    plain = make_vec_env(config.env, reward, seed=1)
    try:
        _, _, steps = rollout(plain, 2)
    finally:
        plain.close()
    for rewards, infos in steps:
        np.testing.assert_allclose(rewards, [i["learned_reward_raw"] for i in infos], atol=1e-6)
        assert all("shaping" not in i for i in infos)


def test_views_must_match_the_model(progress_file):
    config = shaped_config(progress_file, "env.render.cameras=[]")
    potential = shaping_potential(config, None)
    with pytest.raises(ValueError, match=r"set env.render.cameras: \[corner3, topview\]"):
        make_vec_env(config.env, None, seed=0, potential=potential, gamma=0.95)
    with pytest.raises(ValueError, match="pass gamma"):
        make_vec_env(shaped_config(progress_file).env, None, seed=0, potential=potential)


@pytest.mark.slow
def test_train_and_resume_with_shaping_from_a_config(progress_file, tmp_path):
    from roboreward.policies.train import CONFIG_FILE, resume, train

    config = shaped_config(
        progress_file, f"runs_dir={tmp_path}", "train.total_timesteps=48", "train.checkpoint_every=1000",
        "train.progress_bar=false", "algo.hyperparams.learning_starts=32", "algo.hyperparams.batch_size=16",
        "algo.net_arch=[16]"
    )
    run = train(config)
    assert (run / "model.zip").is_file()
    saved = load_experiment(run / CONFIG_FILE)
    assert saved.shaping.potential.model_path == str(progress_file) and saved.shaping_gamma == 0.95
    import json

    assert json.loads((run / "train_summary.json").read_text())["timesteps"] == 48
    assert resume(run) == run  # the saved config rebuilds the shaped env (nothing left to train)


def test_shipped_progress_configs(repo_root):
    shaped = load_experiment(repo_root / "configs" / "progress_drawer_open.yaml")
    assert shaped.reward.type_name == "env" and isinstance(shaped.shaping.potential, ProgressRewardConfig)
    assert shaped.shaping_gamma == shaped.algo.hyperparams["gamma"] == 0.99
    assert shaped.env.render.cameras == shaped.shaping.potential.cameras == CAMERAS
    progress_only = load_experiment(repo_root / "configs" / "progress_door_open.yaml")
    assert isinstance(progress_only.reward, ProgressRewardConfig)
    assert progress_only.shaping.potential == progress_only.reward  # one model, reward and potential
