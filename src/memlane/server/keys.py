"""API keys: random tokens bound to a role and to the users they reach, stored hashed beside the
memories (the store's "service" records), so every server process on a store knows the same keys.

A token reads `mlk_<key id>_<secret>`; it is shown once, when the key is made. The store keeps
the key id and the SHA-256 of the secret (the secret is 256 random bits, so a fast hash is
enough), never the secret itself. A server caches what it read of a key for `cache_s` seconds
(5 by default): a key revoked by another process (`memlane keys revoke`) is refused by every
server within that time, and at once by the process that revoked it."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Literal

from memlane.errors import InputError, NotFoundError
from memlane.server.auth import Principal, Unauthorized
from memlane.server.ratelimit import Rate
from memlane.store import Store, require

KIND = "api_key"
PREFIX = "mlk_"
ROLES = ("admin", "tenant")
MAX_NAME = 512
MAX_CACHED = 10_000
_TOKEN = re.compile(r"^mlk_([0-9a-f]{12})_([A-Za-z0-9_-]{16,256})$")
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
_NOT_READ = object()  # what `_cached` gives instead of reading the store


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never its secret, nor the secret's hash."""

    key_id: str
    role: Literal["admin", "tenant"]
    users: tuple[str, ...]
    user_prefix: str | None
    rate: str | None
    label: str | None
    created_at: str
    revoked_at: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> "KeyInfo":
        return cls(key_id=body["key_id"], role=body["role"], users=tuple(body.get("users") or ()),
                   user_prefix=body.get("user_prefix"), rate=body.get("rate"), label=body.get("label"),
                   created_at=body["created_at"], revoked_at=body.get("revoked_at"))

    def to_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "role": self.role, "users": list(self.users), "user_prefix": self.user_prefix,
                "rate": self.rate, "label": self.label, "created_at": self.created_at, "revoked_at": self.revoked_at}


class KeyRing:
    """The API keys of one store: make, list, revoke, and map a token to its `Principal`.
    Thread-safe (one ring serves all of a server process's requests)."""

    def __init__(self, store: Store, *, cache_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        require(store, "service")
        self._store = store
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}  # key id -> (read at, record)
        self._lock = threading.Lock()

    def create(self, role: str, users: Iterable[str] = (), user_prefix: str | None = None, rate: str | None = None,
               label: str | None = None) -> tuple[str, str]:
        """Make a key; returns (its id, its token). The token is not kept and cannot be shown again."""
        body = _checked(role, users, user_prefix, rate, label)
        while True:
            key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            record = {**body, "key_id": key_id, "secret_sha256": _digest(secret), "created_at": _now(),
                      "revoked_at": None}
            if self._store.put_service_record(KIND, key_id, record, create_only=True):
                return key_id, f"{PREFIX}{key_id}_{secret}"

    def list(self) -> list[KeyInfo]:
        """Every key, revoked ones included, oldest first."""
        return [KeyInfo.of(body) for body in self._store.service_records(KIND)]

    def get(self, key_id: str) -> KeyInfo:
        return KeyInfo.of(self._record(key_id))

    def revoke(self, key_id: str) -> KeyInfo:
        """Refuse a key from now on (in this process at once; in others within `cache_s`).
        Revoking a revoked key changes nothing."""
        body = self._record(key_id)
        if body.get("revoked_at") is None:
            body = {**body, "revoked_at": _now()}
            self._store.put_service_record(KIND, key_id, body)
        with self._lock:
            self._cache[key_id] = (self._clock(), body)
        return KeyInfo.of(body)

    def authenticate(self, token: str | None) -> Principal:
        """The caller a bearer token stands for; Unauthorized when it is missing, malformed,
        unknown, wrong or revoked. No message repeats the token."""
        who = self._authenticate(token, read=True)
        assert who is not None
        return who

    def authenticate_cached(self, token: str | None) -> Principal | None:
        """As `authenticate`, from what this ring holds alone: None where the key must be read
        from the store first (a caller on an event loop then does that read in a thread)."""
        return self._authenticate(token, read=False)

    def _authenticate(self, token: str | None, *, read: bool) -> Principal | None:
        if not token:
            raise Unauthorized("this request has no API key: send the header 'Authorization: Bearer <key>' "
                               "(make a key with `memlane keys create`)")
        match = _TOKEN.match(token)
        if match is None:
            raise Unauthorized("malformed API key: memlane keys read mlk_<id>_<secret>, as `memlane keys create` "
                               "printed it")
        key_id, secret = match.groups()
        body = self._cached(key_id, read=read)
        if body is _NOT_READ:
            return None
        if body is None or not hmac.compare_digest(body["secret_sha256"], _digest(secret)):
            raise Unauthorized("unknown API key: check the key, or make one with `memlane keys create`")
        if body.get("revoked_at") is not None:
            raise Unauthorized("this API key was revoked: make a new one with `memlane keys create`")
        rate = Rate.parse(body["rate"]) if body.get("rate") else None
        return Principal(key_id=key_id, role=body["role"], users=tuple(body.get("users") or ()),
                         user_prefix=body.get("user_prefix"), rate=rate)

    def _cached(self, key_id: str, *, read: bool = True) -> Any:
        """The key's record (None: no such key), from the cache while fresh, else read from the
        store; `_NOT_READ` instead of reading when `read` is false."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        if not read:
            return _NOT_READ
        body = self._store.service_record(KIND, key_id)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:  # unknown ids are cached too: keep the cache bounded
                self._cache.clear()
            self._cache[key_id] = (now, body)
        return body

    def _record(self, key_id: str) -> dict[str, Any]:
        if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            raise InputError(f"{key_id!r} is not an API key id", field="key_id",
                             fix="pass the 12-character id `memlane keys list` shows")
        body = self._store.service_record(KIND, key_id)
        if body is None:
            raise NotFoundError(f"no API key with id {key_id}; `memlane keys list` shows the keys")
        return body


def _checked(role: object, users: Iterable[str], user_prefix: object, rate: object, label: object) -> dict[str, Any]:
    """A key's settings, validated: the record without its id, secret and dates."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}", field="role", fix="choose admin or tenant")
    if isinstance(users, str):
        raise InputError("users must be a list of user ids, not one string", field="users",
                         fix="pass users=['ana', 'bob']")
    names: list[str] = []
    for user in users:
        if not isinstance(user, str) or not user.strip() or len(user) > MAX_NAME or user != user.strip():
            raise InputError(f"{user!r} is not a user id", field="users",
                             fix=f"give non-empty ids of at most {MAX_NAME} characters, without spaces around them")
        if user not in names:
            names.append(user)
    if user_prefix is not None and (not isinstance(user_prefix, str) or not user_prefix.strip()
                                    or len(user_prefix) > MAX_NAME):
        raise InputError(f"{user_prefix!r} is not a user id prefix", field="user_prefix",
                         fix="give a non-empty prefix such as 'org1/' (an empty one would reach every user)")
    if role == "admin" and (names or user_prefix is not None):
        raise InputError("an admin key reaches every user; it takes no users or user prefix", field="role",
                         fix="drop --users and --user-prefix, or make a tenant key")
    if role == "tenant" and not names and user_prefix is None:
        raise InputError("a tenant key must name the users it reaches", field="users",
                         fix="pass --users ana,bob or --user-prefix org1/")
    parsed = None if rate is None else str(Rate.parse(rate))
    if label is not None and (not isinstance(label, str) or len(label) > 200):
        raise InputError(f"{label!r} is not a label", field="label", fix="give text of at most 200 characters")
    return {"role": role, "users": names, "user_prefix": user_prefix, "rate": parsed, "label": label}


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
