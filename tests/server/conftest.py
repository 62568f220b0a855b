"""Fixtures of the server tests: an app over a fresh store with a key ring, and keys of each kind."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from memlane.server.app import create_app
from memlane.server.keys import KeyRing
from memlane.store import open_store


@pytest.fixture
def records(memory):
    """A second handle on the memory's store, for its service records (keys, jobs)."""
    store = open_store(memory.path)
    yield store
    store.close()


@pytest.fixture
def ring(records) -> KeyRing:
    return KeyRing(records)


@dataclass
class Keys:
    """Tokens of the test keys: an admin; tenants of one user, of two users, and of a prefix."""

    admin: str
    ana: str  # users: ana
    pair: str  # users: bob, cy
    org: str  # user prefix: org1/


@pytest.fixture
def keys(ring) -> Keys:
    return Keys(admin=ring.create("admin")[1], ana=ring.create("tenant", users=["ana"])[1],
                pair=ring.create("tenant", users=["bob", "cy"])[1], org=ring.create("tenant", user_prefix="org1/")[1])


@pytest.fixture
def app(memory, ring, records):
    return create_app(memory, ring.authenticate, records=records)


@pytest.fixture
def client(app) -> TestClient:
    return TestClient(app)
