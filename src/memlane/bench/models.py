"""Side-by-side comparison of embedding models per memory category, with and without a query
instruction prefix. Same benchmark, same retriever, only the embedder changes."""

from __future__ import annotations

from typing import Callable

from memlane.config import MemoryConfig

DEFAULT_QUERY_PREFIX = "Represent this question for retrieving the conversation turns that answer it: "

# Benchmark categories are not memory types; this mapping is an approximation, stated in reports.
MEMORY_CATEGORY = {
    "locomo": {
        "2": "episodic",     # temporal: when did an event happen
        "4": "semantic",     # single-hop: a fact about a person
        "1": "semantic",     # multi-hop: facts combined across sessions
        "3": "social",       # open-domain: inferences about people, their traits and relations
    },
    "longmemeval": {
        "temporal-reasoning": "episodic",
        "multi-session": "episodic",
        "single-session-user": "semantic",
        "knowledge-update": "semantic",
        "single-session-preference": "social",
        "single-session-assistant": "procedural",
    },
}
METRIC = {"locomo": "turn_recall@10", "longmemeval": "recall_any@5"}


def memory_category_scores(result: dict) -> dict[str, float]:
    """Question-weighted mean of the dataset's main metric per memory category."""
    dataset = result["dataset"]
    metric = METRIC[dataset]
    totals: dict[str, list[float]] = {}
    for category, row in result["per_category"].items():
        memory_category = MEMORY_CATEGORY[dataset].get(category)
        if memory_category is None or row[metric] != row[metric]:
            continue
        pair = totals.setdefault(memory_category, [0.0, 0.0])
        pair[0] += row[metric] * row["questions"]
        pair[1] += row["questions"]
    return {k: v[0] / v[1] for k, v in sorted(totals.items()) if v[1]}


def run_models(
    models: list[str],
    run: Callable[[MemoryConfig], dict],
    base: MemoryConfig,
    *,
    query_prefix: str = DEFAULT_QUERY_PREFIX,
    status: Callable[[str], None] = lambda _: None,
) -> dict:
    """`run(config)` runs one benchmark; it is called per model, without and with the prefix."""
    rows = []
    for model in models:
        for prefix in ("", query_prefix):
            config = base.model_copy(deep=True)
            config.embedder.model = model
            config.embedder.query_prefix = prefix
            status(f"{model} {'with' if prefix else 'without'} query prefix")
            result = run(config)
            rows.append({
                "model": model,
                "query_prefix": prefix,
                "headline": result.get("turn_recall", result.get("session_recall_any")),
                "ndcg@10": result["ndcg@10"],
                "by_memory_category": memory_category_scores(result),
                "latency_ms": result["latency_ms"],
                "dataset": result["dataset"],
                "questions": result["questions"],
            })
    return {"benchmark": "models", "metric": METRIC[rows[0]["dataset"]] if rows else None,
            "mapping": MEMORY_CATEGORY, "rows": rows}


def models_markdown(report: dict, command: str) -> str:
    dataset = report["rows"][0]["dataset"]
    categories = sorted({c for r in report["rows"] for c in r["by_memory_category"]})
    lines = [f"# Embedding models per memory category ({dataset})", "", f"Command: `{command}`", "",
             f"Metric per memory category: {report['metric']} (question-weighted over the benchmark categories mapped below).",
             "", "| model | query prefix | " + " | ".join(categories) + " | NDCG@10 | p50 ms |",
             "|---|---|" + "---|" * (len(categories) + 2)]
    for r in report["rows"]:
        cells = [f"{r['by_memory_category'].get(c, float('nan')):.3f}" for c in categories]
        lines.append(f"| `{r['model']}` | {'yes' if r['query_prefix'] else 'no'} | " + " | ".join(cells)
                     + f" | {r['ndcg@10']:.3f} | {r['latency_ms']['p50']:.1f} |")
    lines += ["", "Mapping of benchmark categories to memory categories (an approximation):", ""]
    lines += [f"- {k} → {v}" for k, v in report["mapping"][dataset].items()]
    prefix = next((r["query_prefix"] for r in report["rows"] if r["query_prefix"]), "")
    lines += ["", f"Query prefix used: `{prefix}`", ""]
    return "\n".join(lines)
