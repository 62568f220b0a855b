"""Reading LoCoMo, LongMemEval and chat-message files into sessions, and the errors on bad input."""

from __future__ import annotations

import json
import lzma
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memlane.cli import app
from memlane.config import LimitsConfig
from memlane.errors import InputError
from memlane.ingest.formats import Conversation, check_metadata, check_text, load_conversations, parse_messages
from memlane.records import Session, Turn

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
DATA = REPO.parent / "shared" / "data"
LOCOMO_26 = DATA / "locomo" / "26.json"


def write(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load_conversations(path)
    return info.value


def jsonl(*messages: dict) -> str:
    return "\n".join(json.dumps(m) for m in messages) + "\n"


def locomo(**overrides) -> dict:
    conv = {
        "speaker_a": "Alo",
        "speaker_b": "Bea",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": [{"speaker": "Alo", "dia_id": "D1:1", "text": "Hi Bea"}],
    }
    conv.update(overrides)
    return conv


# --- LoCoMo ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locomo_26() -> Conversation:
    [conversation] = load_conversations(LOCOMO_26)
    return conversation


def test_locomo_file_has_its_sessions_turns_and_questions(locomo_26):
    assert locomo_26.conversation_id == "26"
    assert locomo_26.speakers == ["Caroline", "Melanie"]
    assert len(locomo_26.sessions) == 19
    assert sum(len(s.turns) for s in locomo_26.sessions) == 419
    assert len(locomo_26.questions) == 199


def test_locomo_session_has_id_and_iso_date(locomo_26):
    first = locomo_26.sessions[0]
    assert first.session_id == "session_1"
    assert first.date == "2023-05-08T13:56"


def test_locomo_turn_keeps_dia_id_and_photo_caption(locomo_26):
    turn = next(t for t in locomo_26.sessions[0].turns if t.turn_id == "D1:5")
    assert turn.speaker == "Caroline" and turn.role == "user"
    assert turn.caption == "a photo of a dog walking past a wall with a painting of a woman"
    assert turn.metadata["query"] == "transgender pride flag mural"
    plain = locomo_26.sessions[0].turns[0]
    assert plain.caption is None and plain.metadata == {}


def test_locomo10_wrapper_uses_sample_id_and_outer_qa():
    [conversation] = load_conversations(FIXTURES / "locomo_mini.json")
    assert conversation.conversation_id == "conv-mini"
    assert [s.session_id for s in conversation.sessions] == ["session_1", "session_2"]
    assert conversation.questions[0]["answer"] == "a puppy"


def test_locomo_photo_turn_with_empty_text_is_kept():
    [conversation] = load_conversations(FIXTURES / "locomo_mini.json")
    photo = conversation.sessions[0].turns[1]
    assert photo.text == "" and photo.caption == "a photo of a small puppy on a rug"


def test_locomo_list_names_conversations_by_stem_and_index(tmp_path):
    path = write(tmp_path, "pair.json", [locomo(), locomo()])
    assert [c.conversation_id for c in load_conversations(path)] == ["pair_1", "pair_2"]


# --- LongMemEval -----------------------------------------------------------------------------


def test_longmemeval_question_becomes_a_conversation_of_its_haystack():
    [conversation] = load_conversations(FIXTURES / "longmemeval_mini.json")
    assert conversation.conversation_id == "mini001"
    assert [s.session_id for s in conversation.sessions] == ["chat_mini_0", "answer_mini_1"]
    assert [s.date for s in conversation.sessions] == ["2023-05-20T07:47", "2023-05-28T18:02"]
    assert conversation.speakers == ["user", "assistant"]


def test_longmemeval_turns_carry_role_id_and_has_answer_only_when_given():
    [conversation] = load_conversations(FIXTURES / "longmemeval_mini.json")
    distractor, evidence = conversation.sessions
    assert distractor.turns[0].metadata == {}
    assert evidence.turns[0] == Turn(
        text="I just bought a red bike for my commute.",
        speaker="user",
        role="user",
        turn_id="answer_mini_1:0",
        metadata={"has_answer": True},
    )
    assert evidence.turns[1].metadata == {"has_answer": False}


def test_longmemeval_question_is_kept_without_the_haystack():
    [conversation] = load_conversations(FIXTURES / "longmemeval_mini.json")
    [question] = conversation.questions
    assert question["answer"] == "red"
    assert not any(key.startswith("haystack_") for key in question)


def test_longmemeval_xz_file_is_read(tmp_path):
    path = tmp_path / "mini.json.xz"
    path.write_bytes(lzma.compress((FIXTURES / "longmemeval_mini.json").read_bytes()))
    [conversation] = load_conversations(path)
    assert len(conversation.sessions) == 2


def test_longmemeval_single_question_object(tmp_path):
    question = json.loads((FIXTURES / "longmemeval_mini.json").read_text())[0]
    [conversation] = load_conversations(write(tmp_path, "one.json", question))
    assert conversation.conversation_id == "mini001"


# --- chat messages ---------------------------------------------------------------------------


def test_jsonl_groups_messages_into_sessions_in_order_of_first_appearance():
    [conversation] = load_conversations(FIXTURES / "chat_messages.jsonl")
    assert conversation.conversation_id == "chat_messages"
    assert [s.session_id for s in conversation.sessions] == ["s1", "s2"]
    assert [len(s.turns) for s in conversation.sessions] == [3, 2]
    assert conversation.speakers == ["Ana", "assistant"]


def test_jsonl_session_date_comes_from_session_date_then_first_timestamp():
    [conversation] = load_conversations(FIXTURES / "chat_messages.jsonl")
    assert [s.date for s in conversation.sessions] == ["2024-03-02T10:00", "2024-03-09T18:30"]
    assert conversation.sessions[1].turns[1].timestamp == "2024-03-09T18:31"


def test_jsonl_without_session_ids_is_one_session_without_date(tmp_path):
    path = write(tmp_path, "chat.jsonl", jsonl({"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}))
    [conversation] = load_conversations(path)
    [session] = conversation.sessions
    assert session.session_id == "session_1" and session.date is None and len(session.turns) == 2


def test_json_list_of_messages_is_read_like_jsonl(tmp_path):
    path = write(tmp_path, "chat.json", [{"role": "user", "content": "hello", "metadata": {"k": 1}}])
    [conversation] = load_conversations(path)
    assert conversation.sessions[0].turns == [Turn(text="hello", speaker="user", role="user", metadata={"k": 1})]


def test_parse_messages_accepts_dicts_and_turns():
    kept = Turn(text="earlier", speaker="Ana")
    turns = parse_messages([{"role": "user", "content": "hi", "name": "Ana"}, kept])
    assert turns == [Turn(text="hi", speaker="Ana", role="user"), kept]


def test_parse_messages_accepts_a_session():
    session = Session(turns=[Turn(text="hi", speaker="Ana")])
    assert parse_messages(session) == session.turns


# --- errors ----------------------------------------------------------------------------------


def test_malformed_json_names_line_and_column(tmp_path):
    path = write(tmp_path, "bad.json", '{\n  "speaker_a": "Alo",\n  "speaker_b" "Bea"\n}')
    error = load_error(path)
    assert str(path) in str(error)
    assert error.record == "line 3" and "column 15" in error.problem


def test_malformed_jsonl_line_is_named(tmp_path):
    path = write(tmp_path, "chat.jsonl", jsonl({"role": "user", "content": "ok"}) + '{"role": "user", "content": }\n')
    error = load_error(path)
    assert error.record == "line 2" and "malformed JSON" in error.problem


def test_unrecognized_format_lists_accepted_formats_and_keys_found(tmp_path):
    error = load_error(write(tmp_path, "other.json", {"title": "x", "rows": []}))
    assert "title, rows" in error.problem
    assert "LoCoMo" in error.fix and "LongMemEval" in error.fix and "JSONL" in error.fix


def test_unknown_message_field_names_field_and_allowed_fields(tmp_path):
    path = write(tmp_path, "chat.jsonl", jsonl({"role": "user", "content": "ok"}, {"role": "user", "text": "hi"}))
    error = load_error(path)
    assert (error.file, error.record, error.field) == (str(path), "line 2", "text")
    assert "role, content, name, timestamp, metadata, session_id, session_date" in error.fix


def test_missing_message_field_is_named(tmp_path):
    error = load_error(write(tmp_path, "chat.jsonl", jsonl({"content": "hi"})))
    assert (error.record, error.field, error.problem) == ("line 1", "role", "missing field")


def test_empty_message_content_is_an_error(tmp_path):
    error = load_error(write(tmp_path, "chat.jsonl", jsonl({"role": "user", "content": "  "})))
    assert (error.record, error.field, error.problem) == ("line 1", "content", "empty text")


def test_locomo_turn_without_text_or_caption_is_an_error(tmp_path):
    turns = [{"speaker": "Alo", "dia_id": "D1:1", "text": "Hi"}, {"speaker": "Bea", "dia_id": "D1:2", "text": ""}]
    error = load_error(write(tmp_path, "conv.json", locomo(session_1=turns)))
    assert (error.record, error.field) == ("session_1 turn 2 (D1:2)", "text")
    assert str(error).startswith(f"{tmp_path / 'conv.json'}, record session_1 turn 2 (D1:2), field 'text': ")


def test_wrong_type_says_the_expected_type(tmp_path):
    error = load_error(write(tmp_path, "chat.jsonl", jsonl({"role": "user", "content": 42})))
    assert error.field == "content"
    assert error.problem == "expected a string, got a number (42)"


def test_unparseable_session_date_names_session_and_field(tmp_path):
    error = load_error(write(tmp_path, "conv.json", locomo(session_1_date_time="sometime in spring")))
    assert (error.record, error.field) == ("session_1", "session_1_date_time")
    assert "sometime in spring" in error.problem


def test_mismatched_haystack_lengths_are_an_error(tmp_path):
    question = json.loads((FIXTURES / "longmemeval_mini.json").read_text())[0]
    question["haystack_dates"].pop()
    error = load_error(write(tmp_path, "lme.json", [question]))
    assert error.record == "question mini001"
    assert "haystack_dates has 1" in error.problem and "haystack_sessions has 2" in error.problem


def test_error_deep_in_the_file_fails_the_whole_load(tmp_path):
    path = tmp_path / "chat.jsonl"
    shutil.copy(FIXTURES / "chat_messages.jsonl", path)
    with path.open("a") as f:
        f.write(json.dumps({"role": "robot", "content": "beep"}) + "\n")
    error = load_error(path)
    assert (error.record, error.field) == ("line 7", "role")
    assert "user, assistant, system, tool" in error.fix


def test_parse_messages_error_names_the_item():
    with pytest.raises(InputError) as info:
        parse_messages([{"role": "user", "content": "hi"}, {"role": "user", "content": None}], source="add")
    assert (info.value.record, info.value.field) == ("add[1]", "content")


# --- hostile input: every defect ends in InputError ------------------------------------------


def test_lone_surrogate_escape_in_a_jsonl_file_names_line_field_and_position(tmp_path):
    bad_line = '{"role": "user", "content": "hi \\ud800"}\n'  # the JSON escape of a lone surrogate
    path = write(tmp_path, "chat.jsonl", jsonl({"role": "user", "content": "ok"}) + bad_line)
    error = load_error(path)
    assert (error.file, error.record, error.field) == (str(path), "line 2", "content")
    assert "lone surrogate (U+D800) at character 4" in error.problem


def test_lone_surrogate_in_a_message_given_in_python_is_an_input_error():
    with pytest.raises(InputError) as info:
        parse_messages([{"role": "user", "content": "hi \ud800"}], source="add")
    assert (info.value.record, info.value.field) == ("add[0]", "content")


def test_lone_surrogate_in_a_key_gives_a_printable_error(tmp_path):
    error = load_error(write(tmp_path, "chat.jsonl", '{"role": "user", "content": "hi", "\\ud800": 1}\n'))
    assert error.problem == "unknown field" and error.field == "\\ud800"
    str(error).encode("utf-8")


def test_nul_character_in_text_is_refused(tmp_path):
    error = load_error(write(tmp_path, "chat.jsonl", '{"role": "user", "content": "a\\u0000b"}\n'))
    assert error.field == "content" and "NUL character at character 2" in error.problem


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_100000_deep_nesting_is_an_input_error_not_a_recursion_error(tmp_path, name):
    error = load_error(write(tmp_path, name, jsonl({"role": "user", "content": "ok"}) + "[" * 100_000 + "\n"))
    assert "nested more than 64 levels" in error.problem
    assert error.record == "line 2"


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_nesting_is_limited_to_max_json_depth(tmp_path):
    # the message is one level, its metadata the others
    ok = write(tmp_path, "ok.jsonl", jsonl({"role": "user", "content": "x", "metadata": nested(63)}))
    assert load_conversations(ok)[0].sessions[0].turns[0].metadata
    error = load_error(write(tmp_path, "deep.jsonl", jsonl({"role": "user", "content": "x", "metadata": nested(64)})))
    assert "nested more than 64 levels" in error.problem and "limits.max_json_depth" in error.fix
    with pytest.raises(InputError):
        load_conversations(ok, LimitsConfig(max_json_depth=10))


@pytest.mark.parametrize("content", ["1" * 5000, '{"role": "user", "content": "x", "metadata": {"n": -%s}}' % ("9" * 5000)])
def test_a_5000_digit_number_is_an_input_error(tmp_path, content):
    error = load_error(write(tmp_path, "big.json", content))
    assert "5,00" in error.problem and "digits" in error.problem and error.record == "line 1"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_json_cannot_hold_are_refused(tmp_path, literal):
    line = '{"role": "user", "content": "x", "metadata": {"n": %s}}\n' % literal
    error = load_error(write(tmp_path, "chat.jsonl", line))
    assert error.record == "line 1" and literal in error.problem


WRONG_TYPES = [42, ["hi"], None, {"text": "hi"}, True]


@pytest.mark.parametrize("key, value", [(key, value) for key in ("content", "name", "session_id") for value in WRONG_TYPES
                                        if (key, value) != ("session_id", 42)])  # a number is a valid session id
def test_a_wrong_type_where_a_string_is_expected_names_the_field(tmp_path, key, value):
    message = {"role": "user", "content": "hello", key: value}
    error = load_error(write(tmp_path, "chat.jsonl", jsonl(message)))
    assert (error.record, error.field) == ("line 1", key)
    assert error.problem.startswith("expected")


@pytest.mark.parametrize("value", [b"hello", 3.5, None, ["hi"], object()])
def test_a_wrong_type_given_in_python_is_an_input_error(value):
    with pytest.raises(InputError) as info:
        parse_messages([{"role": "user", "content": value}])
    assert info.value.field == "content" and info.value.problem.startswith("expected a string")
    if isinstance(value, bytes):
        assert "decode" in info.value.fix


@pytest.mark.parametrize("locomo_field", ["speaker_a", "session_1_date_time", "sample_id"])
def test_a_wrong_type_in_a_locomo_field_is_an_input_error(tmp_path, locomo_field):
    error = load_error(write(tmp_path, "conv.json", locomo(**{locomo_field: ["not", "text"]})))
    assert error.field == locomo_field


def test_non_utf8_file_names_the_byte_offset_and_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'{\n"a": "\xc3\x28"}')
    error = load_error(path)
    assert error.record == "line 2" and "byte 0xc3 at byte 8" in error.problem
    assert "UTF-8" in error.fix


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b'{"a": 1,\x00 "b": 2}'])
def test_binary_file_is_refused_naming_the_byte(tmp_path, content):
    path = tmp_path / "image.json"
    path.write_bytes(content)
    error = load_error(path)
    assert "byte" in error.problem and error.file == str(path)


def test_utf16_file_is_refused_with_how_to_save_it(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_bytes(jsonl({"role": "user", "content": "hi"}).encode("utf-16"))
    error = load_error(path)
    assert "UTF-16" in error.problem and error.fix == "save the file as UTF-8"


def test_a_file_over_max_import_bytes_is_refused_before_reading(tmp_path):
    path = write(tmp_path, "chat.jsonl", jsonl(*[{"role": "user", "content": "hello"}] * 100))
    with pytest.raises(InputError) as info:
        load_conversations(path, LimitsConfig(max_import_bytes=1000))
    assert "at most 1,000" in info.value.problem and "limits.max_import_bytes" in info.value.fix


def test_an_xz_file_is_decompressed_only_up_to_max_import_bytes(tmp_path):
    path = tmp_path / "bomb.json.xz"
    path.write_bytes(lzma.compress(b" " * 10_000_000 + b"[]"))  # 10 MB from about 2 kB
    with pytest.raises(InputError) as info:
        load_conversations(path, LimitsConfig(max_import_bytes=100_000))
    assert "once decompressed" in info.value.problem


@pytest.mark.parametrize("mangle", [lambda data: data[:-20], lambda data: data + b"trailing garbage"])
def test_truncated_or_padded_xz_is_an_input_error(tmp_path, mangle):
    path = tmp_path / "mini.json.xz"
    path.write_bytes(mangle(lzma.compress((FIXTURES / "longmemeval_mini.json").read_bytes())))
    assert "xz" in load_error(path).problem


def test_concatenated_xz_streams_are_read(tmp_path):
    path = tmp_path / "chat.jsonl.xz"
    path.write_bytes(lzma.compress(jsonl({"role": "user", "content": "a"}).encode())
                     + lzma.compress(jsonl({"role": "user", "content": "b"}).encode()))
    assert [t.text for t in load_conversations(path)[0].sessions[0].turns] == ["a", "b"]


def test_empty_file_is_named_as_empty(tmp_path):
    assert load_error(write(tmp_path, "empty.json", "")).problem == "the file is empty"


def test_text_longer_than_max_text_chars_is_refused(tmp_path):
    path = write(tmp_path, "chat.jsonl", jsonl({"role": "user", "content": "x" * 101}))
    with pytest.raises(InputError) as info:
        load_conversations(path, LimitsConfig(max_text_chars=100))
    assert info.value.field == "content" and "101 characters" in info.value.problem
    assert "limits.max_text_chars" in info.value.fix


def test_more_turns_than_max_import_turns_is_refused(tmp_path):
    path = write(tmp_path, "chat.jsonl", jsonl(*[{"role": "user", "content": "hi"}] * 5))
    with pytest.raises(InputError) as info:
        load_conversations(path, LimitsConfig(max_import_turns=4))
    assert info.value.record == "line 5" and "limits.max_import_turns" in info.value.fix


def test_unicode_line_separators_inside_jsonl_strings_stay_in_the_text(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"role": "user", "content": "one\u2028two\x85three"}\n', encoding="utf-8")
    [conversation] = load_conversations(path)
    assert conversation.sessions[0].turns[0].text == "one\u2028two\x85three"


def test_a_locomo_session_after_a_gap_is_an_error_not_dropped(tmp_path):
    error = load_error(write(tmp_path, "conv.json", locomo(session_3=[], session_3_date_time="8 May 2023")))
    assert error.field == "session_2" and "session_3 follows" in error.problem


@pytest.mark.parametrize("key", ["session_01", "session_" + "9" * 5000])
def test_a_locomo_session_number_that_cannot_be_read_is_an_error(tmp_path, key):
    error = load_error(write(tmp_path, "conv.json", locomo(**{key: []})))
    assert error.problem == "not a session number memlane reads" and len(error.field) <= 63


def test_two_conversations_with_one_id_are_an_error(tmp_path):
    question = json.loads((FIXTURES / "longmemeval_mini.json").read_text())[0]
    error = load_error(write(tmp_path, "lme.json", [question, question]))
    assert error.record == "item 2" and "item 1" in error.problem


def test_a_surrogate_in_a_question_names_its_path(tmp_path):
    error = load_error(write(tmp_path, "conv.json", {**locomo(), "qa": [{"question": "ok"}, {"answer": "\ud800"}]}))
    assert error.field == "qa[1].answer"


def test_a_file_name_that_is_not_utf8_gives_a_printable_error(tmp_path):
    path = tmp_path / os.fsdecode(b"chat\xff.jsonl")
    path.write_text(jsonl({"role": "user", "content": "hi"}), encoding="utf-8")
    error = load_error(path)
    assert "rename the file" in error.fix and "\\udcff" in error.file
    str(error).encode("utf-8")


@pytest.mark.parametrize("path", [None, 42, "bad\x00path.json"])
def test_a_path_that_is_no_path_is_an_input_error(path):
    with pytest.raises(InputError):
        load_conversations(path)


@pytest.mark.parametrize("metadata, where", [
    ({1: "x"}, "metadata"),
    ({"when": datetime(2024, 1, 1)}, "metadata.when"),
    ({"n": float("nan")}, "metadata.n"),
    ({"n": 10**5000}, "metadata.n"),
    ({"tags": ["ok", "\ud800"]}, "metadata.tags[1]"),
    ({"blob": "x" * 70_000}, "metadata"),
    ("not a dict", "metadata"),
])
def test_bad_metadata_given_in_python_names_the_path(metadata, where):
    with pytest.raises(InputError) as info:
        parse_messages([{"role": "user", "content": "hi", "metadata": metadata}])
    assert (info.value.record, info.value.field) == ("messages[0]", where)


def test_metadata_that_holds_itself_is_refused_in_bounded_time():
    loop: dict = {}
    loop["self"] = loop
    shared: list = []
    for _ in range(60):  # 2**60 paths through 60 lists
        shared = [shared, shared]
    for metadata in (loop, {"x": shared}):
        with pytest.raises(InputError):
            check_metadata(metadata)


def test_turn_objects_are_checked_too():
    with pytest.raises(InputError) as info:
        parse_messages([Turn(text="ok", speaker="Ana"), Turn(text="bad \ud800", speaker="Ana")], source="add")
    assert (info.value.record, info.value.field) == ("add[1]", "text")
    with pytest.raises(InputError):
        parse_messages(Session(turns=[Turn(text="hi", speaker=None)]))  # type: ignore[arg-type]


def test_check_text_returns_the_text_or_names_what_is_wrong():
    assert check_text("hello", field="user_id") == "hello"
    assert check_text("", field="text", allow_blank=True) == ""
    cases = [(b"hi", "expected a string, got bytes"), (None, "expected a string, got null"),
             ("  ", "empty text"), ("x" * 11, "text of 11 characters; at most 10 are accepted"),
             ("ab\udc80", "a lone surrogate (U+DC80) at character 3, after 'ab'; UTF-8 cannot encode it"),
             ("\x00", "a NUL character at character 1")]
    for value, problem in cases:
        with pytest.raises(InputError) as info:
            check_text(value, field="user_id", record="r", file="f", max_chars=10)
        error = info.value
        assert (error.problem, error.field, error.record, error.file) == (problem, "user_id", "r", "f")


def test_cli_ingest_of_a_hostile_file_prints_one_error_line_and_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLANE_EMBEDDER__PROVIDER", "hash")
    monkeypatch.setenv("MEMLANE_EMBEDDER__MODEL", "hash-256")
    monkeypatch.setenv("MEMLANE_EMBEDDER__CACHE_PATH", "off")
    monkeypatch.setenv("MEMLANE_STORE", str(tmp_path / "cli.db"))
    files = {"surrogate.jsonl": b'{"role": "user", "content": "\\ud800"}\n', "deep.json": b"[" * 100_000,
             "number.json": b"1" * 5000, "binary.json": b"\xff\xd8\xff\xe0",
             "types.jsonl": b'{"role": 1, "content": []}'}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        result = CliRunner().invoke(app, ["ingest", str(tmp_path / name)])
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("error: ") and name in result.output
        assert not (tmp_path / "cli.db").exists()
