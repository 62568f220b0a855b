"""The LoCoMo and LongMemEval runners, reports and comparisons, on small fixtures."""

import json

import pytest

from memlane import MemoryConfig
from memlane.bench.compare import compare_reports
from memlane.bench.locomo import evidence_ids, load_locomo, run_locomo
from memlane.bench.longmemeval import load_longmemeval, run_longmemeval, stratified_split
from memlane.bench.models import memory_category_scores
from memlane.bench.report import write_report
from memlane.ingest.formats import load_conversations

from _support import DATA, FIXTURES


@pytest.fixture
def hash_config(tmp_path):
    config = MemoryConfig()
    config.embedder.provider = "hash"
    config.embedder.model = "hash-256"
    config.embedder.cache_path = "off"
    return config


def test_evidence_ids_unpack_packed_entries():
    assert evidence_ids(["D1:3", "D2:4; D2:5", "D1:3"]) == ["D1:3", "D2:4", "D2:5"]


def test_locomo_report_has_the_promised_keys(hash_config, tmp_path):
    conversations = load_locomo([DATA / "locomo" / "26.json"])
    report = run_locomo(conversations, hash_config, limit=30)
    for key in ("dataset", "questions", "turn_recall", "session_recall", "ndcg@10", "per_category",
                "latency_ms", "ingest_seconds", "config", "per_question"):
        assert key in report
    assert set(report["turn_recall"]) == {"1", "5", "10", "20"}
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert 0.0 <= report["turn_recall"]["1"] <= report["turn_recall"]["20"] <= 1.0
    first = report["per_question"][0]
    assert first["evidence_ranks"] == {"D1:3": first["evidence_ranks"]["D1:3"]}
    out = tmp_path / "r" / "locomo.json"
    write_report(report, out, "memlane bench locomo --out locomo.json")
    assert json.loads(out.read_text())["command"].startswith("memlane bench locomo")
    assert "turn_recall@10" in out.with_suffix(".md").read_text()
    assert (out.parent / "locomo-recall.png").stat().st_size > 1000
    assert (out.parent / "locomo-categories.png").stat().st_size > 1000


def test_bm25_finds_a_verbatim_question_first(hash_config):
    hash_config.retrieval.mode = "bm25"
    conversation = load_conversations(FIXTURES / "locomo_mini.json")[0]
    conversation.questions[0]["question"] = "The puppy learned to sit"
    conversation.questions[0]["evidence"] = ["D2:1"]
    report = run_locomo([conversation], hash_config)
    assert report["per_question"][0]["evidence_ranks"] == {"D2:1": 1}
    assert report["turn_recall"]["1"] == 1.0


def test_longmemeval_runner_scores_sessions_and_turns(hash_config):
    conversations = load_conversations(FIXTURES / "longmemeval_mini.json")
    report = run_longmemeval(conversations, hash_config)
    assert report["dataset"] == "longmemeval"
    assert set(report["session_recall_any"]) == {"1", "3", "5", "10"}
    q = report["per_question"][0]
    assert set(q["session_ranks"]) == set(conversations[0].questions[0]["answer_session_ids"])
    # two sessions only: every answer session is within the top 3
    assert report["session_recall_all"]["3"] == 1.0


def test_abstention_questions_are_counted_and_left_out(hash_config):
    conversations = load_conversations(FIXTURES / "longmemeval_mini.json")
    conversations[0].questions[0]["question_id"] += "_abs"
    report = run_longmemeval(conversations, hash_config)
    assert report["abstention_questions"] == 1 and report["questions"] == 0


def test_stratified_split_is_deterministic_and_twenty_percent_per_type():
    items = [(f"q{i}", "a" if i < 50 else "b") for i in range(80)]
    first, second = stratified_split(items), stratified_split(list(reversed(items)))
    assert first == second
    assert sum(1 for i, t in items if t == "a" and first[i] == "holdout") == 10
    assert sum(1 for i, t in items if t == "b" and first[i] == "holdout") == 6


def test_longmemeval_split_partitions_the_questions():
    path = FIXTURES / "longmemeval_mini.json"
    ids = lambda split: {c.conversation_id for c in load_longmemeval(path, split)}  # noqa: E731
    assert ids("dev") | ids("holdout") == ids("all") and not ids("dev") & ids("holdout")


def test_compare_pairs_questions_and_sees_a_difference(hash_config):
    conversations = load_locomo([DATA / "locomo" / "26.json"])
    hash_config.retrieval.mode = "bm25"
    a = run_locomo(conversations, hash_config, limit=60)
    hash_config.retrieval.mode = "full"
    b = run_locomo(conversations, hash_config, limit=60)
    rows = {r["metric"]: r for r in compare_reports(a, b)}
    row = rows["turn_recall@10"]
    assert row["delta"] == pytest.approx(row["b"] - row["a"])
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    assert compare_reports(a, a)[0]["delta"] == 0.0


