"""Export to JSON Lines and import back: a store moves or is backed up without losing anything."""

import gzip
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from memlane import Memory
from memlane.cli import app
from memlane.embed import HashEmbedder
from memlane.errors import InputError
from memlane.nodes.spec import default_topology
from memlane.records import Category, HistoryEvent, MemoryRecord
from memlane.store import scan
from memlane.transfer import export_memories, import_memories

from _support import CHAT

QUESTIONS = ["Where does Maria live?", "beagle puppy", "invoice email", "pottery class"]


class CountingEmbedder(HashEmbedder):
    """The test embedder, counting the texts it embeds."""

    def __init__(self, dims: int = 256) -> None:
        super().__init__(dims)
        self.texts = 0

    def encode(self, texts, purpose="document"):
        self.texts += len(texts)
        return super().encode(texts, purpose)


def _populate(memory: Memory) -> dict:
    """Two users with sessions, an update, a delete, a superseded fact citing evidence, an expired
    memory and node definitions (one removed)."""
    memory.add(CHAT, user_id="ana", session_id="s1", session_date="2024-05-08")
    memory.add([{"role": "user", "content": "I take a pottery class on Tuesdays. It is fun."},
                {"role": "user", "content": "My cat Tom is sick."}], user_id="ana", session_date="2024-06-01")
    memory.add("Bob likes chess and lives in Porto.", user_id="bob", session_date="2024-01-02")
    turns = memory.get_all("ana", filters={"node_type": "turn"}).records
    memory.update(turns[1].id, "Beagles are calm dogs, said the assistant.", user_id="ana")
    memory.delete(turns[2].id, user_id="ana")
    store = memory._store
    old = MemoryRecord("fact-1", "ana", "Ana lives in Lisbon", "Ana lives in Lisbon", category=Category.SEMANTIC,
                       node_type="profile_attribute", recorded_at="2024-05-08T10:00:00Z", fact_key="ana|city",
                       valid_from="2024-05-08", valid_until="2024-06-01", superseded_by="fact-2",
                       metadata={"evidence": [turns[0].id], "fields": {"city": "Lisbon"}})
    new = MemoryRecord("fact-2", "ana", "Ana lives in Porto", "Ana lives in Porto", category=Category.SEMANTIC,
                       node_type="profile_attribute", recorded_at="2024-06-01T10:00:00Z", fact_key="ana|city",
                       valid_from="2024-06-01", metadata={"evidence": [turns[3].id]})
    vectors = memory.embedder.encode([old.embed_text, new.embed_text])
    store.write([old, new], list(vectors), [HistoryEvent("fact-1", "ADD", None, old.text, "2024-05-08T10:00:00Z"),
                                            HistoryEvent("fact-2", "ADD", None, new.text, "2024-06-01T10:00:00Z"),
                                            HistoryEvent("fact-1", "SUPERSEDE", None, "fact-2", "2024-06-01T10:00:00Z")])
    specs = {spec.name: spec for spec in default_topology()}
    store.define_node("profile_attribute", specs["profile_attribute"].fingerprint(), "2024-01-01T00:00:00Z")
    store.define_node("social_relation", specs["social_relation"].fingerprint(), "2024-01-01T00:00:00Z")
    store.remove_node("social_relation", "2024-02-01T00:00:00Z")
    bob = memory.get_all("bob").records[0]
    store.expire("bob", [bob.id], "2024-07-01T00:00:00Z", "episodic_days")
    memory.add("Bob plays the piano.", user_id="bob", session_date="2024-02-02")
    return {"deleted": turns[2].id, "expired": bob.id}


def _snapshot(memory: Memory) -> dict:
    store = memory._store
    out = {"nodes": store.node_rows(), "stats": memory.stats().memories, "users": {}}
    for user in store.export_users():
        records = [r.to_dict() for r in scan(store, user)]
        out["users"][user] = {
            "records": records,
            "history": {r["id"]: memory.history(r["id"], user_id=user) for r in records},
            "expired": [(r.to_dict(), at, rule, store.history(user, r.id)) for r, at, rule in store.expired(user)],
            "orphans": store.orphan_history(user, 10_000, None)[0],
            "hits": {q: [(h.id, round(h.score, 5)) for h in memory.search(q, user_id=user, limit=5)]
                     for q in QUESTIONS} if records else {},
        }
    return out


@pytest.fixture
def source(memory):
    facts = _populate(memory)
    return memory, facts


def _target(tmp_path, config, name="target.db", embedder=None):
    return Memory(tmp_path / name, config, embedder=embedder or HashEmbedder(dims=256))


