"""The scale benchmark: stores built to an exact size from real sessions, measured in fresh processes."""

import time
from contextlib import contextmanager

import pytest

from memlane import MemoryConfig
from memlane.bench.scale import (
    CallClock,
    memories_of,
    plot_scale,
    recall_against_exact,
    run_scale_benchmark,
    scale_markdown,
    scale_sessions,
    spread_owners,
    write_batches,
)
from memlane.errors import ConfigError, InputError
from memlane.records import Session, Turn


def _sessions(n, turns=3):
    return [Session(turns=[Turn(text=f"note {i}.{t}", speaker="user", turn_id=f"s{i}:{t}") for t in range(turns)],
                    session_id=f"s{i}", date="2023-05-01") for i in range(n)]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8, 9, 40, 41])
def test_sessions_make_exactly_the_memories_asked_for(size):
    chosen, _ = scale_sessions(_sessions(3), size)
    assert sum(memories_of(len(s.turns)) for s in chosen) == size


def test_sessions_are_reused_under_new_ids_when_there_are_too_few():
    chosen, copies = scale_sessions(_sessions(2), 20)  # 4 memories a session: five sessions
    assert copies == 2
    assert [s.session_id for s in chosen] == ["s0", "s1", "s0~1", "s1~1", "s0~2"]
    assert chosen[2].turns[0].turn_id == "s0~1:0" and chosen[2].turns[0].text == "note 0.0"
    assert scale_sessions(_sessions(2), 8) == (_sessions(2), 0)  # enough: used as they are


def test_without_session_memories_a_session_makes_one_memory_per_turn():
    chosen, _ = scale_sessions(_sessions(3), 5, session_memory=False)
    assert [len(s.turns) for s in chosen] == [3, 2]


def test_users_take_sessions_in_turn_and_batches_group_them_by_user():
    owners = spread_owners(5, 2)
    assert owners == ["user-0", "user-1", "user-0", "user-1", "user-0"]
    batches = list(write_batches(_sessions(5), owners, batch_memories=8))
    assert [size for _, size in batches] == [8, 8, 4]
    assert [(owner, [s.session_id for s in group]) for owner, group in batches[0][0]] == [("user-0", ["s0"]), ("user-1", ["s1"])]


def test_recall_is_the_share_of_the_exact_top_k_found():
    exact = [("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.6)]
    assert recall_against_exact([("a", 0.9), ("b", 0.8), ("x", 0.5)], exact) == 0.5
    assert recall_against_exact([("b", 0.8), ("a", 0.9)], exact[:2]) == 1.0
    assert recall_against_exact([], []) == 1.0
    # A copy with the same score as the exact k-th is a tie, not a miss; a lower one is a miss.
    assert recall_against_exact([("a", 0.9), ("b", 0.8), ("c", 0.7), ("d-copy", 0.6)], exact) == 1.0
    assert recall_against_exact([("a", 0.9), ("b", 0.8), ("c", 0.7), ("e", 0.59)], exact) == 0.75


class _Store:
    def outer(self):
        return self.inner() + 1

    def inner(self):
        return 1

    @contextmanager
    def snapshot(self):
        time.sleep(0.01)  # entering reads something: store time
        yield
        time.sleep(0.01)

    def close(self):
        pass


def test_a_call_made_within_another_is_timed_once():
    store = _Store()
    clock = CallClock(store)
    assert store.outer() == 2 and store.inner() == 1
    assert clock.calls == 2 and clock.seconds > 0
    store.close()
    assert clock.calls == 2  # close is not a store call worth timing


def test_a_context_manager_counts_its_entering_and_leaving_not_its_block():
    store = _Store()
    clock = CallClock(store)
    with store.snapshot():
        time.sleep(0.05)  # the caller's work inside the block
        store.inner()
    assert 0.02 <= clock.seconds < 0.05


def test_bad_choices_are_refused_with_the_valid_ones_named():
    with pytest.raises(InputError, match="backends are sqlite, postgresql"):
        run_scale_benchmark(MemoryConfig(), _sessions(2), ["q"], backends=["mysql"])
    with pytest.raises(InputError, match="sizes must be positive"):
        run_scale_benchmark(MemoryConfig(), _sessions(2), ["q"], sizes=[0])


@pytest.fixture(scope="module")
def longmemeval():
    from memlane.bench.datasets import longmemeval_file
    from memlane.bench.tenants import longmemeval_sessions

    try:
        path = longmemeval_file(None)
    except ConfigError as exc:
        pytest.skip(f"no benchmark data: {exc}")
    return longmemeval_sessions(path, 400)


def _check_runs(result, size, users):
    assert {r["scenario"] for r in result["runs"]} == {"one-user", "many-users"}
    for run in result["runs"]:
        write, fresh = run["write"], run["fresh_process"]
        assert write["memories"] == write["stored"] == size and write["memories_per_second"] > 0
        assert 0 < write["store_seconds"] < write["seconds"] and write["embed_seconds"] > 0
        assert run["bytes_after_writing"] > 0 and run["bytes_after_searches"] >= run["bytes_after_writing"] * 0.9
        assert fresh["open_ms"] > 0 and fresh["first_search_ms"] > 0 and run["first_after_writing"]["first_search_ms"] > 0
        search = fresh["search"]
        assert search["queries"] == result["queries"]
        assert 0 < search["store_ms"]["p50"] < search["latency_ms"]["p50"] <= search["latency_ms"]["p99"]
        assert 0 < search["store_share"] < 1
        assert 0 <= fresh["recall"]["mean"] <= 1 and fresh["recall"]["questions"] == result["recall_questions"]
        assert fresh["opened"]["rss_mb"] > 0 and fresh["after_searches"]["peak_mb"] >= fresh["opened"]["rss_mb"]
        if run["scenario"] == "one-user":
            assert run["users"] == write["users"] == 1 and run["user_memories"] == size and run["approximate"]
        else:
            assert run["users"] == write["users"] == users and 0 < run["user_memories"] < size


@pytest.mark.model  # the static embedder is distilled from all-MiniLM-L6-v2 (cached after the first run)
def test_a_small_scale_run_on_sqlite_reports_every_measure(longmemeval, tmp_path):
    sessions, questions = longmemeval
    result = run_scale_benchmark(MemoryConfig(), sessions, questions, backends=["sqlite"], sizes=[2_000], users=50,
                                 queries=4, threshold=500, recall_questions=4, model_queries=0)
    assert result["threshold"] == 500 and result["model_query"] is None
    _check_runs(result, 2_000, 50)
    out = tmp_path / "scale.json"
    result["plot"] = plot_scale(result, out)
    assert (tmp_path / "scale-latency.png").stat().st_size > 0
    text = scale_markdown(result, "memlane bench scale --sizes 2000")
    assert "`memlane bench scale --sizes 2000`" in text and "| sqlite | 2,000 | one-user | 2,000 | yes |" in text


@pytest.mark.model
def test_a_small_scale_run_on_postgresql_uses_the_server_given(longmemeval, postgres_url):
    sessions, questions = longmemeval
    result = run_scale_benchmark(MemoryConfig(), sessions, questions, backends=["postgresql"], sizes=[300], users=10,
                                 queries=3, threshold=100, recall_questions=3, model_queries=0, postgres=postgres_url)
    _check_runs(result, 300, 10)
