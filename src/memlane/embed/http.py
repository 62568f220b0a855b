"""An embedder that calls an OpenAI-compatible `/embeddings` endpoint (vLLM, llama.cpp, TEI, OpenAI...).

Transient failures (timeouts, refused connections, 429, 5xx) are retried with exponential
backoff; any other failure raises `LLMError` at once, naming the URL, the status and what the
server said.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Sequence

import numpy as np

from memlane.embed._common import Purpose, check_purpose, normalize_rows
from memlane.errors import LLMError

BACKOFF_BASE_S = 0.5
MAX_RETRY_AFTER_S = 30.0
_DIMS_PROBE = "dimension probe"


class _Retryable(Exception):
    """A failure worth another try; carries the message the final LLMError will give."""


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
        self._sleep = sleep

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
        payload = self._post({"model": self.model, "input": inputs})
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

    def _post(self, body: dict[str, Any]) -> Any:
        """POST JSON, retrying transient failures; return the decoded JSON answer."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempt = 0
        while True:
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                return self._send(request)
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    raise LLMError(f"{exc} (gave up after {attempt + 1} attempts)") from None
                delay = BACKOFF_BASE_S * 2**attempt
                retry_after = getattr(exc, "retry_after", None)
                if retry_after is not None:
                    delay = max(delay, min(retry_after, MAX_RETRY_AFTER_S))
                self._sleep(delay)
                attempt += 1

    def _send(self, request: urllib.request.Request) -> Any:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = _server_message(exc)
            text = f"embedding server {self.url} answered HTTP {exc.code}: {message}"
            if exc.code == 429 or exc.code >= 500:
                failure = _Retryable(text)
                failure.retry_after = _retry_after(exc)  # type: ignore[attr-defined]
                raise failure from None
            raise LLMError(text) from None
        except (TimeoutError, socket.timeout) as exc:
            raise _Retryable(f"embedding server {self.url} did not answer within {self.timeout_s} s ({exc})") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _Retryable(f"embedding server {self.url} did not answer within {self.timeout_s} s") from None
            raise _Retryable(f"cannot reach embedding server {self.url}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(f"connection to embedding server {self.url} failed: {exc}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise LLMError(
                f"embedding server {self.url} answered something that is not JSON: {raw[:200]!r}"
            ) from None

    def __repr__(self) -> str:
        return f"OpenAIHTTPEmbedder({self.base_url!r}, {self.model!r}, dims={self._dims})"


def _server_message(exc: urllib.error.HTTPError) -> str:
    """The server's own explanation: error.message / error / detail / message of a JSON body, else the text."""
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500] or (exc.reason or "no message")
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for field in ("error", "detail", "message"):
            if body.get(field):
                return str(body[field])
    return text[:500]


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
