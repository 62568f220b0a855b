import json

import pytest

from memlane.errors import InputError
from memlane.store.sqlite import SQLiteStore
from memlane.tune.examples import Example, read_examples, read_rows, resolve_labels, write_examples


@pytest.fixture
def store(memory):
    memory.add([{"role": "user", "content": "I adopted a beagle named Biscuit"},
                {"role": "assistant", "content": "Lovely!"}], user_id="ana", session_id="s1")
    memory.add("My sister lives in Lisbon", user_id="bo", session_id="s9")
    memory.close()
    return SQLiteStore(memory.path)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_positives_by_memory_id_resolve_to_the_text_the_index_embeds(store, tmp_path):
    turn = store.list("ana", 10, None, {"node_type": "turn"})[0][0]
    examples = resolve_labels(_write(tmp_path / "l.jsonl", [{"query": "dog?", "user_id": "ana", "positive_ids": [turn.id]}]), store)
    assert examples[0].positive_ids == [turn.id]
    assert examples[0].positives == [turn.embed_text]


def test_a_positive_of_another_user_is_not_found(store, tmp_path):
    other = store.list("bo", 10, None, None)[0][0]
    labels = _write(tmp_path / "l.jsonl", [{"query": "q", "user_id": "ana", "positive_ids": [other.id]}])
    with pytest.raises(InputError) as caught:
        resolve_labels(labels, store)
    assert "line 1" in str(caught.value) and "ana" in str(caught.value)


def test_positive_turn_ids_match_the_turn_ids_of_the_source_conversation(tiny_store):
    path, _, labels = tiny_store
    store = SQLiteStore(path)
    examples = resolve_labels(labels, store)
    first = json.loads(labels.read_text().splitlines()[0])
    turns = {r.metadata["turn_id"]: r for r in store.list("26", 1000, None, {"node_type": "turn"})[0]}
    assert examples[0].positive_ids == [turns[t].id for t in first["positive_turn_ids"]]
    assert examples[0].now == first["now"] and examples[0].group == first["group"]
    store.close()


def test_bad_lines_are_named(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "user_id": "u", "positive_ids": ["x"]}\n{"query": "b"\n')
    with pytest.raises(InputError, match="line 2"):
        read_rows(bad)
    _write(bad, [{"query": "a", "positive_ids": ["x"]}])
    with pytest.raises(InputError, match="user_id"):
        read_rows(bad)


def test_examples_round_trip_and_unresolved_rows_are_refused(tmp_path):
    example = Example("q", "u", ["id1"], ["text"], ["neg"], ["id2"], now="2023-05-08", group="temporal")
    path = tmp_path / "e.jsonl"
    assert write_examples(path, [example]) == 1
    assert read_examples(path) == [example]
    assert not (tmp_path / "e.jsonl.partial").exists()
    _write(path, [{"query": "q", "user_id": "u", "positive_turn_ids": ["D1:1"]}])
    with pytest.raises(InputError, match="resolve"):
        read_examples(path)
