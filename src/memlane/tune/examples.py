"""Training and evaluation examples: (query, positive memories[, hard negatives]) as JSONL.

One line per query:

    {"query": "Where did Ana move?", "user_id": "ana", "positive_ids": ["<memory id>", ...],
     "positives": ["<text the index embeds>", ...], "negatives": ["...", ...],
     "now": "2023-05-08", "source": "labeled", "group": "multi-hop"}

Label files written by hand or by `memlane tune labels` may name positives instead by
`positive_turn_ids` (the turn ids of the source conversation, e.g. LoCoMo's "D1:3"), resolved
against a store by `resolve_labels`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from memlane.errors import InputError
from memlane.store import Store, scan

_FIX = ('write one JSON object per line with "query", "user_id" and "positive_ids" (memory ids) or '
        '"positive_turn_ids" (turn ids of the ingested conversation)')


@dataclass
class Example:
    query: str
    user_id: str
    positive_ids: list[str]
    positives: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    negative_ids: list[str] = field(default_factory=list)
    now: str | None = None
    source: str = "labeled"
    group: str | None = None  # question type or category, for per-group reports

    @property
    def key(self) -> tuple[str, str]:
        """What makes two examples the same question (held-out queries must never be trained on)."""
        return self.user_id, " ".join(self.query.lower().split())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a file so that a crash leaves the old file or none, never half of the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write JSON objects one per line, atomically; returns the count."""
    lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]
    write_text_atomic(path, "".join(lines))
    return len(lines)


def write_examples(path: str | Path, examples: Iterable[Example]) -> int:
    """Write examples as JSONL atomically; returns the count."""
    return write_jsonl(path, (asdict(example) for example in examples))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, each checked for a query and a user_id."""
    file = str(path)
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError("file does not exist", file=file, fix=_FIX) from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"not valid JSON ({exc})", file=file, record=f"line {number}", fix=_FIX) from None
        if not isinstance(row, dict):
            raise InputError("not a JSON object", file=file, record=f"line {number}", fix=_FIX)
        for key in ("query", "user_id"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise InputError("missing or empty", file=file, record=f"line {number}", field=key, fix=_FIX)
        row["_line"] = number
        rows.append(row)
    if not rows:
        raise InputError("holds no examples", file=file, fix=_FIX)
    return rows


def read_examples(path: str | Path) -> list[Example]:
    """Examples written by `write_examples` (positives resolved to memory ids and texts)."""
    examples = []
    for row in read_rows(path):
        if not row.get("positive_ids") or not row.get("positives"):
            raise InputError(
                "has no resolved positives", file=str(path), record=f"line {row['_line']}", field="positive_ids",
                fix="resolve label files against the store first (memlane tune labels/synth write resolved files)",
            )
        examples.append(_example(row))
    return examples


def _example(row: dict[str, Any]) -> Example:
    known = {f for f in Example.__dataclass_fields__}
    return Example(**{k: v for k, v in row.items() if k in known})


def resolve_labels(path: str | Path, store: Store, *, source: str = "labeled") -> list[Example]:
    """Read a label file and resolve each row's positives to memories of its user in `store`.

    Positives given by `positive_ids` must exist for that user; `positive_turn_ids` are matched
    against the turn ids recorded at ingestion. A row none of whose positives is found is an
    error naming the line: a label file and a store that do not belong together lose nothing
    silently.
    """
    file = str(path)
    turn_ids: dict[str, dict[str, Any]] = {}
    examples = []
    for row in read_rows(path):
        user = row["user_id"]
        record = f"line {row['_line']}"
        wanted_ids = _str_list(row.get("positive_ids"), file, record, "positive_ids")
        wanted_turns = _str_list(row.get("positive_turn_ids"), file, record, "positive_turn_ids")
        if not wanted_ids and not wanted_turns:
            raise InputError("names no positives", file=file, record=record, field="positive_ids", fix=_FIX)
        found = store.get_many(user, wanted_ids) if wanted_ids else []
        if wanted_turns:
            if user not in turn_ids:
                turn_ids[user] = _turns_by_id(store, user)
            found += [turn_ids[user][t] for t in wanted_turns if t in turn_ids[user]]
        if not found:
            raise InputError(
                f"none of its positives is a memory of user '{user}' in the store",
                file=file, record=record, field="positive_ids" if wanted_ids else "positive_turn_ids",
                fix="ingest the conversation the labels come from into this store (memlane ingest FILE), "
                    "or check the user_id",
            )
        unique = list({r.id: r for r in found}.values())
        examples.append(Example(
            query=row["query"].strip(), user_id=user, positive_ids=[r.id for r in unique],
            positives=[r.embed_text for r in unique], now=row.get("now"), source=row.get("source", source),
            group=None if row.get("group") is None else str(row["group"]),
        ))
    return examples


def positive_records(memory, example: Example) -> list:
    """The example's positive memories that still exist in `memory` (a `Memory`), for its user only."""
    found = (memory.get(i, user_id=example.user_id) for i in example.positive_ids)
    return [r for r in found if r is not None]


def _turns_by_id(store: Store, user_id: str) -> dict[str, Any]:
    return {r.metadata["turn_id"]: r for r in scan(store, user_id, {"node_type": "turn"}) if "turn_id" in r.metadata}


def _str_list(value: Any, file: str, record: str, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("must be a list of strings", file=file, record=record, field=key, fix=_FIX)
    return value
