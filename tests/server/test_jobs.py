"""Jobs over REST: fine-tuning (gate accepted and refused), reindex, import, cancel, one job per
store, searches during a job, and recovery after a server died mid-job."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from _server_support import bearer, free_port
from _support import DATA, make_tiny_checkpoint, tiny_config
from fastapi.testclient import TestClient

from memlane import Memory, MemoryConfig
from memlane.ingest.formats import load_conversations
from memlane.server.app import create_app
from memlane.server.job_routes import install_jobs
from memlane.server.jobs import FINISHED, LOCK, LOCK_ID, Job, LiveMemory, Outcome, default_work_dir
from memlane.store import open_store
from memlane.transfer import export_memories
from memlane.tune.labels import locomo_labels, write_label_rows

TRAIN_WELL = {"synthetic": True, "epochs": 4, "learning_rate": 3e-3}  # lifts the tiny model's NDCG@10 by ~0.2


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def tiny(tmp_path, tiny_checkpoint):
    """(store path, config, config file, eval labels): the first LoCoMo sessions embedded by a tiny model."""
    conversation = load_conversations(DATA / "locomo" / "26.json")[0]
    conversation.sessions = conversation.sessions[:4]
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    path = tmp_path / "store.db"
    with Memory(path, cfg) as memory:
        memory.ingest(conversation.sessions, user_id="26")
    labels = tmp_path / "eval.jsonl"
    write_label_rows(labels, locomo_labels([conversation]))
    config_file = tmp_path / "memlane.toml"
    config_file.write_text(f'[embedder]\nmodel = "{cfg.embedder.model}"\ncache_path = "{cfg.embedder.cache_path}"\n')
    return path, cfg, config_file, labels


@pytest.fixture
def serve():
    """serve(memory, work_dir, **options): a client of an app with jobs; the job managers stop after the test."""
    managers = []

    def start(memory, work_dir, **options) -> TestClient:
        app = create_app(memory)
        managers.append(install_jobs(app, memory, work_dir, **options))
        return TestClient(app)

    yield start
    for manager in managers:
        manager.close()


def wait(client, job_id: str, *, until=FINISHED, timeout: float = 60.0, each=None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/admin/jobs/{job_id}").json()
        if job["state"] in until:
            return job
        if each:
            each(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.02)


def search(client, user_id="26") -> list:
    response = client.post("/v1/memories/search", json={"query": "What did Caroline paint?", "user_id": user_id})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def index_model(client) -> str:
    return client.get("/v1/stats").json()["index"]["model"]


# -- fine-tuning ------------------------------------------------------------------------------------


def test_a_fine_tune_the_gate_accepts_is_swapped_in_while_searches_go_on(tiny, tmp_path, serve):
    path, cfg, config_file, labels = tiny
    with Memory(path, cfg) as memory:
        client = serve(memory, tmp_path / "jobs", config_path=config_file)
        before = index_model(client)
        response = client.post("/admin/memory/fine-tune", json={"eval_queries": str(labels), **TRAIN_WELL})
        assert response.status_code == 202 and response.json()["state"] in ("queued", "running")
        assert response.headers["location"] == f"/admin/jobs/{response.json()['id']}"
        answered_while_running = []

        def during(job):
            if job["state"] == "running":
                answered_while_running.append(bool(search(client)))

        job = wait(client, response.json()["id"], each=during)
        assert job["state"] == "succeeded", job["error"]
        assert answered_while_running and all(answered_while_running)
        gate = job["gate"]
        assert gate["passed"] and gate["after"]["ndcg@10"] > gate["before"]["ndcg@10"]
        ndcg = gate["deltas"]["ndcg@10"]
        assert ndcg["ci_low"] <= ndcg["delta"] <= ndcg["ci_high"] and ndcg["delta"] > 0
        for stage in ("examples", "mining", "training", "gate", "deploy", "swap"):
            assert f"stage: {stage}" in job["log"]
        checkpoint = gate["checkpoint"]
        assert checkpoint.startswith(str(tmp_path / "jobs" / "models")) and os.path.isdir(checkpoint)
        assert job["result"]["deployed"]["model"] == checkpoint == index_model(client) != before
        assert search(client)  # the server now searches with the fine-tuned model
        assert not os.listdir(tmp_path / "jobs" / "scratch")
    restarted = MemoryConfig.load(config_file, env={})  # recorded, so a restarted server opens the store
    assert restarted.fine_tune.enabled and restarted.fine_tune.checkpoint_path == checkpoint
    with Memory(path, restarted) as memory:
        assert memory.search("painting", user_id="26")


def test_a_fine_tune_the_gate_refuses_changes_nothing(tiny, tmp_path, serve):
    path, cfg, config_file, labels = tiny
    written = config_file.read_text()
    with Memory(path, cfg) as memory:
        client = serve(memory, tmp_path / "jobs", config_path=config_file)
        before = index_model(client)
        response = client.post("/admin/memory/fine-tune",
                               json={"eval_queries": str(labels), "min_gain": 0.5, **TRAIN_WELL})
        job = wait(client, response.json()["id"])
        assert job["state"] == "refused", job["error"]
        assert not job["gate"]["passed"] and job["gate"]["checkpoint"] is None
        assert 0 < job["gate"]["deltas"]["ndcg@10"]["delta"] < 0.5 and "requires" in job["gate"]["reason"]
        assert index_model(client) == before and search(client)
        assert not (tmp_path / "jobs" / "models").exists() and not os.listdir(tmp_path / "jobs" / "scratch")
    assert config_file.read_text() == written


def test_cancelling_a_running_fine_tune_releases_the_store(tiny, tmp_path, serve):
    path, cfg, _, labels = tiny
    with Memory(path, cfg) as memory:
        client = serve(memory, tmp_path / "jobs")
        job_id = client.post("/admin/memory/fine-tune", json={"eval_queries": str(labels), **TRAIN_WELL}).json()["id"]
        wait(client, job_id, until={"running"})
        response = client.delete(f"/admin/jobs/{job_id}")
        assert response.status_code == 202 and response.json()["cancel_requested"]
        job = wait(client, job_id)
        assert job["state"] == "cancelled" and job["gate"] is None
        assert not (tmp_path / "jobs" / "scratch" / job_id).exists()
        assert client.delete(f"/admin/jobs/{job_id}").status_code == 409  # it has ended
        again = client.post("/admin/memory/reindex", json={})  # the lock was released
        assert again.status_code == 202 and wait(client, again.json()["id"])["state"] == "succeeded"


# -- reindex and import ----------------------------------------------------------------------------


def test_a_reindex_with_another_model_swaps_it_in(tiny, tmp_path, tiny_checkpoint, serve):
    path, cfg, _, _ = tiny
    other = tmp_path / "other-model"
    shutil.copytree(tiny_checkpoint, other)
    (other / "marker.json").write_text("{}")  # other weights digest: another model to memlane
    with Memory(path, cfg) as memory:
        client = serve(memory, tmp_path / "jobs")
        job = wait(client, client.post("/admin/memory/reindex", json={"model": str(other)}).json()["id"])
        assert job["state"] == "succeeded", job["error"]
        assert job["result"]["model"] == str(other.resolve()) == index_model(client)
        assert job["result"]["memories"] == client.get("/v1/stats").json()["memories"]
        assert search(client)


def test_an_import_job_adds_an_export_while_searches_go_on(memory, config, tmp_path, serve):
    memory.add("I adopted a beagle named Biscuit.", user_id="ana")
    with Memory(tmp_path / "other.db", config) as other:
        other.add("My sister Maria lives in Lisbon.", user_id="bo")
        export_memories(other, tmp_path / "bo.jsonl", vectors=True)
    client = serve(memory, tmp_path / "jobs")
    job = wait(client, client.post("/admin/memory/import", json={"path": str(tmp_path / "bo.jsonl")}).json()["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["result"]["memories"] == 1 and job["result"]["users"] == 1
    assert search(client, "bo") and search(client, "ana")
    failed = wait(client, client.post("/admin/memory/import", json={"path": str(tmp_path / "bo.jsonl")}).json()["id"])
    assert failed["state"] == "failed" and "already" in failed["error"]  # all or nothing: the ids exist


# -- one job at a time, searches meanwhile ------------------------------------------------------------


def blocking_job(release: threading.Event):
    def run(ctx):
        ctx.stage("waiting")
        for step in range(1, 10_000):
            ctx.progress(step, 10_000)
            if release.wait(0.01):
                return Outcome({"steps": step})
        return Outcome({})

    return run


def test_one_job_changes_a_store_at_a_time_and_searches_are_answered_meanwhile(memory, tmp_path, serve):
    memory.add("I adopted a beagle named Biscuit.", user_id="ana")
    client = serve(memory, tmp_path / "jobs")
    release = threading.Event()
    job = client.app.state.jobs.submit("reindex", {"model": None}, blocking_job(release))
    running = wait(client, job.id, until={"running"})
    assert running["stage"] == "waiting"
    deadline = time.monotonic() + 5
    while not (client.get(f"/admin/jobs/{job.id}").json()["progress"] or {}).get("eta_seconds"):
        assert time.monotonic() < deadline
    for route, body in (("reindex", {}), ("import", {"path": __file__}), ("fine-tune",
                        {"eval_queries": __file__, "synthetic": True})):
        refused = client.post(f"/admin/memory/{route}", json=body)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["type"] == "conflict" and job.id in refused.json()["error"]["message"]
    assert search(client, "ana")
    assert client.post("/v1/memories", json={"messages": "Biscuit likes the beach.", "user_id": "ana"}).status_code == 201
    release.set()
    assert wait(client, job.id)["state"] == "succeeded"
    listed = client.get("/admin/jobs").json()["results"]
    assert [j["id"] for j in listed] == [job.id]
    assert client.post("/admin/memory/reindex", json={}).status_code == 202


@pytest.mark.parametrize("ending", ["succeeded", "cancelled"])
def test_a_job_is_seen_ended_only_once_its_lock_and_scratch_are_gone(memory, tmp_path, serve, ending):
    """A client that sees a job end may start the next one at once: the store's lock and the
    scratch folder must already be gone when the ended state is visible."""
    client = serve(memory, tmp_path / "jobs")
    manager = client.app.state.jobs
    release, seen_at_release = threading.Event(), []
    releasing = manager._release_lock

    def release_lock(job_id):
        seen_at_release.append((manager.get(job_id).state, Path(manager.get(job_id).scratch).exists()))
        releasing(job_id)

    manager._release_lock = release_lock
    job = manager.submit("reindex", {"model": None}, blocking_job(release))
    wait(client, job.id, until={"running"})
    if ending == "cancelled":
        assert client.delete(f"/admin/jobs/{job.id}").status_code == 202
    else:
        release.set()
    assert wait(client, job.id)["state"] == ending
    assert seen_at_release == [("running", False)]  # released while still running, its folder gone
    assert client.post("/admin/memory/reindex", json={}).status_code == 202


def test_requests_are_checked_before_a_job_starts(memory, tmp_path, serve):
    client = serve(memory, tmp_path / "jobs")
    cases = [
        ("fine-tune", {"eval_queries": str(tmp_path / "missing.jsonl"), "synthetic": True}, "eval_queries"),
        ("fine-tune", {"eval_queries": __file__}, "labels"),  # no source of training queries
        ("fine-tune", {"eval_queries": __file__, "synthetic": True, "labels": __file__}, "labels"),
        ("fine-tune", {"eval_queries": __file__, "synthetic": True, "epochs": "3"}, "epochs"),
        ("import", {"path": str(tmp_path)}, "path"),
        ("reindex", {"model": "x", "provider": "http"}, "provider"),
    ]
    for route, body, field in cases:
        response = client.post(f"/admin/memory/{route}", json=body)
        assert response.status_code == 422 and response.json()["error"]["field"] == field, (body, response.text)
    assert client.get("/admin/jobs").json() == {"results": []}
    assert client.get("/admin/jobs/nope").status_code == 404
    assert client.delete("/admin/jobs/nope").status_code == 404


def test_jobs_are_for_admins(app, memory, keys, tmp_path):
    manager = install_jobs(app, memory, tmp_path / "jobs")
    client = TestClient(app)
    try:
        for method, route in (("post", "/admin/memory/reindex"), ("get", "/admin/jobs"), ("get", "/admin/jobs/x"),
                              ("delete", "/admin/jobs/x")):
            kwargs = {"json": {}} if method == "post" else {}
            assert getattr(client, method)(route, headers=bearer(keys.ana), **kwargs).status_code == 403
            assert getattr(client, method)(route, **kwargs).status_code == 401
        assert client.get("/admin/jobs", headers=bearer(keys.admin)).status_code == 200
    finally:
        manager.close()


def test_a_swap_waits_for_calls_in_flight_and_holds_new_ones(memory):
    live = LiveMemory(memory)
    order = []
    with live.exclusive():
        caller = threading.Thread(target=lambda: order.append(("stats", live.stats().memories)))
        caller.start()
        caller.join(0.2)
        assert caller.is_alive()  # held until the swap ends
        order.append("swapped")
    caller.join(5)
    assert order == ["swapped", ("stats", 0)] and live.path == memory.path


def test_job_files_live_beside_a_sqlite_store_by_default(tmp_path):
    assert default_work_dir(str(tmp_path / "m.db")) == tmp_path / "m.db.jobs"
    assert default_work_dir(f"sqlite://{tmp_path}/m.db") == tmp_path / "m.db.jobs"
    assert default_work_dir("postgresql://u@h/db").name == "jobs"


# -- recovery ---------------------------------------------------------------------------------------


def test_after_a_restart_jobs_are_listed_and_one_left_running_is_failed(memory, tmp_path, serve):
    client = serve(memory, tmp_path / "jobs")
    done = wait(client, client.post("/admin/memory/reindex", json={}).json()["id"])
    records = open_store(memory.path)
    crashed_dir = tmp_path / "jobs" / "scratch" / "crashed"
    (crashed_dir / "run").mkdir(parents=True)
    (crashed_dir / "run" / "examples.jsonl").write_text("{}\n")
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "boot": "an earlier run of this server"}
    crashed = Job(id="crashed", kind="fine_tune", state="running", params={}, created_at="2030-01-01T00:00:00.000000Z",
                  owner=owner, scratch=str(crashed_dir), stage="training")
    records.put_service_record("job", crashed.id, crashed.to_dict())
    records.put_service_record(LOCK, LOCK_ID, {"job": crashed.id, "kind": "fine_tune", "owner": owner})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        elsewhere = Job(id="elsewhere", kind="import", state="running", params={}, owner={**owner, "pid": sleeper.pid},
                        created_at="2030-01-02T00:00:00.000000Z", scratch=str(tmp_path / "jobs" / "scratch" / "elsewhere"))
        records.put_service_record("job", elsewhere.id, elsewhere.to_dict())
        restarted = serve(memory, tmp_path / "jobs")  # recovers on start
        jobs = {j["id"]: j for j in restarted.get("/admin/jobs").json()["results"]}
        assert list(jobs) == ["elsewhere", "crashed", done["id"]]  # newest first
        assert jobs["crashed"]["state"] == "failed" and "server stopped" in jobs["crashed"]["error"]
        assert not crashed_dir.exists() and records.service_record(LOCK, LOCK_ID) is None
        assert jobs["elsewhere"]["state"] == "running"  # its process is alive: not ours to judge
        assert jobs[done["id"]]["state"] == "succeeded"
    finally:
        sleeper.kill()
        sleeper.wait()
        records.close()


CHILD = """
import sys
import uvicorn
from memlane import Memory, MemoryConfig
from memlane.server.app import create_app
from memlane.server.job_routes import install_jobs

