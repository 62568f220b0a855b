"""memlane's one HTTP stack, on httpx: the clients every memlane HTTP caller uses, and JSON POSTs with retries.

`open_client` makes the `httpx.Client` of each endpoint client (the OpenAI-compatible embedder,
the LLM client, `memlane.Client`): one bearer key, one timeout, connections kept and reused.

`JSONPoster` POSTs JSON to one URL for the embedder and the LLM client. Transient failures
(timeouts, refused or broken connections, 429, 5xx) are retried with exponential backoff,
honouring Retry-After; any other failure raises `LLMError` at once, naming the URL, the status and
what the server said, never the key. No httpx exception leaves this module.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from typing import Any, Callable

import httpx

from memlane.errors import LLMError

BACKOFF_BASE_S = 0.5
MAX_RETRY_AFTER_S = 30.0


def open_client(*, api_key: str | None = None, timeout_s: float = 60, base_url: str = "",
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """An httpx client that sends `api_key` as a bearer token and waits at most `timeout_s` to
    connect and for each read. Building it touches no network."""
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, transport=transport)


def shown_url(url: str) -> str:
    """`url` as an error message may show it: any user name and password left out."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not a URL at all: leave out whatever comes before an '@'
        return url.rpartition("@")[2]
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class _Retryable(Exception):
    """A failure worth another try; carries the message the final LLMError will give."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JSONPoster:
    """POSTs JSON bodies to one URL and returns decoded JSON answers, over one reused httpx client
    (made on the first request; safe to share between threads).

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
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def post(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode("utf-8")
        attempt = 0
        while True:
            try:
                return self._send(data)
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    raise LLMError(f"{exc} (gave up after {attempt + 1} attempts)") from None
                delay = BACKOFF_BASE_S * 2**attempt
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER_S))
                self.sleep(delay)
                attempt += 1

    def close(self) -> None:
        """Close the kept connections (a later post opens new ones)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = open_client(api_key=self.api_key, timeout_s=self.timeout_s)
            return self._client

    def _send(self, data: bytes) -> Any:
        where = f"{self.label} {shown_url(self.url)}"
        try:
            response = self._http().post(self.url, content=data, headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            raise _Retryable(f"{where} did not answer within {self.timeout_s} s") from None
        except httpx.UnsupportedProtocol as exc:
            raise LLMError(f"cannot reach {where}: {exc}. Fix: use an http:// or https:// URL") from None
        except httpx.ConnectError as exc:
            raise _Retryable(f"cannot reach {where}: {exc}") from None
        except httpx.TransportError as exc:  # the connection broke mid-request, or the answer was not HTTP
            raise _Retryable(f"connection to {where} failed: {exc}") from None
        except httpx.InvalidURL as exc:
            raise LLMError(f"{where} is not a valid URL: {exc}") from None
        except httpx.HTTPError as exc:  # an answer that cannot be decoded (a broken content encoding)
            raise LLMError(f"{where} answered something unreadable: {exc}") from None
        if not response.is_success:
            text = f"{where} answered HTTP {response.status_code}: {server_message(response)}"
            if response.status_code == 429 or response.status_code >= 500:
                raise _Retryable(text, retry_after(response))
            raise LLMError(text)
        try:
            return json.loads(response.content)
        except ValueError:
            raise LLMError(f"{where} answered something that is not JSON: {response.content[:200]!r}") from None


def server_message(response: httpx.Response) -> str:
    """The server's own explanation: error.message / error / detail / message of a JSON body, else the text."""
    text = response.content.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500] or response.reason_phrase or "no message"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for field in ("error", "detail", "message"):
            if body.get(field):
                return str(body[field])
    return text[:500]


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds, or None when absent or not a number."""
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
