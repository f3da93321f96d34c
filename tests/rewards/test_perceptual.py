import itertools

import numpy as np
import pytest

from roboreward.config import from_dict
from roboreward.errors import ConfigError
from roboreward.rewards import PerceptualReward, PerceptualRewardConfig, RewardBatch, RewardConfig, make_reward_model
from roboreward.rewards.metrics import value_order_correlation
from roboreward.rewards.perceptual import (
    fit_step_models,
    labels_from_bounds,
    segment_cost_matrix,
    segment_demos,
    segment_sequence,
    select_features,
)


def steps_sequence(rng, bounds, dim=16, noise=0.05, separation=1.0):
    """A feature sequence whose mean jumps at ``bounds``: one random level per step, plus noise."""
    levels = rng.normal(scale=separation, size=(len(bounds) - 1, dim))
    x = levels[labels_from_bounds(np.asarray(bounds))]
    return x + rng.normal(scale=noise, size=x.shape), levels


# ---------------------------------------------------------------------------- segmentation
def test_segmentation_is_the_exact_optimum_of_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(15):
        t, k, min_len = int(rng.integers(6, 13)), int(rng.integers(2, 4)), int(rng.integers(1, 3))
        x = rng.normal(size=(t, 3))
        best = None
        for cuts in itertools.combinations(range(1, t), k - 1):
            b = (0, *cuts, t)
            if min(np.diff(b)) < min_len:
                continue
            cost = sum(((x[b[i] : b[i + 1]] - x[b[i] : b[i + 1]].mean(axis=0)) ** 2).sum() for i in range(k))
            best = cost if best is None else min(best, cost)
        got = segment_sequence(x, k, min_len)
        assert got[0] == 0 and got[-1] == t and np.all(np.diff(got) >= min_len)
        c = segment_cost_matrix(x)
        assert sum(c[got[i], got[i + 1]] for i in range(k)) == pytest.approx(best, abs=1e-9)


def test_segmentation_finds_well_separated_steps_exactly():
    rng = np.random.default_rng(1)
    for true in ([0, 17, 41, 60], [0, 5, 9, 30, 52], [0, 33, 34 + 30]):
        x, _ = steps_sequence(rng, true, noise=0.01)
        np.testing.assert_array_equal(segment_sequence(x, len(true) - 1), true)


def test_segmentation_with_noise_is_within_two_frames():
    rng = np.random.default_rng(2)
    true = np.array([0, 22, 47, 80])
    demos = [steps_sequence(rng, true, dim=8, noise=0.5)[0] for _ in range(5)]
    for bounds in segment_demos(demos, steps=3, min_length=3):
        assert np.abs(bounds - true).max() <= 2, bounds


def test_segmentation_errors_are_clear():
    with pytest.raises(ValueError, match="cannot be cut into 3 steps of >= 4 frames"):
        segment_sequence(np.zeros((10, 2)), 3, min_length=4)
    with pytest.raises(ValueError, match=r"must be \[T, D\]"):
        segment_sequence(np.zeros((0, 2)), 2)


# ---------------------------------------------------------------------------- feature selection
@pytest.mark.parametrize("criterion", ["paper", "fisher"])
def test_feature_selection_picks_the_planted_features(criterion):
    rng = np.random.default_rng(3)
    n, d = 300, 200
    x = rng.normal(scale=0.3, size=(n, d))
    in_step = np.zeros(n, dtype=bool)
    in_step[100:180] = True
    planted = [7, 64, 151]
    x[np.ix_(in_step, planted)] += 1.5  # these features move during the step; the others are noise
    x[:, 90] += rng.normal(scale=3.0, size=n)  # a loud feature that says nothing about the step
    idx, scores = select_features(x, in_step, 3, criterion=criterion)
    assert sorted(idx) == planted
    assert scores.shape == (d,) and scores[planted].min() > np.delete(scores, planted).max()


def test_feature_selection_errors_are_clear():
    with pytest.raises(ValueError, match="both inside and outside"):
        select_features(np.zeros((5, 3)), np.ones(5, dtype=bool), 1)
    with pytest.raises(ValueError, match="count=4 features asked for"):
        select_features(np.zeros((5, 3)), np.arange(5) < 2, 4)


# ---------------------------------------------------------------------------- reward on synthetic steps
def test_fitted_reward_increases_across_steps():
    rng = np.random.default_rng(4)
    levels = rng.normal(size=(3, 64))

    def demo(bounds):
        x = levels[labels_from_bounds(np.asarray(bounds))]
        return x + rng.normal(scale=0.3, size=x.shape)

    train = [demo([0, 20, 45, 70]), demo([0, 25, 40, 60]), demo([0, 15, 50, 75])]
    model, bounds = fit_step_models(train, steps=3, features=8, min_length=3)
    truth = ([0, 20, 45, 70], [0, 25, 40, 60], [0, 15, 50, 75])
    assert all(np.abs(b - t).max() <= 2 for b, t in zip(bounds, truth, strict=True))
    held_out = demo([0, 30, 60, 90])
    r = model.reward(held_out)
    per_step = [r[a:b].mean() for a, b in ((0, 30), (30, 60), (60, 90))]
    assert per_step[0] < per_step[1] < per_step[2], per_step
    np.testing.assert_allclose(per_step, [1 / 7, 2 / 7, 4 / 7], atol=0.05)  # w_k = 2^(k-1) / (2^K - 1)
    assert np.all((r >= 0) & (r <= 1))
    assert np.array_equal(model.step_probabilities(held_out).argmax(axis=1)[[5, 45, 85]], [0, 1, 2])
    assert model.reward(held_out + 50.0).max() < 0.01  # a frame like no step of the demos earns nothing


