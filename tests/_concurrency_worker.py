"""Workers for tests/test_concurrency.py: writers, deleters and searchers on one store.

Each role records what it did, so the test can judge the run afterwards: writers every add that
returned, deleters every delete that returned with a number from a shared counter taken after it
returned, searchers the counter's value before each search started and what the search found.
A search that started at or after a delete's number began after that delete was acknowledged.
Every exception is recorded, never raised, so one run reports every kind of failure it met.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import traceback

from memlane import Memory, MemoryConfig
from memlane.embed import HashEmbedder

DIMS = 64
WORDS = ("garden", "bicycle", "lisbon", "invoice", "beagle", "piano", "harbour", "recipe", "tennis",
         "violin", "market", "winter", "coffee", "library", "mountain", "river")
MARKER = re.compile(r"\bc[a-z]+n\d{4}t\d\b")  # one per turn: c, writer name, n, add number, t, turn number
_PARTS = re.compile(r"c[a-z]+n(\d{4})t(\d)")
_MAX_ERRORS = 50
# Each role does at least this many ops even past its stop time (for at most _GRACE more seconds),
# so that a slow start still leaves something to judge.
MIN_OPS = {"writer": 10, "deleter": 5, "searcher": 20}
_GRACE = 30.0


def config(folder: str) -> MemoryConfig:
    cfg = MemoryConfig()
    cfg.embedder.provider = "hash"
    cfg.embedder.model = f"hash-{DIMS}"
    cfg.embedder.cache_path = os.path.join(folder, "vectors.sqlite")
    return cfg


def open_memory(path: str) -> Memory:
    return Memory(path, config(os.path.dirname(path)), embedder=HashEmbedder(dims=DIMS))


def deletable(marker: str) -> bool:
    """The deleter takes the middle turn of every even-numbered add."""
    number, turn = _PARTS.fullmatch(marker).groups()
    return turn == "1" and int(number) % 2 == 0


def going(role: str, done: int, stop_at: float) -> bool:
    """Whether a role goes on after `done` ops: until its stop time, or its minimum of ops."""
    now = time.time()
    return now < stop_at or (done < MIN_OPS[role] and now < stop_at + _GRACE)


def all_records(memory: Memory, user: str) -> list:
    """Every memory of a user, page by page."""
    page = memory.get_all(user, limit=1000)
    records = list(page.records)
    while page.next_cursor is not None:
        page = memory.get_all(user, limit=1000, cursor=page.next_cursor)
        records += page.records
    return records


class Clock:
    """A logical clock shared by threads and processes (a multiprocessing Value), read and moved
    under its lock: a reading at or past a tick was taken after that tick."""

    def __init__(self, value) -> None:
        self.shared = value

    def tick(self) -> int:
        with self.shared.get_lock():
            self.shared.value += 1
            return self.shared.value

    def now(self) -> int:
        with self.shared.get_lock():
            return self.shared.value


class Recorder:
    """What the roles of one process did (lists are appended to from several threads)."""

    def __init__(self) -> None:
        self.adds: list[dict] = []
        self.deletes: list[dict] = []
        self.searches: list[dict] = []
        self.errors: list[str] = []

    def error(self, role: str) -> None:
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(f"{role}: {traceback.format_exc()}")

    def as_dict(self) -> dict:
        return {"adds": self.adds, "deletes": self.deletes, "searches": self.searches, "errors": self.errors}


def writer(memory: Memory, rec: Recorder, clock: Clock, stop_at: float, *, name: str, users: list[str],
           max_ops: int, seed: int) -> None:
    """Adds three-turn sessions, round robin over its users, each turn with its own marker word."""
    rng = random.Random(seed)
    for k in range(max_ops):
        if not going("writer", k, stop_at):
            return
        user = users[k % len(users)]
        markers = [f"c{name}n{k:04d}t{j}" for j in range(3)]
        texts = [f"{user} tells {m} about the {rng.choice(WORDS)} and the {rng.choice(WORDS)}" for m in markers]
        try:
            records = memory.add([{"role": ("user", "assistant")[j % 2], "content": t} for j, t in enumerate(texts)],
                                 user_id=user)
        except Exception:
            rec.error(f"writer {name} add #{k}")
            continue
        rec.adds.append({"user": user, "turns": [r.id for r in records if r.node_type == "turn"],
                         "session": next((r.id for r in records if r.node_type == "session"), None),
                         "texts": texts, "markers": markers})


def deleter(memory: Memory, rec: Recorder, clock: Clock, stop_at: float, *, name: str, users: list[str],
            max_ops: int, seed: int) -> None:
    """Finds its users' deletable turns with get_all and deletes them; numbers each delete after it returns."""
    done: set[str] = set()
    while going("deleter", len(done), stop_at) and len(done) < max_ops:
        for user in users:
            try:
                records = all_records(memory, user)
            except Exception:
                rec.error(f"deleter {name} get_all {user}")
                continue
            for record in records:
                markers = MARKER.findall(record.text)
                if record.node_type != "turn" or record.id in done or not deletable(markers[0]):
                    continue
                if not going("deleter", len(done), stop_at) or len(done) >= max_ops:
                    return
                done.add(record.id)
                try:
                    memory.delete(record.id, user_id=user)
                except Exception:
                    rec.error(f"deleter {name} delete {record.id}")
                    continue
                rec.deletes.append({"user": user, "id": record.id, "marker": markers[0], "seq": clock.tick()})
        time.sleep(0.005)


