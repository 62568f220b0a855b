from datetime import datetime

from memlane.nodes.extract import SessionInput, extraction_messages, fact_key, resolve_date_fields, validate_items
from memlane.nodes.spec import default_topology
from memlane.records import MemoryRecord

SPECS = {s.name: s for s in default_topology()}


def _session():
    turns = [MemoryRecord(id=f"m{i}", user_id="ana", text=text, embed_text=text, speaker=who, session_id="s1",
                          metadata={"turn_id": f"D1:{i}"} if i < 3 else {})
             for i, (who, text) in enumerate([("Ana", "I ran a marathon last Sunday!"), ("Bo", "Wow, congrats"),
                                              ("Ana", "My sister Eva cheered"), ("Bo", "Nice")], start=1)]
    return SessionInput("ana", "s1", datetime(2023, 5, 10, 14, 0), turns)


def test_the_prompt_shows_the_date_the_turn_ids_and_the_schema():
    content = extraction_messages(SPECS["temporal_event"], _session())[1]["content"]
    assert "Session date: 2023-05-10" in content
    assert "[D1:1] Ana: I ran a marathon last Sunday!" in content and "[t4] Bo: Nice" in content
    assert '"event_description"' in content and '{"items": []}' in content


def test_items_are_validated_and_tied_to_their_evidence_turns():
    session = _session()
    answer = {"items": [
        {"who": "Ana", "event_description": "ran a marathon", "date": "last Sunday", "evidence": ["D1:1"]},
        {"who": "Ana", "evidence": ["D1:1"]},                                  # missing field
        {"who": "Ana", "event_description": "x", "evidence": ["D9:9"]},       # cites no turn of the session
    ]}
    valid, problems = validate_items(answer, SPECS["temporal_event"], session.labels())
    assert [(item["event_description"], [t.id for t in ev]) for item, ev in valid] == [("ran a marathon", ["m1"])]
    assert "event_description" in problems[0] and "names no turn" in problems[1]
    assert validate_items("nonsense", SPECS["temporal_event"], session.labels())[1][0].startswith("answer is not")


def test_relative_dates_in_items_resolve_against_the_session_date():
    found = resolve_date_fields(SPECS["temporal_event"], {"date": "last Sunday"}, datetime(2023, 5, 10))
    assert found[0].start == "2023-05-07"
    assert resolve_date_fields(SPECS["temporal_event"], {"date": "2022-12-24"}, datetime(2023, 5, 10))[0].start == "2022-12-24"
    assert resolve_date_fields(SPECS["temporal_event"], {"date": "2022-13-40"}, datetime(2023, 5, 10)) == []


def test_fact_keys_normalize_the_key_fields():
    spec = SPECS["profile_attribute"]
    assert fact_key(spec, {"entity": " Ana ", "attribute": "Home  Town"}) == "profile_attribute|ana|home town"
    assert fact_key(SPECS["temporal_event"], {"who": "Ana"}) is None
