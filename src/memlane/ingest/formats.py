"""Reading conversation files (LoCoMo, LongMemEval, chat-message JSONL) into sessions and turns.

`load_conversations` detects the format from the file's content, checks the whole file and
returns every conversation in it, or raises `InputError` naming the file, the record, the field
and a fix. It is pure: it never touches a store, so a caller can ingest all or nothing.

`parse_messages` applies the same per-message checks to messages given in Python.
"""

from __future__ import annotations

import json
import lzma
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from memlane.errors import InputError
from memlane.ingest.dates import parse_session_date
from memlane.records import Session, Turn

__all__ = ["Conversation", "load_conversations", "parse_messages"]

ROLES = ("user", "assistant", "system", "tool")
# Fields a chat message may carry; `session_id` and `session_date` only make sense in files.
MESSAGE_FIELDS = ("role", "content", "name", "timestamp", "metadata")
FILE_MESSAGE_FIELDS = MESSAGE_FIELDS + ("session_id", "session_date")
HAYSTACK_FIELDS = ("haystack_sessions", "haystack_session_ids", "haystack_dates")

FORMATS_ACCEPTED = (
    "LoCoMo (an object with speaker_a, speaker_b and session_1, session_2, ...; or a list of them), "
    "LongMemEval (question objects with haystack_sessions, haystack_session_ids and haystack_dates; "
    ".json or .json.xz), or chat messages (JSONL or a JSON list of objects with role and content)"
)

_KIND_NAMES = {"locomo": "LoCoMo conversation", "longmemeval": "LongMemEval question", "messages": "chat message"}
# Names people often use for a message's fields, and the field memlane reads them from.
_FIELD_HINTS = {"speaker": "name", "text": "content", "date": "timestamp", "time": "timestamp"}
_XZ_MAGIC = b"\xfd7zXZ\x00"
_LOCOMO_SESSION = re.compile(r"^session_(\d+)$")


@dataclass
class Conversation:
    """One conversation read from a file: its sessions, its speakers and the source's questions."""

    conversation_id: str
    sessions: list[Session]
    speakers: list[str] = field(default_factory=list)
    questions: list[dict] = field(default_factory=list)  # the source's QA items, unchanged


def load_conversations(path: str | Path) -> list[Conversation]:
    """Read every conversation in a LoCoMo, LongMemEval or chat-message file.

    The format is detected from the content (xz compression too), not from the extension.
    The whole file is checked before anything is returned.
    """
    file = str(path)
    data = _read_text(Path(path), file)
    stem = _stem(Path(path))
    if Path(path).name.lower().endswith((".jsonl", ".ndjson", ".jsonl.xz", ".ndjson.xz")):
        return [_jsonl_conversation(data, stem, file)]
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one JSON value per line
            return [_jsonl_conversation(data, stem, file)]
        raise InputError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            file=file,
            record=f"line {exc.lineno}",
            fix="repair the JSON (a JSONL file holds one complete JSON object per line)",
        ) from None
    return _from_json(value, stem, file)


def parse_messages(messages: list[dict] | list[Turn] | Session, *, source: str = "messages") -> list[Turn]:
    """Check chat messages given in Python and turn them into `Turn`s.

    Each item is a `Turn` (kept unchanged) or a dict with `role` (user, assistant, system or tool)
    and a non-empty string `content`, and optionally `name` (the speaker; default: the role),
    `timestamp` and `metadata`. Errors name the item as `source[i]`.
    """
    if isinstance(messages, Session):
        return list(messages.turns)
    if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, (list, tuple)):
        raise InputError(
            f"expected a list of messages, got {_type_name(messages)}",
            field=source,
            fix='pass a list such as [{"role": "user", "content": "..."}], or a Session',
        )
    turns = []
    for i, item in enumerate(messages):
        if isinstance(item, Turn):
            turns.append(item)
        else:
            turns.append(_message_turn(item, MESSAGE_FIELDS, file=None, record=f"{source}[{i}]"))
    return turns


# ---------------------------------------------------------------------------------------------
# Reading and detecting


