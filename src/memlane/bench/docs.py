"""Document retrieval benchmark: a folder or archive of documents imported as one user, then
questions labelled with the documents (and optionally the section) that answer them, asked with
`search(group_by="document")` and scored on where the first relevant document ranks."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memlane.bench.metrics import (
    bootstrap_mean_ci,
    gold_ranks,
    ndcg_at_k,
    recall_any_at_k,
)
from memlane.bench.report import model_label, run_fields
from memlane.config import MemoryConfig
from memlane.errors import InputError

USER = "docs-benchmark"
DEPTH = 10  # documents asked for per question
FIRST_QUESTION = "what is this about"  # the untimed-apart first search (see `run_docs_benchmark`)
CURVE_KS = tuple(range(1, DEPTH + 1))
HEADLINE_KS = (1, 5, 10)
CHUNK_K = 5  # documents whose matching chunks are looked at for the section label
FIELDS = ("query", "relevant", "section", "chunk", "id")

Status = Callable[[str], None]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DocQuery:
    """A question and the document paths that answer it (paths inside the imported folder or
    archive, e.g. "peps/pep-0008.rst"); optionally the title of the section that holds the answer
    and a passage of its text."""

    id: str
    query: str
    relevant: tuple[str, ...]
    section: str | None = None
    chunk: str | None = None


def load_queries(path: str | Path) -> list[DocQuery]:
    """Questions from a JSON Lines file, one object a line: "query" (text), "relevant" (a list of
    document paths), optionally "section", "chunk" and "id" (default: the line number). Blank lines
    are skipped; anything else that is wrong raises InputError naming the file, line and field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the questions ({exc})", file=str(path),
                         fix="pass a UTF-8 JSON Lines file of questions") from None
    out: list[DocQuery] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        out.append(_parse_line(line, str(path), number))
        if out[-1].id in seen:
            raise InputError(f"the id {out[-1].id!r} is also the id of line {seen[out[-1].id]}", file=str(path),
                             record=f"line {number}", field="id", fix="give every question its own id")
        seen[out[-1].id] = number
    if not out:
        raise InputError("the file holds no questions", file=str(path),
                         fix='write one {"query": ..., "relevant": [...]} object a line')
    return out


def _parse_line(line: str, file: str, number: int) -> DocQuery:
    def bad(problem: str, field: str | None, fix: str) -> InputError:
        return InputError(problem, file=file, record=f"line {number}", field=field, fix=fix)

    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise bad(f"not valid JSON ({exc.msg} at column {exc.colno})", None,
                  'write one JSON object a line: {"query": ..., "relevant": [...]}') from None
    if not isinstance(row, dict):
        raise bad(f"expected a JSON object, got {type(row).__name__}", None,
                  'write one JSON object a line: {"query": ..., "relevant": [...]}')
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise bad(f"unknown field {unknown[0]!r}", unknown[0], "use only " + ", ".join(FIELDS))
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad("missing or empty (it must be the question's text)", "query", 'add "query": "the question"')
    relevant = row.get("relevant")
    if not isinstance(relevant, list) or not relevant:
        raise bad("missing or empty (it must be a list of the paths of the documents that answer the question)",
                  "relevant", 'add e.g. "relevant": ["peps/pep-0008.rst"]')
    if not all(isinstance(p, str) and p.strip() for p in relevant):
        raise bad("every entry must be a non-empty document path", "relevant",
                  'write paths as strings, e.g. "peps/pep-0008.rst"')
    labels = {}
    for field in ("section", "chunk", "id"):
        value = row.get(field)
        if field == "id" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad("must be non-empty text when given", field, f"give {field} as text, or leave it out")
        labels[field] = value.strip() if value is not None else None
    return DocQuery(id=labels["id"] or str(number), query=query.strip(),
                    relevant=tuple(dict.fromkeys(p.strip() for p in relevant)),
                    section=labels["section"], chunk=labels["chunk"])


# -- scoring: pure functions ------------------------------------------------------------------------

def first_rank(ranks: Sequence[int | None]) -> int | None:
    """The best (smallest) rank among the relevant documents found, or None when none was."""
    found = [r for r in ranks if r is not None]
    return min(found) if found else None


