"""Helpers shared by the server tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import socket


def bearer(token: str) -> dict[str, str]:
    """The header that carries an API key."""
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tampered(token: str) -> str:
    """The token with its last character changed: the right key id, a wrong secret."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")
