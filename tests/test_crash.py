"""A process killed at any moment (SIGKILL) leaves a store that opens, passes SQLite's checks and
holds every acknowledged write, whole, and nothing half-written.

A child process (_crash_child.py) adds multi-turn sessions for several users, updates and deletes
turns, deletes users and reindexes to another hash model (with writes landing inside the reindex),
logging each call before it starts and after it returns. The parent kills it at a seeded random
moment, checks the store against what the log acknowledged (the one call in flight may have
happened or not, but wholly), then starts the child again on the same store. Kill moments are
seeded, so a run is reproducible up to the scheduler's timing; the checks hold for any moment.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from memlane import Memory
from memlane.embed import HashEmbedder
from memlane.ingest.build import session_vector

import _crash_child as child

CHILD = Path(child.__file__)
MODELS = (64, 48)  # the two hash models a store swaps between
KILLS_PER_SEED = 18
MAX_TURNS = 300  # above this the child deletes more than it adds
AHEAD = 3  # children started ahead of their turn (each imports memlane, then waits for its job)
BATCH = 2  # memories per reindex batch (each its own transaction): a reindex of the store takes ~0.1 s
MARKER = re.compile(r"mk\d{3}x\d{5}")


@dataclass
class Turn:
    user: str
    text: str
    session: str | None  # the id of its session memory, while there is one


@dataclass
class SessionMemory:
    user: str
    turns: list[str]  # ids of its turns that remain, in order


@dataclass
class Model:
    """What the store must hold: every acknowledged write, replayed from the child's logs."""

    dims: int
    turns: dict[str, Turn] = field(default_factory=dict)
    sessions: dict[str, SessionMemory] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)  # deleted or replaced marker -> its user

    def ids_of(self, user: str) -> set[str]:
        return ({t for t, turn in self.turns.items() if turn.user == user}
                | {s for s, session in self.sessions.items() if session.user == user})

    def add(self, user: str, turns: list[str], texts: list[str], session: str | None) -> None:
        for memory_id, text in zip(turns, texts):
            self.turns[memory_id] = Turn(user, text, session)
        if session is not None:
            self.sessions[session] = SessionMemory(user, list(turns))

    def update(self, memory_id: str, text: str) -> None:
        turn = self.turns[memory_id]
        self._forget_words(turn)
        turn.text = text

    def delete(self, memory_id: str) -> None:
        turn = self.turns.pop(memory_id)
        self._forget_words(turn)
        if turn.session is not None:
            session = self.sessions[turn.session]
            session.turns.remove(memory_id)
            if len(session.turns) < 2:  # Memory.delete drops a session left with one turn
                for rest in session.turns:
                    self.turns[rest].session = None
                del self.sessions[turn.session]

    def delete_all(self, user: str) -> None:
        for memory_id in [t for t, turn in self.turns.items() if turn.user == user]:
            self._forget_words(self.turns.pop(memory_id))
        self.sessions = {s: session for s, session in self.sessions.items() if session.user != user}

    def _forget_words(self, turn: Turn) -> None:
        for marker in MARKER.findall(turn.text):
            self.gone[marker] = turn.user

    def apply(self, entry: dict) -> None:
        """Replay one acknowledged call."""
        op = entry["op"]
        if op == "add":
            self.add(entry["user"], entry["turns"], entry["texts"], entry["session"])
        elif op == "update":
            self.update(entry["id"], entry["text"])
        elif op == "delete":
            self.delete(entry["id"])
        elif op == "delete_all":
            self.delete_all(entry["user"])
        elif op == "reindex":
            self.dims = entry["dims"]


@dataclass
class Snapshot:
    """The store as SQL sees it."""

    rows: dict[str, dict]  # memory id -> row
    active: list[tuple[str, int]]  # (table, dims) of every active index
    vectors: dict[int, bytes]  # rowid -> BLOB of the active index
    orphans: list[int]  # rowids in the active index with no memory


