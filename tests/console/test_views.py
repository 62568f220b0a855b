"""The console's pure helpers, by hand-computed cases: strategy bars, the question's analysis,
users a key may pick, filters from a form, interval bars, and report summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from memlane.errors import InputError
from memlane.records import Explanation, Hit, MemoryRecord, StrategyHit
from memlane.server.auth import Forbidden, Principal
from memlane.server.console import views
from memlane.server.console.reports import summarize


def hit(memory_id: str, strategies: list[tuple[str, int, float]], notes: list[str] = (),
        analysis: dict | None = None) -> Hit:
    record = MemoryRecord(memory_id, "ana", "text", "text")
    explanation = Explanation([StrategyHit(*s) for s in strategies], fused_score=0.1,
                              weights={"dense": 0.8, "bm25": 1.2}, notes=list(notes), analysis=analysis or {})
    return Hit(record, 0.1, explanation)


def test_a_bar_is_the_score_over_the_strategys_best_on_the_page():
    hits = [hit("a", [("dense", 1, 0.8), ("bm25", 2, 3.0)]), hit("b", [("dense", 2, 0.4), ("bm25", 1, 6.0)]),
            hit("c", [("dense", 3, -0.2)])]
    bars = views.strategy_bars(hits)
    assert [(b.strategy, b.rank, b.fraction) for b in bars[0]] == [("dense", 1, 1.0), ("bm25", 2, 0.5)]
    assert [b.fraction for b in bars[1]] == [0.5, 1.0]
    assert [b.fraction for b in bars[2]] == [0.0]  # a negative score draws no bar


def test_no_strategy_and_no_explanation_give_no_bars():
    plain = Hit(MemoryRecord("a", "ana", "t", "t"), 0.1)
    assert views.strategy_bars([plain, hit("b", [])]) == [[], []]
    assert views.query_analysis([plain]) is None and views.hit_notes(plain) == []


def test_the_questions_analysis_is_read_apart_from_a_hits_own_notes():
    notes = ["time range from 'last May': 2024-05-01..2024-05-31", "entities: Maria, Lisbon",
             "exact strings: ana@x.org", "routed: by keywords (when)",
             "said by Ana, not by Maria, whom the question names"]
    read = {"time_range": {"expression": "last May", "start": "2024-05-01", "end": "2024-05-31"},
            "entities": ["Maria", "Lisbon"], "needles": ["ana@x.org"]}
    found = hit("a", [("dense", 1, 0.5)], notes, read)
    analysis = views.query_analysis([found])
    assert analysis.time_range == {"expression": "last May", "start": "2024-05-01", "end": "2024-05-31"}
    assert analysis.entities == ["Maria", "Lisbon"] and analysis.exact == ["ana@x.org"]
    assert analysis.routing == ["routed: by keywords (when)"] and analysis.weights == {"dense": 0.8, "bm25": 1.2}
    assert views.hit_notes(found) == ["said by Ana, not by Maria, whom the question names"]
    assert views.query_analysis([hit("b", [])]) == views.Analysis(None, [], [], [], {"dense": 0.8, "bm25": 1.2})


def test_the_users_a_key_may_pick():
    stored = ["ana", "bob", "org1/a", "org1/b", "org2/c"]
    assert views.reachable_users(Principal("k", "admin"), stored) == stored
    assert views.reachable_users(Principal("k", "tenant", users=("zed", "ana")), stored) == ["ana", "zed"]
    assert views.reachable_users(Principal("k", "tenant", users=("bob",), user_prefix="org1/"), stored) == [
        "bob", "org1/a", "org1/b"]


def test_the_user_a_page_shows():
    tenant = Principal("k", "tenant", users=("ana", "bob"))
    assert views.pick_user(tenant, None, ["ana", "bob"]) == "ana"
    assert views.pick_user(tenant, "bob", ["ana", "bob"]) == "bob"
    assert views.pick_user(Principal("k", "admin"), None, []) is None
    with pytest.raises(Forbidden):
        views.pick_user(tenant, "cy", ["ana", "bob"])


def test_filters_from_a_form():
    form = {"node_type": "turn, profile_attribute", "category": "semantic", "session_id": " ", "speaker": "Ana",
            "date_from": "2024-05-01", "date_to": "", "as_of": "2024-06-01", "other": "x"}
    assert views.filters_from(form) == {"node_type": ["turn", "profile_attribute"], "category": "semantic",
                                        "speaker": "Ana", "date_from": "2024-05-01", "as_of": "2024-06-01"}
    assert views.filters_from({}) == {}


def test_an_interval_bar_on_an_axis_centred_on_zero():
    assert views.ci_bar(0.05, 0.0, 0.1, span=0.1) == {"low": 0.5, "high": 1.0, "delta": 0.75, "zero": 0.5}
    assert views.ci_bar(-0.3, -0.5, 0.2, span=0.25) == {"low": 0.0, "high": 0.9, "delta": 0.0, "zero": 0.5}


@pytest.mark.parametrize("count, shown", [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"),
                                          (5 * 2**30, "5.0 GiB")])
def test_human_bytes(count, shown):
    assert views.human_bytes(count) == shown


def test_a_report_summary_and_what_is_not_a_report(tmp_path):
    report = {"dataset": "locomo", "questions": 2, "turn_recall": {"1": 0.5, "5": 1.0},
              "session_recall": {"1": 0.5}, "ndcg@10": 0.7, "retriever": "dense",
              "per_category": {"1": {"name": "multi-hop", "questions": 2, "turn_recall@1": 0.5, "turn_recall@10": 1.0,
                                     "turn_recall@20": 1.0}},
              "config": {"embedder": {"model": "m"}}, "per_question": []}
    (tmp_path / "r-recall.png").write_bytes(b"\x89PNG")
    summary = summarize("results:r.json", tmp_path / "r.json", report)
    assert summary.headline == {"turn_recall@1": 0.5, "turn_recall@5": 1.0, "session_recall@1": 0.5, "ndcg@10": 0.7}
    assert summary.plots == ("r-recall.png",) and summary.comparable and summary.name == "r"
    assert summary.shown_columns == ["turn_recall@1", "turn_recall@10"]
    for data in ({"benchmark": "speed"}, [1, 2], {"dataset": "locomo", "questions": 1}):
        with pytest.raises(InputError):
            summarize("results:x.json", Path("x.json"), data)
