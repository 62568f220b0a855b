"""The PostgreSQL store's postings as term blocks: packed arrays that read back exactly (narrow and
wide), a block per user, term and write, phrases matched at consecutive offsets, deleted and
rewritten memories taken out of their old terms' blocks, small blocks merged by `vacuum`, and a
term's count read from the key's index alone."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import psycopg
import pytest
from _postgres import postgres_schema

from memlane.errors import StoreError
from memlane.records import MemoryRecord
from memlane.store.postgres import PostgresStore, lexicon
from memlane.store.tokens import positions, tokenize_many

AT = "2023-01-01T00:00:00Z"


def test_packed_arrays_read_back_in_the_narrowest_width_that_holds_them():
    for values, width in (([], 2), ([0, 1, 65_535], 2), ([0, 65_536], 4), ([7, 2**32 - 1], 4)):
        blob = lexicon.packed(values)
        assert len(blob) == width * len(values)
        assert lexicon.unpacked(blob, len(values)).tolist() == values
    with pytest.raises(ValueError, match="cannot hold"):
        lexicon.unpacked(b"\x00" * 6, 4)


def blocks_of(texts: dict[int, str], user: str = "ana") -> list[tuple]:
    """Rows (user, term, first_seq, last_seq, n, seqs, counts, offsets), as one write makes them."""
    rows: dict[str, tuple[list, list, list]] = {}
    for seq, tokens in zip(texts, tokenize_many(list(texts.values()))):
        for term, offsets in positions(tokens).items():
            seqs, counts, flat = rows.setdefault(term, ([], [], []))
            seqs.append(seq)
            counts.append(len(offsets))
            flat.extend(offsets)
    return [lexicon.block_row(user, term, *arrays) for term, arrays in rows.items()]


def read_form(row: tuple) -> tuple:
    """A block row as a term's read selects it: (first_seq, n, seqs, counts)."""
    return row[2], row[4], row[5], row[6]


def test_a_terms_postings_join_its_blocks_in_seq_order():
    first = {b[1]: b for b in blocks_of({10: "run to the shop", 12: "I ran, then ran again"})}
    later = {b[1]: b for b in blocks_of({3: "ran away", 11: "no match here"})}  # an older write's memories
    seqs, counts = lexicon.term_postings([read_form(later["ran"]), read_form(first["ran"])])
    assert seqs.tolist() == [3, 12] and counts.tolist() == [1, 2]
    assert [a.tolist() for a in lexicon.term_postings([])] == [[], []]


def test_a_phrase_is_its_tokens_at_consecutive_offsets():
    texts = {1: "send an e-mail", 2: "e mail e-mail and mail e", 3: "mail then e", 70_000: "an e-mail late"}
    rows = [(b[1], *b[2:3], *b[4:8]) for b in blocks_of(texts) if b[1] in ("e", "mail")]
    seqs, hits = lexicon.phrase_postings(("e", "mail"), rows)
    assert seqs.tolist() == [1, 2, 70_000] and hits.tolist() == [1, 2, 1]
    assert [a.tolist() for a in lexicon.phrase_postings(("e", "absent"), rows)] == [[], []]


def test_a_memory_of_many_tokens_has_wide_offsets_that_read_back():
    text = " ".join(["filler"] * 70_000 + ["needle", "point"])
    (row,) = [b for b in blocks_of({5: text}) if b[1] == "needl"]
    assert len(row[7]) == 4  # offset 70,000: four bytes
    _, _, offsets = lexicon.decoded(row[2], row[4], row[5], row[6], row[7])
    assert offsets.tolist() == [70_000]


def record(mid: str, text: str, user: str = "ana") -> MemoryRecord:
    return MemoryRecord(id=mid, user_id=user, text=text, embed_text=text, recorded_at=AT)


def vector(i: int) -> np.ndarray:
    v = np.random.default_rng(i).normal(size=4).astype(np.float32)
    return v / np.linalg.norm(v)


@contextmanager
def store_of(postgres_url, **options):
    with postgres_schema(postgres_url) as url:
        store = PostgresStore(url, **options)
        try:
            store.create_index("toy", 4, active=True)
            yield store
        finally:
            store.close()


def block_rows(store, term: str) -> list[tuple]:
    with psycopg.connect(store.url) as conn:
        return conn.execute("SELECT user_id, first_seq, last_seq, n FROM term_blocks WHERE term = %s ORDER BY block",
                            (term,)).fetchall()


def seqs_holding(store, term: str) -> list[int]:
    with psycopg.connect(store.url) as conn:
        rows = conn.execute("SELECT first_seq, n, seqs, counts FROM term_blocks WHERE term = %s", (term,)).fetchall()
    return lexicon.term_postings(rows)[0].tolist()


