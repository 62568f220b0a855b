import sqlite3
import threading

import numpy as np
import pytest

from memlane.embed import CachedEmbedder, Embedder, VectorCache
from memlane.embed.cache import cache_key


def test_identical_texts_in_one_call_are_encoded_once(tmp_path, counting):
    embedder = CachedEmbedder(counting, VectorCache(tmp_path / "v.sqlite"))
    vectors = embedder.encode(["a cat", "a dog", "a cat", "a cat"])
    assert counting.encoded == ["a cat", "a dog"]
    assert vectors.shape == (4, counting.dims)
    assert np.array_equal(vectors[0], vectors[2])


def test_vectors_come_back_in_input_order_and_equal_the_inner_embedders(tmp_path, counting):
    embedder = CachedEmbedder(counting, VectorCache(tmp_path / "v.sqlite"))
    texts = ["x", "y", "z", "y"]
    embedder.encode(["z"])  # one of them cached beforehand
    np.testing.assert_array_equal(embedder.encode(texts), counting._inner.encode(texts))


def test_a_second_call_is_served_from_the_cache(tmp_path, counting):
    embedder = CachedEmbedder(counting, VectorCache(tmp_path / "v.sqlite"))
    first = embedder.encode(["hello", "world"])
    second = embedder.encode(["world", "hello", "new"])
    assert counting.encoded == ["hello", "world", "new"]
    assert (embedder.hits, embedder.misses) == (2, 3)
    np.testing.assert_array_equal(second[:2], first[::-1])


def test_vectors_persist_across_instances_on_the_same_file(tmp_path, make_counting):
    path = tmp_path / "nested" / "dir" / "v.sqlite"
    first_inner, second_inner = make_counting(), make_counting()
    before = CachedEmbedder(first_inner, VectorCache(path)).encode(["remember me"])
    after = CachedEmbedder(second_inner, VectorCache(path)).encode(["remember me"])
    assert second_inner.encoded == []
    np.testing.assert_array_equal(before, after)


def test_different_fingerprints_do_not_share_entries(tmp_path, make_counting):
    cache = VectorCache(tmp_path / "v.sqlite")
    old, new = make_counting(fingerprint="model-a"), make_counting(fingerprint="model-b")
    CachedEmbedder(old, cache).encode(["same text"])
    CachedEmbedder(new, cache).encode(["same text"])
    assert new.encoded == ["same text"]
    assert cache.count("model-a") == cache.count("model-b") == 1


def test_query_and_document_of_the_same_text_have_different_keys(tmp_path, make_counting):
    inner = make_counting(query_prefix="query: ")
    embedder = CachedEmbedder(inner, VectorCache(tmp_path / "v.sqlite"), cache_queries=True)
    as_doc = embedder.encode(["where is my passport"], purpose="document")
    as_query = embedder.encode(["where is my passport"], purpose="query")
    assert inner.encoded == ["where is my passport", "where is my passport"]
    assert not np.array_equal(as_doc, as_query)


def test_changing_the_query_prefix_changes_the_key():
    assert cache_key("text", "query", "query: ") != cache_key("text", "query", "")
    assert cache_key("text", "query") != cache_key("text", "document")


def test_misses_are_encoded_in_batches_of_the_inner_batch_size(tmp_path, make_counting):
    inner = make_counting(batch_size=3)
    CachedEmbedder(inner, VectorCache(tmp_path / "v.sqlite")).encode([f"t{i}" for i in range(7)])
    assert inner.calls == 3


def test_empty_input_gives_zero_rows_without_calling_the_embedder(tmp_path, counting):
    vectors = CachedEmbedder(counting, VectorCache(tmp_path / "v.sqlite")).encode([])
    assert vectors.shape == (0, counting.dims)
    assert counting.calls == 0


def test_cached_embedder_keeps_the_inner_identity(tmp_path, counting):
    embedder = CachedEmbedder(counting, VectorCache(tmp_path / "v.sqlite"))
    assert (embedder.name, embedder.dims, embedder.fingerprint) == ("counting", 32, "counting-v1")
    assert isinstance(embedder, Embedder)


def test_cache_file_uses_wal_mode(tmp_path):
    path = tmp_path / "v.sqlite"
    VectorCache(path)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_get_many_returns_only_stored_keys_as_float32(tmp_path):
    cache = VectorCache(tmp_path / "v.sqlite")
    cache.put_many("fp", {"k1": np.array([1, 2, 3], dtype=np.float64)})
    found = cache.get_many("fp", ["k1", "k2"])
    assert list(found) == ["k1"]
    assert found["k1"].dtype == np.float32
    np.testing.assert_array_equal(found["k1"], [1, 2, 3])


def test_two_connections_can_write_the_same_file_concurrently(tmp_path):
    path = tmp_path / "v.sqlite"
    caches = [VectorCache(path), VectorCache(path)]
    errors = []

    def write(cache, worker):
        try:
            for batch in range(20):
                cache.put_many("fp", {f"{worker}-{batch}-{i}": np.ones(8) for i in range(50)})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(cache, n)) for n, cache in enumerate(caches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert caches[0].count("fp") == 2 * 20 * 50


def test_an_unopenable_path_raises_store_error(tmp_path):
    from memlane.errors import StoreError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cache_path"):
        VectorCache(blocker / "v.sqlite")


def test_queries_are_not_cached_unless_asked(tmp_path, make_counting):
    counting = make_counting()
    embedder = CachedEmbedder(counting, VectorCache(tmp_path / "v.sqlite"))
    embedder.encode(["where is my passport"], purpose="query")
    embedder.encode(["where is my passport"], purpose="query")
    assert embedder.cache.count() == 0


def test_read_ahead_reads_the_file_and_its_log_and_skips_what_is_too_big(tmp_path):
    from memlane.embed.cache import read_ahead

    path = tmp_path / "v.sqlite"
    path.write_bytes(b"x" * 5000)
    (tmp_path / "v.sqlite-wal").write_bytes(b"y" * 300)
    assert read_ahead(path) == 5300
    assert read_ahead(path, limit_bytes=1000) == 300  # the big file is left alone, the small log read
    assert read_ahead(tmp_path / "absent.sqlite") == 0


def test_a_full_disk_is_reported_with_its_cause_and_the_cache_stays_usable(tmp_path):
    from memlane.errors import StoreError

    cache = VectorCache(tmp_path / "v.sqlite")
    cache.put_many("fp", {"a": np.ones(4, np.float32)})
    conn = cache._conn
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(StoreError, match="full.*cache_path"):
        cache.put_many("fp", {f"k{i}": np.ones(4096, np.float32) for i in range(50)})
    conn.execute("PRAGMA max_page_count = 1073741823")
    cache.put_many("fp", {"b": np.ones(4, np.float32)})
    assert cache.count("fp") == 2
