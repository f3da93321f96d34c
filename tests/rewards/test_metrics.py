"""The shared metrics: ranks with averaged ties, Pearson and Spearman correlations with one contract
(None where undefined), VOC, and success-vs-failure scores — and policy evaluation's use of them."""


import numpy as np
import pytest

from roboreward.rewards.metrics import (
    best_threshold,
    cross_validated_accuracy,
    pearson,
    rankdata,
    roc_auc,
    spearman,
    value_order_correlation,
)


# ---------------------------------------------------------------------------- ranks and correlations
def test_rankdata_averages_ties():
    np.testing.assert_array_equal(rankdata([10, 30, 20, 20]), [0, 3, 1.5, 1.5])
    np.testing.assert_array_equal(rankdata([5, 5, 5]), [1, 1, 1])


def test_spearman_known_values():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [9, 5, 2, -1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6·2 / (3·8)
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)  # 1 - 6·4 / (5·24)
    assert spearman([1.0, np.nan, 3.0, 4.0], [1.0, 5.0, 3.0, 2.0]) == pytest.approx(0.5)  # NaN pairs dropped
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2], [1, 2, 3])


def test_spearman_averages_tied_ranks_by_hand():
    # a = 1, 2, 2, 3 has average ranks 0, 1.5, 1.5, 3; b's are 0, 1, 2, 3. Centred: (-1.5, 0, 0, 1.5) and
    # (-1.5, -0.5, 0.5, 1.5), so rho = 4.5 / sqrt(4.5 · 5) = sqrt(0.9). Ranks that break the tie by position
    # (0, 1, 2, 3) would give 1: a tie is not an increase.
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.sqrt(0.9), abs=1e-12)
    assert spearman([1, 2, 3, 4], [5, 5, 6, 7]) == pytest.approx(np.corrcoef([0, 1, 2, 3], [0.5, 0.5, 2, 3])[0, 1])


def test_correlations_match_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 6, size=30), rng.normal(size=30).round(1)  # many ties on both sides
        np.testing.assert_allclose(rankdata(a), stats.rankdata(a) - 1)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
        assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)


def test_pearson_known_values():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    assert pearson([1, 2, 3, 10], [1, 2, 3, 4]) < spearman([1, 2, 3, 10], [1, 2, 3, 4]) == pytest.approx(1.0)


@pytest.mark.parametrize("correlation", [pearson, spearman])
def test_undefined_correlations_are_none(correlation):
    assert correlation([1, 1, 1], [1, 2, 3]) is None  # a constant has no ranking and no variance
    assert correlation([1, 2, 3], [0.1, 0.1, 0.1]) is None  # equal floats whose mean is not exactly them
    assert correlation([7.0], [1.0]) is None
    assert correlation([1.0, np.nan, np.inf], [1.0, 2.0, 3.0]) is None  # one finite pair
    assert correlation([], []) is None


def test_value_order_correlation():
    assert value_order_correlation([0.1, 0.2, 0.5, 0.9]) == pytest.approx(1.0)
    assert value_order_correlation([3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert value_order_correlation([0, 2, 1, 3]) == pytest.approx(0.8)  # 1 - 6·2 / (4·15)
    assert value_order_correlation([0, 1, 1, 2]) == pytest.approx(np.sqrt(0.9))  # a plateau is not progress
    assert value_order_correlation([7.0]) is None


# ---------------------------------------------------------------------------- success detection
def test_roc_auc_known_values():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)  # 3 of 4 pairs ordered right
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == pytest.approx(1.0)
    assert roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == pytest.approx(0.0)
    assert roc_auc([1.0, 1.0], [True, False]) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc([1.0, 2.0], [True, True]) is None
    with pytest.raises(ValueError, match="finite"):
        roc_auc([np.nan, 1.0], [True, False])


def test_threshold_and_cross_validated_accuracy():
    threshold, accuracy = best_threshold([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
    assert threshold == pytest.approx(0.5) and accuracy == 1.0
    separable = np.r_[np.linspace(0, 1, 6), np.linspace(2, 3, 6)]
    labels = np.r_[np.zeros(6, bool), np.ones(6, bool)]
    assert cross_validated_accuracy(separable, labels, folds=3) == (1.0, 3)
    reversed_accuracy, k = cross_validated_accuracy(-separable, labels, folds=3)
    assert k == 3 and reversed_accuracy <= 0.5  # a reward that ranks failures higher cannot be thresholded
    # one success among the failures' scores: it is misclassified when held out, every other episode is right
    noisy = labels.copy()
    noisy[0] = True
    accuracy, k = cross_validated_accuracy(separable, noisy, folds=2, seed=1)
    assert k == 2 and accuracy == pytest.approx(11 / 12)
    assert cross_validated_accuracy([0.1, 0.9, 0.8], [False, True, True]) is None  # one failure: no folds
