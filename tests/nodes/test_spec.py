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


def test_the_default_event_description_is_one_described_string():
    specs = {s.name: s for s in default_topology()}
    schema = specs["temporal_event"].item_schema()["properties"]["event_description"]
    assert schema == {"type": "string", "description": "what happened, in one sentence"}


def test_every_default_schema_uses_only_json_schema_keywords():
    from memlane.nodes.spec import schema_problems

    assert all(schema_problems(spec.item_schema()) == [] for spec in default_topology())


def test_a_yaml_comma_slip_is_refused_naming_node_property_and_key(tmp_path):
    path = tmp_path / "pets.yaml"
    path.write_text(json.dumps({**PET, "schema": "SCHEMA"}).replace(
        '"SCHEMA"', "{type: object, properties: {owner: {type: string, description: who owns it, and since when},"
                    " animal: {type: string}, evidence: {type: array, items: {type: string}}}}"))
    with pytest.raises(InputError) as caught:
        load_specs(path)
    message = str(caught.value)
    assert "node 'pet'" in message and "schema.properties.owner" in message and "'and since when'" in message
    assert "comma" in message and "pets.yaml" in message


@pytest.mark.parametrize("animal, message", [
    ({"type": "string", "in one sentence": None},
     "schema.properties.animal: 'in one sentence' is not a JSON Schema keyword"),
    ({"type": "string", "colour": "red"}, "'colour' is not a JSON Schema keyword"),
    (None, "schema.properties.animal: no schema (null)"),
    ({"type": "array", "items": None}, "schema.properties.animal: 'items' has no value"),
    ({"type": "array", "items": {"type": "string", "descripton": "x"}}, "schema.properties.animal.items: 'descripton'"),
    ({"anyOf": [{"type": "string"}, {"typ": "null"}]}, "schema.properties.animal.anyOf[1]: 'typ'"),
    ({"$ref": "#/$defs/missing"}, "'#/$defs/missing' points to nothing"),
    ({"$ref": "https://example.com/animal.json"}, "points outside the schema"),
    ({"type": "integer", "maximum": 10**400}, "beyond 2**63"),
    ({"type": "string", "pattern": "("}, "schema.properties.animal.pattern is not a valid JSON Schema"),
])
def test_property_schemas_beyond_json_schema_are_refused(animal, message):
    schema = {**PET["schema"], "properties": {**PET["schema"]["properties"], "animal": animal}}
    with pytest.raises(InputError) as caught:
        parse_spec({**PET, "schema": schema}, "pets.yaml")
    assert message in str(caught.value) and "node 'pet'" in str(caught.value)


def test_only_json_schema_2020_12_is_taken():
    with pytest.raises(InputError, match="2020-12"):
        parse_spec({**PET, "schema": {**PET["schema"], "$schema": "http://json-schema.org/draft-07/schema#"}})
    schema = {**PET["schema"], "$schema": "https://json-schema.org/draft/2020-12/schema",
              "$defs": {"name": {"type": "string", "minLength": 1}},
              "properties": {**PET["schema"]["properties"], "pet_name": {"$ref": "#/$defs/name"}}}
    assert parse_spec({**PET, "schema": schema}).item_schema()["properties"]["pet_name"] == {"$ref": "#/$defs/name"}


def test_yaml_alias_bombs_and_cycles_are_refused_quickly(tmp_path):
    bomb = "\n".join(["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)])
    spec = json.dumps({**PET, "schema": "SCHEMA"}).replace(
        '"SCHEMA"',
        "{type: object, properties: {owner: {type: string}, animal: {enum: *a39}, evidence: {type: array}}}")
    (tmp_path / "bomb.yaml").write_text(f"{bomb}\nnodes:\n  - {spec}\n")
    with pytest.raises(InputError, match="too large"):
        load_specs(tmp_path / "bomb.yaml")
    (tmp_path / "cycle.yaml").write_text(json.dumps({**PET, "schema": "SCHEMA"}).replace(
        '"SCHEMA"', "&s {type: object, properties: {owner: *s, animal: {type: string}, evidence: {type: array}}}"))
    with pytest.raises(InputError, match="too large"):
        load_specs(tmp_path / "cycle.yaml")


def test_a_definition_stored_by_an_older_memlane_gets_its_comma_slip_repaired():
    [spec] = [s for s in default_topology() if s.name == "temporal_event"]
    old = json.loads(spec.fingerprint())  # stores keep this sorted JSON
    old["schema"]["properties"]["event_description"] = {"description": "what happened", "in one sentence": None,
                                                         "type": "string"}
    with pytest.raises(InputError, match="in one sentence"):
        parse_spec(old, "store node temporal_event")
    repaired = parse_spec(old, "store node temporal_event", stored=True)
    assert repaired.item_schema()["properties"]["event_description"] == {
        "type": "string", "description": "what happened, in one sentence"}