# ---------------------------------------------------------------------------- real demonstrations
@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory):
    from roboreward.datasets.record import record_scripted_demos

    out = tmp_path_factory.mktemp("perceptual") / "reach"
    summary = record_scripted_demos(
        "roboreward/MetaWorld-Reach-v3", out, episodes=4, cameras=["corner3"], width=64, height=64,
        max_steps=80, progress=False,
    )
    assert summary.successes == 4
    return out


@pytest.fixture(scope="module")
def fitted(reach_demos):
    config = from_dict(
        RewardConfig,
        {"type": "perceptual", "demos": str(reach_demos), "camera": "corner3", "episodes": [0, 1, 2], "steps": 3},
    )
    return make_reward_model(config)


@pytest.fixture(scope="module")
def held_out(reach_demos):
    from roboreward.datasets.lerobot_v3 import DatasetReader

    return DatasetReader(reach_demos).frames(3, "corner3")


def test_reward_rises_on_a_held_out_demo(fitted, held_out):
    assert isinstance(fitted, PerceptualReward)
    assert len(fitted.boundaries) == 3 and all(b[-1] == 80 for b in fitted.boundaries)
    r = fitted(RewardBatch(frames=held_out))
    assert r.dtype == np.float32 and r.shape == (80,)
    assert np.all((r >= 0) & (r <= 1))
    assert value_order_correlation(r) > 0.5
    assert r[-10:].mean() > r[:10].mean() + 0.1


def test_save_load_round_trip_gives_identical_rewards(fitted, held_out, tmp_path):
    path = fitted.save(tmp_path / "reach_reward.npz")
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert data["indices"].shape == (3, 32)
    batch = RewardBatch(frames=held_out[::7])
    expected = fitted(batch)
    # The fitted model may take these frames' features from its cache, computed in another batch; a convolution
    # over another batch size can round differently in the last bit (seen with one torch thread), so equal to
    # float32 rounding, not bit for bit.
    np.testing.assert_allclose(PerceptualReward.from_file(path)(batch), expected, rtol=1e-6, atol=0)
    by_config = make_reward_model(from_dict(RewardConfig, {"type": "perceptual", "model_path": str(path)}))
    np.testing.assert_allclose(by_config(batch), expected, rtol=1e-6, atol=0)
    assert [list(b) for b in by_config.boundaries] == [list(b) for b in fitted.boundaries]
    with pytest.raises(ValueError, match="set reward.grid=2"):
        PerceptualReward(PerceptualRewardConfig(model_path=str(path), grid=4))


def test_fit_from_frame_arrays_equals_fit_from_the_dataset(fitted, reach_demos):
    from roboreward.datasets.lerobot_v3 import DatasetReader

    reader = DatasetReader(reach_demos)
    model = PerceptualReward(PerceptualRewardConfig(steps=3)).fit([reader.frames(i, "corner3") for i in range(3)])
    np.testing.assert_array_equal(model.model.indices, fitted.model.indices)
    np.testing.assert_allclose(model.model.mu_in, fitted.model.mu_in)


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="reward.steps: 1 is too small; it must be >= 2"):
        from_dict(RewardConfig, {"type": "perceptual", "steps": 1}, "reward")
    with pytest.raises(ConfigError, match="reward.features: 0 is too small"):
        from_dict(RewardConfig, {"type": "perceptual", "features": 0}, "reward")
    with pytest.raises(ConfigError, match="not both"):
        from_dict(RewardConfig, {"type": "perceptual", "demos": "d", "model_path": "m.npz"}, "reward")
    # validating a config never touches the dataset; building the model does
    config = from_dict(RewardConfig, {"type": "perceptual", "demos": str(tmp_path / "missing"), "camera": "corner3"})
    with pytest.raises(ConfigError, match="record demonstrations first"):
        make_reward_model(config)
    with pytest.raises(ConfigError, match="does not exist"):
        PerceptualReward(PerceptualRewardConfig(model_path=str(tmp_path / "missing.npz")))


def test_model_needs_frames_a_fit_and_the_demos_frame_size(fitted, held_out):
    with pytest.raises(ValueError, match="needs rendered frames"):
        fitted(RewardBatch(observations=np.zeros((2, 39))))
    with pytest.raises(ConfigError, match="not fitted"):
        PerceptualReward(PerceptualRewardConfig())(RewardBatch(frames=held_out[:2]))
    with pytest.raises(ValueError, match="demos were 64x64"):
        fitted(RewardBatch(frames=np.zeros((1, 32, 32, 3), dtype=np.uint8)))
    with pytest.raises(ValueError, match="cannot hold steps=3"):
        PerceptualReward(PerceptualRewardConfig(steps=3)).fit([held_out[:8]])