def reciprocal_rank_at_k(ranks: Sequence[int | None], k: int) -> float:
    """1/r for the best rank r of a relevant document when r <= k, else 0 (MRR@k averages it)."""
    best = first_rank(ranks)
    return 1.0 / best if best is not None and best <= k else 0.0


_MARKUP = re.compile(r"[`*]+")


def normalize_title(text: str) -> str:
    """A heading compared without inline markup (``code``, *emphasis*), case or extra spaces."""
    return " ".join(_MARKUP.sub("", text).split()).casefold()


def section_in_path(section: str, path: str) -> bool:
    """Whether `section` is one of the headings of a chunk's heading path ("A > B > C")."""
    wanted = normalize_title(section)
    return any(normalize_title(part) == wanted for part in path.split(" > "))


def passage_in_text(passage: str, text: str) -> bool:
    """Whether `passage` appears in `text`, ignoring case and how whitespace is laid out."""
    return " ".join(passage.split()).casefold() in " ".join(text.split()).casefold()


def labelled_part(query: DocQuery, top: Sequence[dict], k: int = CHUNK_K) -> tuple[int, int] | None:
    """Where the question's label is first found: (the rank of a relevant document among the top k,
    the rank of its first matching chunk among that document's chunks), or None. A chunk matches
    when the section is among its headings and the passage in its text (each when labelled). `top`
    holds, per document, its "source" and its matching chunks' "sections" and "texts"."""
    for doc_rank, doc in enumerate(top[:k], start=1):
        if doc["source"] not in query.relevant:
            continue
        for part_rank, (section, text) in enumerate(zip(doc["sections"], doc["texts"]), start=1):
            if (query.section is None or section_in_path(query.section, section)) and \
                    (query.chunk is None or passage_in_text(query.chunk, text)):
                return doc_rank, part_rank
    return None


def chunk_found(query: DocQuery, top: Sequence[dict], k: int = CHUNK_K) -> float:
    """For a question with a section or chunk label: 1 when one of the top-k documents is relevant
    and one of its matching chunks carries the label (see `labelled_part`), else 0; NaN for a
    question without labels."""
    if query.section is None and query.chunk is None:
        return float("nan")
    return 1.0 if labelled_part(query, top, k) else 0.0


def question_metrics(row: dict) -> dict[str, float]:
    """One question's metrics from its report row (the ranks of its relevant documents)."""
    ranks = list(row["ranks"].values())
    out = {f"recall@{k}": recall_any_at_k(ranks, k) for k in CURVE_KS}
    out["mrr@10"] = reciprocal_rank_at_k(ranks, 10)
    out["ndcg@10"] = ndcg_at_k(ranks, 10)
    out[f"chunk_recall@{CHUNK_K}"] = float("nan") if row["chunk_found"] is None else row["chunk_found"]
    return out


def summarize(per_question: list[dict], resamples: int = 1000, seed: int = 42) -> dict:
    """Mean recall@k for k = 1..10, and every headline metric with its bootstrap 95% interval."""
    rows = [question_metrics(q) for q in per_question]
    metrics = {}
    keys = [f"recall@{k}" for k in HEADLINE_KS] + ["mrr@10", "ndcg@10", f"chunk_recall@{CHUNK_K}"]
    for key in keys:
        values = [r[key] for r in rows if not math.isnan(r[key])]
        mean, low, high = bootstrap_mean_ci(values, resamples=resamples, seed=seed)
        metrics[key] = {"mean": mean, "ci_low": low, "ci_high": high, "questions": len(values)}
    curve = {}
    for k in CURVE_KS:
        values = [r[f"recall@{k}"] for r in rows]
        curve[str(k)] = sum(values) / len(values) if values else float("nan")
    return {"questions": len(rows), "recall": curve, "metrics": metrics,
            "misses@10": sum(1 for q in per_question if q["rank"] is None)}


# -- running ----------------------------------------------------------------------------------------

