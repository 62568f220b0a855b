"""Writers, deleters and searchers at once on one store, in several processes and in several
threads sharing one Memory: no errors, no lost acknowledged write, no search that started after a
delete was acknowledged finds the deleted memory, and no search finds another user's memory.

Roles and their records are in _concurrency_worker.py. Runs are bounded in time and in ops; what is
asserted holds for any interleaving.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from collections import Counter, defaultdict

import _concurrency_worker as worker

USERS = ["pa", "pb", "pc"]
SECONDS = 3.0


def seed_store(path) -> dict:
    """Every user starts with one add, and the store with its vector index."""
    with worker.open_memory(str(path)) as memory:
        return worker.run_roles(memory, [{"role": "writer", "name": "seed", "users": USERS, "max_ops": len(USERS),
                                          "seed": 0}], None, 0.0, time.time() + 60)


def judge(results: list[dict], memory) -> dict:
    """Check the records of every role against each other and against the store afterwards."""
    errors = [e for r in results for e in r["errors"]]
    kinds = Counter(re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<id>", e.strip().splitlines()[-1])[:160]
                    for e in errors)
    assert not errors, f"{len(errors)} errors in the workers: {dict(kinds)}; the first:\n{errors[0]}"
    adds = [a for r in results for a in r["adds"]]
    deletes = [d for r in results for d in r["deletes"]]
    searches = [s for r in results for s in r["searches"]]
    deleted = {d["id"] for d in deletes}
    written: dict[str, set[str]] = defaultdict(set)  # every memory ever acknowledged, by user
    for a in adds:
        written[a["user"]].update(a["turns"] + [a["session"]])

    # No lost write: every acknowledged add is there, but for the acknowledged deletes.
    lost, kept = [], []
    for a in adds:
        user = a["user"]
        for memory_id, text in zip(a["turns"], a["texts"]):
            record = memory.get(memory_id, user_id=user)
            if memory_id in deleted:
                kept += [text] if record is not None else []
            elif record is None or record.text != text:
                lost.append(text)
        session = memory.get(a["session"], user_id=user)
        said = [m for t, m in zip(a["turns"], a["markers"]) if t not in deleted]
        gone = [m for t, m in zip(a["turns"], a["markers"]) if t in deleted]
        if session is None or not all(m in session.text for m in said) or any(m in session.text for m in gone):
            lost.append(f"the session of {a['markers']}: {session.text if session else None!r}")
    assert not lost, f"{len(lost)} acknowledged writes lost or changed, e.g. {lost[:3]}"
    assert not kept, f"{len(kept)} acknowledged deletes undone, e.g. {kept[:3]}"
    for user in USERS:
        listed = {r.id for r in worker.all_records(memory, user)}
        assert listed == written[user] - deleted, f"get_all({user!r}) differs from the acknowledged writes"

    # No foreign and no stale hit: a search that started after a delete was acknowledged never
    # returns the deleted memory or its words.
    foreign, stale, pairs = [], [], 0
    deletes_of: dict[str, list[dict]] = defaultdict(list)
    for d in sorted(deletes, key=lambda d: d["seq"]):
        deletes_of[d["user"]].append(d)
    for s in searches:
        user = s["user"]
        ids = {hit_id for hit_id, _, _ in s["hits"]}
        words = {m for _, _, markers in s["hits"] for m in markers}
        foreign += [(s["query"], user, hit_user) for hit_id, hit_user, _ in s["hits"]
                    if hit_user != user or hit_id not in written[user]]
        for d in deletes_of[user]:
            if d["seq"] > s["start"]:
                break
            pairs += s["query"] == d["marker"]
            if d["id"] in ids or d["marker"] in words:
                stale.append((s["query"], user, d["marker"], d["seq"], s["start"]))
    assert not foreign, f"{len(foreign)} hits of another user or of no acknowledged write, e.g. {foreign[:3]}"
    assert not stale, f"{len(stale)} searches found a memory deleted before they started, e.g. {stale[:3]}"
    return {"adds": len(adds), "deletes": len(deletes), "searches": len(searches), "searched_after_delete": pairs}


def test_processes_writing_deleting_and_searching_one_store(tmp_path):
    path = tmp_path / "store.db"
    seeded = seed_store(path)
    context = multiprocessing.get_context("spawn")
    clock = context.Value("q", 0)  # see worker.Clock
    plans = [
        [{"role": "writer", "name": "wa", "users": USERS, "max_ops": 300, "seed": 1},
         {"role": "searcher", "name": "sa", "users": USERS, "max_ops": 5000, "seed": 2}],
        [{"role": "writer", "name": "wb", "users": USERS, "max_ops": 300, "seed": 3},
         {"role": "deleter", "name": "da", "users": USERS, "max_ops": 1000, "seed": 4}],
        [{"role": "searcher", "name": "sb", "users": USERS, "max_ops": 5000, "seed": 5},
         {"role": "searcher", "name": "sc", "users": USERS, "max_ops": 5000, "seed": 6}],
    ]
    start_at = time.time() + 1.5  # time for the processes to import memlane
    stop_at = start_at + SECONDS
    outs = [tmp_path / f"process{i}.json" for i in range(len(plans))]
    processes = [context.Process(target=worker.process_main, args=(str(path), plan, clock, start_at, stop_at, str(out)))
                 for plan, out in zip(plans, outs)]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=SECONDS + 60)
        assert [p.exitcode for p in processes] == [0] * len(processes)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    results = [seeded] + [json.loads(out.read_text()) for out in outs]
    with worker.open_memory(str(path)) as memory:
        done = judge(results, memory)
    print(f"processes: {done}")
    assert done["deletes"] > 0 and done["searches"] > 0


def test_threads_sharing_one_memory(tmp_path):
    path = tmp_path / "store.db"
    seeded = seed_store(path)
    clock = worker.Clock(multiprocessing.get_context("spawn").Value("q", 0))
    roles = [
        {"role": "writer", "name": "wt", "users": USERS, "max_ops": 300, "seed": 7},
        {"role": "deleter", "name": "dt", "users": USERS, "max_ops": 1000, "seed": 8},
        {"role": "searcher", "name": "st", "users": USERS, "max_ops": 5000, "seed": 9},
        {"role": "searcher", "name": "su", "users": USERS, "max_ops": 5000, "seed": 10},
    ]
    with worker.open_memory(str(path)) as memory:
        result = worker.run_roles(memory, roles, clock, 0.0, time.time() + SECONDS)
        done = judge([seeded, result], memory)
    print(f"threads: {done}")
    assert done["deletes"] > 0 and done["searches"] > 0
