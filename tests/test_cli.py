"""The CLI is a thin layer: each command calls the library and reports errors plainly."""

import json

import pytest
from typer.testing import CliRunner

from memlane.cli import app

from _support import FIXTURES

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLANE_EMBEDDER__PROVIDER", "hash")
    monkeypatch.setenv("MEMLANE_EMBEDDER__MODEL", "hash-256")
    monkeypatch.setenv("MEMLANE_EMBEDDER__CACHE_PATH", "off")
    monkeypatch.setenv("MEMLANE_STORE", str(tmp_path / "cli.db"))
    return tmp_path


def test_ingest_then_search_with_explanations(env):
    result = runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana"])
    assert result.exit_code == 0, result.output
    assert "stored" in result.output
    result = runner.invoke(app, ["search", "pottery class", "--user", "ana", "--explain", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert hits and all(h["memory"]["user_id"] == "ana" for h in hits)
    assert hits[0]["explanation"]["strategies"]


def test_stats_shows_counts_and_model(env):
    runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana"])
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 0
    assert "hash-256" in result.output and "memories" in result.output


def test_a_broken_file_is_an_error_naming_the_file_and_stores_nothing(env):
    bad = env / "bad.jsonl"
    bad.write_text('{"role": "user", "content": "fine"}\n{"role": "user", "content": ""}\n')
    result = runner.invoke(app, ["ingest", str(bad), "--user", "ana"])
    assert result.exit_code == 2
    assert "bad.jsonl" in result.output and "line 2" in result.output
    assert not (env / "cli.db").exists() or "0" in runner.invoke(app, ["stats"]).output


def test_reindex_switches_model(env, monkeypatch):
    runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana"])
    monkeypatch.setenv("MEMLANE_EMBEDDER__DIMS", "64")
    result = runner.invoke(app, ["reindex", "--model", "hash-64"])
    assert result.exit_code == 0, result.output
    assert "64 dims" in result.output


def test_searching_with_the_wrong_model_names_reindex(env, monkeypatch):
    runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana"])
    monkeypatch.setenv("MEMLANE_EMBEDDER__DIMS", "64")
    result = runner.invoke(app, ["search", "pottery class", "--user", "ana"])
    assert result.exit_code == 2
    assert "memlane reindex" in result.output


def test_a_bad_option_value_is_a_config_error_listing_choices(env):
    result = runner.invoke(app, ["bench", "locomo", "--retriever", "magic", "--out", str(env / "x.json")])
    assert result.exit_code == 2
    assert "retrieval.mode" in result.output and "hybrid" in result.output
