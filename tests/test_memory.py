"""The public Memory API: add, search, get, get_all, update, delete, history, reset."""

import sqlite3

import numpy as np
import pytest

from memlane import Category, InputError, Memory, ModelMismatchError, NotFoundError, Session, Turn
from memlane.embed import HashEmbedder

from _support import CHAT


def test_add_stores_every_turn_and_the_session(memory):
    records = memory.add(CHAT, user_id="ana", session_date="2023-05-08")
    turns = [r for r in records if r.node_type == "turn"]
    sessions = [r for r in records if r.node_type == "session"]
    assert len(turns) == 4 and len(sessions) == 1
    assert turns[0].speaker == "user" and turns[0].session_date.startswith("2023-05-08")
    assert [t.turn_index for t in turns] == [0, 1, 2, 3]
    assert sessions[0].metadata["turn_ids"] == [t.id for t in turns]


def test_add_resolves_relative_dates_against_the_session_date(memory):
    records = memory.add(CHAT[:1], user_id="ana", session_date="2023-05-08")
    (event,) = records[0].event_dates
    assert (event.expression, event.start, event.end) == ("yesterday", "2023-05-07", "2023-05-07")
    assert "2023-05-07" in records[0].embed_text


def test_search_finds_the_relevant_turn_first(memory):
    memory.add(CHAT, user_id="ana", session_date="2023-05-08")
    hits = memory.search("What is the name of the beagle?", user_id="ana", filters={"node_type": "turn"})
    assert "Biscuit" in hits[0].text


def test_explain_lists_the_strategies_with_ranks(memory):
    memory.add(CHAT, user_id="ana", session_date="2023-05-08")
    hit = memory.search("beagle puppy", user_id="ana", explain=True, limit=1)[0]
    found_by = {s.strategy: s.rank for s in hit.explanation.strategies}
    assert found_by["bm25"] >= 1 and found_by["dense"] >= 1
    assert set(hit.explanation.weights) >= {"bm25", "dense"}


def test_direct_lookup_finds_an_email(memory):
    memory.add(CHAT, user_id="ana")
    hit = memory.search("ana.silva@example.com", user_id="ana", explain=True, limit=1, filters={"node_type": "turn"})[0]
    assert "invoice" in hit.text
    assert "lookup" in {s.strategy for s in hit.explanation.strategies}


def test_a_time_in_the_question_finds_memories_of_that_time(memory):
    memory.add([{"role": "user", "content": "We painted the fence."}], user_id="ana", session_date="2023-01-10")
    memory.add([{"role": "user", "content": "We painted the boat."}], user_id="ana", session_date="2023-06-10")
    hits = memory.search("What did we paint last month?", user_id="ana", now="2023-07-02", explain=True,
                         filters={"node_type": "turn"})
    assert "boat" in hits[0].text
    assert "temporal" in {s.strategy for s in hits[0].explanation.strategies}


def test_date_filters_are_hard(memory):
    memory.add([{"role": "user", "content": "We painted the fence."}], user_id="ana", session_date="2023-01-10")
    memory.add([{"role": "user", "content": "We painted the boat."}], user_id="ana", session_date="2023-06-10")
    hits = memory.search("paint", user_id="ana", filters={"date_from": "2023-06-01", "date_to": "2023-06-30"})
    assert [h.text for h in hits] == ["We painted the boat."]


def test_near_duplicates_are_dropped(memory):
    for _ in range(3):
        memory.add("My favourite colour is green.", user_id="ana")
    hits = memory.search("favourite colour", user_id="ana")
    assert [h.text for h in hits] == ["My favourite colour is green."]


def test_get_update_delete_and_history(memory):
    record = memory.add("I live in Porto.", user_id="ana")[0]
    assert memory.get(record.id, user_id="ana").text == "I live in Porto."
    updated = memory.update(record.id, "I live in Lisbon.", user_id="ana")
    assert updated.text == memory.get(record.id, user_id="ana").text == "I live in Lisbon."
    assert memory.search("Lisbon", user_id="ana")[0].id == record.id
    memory.delete(record.id, user_id="ana")
    assert memory.get(record.id, user_id="ana") is None
    events = memory.history(record.id, user_id="ana")
    assert [e.event for e in events] == ["ADD", "UPDATE", "DELETE"]
    assert (events[1].old_text, events[1].new_text) == ("I live in Porto.", "I live in Lisbon.")
    assert all(e.at.endswith("Z") for e in events)


