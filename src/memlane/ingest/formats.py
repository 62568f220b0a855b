"""Reading conversation files (LoCoMo, LongMemEval, chat-message JSONL) into sessions and turns.

`load_conversations` detects the format from the file's content, checks the whole file and
returns every conversation in it, or raises `InputError` naming the file, the record, the field
and a fix. It is pure: it never touches a store, so a caller can ingest all or nothing.

`parse_messages` applies the same per-message checks to messages given in Python.

Every input, however broken, ends in a result or in `InputError`, in time linear in its size:
the file is read up to `LimitsConfig.max_import_bytes` (after decompression), JSON is parsed
with numbers and nesting bounded, and every string that reaches a record goes through
`check_text`; `check_metadata` does the same for metadata.
"""

from __future__ import annotations

import codecs
import itertools
import json
import lzma
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from memlane.config import LimitsConfig
from memlane.errors import InputError
from memlane.ingest.dates import parse_session_date
from memlane.records import Session, Turn

__all__ = ["Conversation", "check_metadata", "check_text", "load_conversations", "parse_messages"]

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

MAX_ID_CHARS = 512  # conversation, session and turn ids, speaker names, roles
MAX_DATE_CHARS = 100  # a date string ("1:56 pm on 8 May, 2023" is 22)
# Digits in a JSON number: Python's default int limit, applied whatever the interpreter's setting,
# so that no number costs more than linear time to convert.
MAX_NUMBER_DIGITS = 4300

_KIND_NAMES = {"locomo": "LoCoMo conversation", "longmemeval": "LongMemEval question", "messages": "chat message"}
# Names people often use for a message's fields, and the field memlane reads them from.
_FIELD_HINTS = {"speaker": "name", "text": "content", "date": "timestamp", "time": "timestamp"}
_XZ_MAGIC = b"\xfd7zXZ\x00"
_LOCOMO_SESSION = re.compile(r"session_([0-9]+)")
_READ_CHUNK = 1 << 24
_JSON_WHITESPACE = " \t\r\n"


@dataclass
class Conversation:
    """One conversation read from a file: its sessions, its speakers and the source's questions."""

    conversation_id: str
    sessions: list[Session]
    speakers: list[str] = field(default_factory=list)
    questions: list[dict] = field(default_factory=list)  # the source's QA items, checked as JSON, else unchanged


