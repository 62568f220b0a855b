"""The CLI is a thin layer: each command calls the library and reports errors plainly."""

import json

import pytest
from typer.testing import CliRunner

from memlane.cli import app

from _support import FIXTURES, read_only_folder

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


def test_tune_labels_and_synth_write_jsonl(env):
    from _support import DATA

    labels = env / "labels.jsonl"
    result = runner.invoke(app, ["tune", "labels", "--dataset", "locomo", "--conversations", "26",
                                 "--data", str(DATA / "locomo"), "--out", str(labels)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    assert rows and all(r["user_id"] == "26" and r["positive_turn_ids"] for r in rows)
    assert runner.invoke(app, ["ingest", str(DATA / "locomo" / "26.json")]).exit_code == 0
    synth = env / "synth.jsonl"
    result = runner.invoke(app, ["tune", "synth", "--out", str(synth), "--users", "26"])
    assert result.exit_code == 0, result.output
    assert len(synth.read_text().splitlines()) == 300  # fine_tune.synthetic_per_user
    result = runner.invoke(app, ["tune", "labels", "--dataset", "nope", "--out", str(labels)])
    assert result.exit_code != 0 and "locomo or longmemeval" in result.output


def test_ingest_split_applies_to_longmemeval_only(env):
    result = runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana", "--split", "dev"])
    assert result.exit_code == 2 and "LongMemEval" in result.output


def test_nodes_show_default_prints_loadable_yaml(env):
    from memlane.nodes.spec import default_topology, load_specs

    result = runner.invoke(app, ["nodes", "show", "default"])
    assert result.exit_code == 0
    (env / "topology.yaml").write_text(result.output)
    assert load_specs(env / "topology.yaml") == default_topology()
    runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana"])
    assert "no memory nodes yet" in runner.invoke(app, ["nodes", "list"]).output


@pytest.mark.parametrize("command", [["stats"], ["search", "anything", "--user", "ana"], ["nodes", "list"],
                                     ["consolidate", "--user", "ana"], ["purge", "--user", "ana"]])
def test_commands_that_do_not_add_never_create_a_store(env, command):
    typo = env / "typo.db"
    result = runner.invoke(app, [*command, "--store", str(typo)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "no store at" in result.output
    assert not typo.exists()


def test_a_store_path_with_a_tilde_is_expanded_once(env, monkeypatch):
    monkeypatch.setenv("HOME", str(env / "home"))
    (env / "home").mkdir()
    monkeypatch.chdir(env)
    result = runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana", "--store", "~/x.db"])
    assert result.exit_code == 0, result.output
    assert (env / "home" / "x.db").exists() and not (env / "~").exists()
    assert runner.invoke(app, ["stats", "--store", "~/x.db"]).exit_code == 0


def test_a_store_in_a_read_only_folder_can_be_searched(env):
    folder = env / "frozen"
    folder.mkdir()
    store = folder / "ro.db"
    assert runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana", "--store", str(store)]).exit_code == 0
    with read_only_folder(folder):
        result = runner.invoke(app, ["search", "pottery class", "--user", "ana", "--store", str(store), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)
        assert runner.invoke(app, ["stats", "--store", str(store)]).exit_code == 0
        result = runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "bo", "--store", str(store)])
        assert result.exit_code == 2 and "read-only" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args", [
    ["search", "", "--user", "ana"],
    ["search", "pottery", "--user", "ana", "--limit", "0"],
    ["search", "pottery", "--user", "ana", "--now", "the day after"],
    ["search", "a" * 5000, "--user", "ana"],
    ["search", "pottery \udcff", "--user", "ana"],  # undecodable bytes in argv arrive as surrogates
    ["search", "pottery", "--user", ""],
    ["restore", "no-such-id", "--user", "ana"],
])
def test_bad_input_ends_a_command_with_one_line_and_exit_code_2(env, args):
    assert runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana"]).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_the_store_comes_from_the_config_when_no_flag_or_variable_names_it(env, monkeypatch):
    monkeypatch.delenv("MEMLANE_STORE")
    monkeypatch.setenv("MEMLANE_STORE__URL", str(env / "from-config.db"))
    assert runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana"]).exit_code == 0
    assert (env / "from-config.db").exists()
    assert runner.invoke(app, ["stats"]).exit_code == 0


def test_a_postgresql_url_given_with_store_reaches_postgresql(env, postgres_url):
    from _postgres import postgres_schema

    with postgres_schema(postgres_url) as url:  # '//' must survive: a Path would fold it to 'postgresql:/'
        result = runner.invoke(app, ["ingest", str(FIXTURES / "chat_messages.jsonl"), "--user", "ana", "--store", url])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["search", "pottery class", "--user", "ana", "--store", url, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)[0]["memory"]["user_id"] == "ana"
    assert not (env / "cli.db").exists()  # nothing went to the default SQLite file
