import math

import numpy as np
import pytest

from memlane.store import bm25


def test_idf_is_fts5s_and_never_falls_to_zero_or_below():
    assert bm25.idf(1, 10) == pytest.approx(math.log(9.5 / 1.5))
    assert bm25.idf(5, 10) == 1e-6  # ln(5.5 / 5.5) = 0
    assert bm25.idf(9, 10) == 1e-6


def test_term_scores_saturate_with_count_and_fall_with_length():
    scores = bm25.term_scores(np.array([1, 2, 1]), np.array([10, 10, 40]), 20.0, 2.0)
    k1, b = bm25.K1, bm25.B
    assert scores[0] == pytest.approx(2.0 * (k1 + 1) / (1 + k1 * (1 - b + b * 0.5)))
    assert scores[0] < scores[1] < 2 * scores[0]  # a second occurrence adds, but less
    assert scores[2] < scores[0]  # the same count in a longer memory weighs less


@pytest.mark.parametrize("value", [0, 5, 127, 128, 300, 16383, 16384, 2_000_000])
def test_first_varint_reads_sqlite_varints(value):
    groups = []
    rest = value
    while True:
        groups.insert(0, rest & 0x7F)
        rest >>= 7
        if not rest:
            break
    encoded = bytes([g | 0x80 for g in groups[:-1]] + [groups[-1]])
    assert bm25.first_varint(encoded + b"\x05") == value


def test_spread_count_is_exact_up_to_its_cap_and_scales_past_it():
    assert bm25.spread_count(np.array([3, 9, 40]), (1, 100), 3) == 3  # no more than the cap: counted
    # every 4th row of 1..4000 holds the word: the first 11 reach row 44 of 4000
    every_fourth = np.arange(4, 4001, 4)
    assert bm25.spread_count(every_fourth[:11], (1, 4000), 10) == 1000
    assert bm25.spread_count(np.arange(1, 12), (1, 11), 10) == 11  # reaching the end: what was seen
