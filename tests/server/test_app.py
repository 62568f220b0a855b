"""The app's own plumbing: how many requests run at once, and how query parameters are read."""

from __future__ import annotations

import threading
import time

import anyio.to_thread
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