def test_get_all_pages_with_a_cursor(memory):
    for i in range(5):
        memory.add(f"note number {i}", user_id="ana")
    first = memory.get_all("ana", limit=2)
    second = memory.get_all("ana", limit=2, cursor=first.next_cursor)
    third = memory.get_all("ana", limit=2, cursor=second.next_cursor)
    texts = [r.text for page in (first, second, third) for r in page.records]
    assert texts == [f"note number {i}" for i in range(5)]
    assert third.next_cursor is None


def test_reset_forgets_everything(memory):
    memory.add(CHAT, user_id="ana")
    memory.add(CHAT, user_id="bo")
    memory.reset()
    assert memory.stats().memories == 0
    assert memory.search("beagle", user_id="ana") == []


def test_working_memory_is_refused_with_the_reason(memory):
    with pytest.raises(InputError, match="working memory stays in the prompt"):
        memory.add("scratch", user_id="ana", category="working")


def test_unknown_category_lists_the_valid_ones(memory):
    with pytest.raises(InputError, match="episodic, procedural, semantic, social"):
        memory.add("x", user_id="ana", category="dreams")


def test_categories_are_stored(memory):
    record = memory.add("Always run the tests before pushing.", user_id="ana", category="procedural")[0]
    assert memory.get(record.id, user_id="ana").category is Category.PROCEDURAL


def test_bad_input_is_refused_and_nothing_is_stored(memory):
    with pytest.raises(InputError, match="content"):
        memory.add([{"role": "user", "content": "fine"}, {"role": "user", "content": ""}], user_id="ana")
    with pytest.raises(InputError, match="user_id"):
        memory.add("hello", user_id="")
    with pytest.raises(InputError, match="not a date"):
        memory.add("hello", user_id="ana", session_date="the day after the party")
    assert memory.stats().memories == 0


def test_update_and_delete_of_unknown_ids_raise(memory):
    with pytest.raises(NotFoundError):
        memory.update("nope", "text", user_id="ana")
    with pytest.raises(NotFoundError):
        memory.delete("nope", user_id="ana")


def test_a_session_object_and_its_photo_caption(memory):
    session = Session(turns=[Turn(text="Look at this!", speaker="Mel", caption="a dog on a beach"),
                             Turn(text="So cute", speaker="Caro")], session_id="s1", date="2023-05-08T13:56")
    records = memory.add(session, user_id="ana")
    assert records[0].text == "Look at this! [shared a photo: a dog on a beach]"
    assert memory.search("dog beach photo", user_id="ana", limit=1, filters={"node_type": "turn"})[0].record.speaker == "Mel"


def test_the_store_refuses_another_model_and_names_reindex(tmp_path, config):
    path = tmp_path / "m.db"
    with Memory(path, config, embedder=HashEmbedder(dims=256)) as m:
        m.add("hello there", user_id="ana")
    with pytest.raises(ModelMismatchError, match="memlane reindex"):
        Memory(path, config, embedder=HashEmbedder(dims=128))


def test_the_store_is_one_sqlite_file_in_wal_mode(tmp_path, memory):
    memory.add("hello", user_id="ana")
    conn = sqlite3.connect(memory.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"memories", "memories_fts", "history", "vector_indexes"} <= tables


def test_a_file_that_breaks_at_its_last_record_leaves_the_store_as_it_was(memory, tmp_path):
    from memlane.ingest.formats import load_conversations

    memory.add("an earlier memory", user_id="ana")
    before = memory.stats()
    lines = [f'{{"role": "user", "content": "message {i}", "session_id": "s{i // 3}"}}' for i in range(30)]
    lines.append('{"role": "user", "content": "the last one", "mood": "happy"}')
    bad = tmp_path / "history.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"history.jsonl.*line 31.*'mood'"):
        memory.ingest_conversations(load_conversations(bad), user_id="ana")
    assert memory.stats() == before


