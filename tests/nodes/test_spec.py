import json

import pytest

from memlane.errors import InputError
from memlane.nodes.spec import default_topology, load_specs, parse_spec, render

PET = {
    "name": "pet", "category": "semantic", "description": "Pets people own.",
    "prompt": "List the pets each person owns.",
    "schema": {"type": "object", "properties": {"owner": {"type": "string"}, "animal": {"type": "string"},
                                                "pet_name": {"type": "string"},
                                                "evidence": {"type": "array", "items": {"type": "string"}}},
               "required": ["owner", "animal", "evidence"]},
    "template": "Pet: {{owner}} has a {{animal}} named {{pet_name}}",
    "entity_fields": ["owner"], "key_fields": ["owner", "pet_name"], "value_fields": ["animal"],
    "route_keywords": ["pet", "dog", "cat"],
}


def test_the_default_topology_has_the_four_conversation_nodes():
    specs = {s.name: s for s in default_topology()}
    assert set(specs) == {"temporal_event", "profile_attribute", "project_career", "social_relation"}
    assert {s.category.value for s in specs.values()} == {"episodic", "semantic", "procedural", "social"}
    assert specs["temporal_event"].date_fields == ["date"]
    assert specs["profile_attribute"].key_fields == ["entity", "attribute"]
    assert set(specs["project_career"].fields) >= {"agent", "project", "type", "status", "motivation", "outcome", "evidence"}
    assert set(specs["social_relation"].fields) >= {"person_a", "person_b", "relationship", "details", "interaction", "sentiment"}


@pytest.mark.parametrize("change, message", [
    ({"name": "turn"}, "reserved"),
    ({"name": "Bad Name"}, "a-z"),
    ({"category": "working"}, "category"),
    ({"template": "Pet: {{owner}} {{colour}}"}, "colour"),
    ({"key_fields": ["owner", "age"]}, "age"),
    ({"schema": {"type": "object", "properties": {"x": {"type": "strin"}}}}, "JSON Schema"),
    ({"template": "no placeholders"}, "no {{field}}"),
])
def test_bad_definitions_are_refused_with_the_reason(change, message):
    with pytest.raises(InputError) as caught:
        parse_spec({**PET, **change}, "pets.yaml")
    assert message in str(caught.value) and "pets.yaml" in str(caught.value)


def test_nodes_load_from_yaml_and_json(tmp_path):
    (tmp_path / "n.json").write_text(json.dumps({"nodes": [PET]}))
    (tmp_path / "n.yaml").write_text("- " + json.dumps(PET))
    assert load_specs(tmp_path / "n.json")[0] == load_specs(tmp_path / "n.yaml")[0]
    (tmp_path / "twice.json").write_text(json.dumps([PET, PET]))
    with pytest.raises(InputError, match="defined twice"):
        load_specs(tmp_path / "twice.json")


def test_templates_fill_fields_and_drop_empty_segments():
    template = "Timestamp: {{absolute_date}} | Event: {{who}}: {{event_description}} | Place: {{place}}"
    text = render(template, {"who": "Ana", "event_description": "ran a marathon"},
                  {"absolute_date": "2023-05-07", "session_date": "2023-05-08"})
    assert text == "Timestamp: 2023-05-07 | Event: Ana: ran a marathon"
    assert render("Tags: {{tags}}", {"tags": ["a", "b"]}, {}) == "Tags: a, b"
