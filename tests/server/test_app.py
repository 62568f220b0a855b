"""The app's own plumbing: how many requests run at once, and how query parameters are read."""

from __future__ import annotations

import threading
import time

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient

from memlane.server.app import create_app


def test_requests_run_at_most_server_threads_at_once_and_the_rest_wait_their_turn(memory):
    memory.config.server.threads = 2
    running, most, lock = [0], [0], threading.Lock()
    search = memory.search

    def slow_search(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return search(*args, **kwargs)

    memory.search = slow_search
    with TestClient(create_app(memory)) as client:
        assert client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) == 2
        answers = []

        def ask():
            answers.append(client.post("/v1/memories/search", json={"query": "cats", "user_id": "ana"}).status_code)

        askers = [threading.Thread(target=ask) for _ in range(6)]
        for t in askers:
            t.start()
        for t in askers:
            t.join()
    assert answers == [200] * 6 and most[0] == 2


class _CountingEmbedder:
    """A hashing embedder that counts its calls, or fails each one when `broken`."""

    def __init__(self, broken: bool = False) -> None:
        from memlane.embed import HashEmbedder

        self.inner, self.broken, self.calls = HashEmbedder(dims=64), broken, []
        self.name, self.dims, self.fingerprint = self.inner.name, self.inner.dims, self.inner.fingerprint

    def encode(self, texts, purpose="document"):
        self.calls.append(purpose)
        if self.broken:
            raise RuntimeError("model files unreadable")
        return self.inner.encode(texts, purpose)


@pytest.mark.parametrize("broken", [False, True])
def test_the_server_loads_the_model_before_its_first_request_and_starts_even_if_it_cannot(tmp_path, config, ring,
                                                                                           broken, caplog):
    from memlane import Memory

    embedder = _CountingEmbedder(broken)
    with Memory(tmp_path / "s.db", config, embedder=embedder) as memory:
        app = create_app(memory, ring.authenticate)
        assert embedder.calls == []
        with caplog.at_level("WARNING", logger="memlane.server"), TestClient(app) as client:
            assert embedder.calls == ["query"]  # during start-up, before any request
            assert client.get("/healthz").status_code == 200
        assert ("did not load at start (RuntimeError: model files unreadable)" in caplog.text) == broken