def run_docs_benchmark(
    config: MemoryConfig,
    data: Path | Sequence[Path],
    queries: list[DocQuery],
    *,
    status: Status = lambda _: None,
    on_import_progress: Progress | None = None,
    on_progress: Progress | None = None,
    store: str | None = None,
    warm_cache: bool = False,
) -> dict:
    """Import `data` (a folder, a .tar/.zip archive or files) into a new scratch store as one user,
    timed, then ask every question with `search(group_by="document")`, timing each search. The
    import is cold: the vector cache is turned off unless `warm_cache`. Every relevant path must be
    among the imported documents (InputError otherwise: a mislabelled question or the wrong data)."""
    from memlane.bench.machine import describe_machine
    from memlane.memory import Memory
    from memlane.store import backend_name, scratch_store

    if not queries:
        raise InputError("no questions to ask", field="queries", fix="pass a JSON Lines file with questions")
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    if not warm_cache:
        config = config.model_copy(deep=True)
        config.embedder.cache_path = "off"
    _check_labels(queries, _readable_paths(paths, config))  # before a long import, not after
    per_question: list[dict] = []
    latencies: list[float] = []
    with scratch_store(store, "docs") as location:
        memory = Memory(location, config)
        try:
            status(f"importing {', '.join(str(p) for p in paths)}")
            started = time.perf_counter()
            imported = memory.add_documents([str(p) for p in paths], user_id=USER, category="semantic",
                                            on_progress=on_import_progress)
            ingest_seconds = time.perf_counter() - started
            status(f"imported {imported.documents} documents, {imported.chunks} chunks in {ingest_seconds:.1f} s; "
                   f"asking {len(queries)} questions")
            _check_labels(queries, _document_sources(memory))
            # The first search loads the model and reads the user's view: timed on its own, with a
            # question of none of the sets, so the percentiles are those of a running store.
            started = time.perf_counter()
            memory.search(FIRST_QUESTION, user_id=USER, limit=DEPTH, group_by="document")
            first_search_ms = (time.perf_counter() - started) * 1000
            for done, query in enumerate(queries, start=1):
                started = time.perf_counter()
                hits = memory.search(query.query, user_id=USER, limit=DEPTH, group_by="document")
                latencies.append((time.perf_counter() - started) * 1000)
                per_question.append(_row(query, hits))
                if on_progress:
                    on_progress(done, len(queries))
        finally:
            memory.close()
    report = summarize(per_question)
    report.update(run_fields(
        "docs", per_question, latencies, ingest_seconds, config,
        data=[str(p) for p in paths], store=backend_name(store), cold_import=not warm_cache,
        documents=imported.documents, chunks=imported.chunks, embed_seconds=imported.embed_seconds,
        import_seconds=imported.seconds, first_search_ms=first_search_ms,
        skipped=[{"path": s.path, "reason": s.reason} for s in imported.skipped]))
    report["machine"] = describe_machine()  # after the run: it names the runtime the model ran on
    return report


def _readable_paths(paths: list, config: MemoryConfig) -> set[str]:
    """The document paths an import of `paths` would read (files skipped for their format or size left out)."""
    from memlane.documents.sources import read_sources

    files, _ = read_sources([str(p) for p in paths], ignore=config.documents.ignore,
                            max_file_bytes=config.documents.max_file_bytes,
                            max_total_bytes=config.limits.max_import_bytes)
    return {f.path for f in files}


def _document_sources(memory) -> set[str]:
    """The paths of the benchmark user's document-level memories."""
    sources: set[str] = set()
    cursor = None
    while True:
        page = memory.get_all(USER, limit=memory.config.limits.max_page, cursor=cursor,
                              filters={"node_type": "document"})
        sources.update(r.metadata.get("source") for r in page.records)
        cursor = page.next_cursor
        if not cursor:
            return sources


def _check_labels(queries: list[DocQuery], sources: set[str]) -> None:
    missing = [(q, p) for q in queries for p in q.relevant if p not in sources]
    if missing:
        shown = "; ".join(f"question {q.id}: {p}" for q, p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"{len(missing)} relevant document path(s) are not among the {len(sources)} imported "
                         f"documents ({shown}{more})", field="relevant",
                         fix="name documents by their path inside the folder or archive (e.g. peps/pep-0008.rst), "
                             "or ask only questions about the documents imported")


