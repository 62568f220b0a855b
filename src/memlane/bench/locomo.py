"""LoCoMo retrieval benchmark: each conversation in a fresh store, every question asked at the
date of the conversation's last session, scored on evidence turns and evidence sessions."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable

from memlane.bench.metrics import gold_ranks, mean_of, ndcg_at_k, recall_at_k
from memlane.bench.machine import warm_vector_cache
from memlane.bench.report import run_fields
from memlane.config import MemoryConfig
from memlane.ingest.formats import Conversation, load_conversations

TURN_KS = (1, 5, 10, 20)
SESSION_KS = (1, 3, 5, 10)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
HEADLINE_CATEGORIES = (1, 2, 3, 4)
_EVIDENCE = re.compile(r"D(\d+):(\d+)")

Status = Callable[[str], None]


def evidence_ids(raw: list[str]) -> list[str]:
    """LoCoMo evidence as clean dia_ids; a few entries pack several ids into one string."""
    found: list[str] = []
    for item in raw:
        found += [f"D{s}:{t}" for s, t in _EVIDENCE.findall(str(item))]
    return list(dict.fromkeys(found))


def session_of(dia_id: str) -> str:
    return "session_" + dia_id[1:].split(":", 1)[0]


def load_locomo(paths: list[Path], conversations: list[str] | None = None) -> list[Conversation]:
    loaded = [c for p in paths for c in load_conversations(p)]
    if conversations:
        wanted = set(conversations)
        loaded = [c for c in loaded if c.conversation_id in wanted]
    return loaded


def run_locomo(
    conversations: list[Conversation],
    config: MemoryConfig,
    *,
    limit: int | None = None,
    depth: int = 50,
    status: Status = lambda _: None,
    on_progress: Callable[[int, int], None] | None = None,
    store: str | None = None,
) -> dict:
    """Run the benchmark; returns the report dict (see `summarize`). Each conversation is one
    user in a fresh store: a temporary SQLite file, or with `store` a postgresql:// URL, a new
    schema of that database (dropped after)."""
    from memlane.memory import Memory
    from memlane.store import backend_name, scratch_store

    per_question: list[dict] = []
    latencies: list[float] = []
    ingest_seconds = 0.0
    total_questions = sum(len(c.questions) for c in conversations)
    if limit:
        total_questions = min(total_questions, limit)
    done = 0
    warm_up = warm_vector_cache(config)
    for conversation in conversations:
        if limit and done >= limit:
            break
        with scratch_store(store, conversation.conversation_id) as location:
            status(f"conversation {conversation.conversation_id}: ingesting")
            memory = Memory(location, config)
            started = time.perf_counter()
            memory.ingest(conversation.sessions, user_id=conversation.conversation_id)
            ingest_seconds += time.perf_counter() - started
            known = {t.turn_id for s in conversation.sessions for t in s.turns}
            now = max(s.date for s in conversation.sessions if s.date)
            status(f"conversation {conversation.conversation_id}: {len(conversation.questions)} questions")
            for index, qa in enumerate(conversation.questions):
                if limit and done >= limit:
                    break
                gold = [e for e in evidence_ids(qa.get("evidence", [])) if e in known]
                started = time.perf_counter()
                turn_hits = memory.search(qa["question"], user_id=conversation.conversation_id, limit=depth,
                                          now=now, filters={"node_type": "turn"})
                latencies.append((time.perf_counter() - started) * 1000)
                # Sessions in the order memlane surfaces them: turn and session memories together.
                mixed_hits = memory.search(qa["question"], user_id=conversation.conversation_id, limit=depth, now=now)
                ranked_turns = [h.record.metadata.get("turn_id") for h in turn_hits]
                ranked_sessions = list(dict.fromkeys(h.record.session_id for h in mixed_hits))
                per_question.append({
                    "id": f"{conversation.conversation_id}/{index}",
                    "category": int(qa.get("category", 0)),
                    "question": qa["question"],
                    "evidence_ranks": gold_ranks(ranked_turns, gold),
                    "session_ranks": gold_ranks(ranked_sessions, sorted({session_of(g) for g in gold})),
                })
                done += 1
                if on_progress:
                    on_progress(done, total_questions)
            memory.close()
    report = summarize(per_question)
    report.update(run_fields("locomo", per_question, latencies, ingest_seconds, config,
                             conversations=[c.conversation_id for c in conversations], cache_warm_up=warm_up,
                             store=backend_name(store)))
    return report


def question_metrics(q: dict) -> dict[str, float]:
    turn = list(q["evidence_ranks"].values())
    session = list(q["session_ranks"].values())
    out = {f"turn_recall@{k}": recall_at_k(turn, k) for k in TURN_KS}
    out.update({f"session_recall@{k}": recall_at_k(session, k) for k in SESSION_KS})
    out["ndcg@10"] = ndcg_at_k(turn, 10)
    return out


def summarize(per_question: list[dict]) -> dict:
    """Headline metrics over categories 1–4, and every metric per category (5 apart)."""
    scored = [(q, question_metrics(q)) for q in per_question if q["evidence_ranks"]]
    headline = [m for q, m in scored if q["category"] in HEADLINE_CATEGORIES]
    per_category = {}
    for category in sorted({q["category"] for q, _ in scored}):
        rows = [m for q, m in scored if q["category"] == category]
        per_category[str(category)] = {
            "name": CATEGORIES.get(category, str(category)),
            "questions": len(rows),
            **{key: mean_of(rows, key) for key in rows[0]},
        }
    return {
        "questions": len(headline),
        "questions_without_evidence": sum(1 for q in per_question if not q["evidence_ranks"]),
        "turn_recall": {str(k): mean_of(headline, f"turn_recall@{k}") for k in TURN_KS},
        "session_recall": {str(k): mean_of(headline, f"session_recall@{k}") for k in SESSION_KS},
        "ndcg@10": mean_of(headline, "ndcg@10"),
        "per_category": per_category,
    }
