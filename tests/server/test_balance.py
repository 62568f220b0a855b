import asyncio
import subprocess
import sys

import pytest

from memlane.errors import ConfigError
from memlane.server import balance
from memlane.server.balance import COOLDOWN_S, MARGIN, LoadBoard, Rebalance


@pytest.fixture
def boards(tmp_path):
    made: list[LoadBoard] = []

    def board(**kwargs) -> LoadBoard:
        made.append(LoadBoard(tmp_path, **kwargs))
        return made[-1]

    yield board
    for b in made:
        b.close()


def test_each_worker_takes_a_slot_of_its_own_and_sees_the_others_load(boards):
    busy, idle = boards(), boards()
    assert (busy.slot, idle.slot) == (0, 1)
    for _ in range(MARGIN + 1):
        busy.enter()
    idle.enter()
    assert busy.least_busy_other() == 1 and idle.least_busy_other() == MARGIN + 1


def test_only_a_worker_carrying_more_than_its_share_sheds_and_not_twice_at_once(boards):
    busy, idle = boards(), boards()
    for _ in range(MARGIN):
        busy.enter()
    assert busy.should_shed(now=100.0)  # MARGIN more than the other
    assert not busy.should_shed(now=100.0 + COOLDOWN_S / 2)  # cooling down
    assert busy.should_shed(now=100.0 + 2 * COOLDOWN_S)
    assert not idle.should_shed(now=100.0)
    busy.leave()  # MARGIN - 1 more: even enough
    assert not busy.should_shed(now=200.0)


def test_a_worker_alone_never_sheds(boards):
    alone = boards()
    for _ in range(50):
        alone.enter()
    assert alone.least_busy_other() is None and not alone.should_shed()


def test_a_dead_workers_slot_is_ignored_and_a_closed_one_is_taken_again(boards, tmp_path):
    dead = LoadBoard(tmp_path)
    dead.close()  # its pid is gone from the board
    survivor = boards(pid_alive=lambda pid: False)  # every other pid reads as dead
    assert survivor.slot == 0  # the freed slot
    other = boards()
    other.enter()
    assert survivor.least_busy_other() is None


def test_a_killed_workers_slot_frees_itself(tmp_path, boards):
    code = ("import os, sys; from memlane.server.balance import LoadBoard; b = LoadBoard(sys.argv[1]); "
            "[b.enter() for _ in range(9)]; print(b.slot, flush=True); os._exit(0)")  # no close: a crash
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == "0", child.stderr
    board = boards()
    assert board.slot == 0  # the lock went with the process
    assert board.least_busy_other() is None


def test_more_workers_than_slots_is_a_config_error(tmp_path, monkeypatch, boards):
    monkeypatch.setattr(balance, "SLOTS", 2)
    boards(), boards()
    with pytest.raises(ConfigError, match="at most 2 workers"):
        LoadBoard(tmp_path)


def test_the_middleware_counts_requests_and_closes_the_connection_of_a_busy_worker(boards):
    busy, idle = boards(), boards()

    async def app(scope, receive, send):
        assert busy.in_flight == MARGIN  # this request counted while it runs
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    for _ in range(MARGIN - 1):
        busy.enter()
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    asyncio.run(Rebalance(app, busy)({"type": "http"}, receive, send))
    assert (b"connection", b"close") in sent[0]["headers"] and busy.in_flight == MARGIN - 1
    sent.clear()
    idle_app_calls = []

    async def quiet(scope, receive, send):
        idle_app_calls.append(1)
        await send({"type": "http.response.start", "status": 200, "headers": []})

    asyncio.run(Rebalance(quiet, idle)({"type": "http"}, receive, send))
    assert idle_app_calls and sent[0]["headers"] == [] and idle.in_flight == 0
