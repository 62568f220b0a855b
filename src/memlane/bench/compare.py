"""Paired comparison of two benchmark reports over the same questions."""

from __future__ import annotations

from memlane.bench import locomo, longmemeval
from memlane.bench.metrics import paired_bootstrap
from memlane.errors import InputError

_RUNNERS = {"locomo": locomo, "longmemeval": longmemeval}
HEADLINE = {
    "locomo": ("turn_recall@1", "turn_recall@5", "turn_recall@10", "turn_recall@20",
               "session_recall@5", "ndcg@10"),
    "longmemeval": ("recall_any@5", "recall_all@5", "session_recall@5", "ndcg@10", "turn_recall@10"),
}


def per_question_metrics(report: dict) -> dict[str, dict[str, float]]:
    """question id -> its metrics, for the questions that count toward the headline."""
    dataset = report["dataset"]
    module = _RUNNERS[dataset]
    out = {}
    for q in report["per_question"]:
        if dataset == "locomo" and (q["category"] not in locomo.HEADLINE_CATEGORIES or not q["evidence_ranks"]):
            continue
        if dataset == "longmemeval" and (q["abstention"] or not q["session_ranks"]):
            continue
        out[q["id"]] = module.question_metrics(q)
    return out


def compare_reports(a: dict, b: dict, resamples: int = 1000, seed: int = 42) -> list[dict]:
    if a.get("dataset") != b.get("dataset") or a.get("dataset") not in _RUNNERS:
        raise InputError(f"cannot compare a {a.get('dataset')!r} report with a {b.get('dataset')!r} report",
                         fix="compare two reports of the same benchmark")
    ma, mb = per_question_metrics(a), per_question_metrics(b)
    shared = sorted(set(ma) & set(mb))
    if not shared:
        raise InputError("the two reports share no questions", fix="run both on the same data, split and limit")
    rows = []
    for metric in HEADLINE[a["dataset"]]:
        pairs = [(ma[q][metric], mb[q][metric]) for q in shared if ma[q][metric] == ma[q][metric] and mb[q][metric] == mb[q][metric]]
        result = paired_bootstrap([x for x, _ in pairs], [y for _, y in pairs], resamples=resamples, seed=seed)
        rows.append({"metric": metric, "questions": len(pairs), **result})
    return rows
