"""Retriever modes and the tiered path, with deterministic embedders."""

import pytest

from memlane.embed import HashEmbedder
from memlane.retrieve.pipeline import Retriever

from _support import CHAT


class Recording(HashEmbedder):
    """A 'full model' that records what it was asked to embed."""

    def __init__(self):
        super().__init__(dims=256)
        self.seen = []

    def encode(self, texts, purpose="document"):
        self.seen.append((purpose, list(texts)))
        return super().encode(texts, purpose)


@pytest.fixture
def filled(memory):
    for i in range(3):
        memory.add(CHAT, user_id="ana", session_id=f"s{i}", session_date=f"2023-05-0{i + 1}")
    memory.add([{"role": "user", "content": "Totally unrelated words about sailing boats."}], user_id="ana")
    return memory


@pytest.mark.parametrize("mode, strategies", [
    ("bm25", {"bm25"}), ("dense", {"dense"}), ("hybrid", {"bm25", "dense"}),
])
def test_ablation_modes_use_only_their_strategies(filled, mode, strategies):
    config = filled.config.retrieval.model_copy(update={"mode": mode})
    retriever = Retriever(filled._store, filled.embedder, config)
    hits = retriever.search("ana", "beagle puppy Biscuit", limit=3, explain=True)
    used = {s.strategy for h in hits for s in h.explanation.strategies}
    assert used <= strategies and used


def test_full_mode_adds_context_and_session_strategies(filled):
    hit = filled.search("beagle puppy Biscuit", user_id="ana", limit=1, explain=True, filters={"node_type": "turn"})[0]
    used = {s.strategy for s in hit.explanation.strategies}
    assert {"dense", "bm25", "dense_context", "bm25_context", "session"} <= used


def test_the_rescorer_sees_only_first_stage_turn_candidates(filled):
    rescorer = Recording()
    config = filled.config.retrieval.model_copy(update={"rescore_candidates": 3})
    retriever = Retriever(filled._store, filled.embedder, config, rescorer=rescorer)
    hits = retriever.search("ana", "beagle puppy Biscuit", limit=2, explain=True, filters={"node_type": "turn"})
    documents = [texts for purpose, texts in rescorer.seen if purpose == "document"]
    assert len(documents) == 1 and 0 < len(documents[0]) <= 6  # at most 3 dense + 3 BM25
    assert "Biscuit" in hits[0].text
    assert "dense_static" in {s.strategy for s in hits[0].explanation.strategies}


def _session(memory, turns, date):
    """One session of user `u`, from (speaker, text) pairs."""
    memory.add([{"role": "user", "name": name, "content": text} for name, text in turns],
               user_id="u", session_id="s1", session_date=date)


def _two_speakers(memory):
    _session(memory, [("Ana", "I went hiking in the Alps with my sister."),
                      ("Bo", "I went hiking in the Alps with my brother."),
                      ("Bo", "Ana, your photos of the lake are lovely.")], "2023-05-01")


def test_a_question_about_one_speaker_prefers_what_that_speaker_said(memory):
    _two_speakers(memory)
    hits = memory.search("Who did Bo go hiking in the Alps with?", user_id="u", limit=3, explain=True,
                         filters={"node_type": "turn"})
    assert hits[0].record.speaker == "Bo"
    others = [h for h in hits if h.record.speaker == "Ana"]
    assert others and any("not by bo" in note for note in others[0].explanation.notes)
    config = memory.config.retrieval.model_copy(update={"speaker_prior": 1.0})
    plain = Retriever(memory._store, memory.embedder, config).search(
        "u", "Who did Bo go hiking in the Alps with?", limit=3, filters={"node_type": "turn"})
    prior = {h.record.id: h.score for h in hits}
    ana = others[0].record.id
    assert prior[ana] < next(h.score for h in plain if h.record.id == ana)


def test_questions_naming_two_speakers_or_none_have_no_subject():
    from memlane.retrieve.pipeline import _subject

    speakers = {"ana", "bo"}
    assert _subject(["Bo"], speakers) == "bo"
    assert _subject(["Ana", "Bo"], speakers) is None
    assert _subject(["Lisbon"], speakers) is None


def test_speakers_are_not_entity_anchors_but_other_names_are(memory):
    _two_speakers(memory)
    hits = memory.search("What did Bo say about hiking?", user_id="u", limit=3, explain=True)
    assert all(s.strategy != "entity" for h in hits for s in h.explanation.strategies)
    hits = memory.search("What about the Alps?", user_id="u", limit=3, explain=True)
    assert any(s.strategy == "entity" for h in hits for s in h.explanation.strategies)


def test_the_speaker_prior_never_lowers_an_assistant(memory):
    memory.add([
        {"role": "user", "name": "Ana", "content": "Which tent should I take to the Alps?"},
        {"role": "assistant", "content": "For the Alps in May take a four-season tent."},
    ], user_id="u", session_id="s1", session_date="2023-05-01")
    hits = memory.search("What tent was Ana told to take to the Alps?", user_id="u", limit=2, explain=True,
                         filters={"node_type": "turn"})
    assistant = next(h for h in hits if h.record.speaker == "assistant")
    assert not any("not by" in note for note in assistant.explanation.notes)


def test_a_when_question_prefers_memories_that_say_when(memory):
    _session(memory, [("Ana", "I adopted a beagle puppy and it was wonderful."),
                      ("Bo", "Lovely news about the park."),
                      ("Ana", "We adopted the beagle puppy last Tuesday.")], "2023-05-10")
    question = "When did Ana adopt the beagle puppy?"
    hits = memory.search(question, user_id="u", limit=3, explain=True, filters={"node_type": "turn"})
    boosted = {h.record.text: h for h in hits}["We adopted the beagle puppy last Tuesday."]
    assert any("says when (last Tuesday)" in note for note in boosted.explanation.notes)
    config = memory.config.retrieval.model_copy(update={"when_boost": 1.0})
    plain = Retriever(memory._store, memory.embedder, config).search("u", question, limit=3,
                                                                     filters={"node_type": "turn"})
    plain_score = next(h.score for h in plain if h.record.id == boosted.record.id)
    assert boosted.score == pytest.approx(plain_score * memory.config.retrieval.when_boost)
    undated = next(h for h in hits if h.record.text.startswith("I adopted"))
    assert undated.score == pytest.approx(next(h.score for h in plain if h.record.id == undated.record.id))


def test_an_explanation_carries_what_was_read_from_the_question_as_data(memory):
    memory.add([{"role": "user", "name": "Ana", "content": "I visited Lisbon with Zoe."}], user_id="u",
               session_date="2023-05-10")
    hit = memory.search("What did Ana do with Zoe last week?", user_id="u", now="2023-05-15", explain=True)[0]
    analysis = hit.explanation.analysis
    assert analysis["time_range"] == {"expression": "last week", "start": "2023-05-08", "end": "2023-05-14"}
    assert "Zoe" in analysis["entities"] and analysis["needles"] == []
    assert hit.explanation.to_dict()["analysis"] == analysis
