"""Property tests: whatever a file or a list of messages holds, reading it gives either clean
conversations or an InputError, never another exception.

The documents are LoCoMo-, LongMemEval- and JSONL-shaped with any value at any position, valid
fixture documents with one part replaced, and garbage bytes; the strings include lone
surrogates, NUL and other control characters. Deterministic (derandomize) and fast.
"""

from __future__ import annotations

import json
import lzma
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from memlane.config import LimitsConfig
from memlane.errors import InputError, MemlaneError
from memlane.ingest.formats import Conversation, check_metadata, check_text, load_conversations, parse_messages
from memlane.records import Session, Turn

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- strategies ------------------------------------------------------------------------------

NASTY_STRINGS = ["\ud800", "\udfff", "a\ud83db", "\x00", "nul\x00inside", "\u2028", "\ufeff", "\x1b[31m",
                 "", " ", "x" * 100_001, "1:56 pm on 8 May, 2023", "2023-05-08T13:56", "user", "D1:1"]
characters = st.one_of(
    st.characters(),
    st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp"]),  # surrogates and control characters
    st.sampled_from(["\x00", "\ud800", "\\", '"', "\n", "[", "{"]),
)
texts = st.one_of(st.text(characters, max_size=12), st.sampled_from(NASTY_STRINGS))
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, True, False, 2**63, 10**4300 - 1]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)
# Python values a caller may pass by mistake, besides JSON ones.
python_values = st.one_of(
    json_values,
    st.binary(max_size=8),
    st.sampled_from([object(), float("nan"), float("inf"), (1, 2), {1, 2}, 10**5000, b"\xff", Turn]),
    st.dictionaries(st.one_of(st.integers(), st.none(), st.binary(max_size=2)), json_values, min_size=1, max_size=2),
)


def maybe(good: st.SearchStrategy, wrong: st.SearchStrategy = json_values) -> st.SearchStrategy:
    """Mostly a valid value, sometimes anything else."""
    return st.integers(0, 11).flatmap(lambda i: good if i else wrong)


dates = maybe(st.sampled_from(["1:56 pm on 8 May, 2023", "2023/05/30 (Tue) 23:40", "2023-05-08", "2023-05-08T13:56"]),
              st.one_of(json_values, texts))
good_text = st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=12).filter(str.strip)

locomo_turn = maybe(st.fixed_dictionaries(
    {"speaker": maybe(good_text), "dia_id": maybe(good_text), "text": maybe(good_text, texts)},
    optional={"blip_caption": maybe(good_text, texts), "img_url": json_values, "query": json_values,
              "extra": json_values}))
locomo_conversation = st.builds(
    lambda speakers, sessions, qa, extra: {
        **speakers,
        **{f"session_{i + 1}": turns for i, (turns, _) in enumerate(sessions)},
        **{f"session_{i + 1}_date_time": date for i, (_, date) in enumerate(sessions)},
        **({"qa": qa} if qa is not None else {}),
        **extra,
    },
    st.fixed_dictionaries({"speaker_a": maybe(good_text), "speaker_b": maybe(good_text)}),
    st.lists(st.tuples(maybe(st.lists(locomo_turn, max_size=3)), dates), min_size=1, max_size=3),
    st.one_of(st.none(), maybe(st.lists(maybe(st.dictionaries(texts, json_values, max_size=3)), max_size=2))),
    st.one_of(st.just({}), st.dictionaries(
        st.sampled_from(["sample_id", "session_01", "session_5", "session_" + "9" * 5000, "speaker_b", "session_1"]),
        json_values, max_size=2)),
)
locomo_document = st.one_of(
    locomo_conversation,
    st.builds(lambda conv, sid: {"sample_id": sid, "conversation": conv}, locomo_conversation, maybe(good_text)),
    st.lists(locomo_conversation, min_size=1, max_size=2),
)

lme_turn = maybe(st.fixed_dictionaries(
    {"role": maybe(st.sampled_from(["user", "assistant"])), "content": maybe(good_text, texts)},
    optional={"has_answer": maybe(st.booleans()), "extra": json_values}))
lme_question = st.builds(
    lambda qid, haystack, extra: {"question_id": qid, "haystack_sessions": [turns for turns, _, _ in haystack],
                                  "haystack_session_ids": [sid for _, sid, _ in haystack],
                                  "haystack_dates": [when for _, _, when in haystack], **extra},
    maybe(good_text),
    st.lists(st.tuples(maybe(st.lists(lme_turn, max_size=3)), maybe(good_text), dates), max_size=3),
    st.dictionaries(st.sampled_from(["question", "answer", "question_date", "haystack_dates", "question_id"]),
                    json_values, max_size=2),
)
lme_document = st.one_of(lme_question, st.lists(lme_question, min_size=1, max_size=2))

