import json

import pytest

from memlane.config import LLMConfig
from memlane.errors import ConfigError, LLMError
from memlane.llm import LLMClient, parse_json_answer


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(server, sleeps):
    return LLMClient(LLMConfig(base_url=server.url, model="scripted", api_key="k", max_retries=2), sleep=sleeps.append)


def test_a_completion_sends_the_model_messages_and_key(client, server):
    server.play(server.chat("Lisbon"))
    assert client.complete([{"role": "user", "content": "Where?"}]) == "Lisbon"
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["body"]["model"] == "scripted" and request["body"]["messages"][0]["content"] == "Where?"
    assert request["headers"]["Authorization"] == "Bearer k"


def test_429_and_5xx_are_retried_with_growing_waits(client, server, sleeps):
    server.play(server.fail(429, "slow down"), server.fail(503, "busy"), server.chat("ok"))
    assert client.complete([{"role": "user", "content": "x"}]) == "ok"
    assert sleeps == [0.5, 1.0]


def test_giving_up_names_the_server_and_the_last_error(client, server):
    server.play(*[server.fail(500, "boom")] * 3)
    with pytest.raises(LLMError, match="LLM server .* HTTP 500: boom .*3 attempts"):
        client.complete([{"role": "user", "content": "x"}])


def test_a_timeout_is_retried(server, sleeps):
    client = LLMClient(LLMConfig(base_url=server.url, model="m", timeout_s=0.2, max_retries=1), sleep=sleeps.append)
    server.play(server.stall(0.6), server.chat("late but fine"))
    assert client.complete([{"role": "user", "content": "x"}]) == "late but fine"
    assert len(sleeps) == 1


def test_a_bad_request_is_not_retried(client, server, sleeps):
    server.play(server.fail(400, "unknown model"))
    with pytest.raises(LLMError, match="unknown model"):
        client.complete([{"role": "user", "content": "x"}])
    assert sleeps == []


def test_json_answers_are_parsed_and_malformed_ones_are_errors(client, server):
    server.play(server.chat('```json\n{"a": 1}\n```'), server.chat("{oops"))
    assert client.complete_json([{"role": "user", "content": "x"}]) == {"a": 1}
    assert server.requests[0]["body"]["response_format"] == {"type": "json_object"}
    with pytest.raises(LLMError, match="not valid JSON"):
        client.complete_json([{"role": "user", "content": "x"}])
    assert parse_json_answer(json.dumps([1, 2])) == [1, 2]


def test_json_mode_can_be_turned_off_for_servers_that_reject_it(server):
    client = LLMClient(LLMConfig(base_url=server.url, model="m", json_mode=False))
    server.play(server.chat('{"a": 2}'))
    assert client.complete_json([{"role": "user", "content": "x"}]) == {"a": 2}
    assert "response_format" not in server.requests[0]["body"]


def test_map_keeps_order_and_returns_failures_in_place(server):
    client = LLMClient(LLMConfig(base_url=server.url, model="m", concurrency=1, max_retries=0))
    server.play(server.chat('{"n": 1}'), server.fail(400, "bad"), server.chat('{"n": 3}'))
    answers = client.map([[{"role": "user", "content": str(i)}] for i in range(3)], json_output=True)
    assert answers[0] == {"n": 1} and isinstance(answers[1], LLMError) and answers[2] == {"n": 3}


def test_no_llm_configured_is_a_config_error():
    with pytest.raises(ConfigError, match="llm.base_url"):
        LLMClient(LLMConfig())
    with pytest.raises(ConfigError, match="llm.model"):
        LLMClient(LLMConfig(base_url="http://localhost:1/v1"))
