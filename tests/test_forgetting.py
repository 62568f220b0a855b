"""Forgetting is complete: deleted or replaced words are found by no strategy, on no path that
derives text or vectors from a memory (session memories, the per-user term index, cached views);
and two users' memories never mix, whatever the sequence of calls."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from memlane import Memory, MemoryConfig
from memlane.embed import HashEmbedder

HELLO = [{"role": "user", "content": "Hello there, how are you?"},
         {"role": "assistant", "content": "Fine, thanks. What can I do for you?"}]
CODE = [{"role": "user", "content": "My new door code is PLUM-4242."},
        {"role": "assistant", "content": "Noted, I will remember the door code."},
        {"role": "user", "content": "Also the garage opens with the same code."}]


def _found_anywhere(memory: Memory, user_id: str, words: str) -> list[str]:
    """Texts of the user's memories holding `words`: in search hits (every strategy fused) and
    in the stored records (session memories included)."""
    hits = [h.record.text for h in memory.search(words, user_id=user_id, limit=50)]
    stored = [r.text for r in memory.get_all(user_id, limit=1000).records]
    return [t for t in hits + stored if words.lower() in t.lower()]


def test_deleting_a_turn_of_a_second_add_to_one_session_forgets_it(memory):
    memory.add(HELLO, user_id="u", session_id="s")
    added = memory.add(CODE, user_id="u", session_id="s")
    assert _found_anywhere(memory, "u", "PLUM-4242")
    memory.delete(added[0].id, user_id="u")
    assert _found_anywhere(memory, "u", "PLUM-4242") == []
    # The first call's session memory is untouched; the second's holds the two turns left.
    sessions = [r for r in memory.get_all("u").records if r.node_type == "session"]
    assert sorted(s.metadata["turns"] for s in sessions) == [2, 2]
    assert any("garage" in s.text for s in sessions)


def test_updating_a_turn_of_a_second_add_to_one_session_forgets_the_old_words(memory):
    memory.add(HELLO, user_id="u", session_id="s")
    added = memory.add(CODE, user_id="u", session_id="s")
    memory.update(added[0].id, "My new door code is secret.", user_id="u")
    assert _found_anywhere(memory, "u", "PLUM-4242") == []
    session = next(r for r in memory.get_all("u").records
                   if r.node_type == "session" and added[0].id in r.metadata["turn_ids"])
    assert "door code is secret" in session.text


def test_deleting_the_second_last_turn_of_a_session_deletes_its_session_memory(memory):
    added = memory.add(CODE[:2], user_id="u", session_id="s")
    memory.delete(added[0].id, user_id="u")
    assert [r.node_type for r in memory.get_all("u").records] == ["turn"]
    assert _found_anywhere(memory, "u", "PLUM-4242") == []


def test_a_shared_term_index_forgets_a_deleted_word(memory):
    # Several users interleaved: each gets their own term index (see SQLiteStore._Lexicon).
    for user in ("a", "b", "c"):
        memory.add(HELLO, user_id=user)
    kept = memory.add("The zebra crossing is by the bakery.", user_id="b")
    memory.add("Our zebra mascot", user_id="a")
    assert memory.search("zebra", user_id="b")
    memory.delete(kept[0].id, user_id="b")
    assert _found_anywhere(memory, "b", "zebra") == []
    assert _found_anywhere(memory, "a", "zebra")


def test_an_export_of_the_store_holds_no_deleted_text(memory, tmp_path):
    added = memory.add(CODE, user_id="u")
    for record in added:
        if record.node_type == "turn":
            memory.delete(record.id, user_id="u")
    memory.close()
    raw = (tmp_path / "store.db").read_bytes()
    wal = tmp_path / "store.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    # History keeps what was said (an audit trail): the words may stand in its rows, nowhere else.
    import sqlite3

    conn = sqlite3.connect(tmp_path / "store.db")
    cells = sum(text.count("PLUM-4242") for row in conn.execute("SELECT old_text, new_text FROM history")
                for text in row if text)
    conn.close()
    assert cells >= 2
    assert raw.count(b"PLUM-4242") == cells


# --- the class: any sequence of calls ---------------------------------------------------------------------

WORDS = ["apple", "harbor", "violin", "quartz", "meadow", "lantern", "copper", "falcon"]
USERS = ["ana", "bo"]


def _marker(n: int) -> str:
    return f"ZQ{n:04d}X"


operation = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(USERS), st.integers(1, 3), st.sampled_from(["s1", "s1", "s2", None])),
    st.tuples(st.just("update"), st.integers(0, 50)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("delete_all"), st.sampled_from(USERS)),
    st.tuples(st.just("consolidate"), st.sampled_from(USERS)),
    st.tuples(st.just("expire"), st.sampled_from(USERS)),
)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=14))
@example([("add", "ana", 2, "s1"), ("add", "ana", 3, "s1"), ("delete", 2)])  # the hostile tester's case
@example([("add", "ana", 2, "s1"), ("add", "ana", 2, "s1"), ("update", 3), ("add", "bo", 2, "s1")])
def test_no_forgotten_word_is_found_and_users_never_mix(tmp_path_factory, operations):
    config = MemoryConfig()
    config.embedder.provider = "hash"
    config.embedder.model = "hash-64"
    config.embedder.cache_path = "off"
    config.retention.episodic_days = 30
    path = tmp_path_factory.mktemp("prop") / "store.db"
    memory = Memory(path, config, embedder=HashEmbedder(dims=64))
    serial = 0
    live: dict[str, str] = {}  # marker -> user, of words that must stay findable
    gone: dict[str, str] = {}  # marker -> user, of words that must be found nowhere
    turns: list[tuple[str, str, str]] = []  # (memory id, user, marker) of turns added so far
    try:
        for op in operations:
            kind = op[0]
            if kind == "add":
                _, user, n, session = op
                messages = []
                for i in range(n):
                    serial += 1
                    messages.append({"role": "user" if i % 2 == 0 else "assistant",
                                     "content": f"{WORDS[serial % len(WORDS)]} note {_marker(serial)} today"})
                # Old sessions are expired by retention; fresh ones are kept.
                date = "2020-01-01" if serial % 3 == 0 else "2026-11-30"
                for record in memory.add(messages, user_id=user, session_id=session, session_date=date):
                    if record.node_type == "turn":
                        marker = record.text.split()[2]
                        live[marker] = user
                        turns.append((record.id, user, marker))
            elif kind in ("update", "delete") and turns:
                memory_id, user, marker = turns.pop(op[1] % len(turns))
                if marker not in live:
                    continue
                gone[marker] = live.pop(marker)
                if kind == "update":
                    serial += 1
                    memory.update(memory_id, f"replaced note {_marker(serial)}", user_id=user)
                    live[_marker(serial)] = user
                    turns.append((memory_id, user, _marker(serial)))
                else:
                    memory.delete(memory_id, user_id=user)
            elif kind == "delete_all":
                memory.delete_all(op[1])
                for marker in [m for m, u in live.items() if u == op[1]]:
                    gone[marker] = live.pop(marker)
            elif kind == "consolidate":
                memory.consolidate(op[1])
            elif kind == "expire":
                memory.apply_retention(now="2026-12-01", user_id=op[1])
                for record in memory.expired(op[1]):
                    if record.node_type == "turn":
                        marker = record.text.split()[2]
                        if marker in live:
                            gone[marker] = live.pop(marker)
        for marker, user in gone.items():
            for searcher in USERS:
                assert _found_anywhere(memory, searcher, marker) == [], (marker, user, operations)
        for marker, user in live.items():
            assert _found_anywhere(memory, user, marker), (marker, operations)
            for other in set(USERS) - {user}:
                assert _found_anywhere(memory, other, marker) == []
        for user in USERS:
            for hit in memory.search("note today", user_id=user, limit=50):
                assert hit.record.user_id == user
    finally:
        memory.close()


@pytest.mark.parametrize("call", ["get", "update", "delete", "history"])
def test_calls_by_id_without_a_user_are_refused_unless_admin(memory, call):
    from memlane.errors import InputError

    record = memory.add("I live in Porto.", user_id="ana")[0]
    args = {"update": (record.id, "new text")}.get(call, (record.id,))
    with pytest.raises(InputError, match="user_id is required"):
        getattr(memory, call)(*args)
    getattr(memory, call)(*args, admin=True)  # the explicit operator path still works
    with pytest.raises(InputError, match="admin"):
        getattr(memory, call)(*args, admin="yes")


def test_delete_all_erases_the_users_words_from_history_too(memory):
    added = memory.add(CODE, user_id="u")
    kept = memory.add("Bo's own note", user_id="bo")[0]
    memory.delete_all("u")
    events = memory.history(added[0].id, user_id="u")
    assert [e.event for e in events] == ["DELETE"] and events[0].old_text is None
    assert memory.history(kept.id, user_id="bo")[0].new_text == "Bo's own note"
