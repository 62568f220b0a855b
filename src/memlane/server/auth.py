"""Who is calling: a `Principal` (an API key's role and users), the one rule that binds a
request's user_id to it (a tenant names only its own users; an admin any user), and `caller`, the
route dependency that authenticates a request and applies its key's rate limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Literal

import anyio.to_thread
from fastapi import Depends, Request

from memlane.errors import AccessError
from memlane.server.ratelimit import Rate


class Forbidden(AccessError):
    """The caller's key does not reach what the request names (answered 403)."""


class Unauthorized(AccessError):
    """No key, or a key that is unknown or revoked (answered 401)."""


@dataclass(frozen=True)
class Principal:
    """The caller as its API key describes it. `users` and `user_prefix` bound a tenant; an admin
    reaches every user and the admin routes."""

    key_id: str | None  # None when the server runs with --no-auth
    role: Literal["admin", "tenant"]
    users: tuple[str, ...] = ()
    user_prefix: str | None = None
    rate: Rate | None = None  # requests this key may make (None: no limit)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def reaches(self, user_id: str) -> bool:
        if self.is_admin:
            return True
        return user_id in self.users or (self.user_prefix is not None and user_id.startswith(self.user_prefix))

    def user(self, requested: str | None) -> str:
        """The user a request acts for: the one it names, if this key reaches it; or, when it names
        none, the key's single user. Anything else is refused, never guessed."""
        if requested is None:
            if not self.is_admin and len(self.users) == 1 and self.user_prefix is None:
                return self.users[0]
            raise Forbidden("name the user: pass user_id (this key reaches "
                            + ("every user" if self.is_admin else "more than one user") + ")")
        if not self.reaches(requested):
            raise Forbidden(f"this API key does not reach user '{requested}'")
        return requested

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this route needs an admin API key")


OPEN = Principal(key_id=None, role="admin")  # every request under --no-auth (loopback only)


Authenticate = Callable[[str | None], Principal]  # a bearer token (or None) -> the caller, or Unauthorized
# The same from memory alone: None where it would have to read the store (`KeyRing.authenticate_cached`).
AuthenticateCached = Callable[[str | None], "Principal | None"]


async def caller(request: Request) -> Principal:
    """The authenticated caller of a request: its bearer token's `Principal` (every request is
    `OPEN` when the app has no `authenticate`), after one token of its key's rate limit. The key
    id, never the token, is left in the request state for the access log.

    It runs on the event loop: a key the app's `authenticate_cached` knows is answered there (a
    trip through the thread pool cost each request a hand-off under load); any other key is
    checked in the pool, since that may read the store, and a slow store must not stop the loop."""
    authenticate: Authenticate | None = request.app.state.authenticate
    if authenticate is None:
        return OPEN
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    known: AuthenticateCached | None = request.app.state.authenticate_cached
    who = known(bearer) if known is not None else None
    if who is None:
        who = await anyio.to_thread.run_sync(authenticate, bearer)
    request.state.key_id = who.key_id
    if who.key_id is not None:
        request.app.state.limiter.check(who.key_id, who.rate)
    return who


Caller = Annotated[Principal, Depends(caller)]