message = maybe(st.fixed_dictionaries(
    {"role": maybe(st.sampled_from(["user", "assistant", "system", "tool"]), texts),
     "content": maybe(good_text, texts)},
    optional={"name": maybe(good_text, texts), "timestamp": dates, "session_id": maybe(good_text),
              "metadata": maybe(st.dictionaries(texts, json_values, max_size=3)), "session_date": dates,
              "extra": json_values}))
messages = st.lists(message, min_size=1, max_size=4)


def fixture_documents() -> list[Any]:
    return [json.loads((FIXTURES / name).read_text()) for name in ("locomo_mini.json", "longmemeval_mini.json")] + [
        [json.loads(line) for line in (FIXTURES / "chat_messages.jsonl").read_text().splitlines() if line.strip()]
    ]


@st.composite
def mutated_fixture(draw) -> Any:
    """A valid fixture document with one value, somewhere, replaced by anything."""
    document = draw(st.sampled_from(fixture_documents()))
    replacement = draw(st.one_of(json_values, st.sampled_from(NASTY_STRINGS)))
    parent, key, node = None, None, document
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 4)) > 0:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, draw(st.sampled_from(keys))
        node = node[key]
    if parent is None:
        return replacement
    parent[key] = replacement
    return document


# --- checks ----------------------------------------------------------------------------------


