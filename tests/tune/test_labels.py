from _support import FIXTURES

from memlane.ingest.formats import load_conversations
from memlane.tune.labels import locomo_labels, longmemeval_labels


def test_locomo_labels_keep_categories_1_to_4_with_their_evidence(locomo_slice):
    rows = locomo_labels([locomo_slice])
    known = {t.turn_id for s in locomo_slice.sessions for t in s.turns}
    assert rows and all(r["user_id"] == "26" for r in rows)
    assert all(set(r["positive_turn_ids"]) <= known for r in rows)
    assert {r["group"] for r in rows} <= {"multi-hop", "temporal", "open-domain", "single-hop"}
    asked = {q["question"] for q in locomo_slice.questions if q.get("category") == 5}
    assert not asked & {r["query"] for r in rows}


def test_longmemeval_labels_use_the_has_answer_turns():
    conversations = load_conversations(FIXTURES / "longmemeval_mini.json")
    rows = longmemeval_labels(conversations)
    answerable = [c for c in conversations if not c.conversation_id.endswith("_abs")]
    assert len(rows) <= len(answerable) and rows
    for row in rows:
        conversation = next(c for c in conversations if c.conversation_id == row["user_id"])
        flagged = [t.turn_id for s in conversation.sessions for t in s.turns if t.metadata.get("has_answer")]
        assert row["positive_turn_ids"] == flagged or not flagged
        assert row["now"][:4].isdigit()
    assert not any(r["user_id"].endswith("_abs") for r in rows)