def load_conversations(path: str | os.PathLike[str], limits: LimitsConfig | None = None) -> list[Conversation]:
    """Read every conversation in a LoCoMo, LongMemEval or chat-message file.

    The format is detected from the content (xz compression too), not from the extension.
    The whole file is checked before anything is returned. `limits` (default: `LimitsConfig()`)
    bounds the file's size after decompression, its JSON nesting, each text, each message's
    metadata and the number of turns.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InputError(f"expected a file path, got {_describe(path)}", fix="pass the path as a str or a Path")
    try:
        path = Path(os.fsdecode(path))
    except (TypeError, ValueError):  # a PathLike that gives no path
        raise InputError(f"not a file path: {_describe(path)}", fix="pass the path as a str or a Path") from None
    src = _Source(_display_path(path), limits or LimitsConfig())
    data = _read_text(path, src)
    stem = _stem(path)
    if path.name.lower().endswith((".jsonl", ".ndjson", ".jsonl.xz", ".ndjson.xz")):
        return [_jsonl_conversation(data, stem, src)]
    if not data.strip(_JSON_WHITESPACE):
        raise InputError("the file is empty", file=src.file, fix=f"give {FORMATS_ACCEPTED}")
    try:
        value = _parse_json(data, src, line=None)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one JSON value per line
            return [_jsonl_conversation(data, stem, src)]
        raise InputError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            file=src.file,
            record=f"line {exc.lineno}",
            fix="repair the JSON (a JSONL file holds one complete JSON object per line)",
        ) from None
    return _from_json(value, stem, src)


def parse_messages(
    messages: list[dict] | list[Turn] | Session, *, source: str = "messages", limits: LimitsConfig | None = None
) -> list[Turn]:
    """Check chat messages given in Python and turn them into `Turn`s.

    Each item is a `Turn` (checked, then kept unchanged) or a dict with `role` (user, assistant,
    system or tool) and a non-empty string `content`, and optionally `name` (the speaker; default:
    the role), `timestamp` and `metadata`. Errors name the item as `source[i]`. `limits`
    (default: `LimitsConfig()`) bounds each text and each message's metadata.
    """
    src = _Source(None, limits or LimitsConfig())
    if isinstance(messages, Session):
        if not isinstance(messages.turns, (list, tuple)):
            raise InputError(f"expected a list of turns, got {_describe(messages.turns)}", field=f"{source}.turns",
                             fix="give the Session a list of Turn objects")
        return [_checked_turn(turn, src, f"{source}.turns[{i}]") for i, turn in enumerate(messages.turns)]
    if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, (list, tuple)):
        raise InputError(
            f"expected a list of messages, got {_describe(messages)}",
            field=source,
            fix='pass a list such as [{"role": "user", "content": "..."}], or a Session',
        )
    turns = []
    for i, item in enumerate(messages):
        if isinstance(item, Turn):
            turns.append(_checked_turn(item, src, f"{source}[{i}]"))
        else:
            turns.append(_message_turn(item, MESSAGE_FIELDS, src, record=f"{source}[{i}]"))
    return turns


# ---------------------------------------------------------------------------------------------
# Checking text and JSON values


def check_text(
    value: Any,
    *,
    field: str | None,
    record: str | None = None,
    file: str | None = None,
    max_chars: int | None = None,
    allow_blank: bool = False,
    fix: str | None = None,
    limit_name: str | None = None,
) -> str:
    """Return `value` as a `str` if memlane can store it as text, else raise `InputError`.

    Text must be a `str` (bytes, numbers, lists and None are refused, not converted); not empty or
    only whitespace unless `allow_blank`; at most `max_chars` characters when given (checked first,
    so an oversized value costs nothing more); encodable as UTF-8, so a lone surrogate such as the
    JSON escape "\\ud800" is refused with its position; and free of NUL characters ("\\x00"):
    SQLite would store them, but PostgreSQL text and jsonb refuse them and in a conversation they
    are almost always binary or UTF-16 data read as text. Other control characters are kept.

    The error names `file`, `record` and `field`; `fix` replaces the generic advice for a blank
    text, and `limit_name` names the setting that raises `max_chars`.
    Runs in time linear in the length of `value`.
    """
    where = {"file": file, "record": record, "field": field}
    name = field or "the text"
    if not isinstance(value, str):
        hint = " (decode bytes first: data.decode('utf-8'))" if isinstance(value, (bytes, bytearray)) else ""
        raise InputError(f"expected a string, got {_describe(value)}", **where, fix=f"make {name} a string{hint}")
    if type(value) is not str:
        value = str.__str__(value)  # a plain str, whatever a subclass overrides
    if max_chars is not None and len(value) > max_chars:
        raise InputError(
            f"text of {len(value):,} characters; at most {max_chars:,} are accepted",
            **where,
            fix="shorten or split it" + (f", or raise {limit_name}" if limit_name else ""),
        )
    if not allow_blank and (not value or value.isspace()):
        raise InputError("empty text", **where, fix=fix or "give some text, not only whitespace")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError(
                f"a lone surrogate (U+{ord(value[exc.start]):04X}) at character {exc.start + 1}"
                f"{_context(value, exc.start)}; UTF-8 cannot encode it",
                **where,
                fix="remove it, or decode the source correctly: a JSON escape such as \\ud83d is valid only "
                "as the first half of a pair such as \\ud83d\\ude00",
            ) from None
    nul = value.find("\x00")
    if nul >= 0:
        raise InputError(
            f"a NUL character at character {nul + 1}{_context(value, nul)}",
            **where,
            fix="remove NUL characters (\\u0000); binary or UTF-16 data read as text leaves them",
        )
    return value


def check_metadata(
    value: Any,
    *,
    field: str | None = "metadata",
    record: str | None = None,
    file: str | None = None,
    limits: LimitsConfig | None = None,
) -> dict[str, Any]:
    """Return a shallow copy of `value` if it is metadata memlane can store, else raise `InputError`.

    Metadata is a dict that JSON holds exactly: string keys; values that are dicts, lists (or
    tuples), strings, finite numbers (integers of at most 4300 digits), booleans or None; every
    string and key valid UTF-8 text without NUL (see `check_text`); nested at most
    `limits.max_json_depth` containers deep; at most `limits.max_metadata_bytes` bytes as UTF-8
    JSON. The error names the path inside it, e.g. field 'metadata.tags[3]'. Time linear in its size.
    """
    limits = limits or LimitsConfig()
    if not isinstance(value, dict):
        raise InputError(f"expected an object, got {_describe(value)}", file=file, record=record, field=field,
                         fix=f"make {field or 'metadata'} an object (a dict) of JSON values")
    _check_json(value, field or "", file=file, record=record, max_depth=limits.max_json_depth,
                max_nodes=limits.max_metadata_bytes)
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > limits.max_metadata_bytes:
        raise InputError(
            f"{size:,} bytes as JSON; at most {limits.max_metadata_bytes:,} are accepted",
            file=file,
            record=record,
            field=field,
            fix="keep large data elsewhere and a reference in the metadata, or raise limits.max_metadata_bytes",
        )
    return dict(value)


def _check_json(
    value: Any, root: str, *, file: str | None, record: str | None, max_depth: int, max_nodes: int | None = None
) -> None:
    """Check that `value` is JSON that can be stored: see `check_metadata`. Iterative, and bounded by
    `max_nodes` (when given) so that a value sharing sub-values, or holding itself, costs linear time."""
    stack: list[tuple[Any, int, Any]] = [(value, 1, (None, root))]
    nodes = 0
    while stack:
        item, depth, path = stack.pop()
        nodes += 1
        if max_nodes is not None and nodes > max_nodes:
            raise InputError(
                f"more than {max_nodes:,} values", file=file, record=record, field=root or None,
                fix="keep large data elsewhere and a reference in the metadata, or raise limits.max_metadata_bytes",
            )
        if isinstance(item, (dict, list, tuple)):
            if depth > max_depth:
                raise InputError(
                    f"nested more than {max_depth} levels deep",
                    file=file,
                    record=record,
                    field=_render_path(path),
                    fix=f"flatten it (at most {max_depth} nested objects and lists, limits.max_json_depth)",
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InputError(
                            f"a key that is not a string: {_describe(key)}",
                            file=file,
                            record=record,
                            field=_render_path(path),
                            fix="use string keys",
                        )
                    child_path = (path, key)
                    if not _storable(key):
                        check_text(key, field=_render_path(child_path), record=record, file=file, allow_blank=True)
                    stack.append((child, depth + 1, child_path))
            else:
                stack.extend((child, depth + 1, (path, i)) for i, child in enumerate(item))
        elif isinstance(item, str):
            if not _storable(item):  # the path is rendered only for an error
                check_text(item, field=_render_path(path), record=record, file=file, allow_blank=True)
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if item.bit_length() > _MAX_INT_BITS:
                raise InputError(
                    f"a number of more than {MAX_NUMBER_DIGITS} digits",
                    file=file,
                    record=record,
                    field=_render_path(path),
                    fix="store it as a string",
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InputError(
                    f"{item!r}, which JSON cannot hold", file=file, record=record, field=_render_path(path),
                    fix="use null or a string",
                )
        else:
            raise InputError(
                f"expected a JSON value (object, list, string, number, true, false or null), got {_describe(item)}",
                file=file,
                record=record,
                field=_render_path(path),
                fix="convert it to one, e.g. a string",
            )


_MAX_INT_BITS = math.ceil(MAX_NUMBER_DIGITS * math.log2(10))


def _storable(text: str) -> bool:
    """Whether `check_text` accepts the characters of `text` (UTF-8, no NUL), without building an error."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _render_path(path: Any) -> str | None:
    """'metadata.tags[3]' from the linked (parent, key) pairs `_check_json` builds."""
    parts = []
    while path is not None:
        path, key = path
        parts.append(key)
    parts.reverse()
    text = parts[0] or ""
    for key in parts[1:]:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += ("." if text else "") + _show(key, 40)
    return text or None


