"""The document retrieval benchmark: its question file, its metrics on hand-made rankings, and a
run over a small folder of Markdown files with hashed vectors."""

import json
import math

import pytest

from memlane import MemoryConfig
from memlane.bench.docs import (
    DocQuery,
    chunk_found,
    docs_markdown,
    labelled_part,
    load_queries,
    plot_docs,
    reciprocal_rank_at_k,
    run_docs_benchmark,
    section_in_path,
    summarize,
)
from memlane.errors import InputError


def write_lines(path, *lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- the question file ---------------------------------------------------------------------------------

def test_load_queries_reads_labels_and_numbers_questions_by_line(tmp_path):
    f = write_lines(tmp_path / "q.jsonl",
                    '{"query": "tabs or spaces?", "relevant": ["peps/pep-0008.rst"], '
                    '"section": "Tabs or Spaces?"}',
                    "",
                    '{"query": "who approves a PEP", "relevant": ["peps/pep-0001.rst", "peps/pep-0013.rst"], "id": 7}')
    first, second = load_queries(f)
    assert first == DocQuery(id="1", query="tabs or spaces?", relevant=("peps/pep-0008.rst",), section="Tabs or Spaces?")
    assert second.id == "7" and second.relevant == ("peps/pep-0001.rst", "peps/pep-0013.rst") and second.section is None


@pytest.mark.parametrize("line, field, words", [
    ('{"relevant": ["a.md"]}', "query", "missing or empty"),
    ('{"query": "  ", "relevant": ["a.md"]}', "query", "missing or empty"),
    ('{"query": "q", "relevant": []}', "relevant", "missing or empty"),
    ('{"query": "q", "relevant": "a.md"}', "relevant", "missing or empty"),
    ('{"query": "q", "relevant": ["a.md", 3]}', "relevant", "non-empty document path"),
    ('{"query": "q", "relevant": ["a.md"], "section": ""}', "section", "non-empty text"),
    ('{"query": "q", "relevant": ["a.md"], "chunk": ["x"]}', "chunk", "non-empty text"),
    ('{"query": "q", "relevent": ["a.md"]}', "relevent", "unknown field"),
])
def test_a_bad_line_names_the_file_the_line_and_the_field(tmp_path, line, field, words):
    f = write_lines(tmp_path / "q.jsonl", '{"query": "fine", "relevant": ["a.md"]}', line)
    with pytest.raises(InputError) as caught:
        load_queries(f)
    error = caught.value
    assert (error.file, error.record, error.field) == (str(f), "line 2", field)
    assert words in str(error) and str(f) in str(error) and "line 2" in str(error)


@pytest.mark.parametrize("line", ["not json", "[1, 2]"])
def test_a_line_that_is_not_a_json_object_is_refused(tmp_path, line):
    f = write_lines(tmp_path / "q.jsonl", line)
    with pytest.raises(InputError, match="line 1"):
        load_queries(f)


def test_an_empty_file_and_a_repeated_id_are_refused(tmp_path):
    with pytest.raises(InputError, match="no questions"):
        load_queries(write_lines(tmp_path / "empty.jsonl", ""))
    repeated = write_lines(tmp_path / "q.jsonl", '{"query": "a", "relevant": ["a.md"], "id": "x"}',
                           '{"query": "b", "relevant": ["a.md"], "id": "x"}')
    with pytest.raises(InputError, match="line 1") as caught:
        load_queries(repeated)
    assert caught.value.field == "id"


def test_the_shipped_pep_questions_load():
    from _support import REPO

    dev = load_queries(REPO / "benchmarks" / "queries" / "peps-dev.jsonl")
    heldout = load_queries(REPO / "benchmarks" / "queries" / "peps-heldout.jsonl")
    assert len(dev) == len(heldout) == 80
    assert not {q.query for q in dev} & {q.query for q in heldout}


# -- the metrics, on hand-made rankings ------------------------------------------------------------------

def row(ranks, chunk=None):
    found = [r for r in ranks.values() if r is not None]
    return {"ranks": ranks, "rank": min(found) if found else None, "chunk_found": chunk}


def test_reciprocal_rank_counts_the_best_relevant_rank_within_k():
    assert reciprocal_rank_at_k([3, None], 10) == pytest.approx(1 / 3)
    assert reciprocal_rank_at_k([12, 4], 10) == pytest.approx(1 / 4)
    assert reciprocal_rank_at_k([11], 10) == 0.0
    assert reciprocal_rank_at_k([None], 10) == 0.0


def test_summary_of_a_hand_made_ranking():
    # q1 first; q2 third; q3 missed; q4 has two relevant documents, at 2 and 6.
    rows = [row({"a": 1}, 1.0), row({"b": 3}, 0.0), row({"c": None}), row({"d": 2, "e": 6})]
    report = summarize(rows, resamples=200)
    m = report["metrics"]
    assert m["recall@1"]["mean"] == pytest.approx(1 / 4)
    assert m["recall@5"]["mean"] == pytest.approx(3 / 4)
    assert m["recall@10"]["mean"] == pytest.approx(3 / 4)
    assert m["mrr@10"]["mean"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    # NDCG@10, binary: q1 1; q2 1/log2(4) = 0.5; q3 0; q4 (1/log2 3 + 1/log2 7) / (1 + 1/log2 3)
    q4 = (1 / math.log2(3) + 1 / math.log2(7)) / (1 + 1 / math.log2(3))
    assert m["ndcg@10"]["mean"] == pytest.approx((1 + 0.5 + 0 + q4) / 4)
    # only q1 and q2 carry a section label
    assert m["chunk_recall@5"] == {**m["chunk_recall@5"], "mean": 0.5, "questions": 2}
    assert m["recall@5"]["ci_low"] <= 0.75 <= m["recall@5"]["ci_high"]
    assert report["recall"] == {"1": 0.25, "2": 0.5, "3": 0.75, "4": 0.75, "5": 0.75, "6": 0.75, "7": 0.75,
                                "8": 0.75, "9": 0.75, "10": 0.75}
    assert report["questions"] == 4 and report["misses@10"] == 1


def test_a_section_matches_a_whole_heading_of_the_path_without_markup_or_case():
    assert section_in_path("``dynamic``", "Specification > Details > dynamic")
    assert section_in_path("tabs or spaces?", "Code Lay-out > Tabs or Spaces?")
    assert not section_in_path("Abstract", "Abstract syntax > Grammar")


def test_chunk_found_needs_the_label_under_a_relevant_document_in_the_top_k():
    query = DocQuery(id="1", query="q", relevant=("b.md",), section="Kettle")
    top = [{"source": "a.md", "sections": ["Guide > Kettle"], "texts": ["..."]},
           {"source": "b.md", "sections": ["Guide > Knives", "Guide > Kettle"], "texts": ["...", "..."]}]
    assert chunk_found(query, top) == 1.0 and labelled_part(query, top) == (2, 2)
    assert chunk_found(query, top, k=1) == 0.0 and labelled_part(query, top, k=1) is None
    assert chunk_found(DocQuery(id="2", query="q", relevant=("b.md",), chunk="left  CUPBOARD"),
                       [{"source": "b.md", "sections": ["Guide"], "texts": ["in the left\ncupboard"]}]) == 1.0
    assert math.isnan(chunk_found(DocQuery(id="3", query="q", relevant=("b.md",)), top))


# -- a run over a small folder -----------------------------------------------------------------------------

DOCS = {
    "kitchen.md": "# Kitchen guide\n\n## Kettle\n\nThe blue kettle lives in the left cupboard. Descale it with "
                  "vinegar every month.\n\n## Knives\n\nSharpen the knives on Sundays and never put them in the "
                  "dishwasher.\n",
    "travel.md": "# Travel policy\n\n## Booking\n\nBook trains rather than flights for trips under five hundred "
                 "kilometres.\n\n## Expenses\n\nClaim expenses within thirty days with a photo of the receipt.\n",
    "garden.md": "# Garden notes\n\n## Tomatoes\n\nWater the tomatoes every evening in July and tie them to "
                 "bamboo canes.\n\n## Compost\n\nTurn the compost heap once a fortnight.\n",
    "security.md": "# Security rules\n\n## Passwords\n\nPasswords must be rotated every ninety days and never "
                   "shared over chat.\n\n## Laptops\n\nLock your laptop screen whenever you leave your desk.\n",
}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "handbook"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def bm25_config(tmp_path):
    config = MemoryConfig()
    config.embedder.provider = "hash"
    config.embedder.model = "hash-256"
    config.embedder.cache_path = str(tmp_path / "vectors.sqlite")
    config.retrieval.mode = "bm25"  # exact words decide: the ranking below is known
    return config


QUESTIONS = [
    DocQuery(id="kettle", query="where does the blue kettle live and how is it descaled with vinegar",
             relevant=("handbook/kitchen.md",), section="Kettle"),
    DocQuery(id="expenses", query="how do I claim expenses with a photo of the receipt",
             relevant=("handbook/travel.md",), section="Expenses", chunk="photo of the receipt"),
    DocQuery(id="passwords", query="how often are passwords rotated", relevant=("handbook/security.md",)),
]


def test_a_run_over_a_folder_finds_each_document_first(folder, bm25_config, tmp_path):
    seen = []
    report = run_docs_benchmark(bm25_config, folder, QUESTIONS, on_progress=lambda d, t: seen.append((d, t)))
    for key in ("dataset", "questions", "recall", "metrics", "latency_ms", "ingest_seconds", "embed_seconds",
                "documents", "chunks", "machine", "config", "per_question", "cold_import"):
        assert key in report
    assert report["dataset"] == "docs" and report["questions"] == 3
    assert report["documents"] == 4 and report["chunks"] >= 8
    assert report["cold_import"] is True and report["config"]["embedder"]["cache_path"] == "off"
    assert not (tmp_path / "vectors.sqlite").exists()  # a cold import writes no vector cache
    assert seen[-1] == (3, 3)
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert report["first_search_ms"] > 0 and len(report["per_question"]) == 3  # timed apart, not a question
    rows = {q["id"]: q for q in report["per_question"]}
    assert [rows[i]["rank"] for i in ("kettle", "expenses", "passwords")] == [1, 1, 1]
    assert rows["kettle"]["ranked"][0] == "handbook/kitchen.md"
    assert rows["kettle"]["chunk_found"] == 1.0 and rows["expenses"]["chunk_found"] == 1.0
    assert rows["passwords"]["chunk_found"] is None
    assert rows["kettle"]["labelled_part"] == [1, 1]
    assert report["metrics"]["recall@1"]["mean"] == 1.0
    assert report["metrics"]["chunk_recall@5"]["questions"] == 2


def test_a_relevant_path_that_was_not_imported_is_an_error(folder, bm25_config):
    wrong = DocQuery(id="x", query="kettle", relevant=("kitchen.md",))  # not under handbook/
    with pytest.raises(InputError, match="kitchen.md") as caught:
        run_docs_benchmark(bm25_config, folder, [wrong])
    assert caught.value.field == "relevant"


def test_the_report_renders_as_markdown_with_a_plot(folder, bm25_config, tmp_path):
    report = run_docs_benchmark(bm25_config, folder, QUESTIONS[:1])
    out = tmp_path / "out" / "docs.json"
    report["plots"] = plot_docs(report, out)
    assert (out.parent / "docs-recall.png").stat().st_size > 1000
    text = docs_markdown(report, "memlane bench docs --out docs.json")
    assert "| recall@5 | 1.000 |" in text and "docs-recall.png" in text
    assert f"| first search (loads the model, reads the store) | {report['first_search_ms']:.0f} ms |" in text
    json.dumps(report)  # the report is plain JSON
