"""Policy evaluation's summary: returns, success, and how the learned reward tracks the true one."""

import json

import numpy as np
import pytest

from roboreward.policies.evaluate import Episode, summarise
from roboreward.rewards.metrics import rankdata


def test_policy_evaluation_correlations_average_ties_and_stay_valid_json():
    # A learned reward with plateaus against a steadily rising true reward, over two episodes.
    episodes = [Episode(learned=[0.0, 0.0, 1.0, 1.0, 2.0], true=[0.0, 1.0, 2.0, 3.0, 4.0]),
                Episode(learned=[2.0, 2.0, 3.0], true=[1.0, 2.0, 5.0])]
    learned = np.concatenate([e.learned for e in episodes])
    true = np.concatenate([e.true for e in episodes])
    correlation = summarise(episodes)["reward_correlation"]
    assert correlation["spearman"] == pytest.approx(np.corrcoef(rankdata(learned), rankdata(true))[0, 1], abs=1e-12)
    assert correlation["pearson"] == pytest.approx(np.corrcoef(learned, true)[0, 1], abs=1e-12)
    ordinal = [np.argsort(np.argsort(v, kind="stable")) for v in (learned, true)]  # ties broken by position
    assert abs(correlation["spearman"] - np.corrcoef(*ordinal)[0, 1]) > 0.01  # ...give another number

    flat = summarise([Episode(learned=[0.5, 0.5, 0.5], true=[0.0, 1.0, 2.0])])
    assert flat["reward_correlation"] == {"pearson": None, "spearman": None}
    assert '"spearman": null' in json.dumps(flat, allow_nan=False)  # as eval writes metrics.json
