"""Shared fixtures: a deterministic embedder for unit tests, and fresh stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from memlane import Memory, MemoryConfig
from memlane.embed import HashEmbedder

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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


CHAT = [
    {"role": "user", "content": "I adopted a beagle puppy named Biscuit yesterday."},
    {"role": "assistant", "content": "Congratulations! Beagles are lively dogs."},
    {"role": "user", "content": "My sister Maria lives in Lisbon and works as a nurse."},
    {"role": "user", "content": "Please email the invoice to ana.silva@example.com before Friday."},
]