# ---------------------------------------------------------------------------------------------
# Reading and detecting


@dataclass
class _Source:
    """Where values come from (the file, for error messages) and the limits they must keep."""

    file: str | None
    limits: LimitsConfig
    turns: int = 0

    def count_turn(self, record: str) -> None:
        self.turns += 1
        if self.turns > self.limits.max_import_turns:
            raise InputError(
                f"more than {self.limits.max_import_turns:,} turns",
                file=self.file,
                record=record,
                fix="split the file, or raise limits.max_import_turns",
            )

    def text(self, value: Any, record: str | None, key: str | None, *, long: bool = False,
             max_chars: int = MAX_ID_CHARS, allow_blank: bool = False, fix: str | None = None) -> str:
        """`check_text` for a value of this source: a message's text when `long`, else an id or a name."""
        if long:
            return check_text(value, field=key, record=record, file=self.file, max_chars=self.limits.max_text_chars,
                              allow_blank=allow_blank, fix=fix, limit_name="limits.max_text_chars")
        return check_text(value, field=key, record=record, file=self.file, max_chars=max_chars,
                          allow_blank=allow_blank, fix=fix)


def _display_path(path: Path) -> str:
    """The path as text that can be printed (a file name that is not UTF-8 keeps its bytes as escapes)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _read_text(path: Path, src: _Source) -> str:
    limit = src.limits.max_import_bytes
    try:
        with path.open("rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError
            hint = info.st_size if stat.S_ISREG(info.st_mode) else 0
            if hint > limit:
                raise _too_large(f"{hint:,} bytes", src)
            raw = _read_bounded(f, limit, hint)
    except FileNotFoundError:
        raise InputError("file not found", file=src.file, fix="check the path") from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", file=src.file, fix="give the path of one file") from None
    except OSError as exc:
        raise InputError(
            f"cannot read the file: {exc.strerror or exc}", file=src.file, fix="check the path and its permissions"
        ) from None
    except ValueError:  # a NUL character in the path
        raise InputError("not a valid path", file=src.file, fix="give a path without NUL characters") from None
    if len(raw) > limit:
        raise _too_large(f"more than {limit:,} bytes", src)
    if raw.startswith(_XZ_MAGIC):
        raw = _decompress_xz(raw, src)
    return _decode(raw, src)


def _read_bounded(f: Any, limit: int, hint: int) -> bytes:
    """At most `limit` + 1 bytes of `f` (one more than allowed shows that it is too large)."""
    chunks = []
    total = 0
    want = hint + 1 if hint else _READ_CHUNK  # a regular file: usually all of it in one read
    while total <= limit:
        chunk = f.read(min(want, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        want = _READ_CHUNK
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: str, src: _Source) -> InputError:
    return InputError(
        f"the file holds {size}; at most {src.limits.max_import_bytes:,} are read (after decompression)",
        file=src.file,
        fix="split the file, or raise limits.max_import_bytes",
    )


def _decompress_xz(raw: bytes, src: _Source) -> bytes:
    """The content of one or more concatenated xz streams, stopping one byte past the limit."""
    limit = src.limits.max_import_bytes
    out = []
    total = 0
    data = raw
    while True:
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        try:
            chunk = decompressor.decompress(data, max_length=limit + 1 - total)
        except lzma.LZMAError as exc:
            raise InputError(f"corrupt xz data: {exc}", file=src.file,
                             fix="download or compress the file again") from None
        out.append(chunk)
        total += len(chunk)
        if total > limit:
            raise _too_large(f"more than {limit:,} bytes once decompressed", src)
        if not decompressor.eof:
            raise InputError("the xz data ends early (the file is truncated)", file=src.file,
                             fix="download or compress the file again")
        data = decompressor.unused_data
        if not data.strip(b"\x00"):  # the end, or the zero padding xz allows after a stream
            break
        if not data.startswith(_XZ_MAGIC):
            raise InputError(f"{len(data):,} bytes of data after the xz stream", file=src.file,
                             fix="download or compress the file again")
    return out[0] if len(out) == 1 else b"".join(out)


def _decode(raw: bytes, src: _Source) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError("UTF-16 or UTF-32 text, not UTF-8", file=src.file, fix="save the file as UTF-8")
    nul = raw.find(b"\x00")
    if nul >= 0:  # JSON never holds a raw NUL byte
        raise InputError(
            f"binary data, not text: a NUL byte at byte {nul}",
            file=src.file,
            record=_byte_line(raw, nul),
            fix="give a UTF-8 JSON or JSONL file (a UTF-16 file holds NUL bytes: save it as UTF-8)",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at byte {exc.start} ({exc.reason})",
            file=src.file,
            record=_byte_line(raw, exc.start),
            fix="save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def _byte_line(raw: bytes, offset: int) -> str:
    number = raw.count(b"\n", 0, offset) + 1
    return f"line {number}"


class _BadNumber(ValueError):
    def __init__(self, literal: str, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.literal, self.problem, self.fix = literal, problem, fix


def _parse_int(literal: str) -> int:
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_NUMBER_DIGITS:
        raise _BadNumber(literal[:20], f"a number of {digits:,} digits; at most {MAX_NUMBER_DIGITS} are read",
                         "write it as a string")
    try:
        return int(literal)
    except ValueError:  # the interpreter's int limit is set lower
        raise _BadNumber(literal[:20], "a number with too many digits", "write it as a string") from None


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_DIGITS:
        raise _BadNumber(literal[:20], f"a number of {len(literal):,} characters; at most {MAX_NUMBER_DIGITS} are read",
                         "write it as a string")
    number = float(literal)
    if not math.isfinite(number):
        raise _BadNumber(literal[:20], f"the number {_show(literal, 30)} is too large for a float",
                         "write it as a string")
    return number


def _parse_constant(literal: str) -> Any:
    raise _BadNumber(literal, f"{literal}, which is not JSON", "use null or a string")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
# A JSON string, or one bracket; used only to say where nesting goes too deep.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _parse_json(text: str, src: _Source, *, line: int | None) -> Any:
    """`text` parsed as JSON, with numbers and nesting bounded. Malformed JSON raises
    `json.JSONDecodeError` for the caller to report; anything else wrong raises `InputError`.
    `line` is the file's line that holds `text` (JSONL), or None when `text` is the whole file."""
    max_depth = src.limits.max_json_depth
    try:
        value = _DECODER.decode(text)
    except _BadNumber as exc:
        at = text.find(exc.literal)
        raise InputError(exc.problem, file=src.file, record=_line_record(text, at, line), fix=exc.fix) from None
    except RecursionError:
        value = None
    else:
        if not _nested_deeper(value, max_depth):
            return value
    raise InputError(
        f"JSON nested more than {max_depth} levels deep",
        file=src.file,
        record=f"line {line}" if line is not None else _line_record(text, _too_deep_at(text, max_depth), None),
        fix=f"flatten the data (at most {max_depth} nested objects and lists, limits.max_json_depth)",
    )


