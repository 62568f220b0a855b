"""Console sign-in sessions. An API key typed into the sign-in form is checked once; the browser
then holds an opaque session id in an HttpOnly, SameSite=Strict cookie, never the key.

The store keeps each session as a service record (kind "console_session") under the SHA-256 of
its id, with the key id and the expiry: every server process on the store knows the session,
and whoever reads the store cannot sign in with what it finds there. Each request maps the
session back to its key's current settings (`KeyRing.get`, read at most every `cache_s`
seconds), so a revoked key's sessions end within that time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

from memlane.errors import NotFoundError
from memlane.server.auth import Principal
from memlane.server.keys import KeyRing
from memlane.server.ratelimit import Rate
from memlane.store import Store

KIND = "console_session"
COOKIE = "memlane_console"
LIFETIME_S = 8 * 3600.0
MAX_CACHED = 10_000


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its key's caller, and the token its forms carry against CSRF."""

    principal: Principal
    csrf: str


class Sessions:
    """Open, resolve and close console sessions over a store's service records. Thread-safe."""

    def __init__(self, records: Store, ring: KeyRing, *, lifetime_s: float = LIFETIME_S, cache_s: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._records = records
        self._ring = ring
        self.lifetime_s = lifetime_s
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, Session | None]] = {}  # id digest -> (read at, session)
        self._lock = threading.Lock()

    def open(self, principal: Principal) -> str:
        """A new session for a caller its key was just checked for; returns the id for the cookie."""
        if principal.key_id is None:
            raise ValueError("a session needs a caller with an API key")
        self._prune()
        while True:
            token = secrets.token_urlsafe(32)
            now = self._clock()
            digest = _digest(token)
            body = {"id": digest, "key_id": principal.key_id, "created_at": now, "expires_at": now + self.lifetime_s}
            if self._records.put_service_record(KIND, digest, body, create_only=True):
                return token

    def resolve(self, token: str | None) -> Session | None:
        """The session a cookie names, or None when it is unknown, expired, or its key is revoked."""
        if not token or len(token) > 200:
            return None
        digest = _digest(token)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        session = self._read(token, digest, now)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[digest] = (now, session)
        return session

    def close(self, token: str | None) -> None:
        """Sign out: the session is gone for every server process (in others within `cache_s`)."""
        if not token or len(token) > 200:
            return
        digest = _digest(token)
        self._records.delete_service_record(KIND, digest)
        with self._lock:
            self._cache.pop(digest, None)

    def _read(self, token: str, digest: str, now: float) -> Session | None:
        body = self._records.service_record(KIND, digest)
        if body is None:
            return None
        if body.get("expires_at", 0) <= now:
            self._records.delete_service_record(KIND, digest)
            return None
        try:
            key = self._ring.get(body["key_id"])
        except NotFoundError:
            key = None
        if key is None or key.revoked_at is not None:
            self._records.delete_service_record(KIND, digest)
            return None
        principal = Principal(key_id=key.key_id, role=key.role, users=key.users, user_prefix=key.user_prefix,
                              rate=Rate.parse(key.rate) if key.rate else None)
        return Session(principal, csrf_token(token))

    def _prune(self) -> None:
        """Forget expired sessions (run when one is opened)."""
        now = self._clock()
        for body in self._records.service_records(KIND):
            if body.get("expires_at", 0) <= now and isinstance(body.get("id"), str):
                self._records.delete_service_record(KIND, body["id"])


def csrf_token(session_token: str) -> str:
    """The token a session's forms carry: derived from the session id, useless without it."""
    return hmac.new(session_token.encode("ascii", "replace"), b"memlane-console-csrf", hashlib.sha256).hexdigest()[:32]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()