def test_an_embedder_failing_mid_ingest_leaves_the_store_as_it_was(tmp_path, config):
    class FailsOnSecondBatch(HashEmbedder):
        calls = 0

        def encode(self, texts, purpose="document"):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("embedding server went away")
            return super().encode(texts, purpose)

    config.embedder.batch_size = 1  # four texts per encode call
    with Memory(tmp_path / "m.db", config, embedder=FailsOnSecondBatch(dims=256)) as m:
        sessions = [Session(turns=[Turn(text=f"turn {i}", speaker="a") for i in range(5)], session_id=f"s{j}")
                    for j in range(3)]
        with pytest.raises(RuntimeError):
            m.ingest(sessions, user_id="ana")
        assert m.stats().memories == 0


def test_deleting_a_turn_removes_its_words_from_the_session_memory(memory):
    records = memory.add([{"role": "user", "content": "My locker code is 4471"},
                          {"role": "user", "content": "I like green tea"},
                          {"role": "assistant", "content": "Noted both"}], user_id="ana", session_id="s1")
    secret = next(r for r in records if "4471" in r.text)
    session = next(r for r in records if r.node_type == "session")
    memory.delete(secret.id, user_id="ana")
    rewritten = memory.get(session.id, user_id="ana")
    assert "4471" not in rewritten.text and "green tea" in rewritten.text
    assert rewritten.metadata["turns"] == 2 and secret.id not in rewritten.metadata["turn_ids"]
    assert all("4471" not in h.text for h in memory.search("locker code 4471", user_id="ana"))
    assert [e.event for e in memory.history(session.id, user_id="ana")] == ["ADD", "UPDATE"]


def test_a_session_memory_goes_when_fewer_than_two_turns_remain(memory):
    records = memory.add([{"role": "user", "content": "one"}, {"role": "user", "content": "two"}], user_id="ana", session_id="s1")
    session = next(r for r in records if r.node_type == "session")
    memory.delete(records[0].id, user_id="ana")
    assert memory.get(session.id, user_id="ana") is None


def test_updating_a_turn_rewrites_its_session_memory(memory):
    records = memory.add([{"role": "user", "content": "I live in Lisbon"}, {"role": "user", "content": "I like tea"}],
                         user_id="ana", session_id="s1")
    session = next(r for r in records if r.node_type == "session")
    memory.update(records[0].id, "I live in Porto", user_id="ana")
    rewritten = memory.get(session.id, user_id="ana")
    assert "Porto" in rewritten.text and "Lisbon" not in rewritten.text
    vectors = memory._store.vectors("ana", [records[0].id, records[1].id, session.id])
    expected = vectors[:2].mean(axis=0)
    assert np.allclose(vectors[2], expected / np.linalg.norm(expected), atol=1e-5)


def test_updating_a_turn_rebuilds_its_passages(memory):
    memory.add([{"role": "user", "content": "Short note."}, {"role": "user", "content": "Another one."}],
               user_id="ana", session_id="s1")
    turn = memory.search("Short note", user_id="ana", filters={"node_type": "turn"})[0].record
    view = memory._store._view("ana")
    assert view.position[turn.id] not in set(view.passage_owners)
    memory.update(turn.id, "We adopted a beagle puppy last week. His name is Biscuit and he loves parks.",
                  user_id="ana")
    view = memory._store._view("ana")
    owned = [i for i, owner in enumerate(view.passage_owners) if view.ids[owner] == turn.id]
    assert len(owned) == 1
    start = view.passage_starts[owned[0]]
    expected = memory.embedder.encode(["user: We adopted a beagle puppy last week.",
                                       "user: His name is Biscuit and he loves parks."])
    assert np.allclose(view.passages[start:start + 2], expected, atol=1e-6)


@pytest.mark.model
def test_a_store_embedded_in_float32_refuses_the_int8_copy_of_the_same_model(tmp_path):
    from memlane.config import MemoryConfig

    full = MemoryConfig.model_validate({"embedder": {"cache_path": "off"}})
    small = MemoryConfig.model_validate({"embedder": {"cache_path": "off", "precision": "int8"}})
    with Memory(tmp_path / "m.db", full) as m:
        m.add("hello there", user_id="ana")
    with pytest.raises(ModelMismatchError, match=r"\+int8.*memlane reindex"):
        Memory(tmp_path / "m.db", small)