def ids(found) -> list[str]:
    return [m for m, _ in found]


def test_one_write_makes_one_block_per_user_and_term(postgres_url):
    with store_of(postgres_url) as store:
        texts = ["the cat sat", "a cat ran", "dogs bark", "cat and dog"]
        store.write([record(f"m{i}", t) for i, t in enumerate(texts)] + [record("b0", "a cat too", "bo")],
                    [vector(i) for i in range(5)], [])
        assert [(user, n) for user, _, _, n in block_rows(store, "cat")] == [("ana", 3), ("bo", 1)]
        assert ids(store.lexical_candidates("ana", ["cat"], 10, None)) == ["m0", "m1", "m3"]
        assert ids(store.lexical_candidates("bo", ["cat"], 10, None)) == ["b0"]


def test_deleted_and_rewritten_memories_leave_their_old_terms_blocks(postgres_url):
    with store_of(postgres_url) as store:
        store.write([record("m0", "blue whale"), record("m1", "blue bird"), record("m2", "red bird")],
                    [vector(i) for i in range(3)], [])
        whale_seq = seqs_holding(store, "whale")[0]
        store.delete("ana", ["m0"], [])
        assert block_rows(store, "whale") == []  # emptied: gone, no trace of m0
        assert whale_seq not in seqs_holding(store, "blue")
        store.replace_many([record("m1", "green frog")], [vector(7)], [])
        assert ids(store.lexical_candidates("ana", ["bird"], 10, None)) == ["m2"]
        assert ids(store.lexical_candidates("ana", ["frog"], 10, None)) == ["m1"]
        assert block_rows(store, "blue") == []
        assert store.document_frequencies("ana", ["bird", "frog", "whale"]) == ({"bird": 1, "frog": 1, "whale": 0}, 2)


def test_vacuum_merges_the_blocks_of_memories_added_one_by_one(postgres_url):
    with store_of(postgres_url, dense_exact_below=0) as store:
        count = lexicon.COMPACT_OVER + 4
        for i in range(count):
            store.write([record(f"m{i}", f"note number {i} on e-mail")], [vector(i)], [])
        store.delete("ana", ["m3"], [])
        before = {t: ids(store.lexical_candidates("ana", [t], 50, None)) for t in ("note", "e-mail", "7")}
        assert len(block_rows(store, "note")) == count - 1
        store.vacuum()
        assert [n for _, _, _, n in block_rows(store, "note")] == [count - 1]
        assert len(block_rows(store, "7")) == 1  # few blocks: left as they are
        assert {t: ids(store.lexical_candidates("ana", [t], 50, None)) for t in before} == before
        store.write([record(f"b{i}", f"note bulk {i}") for i in range(lexicon.SMALL_BLOCK)],
                    [vector(i) for i in range(lexicon.SMALL_BLOCK)], [])
        for i in range(lexicon.COMPACT_OVER + 1):
            store.write([record(f"s{i}", "bulk")], [vector(i)], [])
        before = {t: ids(store.lexical_candidates("ana", [t], 500, None)) for t in ("note", "e-mail", "7", "bulk")}
        store.vacuum()  # the small blocks of "bulk" merge; a bulk write's own block stays
        assert sorted(n for _, _, _, n in block_rows(store, "bulk")) == [lexicon.COMPACT_OVER + 1, lexicon.SMALL_BLOCK]
        assert [n for _, _, _, n in block_rows(store, "note")] == [count - 1, lexicon.SMALL_BLOCK]
        assert {t: ids(store.lexical_candidates("ana", [t], 500, None)) for t in before} == before
        reopened = PostgresStore(store.url, dense_exact_below=0)
        try:
            assert {t: ids(reopened.lexical_candidates("ana", [t], 500, None)) for t in before} == before
        finally:
            reopened.close()


def test_a_terms_count_is_read_from_the_keys_index_alone_after_vacuum(postgres_url):
    with store_of(postgres_url, dense_exact_below=0) as store:
        store.write([record(f"m{i}", f"note {i}") for i in range(30)], [vector(i) for i in range(30)], [])
        with pytest.raises(StoreError, match="inside a transaction"):
            with store.atomic():
                store.vacuum()
        store.vacuum()
        with psycopg.connect(store.url) as conn:
            conn.execute("SET enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.execute(
                "EXPLAIN (ANALYZE) SELECT sum(n) FROM term_blocks WHERE user_id = 'ana' AND term = 'note'"))
        assert "Index Only Scan" in plan and "Heap Fetches: 0" in plan
        assert store.document_frequencies("ana", ["note", "3"])[0] == {"note": 30, "3": 1}


