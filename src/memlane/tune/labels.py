"""Labeled queries from the benchmarks: question -> the memories that hold its answer.

LoCoMo: each question of categories 1-4 -> its evidence turns (user = conversation id).
LongMemEval: each non-abstention question -> its `has_answer` turns, or every turn of its answer
sessions when none is flagged (user = question id). Rows name positives by turn id; resolve them
against a store holding the same conversations with `examples.resolve_labels`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from memlane.bench.locomo import CATEGORIES, HEADLINE_CATEGORIES, evidence_ids
from memlane.bench.longmemeval import is_abstention
from memlane.ingest.dates import parse_session_date
from memlane.ingest.formats import Conversation
from memlane.tune.examples import write_jsonl


def _iso(value: object) -> str | None:
    return parse_session_date(value).isoformat() if value else None


def locomo_labels(conversations: Iterable[Conversation]) -> list[dict]:
    rows = []
    for conversation in conversations:
        known = {t.turn_id for s in conversation.sessions for t in s.turns}
        now = max(s.date for s in conversation.sessions if s.date)
        for qa in conversation.questions:
            category = int(qa.get("category", 0))
            gold = [e for e in evidence_ids(qa.get("evidence", [])) if e in known]
            if category not in HEADLINE_CATEGORIES or not gold:
                continue
            rows.append({"query": qa["question"], "user_id": conversation.conversation_id,
                         "positive_turn_ids": gold, "now": now, "group": CATEGORIES[category]})
    return rows


def longmemeval_labels(conversations: Iterable[Conversation]) -> list[dict]:
    rows = []
    for conversation in conversations:
        question = conversation.questions[0]
        if is_abstention(conversation.conversation_id):
            continue
        answer_sessions = set(map(str, question.get("answer_session_ids", [])))
        flagged = [t.turn_id for s in conversation.sessions for t in s.turns if t.metadata.get("has_answer")]
        gold = flagged or [t.turn_id for s in conversation.sessions if s.session_id in answer_sessions for t in s.turns]
        if not gold:
            continue
        rows.append({"query": question["question"], "user_id": conversation.conversation_id,
                     "positive_turn_ids": gold, "now": _iso(question.get("question_date")),
                     "group": question.get("question_type")})
    return rows


def write_label_rows(path: str | Path, rows: list[dict]) -> int:
    return write_jsonl(path, rows)
