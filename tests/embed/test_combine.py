"""Concurrent single calls share batches, each caller gets its own result, and errors reach every
caller of the failed batch."""

from __future__ import annotations

import threading
import time

import pytest

from memlane.embed.combine import Combiner


def _run_concurrently(count, target):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)


def test_a_lone_call_runs_at_once_as_a_batch_of_one():
    batches = []
    combiner = Combiner(lambda items: batches.append(list(items)) or [x * 2 for x in items])
    assert combiner.call(21) == 42
    assert batches == [[21]]


def test_concurrent_calls_are_combined_and_each_gets_its_own_result():
    batches = []

    def slow_double(items):
        batches.append(list(items))
        time.sleep(0.02)  # long enough for the other callers to queue behind the first batch
        return [x * 2 for x in items]

    combiner = Combiner(slow_double, max_batch=5)
    results = {}
    _run_concurrently(24, lambda i: results.__setitem__(i, combiner.call(i)))
    assert results == {i: i * 2 for i in range(24)}
    assert sorted(x for batch in batches for x in batch) == list(range(24))  # each item run once
    assert max(len(b) for b in batches) <= 5 and len(batches) < 24  # batches formed, none too large


def test_an_error_in_a_batch_is_raised_in_every_call_of_it_and_the_next_batch_runs():
    gate = threading.Event()
    calls = []

    def run(items):
        calls.append(list(items))
        if len(calls) == 1:
            gate.wait(5)
            return [x for x in items]
        if "bad" in items:
            raise ValueError("no vector for 'bad'")
        return [x.upper() for x in items]

    combiner = Combiner(run)
    outcomes = {}

    def call(item):
        try:
            outcomes[item] = combiner.call(item)
        except ValueError as exc:
            outcomes[item] = exc

    first = threading.Thread(target=call, args=("first",))
    first.start()
    while not calls:
        time.sleep(0.001)
    waiting = [threading.Thread(target=call, args=(x,)) for x in ("bad", "good")]
    for t in waiting:
        t.start()
    time.sleep(0.05)  # both queued behind the first batch, so they share the next one
    gate.set()
    for t in [first, *waiting]:
        t.join(timeout=10)
    assert outcomes["first"] == "first"
    assert isinstance(outcomes["bad"], ValueError) and isinstance(outcomes["good"], ValueError)
    assert combiner.call("later") == "LATER"  # a failed batch leaves the combiner usable


def test_a_wrong_number_of_results_is_an_error_not_a_mix_up():
    combiner = Combiner(lambda items: [])
    with pytest.raises(RuntimeError, match="1 items gave 0 results"):
        combiner.call("x")
