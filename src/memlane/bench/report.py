"""Reports for retrieval benchmarks: a Rich table, a Markdown file and PNG plots beside the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from memlane.bench.machine import describe_machine


def run_fields(dataset: str, per_question: list[dict], latencies: list[float], ingest_seconds: float,
               config, **extra) -> dict:
    """The fields every benchmark report carries besides its metrics (the LLM key is never written)."""
    from memlane.bench.metrics import percentiles

    return {"dataset": dataset, **extra, "latency_ms": percentiles(latencies), "ingest_seconds": ingest_seconds,
            "config": config.model_dump(mode="json", exclude={"llm": {"api_key"}, "embedder": {"api_key"}}),
            "per_question": per_question}


def model_label(result: dict) -> str:
    """The embedding model of a report's configuration, with its precision where not float32."""
    embedder = result["config"]["embedder"]
    precision = embedder.get("precision", "float32")
    return f"`{embedder['model']}`" + ("" if precision == "float32" else f" ({precision})")


def headline(result: dict) -> dict[str, float]:
    """The metrics a report leads with, flattened to 'name@k' keys."""
    if result["dataset"] == "locomo-qa":
        out = {f"answer_recall@{k}": v for k, v in result["answer_recall"].items()}
        out.update({k: result[k] for k in ("f1", "bleu1", "judge") if k in result})
        return out
    if result["dataset"] == "locomo":
        out = {f"turn_recall@{k}": v for k, v in result["turn_recall"].items()}
        out.update({f"session_recall@{k}": v for k, v in result["session_recall"].items()})
        out["ndcg@10"] = result["ndcg@10"]
        return out
    out = {f"recall_any@{k}": v for k, v in result["session_recall_any"].items()}
    out.update({f"recall_all@{k}": v for k, v in result["session_recall_all"].items()})
    out.update({f"session_recall@{k}": v for k, v in result["session_recall"].items()})
    out["ndcg@10"] = result["ndcg@10"]
    out.update({f"turn_recall@{k}": v for k, v in result["turn_recall"].items()})
    return out


def curves(result: dict) -> dict[str, dict[str, float]]:
    if result["dataset"] == "locomo-qa":
        return {"gold answer tokens in the top k": result["answer_recall"]}
    if result["dataset"] == "locomo":
        return {"evidence turns": result["turn_recall"], "evidence sessions": result["session_recall"]}
    return {"session recall_any": result["session_recall_any"], "session recall (fractional)": result["session_recall"],
            "session recall_all": result["session_recall_all"], "turn recall": result["turn_recall"]}


def category_metric(result: dict) -> str:
    if result["dataset"] == "locomo-qa":
        return "judge" if "judge" in result else "answer_recall@10"
    return "turn_recall@10" if result["dataset"] == "locomo" else "recall_any@5"


def _label(category: str, row: dict) -> str:
    """"1 multi-hop" for a numbered category, the name alone when it is the key."""
    return f"{category} {row['name']}" if row["name"] != category else category


def rich_table(result: dict) -> Table:
    table = Table(title=f"{result['dataset']}: {result['questions']} questions, retriever {result.get('retriever', 'full')}")
    table.add_column("category")
    table.add_column("n", justify="right")
    keys = [k for k in next(iter(result["per_category"].values())) if k not in ("name", "questions")]
    shown = [k for k in keys if k.endswith(("@1", "@5", "@10")) or k in ("f1", "bleu1", "judge")][:9]
    for key in shown:
        table.add_column(key, justify="right")
    for category, row in result["per_category"].items():
        table.add_row(_label(category, row), str(row["questions"]),
                      *[f"{row[k]:.3f}" for k in shown])
    flat = headline(result)
    table.add_section()
    table.add_row("all (headline)", str(result["questions"]), *[f"{flat.get(k, float('nan')):.3f}" for k in shown])
    return table


def markdown(result: dict, command: str, plots: list[str]) -> str:
    m = result.get("machine") or describe_machine()
    flat = headline(result)
    lines = [
        f"# {result['dataset']}: retriever `{result.get('retriever', 'full')}`"
        + (f", {result['mode']}" if result.get("mode") else ""),
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}, torch {m.get('torch', '?')}"
        + (f", ONNX Runtime {m['onnxruntime']}" if m.get("onnxruntime") else "") + "."
        + (f" Models ran on: {m['embedding_runtime']}." if m.get("embedding_runtime") else ""),
        f"Embedding model: {model_label(result)}. Questions: {result['questions']}"
        + (f" (split {result['split']})" if result.get("split") else "") + "."
        + (f" Store: {result['store']}." if result.get("store") else ""),
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in flat.items()],
        f"| search latency p50 / p95 / p99 | {result['latency_ms']['p50']:.1f} / {result['latency_ms']['p95']:.1f} / {result['latency_ms']['p99']:.1f} ms |",
        f"| ingest | {result['ingest_seconds']:.1f} s |",
        *([f"| vector cache read before timing | {result['cache_warm_up']['bytes'] / 2**20:.1f} MB in "
           f"{result['cache_warm_up']['seconds']:.1f} s |"] if result.get("cache_warm_up") else []),
        "",
        "## Per category",
        "",
    ]
    rows = list(result["per_category"].items())
    keys = [k for k in rows[0][1] if k not in ("name", "questions")]
    lines.append("| category | n | " + " | ".join(keys) + " |")
    lines.append("|---|---|" + "---|" * len(keys))
    for category, row in rows:
        lines.append(f"| {_label(category, row)} | {row['questions']} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    if result.get("notes"):
        lines += ["", "## Notes", "", *[f"- {n}" for n in result["notes"]]]
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    return "\n".join(lines)


def plot(result: dict, out: Path) -> list[str]:
    """recall@k curves and per-category bars as PNGs beside `out`; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves(result).items():
        ks = [int(k) for k in curve]
        ax.plot(ks, list(curve.values()), marker="o", label=label)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{result['dataset']} recall@k ({result.get('retriever', 'full')})")
    name = out.stem + "-recall.png"
    fig.tight_layout()
    fig.savefig(out.parent / name, dpi=110)
    plt.close(fig)
    names.append(name)

    metric = category_metric(result)
    fig, ax = plt.subplots(figsize=(7, 4))
    cats = list(result["per_category"].items())
    ax.bar([f"{c}\n{r['name']}" if r["name"] != c else c for c, r in cats], [r[metric] for _, r in cats])
    ax.set_ylim(0, 1)
    ax.set_ylabel(metric)
    ax.set_title(f"{result['dataset']} {metric} per category")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    name = out.stem + "-categories.png"
    fig.savefig(out.parent / name, dpi=110)
    plt.close(fig)
    names.append(name)
    return names


def write_report(result: dict, out: Path, command: str) -> str:
    """Write FILE.json, FILE.md and the plots; returns the Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    result.setdefault("machine", describe_machine())
    result["command"] = command
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    plots = plot(result, out)
    text = markdown(result, command, plots)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    return text


def save_report(result: dict, out: Path, command: str, markdown_of=None, *, indent: int = 2) -> str:
    """A benchmark's JSON at `out` with the command that made it and its Markdown beside it
    (`markdown_of(result, command)`); returns the Markdown. Without `markdown_of`, a retrieval
    report's tables and plots (`write_report`)."""
    if markdown_of is None:
        return write_report(result, out, command)
    result["command"] = command
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=indent) + "\n", encoding="utf-8")
    text = markdown_of(result, command)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    return text