def assert_clean(value: Any) -> None:
    """Every string can be stored (UTF-8, no NUL), and every value is JSON."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")
    assert "\x00" not in text and "\\u0000" not in text


def assert_clean_turn(turn: Turn) -> None:
    assert isinstance(turn, Turn)
    assert isinstance(turn.text, str) and isinstance(turn.speaker, str) and turn.speaker.strip()
    assert turn.text.strip() or (turn.caption and turn.caption.strip())
    assert_clean([turn.text, turn.speaker, turn.role, turn.turn_id, turn.timestamp, turn.caption, turn.metadata])


def assert_clean_conversations(conversations: list[Conversation]) -> None:
    assert isinstance(conversations, list) and conversations
    for conversation in conversations:
        assert isinstance(conversation, Conversation)
        assert_clean([conversation.conversation_id, conversation.speakers, conversation.questions])
        for session in conversation.sessions:
            assert isinstance(session, Session)
            assert_clean([session.session_id, session.date, session.metadata])
            for turn in session.turns:
                assert_clean_turn(turn)


def assert_good_error(error: InputError, path: Path | None) -> None:
    """The message can be printed, names the file, and says how to fix it."""
    assert isinstance(error, MemlaneError)
    str(error).encode("utf-8")
    assert error.fix
    if path is not None:
        assert error.file == str(path)


def load_or_error(path: Path, limits: LimitsConfig | None = None) -> str:
    """What reading `path` gave ("conversations" or "InputError"), after checking it is clean."""
    try:
        conversations = load_conversations(path, limits)
    except InputError as error:
        assert_good_error(error, path)
        return "InputError"
    assert_clean_conversations(conversations)
    return "conversations"


def write_json(directory: Path, document: Any, name: str, compress: bool = False) -> Path:
    data = json.dumps(document).encode("utf-8")  # ensure_ascii: surrogates travel as \\ud800 escapes
    path = directory / (name + (".xz" if compress else ""))
    path.write_bytes(lzma.compress(data) if compress else data)
    return path


@pytest.fixture(scope="module")
def directory(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- files -----------------------------------------------------------------------------------


@FUZZ
@given(document=locomo_document, compress=st.booleans())
def test_any_locomo_shaped_file_loads_cleanly_or_is_an_input_error(directory, document, compress):
    event(load_or_error(write_json(directory, document, "locomo.json", compress)))


@FUZZ
@given(document=lme_document, compress=st.booleans())
def test_any_longmemeval_shaped_file_loads_cleanly_or_is_an_input_error(directory, document, compress):
    event(load_or_error(write_json(directory, document, "lme.json", compress)))


@FUZZ
@given(lines=st.lists(st.one_of(message, json_values), min_size=1, max_size=4), as_list=st.booleans())
def test_any_jsonl_shaped_file_loads_cleanly_or_is_an_input_error(directory, lines, as_list):
    if as_list:
        path = write_json(directory, lines, "chat.json")
    else:
        path = directory / "chat.jsonl"
        path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    event(load_or_error(path))


@FUZZ
@given(document=mutated_fixture(), name=st.sampled_from(["doc.json", "doc.jsonl"]))
def test_a_fixture_with_any_part_replaced_loads_cleanly_or_is_an_input_error(directory, document, name):
    path = directory / name
    if name.endswith(".jsonl") and isinstance(document, list):
        path.write_text("\n".join(json.dumps(item) for item in document), encoding="utf-8")
    else:
        path = write_json(directory, document, name)
    event(load_or_error(path))


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.builds(lambda tail: b"\xfd7zXZ\x00" + tail, st.binary(max_size=32)),  # xz magic, then garbage
        st.builds(lambda text: text.encode("utf-8", "surrogatepass"), st.text(characters, max_size=40)),
        st.sampled_from([b"\xff" * 8, b"\xef\xbb\xbf", b"[" * 100_000, b"1" * 5000, b"NaN", b"-Infinity", b"1e999",
                         '{"role": "user", "content": "\\ud800"}'.encode(), b"{" * 70 + b"}" * 70, b"\x00"]),
    ),
    name=st.sampled_from(["raw.json", "raw.jsonl", "raw.json.xz"]),
)
def test_any_bytes_load_cleanly_or_are_an_input_error(directory, data, name):
    path = directory / name
    path.write_bytes(data)
    event(load_or_error(path))


@FUZZ
@given(document=st.one_of(locomo_document, lme_document, messages),
       limits=st.builds(LimitsConfig, max_text_chars=st.integers(1, 20), max_import_bytes=st.integers(1, 400),
                        max_json_depth=st.integers(2, 5), max_metadata_bytes=st.integers(2, 40),
                        max_import_turns=st.integers(1, 4)))
def test_small_limits_give_input_errors_not_crashes(directory, document, limits):
    event(load_or_error(write_json(directory, document, "limited.json"), limits))


# --- hand-written pathological files ---------------------------------------------------------


def _string_paths(value: Any, path: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _string_paths(item, path + (key,))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _string_paths(item, path + (i,))]
    return [path] if isinstance(value, str) else []


def _replaced(document: Any, path: tuple, value: Any) -> Any:
    document = json.loads(json.dumps(document))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return document


@pytest.mark.parametrize("nasty", ["\ud800", "a\x00b", 12345, None, ["x"], "x" * 100_001])
def test_a_bad_value_in_every_string_field_of_every_fixture(tmp_path, nasty):
    for i, document in enumerate(fixture_documents()):
        for path in _string_paths(document):
            load_or_error(write_json(tmp_path, _replaced(document, path, nasty), f"doc{i}.json"))


@pytest.mark.parametrize("content", [b"[" * 100_000, b"{\"a\":" * 100_000, b"1" * 5000, b"-" + b"9" * 5000,
                                     b"0." + b"1" * 5000, b"\xff\xfe\x00\x00", b"\x89PNG\r\n\x1a\n\x00\x00"])
@pytest.mark.parametrize("name", ["bad.json", "bad.jsonl"])
def test_pathological_bytes_are_input_errors(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        load_conversations(path)
    assert_good_error(info.value, path)


# --- messages given in Python ----------------------------------------------------------------

py_message = st.one_of(
    st.fixed_dictionaries({}, optional={
        "role": maybe(st.sampled_from(["user", "assistant"]), python_values),
        "content": maybe(good_text, st.one_of(texts, python_values)),
        "name": maybe(good_text, python_values), "timestamp": maybe(dates, python_values),
        "metadata": maybe(st.dictionaries(texts, json_values, max_size=3), python_values),
    }),
    st.builds(Turn, text=maybe(good_text, python_values), speaker=maybe(good_text, python_values),
              role=maybe(st.just("user"), python_values), turn_id=st.one_of(st.none(), python_values),
              timestamp=st.one_of(st.none(), dates), caption=st.one_of(st.none(), texts),
              metadata=maybe(st.dictionaries(texts, json_values, max_size=2), python_values)),
    python_values,
)


@FUZZ
@given(items=st.one_of(st.lists(py_message, max_size=4), python_values,
                       st.builds(lambda turns: Session(turns=turns), st.lists(py_message, max_size=3))))
def test_parse_messages_returns_clean_turns_or_raises_input_error(items):
    try:
        turns = parse_messages(items, source="add")
    except InputError as error:
        assert_good_error(error, None)
        event("InputError")
    else:
        event("turns")
        for turn in turns:
            assert_clean_turn(turn)


@FUZZ
@given(value=st.one_of(texts, python_values), max_chars=st.one_of(st.none(), st.integers(0, 20)),
       allow_blank=st.booleans())
def test_check_text_returns_storable_text_or_raises_input_error(value, max_chars, allow_blank):
    try:
        text = check_text(value, field="text", max_chars=max_chars, allow_blank=allow_blank)
    except InputError as error:
        assert_good_error(error, None)
        assert error.field == "text"
    else:
        assert type(text) is str and text == value
        text.encode("utf-8")
        assert "\x00" not in text and (max_chars is None or len(text) <= max_chars)
        assert allow_blank or text.strip()


@FUZZ
@given(value=python_values)
def test_check_metadata_returns_json_or_raises_input_error(value):
    try:
        metadata = check_metadata(value, limits=LimitsConfig(max_metadata_bytes=2000, max_json_depth=4))
    except InputError as error:
        assert_good_error(error, None)
    else:
        assert isinstance(metadata, dict)
        assert_clean(metadata)
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in metadata.values())
