"""Cached views are per user generation: a write renews the views of the users whose memories it
changes, in every process, and leaves every other user's cached view as it is. Two stores on one
schema stand for two processes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from _postgres import postgres_schema

from memlane.records import HistoryEvent, MemoryRecord
from memlane.store.postgres import PostgresStore

AT = "2023-01-01T00:00:00Z"
V = np.array([1, 0, 0, 0], np.float32)


def rec(mid: str, user: str = "ana", text: str | None = None) -> MemoryRecord:
    text = text or f"note {mid}"
    return MemoryRecord(id=mid, user_id=user, text=text, embed_text=text, recorded_at=AT)


@pytest.fixture
def stores(postgres_url):
    """(this process's store, another process's store) on one new schema, each user with two memories."""
    with postgres_schema(postgres_url) as url:
        here, there = PostgresStore(url), PostgresStore(url)
        try:
            here.create_index("toy", 4, active=True)
            here.write([rec("a1"), rec("a2"), rec("b1", "bo"), rec("b2", "bo")], [V] * 4, [])
            yield here, there
        finally:
            here.close()
            there.close()


CHANGES = {
    "add": lambda s: s.write([rec("a9")], [V], []),
    "update": lambda s: s.replace(rec("a1", text="changed"), V, HistoryEvent("a1", "UPDATE", "note a1", "changed", AT)),
    "amend": lambda s: s.write([], [], [], amended=[replace(rec("a1"), superseded_by="a2")]),
    "merge": lambda s: s.merge(replace(rec("a1"), metadata={"merged": ["a2"]}), ["a2"], []),
    "delete": lambda s: s.delete("ana", ["a1"], []),
    "expire": lambda s: s.expire("ana", ["a1"], AT, "test"),
    "delete_user": lambda s: s.delete_user("ana", AT),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
@pytest.mark.parametrize("by", ["this process", "another process"])
def test_a_change_to_a_users_memories_renews_their_view_only(stores, change, by):
    here, there = stores
    anas, bos = here._view("ana"), here._view("bo")
    change(here if by == "this process" else there)
    assert here._view("ana") is not anas
    assert here._view("ana").ids == [r.id for r in here.list_all("ana")]
    assert here._view("bo") is bos  # bo's memories did not change: the cached view stays


def test_a_restore_renews_the_view(stores):
    here, there = stores
    here.expire("ana", ["a1"], AT, "test")
    view = here._view("ana")
    there.restore("ana", ["a1"], AT, {})
    assert here._view("ana") is not view and sorted(here._view("ana").ids) == ["a1", "a2"]


def test_other_users_writes_keep_a_view(stores):
    here, there = stores
    view = here._view("ana")
    there.write([rec("b3", "bo")], [V], [])
    here.write([rec("b4", "bo")], [V], [])
    here.delete("bo", ["b1"], [])
    there.delete_user("bo", AT)
    assert here._view("ana") is view
    assert there._view("ana").ids == view.ids


def test_clear_renews_every_view(stores):
    here, there = stores
    views = {user: here._view(user) for user in ("ana", "bo")}
    there.clear()
    for user, view in views.items():
        assert here._view(user) is not view and here._view(user).ids == []


def test_an_index_swap_renews_every_view(stores):
    here, there = stores
    views = {user: here._view(user) for user in ("ana", "bo")}
    new = there.create_index("toy-2", 4)
    batch = there.missing_from_index(new, 100, sessions=False)
    there.put_index_vectors(new, batch, [V * -1] * len(batch))
    assert here._view("ana") is views["ana"]  # building an index changes no search
    there.activate_index(new)
    for user, view in views.items():
        assert here._view(user) is not view and here._view(user).index == new.name
        assert here.dense_candidates(user, V, 1, None)[0][1] == pytest.approx(-1.0)
