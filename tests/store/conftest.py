"""Fresh stores for the contract suite, one fixture parametrized over every backend.

Adding a backend means adding its name to BACKENDS and a branch to `_location`: every test of
tests/store/test_contract.py then runs against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from memlane.store import Store, open_store

BACKENDS = ["sqlite"]
DIMS = 4  # the toy vector index every contract store starts with
MODEL = "toy"


def _location(backend: str, folder: Path) -> str:
    """Where a fresh, empty store of `backend` lives (a URL `open_store` accepts)."""
    if backend == "sqlite":
        return f"sqlite://{folder / 'store.db'}"
    raise AssertionError(f"no location for backend {backend!r}")


@pytest.fixture(params=BACKENDS)
def new_store(request, tmp_path_factory) -> Callable[[], Store]:
    """A factory of fresh, empty stores of one backend, each with an active `DIMS`-dims index.
    Every store it made is closed after the test."""
    opened: list[Store] = []

    def make() -> Store:
        store = open_store(_location(request.param, tmp_path_factory.mktemp(request.param)), create=True)
        store.create_index(MODEL, DIMS, active=True)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(new_store) -> Store:
    """A fresh, empty store of the backend under test, with an active vector index."""
    return new_store()
