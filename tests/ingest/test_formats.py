"""Reading LoCoMo, LongMemEval and chat-message files into sessions, and the errors on bad input."""

from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

import pytest

from memlane.errors import InputError
from memlane.ingest.formats import Conversation, load_conversations, parse_messages
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
