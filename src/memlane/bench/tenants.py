"""Multi-tenant benchmark: search latency in one store shared by many users whose writes
interleave, as on a server. Vectors are hashed (no model runs), so the numbers are the store's
and the retriever's own work for one user among many: per-user BM25 and dense scans, fusion."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Callable

from memlane.bench.machine import describe_machine
from memlane.bench.metrics import percentiles
from memlane.config import MemoryConfig
from memlane.errors import InputError
from memlane.ingest.formats import load_conversations
from memlane.records import Session

Status = Callable[[str], None]
SEED = 42


def longmemeval_sessions(path: Path, limit: int | None = None) -> tuple[list[Session], list[str]]:
    """The distinct haystack sessions of a LongMemEval file (both roles, as they are), at most
    `limit` of them, and its questions."""
    conversations = load_conversations(path)
    sessions = list({s.session_id: s for c in conversations for s in c.sessions if s.turns}.values())
    return sessions[:limit] if limit else sessions, [q["question"] for c in conversations for q in c.questions]


def pick_users(owners: list[str], count: int) -> list[str]:
    """`count` distinct users at random (seed 42), whatever the order `owners` come in."""
    everyone = sorted(set(owners))
    return random.Random(SEED).sample(everyone, min(count, len(everyone)))


def run_tenants_benchmark(
    config: MemoryConfig,
    sessions: list[Session],
    questions: list[str],
    *,
    users: int = 500,
    searched_users: int = 100,
    searches_per_user: int = 4,
    status: Status = lambda _: None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Sessions go to `users` users in turn, one write each, so every user's memories are spread
    over the file. Then `searched_users` users, picked at random, are each asked
    `searches_per_user` questions in a row: the first search of a user builds what the store
    keeps per user (reported apart), the others find it ready."""
    from memlane.embed import HashEmbedder
    from memlane.memory import Memory

    for name, value in (("users", users), ("searched_users", searched_users), ("searches_per_user", searches_per_user)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}", field=name, fix=f"pass a positive {name}")
    if not sessions or not questions:
        raise InputError("the tenants benchmark needs sessions and questions, and got none",
                         fix="point --data at the folder holding longmemeval/")
    config = config.model_copy(deep=True)
    config.embedder.cache_path = "off"
    owners = [f"user-{i % users}" for i in range(len(sessions))]
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(Path(tmp) / "tenants.db", config, embedder=HashEmbedder(dims=384))
        status(f"writing {len(sessions)} sessions for {users} users, one write each")
        started = time.perf_counter()
        for done, (session, owner) in enumerate(zip(sessions, owners), start=1):
            memory.ingest([session], user_id=owner)
            if on_progress:
                on_progress(done, len(sessions))
        ingest_seconds = time.perf_counter() - started
        stats = memory.stats()
        asked = pick_users(owners, searched_users)
        first: list[float] = []
        repeat: list[float] = []
        status(f"searching: {len(asked)} users, {searches_per_user} questions each")
        for n, owner in enumerate(asked):
            for k in range(searches_per_user):
                question = questions[(n * searches_per_user + k) % len(questions)]
                started = time.perf_counter()
                memory.search(question, user_id=owner, limit=10)
                (first if k == 0 else repeat).append((time.perf_counter() - started) * 1000)
        memory.close()
    return {
        "benchmark": "tenants",
        "machine": describe_machine(),
        "store": {"users": users, "sessions": len(sessions), "memories": stats.memories,
                  "write_seconds": ingest_seconds},
        "search": {
            "users_searched": len(asked),
            "searches_per_user": searches_per_user,
            "first_search_ms": percentiles(first),
            "repeat_search_ms": percentiles(repeat),
        },
    }


def tenants_markdown(result: dict, command: str) -> str:
    m, st, s = result["machine"], result["store"], result["search"]
    first, repeat = s["first_search_ms"], s["repeat_search_ms"]
    return f"""# Tenants: search in one store shared by many users

Command: `{command}`

Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}.
Vectors are hashed (no model runs): these are the store's and the retriever's own costs.

| measure | value |
|---|---|
| store | {st['memories']} memories of {st['users']} users, from {st['sessions']} sessions written one at a time in turn ({st['write_seconds']:.0f} s) |
| first search of a user ({s['users_searched']} users) | p50 {first['p50']:.1f} ms, p95 {first['p95']:.1f} ms, p99 {first['p99']:.1f} ms |
| later searches of that user ({s['searches_per_user'] - 1} each) | p50 {repeat['p50']:.1f} ms, p95 {repeat['p95']:.1f} ms, p99 {repeat['p99']:.1f} ms |
"""
