"""Shared fixtures: a deterministic embedder for unit tests, and fresh stores."""

from __future__ import annotations

from pathlib import Path

import pytest

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