def _nested_deeper(value: Any, max_depth: int) -> bool:
    """Whether `value` holds more than `max_depth` nested objects and lists (iterative, linear)."""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def _too_deep_at(text: str, max_depth: int) -> int:
    """The offset of the first bracket more than `max_depth` deep (-1 if none)."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return match.start()
        elif char in "]}":
            depth -= 1
    return -1


def _line_record(text: str, offset: int, line: int | None) -> str | None:
    if line is not None:
        return f"line {line}"
    if offset < 0:
        return None
    number = text.count("\n", 0, offset) + 1
    return f"line {number}"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".json.xz", ".jsonl.xz", ".ndjson.xz", ".xz", ".jsonl", ".ndjson", ".json"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


def _stem_id(stem: str, src: _Source) -> str:
    """The file's name as a conversation id (JSONL files, and LoCoMo conversations without sample_id)."""
    try:
        return check_text(stem, field=None, file=src.file, max_chars=MAX_ID_CHARS)
    except InputError as exc:
        raise InputError(
            f"the file's name names the conversation, but it holds {exc.problem}",
            file=src.file,
            fix=f"rename the file (UTF-8 text, at most {MAX_ID_CHARS} characters before the extension)",
        ) from None


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


def _not_recognized(value: Any, src: _Source, record: str | None = None) -> InputError:
    return InputError(
        f"not a recognized format: found {_describe(value)}",
        file=src.file,
        record=record,
        fix=f"give {FORMATS_ACCEPTED}",
    )


