"""`memlane serve` and `memlane keys`: the commands, and a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from _server_support import bearer, free_port
from typer.testing import CliRunner

from memlane import Memory, MemoryConfig
from memlane.cli import app
from memlane.server.run import is_loopback

runner = CliRunner()
CONFIG = '[embedder]\nprovider = "hash"\nmodel = "hash-256"\ncache_path = "off"\n'


@pytest.fixture
def served_store(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A store path and a config file with the hash embedder; no MEMLANE_* settings leak in."""
    for name in list(os.environ):
        if name.startswith("MEMLANE_"):
            monkeypatch.delenv(name)
    config = tmp_path / "memlane.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return tmp_path / "served.db", config


def make_key(store: Path, *args: str) -> str:
    result = runner.invoke(app, ["keys", "create", *args, "--store", str(store)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


# -- the commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_no_auth_refuses_a_host_other_machines_reach(served_store, host):
    store, config = served_store
    result = runner.invoke(app, ["serve", "--no-auth", "--host", host, "--store", str(store), "--config", str(config)])
    assert result.exit_code == 2
    assert "loopback" in result.output and "127.0.0.1" in result.output
    assert not store.exists()


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.9", True), ("::1", True), ("[::1]", True),
                                            ("localhost", True), ("0.0.0.0", False), ("10.0.0.1", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_keys_create_prints_the_token_alone_once(served_store):
    store, _ = served_store
    result = runner.invoke(app, ["keys", "create", "--role", "tenant", "--users", "ana,bob", "--rate", "50/s",
                                 "--label", "mobile", "--store", str(store)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("mlk_") and "\n" not in token
    assert "cannot be shown again" in result.stderr and "users ana, bob" in result.stderr
    listed = runner.invoke(app, ["keys", "list", "--json", "--store", str(store)])
    [key] = json.loads(listed.stdout)
    assert token.startswith(f"mlk_{key['key_id']}_")
    assert (key["role"], key["users"], key["rate"], key["label"], key["revoked_at"]) == (
        "tenant", ["ana", "bob"], "50/s", "mobile", None)
    table = runner.invoke(app, ["keys", "list", "--store", str(store)])
    assert key["key_id"] in table.stdout and token.split("_", 2)[2][:8] not in table.stdout


def test_keys_revoke_marks_the_key(served_store):
    store, _ = served_store
    make_key(store, "--role", "admin")
    key_id = json.loads(runner.invoke(app, ["keys", "list", "--json", "--store", str(store)]).stdout)[0]["key_id"]
    result = runner.invoke(app, ["keys", "revoke", key_id, "--store", str(store)])
    assert result.exit_code == 0 and f"revoked key {key_id}" in result.stdout
    assert json.loads(runner.invoke(app, ["keys", "list", "--json", "--store", str(store)]).stdout)[0]["revoked_at"]
    unknown = runner.invoke(app, ["keys", "revoke", "0123456789ab", "--store", str(store)])
    assert unknown.exit_code == 2 and "keys list" in unknown.output


@pytest.mark.parametrize("args, words", [
    (["--role", "admin", "--users", "ana"], "admin key reaches every user"),
    (["--role", "tenant"], "--users ana,bob or --user-prefix"),
    (["--role", "tenant", "--users", "ana", "--rate", "lots"], "50/s"),
    (["--role", "owner"], "admin or tenant"),
])
def test_keys_create_refuses_bad_settings_plainly(served_store, args, words):
    store, _ = served_store
    result = runner.invoke(app, ["keys", "create", *args, "--store", str(store)])
    assert result.exit_code == 2 and words in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_keys_list_needs_an_existing_store(served_store):
    store, _ = served_store
    result = runner.invoke(app, ["keys", "list", "--store", str(store)])
    assert result.exit_code == 2 and "no store" in result.output


# -- a real server process ------------------------------------------------------------------------


class Server:
    """`memlane serve` in a subprocess on a free port of 127.0.0.1, stderr kept in a file."""

    def __init__(self, store: Path, config: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = store.parent / f"serve-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memlane.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--store", str(store), "--config", str(config), *args],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"the server did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM, then whether the server shut down cleanly (uvicorn re-raises the signal after)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout) in (0, -signal.SIGTERM)


@pytest.fixture
def start(served_store):
    started: list[Server] = []

    def start(*args: str) -> Server:
        started.append(Server(*served_store, *args))
        return started[-1]

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


def test_a_real_server_serves_keys_and_finishes_writes_in_flight_on_shutdown(served_store, start):
    store, config = served_store
    admin = make_key(store, "--role", "admin")
    ana = make_key(store, "--role", "tenant", "--users", "ana")
    server = start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        added = http.post("/v1/memories", json={"messages": "I keep bees on the roof"}, headers=bearer(ana))
        assert added.status_code == 201 and added.json()["results"][0]["user_id"] == "ana"
        hits = http.post("/v1/memories/search", json={"query": "bees"}, headers=bearer(ana)).json()["results"]
        assert hits[0]["memory"]["text"] == "I keep bees on the roof"
        assert http.get("/v1/memories", params={"user_id": "bob"}, headers=bearer(ana)).status_code == 403
        assert http.get("/v1/memories").status_code == 401
        assert http.get("/readyz").json() == {"status": "ok"}
        metrics = http.get("/metrics", headers=bearer(admin)).text
        assert 'route="/v1/memories/search",status="200"' in metrics and "memlane_store_memories 1.0" in metrics

    # A long write is in flight when the server is told to stop: it finishes, then the server exits.
    messages = [{"role": "user", "content": f"note {i} about the hives and the honey harvest"} for i in range(5000)]
    answer: dict = {}

    def write() -> None:
        answer["response"] = httpx.post(f"{server.url}/v1/memories", json={"messages": messages},
                                        headers=bearer(ana), timeout=60)

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.5)  # the write takes about 1 s here
    assert server.stop(), server.output()
    writer.join(60)
    assert answer["response"].status_code == 201
    assert len(answer["response"].json()["results"]) >= 5000
    cfg = MemoryConfig.load(config)
    with Memory(store, cfg, create=False) as reopened:
        assert reopened.stats().memories == 1 + len(answer["response"].json()["results"])

    log = server.output()
    for secret in (admin, ana, admin.split("_", 2)[2], ana.split("_", 2)[2], "bees", "hives"):
        assert secret not in log
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    writes = [line for line in lines if (line["method"], line["route"], line["status"]) == ("POST", "/v1/memories", 201)]
    assert len(writes) == 2 and all(line["key_id"] == writes[0]["key_id"] for line in writes)
    assert any(line["status"] == 401 and line["key_id"] is None for line in lines)


def test_workers_publish_their_load_on_one_board_that_goes_with_the_server(served_store, start, tmp_path, monkeypatch):
    import struct

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where `serve` makes the board's folder
    server = start("--no-auth", "--workers", "2")
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/v1/memories", params={"user_id": "ana"}).status_code == 200
    [folder] = scratch.glob("memlane-board-*")

    def published() -> set[int]:
        board = (folder / "board").read_bytes()
        return {pid for pid, _ in (struct.unpack_from("<qq", board, i * 16) for i in range(len(board) // 16)) if pid}

    deadline = time.monotonic() + 60  # the server answers once one worker is up; the other may still be starting
    while len(published()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = published()
    assert len(pids) == 2 and server.process.pid not in pids  # one slot per worker process
    for pid in pids:
        assert Path(f"/proc/{pid}").exists()
    assert server.stop(), server.output()
    assert not folder.exists()


def test_no_auth_on_loopback_warns_and_serves_every_request_with_metrics_from_all_workers(served_store, start):
    server = start("--no-auth", "--workers", "2")
    assert "WARNING --no-auth" in server.output() and "127.0.0.1 only" in server.output()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(10):
            assert http.get("/v1/memories", params={"user_id": "ana"}).status_code == 200
        metrics = http.get("/metrics").text
    assert 'memlane_http_requests_total{method="GET",route="/v1/memories",status="200"} 10.0' in metrics
    assert server.stop(), server.output()
