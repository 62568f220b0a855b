"""Shared fixtures: a deterministic embedder for unit tests, fresh stores, a scripted HTTP server."""

from __future__ import annotations

import threading

import pytest
from _postgres import postgres_server
from _support import ScriptedServer

from memlane import Memory, MemoryConfig
from memlane.embed import HashEmbedder


@pytest.fixture
def config(tmp_path) -> MemoryConfig:
    cfg = MemoryConfig()
    cfg.embedder.provider = "hash"
    cfg.embedder.model = "hash-256"
    cfg.embedder.cache_path = str(tmp_path / "vectors.sqlite")
    return cfg


@pytest.fixture
def memory(tmp_path, config) -> Memory:
    m = Memory(tmp_path / "store.db", config, embedder=HashEmbedder(dims=256))
    yield m
    m.close()


@pytest.fixture
def server() -> ScriptedServer:
    """A local OpenAI-compatible server that plays scripted answers (see _support.ScriptedServer)."""
    srv = ScriptedServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL with pgvector (see _postgres.py), shared by the session's tests."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def records(memory):
    """A second handle on the memory's store, for its service records (keys, jobs, console sessions)."""
    from memlane.store import open_store

    store = open_store(memory.path)
    yield store
    store.close()


@pytest.fixture
def ring(records):
    """The API keys of the memory's store."""
    from memlane.server.keys import KeyRing

    return KeyRing(records)