@pytest.mark.parametrize("name", ["backup.jsonl", "backup.jsonl.gz"])
@pytest.mark.parametrize("vectors", [True, False])
def test_a_round_trip_loses_nothing(source, tmp_path, config, name, vectors):
    memory, facts = source
    report = export_memories(memory, tmp_path / name, vectors=vectors)
    assert report.users == 2 and report.expired == 1 and report.history > 0 and report.nodes == 2
    target = _target(tmp_path, config)
    imported = import_memories(target, tmp_path / name)
    assert imported.memories == report.memories == memory.stats().memories
    before, after = _snapshot(memory), _snapshot(target)
    assert after == before
    # What the snapshot covers, spelled out.
    assert [e.event for e in target.history(facts["deleted"], user_id="ana")] == ["ADD", "DELETE"]
    fact = target.get("fact-1", user_id="ana")
    assert fact.superseded_by == "fact-2" and fact.valid_until == "2024-06-01" and fact.metadata["evidence"]
    assert [r.id for r in target.expired("bob")] == [facts["expired"]]
    assert target.restore(facts["expired"], user_id="bob").id == facts["expired"]
    target.close()


def test_the_file_is_json_lines_with_a_header_and_an_end_line(source, tmp_path):
    memory, _ = source
    export_memories(memory, tmp_path / "out.jsonl.gz", vectors=True)
    with gzip.open(tmp_path / "out.jsonl.gz", "rt", encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    assert lines[0]["format"] == "memlane-export" and lines[0]["version"] == 1
    assert lines[0]["model"] == "hash-256" and lines[0]["dims"] == 256 and lines[0]["vectors"] is True
    assert {line["type"] for line in lines[1:]} == {"node", "memory", "expired", "history", "end"}
    assert lines[-1] == {"type": "end", "memories": memory.stats().memories, "expired": 1,
                         "history": sum(line.get("type") == "history" for line in lines)}
    vector = next(line for line in lines[1:] if line["type"] == "memory")["vector"]
    assert len(vector) % 256 == 0 and len(vector) >= 256


def test_with_vectors_the_import_embeds_nothing(source, tmp_path, config):
    memory, _ = source
    export_memories(memory, tmp_path / "v.jsonl", vectors=True)
    embedder = CountingEmbedder()
    target = _target(tmp_path, config, embedder=embedder)
    report = import_memories(target, tmp_path / "v.jsonl")
    assert embedder.texts == 0 and report.embedded == 0
    target.close()


@pytest.mark.parametrize("batch", [1_000, 3])
def test_without_vectors_the_texts_are_embedded_again(source, tmp_path, config, monkeypatch, batch):
    memory, _ = source
    monkeypatch.setattr("memlane.transfer.BATCH", batch)  # 3: a session's turns in an earlier batch
    export_memories(memory, tmp_path / "plain.jsonl")
    embedder = CountingEmbedder()
    target = _target(tmp_path, config, embedder=embedder)
    report = import_memories(target, tmp_path / "plain.jsonl")
    assert embedder.texts > 0 and report.embedded == report.memories
    for user in ("ana", "bob"):  # sessions from their turns' vectors, as at ingestion
        ids = [r.id for r in scan(memory._store, user)]
        assert np.allclose(target._store.vectors(user, ids), memory._store.vectors(user, ids), atol=1e-6)
    target.close()


def test_vectors_of_another_model_are_not_used(source, tmp_path, config):
    memory, _ = source
    export_memories(memory, tmp_path / "v.jsonl", vectors=True)
    config.embedder.model, config.embedder.dims = "hash-64", 64
    target = _target(tmp_path, config, embedder=HashEmbedder(dims=64))
    report = import_memories(target, tmp_path / "v.jsonl")
    assert report.embedded == report.memories
    assert target.stats().index.dims == 64 and target.search("beagle", user_id="ana")
    target.close()


def test_an_export_of_one_user_holds_nothing_of_another(source, tmp_path, config):
    memory, _ = source
    report = export_memories(memory, tmp_path / "bob.jsonl", users=["bob"], vectors=True)
    text = (tmp_path / "bob.jsonl").read_text(encoding="utf-8")
    assert '"ana"' not in text and "Lisbon" not in text and "beagle" not in text
    assert report.users == 1 and report.memories == len(scan(memory._store, "bob"))
    target = _target(tmp_path, config)
    import_memories(target, tmp_path / "bob.jsonl")
    assert target._store.export_users() == ["bob"]
    target.close()


def _corrupt(tmp_path, source_memory, how: str):
    export_memories(source_memory, tmp_path / "good.jsonl", vectors=True)
    lines = (tmp_path / "good.jsonl").read_text(encoding="utf-8").splitlines()
    bad = tmp_path / f"{how}.jsonl"
    if how == "truncated":
        bad.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    elif how == "garbage":
        bad.write_bytes(b"\x00\x01 this is not json\n")
    elif how == "not-an-export":
        bad.write_text('{"role": "user", "content": "hi"}\n', encoding="utf-8")
    elif how == "bad-json":
        bad.write_text("\n".join(lines[:3] + ['{"type": "memory", "record": '] + lines[3:]) + "\n", encoding="utf-8")
    elif how == "version":
        header = json.loads(lines[0]) | {"version": 99}
        bad.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n", encoding="utf-8")
    elif how == "cut-gzip":
        data = gzip.compress("\n".join(lines).encode())
        bad = tmp_path / "cut.jsonl.gz"
        bad.write_bytes(data[: len(data) // 2])
    return bad


@pytest.mark.parametrize("how, words", [
    ("truncated", "truncated"), ("garbage", "line 1"), ("not-an-export", "not a memlane export"),
    ("bad-json", "line 4"), ("version", "version 99"), ("cut-gzip", "cut.jsonl.gz"),
])
def test_a_broken_file_is_refused_and_the_store_is_unchanged(source, tmp_path, config, monkeypatch, how, words):
    memory, _ = source
    monkeypatch.setattr("memlane.transfer.BATCH", 2)  # batches are written before the fault is met
    bad = _corrupt(tmp_path, memory, how)
    target = _target(tmp_path, config)
    target.add("Something already here about tea.", user_id="cleo")
    before = _snapshot(target)
    with pytest.raises(InputError) as caught:
        import_memories(target, bad)
    assert words in str(caught.value) and bad.name in str(caught.value)
    assert _snapshot(target) == before
    target.close()


def test_an_id_already_in_the_store_is_refused_and_nothing_is_written(source, tmp_path, config, monkeypatch):
    memory, _ = source
    monkeypatch.setattr("memlane.transfer.BATCH", 2)
    export_memories(memory, tmp_path / "all.jsonl")
    target = _target(tmp_path, config)
    export_memories(memory, tmp_path / "bob.jsonl", users=["bob"])
    import_memories(target, tmp_path / "bob.jsonl")
    before = _snapshot(target)
    bob_id = target.get_all("bob").records[0].id
    with pytest.raises(InputError, match=f"memory {bob_id} already exists"):
        import_memories(target, tmp_path / "all.jsonl")
    assert _snapshot(target) == before
    target.close()


def test_importing_into_the_source_store_is_refused(source, tmp_path):
    memory, _ = source
    export_memories(memory, tmp_path / "all.jsonl")
    before = _snapshot(memory)
    with pytest.raises(InputError, match="already exists"):
        import_memories(memory, tmp_path / "all.jsonl")
    assert _snapshot(memory) == before


def test_a_missing_file_is_an_input_error(memory, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        import_memories(memory, tmp_path / "nope.jsonl")


def test_an_empty_store_exports_a_file_that_imports(memory, tmp_path, config):
    report = export_memories(memory, tmp_path / "empty.jsonl")
    assert report.memories == 0
    target = _target(tmp_path, config)
    assert import_memories(target, tmp_path / "empty.jsonl").memories == 0
    target.close()


def test_cli_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLANE_EMBEDDER__PROVIDER", "hash")
    monkeypatch.setenv("MEMLANE_EMBEDDER__MODEL", "hash-256")
    monkeypatch.setenv("MEMLANE_EMBEDDER__CACHE_PATH", "off")
    runner = CliRunner()
    source, target, out = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "out.jsonl.gz"
    with Memory(source, embedder=HashEmbedder(dims=256)) as m:
        m.add(CHAT, user_id="ana", session_date="2024-05-08")
        m.add("Bob likes chess.", user_id="bob")
    result = runner.invoke(app, ["export", "--out", str(out), "--user", "ana", "--vectors", "--store", str(source)])
    assert result.exit_code == 0, result.output
    assert "exported 5 memories" in result.output
    result = runner.invoke(app, ["import", str(out), "--store", str(target)])
    assert result.exit_code == 0, result.output
    assert "imported 5 memories" in result.output and "0 embedded again" in result.output
    with Memory(target, embedder=HashEmbedder(dims=256)) as m:
        assert m.search("Where does Maria live?", user_id="ana")[0].text.startswith("My sister Maria")
        assert not m.get_all("bob").records
    result = runner.invoke(app, ["import", str(out), "--store", str(target)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_an_export_is_one_state_of_the_store_while_others_write(source, tmp_path, config):
    memory, _ = source
    before = _snapshot(memory)
    last_user = sorted(before["users"])[-1]
    doomed = before["users"][last_user]["records"][0]["id"]
    landed = []

    def write_meanwhile(done, total):  # another process writes after the first memory is exported
        if not landed:
            with Memory(memory.path, config, embedder=HashEmbedder(dims=256)) as other:
                other.delete(doomed, user_id=last_user)
                landed.append(other.add("A note written during the export.", user_id=last_user)[0].id)

    export_memories(memory, tmp_path / "during.jsonl", on_progress=write_meanwhile)
    assert landed
    target = _target(tmp_path, config)
    import_memories(target, tmp_path / "during.jsonl")
    assert _snapshot(target)["users"] == before["users"]  # neither the delete nor the add is in it
    target.close()


def test_a_round_trip_through_postgresql_loses_nothing(source, tmp_path, config, postgres_url):
    from _postgres import postgres_schema

    memory, _ = source
    before = _snapshot(memory)
    export_memories(memory, tmp_path / "to-pg.jsonl", vectors=True)
    with postgres_schema(postgres_url) as url:
        with Memory(url, config, embedder=HashEmbedder(dims=256)) as on_postgres:
            import_memories(on_postgres, tmp_path / "to-pg.jsonl")
            export_memories(on_postgres, tmp_path / "from-pg.jsonl", vectors=True)
    back = _target(tmp_path, config, name="back.db")
    import_memories(back, tmp_path / "from-pg.jsonl")
    after = _snapshot(back)
    back.close()
    assert after == before
