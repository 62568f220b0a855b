"""UserContext: neighbours, speakers, mentions, sessions, flags and context scores, computed above
the store seam from a user's search view."""

from __future__ import annotations

import numpy as np
import pytest

from memlane.records import MemoryRecord
from memlane.retrieve.context import UserContext, context_cosines, context_norms
from memlane.store import open_store
from memlane.store import view as view_module

AT = "2023-01-01T00:00:00Z"


def note(mid, user="ana", text=None, **fields):
    text = text or f"memory {mid}"
    fields.setdefault("node_type", "fact")
    return MemoryRecord(id=mid, user_id=user, text=text, embed_text=text, recorded_at=AT, **fields)


def turn(i, index, session="s1", user="ana", speaker=None):
    return note(f"t{i}", user=user, text=f"turn {i}", session_id=session, turn_index=index, node_type="turn",
                speaker=speaker)


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "s.db")
    s.create_index("toy", 2, active=True)
    yield s
    s.close()


def test_turns_around_walks_a_session_in_order_up_to_the_reach(store):
    # Written out of order, and one turn in another session: order comes from turn_index, per session.
    store.write([turn(3, 3), turn(1, 1), turn(2, 2), turn(4, 4), turn(9, 0, "s2")], np.ones((5, 2), np.float32), [])
    user = UserContext(store, "ana")
    around = user.turns_around(["t2", "t9", "unknown"], 2)
    assert sorted(around["t2"]) == [("t1", 1), ("t3", 1), ("t4", 2)]
    assert around["t9"] == [] and "unknown" not in around
    assert sorted(user.turns_around(["t1"], 1)["t1"]) == [("t2", 1)]
    assert user.session_ids(["t1", "t9", "unknown"]) == {"t1": "s1", "t9": "s2"}


def test_turns_around_are_kept_with_the_view_and_follow_a_write(store):
    store.write([turn(1, 1), turn(2, 2)], np.ones((2, 2), np.float32), [])
    first = UserContext(store, "ana").turns_around(["t2"], 2)
    assert first == {"t2": [("t1", 1)]}
    assert UserContext(store, "ana").turns_around(["t2"], 2)["t2"] is first["t2"]  # the next search's, kept
    store.write([turn(3, 3)], np.ones((1, 2), np.float32), [])  # a new turn after t2: a new view
    assert sorted(UserContext(store, "ana").turns_around(["t2"], 2)["t2"]) == [("t1", 1), ("t3", 1)]
    user = UserContext(store, "ana")
    assert user.turns_around(["t1"], 1)["t1"] == [("t2", 1)]
    assert user.turns_around(["t1"], 2)["t1"] == [("t2", 1), ("t3", 2)]  # kept per reach


def test_mentioning_checks_speaker_and_text_of_the_given_ids_only(store):
    store.write([note("m1", text="I met zoë today"), note("m2", text="nothing here"),
                 note("m9", text="hello", speaker="Zoë"), note("m4", text="ZOË again")],
                np.ones((4, 2), np.float32), [])
    ana = UserContext(store, "ana")
    assert ana.mentioning(["m1", "m2", "m9"], ["ZOË"]) == {"m1", "m9"}
    assert ana.mentioning(["m9"], ["Zo"]) == set()  # a speaker is matched whole
    assert UserContext(store, "bo").mentioning(["m1"], ["zoë"]) == set()


def test_speakers_and_flags_are_the_users_own(store):
    dated = note("m2", text="on 2023-05-01", superseded_by="m3")
    store.write([turn(1, 1, speaker="Ana"), dated, note("m3", text="new"), turn(5, 1, user="bo", speaker="Bo")],
                np.ones((4, 2), np.float32), [])
    ana = UserContext(store, "ana")
    assert ana.speakers() == ["Ana"] and UserContext(store, "bo").speakers() == ["Bo"]
    assert ana.speakers_of(["t1", "m2", "t5"]) == {"t1": "ana"}
    assert ana.superseded(["m2", "m3", "t5"]) == {"m2"}


