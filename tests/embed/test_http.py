import numpy as np
import pytest

from memlane.embed import Embedder, OpenAIHTTPEmbedder
from memlane.errors import LLMError


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(server, sleeps):
    return OpenAIHTTPEmbedder(server.url, "test-embed", dims=4, batch_size=2, sleep=sleeps.append)


def test_posts_the_model_and_inputs_to_the_embeddings_path(server, client):
    server.play(server.ok())
    client.encode(["hello"])
    request = server.requests[0]
    assert request["path"] == "/v1/embeddings"
    assert request["body"] == {"model": "test-embed", "input": ["hello"]}


def test_success_gives_normalized_rows_in_input_order(server, client):
    server.play(server.ok(reverse=True))
    vectors = client.encode(["a", "abc"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    expected = np.array([[1, 1, 0, 0], [3, 1, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-6)


def test_inputs_are_sent_in_batches(server, client):
    server.play(server.ok(), server.ok())
    assert client.encode(["a", "b", "c"]).shape == (3, 4)
    assert [r["body"]["input"] for r in server.requests] == [["a", "b"], ["c"]]


def test_a_429_is_retried_after_a_backoff(server, client, sleeps):
    server.play(server.fail(429, "slow down"), server.ok())
    assert client.encode(["a"]).shape == (1, 4)
    assert len(server.requests) == 2
    assert sleeps == [0.5]


def test_a_500_three_times_then_success_backs_off_exponentially(server, client, sleeps):
    server.play(*[server.fail(500, "boom")] * 3, server.ok())
    assert client.encode(["a"]).shape == (1, 4)
    assert sleeps == [0.5, 1.0, 2.0]


def test_persistent_5xx_gives_up_after_max_retries(server, sleeps):
    client = OpenAIHTTPEmbedder(server.url, "m", dims=4, max_retries=2, sleep=sleeps.append)
    server.play(*[server.fail(503, "overloaded")] * 3)
    with pytest.raises(LLMError, match="503.*overloaded.*3 attempts"):
        client.encode(["a"])
    assert len(server.requests) == 3


def test_a_400_fails_at_once_with_the_url_status_and_message(server, client, sleeps):
    server.play(server.fail(400, "input is too long"))
    with pytest.raises(LLMError) as error:
        client.encode(["a"])
    assert server.url in str(error.value)
    assert "400" in str(error.value) and "input is too long" in str(error.value)
    assert len(server.requests) == 1 and sleeps == []


def test_a_vector_of_the_wrong_size_is_an_error(server, client):
    server.play(server.ok(dims=8))
    with pytest.raises(LLMError, match="8-dimensional.*expected 4"):
        client.encode(["a"])


def test_dims_are_learned_from_the_first_response(server, sleeps):
    client = OpenAIHTTPEmbedder(server.url, "m", sleep=sleeps.append)
    server.play(server.ok(dims=6), server.ok(dims=5))
    assert client.encode(["a"]).shape == (1, 6)
    assert client.dims == 6
    with pytest.raises(LLMError, match="5-dimensional.*expected 6"):
        client.encode(["b"])


def test_a_timeout_is_retried(server, sleeps):
    client = OpenAIHTTPEmbedder(server.url, "m", dims=4, timeout_s=0.2, sleep=sleeps.append)
    server.play(server.stall(1.0), server.ok())
    assert client.encode(["a"]).shape == (1, 4)
    assert sleeps == [0.5]


def test_an_unreachable_server_raises_llm_error_after_retries(server, sleeps):
    url = server.url
    server.shutdown()
    server.server_close()
    client = OpenAIHTTPEmbedder(url, "m", dims=4, max_retries=1, sleep=sleeps.append)
    with pytest.raises(LLMError, match="cannot reach"):
        client.encode(["a"])
    assert sleeps == [0.5]


def test_the_api_key_is_sent_as_a_bearer_token(server, sleeps):
    client = OpenAIHTTPEmbedder(server.url, "m", dims=4, api_key="sk-test", sleep=sleeps.append)
    server.play(server.ok())
    client.encode(["a"])
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


def test_query_prefix_is_prepended_for_queries_only(server, sleeps):
    client = OpenAIHTTPEmbedder(server.url, "m", dims=4, query_prefix="query: ", sleep=sleeps.append)
    server.play(server.ok(), server.ok())
    client.encode(["q"], purpose="query")
    client.encode(["d"], purpose="document")
    assert [r["body"]["input"] for r in server.requests] == [["query: q"], ["d"]]


def test_empty_input_sends_nothing(server, client):
    assert client.encode([]).shape == (0, 4)
    assert server.requests == []


def test_http_embedder_is_an_embedder(client):
    assert isinstance(client, Embedder)


def test_errors_never_show_the_key_or_url_credentials(server, sleeps):
    url = server.url.replace("http://", "http://ana:pw-secret@")
    client = OpenAIHTTPEmbedder(url, "m", dims=4, api_key="sk-test", sleep=sleeps.append)
    server.play(server.fail(400, "bad input"))
    with pytest.raises(LLMError) as error:
        client.encode(["a"])
    assert "sk-test" not in str(error.value) and "pw-secret" not in str(error.value)
    assert server.url.removesuffix("/v1").removeprefix("http://") in str(error.value)


def test_a_url_that_is_not_http_fails_at_once(sleeps):
    client = OpenAIHTTPEmbedder("ftp://127.0.0.1/v1", "m", dims=4, sleep=sleeps.append)
    with pytest.raises(LLMError, match="http:// or https://"):
        client.encode(["a"])
    assert sleeps == []


def test_one_connection_pool_serves_every_request(server, client):
    server.play(server.ok(), server.ok())
    client.encode(["a"])
    pool = client._poster._client
    client.encode(["b"])
    assert pool is not None and client._poster._client is pool
    client.close()
    assert client._poster._client is None