def _from_json(value: Any, stem: str, src: _Source) -> list[Conversation]:
    if isinstance(value, dict):
        kind = _kind(value)
        if kind == "locomo":
            return [_locomo_conversation(value, stem, src, prefix="")]
        if kind == "longmemeval":
            return [_longmemeval_conversation(value, src)]
        if kind == "messages":
            return [_messages_conversation([(value, "message 1")], stem, src)]
        raise _not_recognized(value, src)
    if not isinstance(value, list):
        raise _not_recognized(value, src)
    if not value:
        raise InputError("the file holds an empty list", file=src.file, fix=f"give {FORMATS_ACCEPTED}")
    kind = _kind(value[0])
    if kind is None:
        raise _not_recognized(value[0], src, record="item 1")
    if kind == "messages":  # each message is checked field by field below
        numbered = [(item, f"message {i + 1}") for i, item in enumerate(value)]
        return [_messages_conversation(numbered, stem, src)]
    for i, item in enumerate(value):
        if _kind(item) != kind:
            raise InputError(
                f"expected a {_KIND_NAMES[kind]} like item 1, found {_describe(item)}",
                file=src.file,
                record=f"item {i + 1}",
                fix="keep one format per file",
            )
    if kind == "locomo":
        conversations = [
            _locomo_conversation(item, f"{stem}_{i + 1}", src, prefix=f"item {i + 1} ") for i, item in enumerate(value)
        ]
    else:
        conversations = [_longmemeval_conversation(item, src) for item in value]
    seen: dict[str, int] = {}
    for i, conversation in enumerate(conversations, start=1):
        first = seen.setdefault(conversation.conversation_id, i)
        if first != i:  # two conversations under one id would be stored as one user's
            raise InputError(
                f"conversation id {_show(conversation.conversation_id)} is also the id of item {first}",
                file=src.file,
                record=f"item {i}",
                fix="give each conversation its own id (sample_id, question_id)",
            )
    return conversations


# ---------------------------------------------------------------------------------------------
# LoCoMo


def _locomo_conversation(value: dict, default_id: str, src: _Source, prefix: str) -> Conversation:
    outer = value
    conv = value["conversation"] if isinstance(value.get("conversation"), dict) else value
    if "sample_id" in outer or "sample_id" in conv:
        raw_id = outer["sample_id"] if "sample_id" in outer else conv["sample_id"]
        conversation_id = _id_text(raw_id, src, prefix.strip() or None, "sample_id")
        if prefix:
            prefix = f"{conversation_id} "
    else:
        conversation_id = _stem_id(default_id, src)
    where = prefix.strip() or None

    speakers = []
    for key in ("speaker_a", "speaker_b"):
        speakers.append(_required_text(conv, key, src, where, fix="name both speakers of the conversation"))

    numbers = []
    for key in conv:
        match = _LOCOMO_SESSION.fullmatch(key)
        if match is None:
            continue
        digits = match.group(1)
        if digits.startswith("0") or len(digits) > 9:  # session_01 would be read as neither 1 nor a new session
            raise InputError(
                "not a session number memlane reads",
                file=src.file,
                record=where,
                field=_show(key),
                fix="number the sessions session_1, session_2, ... (no leading zeros)",
            )
        numbers.append(int(digits))
    numbers.sort()
    if not numbers or numbers[0] != 1:
        raise InputError(
            "missing session_1",
            file=src.file,
            record=where,
            field="session_1",
            fix="give the turns of each session as session_1, session_2, ... (lists of turns)",
        )
    sessions = []
    n = 1
    while f"session_{n}" in conv:
        sessions.append(_locomo_session(conv, n, src, prefix))
        n += 1
    if numbers[-1] >= n:  # a session after a gap would be left out
        raise InputError(
            f"session_{n} is missing but session_{min(k for k in numbers if k > n)} follows",
            file=src.file,
            record=where,
            field=f"session_{n}",
            fix="number the sessions session_1, session_2, ... without gaps",
        )

    questions = outer.get("qa", conv.get("qa", []))
    if not isinstance(questions, list):
        raise InputError(
            f"expected a list of questions, got {_describe(questions)}",
            file=src.file,
            record=where,
            field="qa",
            fix="give qa as a list of question objects, or leave it out",
        )
    for i, question in enumerate(questions):
        if not isinstance(question, dict):
            raise _wrong_type(question, "a question object", src, where, f"qa[{i}]")
    _check_json(questions, "qa", file=src.file, record=where, max_depth=src.limits.max_json_depth)
    return Conversation(conversation_id, sessions, speakers, questions)


