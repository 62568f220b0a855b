"""JSON over HTTP with retries: the one transport under the HTTP embedder and the LLM client.

Transient failures (timeouts, refused connections, 429, 5xx) are retried with exponential
backoff, honouring Retry-After; any other failure raises `LLMError` at once, naming the URL, the
status and what the server said. No urllib or socket exception leaves this module.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from memlane.errors import LLMError

BACKOFF_BASE_S = 0.5
MAX_RETRY_AFTER_S = 30.0


class _Retryable(Exception):
    """A failure worth another try; carries the message the final LLMError will give."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JSONPoster:
    """POSTs JSON bodies to one URL and returns decoded JSON answers.

    `label` names the server in errors ("embedding server", "LLM server"); `sleep` is what the
    client waits with between retries (tests pass a fake).
    """

    def __init__(self, url: str, label: str, *, api_key: str | None = None, timeout_s: float = 60,
                 max_retries: int = 4, sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self.label = label
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.sleep = sleep

    def post(self, body: dict[str, Any]) -> Any:
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
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER_S))
                self.sleep(delay)
                attempt += 1

    def _send(self, request: urllib.request.Request) -> Any:
        where = f"{self.label} {self.url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            text = f"{where} answered HTTP {exc.code}: {_server_message(exc)}"
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(text, _retry_after(exc)) from None
            raise LLMError(text) from None
        except (TimeoutError, socket.timeout) as exc:
            raise _Retryable(f"{where} did not answer within {self.timeout_s} s ({exc})") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _Retryable(f"{where} did not answer within {self.timeout_s} s") from None
            raise _Retryable(f"cannot reach {where}: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(f"connection to {where} failed: {exc}") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise LLMError(f"{where} answered something that is not JSON: {raw[:200]!r}") from None


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
