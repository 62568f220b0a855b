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
