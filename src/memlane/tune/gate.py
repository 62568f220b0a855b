"""The eval gate: a new checkpoint is kept only if it retrieves held-out queries better.

`evaluate` scores one model on a store the way memlane will use it: a scratch copy of the store
(only the users the queries ask about), re-embedded with that model (vectors come from the
shared cache when the model saw the text before), searched by the configured retriever. Each
query's positives are ranked among the memories of their kind; the primary metric is NDCG@10.
A query answered by document chunks is ranked among the user's chunks, and its session recall
is document recall (a chunk's session is its document). With a static first stage the model
under test only re-scores turns, so chunk (and session) answers cannot measure it: `check_scorable`
refuses them instead of reporting two equal rankings as "no gain".

`gate` evaluates the base and the candidate on the same queries and accepts the candidate only
when NDCG@10 rises by more than zero and by at least `min_gain`. An accepted checkpoint moves to
OUT/checkpoint-N and is recorded; a refused one is deleted. Either way OUT/gate.json and
OUT/gate.md hold before, after, and the delta with its paired bootstrap confidence interval.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Collection, Sequence

from memlane.bench.metrics import gold_ranks, mean_of, ndcg_at_k, paired_bootstrap, recall_at_k
from memlane.config import EmbedderConfig, MemoryConfig
from memlane.errors import InputError
from memlane.tune.examples import Example, positive_records

Progress = Callable[[int, int], None]
PRIMARY = "ndcg@10"
METRICS = ("ndcg@10", "recall@1", "recall@5", "recall@10", "recall@20", "session_recall@5")


@dataclass
class Evaluation:
    model: str
    metrics: dict[str, float]
    per_query: list[dict] = field(default_factory=list)


@dataclass
class GateReport:
    passed: bool
    min_gain: float
    queries: int
    before: dict[str, float]
    after: dict[str, float]
    deltas: dict[str, dict[str, float]]
    base_model: str
    candidate: str
    checkpoint: str | None
    reason: str


def query_metrics(positive_ranks: dict[str, int | None], session_ranks: dict[str, int | None]) -> dict[str, float]:
    ranks = list(positive_ranks.values())
    out = {"ndcg@10": ndcg_at_k(ranks, 10)}
    out.update({f"recall@{k}": recall_at_k(ranks, k) for k in (1, 5, 10, 20)})
    out["session_recall@5"] = recall_at_k(list(session_ranks.values()), 5)
    return out


def check_scorable(embedder: EmbedderConfig, kinds: Collection[str]) -> None:
    """Refuse an evaluation that cannot measure `embedder`: with `first_stage = "static"` the
    configured model re-scores only turns (memories of other kinds are ranked by the static
    model distilled from it, and by BM25), so held-out answers of any other kind, document chunks
    above all, would compare the base and the candidate on rankings the candidate never touched."""
    others = sorted(set(kinds) - {"turn"})
    if embedder.first_stage == "static" and others:
        raise InputError(
            f"held-out answers are {', '.join(others)} memories, which the tiered search (embedder.first_stage = "
            "'static') does not re-score with the model under test, so the gate cannot measure it",
            field="eval_queries",
            fix="run the gate with embedder.first_stage = 'none' (MEMLANE_EMBEDDER__FIRST_STAGE=none), "
                "or give held-out queries whose answers are turns",
        )


def positive_kinds(store, examples: Sequence[Example]) -> set[str]:
    """The node types of the examples' positives that exist in `store` (a `Store`)."""
    kinds: set[str] = set()
    for example in examples:
        kinds.update(r.node_type for r in store.get_many(example.user_id, example.positive_ids))
    return kinds


def check_gate_inputs(store_path: str | Path, examples: Sequence[Example], embedder: EmbedderConfig) -> None:
    """`check_scorable` for held-out `examples` against the store they are evaluated on: run it
    before training, so an evaluation that cannot measure the model fails in seconds, not hours."""
    from memlane.store import open_store

    store = open_store(store_path, create=False)
    try:
        check_scorable(embedder, positive_kinds(store, examples))
    finally:
        store.close()


def evaluate(store_path: str | Path, examples: Sequence[Example], config: MemoryConfig, embedder: EmbedderConfig,
             *, depth: int = 50, workdir: str | Path | None = None, on_progress: Progress | None = None) -> Evaluation:
    """Score `embedder` on the held-out `examples` against a scratch copy of the store."""
    from memlane.embed import make_embedders
    from memlane.memory import Memory, reindex
    from memlane.store import open_store
    from memlane.transfer import export_store, import_memories

    if not examples:
        raise InputError("no evaluation queries", field="eval_queries", fix="give at least one held-out query")
    cfg = config.model_copy(deep=True)
    cfg.embedder = embedder
    cfg.fine_tune.enabled = False
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        copy = Path(tmp) / "eval.db"
        dump = Path(tmp) / "users.jsonl"
        source = open_store(store_path, create=False)  # any backend; the scratch copy is a SQLite file
        try:
            with source.reading() as snapshot:
                check_scorable(embedder, positive_kinds(snapshot, examples))
                export_store(snapshot, dump, users=sorted({e.user_id for e in examples}), vectors=True)
        finally:
            source.close()
        with Memory(copy, config) as scratch:  # the deployed model: the file's vectors are kept as they are
            import_memories(scratch, dump)
        dump.unlink()
        index_embedder = make_embedders(embedder)[0]
        scratch = open_store(copy, create=False)
        try:
            index = scratch.active_index()
        finally:
            scratch.close()
        if index is None or (index.model, index.dims) != (index_embedder.name, index_embedder.dims):
            reindex(copy, embedder, embedder=index_embedder, passages=cfg.ingest.passages)
        per_query = []
        with Memory(copy, cfg) as memory:
            model_name = memory.embedder.name
            for done, example in enumerate(examples, start=1):
                positives = positive_records(memory, example)
                kinds = sorted({r.node_type for r in positives})
                hits = memory.search(example.query, user_id=example.user_id, limit=depth, now=example.now,
                                     filters={"node_type": kinds} if kinds else None)
                ranked = [h.record.id for h in hits]
                sessions = list(dict.fromkeys(h.record.session_id for h in hits))
                ranks = gold_ranks(ranked, example.positive_ids)
                session_ranks = gold_ranks(sessions, sorted({r.session_id for r in positives if r.session_id}))
                per_query.append({"query": example.query, "user_id": example.user_id, "group": example.group,
                                  "ranks": ranks, **query_metrics(ranks, session_ranks)})
                if on_progress:
                    on_progress(done, len(examples))
    return Evaluation(model_name, {m: mean_of(per_query, m) for m in METRICS}, per_query)


