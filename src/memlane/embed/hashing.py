"""A deterministic embedder without a model, for unit tests of everything above the embedder.

Each text becomes a bag of hashed features: lower-cased word tokens (weight 1), their crude
suffix-stripped stems (weight 0.5) and character trigrams of each word (weight 0.2), each added
with a sign to one of `dims` buckets (the "hashing trick"). Texts that share words share
buckets, so they score higher than unrelated texts. The hash is blake2b, stable across runs and
processes (Python's `hash()` is salted per process).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Sequence

import numpy as np

from memlane.embed._common import Purpose, check_purpose, normalize_rows
from memlane.errors import ConfigError

WORD_WEIGHT = 1.0
STEM_WEIGHT = 0.5
TRIGRAM_WEIGHT = 0.2

_WORD = re.compile(r"\w+", re.UNICODE)
# Longest first, so "ings" is tried before "s".
_SUFFIXES = ("ations", "ation", "ings", "ing", "edly", "ed", "ies", "es", "ly", "er", "s")


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD.findall(text.lower())


def stem(word: str) -> str:
    """Strip one common English suffix when at least three characters remain ("walking" -> "walk")."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def trigrams(word: str) -> list[str]:
    """Character trigrams of the word padded with boundary marks: "dog" -> "<do", "dog", "og>"."""
    padded = f"<{word}>"
    return [padded[i : i + 3] for i in range(len(padded) - 2)]


class HashEmbedder:
    """Deterministic bag-of-hashed-features vectors; `name` and `fingerprint` are 'hash-<dims>'."""

    def __init__(self, dims: int = 256) -> None:
        if dims < 8:
            raise ConfigError(f"HashEmbedder needs at least 8 dims, got {dims}. Fix: set embedder.dims to 256.")
        self.dims = dims
        self.name = f"hash-{dims}"
        self.fingerprint = f"hash-{dims}-v1"
        self.batch_size = 256

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        check_purpose(purpose)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in words(text):
                self._add(out[row], "w:" + word, WORD_WEIGHT)
                stemmed = stem(word)
                self._add(out[row], "s:" + stemmed, STEM_WEIGHT)
                for gram in trigrams(word):
                    self._add(out[row], "t:" + gram, TRIGRAM_WEIGHT)
        return normalize_rows(out)

    def _add(self, row: np.ndarray, feature: str, weight: float) -> None:
        bucket, sign = _bucket(feature, self.dims)
        row[bucket] += sign * weight

    def __repr__(self) -> str:
        return f"HashEmbedder(dims={self.dims})"


@lru_cache(maxsize=200_000)
def _bucket(feature: str, dims: int) -> tuple[int, float]:
    """The feature's bucket and sign, from 8 bytes of blake2b."""
    value = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return (value >> 1) % dims, (1.0 if value & 1 else -1.0)
