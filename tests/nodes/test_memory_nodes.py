"""Memory with an LLM: extraction at ingestion, routing, knowledge updates, consolidation, retention."""

import json

import pytest

from memlane import Memory, NodeSpec
from memlane.errors import NotFoundError

SESSION_1 = [{"role": "user", "content": "I live in Lisbon and I adopted a beagle called Biscuit last week."},
             {"role": "assistant", "content": "Lovely! How is Biscuit settling in?"}]
SESSION_2 = [{"role": "user", "content": "Big news: I moved to Porto for my new job at a bakery."},
             {"role": "assistant", "content": "Congratulations on the move!"}]


def answers(by_node):
    """A scripted-server step answering each extraction call from the node named in its prompt."""
    def step(body):
        prompt = body["messages"][-1]["content"]
        for marker, content in by_node.items():
            if marker in prompt:
                return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return 200, {"choices": [{"message": {"role": "assistant", "content": '{"items": []}'}}]}
    return step


def facts(city, extra=None):
    items = {"items": [{"entity": "user", "attribute": "hometown", "value": city, "context": "said in chat", "evidence": ["t1"]}]}
    return {"lasting facts": json.dumps(items),
            "events in this conversation": json.dumps({"items": extra or []})}


@pytest.fixture
def llm_memory(tmp_path, config, server):
    config.llm.base_url = server.url
    config.llm.model = "scripted"
    config.llm.max_retries = 2
    config.llm.concurrency = 2
    memory = Memory(tmp_path / "nodes.db", config)
    memory._llm_client()._poster.sleep = lambda s: None  # no real waiting between retries
    yield memory
    memory.close()


def test_ingestion_runs_the_default_nodes_and_keeps_evidence(llm_memory, server):
    event = {"who": "user", "event_description": "adopted a beagle called Biscuit", "date": "last week", "evidence": ["t1"]}
    server.play(*[answers(facts("Lisbon", [event]))] * 4)
    llm_memory.add(SESSION_1, user_id="ana", session_date="2023-05-08")
    stored = llm_memory.get_all("ana", filters={"node_type": ["profile_attribute", "temporal_event"]}).records
    assert {r.node_type for r in stored} == {"profile_attribute", "temporal_event"}
    turn = llm_memory.get_all("ana", filters={"node_type": "turn"}).records[0]
    for record in stored:
        assert record.metadata["evidence"] == [turn.id] and record.metadata["entities"] == ["user"]
    event_record = next(r for r in stored if r.node_type == "temporal_event")
    assert event_record.event_dates[0].start == "2023-05-01"  # "last week" from 2023-05-08
    assert event_record.text.startswith("Timestamp: 2023-05-01 | Event: user: adopted a beagle")
    assert len(server.requests) == 4 and {n.name for n in llm_memory.nodes()} >= {"profile_attribute"}


def test_failures_are_reported_and_turns_are_kept(llm_memory, server):
    llm_memory.config.llm.timeout_s = 0.3
    llm_memory._llm = None
    llm_memory._llm_client()._poster.sleep = lambda s: None
    server.play(server.stall(1.0), server.fail(429, "slow down"), server.chat("this is not json"), server.fail(500, "x"),
                server.fail(500, "x"), server.fail(500, "x"), server.chat('{"items": [{"who": "user"}]}'),
                *[server.chat('{"items": []}')] * 4)
    collected = []
    report = llm_memory.ingest([_session(SESSION_1)], user_id="ana", collect=collected)
    assert report.turns == 2 and llm_memory.get_all("ana", filters={"node_type": "turn"}).records
    assert report.failures, "every failed node call or invalid item is on the report"
    assert all(f.session_id == "s1" for f in report.failures)


def _session(messages, day="2023-05-08", sid="s1"):
    from memlane.ingest.formats import parse_messages
    from memlane.records import Session

    return Session(turns=parse_messages(messages), session_id=sid, date=day)


def test_a_moved_city_supersedes_the_old_one_which_ranks_below_and_stays_in_history(llm_memory, server):
    server.play(*[answers(facts("Lisbon"))] * 4)
    llm_memory.ingest([_session(SESSION_1, "2023-05-08", "s1")], user_id="ana")
    server.play(*[answers(facts("Porto"))] * 4)
    llm_memory.ingest([_session(SESSION_2, "2023-09-01", "s2")], user_id="ana")
    profile = llm_memory.get_all("ana", filters={"node_type": "profile_attribute"}).records
    old = next(r for r in profile if "Lisbon" in r.text)
    new = next(r for r in profile if "Porto" in r.text)
    assert old.superseded_by == new.id and old.valid_until.startswith("2023-09-01") and new.current
    assert [e.event for e in llm_memory.history(old.id, user_id="ana")] == ["ADD", "SUPERSEDE"]
    hits = llm_memory.search("Where does the user live? hometown", user_id="ana", filters={"node_type": "profile_attribute"},
                             explain=True)
    assert [h.id for h in hits][:2] == [new.id, old.id]
    assert any("superseded" in n for n in hits[1].explanation.notes)
    then = llm_memory.search("Where does the user live? hometown", user_id="ana", as_of="2023-06-01",
                             filters={"node_type": "profile_attribute"})
    assert [h.id for h in then] == [old.id]