def test_memory_category_scores_weight_by_questions():
    result = {"dataset": "locomo", "per_category": {
        "1": {"questions": 10, "turn_recall@10": 0.2}, "4": {"questions": 30, "turn_recall@10": 0.6},
        "2": {"questions": 5, "turn_recall@10": 1.0}, "5": {"questions": 9, "turn_recall@10": 0.0}}}
    assert memory_category_scores(result) == {"episodic": 1.0, "semantic": pytest.approx(0.5)}


def test_miss_analysis_sorts_missed_evidence_into_causes(hash_config):
    from memlane.bench.misses import CAUSES, classify, miss_analysis, misses_markdown

    assert classify(12, "What did Ana paint?", "anything") == "near"
    assert classify(None, "What did Ana paint?", "I painted a lake") == "no_overlap"  # 'paint' vs 'painted': no stemming
    assert classify(None, "What lake did Ana paint?", "I painted a lake") == "weak_overlap"
    conversations = load_locomo([DATA / "locomo" / "26.json"])
    report = run_locomo(conversations, hash_config, limit=40)
    analysis = miss_analysis(report, conversations)
    missed = sum(sum(v.values()) for v in analysis["misses"].values())
    in_top = sum(1 for q in report["per_question"] if q["category"] in (1, 2, 3, 4)
                 for r in q["evidence_ranks"].values() if r is not None and r <= 10)
    assert missed + in_top == sum(analysis["totals"].values())
    text = misses_markdown(analysis, "memlane bench misses r.json --out m.md")
    assert all(cause in text for cause in CAUSES)


def test_locomo_paths_accept_a_file_or_a_folder_of_files(tmp_path):
    from memlane.bench.datasets import locomo_paths

    assert locomo_paths(DATA / "locomo" / "26.json") == [DATA / "locomo" / "26.json"]
    assert len(locomo_paths(DATA / "locomo")) == 7
    assert len(locomo_paths(DATA)) == 7


def test_reports_never_carry_api_keys(hash_config):
    hash_config.llm.api_key = "sk-secret-llm"
    hash_config.embedder.api_key = "sk-secret-embed"
    report = run_locomo(load_locomo([DATA / "locomo" / "26.json"]), hash_config, limit=2)
    text = json.dumps(report)
    assert "sk-secret" not in text and report["config"]["llm"]["model"] == ""


def test_a_run_reads_its_vector_cache_before_timing_and_says_so(hash_config, tmp_path):
    conversations = load_conversations(FIXTURES / "longmemeval_mini.json")
    assert run_longmemeval(conversations, hash_config)["cache_warm_up"] is None  # cache off: nothing read
    hash_config.embedder.cache_path = str(tmp_path / "v.sqlite")
    run_longmemeval(conversations, hash_config)  # fills the cache
    report = run_longmemeval(conversations, hash_config)
    assert report["cache_warm_up"]["bytes"] > 0 and report["cache_warm_up"]["path"].endswith("v.sqlite")
    out = tmp_path / "lme.json"
    write_report(report, out, "memlane bench longmemeval --out lme.json")
    assert "vector cache read before timing" in out.with_suffix(".md").read_text()


def test_locomo_on_postgresql_ranks_every_question_as_on_sqlite(hash_config, postgres_url):
    """The same conversation on both backends: every question's evidence and session ranks equal
    (the full retriever: dense, BM25, context, sessions, entities, MMR)."""
    conversations = load_locomo([DATA / "locomo" / "26.json"])
    on_sqlite = run_locomo(conversations, hash_config, limit=40)
    on_postgres = run_locomo(conversations, hash_config, limit=40, store=postgres_url)
    assert (on_sqlite["store"], on_postgres["store"]) == ("sqlite", "postgresql")
    ranks = [[(q["evidence_ranks"], q["session_ranks"]) for q in r["per_question"]] for r in (on_sqlite, on_postgres)]
    assert len(ranks[0]) == 40 and ranks[0] == ranks[1]


def test_a_store_password_never_reaches_a_report(monkeypatch):
    from memlane.cli import _command_line

    monkeypatch.setattr("sys.argv", ["memlane", "bench", "locomo", "--store", "postgresql://ana:pa55@db.example/m"])
    assert _command_line() == "memlane bench locomo --store 'postgresql://ana:***@db.example/m'"
