"""EPIC canonicalisation and the STARC distance: their invariances on hand-built rewards of sampled transitions."""

import numpy as np
import pytest

from roboreward.rewards.diagnostics.starc import epic_canonicalize, starc_distance, starc_distance_of_state_rewards

GAMMA = 0.9


@pytest.fixture(scope="module")
def transitions():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(400, 3))
    a = rng.normal(size=(400, 2))
    s2 = s + 0.3 * rng.normal(size=(400, 3))
    return s, a, s2


def base_reward(s, a, s2):  # depends on all of s, a and s'
    return s2 @ np.array([1.0, -0.5, 0.2]) + np.sin(s[:, 0]) * s[:, 1] + 0.3 * (a**2).sum(axis=1)


def potential(s):
    return 4.0 * np.sin(s[:, 0]) + s[:, 1] ** 2 - np.cos(3 * s[:, 2])


def noise(s, a, s2):  # a fixed, rough function of the transition
    return np.sin(37 * s.sum(axis=1) + 11 * a.sum(axis=1) + 53 * s2 @ np.array([1.0, 2.0, 3.0]))


def test_starc_is_zero_for_rescaled_and_shaped_rewards(transitions):
    def shaped(s, a, s2):
        return 2.5 * base_reward(s, a, s2) + GAMMA * potential(s2) - potential(s) + 7.0

    assert starc_distance(base_reward, base_reward, *transitions, GAMMA) == pytest.approx(0.0, abs=1e-12)
    assert starc_distance(base_reward, lambda *x: 3.0 * base_reward(*x), *transitions, GAMMA) < 1e-9
    assert starc_distance(base_reward, shaped, *transitions, GAMMA) < 1e-9
    # ...which only canonicalisation achieves: the shaped reward's plain normalised L2 distance is large
    r, r2 = base_reward(*transitions), shaped(*transitions)
    assert np.linalg.norm(r / np.linalg.norm(r) - r2 / np.linalg.norm(r2)) / 2 > 0.1
    # shaping alone canonicalises to zero
    c = epic_canonicalize(lambda s, a, s2: GAMMA * potential(s2) - potential(s), *transitions, GAMMA)
    assert np.abs(c).max() < 1e-9


def test_starc_is_one_for_the_negated_reward(transitions):
    assert starc_distance(base_reward, lambda *x: -base_reward(*x), *transitions, GAMMA) == pytest.approx(1.0)
    flipped = starc_distance(base_reward, lambda *x: -0.2 * base_reward(*x) + 5.0, *transitions, GAMMA)
    assert flipped == pytest.approx(1.0)


def test_starc_grows_monotonically_with_noise(transitions):
    scales = [0.0, 0.05, 0.2, 0.5, 1.0, 3.0, 10.0]
    d = [starc_distance(base_reward, lambda *x, k=k: base_reward(*x) + k * noise(*x), *transitions, GAMMA)
         for k in scales]
    assert d[0] == pytest.approx(0.0, abs=1e-12)
    assert all(a < b for a, b in zip(d, d[1:])), d
    assert 0.0 <= min(d) and max(d) <= 1.0
    # towards the distance to the noise itself as the noise swamps the reward
    swamped = starc_distance(base_reward, lambda *x: base_reward(*x) + 1e4 * noise(*x), *transitions, GAMMA)
    assert d[-1] < swamped == pytest.approx(starc_distance(base_reward, noise, *transitions, GAMMA), abs=1e-3)


def test_starc_of_state_rewards_is_the_pearson_form():
    rng = np.random.default_rng(3)
    learned, true = rng.normal(size=200), rng.normal(size=200)
    true = 0.6 * learned + true
    true[0] = np.nan  # a first state: no reward reached it
    transitions = np.stack([np.arange(199), np.arange(1, 200)], axis=1)
    d, used = starc_distance_of_state_rewards(learned, true, transitions, GAMMA, samples=1000)
    assert used == 199
    rho = np.corrcoef(learned[1:], true[1:])[0, 1]
    assert d == pytest.approx(np.sqrt((1 - rho) / 2), abs=1e-9)
    assert starc_distance_of_state_rewards(learned, np.full(200, np.nan), transitions, GAMMA) is None


def test_starc_errors_are_clear(transitions):
    with pytest.raises(ValueError, match=r"gamma=1.5 must be in \[0, 1\]"):
        epic_canonicalize(base_reward, *transitions, 1.5)
    with pytest.raises(ValueError, match="returned shape"):
        epic_canonicalize(lambda s, a, s2: np.zeros(3), *transitions, GAMMA)