def test_explain_names_the_node_and_the_route(llm_memory, server):
    server.play(*[answers(facts("Lisbon"))] * 4)
    llm_memory.ingest([_session(SESSION_1)], user_id="ana")
    hits = llm_memory.search("Where does the user live? hometown Lisbon", user_id="ana", explain=True)
    nodes = {h.explanation.node for h in hits}
    assert "profile_attribute" in nodes and "turn" in nodes
    assert hits[0].explanation.notes[0].startswith("routed: rules: profile_attribute (live)")
    assert all(h.record.node_type in ("turn", "session", "profile_attribute") for h in hits)


def test_changing_a_template_reembeds_only_that_nodes_memories(llm_memory, server):
    event = {"who": "user", "event_description": "adopted a beagle", "evidence": ["t1"]}
    server.play(*[answers(facts("Lisbon", [event]))] * 4)
    llm_memory.ingest([_session(SESSION_1)], user_id="ana")
    before = {r.id: r.text for r in llm_memory.get_all("ana").records}
    spec = next(s for s in llm_memory.nodes() if s.name == "profile_attribute")
    changed = NodeSpec.model_validate({**spec.to_data(), "template": "{{entity}}'s {{attribute}} is {{value}}"})
    assert llm_memory.define_node(changed) == [("profile_attribute", 2)]
    after = {r.id: r for r in llm_memory.get_all("ana").records}
    changed_ids = {mid for mid in before if before[mid] != after[mid].text}
    assert {after[m].node_type for m in changed_ids} == {"profile_attribute"}
    assert after[changed_ids.pop()].text == "user's hometown is Lisbon"
    assert llm_memory.define_node(changed) == [("profile_attribute", 2)]  # unchanged: same version


def test_nodes_can_be_removed_and_unknown_ones_are_named(llm_memory, server):
    server.play(*[answers({})] * 4)
    llm_memory.ingest([_session(SESSION_1)], user_id="ana")
    llm_memory.remove_node("social_relation")
    assert "social_relation" not in {s.name for s in llm_memory.nodes()}
    with pytest.raises(NotFoundError, match="defined: "):
        llm_memory.remove_node("social_relation")
    server.play(*[answers({})] * 3)
    llm_memory.ingest([_session(SESSION_2, sid="s2")], user_id="ana")
    assert len(server.requests) == 4 + 3  # the removed node no longer runs, and is not re-installed


def test_consolidation_merges_duplicates_and_keeps_their_evidence(llm_memory, server):
    event = {"who": "user", "event_description": "adopted a beagle called Biscuit", "evidence": ["t1"]}
    server.play(*[answers(facts("Lisbon", [event]))] * 4)
    llm_memory.ingest([_session(SESSION_1, sid="s1")], user_id="ana")
    server.play(*[answers(facts("Lisbon", [event]))] * 4)
    llm_memory.ingest([_session(SESSION_1, sid="s2")], user_id="ana")
    events = llm_memory.get_all("ana", filters={"node_type": "temporal_event"}).records
    assert len(events) == 2
    profile = llm_memory.get_all("ana", filters={"node_type": "profile_attribute"}).records
    assert len(profile) == 1 and len(profile[0].metadata["evidence"]) == 2  # same fact: merged at ingestion
    assert llm_memory.consolidate("ana") == 1
    kept = llm_memory.get_all("ana", filters={"node_type": "temporal_event"}).records
    assert len(kept) == 1 and len(kept[0].metadata["evidence"]) == 2
    assert llm_memory.history(events[1].id, user_id="ana")[-1].new_text == f"merged into {kept[0].id}"


def test_retention_expires_and_expired_memories_can_be_restored_until_purged(memory):
    memory.config.retention.episodic_days = 30
    memory.add("I went hiking on Mount Tam", user_id="ana", session_date="2023-01-01")
    memory.add("I started learning Rust", user_id="ana", session_date="2023-06-01")
    assert memory.apply_retention(now="2023-06-10") == 1
    assert all("hiking" not in h.text for h in memory.search("hiking", user_id="ana"))
    expired = memory.expired("ana")
    assert [r.text for r in expired] == ["I went hiking on Mount Tam"]
    memory.restore(expired[0].id, user_id="ana")
    assert "hiking" in memory.search("hiking", user_id="ana")[0].text
    assert memory.apply_retention(now="2023-06-10") == 1
    assert memory.purge("ana") == 1 and memory.expired("ana") == []
    assert [e.event for e in memory.history(expired[0].id, user_id="ana")] == ["ADD", "EXPIRE", "RESTORE", "EXPIRE", "PURGE"]
    with pytest.raises(NotFoundError):
        memory.restore(expired[0].id, user_id="ana")


def test_deleting_a_turn_deletes_the_facts_only_it_supports(llm_memory, server):
    lone = {"items": [{"entity": "user", "attribute": "hometown", "value": "Lisbon", "evidence": ["t1"]}]}
    shared = {"items": [{"who": "user", "event_description": "adopted a beagle", "evidence": ["t1", "t2"]}]}
    server.play(*[answers({"lasting facts": json.dumps(lone), "events in this conversation": json.dumps(shared)})] * 4)
    records = llm_memory.add(SESSION_1, user_id="ana", session_id="s1", session_date="2023-05-08")
    first_turn = next(r for r in records if r.node_type == "turn" and r.turn_index == 0)
    fact = next(r for r in records if r.node_type == "profile_attribute")
    event = next(r for r in records if r.node_type == "temporal_event")
    llm_memory.delete(first_turn.id, user_id="ana")
    assert llm_memory.get(fact.id, user_id="ana") is None
    assert llm_memory.history(fact.id, user_id="ana")[-1].new_text == "its evidence was deleted"
    assert llm_memory.get(event.id, user_id="ana").metadata["evidence"] == [r.id for r in records if r.turn_index == 1]
