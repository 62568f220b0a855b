import os
import select

import numpy as np

from memlane.store import view as view_module


def test_a_large_scan_split_in_halves_gives_the_whole_products():
    rng = np.random.default_rng(3)
    matrix = rng.standard_normal((view_module.SPLIT_SCAN_FROM + 11, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    query = matrix[5]
    split = view_module._matrix_times(matrix, query)
    assert split.shape == (len(matrix),) and split.dtype == np.float32
    assert np.allclose(split, matrix @ query, atol=1e-6) and int(np.argmax(split)) == 5
    small = matrix[:100]
    assert np.array_equal(view_module._matrix_times(small, query), small @ query)  # below the size: one product


def test_a_forked_child_makes_its_own_scan_pool():
    matrix = np.ones((view_module.SPLIT_SCAN_FROM, 4), np.float32)
    view_module._matrix_times(matrix, np.ones(4, np.float32))  # the parent's pool exists now
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the parent's pool thread is not in the child: a fresh pool must answer
        ok = float(view_module._matrix_times(matrix, np.ones(4, np.float32)).sum()) == 4.0 * len(matrix)
        os.write(writer, b"1" if ok else b"0")
        os._exit(0)
    os.close(writer)
    ready, _, _ = select.select([reader], [], [], 30)  # a child stuck on the parent's pool never answers
    answer = os.read(reader, 1) if ready else b""
    if not ready:
        os.kill(child, 9)
    os.waitpid(child, 0)
    assert answer == b"1"


def test_best_rows_is_the_stable_sort_without_sorting_everything():
    rng = np.random.default_rng(7)
    for size, k in ((10, 3), (1000, 5), (5000, 40), (5000, 5000), (3, 10)):
        scores = np.round(rng.standard_normal(size), 1)  # rounded: many ties, at the k-th score too
        scores[rng.integers(0, size, max(1, size // 50))] = -np.inf
        expected = np.argsort(-scores, kind="stable")[:k]
        assert np.array_equal(view_module.best_rows(scores, k), expected), (size, k)
    assert len(view_module.best_rows(np.zeros(0), 5)) == 0 and len(view_module.best_rows(np.ones(4), 0)) == 0
    tied = np.ones(100)
    assert list(view_module.best_rows(tied, 3)) == [0, 1, 2]  # every score tied: the first rows


def test_lean_vectors_read_each_row_once_while_kept_and_ask_again_for_gone_rows():
    asked: list[list[int]] = []
    store = {1: b"a", 2: b"b", 3: b"c", 5: b"e"}

    def read(rowids):
        asked.append([int(r) for r in rowids])
        return [store.get(int(r)) for r in rowids]

    reads = view_module.LeanVectors(read, lambda: iter(()))
    assert reads.fetch(np.array([1, 2, 4])) == [b"a", b"b", None]
    assert reads.fetch(np.array([2, 3, 4, 1])) == [b"b", b"c", None, b"a"]
    assert asked == [[1, 2, 4], [3, 4]]  # 1 and 2 were kept; 4 is gone, so it is asked for again
    reads.RECENT_AT_MOST = 2
    assert reads.fetch(np.array([5, 1])) == [b"e", b"a"]  # past the bound: the kept rows are replaced
    assert reads.fetch(np.array([1, 5])) == [b"a", b"e"] and asked[-1] == [1]


def test_lean_vectors_keep_nothing_of_a_read_larger_than_their_bound():
    asked: list[list[int]] = []

    def read(rowids):
        asked.append([int(r) for r in rowids])
        return [b"v%d" % int(r) for r in rowids]

    reads = view_module.LeanVectors(read, lambda: iter(()))
    reads.RECENT_AT_MOST = 3
    assert reads.fetch(np.array([1, 2])) == [b"v1", b"v2"]
    assert reads.fetch(np.arange(10, 20)) == [b"v%d" % r for r in range(10, 20)]  # held vectors, say
    assert reads.fetch(np.array([10, 1])) == [b"v10", b"v1"] and asked[-1] == [10, 1]  # nothing kept


def test_summed_postings_equals_adding_into_a_dense_array_bit_for_bit():
    rng = np.random.default_rng(11)
    for _ in range(50):
        total = int(rng.integers(1, 400))
        parts = []
        for _ in range(int(rng.integers(0, 6))):
            rows = np.sort(rng.choice(total, int(rng.integers(0, total + 1)), replace=False)).astype(np.int64)
            parts.append((rows, rng.random(len(rows)) * 10 ** rng.uniform(-3, 3)))
        dense = np.zeros(total)
        for rows, values in parts:
            dense[rows] += values
        rows, sums = view_module.summed_postings(parts)
        expected = np.flatnonzero(np.isin(np.arange(total), np.concatenate([r for r, _ in parts] or [np.zeros(0, int)])))
        assert np.array_equal(rows, expected)
        assert np.array_equal(sums, dense[rows])  # the same additions in the same order
    empty_rows, empty_sums = view_module.summed_postings([(np.zeros(0, np.int64), np.zeros(0))])
    assert len(empty_rows) == 0 and len(empty_sums) == 0


def test_rows_of_finds_the_view_rows_of_a_backends_row_numbers_with_and_without_gaps():
    from types import SimpleNamespace

    rng = np.random.default_rng(5)
    for rowids in (np.arange(40, 140), np.sort(rng.choice(np.arange(1, 400), 100, replace=False)), np.array([7])):
        view = SimpleNamespace(rowids=rowids.astype(np.int64))
        asked = np.sort(rng.choice(np.arange(0, 500), 120, replace=False)).astype(np.int64)
        counts = rng.integers(1, 9, len(asked))
        rows, kept = view_module.UserView.rows_of(view, asked, counts)
        position = {int(r): i for i, r in enumerate(rowids)}
        expected = [(position[int(r)], int(c)) for r, c in zip(asked, counts) if int(r) in position]
        assert [(int(r), int(c)) for r, c in zip(rows, kept)] == expected
