"""The process tests/test_crash.py kills: works on a store until SIGKILL comes.

Run as `python _crash_child.py JOB.json`: the child imports memlane, then waits for JOB.json to
appear (so the parent can start the next child while the current one works). The job names the
store, the log, the live turns the parent knows of, the two hash models, a seed and what to do
first. Before each call the child logs a `begin` line and after the call returns an `ack` line
(JSON, flushed and fsynced), so the parent knows what was acknowledged and what was in flight
when the kill came. Once its op budget is spent the child only searches, so it is always alive
to be killed.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

from memlane import Memory, MemoryConfig
from memlane.embed import HashEmbedder
from memlane.memory import reindex

USERS = ("ana", "bo", "cy", "dee")
WORDS = ("garden", "bicycle", "lisbon", "invoice", "beagle", "piano", "harbour", "recipe", "tennis",
         "violin", "market", "winter", "coffee", "library", "mountain", "river")


class Log:
    """Append-only JSON lines, each one on disk before the next call starts."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")

    def write(self, **entry) -> None:
        entry["t"] = time.time()
        self.file.write(json.dumps(entry) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())


def config(folder: str) -> MemoryConfig:
    cfg = MemoryConfig()
    cfg.embedder.provider = "hash"
    cfg.embedder.cache_path = os.path.join(folder, "vectors.sqlite")
    return cfg


class LiveWrites(HashEmbedder):
    """A reindex model that, on the batch holding `marker`, runs `write` first: a write that lands
    between the reindex reading a batch and storing its vectors, as another process's would."""

    def __init__(self, dims: int, marker: str, write) -> None:
        super().__init__(dims=dims)
        self.marker, self.write = marker, write

    def encode(self, texts, purpose="document"):
        if self.write is not None and any(self.marker in t for t in texts):
            write, self.write = self.write, None
            write()
        return super().encode(texts, purpose)


class Child:
    def __init__(self, job: dict) -> None:
        self.job = job
        self.rng = random.Random(job["seed"])
        self.log = Log(job["log"])
        self.cfg = config(os.path.dirname(job["store"]))
        self.dims = job["dims"]
        self.turns: dict[str, str] = {t["id"]: t["user"] for t in job["turns"]}  # live turn id -> user
        self.serial = 0
        self.memory = Memory(job["store"], self.cfg, embedder=HashEmbedder(dims=self.dims))

    def marker(self) -> str:
        self.serial += 1
        return f"mk{self.job['run']:03d}x{self.serial:05d}"

    def text(self, user: str, marker: str) -> str:
        return f"{user} says {marker} about the {self.rng.choice(WORDS)} and the {self.rng.choice(WORDS)}"

    # -- ops -----------------------------------------------------------------------------------

    def add(self, turns: int | None = None) -> tuple[str, list[str]]:
        """Remember a session of 1-4 turns; (the last turn's marker, the turn ids)."""
        user = self.rng.choice(USERS)
        count = turns or self.rng.choice((1, 2, 3, 4))
        markers = [self.marker() for _ in range(count)]
        texts = [self.text(user, m) for m in markers]
        messages = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]
        self.log.write(phase="begin", op="add", user=user, texts=texts, markers=markers)
        records = self.memory.add(messages, user_id=user, session_date="2024-03-0%d" % (1 + count))
        ids = [r.id for r in records if r.node_type == "turn"]
        session = next((r.id for r in records if r.node_type == "session"), None)
        self.log.write(phase="ack", op="add", user=user, turns=ids, session=session, texts=texts)
        self.turns.update((t, user) for t in ids)
        return markers[-1], ids

    def update(self) -> None:
        if not self.turns:
            return
        memory_id = self.rng.choice(sorted(self.turns))
        user = self.turns[memory_id]
        marker = self.marker()
        text = self.text(user, marker)
        self.log.write(phase="begin", op="update", user=user, id=memory_id, text=text)
        self.memory.update(memory_id, text, user_id=user)
        self.log.write(phase="ack", op="update", user=user, id=memory_id, text=text)

    def delete(self, memory_id: str | None = None) -> None:
        if memory_id is None:
            if not self.turns:
                return
            memory_id = self.rng.choice(sorted(self.turns))
        user = self.turns.pop(memory_id)
        self.log.write(phase="begin", op="delete", user=user, id=memory_id)
        self.memory.delete(memory_id, user_id=user)
        self.log.write(phase="ack", op="delete", user=user, id=memory_id)

    def delete_all(self) -> None:
        user = self.rng.choice(USERS)
        self.log.write(phase="begin", op="delete_all", user=user)
        count = self.memory.delete_all(user)
        self.log.write(phase="ack", op="delete_all", user=user, count=count)
        self.turns = {t: u for t, u in self.turns.items() if u != user}

    def reindex(self, live: bool) -> None:
        """Swap to the other hash model. `live`: first add a one-turn memory (the newest row),
        then, while the reindex holds it in a batch, delete it and add another one, which SQLite
        gives the same rowid."""
        target = next(d for d in self.job["models"] if d != self.dims)
        embedder: HashEmbedder = HashEmbedder(dims=target)
        if live:
            newest, (victim,) = self.add(turns=1)

            def write() -> None:
                self.delete(victim)
                self.add(turns=1)

            embedder = LiveWrites(target, newest, write)
        self.log.write(phase="begin", op="reindex", dims=target, live=live)
        report = reindex(self.job["store"], embedder=embedder, batch_size=self.job["batch_size"])
        self.log.write(phase="ack", op="reindex", dims=target, resumed=report.resumed)
        self.memory.close()
        self.dims = target
        self.memory = Memory(self.job["store"], self.cfg, embedder=HashEmbedder(dims=target))

    def search(self) -> None:
        user = self.rng.choice(USERS)
        self.memory.search(f"what about the {self.rng.choice(WORDS)}", user_id=user, limit=5)

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        self.log.write(phase="ready", pid=os.getpid())
        first = self.job["first"]
        if first in ("reindex", "live"):
            self.reindex(live=first == "live")
        for _ in range(self.job["ops"]):
            crowded = len(self.turns) > self.job["max_turns"]
            op = self.rng.choices(
                ("add", "update", "delete", "delete_all", "reindex", "search"),
                weights=(10, 40, 45, 0.5, 2, 2) if crowded else (50, 20, 20, 0.5, 2, 7),
            )[0]
            if op == "reindex":
                self.reindex(live=self.rng.random() < 0.5)
            else:
                getattr(self, op)()
        self.log.write(phase="idle")
        while True:  # nothing more to write: wait for the kill
            self.search()


if __name__ == "__main__":
    while not os.path.exists(sys.argv[1]):  # the parent renames the job into place when it is our turn
        time.sleep(0.002)
    with open(sys.argv[1], encoding="utf-8") as f:
        Child(json.load(f)).run()
