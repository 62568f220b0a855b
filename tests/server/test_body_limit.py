"""An oversized request body is refused with 413 before it is read whole; smaller ones pass."""

import json

from fastapi.testclient import TestClient

from memlane import Memory
from memlane.embed import HashEmbedder
from memlane.server.app import create_app


def small_limit_app(tmp_path, config):
    config.limits.max_request_bytes = 4096
    memory = Memory(tmp_path / "limit.db", config, embedder=HashEmbedder(dims=256))
    return memory, TestClient(create_app(memory))


def test_a_body_past_the_limit_is_refused_by_its_declared_length(tmp_path, config):
    memory, client = small_limit_app(tmp_path, config)
    big = json.dumps({"messages": "x" * 5000, "user_id": "ana"})
    refused = client.post("/v1/memories", content=big, headers={"content-type": "application/json"})
    assert refused.status_code == 413
    assert refused.json()["error"] == {"type": "input", "message": "the request body is larger than 4,096 bytes",
                                       "field": "body", "fix": refused.json()["error"]["fix"]}
    assert "max_request_bytes" in refused.json()["error"]["fix"]
    assert memory.get_all("ana").records == []  # nothing was stored
    memory.close()


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(tmp_path, config):
    memory, client = small_limit_app(tmp_path, config)
    chunks = (b'{"messages": "' + b"y" * 1000 for _ in range(8))  # no Content-Length: sent chunked
    refused = client.post("/v1/memories", content=chunks, headers={"content-type": "application/json"})
    assert refused.status_code == 413 and refused.json()["error"]["field"] == "body"
    ok = client.post("/v1/memories", json={"messages": "I keep bees.", "user_id": "ana"})
    assert ok.status_code == 201 and [r.text for r in memory.get_all("ana").records] == ["I keep bees."]
    memory.close()
