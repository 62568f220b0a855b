"""Operations: probes, Prometheus metrics, the access log, one error shape for the unexpected."""

from __future__ import annotations

import json
import logging

from _server_support import bearer
from fastapi.testclient import TestClient

SECRET_TEXT = "my bank PIN is 4921 and my passport number is X99"


def test_healthz_needs_no_key_and_no_store(client, memory):
    memory.close()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_answers_503_when_the_store_does_not(client, memory):
    assert client.get("/readyz").json() == {"status": "ok"}
    memory.close()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "store"


def test_metrics_count_requests_by_route_template_and_status(client, keys):
    headers = bearer(keys.ana)
    client.post("/v1/memories", json={"messages": "I play the cello"}, headers=headers)
    for memory_id in ("m1", "m2"):
        client.get(f"/v1/memories/{memory_id}", headers=headers)
    text = client.get("/metrics", headers=bearer(keys.admin)).text
    assert 'memlane_http_requests_total{method="GET",route="/v1/memories/{memory_id}",status="404"} 2.0' in text
    assert 'memlane_http_requests_total{method="POST",route="/v1/memories",status="201"} 1.0' in text
    assert 'memlane_http_request_duration_seconds_count{method="POST",route="/v1/memories"} 1.0' in text
    assert "m1" not in text  # the template, never the raw path
    assert "memlane_store_memories 1.0" in text and "memlane_store_users 1.0" in text


def test_metrics_count_jobs_by_state(client, keys, records):
    for i, state in enumerate(["running", "done", "done"]):
        records.put_service_record("job", f"j{i}", {"state": state})
    text = client.get("/metrics", headers=bearer(keys.admin)).text
    assert 'memlane_jobs{state="done"} 2.0' in text and 'memlane_jobs{state="running"} 1.0' in text


def test_metrics_need_an_admin_key(client, keys):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer(keys.ana)).status_code == 403


def test_the_access_log_has_one_json_line_per_request_without_tokens_bodies_or_queries(client, keys, ring, caplog):
    key_id = ring.list()[1].key_id  # the ana key
    with caplog.at_level(logging.INFO, logger="memlane.access"):
        client.post("/v1/memories", json={"messages": SECRET_TEXT}, headers=bearer(keys.ana))
        client.post("/v1/memories/search", json={"query": "passport number"}, headers=bearer(keys.ana))
        client.get("/v1/memories", params={"user_id": "secret-user-name"}, headers=bearer(keys.ana))
        client.get("/v1/memories", headers=bearer(keys.ana[:-1]))
    lines = [r.getMessage() for r in caplog.records if r.name == "memlane.access"]
    assert len(lines) == 4
    entries = [json.loads(line) for line in lines]
    assert [(e["method"], e["route"], e["status"]) for e in entries] == [
        ("POST", "/v1/memories", 201), ("POST", "/v1/memories/search", 200), ("GET", "/v1/memories", 403),
        ("GET", "/v1/memories", 401)]
    assert [e["key_id"] for e in entries] == [key_id, key_id, key_id, None]
    assert all(e["ms"] >= 0 for e in entries)
    logged = "\n".join(lines)
    for secret in (keys.ana, keys.ana.split("_", 2)[2], "4921", "passport", "secret-user-name", "Bearer"):
        assert secret not in logged


def test_an_unexpected_failure_is_a_500_in_the_one_error_shape(app, memory, keys, monkeypatch):
    def broken():
        raise RuntimeError("disk on fire at /secret/path")

    monkeypatch.setattr(memory, "stats", broken)
    response = TestClient(app, raise_server_exceptions=False).get("/v1/stats", headers=bearer(keys.admin))
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "internal"
    assert "/secret/path" not in response.text


def test_unknown_routes_and_methods_answer_in_the_one_error_shape(client):
    missing = client.get("/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "no_route"  # not "no such memory"
    wrong = client.put("/healthz")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "input"
    assert wrong.headers["allow"] == "GET"


def test_closing_the_app_closes_the_store(memory, ring, records):
    from memlane.server.app import create_app

    closed = []
    app = create_app(memory, ring.authenticate, on_shutdown=[lambda: closed.append("memory")])
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert closed == []
    assert closed == ["memory"]


def test_routes_are_labelled_by_their_template_without_path_convertors(client, keys, caplog):
    with caplog.at_level(logging.INFO, logger="memlane.access"):
        client.get("/v1/users/org1/ana/expired", headers=bearer(keys.org))
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "memlane.access"]
    assert line["route"] == "/v1/users/{user_id}/expired" and line["status"] == 200