def _locomo_session(conv: dict, n: int, src: _Source, prefix: str) -> Session:
    key = f"session_{n}"
    record = f"{prefix}{key}"
    turns_raw = conv[key]
    if not isinstance(turns_raw, list):
        raise InputError(
            f"expected a list of turns, got {_describe(turns_raw)}",
            file=src.file,
            record=record,
            field=key,
            fix="give each session as a list of turns",
        )
    date_key = f"{key}_date_time"
    if date_key not in conv:
        raise InputError(
            "missing the session's date",
            file=src.file,
            record=record,
            field=date_key,
            fix=f'give {date_key}, e.g. "1:56 pm on 8 May, 2023"',
        )
    session_date = _iso_date(conv[date_key], src, record, date_key)

    turns = []
    for i, raw in enumerate(turns_raw, start=1):
        turn_record = f"{record} turn {i}"
        if isinstance(raw, dict) and isinstance(raw.get("dia_id"), str):
            turn_record += f" ({_show(raw['dia_id'])})"
        src.count_turn(turn_record)
        turns.append(_locomo_turn(raw, src, turn_record))
    return Session(turns=turns, session_id=key, date=session_date)


def _locomo_turn(raw: Any, src: _Source, record: str) -> Turn:
    if not isinstance(raw, dict):
        raise InputError(
            f"expected a turn object, got {_describe(raw)}",
            file=src.file,
            record=record,
            fix='give each turn as {"speaker": ..., "dia_id": ..., "text": ...}',
        )
    speaker = _required_text(raw, "speaker", src, record, fix="name who says the turn")
    turn_id = _required_text(raw, "dia_id", src, record, fix='give the turn\'s id, e.g. "D1:3"')
    caption = raw.get("blip_caption")
    if caption is not None:
        caption = src.text(caption, record, "blip_caption", long=True, allow_blank=True)
    text = raw.get("text")
    if text is None:
        text = ""
    text = src.text(text, record, "text", long=True, allow_blank=True)
    if not text.strip() and not (caption and caption.strip()):
        problem = "missing field" if "text" not in raw else "empty text and no photo caption"
        raise InputError(problem, file=src.file, record=record, field="text",
                         fix="give the turn's text, or drop the turn")
    metadata = {}
    if raw.get("img_url") is not None:
        metadata["img_url"] = raw["img_url"]
    if raw.get("query") is not None:
        metadata["query"] = raw["query"]
    if metadata:
        metadata = check_metadata(metadata, field=None, record=record, file=src.file, limits=src.limits)
    return Turn(text=text, speaker=speaker, role="user", turn_id=turn_id, caption=caption or None, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# LongMemEval


def _longmemeval_conversation(value: dict, src: _Source) -> Conversation:
    if "question_id" not in value:
        raise InputError(
            "missing field",
            file=src.file,
            field="question_id",
            fix="give each LongMemEval question its question_id",
        )
    qid = _id_text(value["question_id"], src, None, "question_id")
    record = f"question {qid}"
    lists = {}
    for key in HAYSTACK_FIELDS:
        if key not in value:
            raise InputError(
                "missing field",
                file=src.file,
                record=record,
                field=key,
                fix=f"give {', '.join(HAYSTACK_FIELDS)} as parallel lists",
            )
        if not isinstance(value[key], list):
            raise _wrong_type(value[key], "a list", src, record, key)
        lists[key] = value[key]
    lengths = {key: len(items) for key, items in lists.items()}
    if len(set(lengths.values())) != 1:
        raise InputError(
            "the haystack lists differ in length: " + ", ".join(f"{k} has {v}" for k, v in lengths.items()),
            file=src.file,
            record=record,
            field="haystack_sessions",
            fix="give one session id and one date per haystack session",
        )

    sessions = []
    speakers: dict[str, None] = {}
    for sid, when, turns_raw in zip(lists["haystack_session_ids"], lists["haystack_dates"], lists["haystack_sessions"]):
        sid = _id_text(sid, src, record, "haystack_session_ids")
        session_record = f"{record} session {sid}"
        session_date = _iso_date(when, src, session_record, "haystack_dates")
        if not isinstance(turns_raw, list):
            raise _wrong_type(turns_raw, "a list of turns", src, session_record, "haystack_sessions")
        turns = []
        skipped = 0
        for i, raw in enumerate(turns_raw):
            src.count_turn(f"{session_record} turn {i}")
            turn = _longmemeval_turn(raw, sid, i, src, session_record)
            if turn is None:
                skipped += 1
                continue
            speakers[turn.speaker] = None
            turns.append(turn)
        metadata = {"skipped_empty_turns": skipped} if skipped else {}
        sessions.append(Session(turns=turns, session_id=sid, date=session_date, metadata=metadata))

    question = {k: v for k, v in value.items() if k not in HAYSTACK_FIELDS}
    _check_json(question, "", file=src.file, record=record, max_depth=src.limits.max_json_depth)
    return Conversation(qid, sessions, list(speakers), [question])


def _longmemeval_turn(raw: Any, sid: str, i: int, src: _Source, session_record: str) -> Turn | None:
    """One haystack turn; None for a turn with empty content (the released data has a few)."""
    record = f"{session_record} turn {i}"
    if not isinstance(raw, dict):
        raise InputError(
            f"expected a turn object, got {_describe(raw)}",
            file=src.file,
            record=record,
            fix='give each turn as {"role": ..., "content": ...}',
        )
    role = _required_text(raw, "role", src, record, fix='give the turn\'s role, "user" or "assistant"')
    if "content" not in raw:
        raise InputError("missing field", file=src.file, record=record, field="content", fix="give the turn's text")
    content = src.text(raw["content"], record, "content", long=True, allow_blank=True)
    if not content or content.isspace():
        return None
    metadata = {}
    if "has_answer" in raw:
        if not isinstance(raw["has_answer"], bool):
            raise _wrong_type(raw["has_answer"], "true or false", src, record, "has_answer")
        metadata["has_answer"] = raw["has_answer"]
    return Turn(text=content, speaker=role, role=role, turn_id=f"{sid}:{i}", metadata=metadata)


# ---------------------------------------------------------------------------------------------
# Chat messages


def _jsonl_conversation(data: str, stem: str, src: _Source) -> Conversation:
    numbered = []
    for n, line in enumerate(_lines(data), start=1):
        if not line.strip(_JSON_WHITESPACE):
            continue
        try:
            value = _parse_json(line, src, line=n)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"malformed JSON at line {n}, column {exc.colno}: {exc.msg}",
                file=src.file,
                record=f"line {n}",
                fix="write one complete JSON object per line",
            ) from None
        numbered.append((value, f"line {n}"))
    if not numbered:
        raise InputError("the file holds no messages", file=src.file, fix=f"give {FORMATS_ACCEPTED}")
    return _messages_conversation(numbered, stem, src)


