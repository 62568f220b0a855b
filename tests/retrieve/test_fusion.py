import math

import numpy as np
import pytest

from memlane.retrieve.fusion import adaptive_weights, idf, informative_terms, min_max, mmr, query_specificity, reciprocal_rank_fusion


def test_rrf_sums_weighted_reciprocal_ranks():
    fused = reciprocal_rank_fusion({"dense": ["a", "b"], "bm25": ["b", "c"]}, {"dense": 1.0, "bm25": 2.0}, k=10)
    assert fused["a"] == pytest.approx(1 / 11)
    assert fused["b"] == pytest.approx(1 / 12 + 2 / 11)
    assert fused["c"] == pytest.approx(2 / 12)


def test_rrf_skips_strategies_with_zero_weight_and_defaults_missing_weights_to_one():
    fused = reciprocal_rank_fusion({"dense": ["a"], "lookup": ["z"]}, {"dense": 0.0}, k=60)
    assert fused == {"z": pytest.approx(1 / 61)}


def test_idf_is_bm25_idf():
    assert idf(1, 100) == pytest.approx(math.log(1 + 99.5 / 1.5))
    assert idf(100, 100) > 0


def test_specificity_is_one_for_a_term_found_once_and_lower_for_common_terms():
    assert query_specificity({"beagle": 1}, 1000) == pytest.approx(1.0)
    common = query_specificity({"good": 500, "day": 400}, 1000)
    assert 0 < common < 0.2
    assert query_specificity({"beagle": 1, "good": 500}, 1000) == pytest.approx(1.0)


def test_specificity_ignores_absent_terms():
    assert query_specificity({"zzz": 0}, 1000) == 0.0


def test_adaptive_weights_lean_to_bm25_for_rare_terms_and_to_dense_for_common():
    rare, common = adaptive_weights(1.0), adaptive_weights(0.0)
    assert rare == {"bm25": 1.5, "dense": 0.5}
    assert common == {"bm25": 0.5, "dense": 1.5}
    assert adaptive_weights(0.5) == {"bm25": 1.0, "dense": 1.0}


def test_mmr_prefers_a_diverse_second_pick():
    vectors = np.array([[1, 0], [0.999, 0.0447], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    picked = mmr(np.array([1.0, 0.95, 0.9]), vectors, limit=2, trade_off=0.5)
    assert picked == [0, 2]


def test_mmr_with_full_relevance_keeps_relevance_order():
    vectors = np.eye(3, dtype=np.float32)
    assert mmr(np.array([0.2, 1.0, 0.5]), vectors, limit=3, trade_off=1.0) == [1, 2, 0]


def test_mmr_drops_near_duplicates():
    vectors = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    picked = mmr(np.array([1.0, 0.9, 0.1]), vectors, limit=3, trade_off=1.0, duplicate_threshold=0.99)
    assert picked == [0, 2]


def test_min_max_scales_and_handles_constants():
    assert list(min_max([1, 3, 2])) == [0.0, 1.0, 0.5]
    assert list(min_max([4, 4])) == [1.0, 1.0]


def test_informative_terms_drop_terms_found_in_most_memories():
    assert informative_terms({"caroline": 60, "research": 2, "zzz": 0}, 100) == ["research"]


def test_informative_terms_keep_common_terms_when_nothing_else_is_left():
    assert informative_terms({"caroline": 60, "zzz": 0}, 100) == ["caroline"]


def test_neighbours_of_a_strong_hit_gain_a_share_of_its_score():
    from memlane.retrieve.fusion import boost_neighbours

    fused = {"a": 0.1, "b": 1.0, "c": 0.2, "far": 0.3}
    around = {"a": [("b", 1)], "b": [("a", 1), ("c", 1)], "c": [("b", 1)], "far": []}
    boosted = boost_neighbours(fused, around, 0.25)
    assert boosted["a"] == pytest.approx(0.35) and boosted["c"] == pytest.approx(0.45)
    assert boosted["b"] == pytest.approx(1.05) and boosted["far"] == pytest.approx(0.3)
    # A neighbour that is not a candidate (outside the filters) never enters.
    assert "outside" not in boost_neighbours({"b": 1.0}, {"b": [("outside", 1)]}, 0.25)


def test_the_neighbour_boost_fades_with_distance_and_adds_up_over_distances():
    from memlane.retrieve.fusion import boost_neighbours

    fused = {"hit": 1.0, "next": 0.0, "two_away": 0.0, "three_away": 0.0}
    around = {"hit": [("next", 1), ("two_away", 2), ("three_away", 3)]}
    boosted = boost_neighbours(fused, around, 0.4, decay=0.5)
    assert boosted["next"] == pytest.approx(0.4) and boosted["two_away"] == pytest.approx(0.2)
    assert boosted["three_away"] == pytest.approx(0.1)
    # At one distance the better side counts, not both ...
    same = boost_neighbours({"x": 0.0, "p": 1.0, "q": 0.5}, {"p": [("x", 1)], "q": [("x", 1)]}, 0.5)
    assert same["x"] == pytest.approx(0.5)
    # ... and the gains of different distances add up: a turn inside a run of hits gains most.
    run = boost_neighbours({"x": 0.0, "p": 1.0, "q": 1.0}, {"p": [("x", 1)], "q": [("x", 2)]}, 0.5, decay=0.5)
    assert run["x"] == pytest.approx(0.75)
