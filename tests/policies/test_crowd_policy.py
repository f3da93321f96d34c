"""The HEIGHT-style crowd network: what it attends to, masking, and a config that trains with it."""

import numpy as np
import pytest
import torch

from roboreward.envs.crowd.env import CrowdNavVecEnv
from roboreward.experiment import AlgoConfig, load_experiment
from roboreward.errors import ConfigError
from roboreward.policies.crowd import CrowdAttentionExtractor


def extractor_and_obs(**kwargs):
    venv = CrowdNavVecEnv(4, scenario="room", **kwargs)
    venv.seed(0)
    obs = venv.reset()
    torch.manual_seed(0)
    net = CrowdAttentionExtractor(venv.observation_space, embed_dim=32, heads=4)
    return net, {k: torch.as_tensor(v, dtype=torch.float32) for k, v in obs.items()}


def test_hidden_people_do_not_change_the_features_and_order_does_not_matter():
    net, obs = extractor_and_obs()
    base = net(obs)
    assert base.shape == (4, net.features_dim) and torch.isfinite(base).all()
    hidden = obs["humans_mask"] < 0.5
    scrambled = dict(obs, humans=torch.where(hidden[..., None], torch.randn_like(obs["humans"]) * 9, obs["humans"]))
    torch.testing.assert_close(net(scrambled), base)  # rows of people not seen are never read
    order = torch.randperm(obs["humans"].shape[1])
    permuted = dict(obs, humans=obs["humans"][:, order], humans_mask=obs["humans_mask"][:, order])
    torch.testing.assert_close(net(permuted), base, atol=1e-5, rtol=1e-5)  # a set, not a sequence
    seen = dict(obs, humans=obs["humans"] + 0.5 * (~hidden)[..., None])
    assert not torch.allclose(net(seen), base)  # the people it does see matter


def test_nobody_in_sight_gives_finite_features():
    net, obs = extractor_and_obs()
    empty = dict(obs, humans_mask=torch.zeros_like(obs["humans_mask"]))
    out = net(empty)
    assert torch.isfinite(out).all()
    out.sum().backward()  # and finite gradients
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_lidar_and_obstacle_tokens_feed_the_features():
    net, obs = extractor_and_obs()
    assert net.lidar is not None and net.obstacle is None  # tokens only on request when there is a lidar
    nearer = dict(obs, lidar=obs["lidar"] * 0.5)
    assert not torch.allclose(net(nearer), net(obs))
    torch.manual_seed(0)
    tokens = CrowdAttentionExtractor(CrowdNavVecEnv(2, scenario="room", sensing={"lidar_rays": 0}).observation_space,
                                     embed_dim=32)
    assert tokens.lidar is None and tokens.obstacle is not None  # no lidar: the obstacle tokens instead


def test_the_extractor_refuses_other_observations_and_configs_check_its_name():
    from gymnasium import spaces

    with pytest.raises(ValueError, match="reads the crowd env's observation"):
        CrowdAttentionExtractor(spaces.Dict({"state": spaces.Box(-1, 1, (3,))}))
    with pytest.raises(ConfigError, match="algo.features: 'attention' is not a features extractor"):
        AlgoConfig(name="ppo", features="attention")


def test_crowd_config_builds_ppo_with_the_attention_network_and_the_learners_gamma():
    from roboreward.policies.train import build_algorithm

    config = load_experiment("crowd_circle", ["env.n_envs=2", "algo.hyperparams.gamma=0.97",
                                              "env.kwargs.reward.preset=corrected"])
    assert config.env.kwargs["reward"] == {"preset": "corrected", "gamma": 0.97}
    assert load_experiment("crowd_circle").env.kwargs["reward"] == {"preset": "crowdnav_pp"}  # no shaping: no gamma
    model = build_algorithm(config)
    assert isinstance(model.policy.features_extractor, CrowdAttentionExtractor)
    obs = model.observation_space.sample()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2,) and np.isfinite(action).all()
    with pytest.raises(ConfigError, match="env.kwargs.reward.gamma: 0.9 differs from the learner's discount"):
        load_experiment("crowd_circle", ["env.kwargs.reward.preset=corrected", "env.kwargs.reward.gamma=0.9"])