def _read_text(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", file=file, fix="check the path") from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", file=file, fix="give the path of one file") from None
    except OSError as exc:
        raise InputError(
            f"cannot read the file: {exc.strerror}", file=file, fix="check the path and its permissions"
        ) from None
    if raw.startswith(_XZ_MAGIC):
        try:
            raw = lzma.decompress(raw)
        except lzma.LZMAError as exc:
            raise InputError(f"corrupt xz data: {exc}", file=file, fix="download or compress the file again") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not UTF-8 text (byte {exc.start})",
            file=file,
            record=f"line {line}",
            fix="save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".json.xz", ".jsonl.xz", ".xz", ".jsonl", ".ndjson", ".json"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


def _kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if "speaker_a" in value or "speaker_b" in value or "session_1" in value:
        return "locomo"
    if isinstance(value.get("conversation"), dict) and (
        "speaker_a" in value["conversation"] or "session_1" in value["conversation"]
    ):
        return "locomo"
    if any(key in value for key in HAYSTACK_FIELDS):
        return "longmemeval"
    if "role" in value or "content" in value:
        return "messages"
    return None


def _not_recognized(value: Any, file: str, record: str | None = None) -> InputError:
    return InputError(
        f"not a recognized format: found {_describe(value)}",
        file=file,
        record=record,
        fix=f"give {FORMATS_ACCEPTED}",
    )


def _from_json(value: Any, stem: str, file: str) -> list[Conversation]:
    if isinstance(value, dict):
        kind = _kind(value)
        if kind == "locomo":
            return [_locomo_conversation(value, stem, file, prefix="")]
        if kind == "longmemeval":
            return [_longmemeval_conversation(value, file)]
        if kind == "messages":
            return [_messages_conversation([(value, "message 1")], stem, file, FILE_MESSAGE_FIELDS)]
        raise _not_recognized(value, file)
    if not isinstance(value, list):
        raise _not_recognized(value, file)
    if not value:
        raise InputError("the file holds an empty list", file=file, fix=f"give {FORMATS_ACCEPTED}")
    kind = _kind(value[0])
    if kind is None:
        raise _not_recognized(value[0], file, record="item 1")
    if kind == "messages":  # each message is checked field by field below
        numbered = [(item, f"message {i + 1}") for i, item in enumerate(value)]
        return [_messages_conversation(numbered, stem, file, FILE_MESSAGE_FIELDS)]
    for i, item in enumerate(value):
        if _kind(item) != kind:
            raise InputError(
                f"expected a {_KIND_NAMES[kind]} like item 1, found {_describe(item)}",
                file=file,
                record=f"item {i + 1}",
                fix="keep one format per file",
            )
    if kind == "locomo":
        return [
            _locomo_conversation(item, f"{stem}_{i + 1}", file, prefix=f"item {i + 1} ")
            for i, item in enumerate(value)
        ]
    return [_longmemeval_conversation(item, file) for item in value]


# ---------------------------------------------------------------------------------------------
# LoCoMo


def _locomo_conversation(value: dict, default_id: str, file: str, prefix: str) -> Conversation:
    outer = value
    conv = value["conversation"] if isinstance(value.get("conversation"), dict) else value
    conversation_id = str(outer.get("sample_id", conv.get("sample_id", default_id)))
    if prefix and ("sample_id" in outer or "sample_id" in conv):
        prefix = f"{conversation_id} "
    where = prefix.strip() or None

    speakers = []
    for key in ("speaker_a", "speaker_b"):
        speakers.append(_required_str(conv, key, file, where, fix="name both speakers of the conversation"))

    numbers = sorted(int(m.group(1)) for m in map(_LOCOMO_SESSION.match, conv) if m)
    if not numbers or numbers[0] != 1:
        raise InputError(
            "missing session_1",
            file=file,
            record=where,
            field="session_1",
            fix="give the turns of each session as session_1, session_2, ... (lists of turns)",
        )
    sessions = []
    n = 1
    while f"session_{n}" in conv:
        sessions.append(_locomo_session(conv, n, file, prefix))
        n += 1

    questions = outer.get("qa", conv.get("qa", []))
    if not isinstance(questions, list):
        raise InputError(
            f"expected a list of questions, got {_type_name(questions)}",
            file=file,
            record=where,
            field="qa",
            fix="give qa as a list of question objects, or leave it out",
        )
    return Conversation(conversation_id, sessions, speakers, questions)


