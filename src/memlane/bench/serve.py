"""Load benchmark of the REST server: a `memlane serve` process on loopback and N concurrent
clients for a bounded time, 90% searches and 10% adds over LoCoMo conversations (one user each,
each with a tenant key of its own). Reports throughput, latency percentiles and errors per
client count, checks that every acknowledged add is stored, and measures in-process `Memory`
with as many threads as the ceiling the server's HTTP layer is compared with."""

from __future__ import annotations

import http.client
import json
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from memlane.bench.machine import describe_machine
from memlane.bench.metrics import percentiles
from memlane.bench.report import model_label
from memlane.config import MemoryConfig
from memlane.errors import InputError, StoreError
from memlane.ingest.formats import Conversation

Status = Callable[[str], None]
SEARCH_SHARE = 0.9
SEED = 42
RAMP_S = 3.0  # untimed load before each timed phase


@dataclass
class Tally:
    """What one load phase's clients saw, merged across their threads."""

    latencies: list[float] = field(default_factory=list)  # ms, every request
    search_latencies: list[float] = field(default_factory=list)
    searches: int = 0
    adds: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (user, memory id) of each 201
    by_client: dict[int, list[float]] = field(default_factory=dict)  # ms of each client's requests
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def record(self, ms: float, user: str, added_ids: list[str] | None, client: int = 0, timed: bool = True) -> None:
        """One answered request of a client: a search (`added_ids` None) or an add and the ids it
        stored. An untimed one (the ramp before timing) only counts its acknowledged adds."""
        with self.lock:
            if not timed:
                self.acknowledged.extend((user, mid) for mid in added_ids or ())
                return
            self.latencies.append(ms)
            self.by_client.setdefault(client, []).append(ms)
            if added_ids is None:
                self.searches += 1
                self.search_latencies.append(ms)
            else:
                self.adds += 1
                self.acknowledged.extend((user, mid) for mid in added_ids)


NOTE = "Load test note {}: the blue kettle is in the cupboard."


def run_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(config: MemoryConfig, folder: Path) -> Path:
    """The config as a TOML file for the server process: one table per section, unset fields left
    out (JSON's strings, numbers, booleans and lists of them are TOML values as they are)."""
    lines = []
    for section, fields in config.model_dump(mode="json").items():
        lines.append(f"[{section}]")
        lines += [f"{name} = {json.dumps(value)}" for name, value in fields.items() if value is not None]
    path = folder / "serve-config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    MemoryConfig.load(path, env={})  # the server reads back this config, or the benchmark stops here
    return path


