"""Running memory nodes over sessions with an LLM: prompts, validation, and the records they make.

Every (session, node) pair is one chat completion, run `llm.concurrency` at a time, so the nodes
of a session run in parallel. The LLM sees the session's date and its turns, each prefixed with
a turn id, and answers {"items": [...]}; each item is validated against the node's JSON Schema.
A failed call, malformed JSON or an invalid item becomes an `ExtractionFailure`: it is reported,
and the verbatim turns are stored regardless.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Sequence

from memlane.errors import LLMError
from memlane.ingest.temporal import resolve_expressions
from memlane.nodes.spec import NodeSpec, render
from memlane.records import EventDate, MemoryRecord

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SYSTEM_PROMPT = ("You extract structured long-term memories from conversations. Answer with one JSON object "
                 "and nothing else. Never invent facts that the transcript does not state.")


@dataclass(frozen=True)
class ExtractionFailure:
    user_id: str
    session_id: str | None
    node: str
    error: str


@dataclass
class SessionInput:
    """One session to run the nodes over: its turn records (ids assigned) and its date."""

    user_id: str
    session_id: str | None
    session_date: datetime
    turns: list[MemoryRecord]

    def labels(self) -> dict[str, MemoryRecord]:
        """The id shown to the LLM for each turn: the source's turn id when it has one, else t1, t2..."""
        out = {}
        for i, turn in enumerate(self.turns, start=1):
            label = str(turn.metadata.get("turn_id") or f"t{i}")
            out[label if label not in out else f"t{i}"] = turn
        return out


def extraction_messages(spec: NodeSpec, session: SessionInput) -> list[dict[str, str]]:
    transcript = "\n".join(f"[{label}] {turn.speaker or 'someone'}: {turn.text}" for label, turn in session.labels().items())
    user = (
        f"{spec.prompt}\n\nSession date: {session.session_date.date().isoformat()}\n\n"
        f"Transcript (each line starts with its turn id in brackets):\n{transcript}\n\n"
        f'Answer with JSON: {{"items": [...]}}. Each item must match this JSON Schema:\n'
        f"{json.dumps(spec.item_schema(), ensure_ascii=False)}\n"
        f'Put the ids of the turns an item comes from in "{spec.evidence_field}". '
        'If nothing applies, answer {"items": []}.'
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def validate_items(answer: Any, spec: NodeSpec, labels: dict[str, MemoryRecord]) -> tuple[list[tuple[dict, list[MemoryRecord]]], list[str]]:
    """(valid items with their evidence turns, problems). An item naming no turn of the session is invalid."""
    from jsonschema import Draft202012Validator

    if isinstance(answer, list):
        answer = {"items": answer}
    if not isinstance(answer, dict) or not isinstance(answer.get("items"), list):
        return [], [f'answer is not {{"items": [...]}}: {str(answer)[:200]}']
    validator = Draft202012Validator(spec.item_schema())
    valid, problems = [], []
    for n, item in enumerate(answer["items"], start=1):
        errors = sorted(validator.iter_errors(item), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "item"
            problems.append(f"item {n}: {where}: {errors[0].message}")
            continue
        cited = item.get(spec.evidence_field) or []
        cited = [cited] if isinstance(cited, str) else cited
        evidence = [labels[str(c).strip("[] ")] for c in cited if str(c).strip("[] ") in labels]
        if not evidence:
            problems.append(f"item {n}: {spec.evidence_field} names no turn of this session ({cited})")
            continue
        valid.append((item, evidence))
    return valid, problems


def fact_key(spec: NodeSpec, item: dict[str, Any]) -> str | None:
    """What makes two items the same fact: the node and its key fields, normalized. None: no key."""
    if not spec.key_fields:
        return None
    values = [" ".join(str(item.get(f, "")).lower().split()) for f in spec.key_fields]
    if not all(values):
        return None
    return spec.name + "|" + "|".join(values)


def resolve_date_fields(spec: NodeSpec, item: dict[str, Any], anchor: datetime) -> list[EventDate]:
    """ISO dates kept as they are; relative expressions ("last Tuesday") resolved against the session date."""
    found = []
    for name in spec.date_fields:
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip()
        if _ISO_DAY.match(value):
            try:
                date.fromisoformat(value)
            except ValueError:
                continue
            found.append(EventDate(value, value, value, "day"))
        else:
            found.extend(resolve_expressions(value, anchor)[:1])
    return found


def _entities(spec: NodeSpec, item: dict[str, Any]) -> list[str]:
    values = []
    for name in spec.entity_fields:
        value = item.get(name)
        values += [str(v) for v in value] if isinstance(value, list) else ([str(value)] if value else [])
    return list(dict.fromkeys(values))


def build_record(spec: NodeSpec, version: int, item: dict[str, Any], evidence: list[MemoryRecord],
                 session: SessionInput, record_id: str, recorded_at: str) -> MemoryRecord:
    events = resolve_date_fields(spec, item, session.session_date)
    day = session.session_date.date().isoformat()
    builtins = {"session_date": day, "absolute_date": events[0].start if events else day}
    text = render(spec.template, item, builtins)
    first = evidence[0]
    return MemoryRecord(
        id=record_id, user_id=session.user_id, agent_id=first.agent_id, category=spec.category, node_type=spec.name,
        text=text, embed_text=text, speaker=None, session_id=session.session_id,
        session_date=session.session_date.isoformat(), turn_index=None, recorded_at=recorded_at, event_dates=events,
        metadata={"fields": item, "entities": _entities(spec, item), "evidence": [t.id for t in evidence],
                  "evidence_turn_ids": [t.metadata.get("turn_id") for t in evidence if t.metadata.get("turn_id")],
                  "node_version": version},
        fact_key=fact_key(spec, item), valid_from=session.session_date.isoformat(),
    )


def extract(client, nodes: Sequence[tuple[NodeSpec, int]], sessions: Sequence[SessionInput], *, new_id,
            recorded_at: str) -> tuple[list[MemoryRecord], list[ExtractionFailure]]:
    """Run every node over every session; returns the extracted records and every failure."""
    jobs = [(session, spec, version) for session in sessions for spec, version in nodes]
    answers = client.map([extraction_messages(spec, session) for session, spec, _ in jobs], json_output=True)
    records: list[MemoryRecord] = []
    failures: list[ExtractionFailure] = []
    for (session, spec, version), answer in zip(jobs, answers):
        if isinstance(answer, LLMError):
            failures.append(ExtractionFailure(session.user_id, session.session_id, spec.name, str(answer)))
            continue
        valid, problems = validate_items(answer, spec, session.labels())
        failures += [ExtractionFailure(session.user_id, session.session_id, spec.name, p) for p in problems]
        records += [build_record(spec, version, item, evidence, session, new_id(), recorded_at) for item, evidence in valid]
    return records, failures
