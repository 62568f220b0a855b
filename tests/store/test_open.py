"""open_store is the one place a backend is chosen; capabilities are asked for by name."""

from __future__ import annotations

from pathlib import Path

import pytest

import memlane
from memlane.config import MemoryConfig
from memlane.errors import ConfigError, StoreError
from memlane.store import CAPABILITIES, open_store, require


def test_a_path_or_sqlite_url_or_config_opens_a_sqlite_store(tmp_path):
    from memlane.store.sqlite import SQLiteStore

    for location in (f"sqlite://{tmp_path / 'u.db'}", tmp_path / "u.db",
                     MemoryConfig.model_validate({"store": {"url": str(tmp_path / "u.db")}})):
        opened = open_store(location)
        assert isinstance(opened, SQLiteStore) and opened.path == str(tmp_path / "u.db")
        opened.close()


def test_an_unknown_scheme_names_the_valid_ones_and_a_missing_store_is_not_created(tmp_path):
    with pytest.raises(ConfigError, match="unknown store scheme 'mysql://'.*file path.*sqlite:///.*postgresql://"):
        open_store("mysql://db/memories")
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_every_backend_declares_its_capabilities_and_a_missing_one_is_refused_by_name(tmp_path):
    store = open_store(tmp_path / "s.db")
    assert store.capabilities == frozenset(CAPABILITIES)
    require(store, "reindex")

    class Minimal:
        capabilities = frozenset({"transfer"})

    with pytest.raises(ConfigError, match="Minimal backend does not support reindex; it offers transfer"):
        require(Minimal(), "reindex")
    with pytest.raises(ValueError, match="unknown capability"):
        require(store, "teleport")
    store.close()


def test_no_module_above_the_store_imports_a_concrete_store():
    root = Path(memlane.__file__).parent
    for module in root.rglob("*.py"):
        if "store" in module.relative_to(root).parts[:-1]:
            continue
        text = module.read_text(encoding="utf-8")
        assert "store.sqlite" not in text and "store.postgres" not in text, module


def test_a_scratch_store_is_fresh_and_gone_after(tmp_path):
    from memlane.store import backend_name, scratch_store

    with scratch_store(None, "bench") as location:
        store = open_store(location)
        store.create_index("toy", 2, active=True)
        store.close()
        assert Path(location).exists() and backend_name(location) == "sqlite"
    assert not Path(location).exists()


def test_a_scratch_schema_on_postgresql_is_dropped_after(postgres_url):
    import psycopg

    from memlane.store import backend_name, scratch_store

    with scratch_store(postgres_url) as location:
        assert backend_name(location) == "postgresql"
        store = open_store(location)
        store.create_index("toy", 2, active=True)
        assert store.active_index().dims == 2
        store.close()
        schema = location.rsplit("search_path%3D", 1)[1].split("%2C")[0]
        assert schema.startswith("memlane_scratch_")
    with psycopg.connect(postgres_url) as conn:
        left = conn.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", (schema,))
        assert left.fetchone()[0] == 0