def _row(query: DocQuery, hits) -> dict:
    ranked = [h.record.metadata.get("source") for h in hits]
    top = [{"source": h.record.metadata.get("source"),
            "sections": [p.record.metadata.get("section", "") for p in h.parts],
            "texts": [p.record.text for p in h.parts]} for h in hits[:CHUNK_K]]
    labelled = query.section is not None or query.chunk is not None
    where = labelled_part(query, top) if labelled else None
    ranks = gold_ranks(ranked, query.relevant)
    return {
        "id": query.id,
        "query": query.query,
        "relevant": list(query.relevant),
        "section": query.section,
        "chunk": query.chunk,
        "ranks": ranks,
        "rank": first_rank(list(ranks.values())),
        "chunk_found": (1.0 if where else 0.0) if labelled else None,
        "labelled_part": list(where) if where else None,  # [document rank, chunk rank within it]
        "ranked": ranked,
        "top_sections": [{"source": d["source"], "sections": d["sections"][:3]} for d in top],
    }


# -- reporting --------------------------------------------------------------------------------------

def plot_docs(result: dict, out: Path) -> list[str]:
    """The recall@k curve (k = 1..10) as a PNG beside `out`; returns its file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["recall"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([int(k) for k in curve], list(curve.values()), marker="o", label="a relevant document in the top k")
    ax.set_xlabel("k (documents)")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.set_xticks([int(k) for k in curve])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"document recall@k: {result['questions']} questions ({result.get('retriever', 'full')})")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    name = out.stem + "-recall.png"
    fig.savefig(out.parent / name, dpi=110)
    plt.close(fig)
    return [name]


def docs_markdown(result: dict, command: str) -> str:
    """The report as Markdown: headline metrics with 95% intervals, timings, the plot, the misses."""
    m = result["machine"]
    latency = result["latency_ms"]
    runtime = "".join([f", torch {m['torch']}" if m.get("torch") else "",
                       f", ONNX Runtime {m['onnxruntime']}" if m.get("onnxruntime") else "", ".",
                       f" Models ran on: {m['embedding_runtime']}." if m.get("embedding_runtime") else ""])
    skipped = f", {len(result['skipped'])} files skipped" if result["skipped"] else ""
    source = f" from `{result['queries_file']}`" if result.get("queries_file") else ""
    timing = "cold" if result["cold_import"] else "vector cache on"
    lines = [
        f"# docs: document retrieval, retriever `{result.get('retriever', 'full')}`",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}{runtime}",
        (f"Embedding model: {model_label(result)}. Data: {', '.join(result['data'])} "
         f"({result['documents']} documents, {result['chunks']} chunks{skipped}). "
         f"Questions: {result['questions']}{source}. Store: {result['store']}."),
        "",
        "| metric | value | 95% interval | questions |",
        "|---|---|---|---|",
    ]
    for key, row in result["metrics"].items():
        lines.append(f"| {key} | {row['mean']:.3f} | {row['ci_low']:.3f} – {row['ci_high']:.3f} "
                     f"| {row['questions']} |")
    lines += [
        (f"| search latency p50 / p95 / p99 | {latency['p50']:.1f} / {latency['p95']:.1f} / "
         f"{latency['p99']:.1f} ms | | |"),
        *([f"| first search (loads the model, reads the store) | {result['first_search_ms']:.0f} ms | | |"]
          if "first_search_ms" in result else []),
        (f"| import ({timing}) | {result['ingest_seconds']:.1f} s, of which embedding "
         f"{result['embed_seconds']:.1f} s | | |"),
        "",
        ("recall@k is the share of questions with a relevant document in the top k; "
         f"chunk_recall@{CHUNK_K} counts, over the questions labelled with a section, those where a relevant "
         f"document in the top {CHUNK_K} has a matching chunk under that section. Intervals: percentile "
         "bootstrap over questions (1,000 resamples)."),
        "",
        *[f"![{p}]({p})" for p in result.get("plots", [])],
    ]
    misses = [q for q in result["per_question"] if q["rank"] is None or q["rank"] > 1]
    if misses:
        lines += ["", "## Questions without a relevant document first", "",
                  "| id | question | relevant | rank | ranked first |", "|---|---|---|---|---|"]
        for q in sorted(misses, key=lambda q: (q["rank"] is not None, q["rank"] or 0)):
            text = q["query"].replace("|", "\\|")
            lines.append(f"| {q['id']} | {text} | {', '.join(q['relevant'])} | {q['rank'] or '> 10'} | "
                         f"{q['ranked'][0] if q['ranked'] else '—'} |")
    if result["skipped"]:
        lines += ["", "## Files skipped", "", *[f"- {s['path']}: {s['reason']}" for s in result["skipped"][:20]]]
    return "\n".join(lines) + "\n"
