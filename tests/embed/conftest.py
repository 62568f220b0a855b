"""Shared fixtures for the embedder tests: the real model (loaded once), a counting fake, a scripted server."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from memlane.embed import HashEmbedder, SentenceTransformerEmbedder


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    embedder.encode(["warm up"])
    return embedder


class CountingEmbedder:
    """A HashEmbedder that records every text it is asked to encode."""

    def __init__(self, dims: int = 32, fingerprint: str = "counting-v1", batch_size: int = 64, query_prefix: str = "") -> None:
        self._inner = HashEmbedder(dims)
        self.name = "counting"
        self.dims = dims
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.document_prefix = ""
        self.encoded: list[str] = []
        self.calls = 0

    def encode(self, texts: Sequence[str], purpose: str = "document") -> np.ndarray:
        self.calls += 1
        self.encoded.extend(texts)
        prefix = self.query_prefix if purpose == "query" else ""
        return self._inner.encode([prefix + text for text in texts])


@pytest.fixture
def counting() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
def make_counting() -> type[CountingEmbedder]:
    """The CountingEmbedder class, for tests that need several or non-default ones."""
    return CountingEmbedder


# --- a scripted OpenAI-compatible embeddings server ------------------------------------------------

Step = Callable[[dict[str, Any]], tuple[int, Any]]


def ok(dims: int = 4, reverse: bool = False) -> Step:
    """Answer with one `dims`-sized vector per input: [len(text), 1, 0, ...]; optionally listed in reverse."""

    def step(body: dict[str, Any]) -> tuple[int, Any]:
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 1.0] + [0.0] * (dims - 2)}
            for i, text in enumerate(body["input"])
        ]
        return 200, {"object": "list", "model": body["model"], "data": data[::-1] if reverse else data}

    return step


def fail(status: int, message: str) -> Step:
    """Answer with an HTTP error and an OpenAI-style error body."""
    return lambda body: (status, {"error": {"message": message, "type": "error"}})


def stall(seconds: float) -> Step:
    """Answer only after `seconds` (to provoke a client timeout)."""

    def step(body: dict[str, Any]) -> tuple[int, Any]:
        time.sleep(seconds)
        return ok()(body)

    return step


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def play(self, *steps: Step) -> None:
        self.script.extend(steps)

    ok = staticmethod(ok)
    fail = staticmethod(fail)
    stall = staticmethod(stall)


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        step = self.server.script.popleft() if self.server.script else fail(500, "script exhausted")
        status, payload = step(body)
        raw = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> ScriptedServer:
    srv = ScriptedServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
