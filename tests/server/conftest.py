"""Fixtures of the server tests: an app over a fresh store with a key ring, and keys of each kind."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from memlane.server.app import create_app


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
