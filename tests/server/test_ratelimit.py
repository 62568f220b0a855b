"""Per-key rate limits: a token bucket per key; past it, 429 with Retry-After."""

from __future__ import annotations

import pytest
from _server_support import bearer, tampered

from memlane.errors import InputError, RateLimitError
from memlane.server.ratelimit import Rate, RateLimiter


@pytest.mark.parametrize("text, rate", [("50/s", Rate(50, 1.0)), ("600/min", Rate(600, 60.0)),
                                        ("10000/h", Rate(10_000, 3600.0)), (" 5 / sec ", Rate(5, 1.0))])
def test_rates_parse_and_print_back(text, rate):
    assert Rate.parse(text) == rate
    assert Rate.parse(str(rate)) == rate


@pytest.mark.parametrize("text", ["", "50", "50/", "/s", "0/s", "-1/s", "1.5/s", "50/day", "2000000/s", 50, None])
def test_bad_rates_are_refused_with_examples(text):
    with pytest.raises(InputError, match="50/s") as bad:
        Rate.parse(text)
    assert bad.value.field == "rate"


def test_a_bucket_allows_a_burst_then_refills_evenly():
    now = [100.0]
    limiter = RateLimiter(clock=lambda: now[0])
    rate = Rate(2, 1.0)
    limiter.check("k", rate)
    limiter.check("k", rate)
    with pytest.raises(RateLimitError) as limited:
        limiter.check("k", rate)
    assert limited.value.retry_after == pytest.approx(0.5)
    limiter.check("other", rate)  # each key has its own bucket
    now[0] += 0.5
    limiter.check("k", rate)
    with pytest.raises(RateLimitError):
        limiter.check("k", rate)
    now[0] += 60
    for _ in range(2):
        limiter.check("k", rate)  # a long pause refills the bucket, but only up to the burst
    with pytest.raises(RateLimitError):
        limiter.check("k", rate)


def test_no_rate_means_no_limit():
    limiter = RateLimiter()
    for _ in range(1000):
        limiter.check("k", None)


def test_past_its_rate_a_key_gets_429_with_retry_after(client, ring, keys):
    _, token = ring.create("tenant", users=["ana"], rate="3/min")
    answers = [client.get("/v1/memories", headers=bearer(token)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["error"]["type"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 20
    assert client.get("/v1/memories", headers=bearer(keys.ana)).status_code == 200  # other keys are not slowed


def test_a_refused_key_does_not_use_up_anyones_rate(client, ring):
    _, token = ring.create("tenant", users=["ana"], rate="1/min")
    for _ in range(5):
        assert client.get("/v1/memories", headers=bearer(tampered(token))).status_code == 401
    assert client.get("/v1/memories", headers=bearer(token)).status_code == 200
