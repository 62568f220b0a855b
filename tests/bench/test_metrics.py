import math

import pytest

from memlane.bench.metrics import (
    bootstrap_mean_ci,
    gold_ranks,
    ndcg_at_k,
    paired_bootstrap,
    percentiles,
    recall_all_at_k,
    recall_any_at_k,
    recall_at_k,
)


def test_gold_ranks_are_one_based_first_occurrences():
    assert gold_ranks(["a", "b", "a", "c"], ["a", "c", "z"]) == {"a": 1, "c": 4, "z": None}


def test_recall_variants():
    ranks = [1, 7, None]
    assert recall_at_k(ranks, 5) == pytest.approx(1 / 3)
    assert recall_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert recall_any_at_k(ranks, 1) == 1.0 and recall_any_at_k([None, 9], 5) == 0.0
    assert recall_all_at_k([1, 2], 2) == 1.0 and recall_all_at_k(ranks, 10) == 0.0


def test_ndcg_hand_computed():
    # gold at ranks 1 and 3 of two gold items: (1 + 1/log2 4) / (1 + 1/log2 3)
    assert ndcg_at_k([1, 3], 10) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([1], 10) == 1.0
    assert ndcg_at_k([None], 10) == 0.0
    assert ndcg_at_k([2, 11], 10) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_percentiles():
    assert percentiles(list(range(1, 101)))["p50"] == pytest.approx(50.5)


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    values = [0, 1] * 50
    mean, low, high = bootstrap_mean_ci(values)
    assert mean == 0.5 and low < 0.5 < high
    assert bootstrap_mean_ci(values) == (mean, low, high)


def test_paired_bootstrap_sees_a_consistent_gain():
    a = [0.0] * 50 + [1.0] * 50
    b = [1.0] * 80 + [0.0] * 20
    result = paired_bootstrap(a, b)
    assert result["delta"] == pytest.approx(0.3)
    assert 0 < result["ci_low"] < 0.3 < result["ci_high"]
    assert result["p_not_better"] < 0.01


def test_paired_bootstrap_refuses_unpaired_samples():
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 0.0])
