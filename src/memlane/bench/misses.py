"""Where LoCoMo misses come from: each missed evidence turn sorted into a cause, with examples."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from memlane.bench.locomo import CATEGORIES, HEADLINE_CATEGORIES
from memlane.ingest.formats import Conversation
from memlane.retrieve.query import content_terms

CAUSES = {
    "near": "ranked 11-50: found, but below the top 10",
    "no_overlap": "not in the top 50, shares no content word with the question (a paraphrase)",
    "weak_overlap": "not in the top 50, shares some words, but they are common in the conversation",
}


def classify(rank: int | None, question: str, evidence_text: str) -> str:
    if rank is not None and rank <= 50:
        return "near"
    question_terms = set(content_terms(question))
    shared = question_terms & set(content_terms(evidence_text))
    return "weak_overlap" if shared else "no_overlap"


def miss_analysis(report: dict, conversations: list[Conversation], k: int = 10, examples: int = 4,
                  seed: int = 7) -> dict:
    """Counts of missed evidence turns (not in the top k) per category and cause, with examples."""
    texts = {}
    for c in conversations:
        for s in c.sessions:
            for t in s.turns:
                texts[(c.conversation_id, t.turn_id)] = (t.speaker, t.text + (f" [photo: {t.caption}]" if t.caption else ""))
    answers = {f"{c.conversation_id}/{i}": q.get("answer") for c in conversations for i, q in enumerate(c.questions)}
    counts: dict[int, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    samples: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for q in report["per_question"]:
        if q["category"] not in HEADLINE_CATEGORIES:
            continue
        conversation_id = q["id"].split("/")[0]
        for evidence, rank in q["evidence_ranks"].items():
            totals[q["category"]] += 1
            if rank is not None and rank <= k:
                continue
            speaker, text = texts[(conversation_id, evidence)]
            cause = classify(rank, q["question"], text)
            counts[q["category"]][cause] += 1
            samples[(q["category"], cause)].append({
                "question": q["question"], "answer": answers.get(q["id"]), "evidence": evidence,
                "rank": rank, "speaker": speaker, "text": text,
            })
    rng = random.Random(seed)
    picked = {f"{c}/{cause}": rng.sample(rows, min(examples, len(rows))) for (c, cause), rows in sorted(samples.items())}
    return {"k": k, "totals": dict(totals), "misses": {str(c): dict(v) for c, v in sorted(counts.items())},
            "examples": picked}


def misses_markdown(analysis: dict, command: str) -> str:
    k = analysis["k"]
    lines = [f"# LoCoMo: where the misses come from (evidence turns not in the top {k})", "",
             f"Command: `{command}`", "", "Causes:", ""]
    lines += [f"- **{name}**: {text}" for name, text in CAUSES.items()]
    lines += ["", "| category | evidence turns | missed | " + " | ".join(CAUSES) + " |",
              "|---|---|---|" + "---|" * len(CAUSES)]
    for category, total in sorted(analysis["totals"].items()):
        row = analysis["misses"].get(str(category), {})
        missed = sum(row.values())
        lines.append(f"| {category} {CATEGORIES[int(category)]} | {total} | {missed} ({missed / total:.0%}) | "
                     + " | ".join(str(row.get(c, 0)) for c in CAUSES) + " |")
    lines += ["", "## Examples", ""]
    for key, rows in analysis["examples"].items():
        category, cause = key.split("/")
        lines += [f"### {CATEGORIES[int(category)]}, {cause}", ""]
        for r in rows:
            rank = r["rank"] if r["rank"] is not None else "> 50"
            lines.append(f"- Q: {r['question']} (answer: {r['answer']})  \n  evidence {r['evidence']}, rank {rank}, "
                         f"{r['speaker']}: \"{r['text'][:220]}\"")
        lines.append("")
    return "\n".join(lines)
