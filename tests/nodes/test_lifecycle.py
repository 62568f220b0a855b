from datetime import datetime

import numpy as np

from memlane.nodes.lifecycle import duplicate_groups, expired_by_retention, plan_updates
from memlane.nodes.spec import default_topology
from memlane.records import Category, MemoryRecord

SPECS = {s.name: s for s in default_topology()}


def _fact(mid, value, day, evidence):
    return MemoryRecord(id=mid, user_id="ana", text=f"Profile: Ana | hometown: {value}", embed_text="",
                        node_type="profile_attribute", category=Category.SEMANTIC, session_id=f"s-{day}",
                        metadata={"fields": {"entity": "Ana", "attribute": "hometown", "value": value}, "evidence": evidence},
                        fact_key="profile_attribute|ana|hometown", valid_from=f"2023-0{day}-01T10:00:00")


def test_a_new_value_supersedes_the_current_fact():
    old = _fact("old", "Lisbon", 1, ["t1"])
    new = _fact("new", "Porto", 5, ["t9"])
    plan = plan_updates([new], {old.fact_key: old}, SPECS, "now")
    assert plan.insert == [new] and plan.amended == [old]
    assert old.superseded_by == "new" and old.valid_until == new.valid_from
    assert [e.event for e in plan.events] == ["ADD", "SUPERSEDE"]


def test_the_same_value_again_merges_its_evidence():
    old = _fact("old", "Lisbon", 1, ["t1"])
    again = _fact("again", "lisbon ", 3, ["t5"])
    plan = plan_updates([again], {old.fact_key: old}, SPECS, "now")
    assert plan.insert == [] and plan.amended == [old] and old.metadata["evidence"] == ["t1", "t5"]
    assert old.superseded_by is None


def test_an_older_statement_arriving_late_is_stored_already_superseded():
    current = _fact("current", "Porto", 5, ["t9"])
    late = _fact("late", "Lisbon", 1, ["t1"])
    plan = plan_updates([late], {current.fact_key: current}, SPECS, "now")
    assert plan.insert == [late] and late.superseded_by == "current" and late.valid_until == current.valid_from
    assert current.superseded_by is None


def test_one_batch_applies_its_facts_in_date_order():
    later, earlier = _fact("b", "Porto", 5, ["t9"]), _fact("a", "Lisbon", 1, ["t1"])
    current = {}
    plan = plan_updates([later, earlier], current, SPECS, "now")
    assert earlier.superseded_by == "b" and later.superseded_by is None and current[later.fact_key] is later
    assert plan.insert == [earlier, later]


def test_duplicates_group_by_equal_text_or_close_vectors():
    vectors = np.array([[1, 0], [0.999, 0.045], [0, 1], [1, 0]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = ["Ana likes tea", "Ana enjoys tea", "Bo likes cats", "ana likes  TEA"]
    assert duplicate_groups(texts, vectors, threshold=0.99) == [[0, 1, 3]]
    assert duplicate_groups(texts, vectors, threshold=0.9999) == [[0, 3]]


def test_retention_expires_by_category_age():
    old = MemoryRecord(id="a", user_id="u", text="x", embed_text="x", category=Category.EPISODIC, session_date="2023-01-01")
    fresh = MemoryRecord(id="b", user_id="u", text="x", embed_text="x", category=Category.EPISODIC, session_date="2023-06-01")
    fact = MemoryRecord(id="c", user_id="u", text="x", embed_text="x", category=Category.SEMANTIC, session_date="2020-01-01")
    due = expired_by_retention([old, fresh, fact], {"episodic": 90, "semantic": None}, datetime(2023, 6, 15))
    assert [(r.id, rule) for r, rule in due] == [("a", "episodic older than 90 days")]
