import json
import random
from collections import Counter

import pytest

from memlane.config import LLMConfig
from memlane.llm import LLMClient
from memlane.records import EventDate, MemoryRecord
from memlane.store.sqlite import SQLiteStore
from memlane.tune.synth import conversation_questions, keyphrase_query, llm_queries, rule_queries, to_third_person


@pytest.mark.parametrize("question, expected", [
    ("What did you paint last week?", "What did Mel paint last week?"),
    ("Are you still going to your pottery class?", "Is Mel still going to Mel's pottery class?"),
    ("Have you ever been to Paris yourself?", "Has Mel ever been to Paris?"),
    ("How do you feel about it?", "How does Mel feel about it?"),
    ("Was it yours?", "Was it Mel's?"),
    ("Any projects you're looking forward to?", "Any projects Mel is looking forward to?"),
])
def test_questions_to_the_answerer_become_questions_about_them(question, expected):
    assert to_third_person(question, "Mel") == expected


def _turn(i, speaker, text, session="s1"):
    return MemoryRecord(id=f"m{i}", user_id="u", text=text, embed_text=f"{speaker}: {text}", speaker=speaker,
                        session_id=session, turn_index=i)


def test_a_question_answered_by_the_next_speaker_becomes_a_pair():
    turns = [_turn(0, "Caroline", "Hey! What did you paint for the art show?"),
             _turn(1, "Mel", "A sunset over the lake."),
             _turn(2, "Mel", "How are you?"),
             _turn(3, "Caroline", "Good.", session="s2")]
    pairs = conversation_questions(turns)
    assert [(q, r.id) for q, r in pairs] == [("What did Mel paint for the art show?", "m1")]


def test_keyphrase_queries_use_the_rarest_words_and_skip_empty_turns():
    frequency = Counter({"pottery": 1, "class": 5, "weekend": 9})
    record = _turn(0, "Mel", "Pottery class this weekend")
    query = keyphrase_query(record, frequency, random.Random(0))
    assert query.startswith("What did Mel say about pottery")
    assert keyphrase_query(_turn(1, "Mel", "Haha yes!"), frequency, random.Random(0)) is None
    record.event_dates = [EventDate("last weekend", "2023-05-06", "2023-05-07", "weekend")]
    queries = {keyphrase_query(record, frequency, random.Random(s)) for s in range(10)}
    assert any(q.startswith("When did Mel mention") for q in queries)


def test_rule_queries_are_deterministic_and_bounded(tiny_store):
    path, _, _ = tiny_store
    store = SQLiteStore(path)
    first, again = rule_queries(store, "26", 20, seed=7), rule_queries(store, "26", 20, seed=7)
    assert len(first) == 20 and [e.query for e in first] == [e.query for e in again]
    assert {e.source for e in first} <= {"synthetic-rules:question", "synthetic-rules:keyphrase"}
    for example in first:
        assert store.get("26", example.positive_ids[0]).embed_text == example.positives[0]
    store.close()


def test_llm_queries_keep_good_answers_and_report_bad_ones(tiny_store, server):
    path, _, _ = tiny_store
    store = SQLiteStore(path)
    server.play(server.chat(json.dumps({"question": "Where did Caroline go on Saturday?"})),
                server.chat("not json at all"),
                server.chat("```json\n{\"question\": \"What did Melanie paint?\"}\n```"))
    client = LLMClient(LLMConfig(base_url=server.url, model="scripted", concurrency=1, max_retries=0))
    errors = []
    examples = llm_queries(store, "26", 3, client, on_error=errors.append)
    assert [e.query for e in examples] == ["Where did Caroline go on Saturday?", "What did Melanie paint?"]
    assert len(errors) == 1 and "not valid JSON" in errors[0]
    assert "Write one question" in server.requests[0]["body"]["messages"][0]["content"]
    store.close()


def test_synthesize_uses_the_llm_when_one_is_configured(tiny_store, server):
    from memlane.tune.pipeline import synthesize

    path, cfg, _ = tiny_store
    cfg.llm.base_url, cfg.llm.model, cfg.llm.concurrency = server.url, "scripted", 1
    cfg.fine_tune.synthetic_per_user = 2
    server.play(*[server.chat('{"question": "What did Caroline say?"}')] * 2)
    examples = synthesize(path, cfg)
    assert [e.source for e in examples] == ["synthetic-llm", "synthetic-llm"] and len(server.requests) == 2
    cfg.llm.base_url = None
    assert {e.source for e in synthesize(path, cfg)} <= {"synthetic-rules:question", "synthetic-rules:keyphrase"}
