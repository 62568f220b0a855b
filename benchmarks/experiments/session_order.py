"""Could a better ordering of the sessions memlane surfaces lift LoCoMo session recall@5?

Runs the LoCoMo dev benchmark's mixed search (turn and session memories, top 50, explained),
then, offline:
  1. the ceiling: session R@5 if the sessions surfaced in the first 10 (or 50) were put in the
     best possible order;
  2. a learned order: logistic regression over features of each surfaced session (ranks and
     scores of its hits, per-strategy ranks, best cosine, the session memory's rank, turns by
     the question's subject, position in time, length), trained on all dev conversations but
     one and tested on that one, in turn (leave one conversation out).

    .venv/bin/python benchmarks/experiments/session_order.py

Needs scikit-learn (installed with sentence-transformers). Prints the figures; writes nothing.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from memlane.bench.datasets import locomo_paths
from memlane.bench.locomo import HEADLINE_CATEGORIES, evidence_ids, load_locomo, session_of
from memlane.config import MemoryConfig
from memlane.memory import Memory

STRATEGIES = ("dense", "bm25", "dense_context", "bm25_context", "session", "temporal", "entity", "lookup")


def surfaced(depth: int = 50) -> list[dict]:
    """Each headline question's gold sessions and its explained mixed hits."""
    questions = []
    with tempfile.TemporaryDirectory() as tmp:
        for conversation in load_locomo(locomo_paths(None)):
            memory = Memory(Path(tmp) / "c.db", MemoryConfig())
            user = conversation.conversation_id
            memory.ingest(conversation.sessions, user_id=user)
            known = {t.turn_id for s in conversation.sessions for t in s.turns}
            now = max(s.date for s in conversation.sessions if s.date)
            by_date = sorted(conversation.sessions, key=lambda s: s.date or "")
            position = {s.session_id: i / len(by_date) for i, s in enumerate(by_date)}
            size = {s.session_id: len(s.turns) for s in conversation.sessions}
            for qa in conversation.questions:
                gold = [e for e in evidence_ids(qa.get("evidence", [])) if e in known]
                if not gold or int(qa.get("category", 0)) not in HEADLINE_CATEGORIES:
                    continue
                hits = memory.search(qa["question"], user_id=user, limit=depth, now=now, explain=True)
                questions.append({
                    "conversation": user, "category": int(qa["category"]),
                    "gold": {session_of(g) for g in gold}, "position": position, "size": size,
                    "hits": [(h.record.session_id, h.record.node_type, h.score,
                              {s.strategy: (s.rank, s.score) for s in h.explanation.strategies},
                              any(n.startswith("said by") for n in h.explanation.notes)) for h in hits],
                })
            memory.close()
            Path(tmp, "c.db").unlink()
    return questions


def order_of(question: dict) -> list[str]:
    return list(dict.fromkeys(sid for sid, *_ in question["hits"]))


def recall_at(order: list[str], gold: set[str], k: int = 5) -> float:
    return len(gold & set(order[:k])) / len(gold)


def features(question: dict) -> np.ndarray:
    hits = question["hits"]
    top = hits[0][2] or 1.0
    per_session = collections.defaultdict(list)
    for index, hit in enumerate(hits):
        per_session[hit[0]].append((index, hit))
    lowered_any = any(hit[4] for hit in hits)
    rows = []
    for rank, sid in enumerate(order_of(question)):
        mine = per_session[sid]
        scores = sorted((h[2] / top for _, h in mine), reverse=True) + [0.0, 0.0, 0.0]
        turns = [h for _, h in mine if h[1] == "turn"]
        session_memory = [i for i, h in mine if h[1] == "session"]
        row = [1 / (rank + 1), mine[0][0], 1 / (mine[0][0] + 1), scores[0], scores[1], scores[2],
               sum(scores[:3]), sum(scores), sum(i < 10 for i, _ in mine), sum(i < 20 for i, _ in mine),
               len(mine), 1 / (session_memory[0] + 1) if session_memory else 0.0,
               sum(not h[4] for h in turns), sum(h[4] for h in turns),
               question["position"].get(sid, 0.5), question["size"].get(sid, 0) / 30, float(lowered_any)]
        for strategy in STRATEGIES:
            ranks = [h[3][strategy][0] for _, h in mine if strategy in h[3]]
            row += [1 / min(ranks) if ranks else 0.0, sum(1 / r for r in ranks)]
        cosines = [h[3]["dense"][1] for h in turns if "dense" in h[3]]
        row.append(max(cosines) if cosines else 0.0)
        rows.append(row)
    return np.array(rows)


def main() -> None:
    questions = [q for q in surfaced() if q["hits"]]
    print(f"{len(questions)} questions")
    print("as memlane orders them: %.3f" % np.mean([recall_at(order_of(q), q["gold"]) for q in questions]))
    for depth in (10, 50):
        ceiling = [min(5, len(q["gold"] & set(order_of(q)[:depth]))) / len(q["gold"]) for q in questions]
        print(f"best order of the first {depth} sessions: {np.mean(ceiling):.3f}")
    table = [(q, order_of(q), features(q)) for q in questions]
    results: dict[int, list[float]] = collections.defaultdict(list)
    for held_out in sorted({q["conversation"] for q in questions}):
        train = [(q, o, x) for q, o, x in table if q["conversation"] != held_out]
        x_train = np.vstack([x for _, _, x in train])
        y_train = np.concatenate([[sid in q["gold"] for sid in o] for q, o, _ in train])
        mean, spread = x_train.mean(0), x_train.std(0) + 1e-9
        model = LogisticRegression(C=0.1, max_iter=2000).fit((x_train - mean) / spread, y_train)
        for q, o, x in table:
            if q["conversation"] == held_out:
                score = model.decision_function((x - mean) / spread)
                results[q["category"]].append(recall_at([o[i] for i in np.argsort(-score, kind="stable")], q["gold"]))
    overall = [v for values in results.values() for v in values]
    print("learned order, leave one conversation out: %.3f" % np.mean(overall),
          {c: round(float(np.mean(v)), 3) for c, v in sorted(results.items())})


if __name__ == "__main__":
    main()