store, config, work_dir, port = sys.argv[1:]
memory = Memory(store, MemoryConfig.model_validate_json(open(config).read()))
app = create_app(memory)
install_jobs(app, memory, work_dir)
uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
"""


def test_a_job_of_a_killed_server_is_failed_when_it_restarts(tiny, tmp_path, serve):
    path, cfg, _, labels = tiny
    (tmp_path / "config.json").write_text(cfg.model_dump_json())
    (tmp_path / "child.py").write_text(CHILD)
    port = free_port()
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(path), str(tmp_path / "config.json"),
                              str(tmp_path / "jobs"), str(port)])
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                http.get("/admin/jobs")
                break
            except httpx.TransportError:
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        body = {"eval_queries": str(labels), "synthetic": True, "epochs": 30}
        job_id = http.post("/admin/memory/fine-tune", json=body).json()["id"]
        while http.get(f"/admin/jobs/{job_id}").json()["stage"] != "training":
            assert time.monotonic() < deadline + 30
            time.sleep(0.02)
        scratch = tmp_path / "jobs" / "scratch" / job_id
        assert scratch.is_dir()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with Memory(path, cfg) as memory:
        client = serve(memory, tmp_path / "jobs")
        job = client.get(f"/admin/jobs/{job_id}").json()
        assert job["state"] == "failed" and "server stopped" in job["error"] and not scratch.exists()
        again = client.post("/admin/memory/reindex", json={})
        assert again.status_code == 202 and wait(client, again.json()["id"])["state"] == "succeeded"
        assert search(client)


def test_a_model_changing_job_is_refused_when_other_workers_would_keep_the_old_model(memory, tmp_path, serve):
    client = serve(memory, tmp_path / "jobs", workers=2)
    refused = client.post("/admin/memory/reindex", json={})
    assert refused.status_code == 409 and refused.json()["error"]["type"] == "conflict"
    assert "--workers 1" in refused.json()["error"]["message"]
    assert client.get("/admin/jobs").json()["results"] == []  # nothing was queued
