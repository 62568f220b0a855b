"""A memory node defined as data: what an LLM extracts, how each item is validated, embedded and keyed.

    name: profile                      # lower-case id; the node_type of its memories
    category: semantic                 # episodic | procedural | semantic | social
    description: ...                   # one line, shown to the router and in listings
    prompt: ...                        # extraction instructions for the LLM
    schema: {type: object, properties: {...}, required: [...]}   # JSON Schema of one item
    template: "Profile: {{entity}} | {{attribute}}: {{value}} ({{context}})"
    date_fields: [date]                # resolved to ISO dates against the session date
    entity_fields: [entity]            # names the item is about (entity anchors)
    evidence_field: evidence           # the turn ids the item was read from
    key_fields: [entity, attribute]    # same key, other value, later date: the old item is superseded
    value_fields: [value]              # what "other value" compares (default: every other field)
    route_keywords: [favorite, like]   # question words that send a search to this node

Templates use `{{field}}` for item fields, plus `{{session_date}}` (the session's day) and
`{{absolute_date}}` (the first date field's resolved ISO date, else the session's day).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from memlane.errors import InputError
from memlane.records import Category, NodeType

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
BUILTINS = ("session_date", "absolute_date")
RESERVED = {t.value for t in NodeType}


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    category: Category
    description: str = ""
    prompt: str = Field(min_length=10)
    schema_: dict[str, Any] = Field(alias="schema")
    template: str = Field(min_length=3)
    date_fields: list[str] = Field(default_factory=list)
    entity_fields: list[str] = Field(default_factory=list)
    evidence_field: str = "evidence"
    key_fields: list[str] = Field(default_factory=list)
    value_fields: list[str] = Field(default_factory=list)
    route_keywords: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be 2-41 characters of a-z, 0-9 and _, starting with a letter")
        if value in RESERVED:
            raise ValueError(f"'{value}' is reserved for verbatim memories; choose another name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "NodeSpec":
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(self.schema_)
        except SchemaError as exc:
            raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from None
        if self.schema_.get("type") != "object" or not isinstance(self.schema_.get("properties"), dict):
            raise ValueError("schema must describe an object with 'properties'")
        fields = set(self.schema_["properties"])
        for label, names in (("date_fields", self.date_fields), ("entity_fields", self.entity_fields),
                             ("key_fields", self.key_fields), ("value_fields", self.value_fields),
                             ("evidence_field", [self.evidence_field])):
            unknown = [n for n in names if n not in fields]
            if unknown:
                raise ValueError(f"{label} names {', '.join(unknown)}, which the schema does not define "
                                 f"(fields: {', '.join(sorted(fields))})")
        used = set(_PLACEHOLDER.findall(self.template))
        unknown = sorted(used - fields - set(BUILTINS))
        if unknown:
            raise ValueError(f"template uses {', '.join('{{' + u + '}}' for u in unknown)}, which is neither a "
                             f"schema field nor one of {', '.join(BUILTINS)}")
        if not used:
            raise ValueError("template uses no {{field}}: every item would embed the same text")
        return self

    @property
    def fields(self) -> list[str]:
        return list(self.schema_["properties"])

    def compared_fields(self) -> list[str]:
        """The fields whose values tell two items with the same key apart."""
        if self.value_fields:
            return self.value_fields
        skip = set(self.key_fields) | {self.evidence_field}
        return [f for f in self.fields if f not in skip]

    def item_schema(self) -> dict[str, Any]:
        return self.schema_

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def fingerprint(self) -> str:
        return json.dumps(self.to_data(), sort_keys=True)


def render(template: str, item: dict[str, Any], builtins: dict[str, str]) -> str:
    """Fill `{{field}}` placeholders; lists are joined with ', ', missing values become ''."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        raw = builtins.get(name) if name in BUILTINS else item.get(name)
        if raw is None:
            return ""
        if isinstance(raw, list):
            return ", ".join(str(v) for v in raw)
        return str(raw)

    text = _PLACEHOLDER.sub(value, template)
    # A missing optional field leaves "| Label: |" behind; drop such empty segments.
    parts = [p.strip() for p in text.split("|")]
    kept = [p for p in parts if p and not re.fullmatch(r"[^:]{1,40}:\s*(\(\s*\))?", p)]
    return " | ".join(kept) if kept else text.strip()


def parse_spec(data: Any, source: str = "node") -> NodeSpec:
    if not isinstance(data, dict):
        raise InputError(f"a node definition must be a mapping, got {type(data).__name__}", file=source,
                         fix="write name, category, prompt, schema and template as keys")
    try:
        return NodeSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'node'}: {e['msg']}" for e in exc.errors())
        name = data.get("name", "?")
        raise InputError(f"node '{name}' is invalid: {problems}", file=source,
                         fix="see the node format in README.md (memlane nodes show profile prints an example)") from None


def load_specs(path: str | Path) -> list[NodeSpec]:
    """Nodes from a YAML or JSON file holding one node, a list of nodes, or {nodes: [...]}."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file does not exist", file=file, fix="check the path") from None
    try:
        if file.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml and json raise several types; all mean the same to the user
        raise InputError(f"cannot parse: {exc}", file=file, fix="write valid YAML or JSON") from None
    if isinstance(data, dict) and "nodes" in data:
        data = data["nodes"]
    items = data if isinstance(data, list) else [data]
    specs = [parse_spec(item, file) for item in items]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"node name(s) defined twice: {', '.join(duplicates)}", file=file, fix="give each node its own name")
    return specs


def default_topology() -> list[NodeSpec]:
    """The four nodes memlane ships for conversations."""
    return load_specs(Path(__file__).with_name("default_topology.yaml"))