def snapshot(path: Path) -> Snapshot:
    """Open the file with sqlite3 directly: SQLite's own checks first, then every memory and vector."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # FTS5's own check, against the memories table too (rank 1): raises where they disagree.
        conn.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")
        active = conn.execute("SELECT name, dims FROM vector_indexes WHERE state = 'active'").fetchall()
        rows = {}
        for rowid, mid, user, node, text, embed_text, speaker, turn_index, metadata in conn.execute(
                "SELECT rowid, id, user_id, node_type, text, embed_text, speaker, turn_index, metadata FROM memories"):
            rows[mid] = dict(rowid=rowid, user=user, node=node, text=text, embed_text=embed_text, speaker=speaker,
                             turn_index=turn_index, metadata=json.loads(metadata))
        vectors, orphans = {}, []
        if len(active) == 1:
            table = active[0][0]
            vectors = dict(conn.execute(f"SELECT rowid, vec FROM {table}").fetchall())
            orphans = [r for (r,) in conn.execute(
                f"SELECT v.rowid FROM {table} v LEFT JOIN memories m ON m.rowid = v.rowid WHERE m.rowid IS NULL")]
        return Snapshot(rows, active, vectors, orphans)
    finally:
        conn.close()


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = []
    for i, line in enumerate(lines):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            assert i == len(lines) - 1, f"log {path} is corrupt at line {i + 1}: {line!r}"
    return entries


def replay(model: Model, entries: list[dict], snap: Snapshot) -> list[str]:
    """Apply the acknowledged calls of one run; settle each call in flight at the kill by what the
    store holds (it must have happened wholly or not at all). Returns the ops in flight."""
    open_calls: list[dict] = []
    for entry in entries:
        if entry["phase"] == "begin":
            open_calls.append(entry)
        elif entry["phase"] == "ack":
            begun = open_calls.pop()
            assert begun["op"] == entry["op"], (begun, entry)
            model.apply(entry)
    for begun in open_calls:  # innermost last: a write inside a reindex settles after the reindex
        settle(model, begun, snap)
    return [c["op"] for c in open_calls]


def settle(model: Model, begun: dict, snap: Snapshot) -> None:
    """Apply a call the kill cut off if, and only if, the store shows it done: wholly."""
    op, user = begun["op"], begun.get("user")
    if op == "add":
        found = {}
        for mid, row in snap.rows.items():
            if row["node"] == "turn":
                for marker in MARKER.findall(row["text"]):
                    if marker in begun["markers"]:
                        found[marker] = mid
        assert len(found) in (0, len(begun["markers"])), \
            f"an add of {len(begun['markers'])} turns was cut short: {len(found)} of them are stored"
        if found:
            turns = [found[m] for m in begun["markers"]]
            sessions = [mid for mid, row in snap.rows.items()
                        if row["node"] == "session" and row["metadata"].get("turn_ids") == turns]
            assert len(sessions) == (1 if len(turns) > 1 else 0), f"the add's turns are stored, its session {sessions}"
            model.add(user, turns, begun["texts"], sessions[0] if sessions else None)
    elif op == "update":
        stored = snap.rows.get(begun["id"], {}).get("text")
        assert stored in (model.turns[begun["id"]].text, begun["text"]), f"update left text {stored!r}"
        if stored == begun["text"]:
            model.update(begun["id"], begun["text"])
    elif op == "delete":
        if begun["id"] not in snap.rows:
            model.delete(begun["id"])
    elif op == "delete_all":
        if not any(row["user"] == user for row in snap.rows.values()):
            model.delete_all(user)
    elif op == "reindex":
        if snap.active and snap.active[0][1] == begun["dims"]:
            model.dims = begun["dims"]


def check_rows(model: Model, snap: Snapshot) -> None:
    """The memories are exactly the model's: no acknowledged write lost, no stray or partial one."""
    expected = set(model.turns) | set(model.sessions)
    stored = set(snap.rows)
    assert not expected - stored, f"acknowledged memories lost: {sorted(expected - stored)[:5]}"
    stray = [snap.rows[m]["text"] for m in sorted(stored - expected)[:5]]
    assert not stray, f"memories nobody acknowledged: {stray}"
    for mid, turn in model.turns.items():
        row = snap.rows[mid]
        assert (row["node"], row["user"], row["text"]) == ("turn", turn.user, turn.text), (mid, row, turn)
    for mid, session in model.sessions.items():
        row = snap.rows[mid]
        transcript = "\n".join(f"{snap.rows[t]['speaker']}: {model.turns[t].text}" for t in session.turns)
        assert (row["node"], row["user"], row["metadata"]["turn_ids"]) == ("session", session.user, session.turns)
        assert row["text"] == transcript, f"session {mid} does not match its turns"
    left = {m for row in snap.rows.values() for m in MARKER.findall(row["text"])} & set(model.gone)
    assert not left, f"deleted or replaced words still stored: {sorted(left)[:5]}"


