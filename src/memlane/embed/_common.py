"""Small helpers shared by the embedders."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from memlane.errors import InputError

Purpose = Literal["query", "document"]
PURPOSES: tuple[Purpose, ...] = ("query", "document")


def check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise InputError(f"unknown embedding purpose {purpose!r}", fix=f"use one of {', '.join(PURPOSES)}")


def as_int64(value: Any) -> np.ndarray:
    """Model inputs (a torch tensor, a numpy array or nested lists) as an int64 numpy array."""
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.int64)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit L2 norm; all-zero rows stay zero."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (out / norms).astype(np.float32, copy=False)
