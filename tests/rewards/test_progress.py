import numpy as np
import pytest
import torch

from roboreward.config import from_dict
from roboreward.envs.views import MultiViewRender, split_views, tile_views
from roboreward.errors import ConfigError
from roboreward.rewards import (
    ProgressReward,
    ProgressRewardConfig,
    RewardBatch,
    RewardConfig,
    make_reward_model,
)
from roboreward.rewards.base import flat_observations
from roboreward.rewards.metrics import spearman
from roboreward.rewards.progress import (
    HeadSettings,
    ProgressHead,
    bin_centres,
    bin_targets,
    expected_progress,
    fit_head,
    head_progress,
    progress_labels,
)

CAMERAS = ["corner3", "topview"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The heads are tiny: a second thread only adds contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- labels and readout
def test_bin_targets_one_hot_and_gaussian():
    y = np.array([0.0, 0.04, 0.5, 0.99, 1.0])
    hard = bin_targets(y, 10, sigma=0)
    np.testing.assert_array_equal(hard.argmax(axis=1), [0, 0, 5, 9, 9])
    np.testing.assert_array_equal(hard.sum(axis=1), 1.0)
    soft = bin_targets(y, 10, sigma=1.0)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    np.testing.assert_array_equal(soft.argmax(axis=1), [0, 0, 4, 9, 9])  # 0.5 sits between bins 4 and 5
    assert soft[2, 4] == pytest.approx(soft[2, 5])  # ... symmetrically
    assert soft[2, 4] < 1.0 and soft[2, 3] > soft[2, 2] > 0  # mass spreads to the neighbours, decaying
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        bin_targets(np.array([1.5]), 10)


def test_expected_progress_readout():
    np.testing.assert_allclose(bin_centres(4), [0.125, 0.375, 0.625, 0.875])
    one_hot = np.eye(4)
    np.testing.assert_allclose(expected_progress(one_hot), bin_centres(4))
    assert expected_progress(np.full((1, 4), 0.25))[0] == pytest.approx(0.5)
    # the Gaussian targets of a progress value read out close to it (exactly, away from the ends)
    y = np.linspace(0.3, 0.7, 9)
    np.testing.assert_allclose(expected_progress(bin_targets(y, 20, sigma=1.0)), y, atol=1e-6)


def test_progress_labels_follow_first_success():
    np.testing.assert_allclose(progress_labels(5), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(progress_labels(6, success_step=2), [0, 0.5, 1, 1, 1, 1])
    np.testing.assert_allclose(progress_labels(3, success_step=0), [1, 1, 1])


# ---------------------------------------------------------------------------- the head on synthetic features
def synthetic_demo(rng, length, views=2, dim=24, noise=0.05, signal=None):
    """Features [T, V, D] in which a few dims of every view move with progress (or as ``signal`` says)."""
    y = np.linspace(0, 1, length)
    x = rng.normal(scale=noise, size=(length, views, dim))
    directions = np.random.default_rng(123).normal(size=(views, dim))  # the same directions in every demo
    for v in range(views):
        s = y if signal is None else signal[v](y)
        x[:, v, :] += s[:, None] * directions[v]
    return x.astype(np.float32), y


def test_head_ranks_a_held_out_sequence_and_is_deterministic():
    rng = np.random.default_rng(0)
    train = [synthetic_demo(rng, n) for n in (40, 55, 70)]
    settings = HeadSettings(train_steps=150)
    head = fit_head([x for x, _ in train], [y for _, y in train], settings)
    x, y = synthetic_demo(rng, 60)
    probs, p = head_progress(head, x)
    assert probs.shape == (60, 10) and np.allclose(probs.sum(axis=1), 1)
    assert spearman(p, y) > 0.95
    assert np.all((p > 0) & (p < 1)) and p[:5].mean() < 0.2 and p[-5:].mean() > 0.8
    again = fit_head([x for x, _ in train], [y for _, y in train], settings)
    np.testing.assert_array_equal(head_progress(again, x)[1], p)  # same seed, same head
    other = fit_head([x for x, _ in train], [y for _, y in train], HeadSettings(train_steps=150, seed=1))
    assert not np.array_equal(head_progress(other, x)[1], p)
    state = torch.random.get_rng_state()
    fit_head([train[0][0]], [train[0][1]], HeadSettings(train_steps=3))
    assert torch.equal(state, torch.random.get_rng_state())  # training leaves the caller's RNG alone


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_fusion_uses_both_views(fusion):
    """View 0 moves only in the first half of the task, view 1 only in the second: neither alone orders it."""
    first = lambda y: np.minimum(y, 0.5)  # noqa: E731
    second = lambda y: np.maximum(y, 0.5)  # noqa: E731
    rng = np.random.default_rng(1)
    train = [synthetic_demo(rng, n, signal=(first, second)) for n in (50, 60, 70)]
    x, y = synthetic_demo(rng, 80, signal=(first, second))
    settings = HeadSettings(train_steps=200, fusion=fusion)
    fused = fit_head([f for f, _ in train], [p for _, p in train], settings)
    _, p = head_progress(fused, x)
    assert spearman(p, y) > 0.95
    early, late = y < 0.45, y > 0.55
    assert spearman(p[early], y[early]) > 0.8 and spearman(p[late], y[late]) > 0.8
    for view, blind_half in ((0, late), (1, early)):
        alone = fit_head([f[:, [view]] for f, _ in train], [p for _, p in train], settings)
        _, q = head_progress(alone, x[:, [view]])
        assert abs(spearman(q[blind_half], y[blind_half])) < 0.5  # one view cannot order the other's half
        assert spearman(q, y) < spearman(p, y) - 0.02
    # hiding a view from the fused head (its training mean instead) loses the half only that view sees
    for view, seen_half in ((0, early), (1, late)):
        hidden = x.copy()
        hidden[:, view] = fused.mean[view].numpy()
        _, q = head_progress(fused, hidden)
        assert spearman(q[seen_half], y[seen_half]) < 0.5
    if fusion == "attention":
        w = fused.view_weights(torch.as_tensor(x))
        assert w.shape == (80, 2) and torch.allclose(w.sum(dim=1), torch.ones(80))


def test_failed_rollouts_pull_false_positives_down():
    """Failures look 'done' in view 0 but not in view 1: with them, the head learns to read view 1."""
    rng = np.random.default_rng(2)
    train = [synthetic_demo(rng, n) for n in (50, 60, 70)]
    fake_done, _ = synthetic_demo(rng, 40, signal=(lambda y: np.ones_like(y), lambda y: 0.1 * y))
    settings = HeadSettings(train_steps=200, failure_ceiling=0.4)
    without = fit_head([x for x, _ in train], [y for _, y in train], settings)
    with_failures = fit_head([x for x, _ in train], [y for _, y in train], settings, failures=[fake_done])
    before, after = head_progress(without, fake_done)[1], head_progress(with_failures, fake_done)[1]
    assert after.mean() < 0.4 and after.mean() < before.mean() - 0.15, (before.mean(), after.mean())
    x, y = synthetic_demo(rng, 60)
    assert spearman(head_progress(with_failures, x)[1], y) > 0.95  # demos still ordered


def test_head_errors_are_clear():
    with pytest.raises(ValueError, match="fusion='sum' is not allowed"):
        ProgressHead(2, 4, 10, fusion="sum")
    x = np.zeros((5, 2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="5 frames of features but 4 progress labels"):
        fit_head([x], [np.zeros(4)], HeadSettings())
    init = fit_head([x], [np.linspace(0, 1, 5)], HeadSettings(train_steps=1))
    with pytest.raises(ValueError, match="same cameras, features and bins"):
        fit_head([np.zeros((5, 3, 4), dtype=np.float32)], [np.linspace(0, 1, 5)], HeadSettings(), init=init)


# ---------------------------------------------------------------------------- views
def test_tile_and_split_views_round_trip():
    a = np.zeros((2, 4, 6, 3), dtype=np.uint8)
    b = np.full((2, 4, 6, 3), 7, dtype=np.uint8)
    tiled = tile_views([a, b])
    assert tiled.shape == (2, 4, 12, 3) and tiled[0, 0, 6, 0] == 7
    back = split_views(tiled, 2)
    np.testing.assert_array_equal(back[0], a)
    np.testing.assert_array_equal(back[1], b)
    with pytest.raises(ValueError, match="cannot hold 5 views"):
        split_views(tiled, 5)
    with pytest.raises(ValueError, match="one shape"):
        tile_views([a, b[:, :2]])


def test_multi_view_render_tiles_the_cameras():
    import gymnasium as gym

    import roboreward.envs  # noqa: F401  (registers the ids)

    base = gym.make("roboreward/MetaWorld-Reach-v3", render_mode="rgb_array", width=32, height=24)
    env = MultiViewRender(base, CAMERAS)
    try:
        env.reset(seed=0)
        frame = env.render()
        views = env.unwrapped.render_cameras(CAMERAS)
        assert frame.shape == (24, 64, 3) and frame.dtype == np.uint8
        np.testing.assert_array_equal(frame, tile_views([views["corner3"], views["topview"]]))
        assert not np.array_equal(views["corner3"], views["topview"])
        with pytest.raises(ValueError, match="not in the Meta-World model"):
            MultiViewRender(env.env, ["corner3", "nope"])
    finally:
        env.close()
    arm = gym.make("roboreward/ArmReach-v0", render_mode="rgb_array")
    with pytest.raises(ValueError, match="need a Meta-World env"):
        MultiViewRender(arm, CAMERAS)
    arm.close()


# ---------------------------------------------------------------------------- real demonstrations
@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    from roboreward.datasets.record import record_scripted_demos

    out = tmp_path_factory.mktemp("progress") / "reach"
    summary = record_scripted_demos(
        "roboreward/MetaWorld-Reach-v3", out, episodes=5, cameras=CAMERAS, width=64, height=64,
        max_steps=60, progress=False,
    )
    assert summary.successes == 5
    return out


@pytest.fixture(scope="module")
def reader(reach_demos):
    from roboreward.datasets.lerobot_v3 import DatasetReader

    return DatasetReader(reach_demos)


@pytest.fixture(scope="module")
def fitted(reach_demos):
    config = from_dict(RewardConfig, {"type": "progress", "demos": str(reach_demos), "episodes": [0, 1, 2]})
    return make_reward_model(config)


def test_ranks_frames_of_held_out_demos_in_order(fitted, reader):
    assert isinstance(fitted, ProgressReward)
    assert fitted.cameras == CAMERAS and fitted.required_cameras == CAMERAS and fitted.frame_size == (64, 64)
    report = fitted.report(reader, episodes=[3, 4])
    assert report.episodes == [3, 4] and report.train_demos == 3 and report.train_frames == 180
    assert report.spearman_min > 0.8, report
    assert report.start_progress < 0.3 and report.end_progress > 0.6, report
    # the reward model path: tiled frames in, float32 progress out
    frames = tile_views([reader.frames(3, c) for c in CAMERAS])
    phi = fitted(RewardBatch(frames=frames))
    assert phi.dtype == np.float32 and phi.shape == (60,) and np.all((phi > 0) & (phi < 1))
    assert phi[-10:].mean() > phi[:10].mean() + 0.4


def test_one_shot_fit_and_adaptation_from_a_head(fitted, reader, reach_demos, tmp_path):
    one_shot = ProgressReward(ProgressRewardConfig(cameras=CAMERAS)).fit(reader, episodes=[4])
    report = one_shot.report(reader, episodes=[3])
    assert report.train_demos == 1 and report.fit_seconds > 0
    assert report.spearman[0] > 0.7, report
    # start from another fit's head: its standardisation is kept, its weights move
    adapted = ProgressReward(ProgressRewardConfig()).fit(reader, episodes=[4], init=fitted)
    assert torch.equal(adapted.head.mean, fitted.head.mean)
    assert not torch.equal(adapted.head.net[0].weight, fitted.head.net[0].weight)
    assert adapted.report(reader, episodes=[3]).spearman[0] > 0.7
    path = fitted.save(tmp_path / "init.npz")
    config = {"type": "progress", "demos": str(reach_demos), "episodes": [4], "init_path": str(path)}
    by_config = make_reward_model(from_dict(RewardConfig, config))
    assert torch.equal(by_config.head.mean, fitted.head.mean) and by_config.train_demos == 1
    with pytest.raises(ValueError, match="reads cameras"):
        ProgressReward(ProgressRewardConfig(cameras=["topview", "corner3"])).fit(reader, episodes=[4], init=fitted)


def test_fit_from_arrays_equals_fit_from_the_dataset(fitted, reader):
    demos = [{c: reader.frames(i, c) for c in CAMERAS} for i in range(3)]
    # frame arrays carry no success flags: label by time, as the dataset fit does with progress_label=time
    by_time = ProgressReward(ProgressRewardConfig(progress_label="time")).fit(reader, episodes=[0, 1, 2])
    from_arrays = ProgressReward(ProgressRewardConfig()).fit(demos)
    batch = RewardBatch(frames=tile_views([reader.frames(3, c)[::5] for c in CAMERAS]))
    np.testing.assert_allclose(from_arrays(batch), by_time(batch), atol=1e-6)
    as_lists = ProgressReward(ProgressRewardConfig()).fit([[d[c] for c in CAMERAS] for d in demos])
    assert as_lists.cameras == ["view0", "view1"]
    np.testing.assert_allclose(as_lists(batch), by_time(batch), atol=1e-6)


def test_save_load_round_trip_gives_identical_progress(fitted, reader, tmp_path):
    path = fitted.save(tmp_path / "reach_progress.npz")
    assert not (tmp_path / "reach_progress.npz.tmp").exists()
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert list(data["cameras"]) == CAMERAS and int(data["bins"]) == 10
    batch = RewardBatch(frames=tile_views([reader.frames(4, c)[::6] for c in CAMERAS]))
    expected = fitted(batch)
    # equal up to float rounding: the fitted model's features of these frames came from other batch sizes
    np.testing.assert_allclose(ProgressReward.from_file(path)(batch), expected, atol=1e-6, rtol=0)
    by_config = make_reward_model(from_dict(RewardConfig, {"type": "progress", "model_path": str(path)}))
    np.testing.assert_allclose(by_config(batch), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(by_config(batch), ProgressReward.from_file(path)(batch))  # fresh caches: exact
    assert by_config.cameras == CAMERAS and by_config.frame_size == (64, 64)
    with pytest.raises(ValueError, match="set reward.grid=2"):
        ProgressReward(ProgressRewardConfig(model_path=str(path), grid=4))
    with pytest.raises(ValueError, match="reads cameras"):
        ProgressReward(ProgressRewardConfig(model_path=str(path), cameras=["corner3"]))


def test_failed_rollouts_from_a_dataset(reach_demos, tmp_path):
    from roboreward.datasets.record import record_scripted_demos

    failures = tmp_path / "failed"
    summary = record_scripted_demos(  # 12 steps: the expert has not reached the goal yet
        "roboreward/MetaWorld-Reach-v3", failures, episodes=1, cameras=CAMERAS, width=64, height=64,
        max_steps=12, seed=50, progress=False,
    )
    assert summary.successes == 0
    config = {"type": "progress", "demos": str(reach_demos), "episodes": [0, 1, 2], "failures": str(failures),
              "failure_ceiling": 0.2}
    model = make_reward_model(from_dict(RewardConfig, config))
    assert model.failure_frames == 12 and model.train_frames == 180
    from roboreward.datasets.lerobot_v3 import DatasetReader

    frames = tile_views([DatasetReader(failures).frames(0, c) for c in CAMERAS])
    assert model(RewardBatch(frames=frames)).max() < 0.3


def test_frames_must_match_the_fit(fitted):
    with pytest.raises(ValueError, match="needs rendered frames"):
        fitted(RewardBatch(observations=np.zeros((2, 39))))
    with pytest.raises(ValueError, match=r"2 views of 64x64 side by side \(64x128\)"):
        fitted(RewardBatch(frames=np.zeros((1, 64, 64, 3), dtype=np.uint8)))
    with pytest.raises(ConfigError, match="not fitted"):
        ProgressReward(ProgressRewardConfig())(RewardBatch(frames=np.zeros((1, 64, 128, 3), dtype=np.uint8)))


def test_dataset_errors_are_clear(reader, tmp_path):
    with pytest.raises(ValueError, match="camera 'gripperPOV' is not in"):
        ProgressReward(ProgressRewardConfig(cameras=["corner3", "gripperPOV"])).fit(reader)
    with pytest.raises(ValueError, match="episodes select from a DatasetReader"):
        ProgressReward(ProgressRewardConfig()).fit([np.zeros((3, 8, 8, 3), np.uint8)], episodes=[0])
    with pytest.raises(ValueError, match="uint8 \\[T, H, W, 3\\]"):
        ProgressReward(ProgressRewardConfig()).fit([[np.zeros((3, 8, 8), np.uint8)]])
    config = from_dict(RewardConfig, {"type": "progress", "demos": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="record demonstrations first"):
        make_reward_model(config)
    with pytest.raises(ConfigError, match="does not exist"):
        ProgressReward(ProgressRewardConfig(model_path=str(tmp_path / "missing.npz")))


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="reward.bins: 1 is too small; it must be >= 2"):
        from_dict(RewardConfig, {"type": "progress", "bins": 1}, "reward")
    with pytest.raises(ConfigError, match="reward.failure_ceiling: 1.0 is too large"):
        from_dict(RewardConfig, {"type": "progress", "failure_ceiling": 1.0}, "reward")
    with pytest.raises(ConfigError, match="reward.fusion: 'sum' is not allowed; choose one of"):
        from_dict(RewardConfig, {"type": "progress", "fusion": "sum"}, "reward")
    with pytest.raises(ConfigError, match="not both"):
        from_dict(RewardConfig, {"type": "progress", "demos": "d", "model_path": "m.npz"}, "reward")
    with pytest.raises(ConfigError, match="name a camera twice"):
        from_dict(RewardConfig, {"type": "progress", "cameras": ["corner3", "corner3"]}, "reward")
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(RewardConfig, {"type": "progress", "camera": "corner3"}, "reward")


# ---------------------------------------------------------------------------- state inputs
@pytest.fixture(scope="module")
def crowd_demos(tmp_path_factory):
    """ORCA crossing a small crowd as the robot, recorded (state + top-down frames)."""
    from roboreward.datasets.record import record_scripted_demos

    kwargs = {"scenario": {"name": "circle_crossing", "n_humans": 4, "circle_radius": 4.0, "arena": 6.0,
                           "goal_distance": [4.0, 6.0]}, "sensing": {"lidar_rays": 0}}
    out = tmp_path_factory.mktemp("crowd") / "demos"
    record_scripted_demos("crowd", out, episodes=12, width=32, height=32, seed=0, env_kwargs=kwargs, progress=False)
    return out, kwargs


def test_a_state_progress_model_ranks_held_out_crowd_demos_and_needs_no_frames(crowd_demos, tmp_path):
    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.envs.crowd.env import CrowdNavEnv

    demos, kwargs = crowd_demos
    model = make_reward_model(from_dict(RewardConfig, {"type": "progress", "demos": str(demos), "inputs": "state",
                                                       "episodes": list(range(9))}))
    assert not model.requires_frames and model.required_cameras == [] and model.features is None
    report = model.report(DatasetReader(demos), episodes=[9, 10, 11])
    assert min(report.spearman) > 0.5 and report.end_progress > report.start_progress + 0.2, report
    # In the env: a Dict observation batch, flattened as the dataset's state was.
    env = CrowdNavEnv(**kwargs)
    obs, _ = env.reset(seed=0)  # episode 0 of the dataset
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    rewards = model(RewardBatch(observations=batch))
    state = DatasetReader(demos).episode(0).state[:1]
    np.testing.assert_allclose(rewards, model.progress_of_states(state)[0], rtol=1e-5)
    saved = model.save(tmp_path / "state_head.npz")
    loaded = ProgressReward.from_file(saved)
    assert loaded.config.inputs == "state"
    np.testing.assert_allclose(loaded(RewardBatch(observations=batch)), rewards, rtol=1e-6)
    with pytest.raises(ConfigError, match="fitted on state; set reward.inputs: state"):
        ProgressReward(ProgressRewardConfig(model_path=str(saved)))
    with pytest.raises(ConfigError, match="fitted on states of"):
        model(RewardBatch(observations={k: v[:, :2] if k == "humans" else v for k, v in batch.items()}))


def test_shaping_by_a_state_potential_on_the_batched_crowd_env_runs_through_episode_ends(crowd_demos):
    """The env's own reward shaped by a state progress model (no frames anywhere): the shaping wrapper sees each
    new episode's first state through the reward wrapper below it, episode after episode."""
    from roboreward.envs.make import make_vec_env
    from roboreward.experiment import EnvConfig

    demos, kwargs = crowd_demos
    potential = make_reward_model(from_dict(RewardConfig, {"type": "progress", "demos": str(demos), "inputs": "state"}))
    config = EnvConfig(id="roboreward/CrowdNav-v0", n_envs=4, vectorization="batched",
                       kwargs={**kwargs, "time_limit": 3.0})
    venv = make_vec_env(config, None, seed=0, potential=potential, gamma=0.99)
    venv.reset()
    ends = 0
    for _ in range(30):  # 12-step episodes: every env starts over twice
        _, _, dones, infos = venv.step(np.zeros((4, 2)))
        assert all("shaping" in info and np.isfinite(info["shaping"]) for info in infos)
        ends += int(dones.sum())
    assert ends >= 8
    venv.close()


def test_an_offset_turns_progress_into_a_cost_and_is_refused_for_a_potential(crowd_demos):
    from roboreward.experiment import load_experiment

    demos, _ = crowd_demos
    config = {"type": "progress", "demos": str(demos), "inputs": "state"}
    model = make_reward_model(from_dict(RewardConfig, config))
    cost = make_reward_model(from_dict(RewardConfig, {**config, "offset": 1.0, "scale": 2.0}))
    states = _first_episode_states(demos)
    np.testing.assert_allclose(cost.progress_of_states(states), model.progress_of_states(states))
    np.testing.assert_allclose(cost(RewardBatch(observations=states)), 2.0 * (model.progress_of_states(states) - 1.0),
                               rtol=1e-5)
    assert (cost(RewardBatch(observations=states)) <= 0).all()
    with pytest.raises(ConfigError, match="shaping.potential.offset"):
        load_experiment("crowd_diff_drive", ["shaping.potential.type=progress", f"shaping.potential.demos={demos}",
                                             "shaping.potential.offset=1"])


def _first_episode_states(demos):
    from roboreward.datasets.lerobot_v3 import DatasetReader

    return DatasetReader(demos).episode(0).state


def test_the_agents_failed_episodes_teach_the_model_what_is_not_done(crowd_demos):
    """States the agent reached without succeeding (here: driving away from the goal, which a demos-only model
    can rate highly) are labelled 'progress <= failure_ceiling' (0.2 here) at the next refit, and the demos still
    rank."""
    from roboreward.datasets.lerobot_v3 import DatasetReader
    from roboreward.envs.crowd.config import CrowdNavConfig
    from roboreward.envs.crowd.env import CrowdNavBatch

    demos, kwargs = crowd_demos
    model = make_reward_model(from_dict(RewardConfig, {"type": "progress", "demos": str(demos), "inputs": "state",
                                                       "refit_every": 1000, "episodes": list(range(9)),
                                                       "failure_ceiling": 0.2}))
    batch = CrowdNavBatch(CrowdNavConfig.from_kwargs(kwargs), 8)
    for b in range(8):
        batch.reset(b, 50 + b)
    away = []
    for _ in range(40):  # turn around and walk off: the robot's goal falls behind and far
        goal = batch.sim.robot_goal - batch.sim.robot_position
        batch.step(-goal / np.linalg.norm(goal, axis=1, keepdims=True))
        away.append(flat_observations(batch.observe()))
    episodes = np.stack(away, axis=1)  # [8 envs, 40 steps, D]
    before = model.progress_of_states(episodes[:, -10:].reshape(-1, episodes.shape[-1])).mean()
    for states in episodes[:6]:
        model.add_episode(states, success=False)
    model.add_episode(episodes[6], success=True)  # a success is not a negative
    assert len(model.agent_failures) == 6
    # A failure that was done for a while (the env's flag at those steps): those states are not negatives.
    done_for_a_while = np.zeros(40, dtype=bool)
    done_for_a_while[10:25] = True
    model.add_episode(episodes[5], success=False, step_success=done_for_a_while)
    kept = model.agent_failures.pop().views[0]
    np.testing.assert_array_equal(kept, np.concatenate([episodes[5][:10], episodes[5][25:]]).astype(np.float32))
    # The feed passes each reached state's flag from its step's info (a first state is never done).
    from roboreward.rewards.wrappers import EpisodeFeed

    feed = EpisodeFeed(model, n_envs=2)
    feed.scored([0, 1], RewardBatch(observations=episodes[:2, 0]))  # first states
    for t in range(1, 5):
        infos = [{"is_success": t >= 3}, {"is_success": False}]
        feed.scored([0, 1], RewardBatch(observations=episodes[:2, t]), infos=infos)
    feed.ended(0, {"is_success": False})
    feed.ended(1, {"is_success": False})
    env1, env0 = model.agent_failures.pop().views[0], model.agent_failures.pop().views[0]
    np.testing.assert_array_equal(env0, episodes[0, :3].astype(np.float32))  # steps 3 and 4 were done
    np.testing.assert_array_equal(env1, episodes[1, :5].astype(np.float32))
    assert len(model.agent_failures) == 6
    model.refit()
    after = model.progress_of_states(episodes[7, -10:]).mean()  # an episode it did not see
    assert model.refits == 1 and after < 0.3 and after < before - 0.1, (before, after)
    report = model.report(DatasetReader(demos), episodes=[9, 10, 11])
    assert min(report.spearman) > 0.5, report


def test_the_reward_wrapper_feeds_the_agents_episodes_and_refits_on_schedule(crowd_demos):
    from roboreward.envs.make import make_vec_env
    from roboreward.experiment import EnvConfig

    demos, kwargs = crowd_demos
    model = make_reward_model(from_dict(RewardConfig, {"type": "progress", "demos": str(demos), "inputs": "state",
                                                       "refit_every": 48}))
    config = EnvConfig(id="roboreward/CrowdNav-v0", n_envs=4, vectorization="batched",
                       kwargs={**kwargs, "time_limit": 2.0})
    venv = make_vec_env(config, model, seed=0)
    venv.reset()
    for _ in range(3):  # episodes cut short by a second reset (a second learn()) are no episodes
        venv.step(np.zeros((4, 2)))
    venv.reset()
    for _ in range(30):  # 8-step episodes that time out (failures); a refit every 12 steps of the 4 envs
        venv.step(np.zeros((4, 2)))
    assert model.refits == 2 and len(model.agent_failures) == 12
    assert all(len(t.views[0]) == 8 for t in model.agent_failures)  # each episode's 8 reached states
    venv.close()
    with pytest.raises(ValueError, match="set reward.demos"):
        ProgressRewardConfig(refit_every=10)


def test_a_refitted_head_is_part_of_the_checkpoint_and_comes_back_on_resume(crowd_demos, tmp_path):
    """Training with refit_every writes the refitted head into each checkpoint; resuming puts it back, so the reward
    goes on where it was rather than from the demos-only fit."""
    import json
    import subprocess
    import sys

    from roboreward.envs.make import make_vec_env
    from roboreward.policies.checkpoints import find_resumable
    from roboreward.policies.train import build_algorithm, load_run_config, training_reward_model

    demos, _ = crowd_demos
    run = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "roboreward.cli", "train", "crowd_diff_drive", "--run-dir", str(run),
                    "train.total_timesteps=1024", "train.checkpoint_every=512", "env.n_envs=4",
                    "env.kwargs.time_limit=4.0", "algo.hyperparams.n_steps=64", "algo.hyperparams.batch_size=64",
                    "reward.type=progress", f"reward.demos={demos}", "reward.inputs=state", "reward.refit_every=256",
                    "env.kwargs.sensing.lidar_rays=0", "env.kwargs.scenario.n_humans=4", "train.progress_bar=false"],
                   check=True, timeout=600, capture_output=True)
    newest = sorted((run / "checkpoints").glob("step_*"))[-1]
    state = json.loads((newest / "state.json").read_text())
    assert state["reward_refits"] >= 3 and (newest / "reward_model.npz").is_file()

    config = load_run_config(run)
    fresh = training_reward_model(config.reward, config)  # fitted on the demos alone
    venv = make_vec_env(config.env, fresh, seed=0)
    model = build_algorithm(config, venv)
    saved = ProgressReward.from_file(newest / "reward_model.npz")
    states = _first_episode_states(demos)
    assert not np.allclose(fresh.progress_of_states(states), saved.progress_of_states(states))
    find_resumable(run, model).apply(model)
    np.testing.assert_allclose(fresh.progress_of_states(states), saved.progress_of_states(states), rtol=1e-6)
    assert fresh.refits == state["reward_refits"]
    venv.close()

    # `roboreward eval` scores the learned return with the head the policy was trained on
    from roboreward.policies.evaluate import evaluation_reward_model, training_state_dir

    final = training_state_dir(run, run / "model.zip")
    assert final == newest and training_state_dir(run, run / "bc_policy.zip") is None
    evaluated = evaluation_reward_model(config, final)
    np.testing.assert_allclose(evaluated.progress_of_states(states), saved.progress_of_states(states), rtol=1e-6)
    oldest = sorted((run / "checkpoints").glob("step_*"))[0]
    at_oldest = evaluation_reward_model(config, training_state_dir(run, oldest / "model.zip"))
    np.testing.assert_allclose(at_oldest.progress_of_states(states),
                               ProgressReward.from_file(oldest / "reward_model.npz").progress_of_states(states), rtol=1e-6)


# ---------------------------------------------------------------------------- keypoints
METAWORLD_KEYPOINTS = {"hand": [0, 1, 2], "object": [4, 5, 6], "goal": [36, 37, 38]}


@pytest.fixture(scope="module")
def button_demos(tmp_path_factory):
    from roboreward.datasets.record import record_scripted_demos

    out = tmp_path_factory.mktemp("keypoints") / "button"
    summary = record_scripted_demos("button-press", out, episodes=5, cameras=["corner3"], width=32, height=32,
                                    max_steps=100, progress=False)
    assert summary.successes == 5
    return out


def test_keypoint_distances_carry_one_demo_to_new_placements(button_demos, tmp_path):
    """Fitted on one demo, the raw state reads the button's own position (fixed in that demo) as progress; the
    distances between hand, button and goal are the same wherever the button is, so held-out demos rank in order
    from a low start (measured: start 0.42 against 0.94 on the raw state)."""
    from roboreward.datasets.lerobot_v3 import DatasetReader

    reader = DatasetReader(button_demos)

    def fit(**keys):
        return make_reward_model(from_dict(RewardConfig, {"type": "progress", "demos": str(button_demos),
                                                          "inputs": "state", "episodes": [0], **keys}))

    raw, keypoints = fit(), fit(keypoints=METAWORLD_KEYPOINTS)
    held_out = [1, 2, 3, 4]
    by_raw, by_keypoints = raw.report(reader, episodes=held_out), keypoints.report(reader, episodes=held_out)
    assert by_keypoints.spearman_min > 0.9 and by_keypoints.start_progress < 0.6, by_keypoints
    assert by_keypoints.end_progress > by_keypoints.start_progress + 0.25, by_keypoints
    assert by_raw.start_progress > by_keypoints.start_progress + 0.2, by_raw

    # The head reads exactly the three pairwise distances.
    states = reader.episode(1).state[:5]
    features = keypoints._state_features(states)
    hand, button, goal = states[:, 0:3], states[:, 4:7], states[:, 36:39]
    expected = np.stack([np.linalg.norm(hand - button, axis=1), np.linalg.norm(hand - goal, axis=1),
                         np.linalg.norm(button - goal, axis=1)], axis=1)
    np.testing.assert_allclose(features, expected, rtol=1e-5)
    assert keypoints._fitted().dim == 3
    # Saved and loaded, the keypoints come with the head.
    loaded = ProgressReward.from_file(keypoints.save(tmp_path / "keypoints.npz"))
    assert loaded.keypoints == METAWORLD_KEYPOINTS
    np.testing.assert_allclose(loaded.progress_of_states(states), keypoints.progress_of_states(states), rtol=1e-6)
    with pytest.raises(ConfigError, match="reads keypoints .* but reward.keypoints is"):
        ProgressReward(ProgressRewardConfig(model_path=str(tmp_path / "keypoints.npz"), inputs="state",
                                            keypoints={"hand": [0, 1, 2], "goal": [36, 37, 38]}))
    with pytest.raises(ConfigError, match="reward.keypoints index 38, but the observations have 10 numbers"):
        keypoints.progress_of_states(states[:, :10])


def test_keypoint_config_errors_name_the_fix():
    def config(**keys):
        return from_dict(RewardConfig, {"type": "progress", "inputs": "state", **keys}, "reward")

    with pytest.raises(ConfigError, match="set inputs: state"):
        from_dict(RewardConfig, {"type": "progress", "keypoints": METAWORLD_KEYPOINTS}, "reward")
    with pytest.raises(ConfigError, match="at least two points"):
        config(keypoints={"hand": [0, 1, 2]})
    with pytest.raises(ConfigError, match=r"keypoints.goal: \[36, 37\] must be three observation indices"):
        config(keypoints={"hand": [0, 1, 2], "goal": [36, 37]})
    with pytest.raises(ConfigError, match=r"keypoints.goal: \[36, 37, -1\] must be three"):
        config(keypoints={"hand": [0, 1, 2], "goal": [36, 37, -1]})
