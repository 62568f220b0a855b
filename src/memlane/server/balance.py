"""Spreading keep-alive connections evenly over a server's worker processes.

Uvicorn's workers share one listening socket, and the worker that wakes first accepts every
connection waiting. A burst of new clients therefore lands mostly on one worker (measured here:
22 of 32 on one worker, 10 on the other), and with keep-alive each client stays where it landed:
half the clients wait twice as long as the rest while the other worker has time to spare.

Each worker publishes how many requests it has in flight on a shared board (a small file that
every worker maps into memory). A worker with at least `MARGIN` more in flight than the least busy
live worker asks the client of the response it is sending to reconnect (`Connection: close`), at
most once every `COOLDOWN_S`. The client's next connection goes to whichever worker accepts it
first; since only busy workers shed, connections drift to the idle ones until the load is even.
HTTP/1.1 clients reconnect on their own (httpx, requests and http.client all do)."""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Any, Callable

from memlane.errors import ConfigError

SLOTS = 64  # worker processes one board holds
MARGIN = 3  # requests in flight above the least busy worker before a connection is shed
COOLDOWN_S = 0.05  # at most one shed connection per worker in this time
_SLOT = struct.Struct("<qq")  # (pid, requests in flight); pid 0: a free slot
_BOARD = "board"


class LoadBoard:
    """This worker's slot on the board in `folder`, and what the other live workers carry.
    Used from one thread (the worker's event loop), so the counter needs no lock."""

    def __init__(self, folder: str | Path, *, pid_alive: Callable[[int], bool] | None = None) -> None:
        folder = Path(folder)
        self._pid = os.getpid()
        self._alive = pid_alive or _pid_alive
        self._lock_fd, self.slot = _claim(folder)
        board = folder / _BOARD
        fd = os.open(board, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < SLOTS * _SLOT.size:
                os.ftruncate(fd, SLOTS * _SLOT.size)  # zero-filled: every slot free
            self._map = mmap.mmap(fd, SLOTS * _SLOT.size)
        finally:
            os.close(fd)
        self.in_flight = 0
        self._publish()
        self._live: list[int] = []
        self._live_checked = float("-inf")
        self._last_shed = float("-inf")

    def enter(self) -> None:
        self.in_flight += 1
        self._publish()

    def leave(self) -> None:
        self.in_flight -= 1
        self._publish()

    def least_busy_other(self) -> int | None:
        """The fewest requests in flight on another live worker (None when this one is alone)."""
        counts = [_SLOT.unpack_from(self._map, slot * _SLOT.size)[1] for slot in self._live_slots()]
        return min(counts) if counts else None

    def should_shed(self, now: float | None = None) -> bool:
        """Whether the response being sent should close its connection: this worker carries
        `MARGIN` more requests than the least busy one, and has not shed one in `COOLDOWN_S`."""
        now = time.monotonic() if now is None else now
        if now - self._last_shed < COOLDOWN_S:
            return False
        least = self.least_busy_other()
        if least is None or self.in_flight - least < MARGIN:
            return False
        self._last_shed = now
        return True

    def close(self) -> None:
        """Free the slot (the lock goes with the process anyway, if it dies first)."""
        if self._map.closed:
            return
        _SLOT.pack_into(self._map, self.slot * _SLOT.size, 0, 0)
        self._map.close()
        os.close(self._lock_fd)

    def _publish(self) -> None:
        _SLOT.pack_into(self._map, self.slot * _SLOT.size, self._pid, self.in_flight)

    def _live_slots(self) -> list[int]:
        """The other workers' slots whose process is alive (checked once a second: a worker that
        died without freeing its slot is skipped until a new worker takes the slot over)."""
        now = time.monotonic()
        if now - self._live_checked >= 1.0:
            live = []
            for slot in range(SLOTS):
                pid = _SLOT.unpack_from(self._map, slot * _SLOT.size)[0]
                if slot != self.slot and pid > 0 and self._alive(pid):
                    live.append(slot)
            self._live, self._live_checked = live, now
        return self._live


class Rebalance:
    """ASGI middleware: counts this worker's requests in flight on its `LoadBoard`, and marks a
    response `Connection: close` when the board says this worker should shed a connection."""

    def __init__(self, app: Any, board: LoadBoard) -> None:
        self.app = app
        self.board = board

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start" and self.board.should_shed():
                message = {**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]}
            await send(message)

        self.board.enter()
        try:
            await self.app(scope, receive, sending)
        finally:
            self.board.leave()


def _claim(folder: Path) -> tuple[int, int]:
    """(the open lock file, the slot): the first slot whose lock no live process holds. The
    lock is held for the life of the process, so a crashed worker's slot is free again at once."""
    folder.mkdir(parents=True, exist_ok=True)
    for slot in range(SLOTS):
        fd = os.open(folder / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd, slot
    raise ConfigError(f"the load board in {folder} has no free slot: more than {SLOTS} worker processes. "
                      f"Fix: run at most {SLOTS} workers per server (--workers)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True
