"""Several memlane processes on one PostgreSQL store: three processes add memories for a user of
their own and for a shared user while this one searches. No write is lost, each process finds
what the others wrote once they are done (whatever views it had cached), and no search returns
another user's memory. Mirrors tests/test_concurrency.py, which runs the same roles on SQLite."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
import traceback
from pathlib import Path

from _postgres import postgres_schema

from memlane import Memory, MemoryConfig
from memlane.embed import HashEmbedder

DIMS = 64
PROCESSES = ["pa", "pb", "pc"]
SHARED = "shared"
ADDS = 15  # per process and user


def open_memory(url: str, folder: str) -> Memory:
    config = MemoryConfig()
    config.embedder.provider = "hash"
    config.embedder.model = f"hash-{DIMS}"
    config.embedder.cache_path = os.path.join(folder, "vectors.sqlite")
    return Memory(url, config, embedder=HashEmbedder(dims=DIMS))


def marker(name: str, i: int) -> str:
    return f"mk{name}n{i}"


def hits(memory: Memory, query: str, user: str) -> list[list[str]]:
    """(id, owner, text) of each hit of a search."""
    return [[h.id, h.record.user_id, h.text] for h in memory.search(query, user_id=user, limit=10)]


def writer(url: str, folder: str, name: str, barrier, out: str) -> None:
    """Add ADDS memories for `name` and for the shared user, searching both between adds (so
    views are cached while others write); once every writer is done, search for the others'
    markers. Everything it did goes to `out`; an exception is recorded, not raised."""
    result: dict = {"ids": {name: [], SHARED: []}, "searched": [], "found": {}, "errors": []}
    try:
        with open_memory(url, folder) as memory:
            for i in range(ADDS):
                for user in (name, SHARED):
                    records = memory.add(f"{user} hears {marker(name, i)} about the garden", user_id=user)
                    result["ids"][user] += [r.id for r in records]
                    result["searched"].append([user, hits(memory, "garden", user)])
            barrier.wait(timeout=120)
            for other in PROCESSES:
                result["found"][other] = hits(memory, marker(other, ADDS - 1), SHARED)
    except Exception:
        result["errors"].append(traceback.format_exc())
        barrier.abort()
    Path(out).write_text(json.dumps(result))


def all_ids(memory: Memory, user: str) -> set[str]:
    page = memory.get_all(user, limit=1000)
    ids = {r.id for r in page.records}
    while page.next_cursor is not None:
        page = memory.get_all(user, limit=1000, cursor=page.next_cursor)
        ids |= {r.id for r in page.records}
    return ids


def run_writers(url: str, folder: Path, memory: Memory) -> tuple[dict[str, dict], list]:
    """Start one writer process per name, search with `memory` until they are all done; returns
    each writer's record and this process's searches."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(PROCESSES))
    outs = {name: folder / f"{name}.json" for name in PROCESSES}
    for name in PROCESSES:
        (folder / name).mkdir()
    processes = [context.Process(target=writer, args=(url, str(folder / name), name, barrier, str(out)))
                 for name, out in outs.items()]
    searched = []
    try:
        for process in processes:
            process.start()
        while any(p.is_alive() for p in processes):
            for user in (SHARED, *PROCESSES):
                searched.append([user, hits(memory, "garden", user)])
            time.sleep(0.02)
        for process in processes:
            process.join(timeout=120)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)
    return {name: json.loads(out.read_text()) for name, out in outs.items()}, searched


def test_processes_writing_one_store_lose_nothing_and_see_each_other(postgres_url, tmp_path):
    with postgres_schema(postgres_url) as url, open_memory(url, str(tmp_path)) as memory:
        memory.add("the store starts with its vector index", user_id="seed")  # made once, before the race
        results, searched = run_writers(url, tmp_path, memory)
        assert not [e for r in results.values() for e in r["errors"]], results

        # No write lost: each user holds exactly what the adds acknowledged.
        written = {user: {i for r in results.values() for i in r["ids"].get(user, [])} for user in (SHARED, *PROCESSES)}
        assert len(written[SHARED]) == sum(len(written[name]) for name in PROCESSES) > 0
        for user, ids in written.items():
            assert all_ids(memory, user) == ids, user

    # Each process, once all were done, found every process's last marker for the shared user.
    for name, result in results.items():
        for other, found in result["found"].items():
            assert any(marker(other, ADDS - 1) in text for _, _, text in found), (name, other, found)

    # No search, here or there, returned a memory of another user.
    everything = searched + [s for r in results.values() for s in r["searched"]]
    assert len(searched) > 0
    foreign = [(user, hit) for user, found in everything for hit in found if hit[1] != user]
    assert not foreign, foreign[:3]