def searcher(memory: Memory, rec: Recorder, clock: Clock, stop_at: float, *, name: str, users: list[str],
             max_ops: int, seed: int) -> None:
    """Searches its users without pause: for a topic, or for a deletable marker word it saw
    recently (the deleter is likely to have deleted it meanwhile)."""
    rng = random.Random(seed)
    seen: dict[str, list[str]] = {user: [] for user in users}  # deletable markers found, by user
    for done in range(max_ops):
        if not going("searcher", done, stop_at):
            return
        user = rng.choice(users)
        recent = seen[user][-20:]
        query = rng.choice(recent) if recent and rng.random() < 0.6 else f"what about the {rng.choice(WORDS)}"
        start = clock.now()
        try:
            hits = memory.search(query, user_id=user, limit=10)
        except Exception:
            rec.error(f"searcher {name} search {query!r} for {user}")
            continue
        found = [[h.id, h.record.user_id, MARKER.findall(h.text)] for h in hits]
        rec.searches.append({"user": user, "query": query, "start": start, "hits": found})
        for _, owner, markers in found:
            for marker in markers:
                if owner == user and deletable(marker) and marker not in seen[user]:
                    seen[user].append(marker)

ROLES = {"writer": writer, "deleter": deleter, "searcher": searcher}


def run_roles(memory: Memory, roles: list[dict], clock: Clock, start_at: float, stop_at: float) -> dict:
    """Run each role in its own thread on the one `memory`, from `start_at` to `stop_at` (time.time())."""
    rec = Recorder()

    def run(role: dict) -> None:
        try:
            ROLES[role["role"]](memory, rec, clock, stop_at, **{k: v for k, v in role.items() if k != "role"})
        except Exception:
            rec.error(f"{role['role']} {role['name']} crashed")

    threads = [threading.Thread(target=run, args=(role,), name=role["name"]) for role in roles]
    time.sleep(max(0.0, start_at - time.time()))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return rec.as_dict()


def process_main(path: str, roles: list[dict], shared, start_at: float, stop_at: float, out: str) -> None:
    """A process of the test: its own Memory on the store, its roles as threads, its record in `out`."""
    try:
        with open_memory(path) as memory:
            result = run_roles(memory, roles, Clock(shared), start_at, stop_at)
    except Exception:
        result = {"adds": [], "deletes": [], "searches": [], "errors": [f"process: {traceback.format_exc()}"]}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
