"""The multi-tenant benchmark: interleaved users in one store, first and later searches timed."""

import pytest

from memlane import MemoryConfig
from memlane.bench.tenants import pick_users, run_tenants_benchmark, tenants_markdown
from memlane.errors import InputError
from memlane.records import Session, Turn


def _sessions(n):
    return [Session(turns=[Turn(text=f"I went hiking near lake {i} with my dog", speaker="user"),
                           Turn(text=f"Lake {i} sounds lovely; how was the trail?", speaker="assistant", role="assistant")],
                    session_id=f"s{i}", date=f"2023-05-{1 + i % 28:02d}") for i in range(n)]


def test_sessions_are_spread_over_users_and_every_search_is_timed():
    result = run_tenants_benchmark(MemoryConfig(), _sessions(12), ["Where did I go hiking?"],
                                   users=4, searched_users=3, searches_per_user=3)
    assert result["store"]["users"] == 4 and result["store"]["sessions"] == 12
    assert result["store"]["memories"] == 12 * 3  # two turns and one session memory each
    assert result["search"]["users_searched"] == 3
    for key in ("first_search_ms", "repeat_search_ms"):
        assert set(result["search"][key]) == {"p50", "p95", "p99"} and result["search"][key]["p50"] > 0
    assert "first search of a user (3 users)" in tenants_markdown(result, "memlane bench tenants")


def test_the_users_searched_depend_on_the_seed_only_not_on_order():
    owners = [f"user-{i % 50}" for i in range(500)]
    picked = pick_users(owners, 10)
    assert len(set(picked)) == 10 and set(picked) <= set(owners)
    assert pick_users(list(reversed(owners)), 10) == picked  # a set's order varies between processes


def test_a_bad_count_is_refused_by_name():
    with pytest.raises(InputError, match="searches_per_user must be at least 1"):
        run_tenants_benchmark(MemoryConfig(), _sessions(2), ["q"], users=2, searches_per_user=0)