def tenant_key(store: str, config_path: Path, user: str) -> str:
    """A tenant key for `user`, made as an operator makes one: `memlane keys create` (its token
    alone on stdout)."""
    made = subprocess.run([sys.executable, "-m", "memlane.cli", "keys", "create", "--role", "tenant", "--users", user,
                           "--label", "bench serve", "--store", store, "--config", str(config_path)],
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        raise StoreError(f"memlane keys create failed: {made.stderr.strip()[-500:]}")
    return made.stdout.strip()


class ServerProcess:
    """`memlane serve` in a child process on 127.0.0.1, stopped (gracefully) on exit."""

    def __init__(self, store: str, config_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "memlane.cli", "serve", "--store", store, "--config", str(config_path),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> "ServerProcess":
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StoreError(f"the server stopped at start: {self._log_tail()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StoreError(f"the server was not ready in 120 s: {self._log_tail()}")

    def __exit__(self, *exc) -> None:
        self.process.terminate()  # SIGTERM: uvicorn finishes requests in flight, then exits
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    def _log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-2000:]


def warm_up(url: str, tokens: dict[str, str], questions: dict[str, list[str]], now: dict[str, str],
            rounds: int = 4) -> None:
    """A few untimed searches per user on one connection, so the server has loaded the model and
    built its users' search arrays; each phase's ramp then warms every worker under load (a cold
    start is not what a steady load measures)."""
    import httpx

    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(rounds):
            for user, token in tokens.items():
                http.post("/v1/memories/search", headers={"Authorization": f"Bearer {token}"},
                          json={"query": questions[user][0], "limit": 10, "now": now[user]})


class LoadConnection:
    """One client's keep-alive connection, on the standard library's HTTP client: about a third
    of httpx's CPU per request. The clients share the server's cores, so every millisecond they
    spend is one the server under test does not get."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def post(self, path: str, token: str, body: dict) -> tuple[int, Any]:
        """(status, parsed JSON body) of one POST; OSError or HTTPException when the exchange fails."""
        if self._connection is None:
            self._connection = http.client.HTTPConnection(*self._address, timeout=self._timeout)
        try:
            self._connection.request("POST", path, body=json.dumps(body).encode("utf-8"),
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
            response = self._connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()  # a fresh connection for the next request
            raise
        return response.status, json.loads(payload) if payload else None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def http_phase(url: str, tokens: dict[str, str], questions: dict[str, list[str]], clients: int, seconds: float,
               now: dict[str, str], ramp: float = 0.0) -> Tally:
    """`clients` threads, each with its own connection, for `ramp` seconds untimed (connections
    settle over the workers, caches fill), then `seconds` timed: 90% searches, 10% adds."""
    tally = Tally()
    users = sorted(tokens)
    timed_from = time.monotonic() + ramp
    stop = timed_from + seconds

    timed_from_perf = time.perf_counter() + (timed_from - time.monotonic())

    def client(number: int) -> None:
        rng = random.Random(SEED + number)
        connection = LoadConnection(url)
        try:
            while time.monotonic() < stop:
                user = rng.choice(users)
                searching = rng.random() < SEARCH_SHARE
                started = time.perf_counter()
                try:
                    if searching:
                        status, body = connection.post("/v1/memories/search", tokens[user], {
                            "query": rng.choice(questions[user]), "limit": 10, "now": now[user]})
                    else:
                        status, body = connection.post("/v1/memories", tokens[user],
                                                       {"messages": NOTE.format(uuid.uuid4().hex)})
                except (OSError, http.client.HTTPException, ValueError) as exc:
                    tally.error(type(exc).__name__)
                    continue
                ms = (time.perf_counter() - started) * 1000
                if status >= 300:
                    tally.error(f"HTTP {status}")
                    continue
                tally.record(ms, user, None if searching else [r["id"] for r in body["results"]], number,
                             timed=started >= timed_from_perf)
        finally:
            connection.close()

    run_threads(clients, client)
    return tally


def in_process_phase(memory, users: list[str], questions: dict[str, list[str]], threads: int, seconds: float,
                     now: dict[str, str], ramp: float = 0.0) -> Tally:
    """The same mix on `Memory` itself, from `threads` threads (after the same untimed ramp): the
    ceiling without HTTP."""
    tally = Tally()
    timed_from = time.perf_counter() + ramp
    stop = time.monotonic() + ramp + seconds

    def worker(number: int) -> None:
        rng = random.Random(SEED + 1000 + number)
        while time.monotonic() < stop:
            user = rng.choice(users)
            searching = rng.random() < SEARCH_SHARE
            started = time.perf_counter()
            added = None
            if searching:
                memory.search(rng.choice(questions[user]), user_id=user, limit=10, now=now[user])
            else:
                added = [r.id for r in memory.add(NOTE.format(uuid.uuid4().hex), user_id=user)]
            tally.record((time.perf_counter() - started) * 1000, user, added, number, timed=started >= timed_from)

    run_threads(threads, worker)
    return tally


def summary(tally: Tally, seconds: float, clients: int, where: str) -> dict:
    return {"where": where, "clients": clients, "seconds": seconds,
            "requests": len(tally.latencies), "searches": tally.searches, "adds": tally.adds,
            "throughput_rps": len(tally.latencies) / seconds, "searches_per_s": tally.searches / seconds,
            "latency_ms": percentiles(tally.latencies), "search_latency_ms": percentiles(tally.search_latencies),
            "errors": dict(tally.errors), "error_count": sum(tally.errors.values()),
            "acknowledged_memories": len(tally.acknowledged),  # the untimed ramp's adds too
            "client_mean_ms": _client_means(tally)}


def _client_means(tally: Tally) -> dict[str, float]:
    """The fastest and the slowest client's mean latency: far apart when some clients' connections
    sit on a busier worker than others'."""
    means = [sum(v) / len(v) for v in tally.by_client.values() if v]
    return {"fastest": min(means), "slowest": max(means)} if means else {"fastest": 0.0, "slowest": 0.0}


def missing_writes(store_location: str, config: MemoryConfig, acknowledged: list[tuple[str, str]]) -> int:
    """How many acknowledged adds the store does not hold (read after the server stopped)."""
    from memlane.store import open_store

    store = open_store(store_location, create=False)
    try:
        by_user: dict[str, list[str]] = {}
        for user, mid in acknowledged:
            by_user.setdefault(user, []).append(mid)
        found = sum(len(store.get_many(user, ids)) for user, ids in by_user.items())
    finally:
        store.close()
    return len(acknowledged) - found


def run_serve_benchmark(
    config: MemoryConfig,
    conversations: list[Conversation],
    *,
    clients: tuple[int, ...] = (8, 32, 128),
    seconds: float = 20.0,
    store: str | None = None,
    two_workers: bool = True,
    ramp: float = RAMP_S,
    status: Status = lambda _: None,
) -> dict:
    """Ingest each conversation as one user of a scratch store (`store`: a postgresql:// URL
    for a schema of that database, else a temporary SQLite file), make a tenant key per user,
    then load a server with each client count; then two worker processes on the store; then the
    same mix in-process."""
    from memlane.memory import Memory
    from memlane.store import backend_name, scratch_store

    if not conversations:
        raise InputError("the serve benchmark needs conversations and got none", field="conversations",
                         fix="pass LoCoMo files with --data")
    if seconds <= 0 or not clients or min(clients) < 1:
        raise InputError("clients must be positive counts and seconds positive", field="clients",
                         fix="pass e.g. --clients 8,32,128 --seconds 20")
    questions = {c.conversation_id: [q["question"] for q in c.questions] for c in conversations}
    now = {c.conversation_id: max(s.date for s in c.sessions if s.date) for c in conversations}
    phases: list[dict] = []
    with scratch_store(store, "serve") as location, tempfile.TemporaryDirectory(prefix="memlane-serve-") as folder:
        status("ingesting")
        with Memory(location, config) as memory:
            started = time.perf_counter()
            for c in conversations:
                memory.ingest(c.sessions, user_id=c.conversation_id)
            ingest_seconds = time.perf_counter() - started
            memories_before = memory.stats().memories
        config_path = write_config(config, Path(folder))
        tokens = {user: tenant_key(location, config_path, user) for user in questions}
        acknowledged: list[tuple[str, str]] = []
        with ServerProcess(location, config_path) as server:
            warm_up(server.url, tokens, questions, now)
            for count in clients:
                status(f"{count} clients for {seconds:.0f} s")
                tally = http_phase(server.url, tokens, questions, count, seconds, now, ramp=ramp)
                acknowledged += tally.acknowledged
                phases.append(summary(tally, seconds, count, "server, 1 worker"))
        if two_workers:
            count = 32 if 32 in clients else clients[0]
            status(f"two worker processes, {count} clients")
            with ServerProcess(location, config_path, workers=2) as server:
                warm_up(server.url, tokens, questions, now)
                tally = http_phase(server.url, tokens, questions, count, seconds, now, ramp=ramp)
            acknowledged += tally.acknowledged
            phases.append(summary(tally, seconds, count, "server, 2 workers"))
        lost = missing_writes(location, config, acknowledged)
        status("in-process ceiling")
        with Memory(location, config) as memory:
            for user in questions:  # untimed, as for the server
                memory.search(questions[user][0], user_id=user, limit=10, now=now[user])
            for count in sorted({min(clients), 32} & set(clients) or {min(clients)}):
                tally = in_process_phase(memory, sorted(questions), questions, count, seconds, now, ramp=ramp)
                phases.append(summary(tally, seconds, count, "in-process Memory"))
            memories_after = memory.stats().memories
    adds = sum(p["adds"] for p in phases if p["where"].startswith("server"))
    return {"dataset": "serve", "store": backend_name(store), "users": len(questions),
            "memories_before": memories_before, "memories_after": memories_after, "ingest_seconds": ingest_seconds,
            "acknowledged_adds": len(acknowledged), "server_add_calls": adds, "lost_writes": lost,
            "search_share": SEARCH_SHARE, "ramp_s": ramp, "seconds": seconds, "phases": phases, "machine": describe_machine(),
            "config": config.model_dump(mode="json", exclude={"llm": {"api_key"}, "embedder": {"api_key"}})}


def serve_markdown(result: dict, command: str) -> str:
    m = result["machine"]
    lines = [
        "# serve: the REST server under load",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}. "
        f"Store: {result['store']}. Embedding model: {model_label(result)}.",
        f"{result['users']} users (one LoCoMo conversation each, a tenant key each), "
        f"{result['memories_before']:,} memories before the load; {int(result['search_share'] * 100)}% searches, "
        f"the rest adds.",
        "",
        f"Each phase runs {result.get('ramp_s', 0):g} s untimed at its load, then {result.get('seconds', 0):g} s timed.",
        "",
        "| where | clients | requests/s | searches/s | search p50 / p95 / p99 ms | all p99 ms | "
        "client mean ms, fastest / slowest | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in result["phases"]:
        s = p["search_latency_ms"]
        spread = p.get("client_mean_ms") or {"fastest": 0.0, "slowest": 0.0}
        lines.append(f"| {p['where']} | {p['clients']} | {p['throughput_rps']:.1f} | {p['searches_per_s']:.1f} | "
                     f"{s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f} | {p['latency_ms']['p99']:.1f} | "
                     f"{spread['fastest']:.0f} / {spread['slowest']:.0f} | {p['error_count']} |")
    lines += ["", f"Acknowledged adds: {result['acknowledged_adds']:,} memories; missing from the store after the "
                  f"servers stopped: {result['lost_writes']}.", ""]
    return "\n".join(lines)
