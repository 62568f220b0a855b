"""Changing the embedding model: reindex builds a new index and swaps it in atomically."""

import numpy as np
import pytest

from memlane import Memory, ModelMismatchError, reindex
from memlane.embed import HashEmbedder

from _support import CHAT


class Crashing(HashEmbedder):
    """Fails after `ok_batches` encode calls, like a process killed mid-reindex."""

    def __init__(self, dims, ok_batches, on_encode=None):
        super().__init__(dims=dims)
        self.calls = 0
        self.ok_batches = ok_batches
        self.on_encode = on_encode

    def encode(self, texts, purpose="document"):
        self.calls += 1
        if self.on_encode:
            self.on_encode()
        if self.calls > self.ok_batches:
            raise KeyboardInterrupt("killed")
        return super().encode(texts, purpose)


@pytest.fixture
def store(tmp_path, config):
    path = tmp_path / "m.db"
    with Memory(path, config, embedder=HashEmbedder(dims=256)) as m:
        for i in range(6):
            m.add(CHAT, user_id="ana", session_id=f"s{i}")
    return path


def test_reindex_swaps_to_the_new_model(store, config):
    report = reindex(store, embedder=HashEmbedder(dims=128), batch_size=5)
    assert (report.model, report.dims, report.resumed) == ("hash-128", 128, False)
    with Memory(store, config, embedder=HashEmbedder(dims=128)) as m:
        assert "Biscuit" in m.search("beagle name", user_id="ana", filters={"node_type": "turn"})[0].text
    with pytest.raises(ModelMismatchError):
        Memory(store, config, embedder=HashEmbedder(dims=256))


def test_the_old_index_answers_searches_until_the_swap(store, config):
    reader = Memory(store, config, embedder=HashEmbedder(dims=256))
    seen = []
    reindex(store, embedder=Crashing(128, ok_batches=99,
            on_encode=lambda: seen.append(reader.search("beagle", user_id="ana", limit=1)[0].text)), batch_size=5)
    assert len(seen) > 2 and all("beagle" in text for text in seen)
    reader.close()


def test_a_crash_mid_reindex_leaves_the_old_index_usable_and_resumes(store, config):
    with pytest.raises(KeyboardInterrupt):
        reindex(store, embedder=Crashing(128, ok_batches=2), batch_size=5)
    with Memory(store, config, embedder=HashEmbedder(dims=256)) as m:
        assert m.stats().index.model == "hash-256"
        assert "beagle" in m.search("beagle", user_id="ana", limit=1)[0].text
    counting = Crashing(128, ok_batches=10_000)
    report = reindex(store, embedder=counting, batch_size=5)
    assert report.resumed
    turns = 6 * len(CHAT)
    assert counting.calls == (turns - 2 * 5 + 4) // 5  # only what the crashed run had not embedded
    with Memory(store, config, embedder=HashEmbedder(dims=128)) as m:
        assert m.stats().index.model == "hash-128"


def test_session_vectors_are_rebuilt_from_the_new_turn_vectors(store, config):
    reindex(store, embedder=HashEmbedder(dims=128), batch_size=7)
    with Memory(store, config, embedder=HashEmbedder(dims=128)) as m:
        hit = m.search("beagle Lisbon invoice", user_id="ana", filters={"node_type": "session"}, limit=1)[0]
        assert hit.record.node_type == "session"


def test_reindex_rebuilds_the_passages_of_many_sentence_turns(tmp_path, config):
    path = tmp_path / "p.db"
    said = "We adopted a beagle puppy last week. His name is Biscuit and he loves the park."
    with Memory(path, config, embedder=HashEmbedder(dims=256)) as m:
        m.add([{"role": "user", "content": said}, {"role": "user", "content": "Short one."}], user_id="ana")
    new = HashEmbedder(dims=128)
    reindex(path, embedder=new, batch_size=1)
    with Memory(path, config, embedder=new) as m:
        view = m._store._view("ana")
        assert np.allclose(view.passages, new.encode(["user: We adopted a beagle puppy last week.",
                                                      "user: His name is Biscuit and he loves the park."]))
        assert [view.ids[i] for i in view.passage_owners] == [m.search("beagle", user_id="ana", filters={"node_type": "turn"})[0].id]


class Interfering(HashEmbedder):
    """Runs `meanwhile` once, on its first encode call: a write of another process landing while
    the reindex embeds a batch."""

    def __init__(self, dims, meanwhile):
        super().__init__(dims=dims)
        self.meanwhile = meanwhile

    def encode(self, texts, purpose="document"):
        if self.meanwhile:
            action, self.meanwhile = self.meanwhile, None
            action()
        return super().encode(texts, purpose)


def test_a_memory_written_during_a_reindex_never_gets_a_deleted_memorys_vector(tmp_path, config):
    path = tmp_path / "r.db"
    with Memory(path, config, embedder=HashEmbedder(dims=256)) as m:
        m.add("The weather was dull all week.", user_id="ana")
        newest = m.add("I keep the spare key under the blue flowerpot.", user_id="ana")[0]

    def replace_newest():  # SQLite gives the freed rowid to the next memory
        with Memory(path, config, embedder=HashEmbedder(dims=256)) as other:
            other.delete(newest.id, user_id="ana")
            other.add("Quarterly taxes are due in April.", user_id="ana")

    new_model = HashEmbedder(dims=128)
    reindex(path, embedder=Interfering(128, replace_newest), batch_size=64)
    with Memory(path, config, embedder=new_model) as m:
        taxes = next(r for r in m.get_all("ana").records if "taxes" in r.text)
        stored = m._store.vectors("ana", [taxes.id])[0]
        own = new_model.encode([taxes.embed_text])[0]
        flowerpot = new_model.encode([newest.embed_text])[0]
        assert float(stored @ own) == pytest.approx(1.0, abs=1e-5)
        assert float(stored @ flowerpot) < 0.99
        assert m.search("When are taxes due?", user_id="ana")[0].record.id == taxes.id


def test_a_memory_updated_during_a_reindex_is_embedded_again(tmp_path, config):
    path = tmp_path / "u.db"
    with Memory(path, config, embedder=HashEmbedder(dims=256)) as m:
        first = m.add("I drive a red bicycle to work.", user_id="ana")[0]
        for i in range(20):
            m.add(f"filler note number {i}", user_id="ana")

    def update_first():  # lands after the first batch (holding `first`) was embedded
        with Memory(path, config, embedder=HashEmbedder(dims=256)) as other:
            other.update(first.id, "I take the green tram to work.", user_id="ana")

    new_model = HashEmbedder(dims=128)
    calls = {"n": 0}

    class Later(HashEmbedder):
        def encode(self, texts, purpose="document"):
            calls["n"] += 1
            if calls["n"] == 2:
                update_first()
            return super().encode(texts, purpose)

    reindex(path, embedder=Later(dims=128), batch_size=4)
    with Memory(path, config, embedder=new_model) as m:
        record = m.get(first.id, user_id="ana")
        stored = m._store.vectors("ana", [first.id])[0]
        assert float(stored @ new_model.encode([record.embed_text])[0]) == pytest.approx(1.0, abs=1e-5)