_VECTORS: dict[tuple[int, str], np.ndarray] = {}  # (dims, text) -> the hash model's vector: texts recur across checks


def check_vectors(model: Model, snap: Snapshot) -> None:
    """One active index, of the model's dims; every memory has its vector there, and it is the
    vector of the memory's own text (a session's: the mean of its turns'), and nothing else is there."""
    assert [dims for _, dims in snap.active] == [model.dims], f"active indexes {snap.active}, not one of {model.dims}"
    dims = model.dims
    missing = [mid for mid, row in snap.rows.items() if row["rowid"] not in snap.vectors]
    assert not missing, f"{len(missing)} memories have no vector in the active index, e.g. {missing[:3]}"
    assert not snap.orphans, f"the active index holds vectors of rowids with no memory: {snap.orphans[:5]}"
    own = {mid: np.frombuffer(snap.vectors[row["rowid"]], dtype=np.float32)[:dims] for mid, row in snap.rows.items()}
    turns = sorted(model.turns)
    texts = [(dims, snap.rows[t]["embed_text"]) for t in turns]
    new = sorted({key for key in texts if key not in _VECTORS})
    if new:
        _VECTORS.update(zip(new, HashEmbedder(dims=dims).encode([text for _, text in new])))
    if turns:
        wrong = [t for t, key in zip(turns, texts) if not np.allclose(own[t], _VECTORS[key], atol=1e-5)]
        assert not wrong, (f"{len(wrong)} turns carry a vector that is not their text's, e.g. "
                           f"{[snap.rows[t]['text'] for t in wrong[:3]]}")
    for mid, session in model.sessions.items():
        expected = session_vector(np.stack([own[t] for t in session.turns]))
        assert np.allclose(own[mid], expected, atol=1e-4), f"session {mid}'s vector is not the mean of its turns'"


def check_api(memory: Memory, model: Model, rng: random.Random, recently_gone: list[str]) -> None:
    """Through the public API: each user's memories, gets, history, and searches that see only
    that user's memories, find live words and never deleted ones."""
    for user in child.USERS:
        ids = model.ids_of(user)
        listed, cursor = [], None
        while True:
            page = memory.get_all(user, limit=500, cursor=cursor)
            listed += [r.id for r in page.records]
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(listed) == sorted(ids), f"get_all({user!r}) differs from the acknowledged writes"
        live = sorted(t for t in model.turns if model.turns[t].user == user)
        for memory_id in rng.sample(live, min(1, len(live))):
            turn = model.turns[memory_id]
            assert memory.get(memory_id, user_id=user).text == turn.text
            assert memory.get(memory_id, user_id=next(u for u in child.USERS if u != user)) is None
            assert memory.history(memory_id, user_id=user)[0].event == "ADD"
            marker = MARKER.findall(turn.text)[0]
            hits = memory.search(marker, user_id=user, limit=10)
            assert any(marker in h.text for h in hits), f"search for live word {marker} of {user} missed it"
            assert all(h.record.user_id == user and h.id in ids for h in hits), "search returned a foreign memory"
    for marker in recently_gone:
        user = model.gone[marker]
        hits = memory.search(marker, user_id=user, limit=10)
        assert not [h.text for h in hits if marker in h.text], f"search still finds deleted word {marker}"
        assert all(h.record.user_id == user and h.id in model.ids_of(user) for h in hits), \
            "search returned a foreign or deleted memory"


def seed_store(path: Path, rng: random.Random) -> Model:
    """A store big enough that a reindex in batches of 8 takes a while."""
    model = Model(dims=MODELS[0])
    serial = 0
    with Memory(path, child.config(str(path.parent)), embedder=HashEmbedder(dims=MODELS[0])) as memory:
        for i in range(72):
            user = child.USERS[i % len(child.USERS)]
            texts = []
            for _ in range(rng.choice((2, 3, 4))):
                serial += 1
                texts.append(f"{user} says mk000x{serial:05d} about the {rng.choice(child.WORDS)}")
            records = memory.add([{"role": "user", "content": t} for t in texts], user_id=user)
            model.add(user, [r.id for r in records if r.node_type == "turn"], texts,
                      next(r.id for r in records if r.node_type == "session"))
    return model


