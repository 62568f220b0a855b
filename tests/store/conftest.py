"""Fresh stores for the contract suite, one fixture parametrized over every backend.

Adding a backend means adding its name to BACKENDS and a branch to `_location`: every test of
tests/store/test_contract.py then runs against it.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Callable

import pytest

from _postgres import postgres_schema

from memlane.store import Store, open_store

BACKENDS = ["sqlite", "postgresql"]
DIMS = 4  # the toy vector index every contract store starts with
MODEL = "toy"


def _location(backend: str, request, cleanup: ExitStack, tmp_path_factory) -> str:
    """Where a fresh, empty store of `backend` lives (a URL `open_store` accepts)."""
    if backend == "sqlite":
        return f"sqlite://{tmp_path_factory.mktemp(backend) / 'store.db'}"
    if backend == "postgresql":
        return cleanup.enter_context(postgres_schema(request.getfixturevalue("postgres_url")))
    raise AssertionError(f"no location for backend {backend!r}")


@pytest.fixture(params=BACKENDS)
def new_store(request, tmp_path_factory) -> Callable[[], Store]:
    """A factory of fresh, empty stores of one backend, each with an active `DIMS`-dims index.
    Every store it made is closed (and its PostgreSQL schema dropped) after the test."""
    with ExitStack() as cleanup:

        def make() -> Store:
            store = open_store(_location(request.param, request, cleanup, tmp_path_factory), create=True)
            cleanup.callback(store.close)  # closed before its schema is dropped (last in, first out)
            store.create_index(MODEL, DIMS, active=True)
            return store

        yield make


@pytest.fixture
def store(new_store) -> Store:
    """A fresh, empty store of the backend under test, with an active vector index."""
    return new_store()