def test_context_vectors_mix_in_the_neighbours(store):
    vectors = np.array([[1, 0], [0, 1], [1, 1], [1, -1]], np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.write([turn(1, 1), turn(2, 2), turn(3, 3), note("m4")], vectors, [])
    view = UserContext(store, "ana").view
    query = np.array([0.6, 0.8], np.float32)
    cosines = context_cosines(view, 0.5, query)
    middle = view.position["t2"]
    expected = vectors[1] + 0.5 * (vectors[0] + vectors[2])
    assert cosines[middle] == pytest.approx(float(expected @ query) / np.linalg.norm(expected), abs=1e-6)
    assert cosines[view.position["m4"]] == pytest.approx(float(vectors[3] @ query), abs=1e-6)  # not a turn: its own
    first = view.position["t1"]  # one neighbour only
    expected = vectors[0] + 0.5 * vectors[1]
    assert cosines[first] == pytest.approx(float(expected @ query) / np.linalg.norm(expected), abs=1e-6)
    assert context_norms(view, 0.5) is context_norms(view, 0.5)  # kept with the view


def _fresh(store, user="ana"):
    store._views.clear()
    return UserContext(store, user).view


@pytest.mark.parametrize("later_session", ["s2", "s1"])
def test_what_a_view_derived_is_carried_over_a_write_only_while_its_rows_keep_their_links(store, later_session):
    rng = np.random.default_rng(5)
    store.write([turn(1, 1), turn(2, 2), note("m3")], rng.normal(size=(3, 2)).astype(np.float32), [])
    user = UserContext(store, "ana")
    before = user.view
    norms = context_norms(before, 0.5)
    around = user.turns_around(["t2"], 1)
    mask = view_module.node_type_mask(before, ["turn"])
    # A new session only appends rows; a turn continuing s1 changes t2's link (t2 -> t4).
    store.write([turn(4, 3, later_session), note("m5")], rng.normal(size=(2, 2)).astype(np.float32), [])
    after = UserContext(store, "ana").view
    carried = ("context_norms", 0.5) in after.derived
    assert carried == (later_session == "s2")
    merged_norms, merged_around = context_norms(after, 0.5), UserContext(store, "ana").turns_around(["t2"], 1)
    merged_mask = view_module.node_type_mask(after, ["turn"])
    if carried:  # the old rows' answers are the very ones computed before, extended over the new rows
        assert np.array_equal(merged_norms[:3], norms) and merged_around["t2"] is around["t2"]
    fresh = _fresh(store)
    assert np.array_equal(after.previous, fresh.previous) and np.array_equal(after.following, fresh.following)
    assert np.allclose(merged_norms, context_norms(fresh, 0.5), atol=1e-6)
    assert merged_around == UserContext(store, "ana").turns_around(["t2"], 1)
    assert np.array_equal(merged_mask, view_module.node_type_mask(fresh, ["turn"])) and len(mask) == 3
    assert sorted(merged_around["t2"]) == ([("t1", 1)] if later_session == "s2" else [("t1", 1), ("t4", 1)])


def test_context_candidates_rank_by_context_and_keep_to_the_filter(store):
    vectors = np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)
    store.write([turn(1, 1), turn(2, 2), turn(3, 3), note("m4")], vectors, [])
    user = UserContext(store, "ana")
    ranked = user.context_candidates(np.array([0, 1], np.float32), 0.5, 10, None)
    # t3 and its one neighbour both point at the query; t2's other neighbour, t1, pulls it away.
    assert [mid for mid, _ in ranked][:2] == ["t3", "t2"] and ranked[0][1] > ranked[1][1]
    only_turns = user.context_candidates(np.array([1, 0], np.float32), 0.5, 10, {"node_type": "turn"})
    assert "m4" not in {mid for mid, _ in only_turns} and len(only_turns) == 3
    assert UserContext(store, "bo").context_candidates(np.array([1, 0], np.float32), 0.5, 10, None) == []