@pytest.mark.parametrize("name", ["crowd_circle", "crowd_height"])
def test_shipped_crowd_configs_step_their_envs(name):
    from roboreward.envs.make import make_vec_env

    config = load_experiment(name, ["env.n_envs=2"])
    venv = make_vec_env(config.env, None, seed=0)
    obs = venv.reset()
    for _ in range(3):
        obs, rewards, dones, infos = venv.step(np.stack([venv.action_space.sample() for _ in range(2)]))
    assert np.isfinite(rewards).all() and set(obs) >= {"robot", "humans", "humans_mask"}


def test_train_then_evaluate_a_crowd_run_through_the_cli(tmp_path):
    """roboreward train crowd_circle -> roboreward eval RUN KEY=VALUE: the env's metrics and the override recorded."""
    import json
    import subprocess
    import sys

    run = tmp_path / "run"
    small = ["train.total_timesteps=256", "train.checkpoint_every=128", "env.n_envs=4", "algo.hyperparams.n_steps=32",
             "algo.hyperparams.batch_size=64", "env.kwargs.scenario.n_humans=5", "train.progress_bar=false"]
    subprocess.run([sys.executable, "-m", "roboreward.cli", "train", "crowd_circle", *small, "--run-dir", str(run)],
                   check=True, timeout=600)
    assert (run / "model.zip").is_file()
    out = tmp_path / "eval"
    subprocess.run([sys.executable, "-m", "roboreward.cli", "eval", str(run), "--episodes", "3", "--out", str(out),
                    "env.kwargs.scenario.n_humans=8"], check=True, timeout=600)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overrides"] == ["env.kwargs.scenario.n_humans=8"] and metrics["episodes"] == 3
    crowd = metrics["episode_metrics"]
    assert crowd["success"] + crowd["collision_human"] + crowd["timeout"] == pytest.approx(1.0)
    assert (out / "episodes.mp4").stat().st_size > 0


def test_a_recurrent_policy_remembers_within_an_episode_and_forgets_at_its_start():
    """RecurrentPPO with the crowd network: the Actor carries the LSTM state between steps and starts afresh at
    reset, and the test set starts each env's memory where its episode starts."""
    from sb3_contrib import RecurrentPPO

    from roboreward.envs.crowd.evaluation import evaluate_crowd_policy, sb3_policy
    from roboreward.policies.acting import Actor

    kwargs = {"scenario": {"name": "circle_crossing", "n_humans": 4}, "sensing": {"lidar_rays": 0}}
    venv = CrowdNavVecEnv(2, **kwargs)
    model = RecurrentPPO("MultiInputLstmPolicy", venv, n_steps=8, batch_size=16, seed=0, policy_kwargs={
        "features_extractor_class": CrowdAttentionExtractor, "lstm_hidden_size": 16})
    venv.seed(0)
    obs = venv.reset()
    actor = Actor(model)
    assert actor.recurrent
    first = actor(obs)
    remembered = actor(obs)  # same observation, but now with a memory of the step before
    assert not np.allclose(first, remembered)
    actor.reset()
    np.testing.assert_array_equal(actor(obs), first)
    single = Actor(model)
    np.testing.assert_allclose(single({k: v[0] for k, v in obs.items()}), first[0], atol=1e-6)  # one env, unbatched
    summary = evaluate_crowd_policy(kwargs, sb3_policy(model), episodes=4, n_envs=2)
    assert summary["episodes"] == 4
    with pytest.raises(ConfigError, match="recurrent_ppo takes MlpLstmPolicy"):
        load_experiment("crowd_circle", ["algo.name=recurrent_ppo"])
