"""Shared fixtures for the embedder tests: the real model (loaded once) and a counting fake."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pytest

from memlane.embed import HashEmbedder, SentenceTransformerEmbedder


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    embedder.encode(["warm up"])
    return embedder


class CountingEmbedder:
    """A HashEmbedder that records every text it is asked to encode."""

    def __init__(self, dims: int = 32, fingerprint: str = "counting-v1", batch_size: int = 64, query_prefix: str = "") -> None:
        self._inner = HashEmbedder(dims)
        self.name = "counting"
        self.dims = dims
        self.fingerprint = fingerprint
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.document_prefix = ""
        self.encoded: list[str] = []
        self.calls = 0

    def encode(self, texts: Sequence[str], purpose: str = "document") -> np.ndarray:
        self.calls += 1
        self.encoded.extend(texts)
        prefix = self.query_prefix if purpose == "query" else ""
        return self._inner.encode([prefix + text for text in texts])


@pytest.fixture
def counting() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
def make_counting() -> type[CountingEmbedder]:
    """The CountingEmbedder class, for tests that need several or non-default ones."""
    return CountingEmbedder
