"""LoCoMo answer-level evaluation: retrieve context, let the LLM answer, score the answer.

With an LLM (`llm.base_url` set): each question is answered from the top `context_k` memories
with a short answer prompt, and scored by token F1, BLEU-1 and a judge J. The judge takes a fast
pass first: the normalized gold answer inside the answer counts as correct, and an "I don't
know" to an answerable question (categories 1-4) as wrong, without an LLM call; otherwise the
LLM judges. For category 5 (adversarial: the answer is not in the conversation), J is whether
the model declined to answer. Category 5 is reported apart.

Without an LLM something is still measured: answer recall@k, the share of the gold answer's
content tokens found in the top k memories' text.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

from memlane.bench.locomo import CATEGORIES, HEADLINE_CATEGORIES
from memlane.bench.metrics import (
    answer_token_recall,
    bleu1,
    contains_answer,
    mean_of,
    says_no_answer,
    token_f1,
)
from memlane.bench.report import run_fields
from memlane.config import MemoryConfig
from memlane.errors import LLMError
from memlane.ingest.formats import Conversation

KS = (1, 5, 10, 20)
ANSWER_PROMPT = (
    "You answer questions about a long conversation using memories retrieved from it.\n\n"
    "Memories:\n{context}\n\nQuestion: {question}\n"
    "Answer in a few words (a short phrase, name or date). If the memories do not contain the answer, "
    "say \"I don't know\"."
)
JUDGE_PROMPT = (
    "Question: {question}\nGold answer: {gold}\nGenerated answer: {answer}\n\n"
    "Does the generated answer give the same information as the gold answer (dates may be written "
    'differently)? Answer with JSON: {{"correct": true}} or {{"correct": false}}.'
)

Status = Callable[[str], None]


def gold_answer(qa: dict) -> str:
    return str(qa.get("answer", qa.get("adversarial_answer", "")))


def judge(question: str, gold: str, answer: str, category: int, client) -> tuple[bool, str]:
    """(correct?, how it was decided)."""
    if category == 5:
        return says_no_answer(answer), "fast: declined" if says_no_answer(answer) else "fast: answered an unanswerable question"
    if contains_answer(answer, gold):
        return True, "fast: gold answer contained"
    if says_no_answer(answer):
        return False, "fast: said it does not know"
    verdict = client.complete_json([{"role": "user", "content": JUDGE_PROMPT.format(question=question, gold=gold, answer=answer)}])
    return bool(isinstance(verdict, dict) and verdict.get("correct") is True), "llm"


def run_locomo_qa(conversations: list[Conversation], config: MemoryConfig, *, context_k: int = 10,
                  limit: int | None = None, status: Status = lambda _: None,
                  on_progress: Callable[[int, int], None] | None = None) -> dict:
    from memlane.llm import LLMClient
    from memlane.memory import Memory

    client = LLMClient(config.llm) if config.llm.configured else None
    depth = max(max(KS), context_k)
    per_question: list[dict] = []
    latencies: list[float] = []
    ingest_seconds = 0.0
    failures = 0
    total = sum(len(c.questions) for c in conversations)
    total = min(total, limit) if limit else total
    with tempfile.TemporaryDirectory() as tmp:
        for conversation in conversations:
            if limit and len(per_question) >= limit:
                break
            status(f"conversation {conversation.conversation_id}: ingesting")
            memory = Memory(Path(tmp) / f"{conversation.conversation_id}.db", config)
            started = time.perf_counter()
            report = memory.ingest(conversation.sessions, user_id=conversation.conversation_id)
            ingest_seconds += time.perf_counter() - started
            failures += len(report.failures)
            now = max(s.date for s in conversation.sessions if s.date)
            for index, qa in enumerate(conversation.questions):
                if limit and len(per_question) >= limit:
                    break
                category = int(qa.get("category", 0))
                gold = gold_answer(qa)
                started = time.perf_counter()
                hits = memory.search(qa["question"], user_id=conversation.conversation_id, limit=depth, now=now)
                latencies.append((time.perf_counter() - started) * 1000)
                texts = [h.record.embed_text for h in hits]
                row = {"id": f"{conversation.conversation_id}/{index}", "category": category,
                       "question": qa["question"], "gold": gold}
                row.update({f"answer_recall@{k}": answer_token_recall(gold, "\n".join(texts[:k])) for k in KS})
                if client is not None:
                    row.update(_answer_and_score(client, qa["question"], gold, category, texts[:context_k]))
                per_question.append(row)
                if on_progress:
                    on_progress(len(per_question), total)
            memory.close()
    report = summarize(per_question, llm=client is not None)
    report.update(run_fields(
        "locomo-qa", per_question, latencies, ingest_seconds, config,
        mode="llm" if client else "offline (no LLM: answer recall only)",
        conversations=[c.conversation_id for c in conversations], context_k=context_k, extraction_failures=failures,
    ))
    return report


def _answer_and_score(client, question: str, gold: str, category: int, texts: list[str]) -> dict:
    context = "\n".join(f"- {t}" for t in texts)
    try:
        answer = client.complete([{"role": "user", "content": ANSWER_PROMPT.format(context=context, question=question)}]).strip()
    except LLMError as exc:
        return {"answer": None, "error": str(exc), "f1": 0.0, "bleu1": 0.0, "judge": 0.0, "judged_by": "error"}
    try:
        correct, how = judge(question, gold, answer, category, client)
    except LLMError as exc:
        correct, how = False, f"error: {exc}"
    return {"answer": answer, "f1": token_f1(answer, gold), "bleu1": bleu1(answer, gold),
            "judge": float(correct), "judged_by": how}


def summarize(per_question: list[dict], *, llm: bool) -> dict:
    keys = [f"answer_recall@{k}" for k in KS] + (["f1", "bleu1", "judge"] if llm else [])
    headline = [q for q in per_question if q["category"] in HEADLINE_CATEGORIES]
    per_category = {}
    for category in sorted({q["category"] for q in per_question}):
        rows = [q for q in per_question if q["category"] == category]
        per_category[str(category)] = {"name": CATEGORIES.get(category, str(category)), "questions": len(rows),
                                       **{key: mean_of(rows, key) for key in keys}}
    return {
        "questions": len(headline),
        "answer_recall": {str(k): mean_of(headline, f"answer_recall@{k}") for k in KS},
        **({"f1": mean_of(headline, "f1"), "bleu1": mean_of(headline, "bleu1"), "judge": mean_of(headline, "judge")}
           if llm else {}),
        "per_category": per_category,
    }
