"""LongMemEval retrieval benchmark: each question's haystack in a fresh store, asked at the
question's date, scored on the answer sessions and on the turns flagged has_answer."""

from __future__ import annotations

import random
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

from memlane.bench.metrics import (
    gold_ranks,
    mean_of,
    ndcg_at_k,
    recall_all_at_k,
    recall_any_at_k,
    recall_at_k,
)
from memlane.bench.machine import warm_vector_cache
from memlane.bench.report import run_fields
from memlane.config import MemoryConfig
from memlane.errors import InputError
from memlane.ingest.dates import parse_session_date
from memlane.ingest.formats import Conversation, load_conversations

KS = (1, 3, 5, 10)
SPLITS = ("dev", "holdout", "all")

Status = Callable[[str], None]


def stratified_split(items: list[tuple[str, str]], holdout_share: float = 0.2, seed: int = 42) -> dict[str, str]:
    """Assign each (id, stratum) to 'dev' or 'holdout': per stratum, ids sorted then shuffled with
    a fixed seed, and the first round(share * n) go to holdout. Deterministic for the same ids."""
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for item_id, stratum in items:
        by_stratum[stratum].append(item_id)
    assignment = {}
    rng = random.Random(seed)
    for stratum in sorted(by_stratum):
        ids = sorted(by_stratum[stratum])
        rng.shuffle(ids)
        cut = round(holdout_share * len(ids))
        assignment.update({i: "holdout" for i in ids[:cut]})
        assignment.update({i: "dev" for i in ids[cut:]})
    return assignment


def load_longmemeval(path: Path, split: str = "all", limit: int | None = None) -> list[Conversation]:
    """Questions of `split` (dev / holdout / all, by `stratified_split` on question_type)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    conversations = split_conversations(load_conversations(path), split)
    return conversations[:limit] if limit else conversations


def split_conversations(conversations: list[Conversation], split: str) -> list[Conversation]:
    """The LongMemEval questions of one split (dev / holdout / all)."""
    if split == "all":
        return conversations
    if not all(c.questions and "question_type" in c.questions[0] for c in conversations):
        raise InputError(f"split '{split}' applies to LongMemEval questions only, and these are not",
                         field="split", fix="leave out --split (or pass --split all) for other files")
    assignment = stratified_split([(c.conversation_id, c.questions[0]["question_type"]) for c in conversations])
    return [c for c in conversations if assignment[c.conversation_id] == split]


def is_abstention(question_id: str) -> bool:
    return question_id.endswith("_abs")


def run_longmemeval(
    conversations: list[Conversation],
    config: MemoryConfig,
    *,
    depth: int = 50,
    status: Status = lambda _: None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    from memlane.memory import Memory

    per_question: list[dict] = []
    latencies: list[float] = []
    ingest_seconds = 0.0
    warm_up = warm_vector_cache(config)
    with tempfile.TemporaryDirectory() as tmp:
        for done, conversation in enumerate(conversations, start=1):
            question = conversation.questions[0]
            qid = question["question_id"]
            memory = Memory(Path(tmp) / "q.db", config)
            started = time.perf_counter()
            memory.ingest(conversation.sessions, user_id=qid)
            ingest_seconds += time.perf_counter() - started
            now = parse_session_date(question["question_date"])
            started = time.perf_counter()
            hits = memory.search(question["question"], user_id=qid, limit=depth, now=now)
            latencies.append((time.perf_counter() - started) * 1000)
            turn_hits = memory.search(question["question"], user_id=qid, limit=depth, now=now,
                                      filters={"node_type": "turn"})
            memory.reset()
            memory.close()
            ranked_sessions = list(dict.fromkeys(h.record.session_id for h in hits))
            gold_turns = [t.turn_id for s in conversation.sessions for t in s.turns if t.metadata.get("has_answer")]
            per_question.append({
                "id": qid,
                "question_type": question["question_type"],
                "abstention": is_abstention(qid),
                "session_ranks": gold_ranks(ranked_sessions, question.get("answer_session_ids", [])),
                "turn_ranks": gold_ranks([h.record.metadata.get("turn_id") for h in turn_hits], gold_turns),
            })
            if on_progress:
                on_progress(done, len(conversations))
    report = summarize(per_question)
    report.update(run_fields("longmemeval", per_question, latencies, ingest_seconds, config, cache_warm_up=warm_up))
    return report


def question_metrics(q: dict) -> dict[str, float]:
    sessions = list(q["session_ranks"].values())
    turns = list(q["turn_ranks"].values())
    out: dict[str, float] = {}
    for k in KS:
        out[f"recall_any@{k}"] = recall_any_at_k(sessions, k)
        out[f"recall_all@{k}"] = recall_all_at_k(sessions, k)
        out[f"session_recall@{k}"] = recall_at_k(sessions, k)
    out["ndcg@10"] = ndcg_at_k(sessions, 10)
    for k in KS:
        out[f"turn_recall@{k}"] = recall_at_k(turns, k) if turns else float("nan")
    return out


def summarize(per_question: list[dict]) -> dict:
    """Means over answerable questions; abstention questions are counted and left out."""
    scored = [(q, question_metrics(q)) for q in per_question if not q["abstention"] and q["session_ranks"]]
    rows = [m for _, m in scored]
    per_type = {}
    for qtype in sorted({q["question_type"] for q, _ in scored}):
        typed = [m for q, m in scored if q["question_type"] == qtype]
        per_type[qtype] = {"name": qtype, "questions": len(typed), **{k: mean_of(typed, k) for k in typed[0]}}
    return {
        "questions": len(rows),
        "abstention_questions": sum(1 for q in per_question if q["abstention"]),
        "session_recall_any": {str(k): mean_of(rows, f"recall_any@{k}") for k in KS},
        "session_recall_all": {str(k): mean_of(rows, f"recall_all@{k}") for k in KS},
        "session_recall": {str(k): mean_of(rows, f"session_recall@{k}") for k in KS},
        "ndcg@10": mean_of(rows, "ndcg@10"),
        "turn_recall": {str(k): mean_of(rows, f"turn_recall@{k}") for k in KS},
        "per_category": per_type,
    }
