"""The PostgreSQL store tokenizes as the SQLite store's FTS5 index does (`memlane.store.tokens`),
so per-user BM25 gives the same scores and the same ranks in both, stemming included."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from _postgres import postgres_schema

from memlane.records import MemoryRecord
from memlane.store import open_store
from memlane.store.tokens import query_tokens, tokenize_many

TEXTS = {
    "ana": ["I was running late again", "She runs every morning, running far", "He ran the marathon in 2023",
            "Café au lait at the cafe", "Send an e-mail to Zoë", "email me the numbers 42 and 3.14",
            "The runner kept running and running", "nothing to see here"],
    "bo": ["bo runs too", "Cafe near the e-mail office", "2023 was a year"],
}
QUERIES = [["running"], ["runs"], ["ran"], ["run", "café"], ["Cafe"], ["e-mail"], ["email"], ["2023"],
           ["3.14"], ["zoe"], ["the"], ["running", "e-mail", "42"], ["RUNNING", "mail"]]


def test_tokens_are_fts5s_stemmed_folded_and_unaccented():
    assert tokenize_many(["Running runs ran", "", "Café e-mail 3.14 Zoë"]) == [
        ["run", "run", "ran"], [], ["cafe", "e", "mail", "3", "14", "zoe"]]
    assert query_tokens("e-mail") == ("e", "mail")  # several tokens: matched as a phrase


def test_each_thread_tokenizes_alike():
    texts = [f"{word} number {i}" for i, word in enumerate(["running", "Café", "e-mail"] * 50)]
    expected = tokenize_many(texts)
    found: list[list[list[str]]] = []
    threads = [threading.Thread(target=lambda: found.append(tokenize_many(texts))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [expected] * 4


@pytest.fixture
def both(postgres_url, tmp_path):
    """A SQLite store and a PostgreSQL store holding the same memories."""
    with postgres_schema(postgres_url) as url:
        stores = [open_store(f"sqlite://{tmp_path / 'store.db'}"), open_store(url)]
        try:
            for store in stores:
                store.create_index("toy", 4, active=True)
                for user, texts in TEXTS.items():
                    records = [MemoryRecord(id=f"{user}{i}", user_id=user, text=t, embed_text=t,
                                            recorded_at="2023-01-01T00:00:00Z") for i, t in enumerate(texts)]
                    store.write(records, [np.array([1, 0, 0, 0], np.float32)] * len(records), [])
            yield stores
        finally:
            for store in stores:
                store.close()


@pytest.mark.parametrize("user", sorted(TEXTS))
def test_bm25_scores_and_ranks_equal_sqlites(both, user):
    sqlite, postgres = both
    for terms in QUERIES:
        expected = sqlite.lexical_candidates(user, terms, 100, None)
        found = postgres.lexical_candidates(user, terms, 100, None)
        assert [mid for mid, _ in found] == [mid for mid, _ in expected], terms
        assert [score for _, score in found] == pytest.approx([score for _, score in expected], rel=1e-9, abs=1e-9)
        assert postgres.document_frequencies(user, terms) == sqlite.document_frequencies(user, terms)


def test_stemming_matches_inflections(both):
    _, postgres = both
    assert {mid for mid, _ in postgres.lexical_candidates("ana", ["runs"], 100, None)} == {"ana0", "ana1", "ana6"}
