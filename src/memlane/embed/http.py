"""An embedder that calls an OpenAI-compatible `/embeddings` endpoint (vLLM, llama.cpp, TEI, OpenAI...).

Requests go over one reused httpx connection pool (`memlane._http`). Transient failures
(timeouts, refused connections, 429, 5xx) are retried with exponential backoff; any other failure
raises `LLMError` at once, naming the URL, the status and what the server said.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np

from memlane._http import JSONPoster
from memlane.embed._common import Purpose, check_purpose, normalize_rows
from memlane.errors import LLMError

_DIMS_PROBE = "dimension probe"


class OpenAIHTTPEmbedder:
    """POSTs {"model": ..., "input": [...]} to {base_url}/embeddings in batches of `batch_size`.

    `dims=None` learns the size from the first response (reading `dims` before any encode sends
    one short probe request). Every later vector must have that size.
    `sleep` is the function waited with between retries (tests pass a fake).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        dims: int | None = None,
        api_key: str | None = None,
        batch_size: int = 64,
        timeout_s: float = 60,
        max_retries: int = 4,
        *,
        query_prefix: str = "",
        document_prefix: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/embeddings"
        self.model = model
        self.name = model
        # The same model name may be served by different weights on different servers.
        self.fingerprint = f"{model}@{self.base_url}"
        self._dims = dims
        self.api_key = api_key
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self._poster = JSONPoster(self.url, "embedding server", api_key=api_key, timeout_s=timeout_s,
                                  max_retries=max_retries, sleep=sleep)

    @property
    def dims(self) -> int:
        if self._dims is None:
            self.encode([_DIMS_PROBE])
        assert self._dims is not None
        return self._dims

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        check_purpose(purpose)
        if len(texts) == 0:
            return np.zeros((0, self.dims), dtype=np.float32)
        prefix = self.query_prefix if purpose == "query" else self.document_prefix
        inputs = [prefix + text for text in texts]
        batches = [
            self._embed_batch(inputs[start : start + self.batch_size])
            for start in range(0, len(inputs), self.batch_size)
        ]
        return normalize_rows(np.concatenate(batches, axis=0))

    def _embed_batch(self, inputs: list[str]) -> np.ndarray:
        payload = self._poster.post({"model": self.model, "input": inputs})
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or len(data) != len(inputs):
            got = len(data) if isinstance(data, list) else "no 'data' list"
            raise LLMError(
                f"embedding server {self.url} answered {got} embeddings for {len(inputs)} inputs; "
                "expected an OpenAI-style response with one data[i].embedding per input"
            )
        try:
            ordered = sorted(data, key=lambda item: item.get("index", 0))
            vectors = [np.asarray(item["embedding"], dtype=np.float32) for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise LLMError(f"embedding server {self.url} answered malformed embeddings: {exc!r}") from None
        for vector in vectors:
            if vector.ndim != 1:
                raise LLMError(f"embedding server {self.url} answered an embedding that is not a flat list of numbers")
            if self._dims is None:
                self._dims = int(vector.shape[0])
            if vector.shape[0] != self._dims:
                raise LLMError(
                    f"embedding server {self.url} (model '{self.model}') answered a {vector.shape[0]}-dimensional "
                    f"vector; expected {self._dims}. Fix: set embedder.dims to the model's size, or check that "
                    "the server runs the model you configured."
                )
        return np.stack(vectors)

    def close(self) -> None:
        """Close the kept connections to the server (a later encode opens new ones)."""
        self._poster.close()

    def __repr__(self) -> str:
        return f"OpenAIHTTPEmbedder({self.base_url!r}, {self.model!r}, dims={self._dims})"