def _locomo_session(conv: dict, n: int, file: str, prefix: str) -> Session:
    key = f"session_{n}"
    record = f"{prefix}{key}"
    turns_raw = conv[key]
    if not isinstance(turns_raw, list):
        raise InputError(
            f"expected a list of turns, got {_type_name(turns_raw)}",
            file=file,
            record=record,
            field=key,
            fix="give each session as a list of turns",
        )
    date_key = f"{key}_date_time"
    if date_key not in conv:
        raise InputError(
            "missing the session's date",
            file=file,
            record=record,
            field=date_key,
            fix=f'give {date_key}, e.g. "1:56 pm on 8 May, 2023"',
        )
    session_date = _iso_date(conv[date_key], file, record, date_key)

    turns = []
    for i, raw in enumerate(turns_raw, start=1):
        turn_record = f"{record} turn {i}"
        if isinstance(raw, dict) and isinstance(raw.get("dia_id"), str):
            turn_record += f" ({raw['dia_id']})"
        turns.append(_locomo_turn(raw, file, turn_record))
    return Session(turns=turns, session_id=key, date=session_date)


def _locomo_turn(raw: Any, file: str, record: str) -> Turn:
    if not isinstance(raw, dict):
        raise InputError(
            f"expected a turn object, got {_type_name(raw)}",
            file=file,
            record=record,
            fix='give each turn as {"speaker": ..., "dia_id": ..., "text": ...}',
        )
    speaker = _required_str(raw, "speaker", file, record, fix="name who says the turn")
    turn_id = _required_str(raw, "dia_id", file, record, fix='give the turn\'s id, e.g. "D1:3"')
    caption = _optional_str(raw, "blip_caption", file, record)
    text = raw.get("text")
    if text is None:
        text = ""
    elif not isinstance(text, str):
        raise _wrong_type(text, "a string", file, record, "text")
    if not text.strip() and not caption:
        problem = "missing field" if "text" not in raw else "empty text and no photo caption"
        raise InputError(problem, file=file, record=record, field="text", fix="give the turn's text, or drop the turn")
    metadata = {}
    if raw.get("img_url") is not None:
        metadata["img_url"] = raw["img_url"]
    if raw.get("query") is not None:
        metadata["query"] = raw["query"]
    return Turn(text=text, speaker=speaker, role="user", turn_id=turn_id, caption=caption or None, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# LongMemEval


def _longmemeval_conversation(value: dict, file: str) -> Conversation:
    if "question_id" not in value:
        raise InputError(
            "missing field",
            file=file,
            field="question_id",
            fix="give each LongMemEval question its question_id",
        )
    qid = value["question_id"]
    if not isinstance(qid, (str, int)) or isinstance(qid, bool):
        raise _wrong_type(qid, "a string", file, None, "question_id")
    qid = str(qid)
    record = f"question {qid}"
    lists = {}
    for key in HAYSTACK_FIELDS:
        if key not in value:
            raise InputError(
                "missing field",
                file=file,
                record=record,
                field=key,
                fix=f"give {', '.join(HAYSTACK_FIELDS)} as parallel lists",
            )
        if not isinstance(value[key], list):
            raise _wrong_type(value[key], "a list", file, record, key)
        lists[key] = value[key]
    lengths = {key: len(items) for key, items in lists.items()}
    if len(set(lengths.values())) != 1:
        raise InputError(
            "the haystack lists differ in length: " + ", ".join(f"{k} has {v}" for k, v in lengths.items()),
            file=file,
            record=record,
            field="haystack_sessions",
            fix="give one session id and one date per haystack session",
        )

    sessions = []
    speakers: dict[str, None] = {}
    for sid, when, turns_raw in zip(lists["haystack_session_ids"], lists["haystack_dates"], lists["haystack_sessions"]):
        if not isinstance(sid, (str, int)) or isinstance(sid, bool):
            raise _wrong_type(sid, "a string", file, record, "haystack_session_ids")
        sid = str(sid)
        session_record = f"{record} session {sid}"
        session_date = _iso_date(when, file, session_record, "haystack_dates")
        if not isinstance(turns_raw, list):
            raise _wrong_type(turns_raw, "a list of turns", file, session_record, "haystack_sessions")
        turns = []
        skipped = 0
        for i, raw in enumerate(turns_raw):
            turn = _longmemeval_turn(raw, sid, i, file, session_record)
            if turn is None:
                skipped += 1
                continue
            speakers[turn.speaker] = None
            turns.append(turn)
        metadata = {"skipped_empty_turns": skipped} if skipped else {}
        sessions.append(Session(turns=turns, session_id=sid, date=session_date, metadata=metadata))

    question = {k: v for k, v in value.items() if k not in HAYSTACK_FIELDS}
    return Conversation(qid, sessions, list(speakers), [question])


def _longmemeval_turn(raw: Any, sid: str, i: int, file: str, session_record: str) -> Turn | None:
    """One haystack turn; None for a turn with empty content (the released data has a few)."""
    role = raw.get("role") if isinstance(raw, dict) else None
    content = raw.get("content") if isinstance(raw, dict) else None
    if not (isinstance(role, str) and role and isinstance(content, str)):
        _longmemeval_turn_error(raw, f"{session_record} turn {i}", file)
    if not content or content.isspace():
        return None
    metadata = {}
    if "has_answer" in raw:
        if not isinstance(raw["has_answer"], bool):
            raise _wrong_type(raw["has_answer"], "true or false", file, f"{session_record} turn {i}", "has_answer")
        metadata["has_answer"] = raw["has_answer"]
    return Turn(text=content, speaker=role, role=role, turn_id=f"{sid}:{i}", metadata=metadata)


def _longmemeval_turn_error(raw: Any, record: str, file: str) -> None:
    """Raise the error that says what is wrong with a haystack turn."""
    if not isinstance(raw, dict):
        raise InputError(
            f"expected a turn object, got {_describe(raw)}",
            file=file,
            record=record,
            fix='give each turn as {"role": ..., "content": ...}',
        )
    _required_str(raw, "role", file, record, fix='give the turn\'s role, "user" or "assistant"')
    if "content" not in raw:
        raise InputError("missing field", file=file, record=record, field="content", fix="give the turn's text")
    raise _wrong_type(raw["content"], "a string", file, record, "content")


# ---------------------------------------------------------------------------------------------
# Chat messages


def _jsonl_conversation(data: str, stem: str, file: str) -> Conversation:
    numbered = []
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"malformed JSON at line {n}, column {exc.colno}: {exc.msg}",
                file=file,
                record=f"line {n}",
                fix="write one complete JSON object per line",
            ) from None
        numbered.append((value, f"line {n}"))
    if not numbered:
        raise InputError("the file holds no messages", file=file, fix=f"give {FORMATS_ACCEPTED}")
    return _messages_conversation(numbered, stem, file, FILE_MESSAGE_FIELDS)