def decide(before: Evaluation, after: Evaluation, min_gain: float) -> tuple[bool, dict[str, dict[str, float]], str]:
    """(passed, per-metric paired bootstrap of after - before, the reason in words)."""
    deltas = {}
    for metric in METRICS:
        pairs = [(b[metric], a[metric]) for b, a in zip(before.per_query, after.per_query)
                 if b[metric] == b[metric] and a[metric] == a[metric]]
        deltas[metric] = paired_bootstrap([x for x, _ in pairs], [y for _, y in pairs])
    gain = deltas[PRIMARY]["delta"]
    passed = gain > 0 and gain >= min_gain
    if passed:
        reason = f"NDCG@10 rose by {gain:+.4f} (required: > 0 and >= {min_gain:+.4f})"
    else:
        reason = f"NDCG@10 changed by {gain:+.4f}; the gate requires > 0 and >= {min_gain:+.4f}"
    return passed, deltas, reason


def gate(store_path: str | Path, examples: Sequence[Example], config: MemoryConfig, candidate: str | Path,
         out_dir: str | Path, *, min_gain: float | None = None, base: EmbedderConfig | None = None,
         status: Callable[[str], None] = lambda _: None, on_progress: Progress | None = None) -> GateReport:
    """Evaluate base and candidate on `examples`; promote or delete the candidate; write the report."""
    min_gain = config.fine_tune.min_gain if min_gain is None else min_gain
    base = base or config.active_embedder()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    status(f"scoring the base model ({base.model}) on {len(examples)} held-out queries")
    before = evaluate(store_path, examples, config, base, workdir=out, on_progress=on_progress)
    status(f"scoring the candidate ({candidate}) on the same queries")
    # A trained checkpoint is always a local sentence-transformers folder, whatever served the base.
    candidate_cfg = base.model_copy(update={"model": str(candidate), "provider": "local", "dims": None})
    after = evaluate(store_path, examples, config, candidate_cfg, workdir=out, on_progress=on_progress)
    passed, deltas, reason = decide(before, after, min_gain)
    checkpoint = None
    if passed:
        checkpoint = _next_checkpoint(out)
        shutil.move(str(candidate), checkpoint)
    else:
        shutil.rmtree(candidate, ignore_errors=True)
    report = GateReport(passed, min_gain, len(examples), before.metrics, after.metrics, deltas, before.model,
                        str(Path(candidate).resolve()), str(Path(checkpoint).resolve()) if checkpoint else None, reason)
    write_gate_report(out, report, before, after)
    return report


def _next_checkpoint(out: Path) -> str:
    n = 1
    while (out / f"checkpoint-{n}").exists():
        n += 1
    return str(out / f"checkpoint-{n}")


def write_gate_report(out: Path, report: GateReport, before: Evaluation, after: Evaluation) -> None:
    data = asdict(report)
    data["per_query"] = [{"query": b["query"], "user_id": b["user_id"], "group": b["group"],
                          "before": {m: b[m] for m in METRICS}, "after": {m: a[m] for m in METRICS}}
                         for b, a in zip(before.per_query, after.per_query)]
    (out / "gate.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (out / "gate.md").write_text(gate_markdown(report), encoding="utf-8")


def gate_markdown(report: GateReport) -> str:
    verdict = "PASSED: checkpoint registered" if report.passed else "REFUSED: checkpoint discarded"
    lines = [f"# Fine-tuning gate: {verdict}", "", report.reason, "",
             f"- base model: `{report.base_model}`", f"- candidate: `{report.candidate}`",
             f"- checkpoint: `{report.checkpoint}`" if report.checkpoint else "- checkpoint: none (refused)",
             f"- held-out queries: {report.queries}", "",
             "| metric | before | after | delta | 95% CI | p(not better) |", "|---|---|---|---|---|---|"]
    for metric, d in report.deltas.items():
        lines.append(f"| {metric} | {report.before[metric]:.4f} | {report.after[metric]:.4f} | {d['delta']:+.4f} | "
                     f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] | {d['p_not_better']:.3f} |")
    lines += ["", "Paired bootstrap over the held-out queries, B = 1000, seed 42."]
    return "\n".join(lines) + "\n"
