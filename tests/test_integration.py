"""End to end with the real all-MiniLM-L6-v2 on a slice of a real LoCoMo conversation."""

import pytest

from memlane import Memory, MemoryConfig
from memlane.ingest.formats import load_conversations

from _support import DATA

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def locomo_memory(tmp_path_factory):
    conversation = load_conversations(DATA / "locomo" / "26.json")[0]
    config = MemoryConfig()
    config.embedder.cache_path = str(tmp_path_factory.mktemp("cache") / "vectors.sqlite")
    memory = Memory(tmp_path_factory.mktemp("store") / "locomo.db", config)
    memory.ingest(conversation.sessions[:4], user_id="caroline-and-melanie")
    yield memory, conversation
    memory.close()


def _turn_ids(hits):
    return [h.record.metadata.get("turn_id") for h in hits]


def test_turn_level_question_finds_its_evidence(locomo_memory):
    memory, _ = locomo_memory
    hits = memory.search("When did Caroline go to the LGBTQ support group?", user_id="caroline-and-melanie",
                         filters={"node_type": "turn"}, now="2023-06-30", limit=5)
    assert "D1:3" in _turn_ids(hits)
    assert hits[_turn_ids(hits).index("D1:3")].record.event_dates[0].start == "2023-05-07"


def test_session_memories_answer_session_level_questions(locomo_memory):
    memory, _ = locomo_memory
    hits = memory.search("the charity race for mental health", user_id="caroline-and-melanie",
                         filters={"node_type": "session"}, limit=1)
    assert hits[0].record.session_id == "session_2"


def test_the_store_records_the_model(locomo_memory):
    memory, _ = locomo_memory
    index = memory.stats().index
    assert (index.model, index.dims) == ("sentence-transformers/all-MiniLM-L6-v2", 384)
