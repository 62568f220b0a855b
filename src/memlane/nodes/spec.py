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

The schema is JSON Schema 2020-12, checked against its metaschema and, stricter than JSON Schema
itself, refused when a key is not a 2020-12 keyword (`{type: string, description: what happened,
in one sentence}` in YAML has a stray key `in one sentence`: quote such values), when a keyword has
no value, or when a `$ref` does not point inside the schema.
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

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Keywords whose value is one schema, a {name: schema} map, or a list of schemas (JSON Schema 2020-12).
_ONE_SCHEMA = {"additionalProperties", "unevaluatedProperties", "items", "unevaluatedItems", "contains",
               "propertyNames", "if", "then", "else", "not", "contentSchema"}
_SCHEMA_MAP = {"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"}
_SCHEMA_LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
KEYWORDS = frozenset(_ONE_SCHEMA | _SCHEMA_MAP | _SCHEMA_LIST | {
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment",
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
    "maxProperties", "minProperties", "required", "dependentRequired", "dependencies",
    "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    "format", "contentEncoding", "contentMediaType",
})
_NULL_ALLOWED = {"const", "default"}  # the only keywords whose value may itself be null
_MAX_DEPTH = 32
_MAX_VALUES = 10_000


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

        problems = schema_problems(self.schema_)
        if problems:
            raise ValueError("; ".join(problems))
        try:
            Draft202012Validator.check_schema(self.schema_)
        except SchemaError as exc:
            where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in exc.path)
            raise ValueError(f"schema{where} is not a valid JSON Schema: {exc.message}") from None
        unresolved = _unresolved_refs(self.schema_)
        if unresolved:
            raise ValueError("; ".join(unresolved))
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


def schema_problems(schema: Any) -> list[str]:
    """What a node schema holds beyond JSON Schema 2020-12, each as "path: problem" (empty when fine).

    JSON Schema ignores unknown keys; a node schema refuses them, since they are nearly always a
    slip (a comma in a YAML flow mapping splits a description into a second key with no value).
    """
    oversized = _oversized(schema)
    if oversized:
        return [f"schema: {oversized}"]
    problems: list[str] = []
    if isinstance(schema, dict) and "$schema" in schema and str(schema["$schema"]).rstrip("#") != SCHEMA_DIALECT:
        problems.append(f"schema.$schema is {schema['$schema']!r}, but node items are validated as JSON Schema "
                        f"2020-12: drop $schema or set it to {SCHEMA_DIALECT}")
    _walk(schema, "schema", problems, top=True)
    return problems


def _oversized(value: Any) -> str | None:
    """What makes a schema larger than a node needs (a YAML alias bomb, a cycle, a 5000-digit number)."""
    count = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > _MAX_VALUES or depth > _MAX_DEPTH:
            return (f"too large (more than {_MAX_VALUES} values or {_MAX_DEPTH} levels deep, counting YAML "
                    "aliases each time they are used)")
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 2**63:
            digits = len(str(abs(item))) if abs(item) < 10**4000 else "over 4000"
            return f"holds a number beyond 2**63 ({digits} digits); node schemas take numbers below that"
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return None


def _walk(schema: Any, path: str, problems: list[str], top: bool = False) -> None:
    if isinstance(schema, bool):
        return
    if schema is None:
        problems.append(f"{path}: no schema (null) where a schema is needed; write {{type: string}} or similar")
        return
    if not isinstance(schema, dict):
        problems.append(f"{path}: a {type(schema).__name__} where a schema (a mapping) is needed")
        return
    for key, value in schema.items():
        if key not in KEYWORDS:
            hint = (" (a comma inside a YAML {...} mapping starts a new key: quote text that holds a comma)"
                    if value is None else "")
            problems.append(f"{path}: '{key}' is not a JSON Schema keyword{hint}; keywords include type, "
                            "description, enum, items, properties, required, minItems, format")
        elif value is None and key not in _NULL_ALLOWED:
            problems.append(f"{path}: '{key}' has no value (null)")
        elif key in _ONE_SCHEMA:
            _walk(value, f"{path}.{key}", problems)
        elif key in _SCHEMA_MAP and isinstance(value, dict):
            for name, sub in value.items():
                _walk(sub, f"{path}.{key}.{name}", problems)
        elif key in _SCHEMA_LIST and isinstance(value, list):
            for i, sub in enumerate(value):
                _walk(sub, f"{path}.{key}[{i}]", problems)
        elif key == "dependencies" and isinstance(value, dict):
            for name, sub in value.items():
                if not isinstance(sub, list):
                    _walk(sub, f"{path}.{key}.{name}", problems)
        elif key == "$id" and not top:
            problems.append(f"{path}: '$id' is only allowed at the top of a node schema")
        elif key in ("$ref", "$dynamicRef") and not (isinstance(value, str) and value.startswith("#")):
            problems.append(f"{path}: '{key}' {value!r} points outside the schema; a node schema must be "
                            "self-contained (refer to #/$defs/NAME)")


def _repair_comma_slips(schema: Any) -> Any:
    """A copy of `schema` with each key that is no keyword and has no value joined into the description."""
    if not isinstance(schema, dict):
        return schema
    strays = [k for k, v in schema.items() if k not in KEYWORDS and v is None]
    if not isinstance(schema.get("description"), str):
        strays = []
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in strays:
            continue
        if key == "description" and strays:
            out[key] = ", ".join([value, *strays])
        elif key in _ONE_SCHEMA:
            out[key] = _repair_comma_slips(value)
        elif key in _SCHEMA_MAP and isinstance(value, dict):
            out[key] = {name: _repair_comma_slips(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LIST and isinstance(value, list):
            out[key] = [_repair_comma_slips(sub) for sub in value]
        else:
            out[key] = value
    return out


def _unresolved_refs(schema: dict[str, Any]) -> list[str]:
    """Each `$ref` that does not resolve inside the schema (checked once the schema is valid)."""
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    resolver = Registry().with_resource("urn:memlane:node", DRAFT202012.create_resource(schema)).crawl() \
        .resolver("urn:memlane:node")
    problems = []
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in ("$ref", "$dynamicRef"):
                if isinstance(item.get(key), str):
                    try:
                        resolver.lookup(item[key])
                    except Unresolvable:
                        problems.append(f"schema: '{key}' {item[key]!r} points to nothing in the schema")
            stack.extend(v for k, v in item.items() if k not in ("enum", "const", "default", "examples"))
        elif isinstance(item, list):
            stack.extend(item)
    return problems


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


def parse_spec(data: Any, source: str = "node", *, stored: bool = False) -> NodeSpec:
    """A node definition, checked; InputError naming the node, the field and the problem otherwise.

    `stored=True` is for definitions read back from a store, which an older memlane may have
    written from its default topology with a YAML comma slip (`description: what happened, in one
    sentence` stored as `{"description": "what happened", "in one sentence": null}`): such a stray
    key is joined back into the description instead of refused.
    """
    if not isinstance(data, dict):
        raise InputError(f"a node definition must be a mapping, got {type(data).__name__}", file=source,
                         fix="write name, category, prompt, schema and template as keys")
    if stored and isinstance(data.get("schema"), dict) and not _oversized(data["schema"]):
        data = {**data, "schema": _repair_comma_slips(data["schema"])}
    try:
        return NodeSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe_error(e) for e in exc.errors())
        name = data.get("name") if isinstance(data.get("name"), str) else "?"
        name = name if len(name) <= 60 else name[:57] + "..."
        raise InputError(f"node '{name}' is invalid: {problems}", file=source,
                         fix="see the node format in README.md (memlane nodes show profile prints an example)") from None


def _describe_error(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


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
