"""The app's own plumbing: how many requests run at once, and how query parameters are read."""

from __future__ import annotations

import os
import threading
import time

import pytest
from fastapi.testclient import TestClient

from memlane.server.app import create_app


def _most_at_once(memory, method: str, request, calls: int = 6) -> int:
    """How many calls of `memory.<method>` ran at once while `calls` requests came together."""
    running, most, lock = [0], [0], threading.Lock()
    original = getattr(memory, method)

    def slow(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return original(*args, **kwargs)

    setattr(memory, method, slow)
    with TestClient(create_app(memory)) as client:
        answers = []

        def ask():
            answers.append(request(client).status_code)

        askers = [threading.Thread(target=ask) for _ in range(calls)]
        for t in askers:
            t.start()
        for t in askers:
            t.join()
    assert answers and all(status < 300 for status in answers) and len(answers) == calls
    return most[0]


def test_searches_run_at_most_search_threads_at_once_and_the_rest_wait_their_turn(memory):
    memory.config.server.search_threads, memory.config.server.threads = 2, 8
    assert _most_at_once(memory, "search", lambda c: c.post("/v1/memories/search",
                                                            json={"query": "cats", "user_id": "ana"})) == 2


def test_other_requests_run_at_most_server_threads_at_once_whatever_the_searches_take(memory):
    memory.config.server.search_threads, memory.config.server.threads = 1, 3
    assert _most_at_once(memory, "add", lambda c: c.post("/v1/memories",
                                                         json={"messages": "I like cats", "user_id": "ana"})) == 3


def test_searches_get_the_workers_share_of_the_cores_unless_told(memory):
    from memlane.config import ServerConfig
    from memlane.server.app import search_threads

    cores = len(os.sched_getaffinity(0))
    assert search_threads(ServerConfig(), 1) == cores
    assert search_threads(ServerConfig(), cores * 4) == 1  # never none
    assert search_threads(ServerConfig(search_threads=5), 2) == 5
    with pytest.raises(ValueError):
        ServerConfig(search_threads=0)


def test_a_server_that_owns_its_process_freezes_what_it_loaded_out_of_the_collector(memory):
    import gc

    before = gc.get_freeze_count()
    try:
        with TestClient(create_app(memory)):
            assert gc.get_freeze_count() == before  # a library user's process is left alone
        with TestClient(create_app(memory, owns_process=True)):
            assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


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


def test_a_key_known_in_memory_is_checked_on_the_event_loop_and_any_other_in_the_pool(memory):
    from memlane.server.auth import Principal

    ana = Principal(key_id="k1", role="tenant", users=("ana",))
    checked_in: list[str] = []

    def authenticate(token):  # may read the store: must not run on the event loop
        checked_in.append(threading.current_thread().name)
        return ana

    def known(token):
        return ana if token == "mlk_cached" else None

    app = create_app(memory, authenticate, authenticate_cached=known)
    with TestClient(app) as client:
        loop_thread = client.portal.call(lambda: threading.current_thread().name)
        headers = {"Authorization": "Bearer mlk_cached"}
        assert client.get("/v1/memories", params={"user_id": "ana"}, headers=headers).status_code == 200
        assert checked_in == []  # answered from memory
        headers = {"Authorization": "Bearer mlk_other"}
        assert client.get("/v1/memories", params={"user_id": "ana"}, headers=headers).status_code == 200
        assert len(checked_in) == 1 and checked_in[0] != loop_thread
