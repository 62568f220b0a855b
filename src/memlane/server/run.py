"""`memlane serve`: the app built from a config and a store, served by uvicorn.

Every worker process builds its own app with `app_factory`, from the settings `serve` leaves in
environment variables (uvicorn starts workers as fresh processes, by import string). On SIGTERM
or Ctrl-C uvicorn stops accepting connections, lets the requests in flight finish (up to
`shutdown_timeout` seconds: a write running in the threadpool always runs to its end), then the
app closes the store."""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile
from pathlib import Path

from fastapi import FastAPI

from memlane.config import MemoryConfig
from memlane.errors import ConfigError
from memlane.server.balance import SLOTS
from memlane.server.ops import log_json_lines

ENV_STORE = "MEMLANE_SERVE_STORE"
ENV_CONFIG = "MEMLANE_SERVE_CONFIG"
ENV_NO_AUTH = "MEMLANE_SERVE_NO_AUTH"
ENV_WORKERS = "MEMLANE_SERVE_WORKERS"
ENV_BOARD = "MEMLANE_SERVE_BOARD"  # the folder of the workers' load board (several workers only)


def build_app(store: str, config: MemoryConfig, *, auth: bool = True, config_path: str | Path | None = None,
              work_dir: str | Path | None = None, workers: int = 1, board: str | Path | None = None,
              owns_process: bool = False) -> FastAPI:
    """The server over the store at `store` (created if missing), with its jobs. With `auth`,
    requests need an API key of the store's key ring; without, every request is an admin.
    `config_path` is where a deployed fine-tune is recorded; `work_dir` holds the jobs' scratch
    folders and checkpoints (default: beside a SQLite store, else ~/.cache/memlane/jobs). `board`,
    the folder of the workers' load board, spreads keep-alive connections over several workers;
    `owns_process`: the app is the process's (a worker of `memlane serve`; see `create_app`)."""
    from memlane.memory import Memory
    from memlane.server.app import create_app
    from memlane.server.balance import LoadBoard, Rebalance
    from memlane.server.console import install_console
    from memlane.server.job_routes import install_jobs
    from memlane.server.jobs import LiveMemory, default_work_dir
    from memlane.server.keys import KeyRing
    from memlane.server.mcp import install_mcp
    from memlane.store import open_store

    load_board = LoadBoard(board) if board is not None else None  # first: a full board stops the worker here
    memory = LiveMemory(Memory(store, config, create=True))  # a model swap replaces what it wraps, at once
    try:
        records = open_store(store, create=True)  # the keys and jobs, beside the memories
    except Exception:
        memory.close()
        raise
    ring = KeyRing(records) if auth else None
    closing: list = [lambda: app.state.jobs.close(), memory.close, records.close]
    if load_board is not None:
        closing.append(load_board.close)
    app = create_app(memory, ring.authenticate if ring else None, records=records, on_shutdown=closing,
                     workers=workers, owns_process=owns_process,
                     authenticate_cached=ring.authenticate_cached if ring else None)
    install_jobs(app, memory, work_dir or default_work_dir(store), config_path=config_path, workers=workers)
    install_console(app, records)  # the web console at /console, signed in with the same keys
    install_mcp(app)  # the MCP tools at /mcp, behind the same keys
    if load_board is not None:
        app.add_middleware(Rebalance, board=load_board)  # outermost: it counts every request
    return app


def app_factory() -> FastAPI:
    """The app of one worker, from the environment `serve` set (for uvicorn's import string)."""
    store = os.environ.get(ENV_STORE)
    if not store:
        raise ConfigError(f"{ENV_STORE} is not set: start the server with `memlane serve`")
    config_path = os.environ.get(ENV_CONFIG) or None
    log_json_lines()
    return build_app(store, MemoryConfig.load(config_path), auth=os.environ.get(ENV_NO_AUTH) != "1",
                     config_path=config_path, workers=int(os.environ.get(ENV_WORKERS) or 1),
                     board=os.environ.get(ENV_BOARD) or None, owns_process=True)


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_no_auth(host: str) -> None:
    """--no-auth serves every request as an admin: refused unless only this machine can connect."""
    if not is_loopback(host):
        raise ConfigError(f"--no-auth serves every request without a key, so it only binds to loopback, not "
                          f"{host!r}. Fix: use --host 127.0.0.1, or make a key with `memlane keys create` and drop --no-auth")


def serve(store: str, config_path: str | Path | None = None, *, host: str = "127.0.0.1", port: int = 8765,
          workers: int = 1, no_auth: bool = False, shutdown_timeout: float = 30.0) -> None:
    """Serve the store until stopped (blocking). Checks the settings and the config before starting."""
    import uvicorn

    from memlane.store import open_store

    if no_auth:
        check_no_auth(host)
    if not 1 <= workers <= SLOTS:
        raise ConfigError(f"--workers must be from 1 to {SLOTS}, got {workers}")
    MemoryConfig.load(config_path)  # a bad config or store stops here, once, not in every worker
    open_store(store, create=True).close()
    os.environ[ENV_STORE] = store
    os.environ[ENV_CONFIG] = str(config_path) if config_path else ""
    os.environ[ENV_NO_AUTH] = "1" if no_auth else "0"
    os.environ[ENV_WORKERS] = str(workers)
    metrics_dir = None
    board_dir = os.environ[ENV_BOARD] = tempfile.mkdtemp(prefix="memlane-board-") if workers > 1 else ""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker counts its requests in files here; /metrics in any worker reports the sum.
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="memlane-metrics-")
    if no_auth:
        print(f"memlane serve: WARNING --no-auth: every request is served as an admin, without an API key; "
              f"listening on {host} only", file=sys.stderr, flush=True)
    try:
        uvicorn.run("memlane.server.run:app_factory", factory=True, host=host, port=port, workers=workers,
                    access_log=False, timeout_graceful_shutdown=shutdown_timeout, log_level="info")
    finally:
        if board_dir:
            shutil.rmtree(board_dir, ignore_errors=True)
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