def _lines(data: str) -> Iterator[str]:
    """The lines of `data`, one at a time (no second copy of a large file). Lines end at \n only:
    str.splitlines() would also split at U+2028 and other characters that JSON strings may hold,
    and count lines differently from every editor."""
    start = 0
    while start <= len(data):
        end = data.find("\n", start)
        if end < 0:
            end = len(data)
        yield data[start:end]
        start = end + 1


def _messages_conversation(numbered: list[tuple[Any, str]], stem: str, src: _Source) -> Conversation:
    conversation_id = _stem_id(stem, src)
    groups: dict[str, dict[str, Any]] = {}
    speakers: dict[str, None] = {}
    for value, record in numbered:
        src.count_turn(record)
        turn = _message_turn(value, FILE_MESSAGE_FIELDS, src, record=record)
        sid = _id_text(value.get("session_id", "session_1"), src, record, "session_id")
        group = groups.setdefault(sid, {"turns": [], "date": None, "first_timestamp": None})
        if "session_date" in value:
            session_date = _iso_date(value["session_date"], src, record, "session_date")
            if group["date"] is None:
                group["date"] = session_date
        if group["first_timestamp"] is None and turn.timestamp is not None:
            group["first_timestamp"] = turn.timestamp
        group["turns"].append(turn)
        speakers[turn.speaker] = None
    sessions = [
        Session(turns=g["turns"], session_id=sid, date=g["date"] or g["first_timestamp"]) for sid, g in groups.items()
    ]
    return Conversation(conversation_id, sessions, list(speakers), [])