def _messages_conversation(
    numbered: list[tuple[Any, str]], stem: str, file: str, allowed: tuple[str, ...]
) -> Conversation:
    groups: dict[str, dict[str, Any]] = {}
    speakers: dict[str, None] = {}
    for value, record in numbered:
        turn = _message_turn(value, allowed, file=file, record=record)
        sid = value.get("session_id", "session_1")
        if isinstance(sid, bool) or not isinstance(sid, (str, int)) or not str(sid).strip():
            raise _wrong_type(sid, "a non-empty string", file, record, "session_id")
        sid = str(sid)
        group = groups.setdefault(sid, {"turns": [], "date": None, "first_timestamp": None})
        if "session_date" in value:
            session_date = _iso_date(value["session_date"], file, record, "session_date")
            if group["date"] is None:
                group["date"] = session_date
        if group["first_timestamp"] is None and turn.timestamp is not None:
            group["first_timestamp"] = turn.timestamp
        group["turns"].append(turn)
        speakers[turn.speaker] = None
    sessions = [
        Session(turns=g["turns"], session_id=sid, date=g["date"] or g["first_timestamp"])
        for sid, g in groups.items()
    ]
    return Conversation(stem, sessions, list(speakers), [])


def _message_turn(value: Any, allowed: tuple[str, ...], *, file: str | None, record: str) -> Turn:
    if not isinstance(value, dict):
        raise InputError(
            f"expected a message object, got {_type_name(value)}",
            file=file,
            record=record,
            fix='give each message as {"role": "user", "content": "..."}',
        )
    for key in value:
        if key not in allowed:
            hint = f" ('{_FIELD_HINTS[key]}' holds the {key})" if _FIELD_HINTS.get(key) in allowed else ""
            raise InputError(
                "unknown field",
                file=file,
                record=record,
                field=str(key),
                fix="use only the fields " + ", ".join(allowed) + hint,
            )
    for key in ("role", "content"):
        if key not in value:
            raise InputError(
                "missing field",
                file=file,
                record=record,
                field=key,
                fix='give every message a role and a content, e.g. {"role": "user", "content": "..."}',
            )
    role = value["role"]
    if not isinstance(role, str):
        raise _wrong_type(role, "a string", file, record, "role")
    if role not in ROLES:
        raise InputError(
            f"unknown role {role!r}", file=file, record=record, field="role", fix="use one of: " + ", ".join(ROLES)
        )
    content = value["content"]
    if not isinstance(content, str):
        raise _wrong_type(content, "a string", file, record, "content")
    if not content.strip():
        raise InputError(
            "empty text", file=file, record=record, field="content", fix="give the message's text, or drop the message"
        )
    speaker = role
    if "name" in value:
        speaker = value["name"]
        if not isinstance(speaker, str) or not speaker.strip():
            raise _wrong_type(speaker, "a non-empty string", file, record, "name")
    timestamp = None
    if "timestamp" in value:
        timestamp = _iso_date(value["timestamp"], file, record, "timestamp")
    metadata = {}
    if "metadata" in value:
        if not isinstance(value["metadata"], dict):
            raise _wrong_type(value["metadata"], "an object", file, record, "metadata")
        metadata = dict(value["metadata"])
    return Turn(text=content, speaker=speaker, role=role, timestamp=timestamp, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _iso_date(value: Any, file: str | None, record: str | None, key: str) -> str:
    """The ISO form of a source date: minutes when the seconds are zero, a bare date when no time is given."""
    if not isinstance(value, (str, date)):
        raise _wrong_type(value, "a date string", file, record, key)
    try:
        parsed = parse_session_date(value)
    except InputError as exc:
        raise InputError(exc.problem, file=file, record=record, field=key, fix=exc.fix) from None
    if isinstance(value, str):
        date_only = ":" not in value
    else:
        date_only = not isinstance(value, datetime)
    if date_only and parsed.time() == datetime.min.time():
        return parsed.date().isoformat()
    timespec = "minutes" if parsed.second == 0 and parsed.microsecond == 0 else "auto"
    return parsed.isoformat(timespec=timespec)


def _required_str(value: dict, key: str, file: str, record: str | None, *, fix: str) -> str:
    if key not in value:
        raise InputError("missing field", file=file, record=record, field=key, fix=fix)
    text = value[key]
    if not isinstance(text, str):
        raise _wrong_type(text, "a string", file, record, key)
    if not text.strip():
        raise InputError("empty text", file=file, record=record, field=key, fix=fix)
    return text


def _optional_str(value: dict, key: str, file: str, record: str) -> str | None:
    text = value.get(key)
    if text is not None and not isinstance(text, str):
        raise _wrong_type(text, "a string", file, record, key)
    return text


def _wrong_type(value: Any, expected: str, file: str | None, record: str | None, key: str) -> InputError:
    return InputError(
        f"expected {expected}, got {_describe(value)}",
        file=file,
        record=record,
        field=key,
        fix=f"make {key} {expected}",
    )


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    if value is None:
        return "null"
    return names.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:12])) + (", ..." if len(value) > 12 else "")
        return f"an object with keys: {keys}" if value else "an empty object"
    if value is None:
        return "null"
    if isinstance(value, (int, float, bool)):
        return f"{_type_name(value)} ({json.dumps(value)})"
    return _type_name(value)
