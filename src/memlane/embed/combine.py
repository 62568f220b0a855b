"""Concurrent single calls combined into batches: under load a server encodes many questions at
once, and one model call on four of them costs about 40% less CPU than four calls on one. A call
that finds no batch running runs one itself, taking every call waiting at that moment; calls that
arrive meanwhile wait for the next batch. Alone, a call runs at once, with no added wait."""

from __future__ import annotations

import threading
from typing import Callable, Generic, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Slot(Generic[Item, Result]):
    __slots__ = ("item", "result", "error", "done")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.done = False


class Combiner(Generic[Item, Result]):
    """`call(item)` returns `run([item, ...])[i]` for its item, with concurrent calls sharing one
    `run` of at most `max_batch` items. One `run` at a time; an error in it is raised in every
    call of that batch."""

    def __init__(self, run: Callable[[list[Item]], Sequence[Result]], max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._waiting: list[_Slot[Item, Result]] = []
        self._running = False
        self._changed = threading.Condition()

    def call(self, item: Item) -> Result:
        slot: _Slot[Item, Result] = _Slot(item)
        with self._changed:
            self._waiting.append(slot)
        while True:
            with self._changed:
                while self._running and not slot.done:
                    self._changed.wait()
                if slot.done:
                    return self._outcome(slot)
                # Oldest first: with more than a batch waiting, this call may run others' batch
                # first and its own on the next turn.
                self._running = True
                batch, self._waiting = self._waiting[:self._max_batch], self._waiting[self._max_batch:]
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Slot[Item, Result]]) -> None:
        try:
            results = self._run([s.item for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} items gave {len(results)} results")
            for s, result in zip(batch, results):
                s.result = result
        except BaseException as exc:  # every caller of the batch sees it, not only the one that ran it
            for s in batch:
                s.error = exc
        finally:
            with self._changed:
                for s in batch:
                    s.done = True
                self._running = False
                self._changed.notify_all()

    @staticmethod
    def _outcome(slot: _Slot[Item, Result]) -> Result:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]