def expected_postings(texts: dict[int, str]) -> dict[str, tuple[list[int], list[int]]]:
    """Each term's (seqs, counts) recomputed from the memories' texts as they are."""
    out: dict[str, tuple[list[int], list[int]]] = {}
    for seq in sorted(texts):
        for term, offsets in positions(tokenize_many([texts[seq]])[0]).items():
            seqs, counts = out.setdefault(term, ([], []))
            seqs.append(seq)
            counts.append(len(offsets))
    return out


def stored_postings(store) -> dict[str, tuple[list[int], list[int]]]:
    with psycopg.connect(store.url) as conn:
        rows = conn.execute("SELECT term, first_seq, n, seqs, counts FROM term_blocks WHERE user_id = 'ana'").fetchall()
    terms: dict[str, list[tuple]] = {}
    for term, *block in rows:
        terms.setdefault(term, []).append(tuple(block))
    return {term: tuple(a.tolist() for a in lexicon.term_postings(blocks)) for term, blocks in terms.items()}


def test_blocks_hold_exactly_the_postings_of_the_texts_through_writes_deletes_rewrites_and_vacuum(postgres_url, monkeypatch):
    monkeypatch.setattr(lexicon, "COMPACT_OVER", 2)
    monkeypatch.setattr(lexicon, "BLOCK_AT_MOST", 5)  # merged terms span several blocks
    rng = np.random.default_rng(3)
    words = ["red", "blue", "fox", "runs", "ran", "e-mail", "mail", "green"]
    with store_of(postgres_url) as store:
        texts: dict[str, str] = {}
        for step in range(40):
            op = rng.integers(4) if texts else 0
            if op == 0:
                batch = {f"m{step}-{i}": " ".join(rng.choice(words, size=rng.integers(1, 7))) for i in range(rng.integers(1, 4))}
                store.write([record(m, t) for m, t in batch.items()], [vector(step)] * len(batch), [])
                texts.update(batch)
            elif op == 1:
                gone = list(rng.choice(sorted(texts), size=min(2, len(texts)), replace=False))
                store.delete("ana", gone, [])
                for m in gone:
                    texts.pop(m)
            elif op == 2:
                m = str(rng.choice(sorted(texts)))
                texts[m] = " ".join(rng.choice(words, size=rng.integers(1, 7)))
                store.replace_many([record(m, texts[m])], [vector(step)], [])
            else:
                store.vacuum()
            seq_of = {r.id: s for r, s in zip(store.list_all("ana"), store._view("ana").rowids)}
            assert stored_postings(store) == expected_postings({int(seq_of[m]): t for m, t in texts.items()}), step


def test_merged_blocks_keep_each_memorys_offsets_when_spans_overlap():
    rows = blocks_of({1: "a b a", 4: "b a"}) + blocks_of({2: "a", 3: "c a a a"})  # two writes, interleaved seqs
    parts = [lexicon.decoded(r[2], r[4], r[5], r[6], r[7]) for r in rows if r[1] == "a"]
    (merged,) = list(lexicon._merged("ana", "a", parts))
    seqs, counts, offsets = lexicon.decoded(merged[2], merged[4], merged[5], merged[6], merged[7])
    assert seqs.tolist() == [1, 2, 3, 4] and counts.tolist() == [2, 1, 3, 1]
    assert offsets.tolist() == [0, 2, 0, 1, 2, 3, 1]


def test_terms_read_together_give_what_each_read_alone_gives(postgres_url):
    texts = ["running late again", "she runs and runs", "an e-mail about running", "nothing here"]
    with store_of(postgres_url, dense_exact_below=0) as store:
        store.write([record(f"m{i}", t) for i, t in enumerate(texts)], [vector(i) for i in range(4)], [])
        terms = ["runs", "running", "e-mail", "late", "absent"]
        together = store.document_frequencies("ana", terms), store.lexical_candidates("ana", terms, 10, None)
        alone = PostgresStore(store.url, dense_exact_below=0)
        try:
            view = alone._view("ana")
            counts = {t: alone._frequency("ana", view, t) for t in terms}
            assert together[0] == (counts, 4) == ({"runs": 3, "running": 3, "e-mail": 1, "late": 1, "absent": 0}, 4)
            for term in terms:
                assert alone._postings("ana", view, term)[0].tolist() == store._postings("ana", store._view("ana"), term)[0].tolist()
            assert ids(together[1]) == ids(alone.lexical_candidates("ana", terms, 10, None))
        finally:
            alone.close()