class Run:
    """One child process: started ahead (it imports memlane, then waits for its job), given its
    job, killed. Starting the next child while the current one works keeps imports off the clock."""

    def __init__(self, folder: Path, number: int) -> None:
        self.log = folder / f"run{number:03d}.log"
        self.stderr = folder / f"run{number:03d}.err"
        self.job = folder / f"run{number:03d}.json"
        with open(self.stderr, "w") as err:
            self.proc = subprocess.Popen([sys.executable, str(CHILD), str(self.job)],
                                         stdout=subprocess.DEVNULL, stderr=err)
        self._read = 0  # how much of the log has been parsed
        self.entries: list[dict] = []

    def start(self, job: dict) -> None:
        draft = self.job.with_suffix(".tmp")
        draft.write_text(json.dumps({**job, "log": str(self.log)}))
        draft.replace(self.job)  # the child sees the whole job or none

    def wait_for(self, found, timeout: float = 30.0) -> None:
        """Until the child logs an entry that satisfies `found`; fail if it exits first."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            self._tail()
            if any(found(e) for e in self.entries[seen:]):
                return
            seen = len(self.entries)
            self._alive()
            time.sleep(0.002)
        pytest.fail(f"the child did not get there within {timeout} s:\n{self.stderr.read_text()[-3000:]}")

    def _tail(self) -> None:
        if not self.log.exists():
            return
        with open(self.log, "rb") as f:
            f.seek(self._read)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self._read += len(complete)
        self.entries += [json.loads(line) for line in complete.decode("utf-8").splitlines()]

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"the child exited with {self.proc.returncode} before being killed:\n"
                        f"{self.stderr.read_text()[-3000:]}")

    def kill(self) -> None:
        self._alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        """Whatever happened: no child left behind."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def reindex_seconds(entries: list[dict]) -> list[float]:
    begun = [e["t"] for e in entries if e["phase"] == "begin" and e["op"] == "reindex"]
    done = [e["t"] for e in entries if e["phase"] == "ack" and e["op"] == "reindex"]
    return [b - a for a, b in zip(begun, done)]


@pytest.mark.parametrize("seed", [11, 22, 33])
def test_a_killed_process_leaves_every_acknowledged_write_and_nothing_half_written(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "store.db"
    model = seed_store(path, rng)
    killed_in: Counter[str] = Counter()
    reindex_times = [0.1]  # seconds: how long the finished reindexes took
    runs = [Run(tmp_path, n) for n in range(1, min(AHEAD, KILLS_PER_SEED) + 1)]
    try:
        for number in range(1, KILLS_PER_SEED + 1):
            run = runs[number - 1]
            first = rng.choices(("ops", "reindex", "live"), weights=(3, 1, 1))[0]
            run.start({"store": str(path), "run": number, "seed": seed * 1000 + number, "dims": model.dims,
                       "models": MODELS, "first": first, "ops": 300, "batch_size": BATCH, "max_turns": MAX_TURNS,
                       "turns": [{"id": t, "user": turn.user} for t, turn in sorted(model.turns.items())]})
            if number + AHEAD <= KILLS_PER_SEED:
                runs.append(Run(tmp_path, number + AHEAD))
            # Kill at a random moment after the child opened the store, or into its first reindex.
            run.wait_for(lambda e: e["phase"] == "ready")
            if first == "ops":
                delay = rng.uniform(0.0, 0.5)
            else:
                run.wait_for(lambda e: e["phase"] == "begin" and e["op"] == "reindex")
                delay = rng.uniform(0.0, 1.0) * float(np.median(reindex_times))
            time.sleep(delay)
            run.kill()

            gone_before = set(model.gone)
            entries = read_log(run.log)
            reindex_times += reindex_seconds(entries)
            snap = snapshot(path)
            assert len(snap.active) == 1, f"run {number}: active indexes {snap.active}"
            with Memory(path, child.config(str(tmp_path)), embedder=HashEmbedder(dims=snap.active[0][1])) as memory:
                in_flight = replay(model, entries, snap)
                killed_in["/".join(in_flight) or "between calls"] += 1
                check_rows(model, snap)
                check_vectors(model, snap)
                recently_gone = sorted(set(model.gone) - gone_before)
                check_api(memory, model, rng, rng.sample(recently_gone, min(8, len(recently_gone))))
    finally:
        for run in runs:
            run.stop()
    print(f"seed {seed}: {KILLS_PER_SEED} kills, in flight: {dict(killed_in)}; {len(model.turns)} turns, "
          f"{len(model.sessions)} sessions at the end; a reindex took {np.median(reindex_times):.2f} s")