def _message_turn(value: Any, allowed: tuple[str, ...], src: _Source, *, record: str) -> Turn:
    if not isinstance(value, dict):
        raise InputError(
            f"expected a message object, got {_describe(value)}",
            file=src.file,
            record=record,
            fix='give each message as {"role": "user", "content": "..."}',
        )
    for key in value:
        if key not in allowed:
            hint = f" ('{_FIELD_HINTS[key]}' holds the {key})" if _FIELD_HINTS.get(key) in allowed else ""
            raise InputError(
                "unknown field",
                file=src.file,
                record=record,
                field=_show(key) if isinstance(key, str) else _describe(key),
                fix="use only the fields " + ", ".join(allowed) + hint,
            )
    for key in ("role", "content"):
        if key not in value:
            raise InputError(
                "missing field",
                file=src.file,
                record=record,
                field=key,
                fix='give every message a role and a content, e.g. {"role": "user", "content": "..."}',
            )
    role = value["role"]
    if not isinstance(role, str):
        raise _wrong_type(role, "a string", src, record, "role")
    if role not in ROLES:
        raise InputError(
            f"unknown role '{_show(role)}'", file=src.file, record=record, field="role",
            fix="use one of: " + ", ".join(ROLES),
        )
    content = src.text(value["content"], record, "content", long=True,
                       fix="give the message's text, or drop the message")
    speaker = role
    if "name" in value:
        speaker = src.text(value["name"], record, "name", fix="give the speaker's name, or leave name out")
    timestamp = None
    if "timestamp" in value:
        timestamp = _iso_date(value["timestamp"], src, record, "timestamp")
    metadata = {}
    if "metadata" in value:
        metadata = check_metadata(value["metadata"], record=record, file=src.file, limits=src.limits)
    return Turn(text=content, speaker=speaker, role=role, timestamp=timestamp, metadata=metadata)


def _checked_turn(turn: Turn, src: _Source, record: str) -> Turn:
    """A `Turn` given in Python, checked field by field and returned unchanged."""
    if not isinstance(turn, Turn):
        raise _wrong_type(turn, "a Turn", src, record, "turns")
    caption = turn.caption
    if caption is not None:
        src.text(caption, record, "caption", long=True, allow_blank=True)
    src.text(turn.text, record, "text", long=True, allow_blank=bool(caption and caption.strip()),
             fix="give the turn's text, or drop the turn")
    src.text(turn.speaker, record, "speaker", fix="name who says the turn")
    if src.text(turn.role, record, "role") not in ROLES:
        raise InputError(f"unknown role '{_show(turn.role)}'", record=record, field="role",
                         fix="use one of: " + ", ".join(ROLES))
    if turn.turn_id is not None:
        src.text(turn.turn_id, record, "turn_id")
    if turn.timestamp is not None:
        _iso_date(turn.timestamp, src, record, "timestamp")
    check_metadata(turn.metadata, record=record, limits=src.limits)
    return turn


# ---------------------------------------------------------------------------------------------
# Small helpers


def _iso_date(value: Any, src: _Source, record: str | None, key: str) -> str:
    """The ISO form of a source date: minutes when the seconds are zero, a bare date when no time is given."""
    if isinstance(value, str):
        value = src.text(value, record, key, max_chars=MAX_DATE_CHARS,
                         fix='give a date such as "2023-05-08T13:56"')
    elif not isinstance(value, date):
        raise _wrong_type(value, "a date string", src, record, key)
    try:
        parsed = parse_session_date(value)
    except InputError as exc:
        raise InputError(exc.problem, file=src.file, record=record, field=key, fix=exc.fix) from None
    if isinstance(value, str):
        date_only = ":" not in value
    else:
        date_only = not isinstance(value, datetime)
    if date_only and parsed.time() == datetime.min.time():
        return parsed.date().isoformat()
    timespec = "minutes" if parsed.second == 0 and parsed.microsecond == 0 else "auto"
    return parsed.isoformat(timespec=timespec)


def _id_text(value: Any, src: _Source, record: str | None, key: str) -> str:
    """An id given as a string or a whole number."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # at most MAX_NUMBER_DIGITS digits: the parser refuses longer numbers
    return src.text(value, record, key, fix=f"make {key} a non-empty string")


def _required_text(value: dict, key: str, src: _Source, record: str | None, *, fix: str) -> str:
    if key not in value:
        raise InputError("missing field", file=src.file, record=record, field=key, fix=fix)
    return src.text(value[key], record, key, fix=fix)


def _wrong_type(value: Any, expected: str, src: _Source, record: str | None, key: str) -> InputError:
    return InputError(
        f"expected {expected}, got {_describe(value)}",
        file=src.file,
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
    """A value's type, and a short safe view of a key list or a number, for error messages."""
    if isinstance(value, dict):
        keys = [_show(k) if isinstance(k, str) else _describe(k) for k in itertools.islice(value, 12)]
        return f"an object with keys: {', '.join(keys)}" + (", ..." if len(value) > 12 else "") if value else \
            "an empty object"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({json.dumps(value)})"
    if isinstance(value, int):
        shown = str(value) if value.bit_length() <= 64 else f"{value.bit_length():,} bits long"
        return f"{_type_name(value)} ({shown})"
    if isinstance(value, float):
        return f"{_type_name(value)} ({value!r})"
    return _type_name(value)


def _show(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters and safe to print: shown as a Python literal when it
    holds anything unprintable (a control character, a lone surrogate), with Python's escapes."""
    cut = text[:limit] + ("..." if len(text) > limit else "")
    return cut if cut.isprintable() else ascii(cut)[1:-1]


def _context(text: str, at: int) -> str:
    """Where `at` is in `text`, for an error: the few characters before it."""
    before = text[max(0, at - 20):at]
    return f", after {ascii(before)}" if before else ""
