"""Long operations a server runs for an admin: fine-tuning the embedder, reindexing, importing.

A job runs in the background, one at a time, on one worker thread, while the server keeps
answering: each job opens its own connections to the store, and the old index answers searches
until a new one is swapped in. A job's record (state, stage, progress with the time left, the
tail of its log, its result) is a service record in the store, so every server process on the
store lists the same jobs and a restarted server still has them.

    queued -> running -> succeeded | refused (the fine-tuning gate said no) | failed | cancelled

Every job here changes the store, and only one such job runs per store: it holds the store's job
lock (a service record created atomically), and a second one is refused (`JobConflict`, 409)
until the first ends. A job whose server died (a crash, a kill) is marked failed by the next
server that starts on the store (`JobManager.recover`), its scratch files removed and its lock
released.

A model change (a fine-tuned checkpoint that passed its gate, or a reindex with another model)
swaps the store's index and the server's `Memory` in one step: `LiveMemory` holds calls for the
moment of the swap, so no search or write meets a new index with the old model.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from memlane.errors import ConfigError, InputError, MemlaneError, NotFoundError, StoreError
from memlane.store import open_store, require
from memlane.store.sql import utc_now as _now

if TYPE_CHECKING:
    from memlane.config import MemoryConfig
    from memlane.memory import Memory
    from memlane.store import Store

KINDS = ("fine_tune", "reindex", "import")
STATES = ("queued", "running", "succeeded", "refused", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "refused", "failed", "cancelled"})
JOB = "job"  # service record kinds: one record per job, the lock, and cancel requests
LOCK = "job_lock"
LOCK_ID = "mutating"
CANCEL = "job_cancel"
LOG_LINES = 50
KEEP_FINISHED = 200  # finished jobs kept in the store; older ones are pruned
BEAT_SECONDS = 1.0  # how often a running job's record is written (and cancel requests read)
HEARTBEAT_SECONDS = 10.0  # the longest a live job's record goes without being written
STALE_SECONDS = 120.0  # a job of another host whose record is older than this is taken for dead

_BOOT = uuid.uuid4().hex  # this process; a pid alone may come back after a restart (PID 1 in a container)
_HOST = socket.gethostname()


class JobConflict(MemlaneError):
    """Another job that changes the store is running, or the job has already finished (409)."""

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.fix = fix
        super().__init__(f"{message}. Fix: {fix}" if fix else message)


class Cancelled(BaseException):
    """Raised at a job's next safe point once it is cancelled. A BaseException, so that no
    `except Exception` on the way swallows it; transactions roll back, scratch files go."""


@dataclass
class Outcome:
    """What a job's run function returns: its result, and whether the gate refused its model."""

    result: dict[str, Any]
    gate: dict[str, Any] | None = None
    refused: bool = False


@dataclass
class Job:
    id: str
    kind: str
    state: str
    params: dict[str, Any]
    created_at: str
    owner: dict[str, Any]
    scratch: str
    stage: str | None = None
    progress: dict[str, Any] | None = None  # {"done", "total", "eta_seconds"}
    log: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None  # a fine-tuning job's verdict: before, after, deltas with CIs
    error: str | None = None
    cancel_requested: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    heartbeat_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def _age_seconds(stamp: str | None) -> float:
    """Seconds since a time `_now` wrote (infinite for none)."""
    if not stamp:
        return float("inf")
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return time.time() - then.timestamp()


def _owner() -> dict[str, Any]:
    return {"host": _HOST, "pid": os.getpid(), "boot": _BOOT}


def owner_alive(owner: dict[str, Any], heartbeat_at: str | None) -> bool:
    """Whether the process that owns a job may still be running it: this process; a live pid on
    this host (other than ours: our pid with another boot id is a previous run of this server);
    on another host, a record written within `STALE_SECONDS`."""
    if owner.get("boot") == _BOOT:
        return True
    if owner.get("host") != _HOST:
        return _age_seconds(heartbeat_at) < STALE_SECONDS
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class LiveMemory:
    """The `Memory` a server answers with, replaceable in one step. Every call runs on the
    current Memory under a shared hold; `exclusive()` waits for the calls in flight and holds new
    ones until it ends, which is when a job swaps the store's index and the Memory searching it.
    Attributes that are not methods (config, path) are read from the current Memory directly."""

    def __init__(self, memory: "Memory") -> None:
        self._memory = memory
        self._cond = threading.Condition()
        self._calls = 0
        self._held = False

    @property
    def current(self) -> "Memory":
        return self._memory

    def __getattr__(self, name: str) -> Any:
        if name == "_memory":  # not set yet (a copy being made)
            raise AttributeError(name)
        value = getattr(self._memory, name)
        if not callable(value) or name.startswith("__"):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._shared():
                return getattr(self._memory, name)(*args, **kwargs)

        return call

    @contextmanager
    def _shared(self) -> Iterator[None]:
        with self._cond:
            while self._held:
                self._cond.wait()
            self._calls += 1
        try:
            yield
        finally:
            with self._cond:
                self._calls -= 1
                if not self._calls:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No call runs inside this block: it waits for the calls in flight, and new ones wait for it."""
        with self._cond:
            while self._held:
                self._cond.wait()
            self._held = True
            while self._calls:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()

    def replace(self, memory: "Memory") -> None:
        """Answer with `memory` from now on (call inside `exclusive`). The old Memory is left open:
        code that kept a reference to it may still read service records through it."""
        self._memory = memory


class JobContext:
    """What a job's run function reports through: its stage, progress, log lines, and where it
    may be cancelled (`check`, also called by `stage` and `progress`)."""

    def __init__(self, manager: "JobManager", entry: "_Entry") -> None:
        self._manager = manager
        self._entry = entry
        self._job = entry.job
        self.scratch = Path(entry.job.scratch)
        self._series: tuple[float, int, int] | None = None  # (started, first done, last done) in this stage

    def check(self) -> None:
        if self._entry.cancel.is_set():
            raise Cancelled()

    def stage(self, name: str) -> None:
        self.check()
        with self._manager._lock:
            self._job.stage = name
            self._job.progress = None
            self._series = None
            self._entry.version += 1
        self.log(f"stage: {name}")

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._series is None or done < self._series[2]:  # a new series (the gate scores two models)
            self._series = (now, done, done)
        started, first, _ = self._series
        self._series = (started, first, done)
        eta = None
        if done > first and total >= done:  # the pace since the series began, applied to what is left
            eta = round((now - started) / (done - first) * (total - done), 1)
        with self._manager._lock:
            self._job.progress = {"done": int(done), "total": int(total), "eta_seconds": eta}
            self._entry.version += 1
        self.check()

    def log(self, line: str) -> None:
        with self._manager._lock:
            self._job.log = [*self._job.log, str(line)[:500]][-LOG_LINES:]
            self._entry.version += 1


@dataclass
class _Entry:
    job: Job
    run: Callable[[JobContext], Outcome]
    cancel: threading.Event = field(default_factory=threading.Event)
    version: int = 0


class JobManager:
    """Runs and records the jobs of one store; see the module docstring.

    `work_dir` holds each running job's scratch folder (work_dir/scratch/ID, removed when the
    job ends) and the fine-tuned checkpoints that were deployed (work_dir/models/ID). With
    `config_path`, a deployed checkpoint is also recorded in that TOML file, so that a restarted
    server embeds with it."""

    def __init__(self, memory: "Memory | LiveMemory", work_dir: str | Path, *,
                 config_path: str | Path | None = None, workers: int = 1) -> None:
        self.workers = workers  # server processes over the store: a model swap reaches only this one
        self.live = memory if isinstance(memory, LiveMemory) else LiveMemory(memory)
        self.work_dir = Path(work_dir).expanduser()
        self.config_path = Path(config_path) if config_path is not None else None
        path = self.live.current.path
        self._shared_store = path == ":memory:"  # another connection would see another database
        own = self.live.current._store
        self._reader: "Store" = own if self._shared_store else open_store(path, create=False)
        self._writer: "Store" = own if self._shared_store else open_store(path, create=False)
        require(self._reader, "service")
        self._lock = threading.Lock()  # the live jobs' in-memory state
        self._save_lock = threading.Lock()  # one write of a job record at a time, in version order
        self._saved: dict[str, int] = {}
        self._live: dict[str, _Entry] = {}
        self._queue: deque[str] = deque()
        self._wake = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._closing = False

    # -- submitting -------------------------------------------------------------------------------

    def fine_tune(self, *, eval_queries: str, labels: str | None = None, synthetic: bool = False,
                  users: list[str] | None = None, min_gain: float | None = None, epochs: int | None = None,
                  batch_size: int | None = None, learning_rate: float | None = None) -> Job:
        """Fine-tune the embedder on this store (`memlane retrain`); deploy the checkpoint only if
        the gate accepts it on the held-out `eval_queries` (server-side JSONL files)."""
        self._require_one_worker("a fine-tune")
        if (labels is None) == (not synthetic):
            raise InputError("give exactly one source of training queries", field="labels",
                             fix="pass labels (a JSONL file of question -> memory pairs) or synthetic: true")
        _require_file(eval_queries, "eval_queries")
        if labels is not None:
            _require_file(labels, "labels")
        if synthetic is False and users:
            raise InputError("users picks whose memories synthetic queries are written for", field="users",
                             fix="leave users out, or pass synthetic: true")
        params = {"eval_queries": eval_queries, "labels": labels, "synthetic": synthetic, "users": users,
                  "min_gain": min_gain, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
        return self.submit("fine_tune", params, functools.partial(_run_fine_tune, self, params))

    def reindex(self, *, model: str | None = None) -> Job:
        """Re-embed every memory with `model` (default: the configured one) and swap it in."""
        self._require_one_worker("a reindex")
        return self.submit("reindex", {"model": model}, functools.partial(_run_reindex, self, model))

    def _require_one_worker(self, what: str) -> None:
        """A job that changes the embedding model swaps it in this process only: other worker
        processes would go on embedding questions with the old model, against the new vectors."""
        if self.workers > 1:
            raise JobConflict(f"{what} changes the embedding model, and this server runs {self.workers} worker "
                              "processes that cannot all switch at once",
                              fix="run it on a server started with --workers 1 (or with memlane retrain / "
                                  "memlane reindex while the server is stopped)")

    def import_file(self, path: str) -> Job:
        """Add the memories of an export file (a server-side path), all or nothing."""
        _require_file(path, "path")
        return self.submit("import", {"path": path}, functools.partial(_run_import, self, path))

    def submit(self, kind: str, params: dict[str, Any], run: Callable[[JobContext], Outcome]) -> Job:
        """Queue a job that changes the store; JobConflict while another one holds the store."""
        if self._shared_store:
            raise ConfigError("jobs need a store that a second connection can open (a file or a database), "
                              "not ':memory:'")
        job_id = uuid.uuid4().hex[:16]
        job = Job(id=job_id, kind=kind, state="queued", params=params, created_at=_now(), owner=_owner(),
                  scratch=str(self.work_dir / "scratch" / job_id))
        self._take_lock(job)
        entry = _Entry(job, run)
        try:
            with self._lock:
                self._live[job_id] = entry
            self._save(entry)
        except BaseException:
            with self._lock:
                self._live.pop(job_id, None)
            self._release_lock(job_id)
            raise
        self._prune()
        with self._wake:
            self._queue.append(job_id)
            self._start_threads()
            self._wake.notify_all()
        return self._copy(job)

    # -- reading and cancelling -------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self._lock:
            entry = self._live.get(job_id)
            if entry is not None:
                return self._copy(entry.job)
        body = self._reader.service_record(JOB, job_id)
        if body is None:
            raise NotFoundError(f"no job with id {job_id}")
        return Job.from_dict(body)

    def list(self, *, state: str | None = None, limit: int = 100) -> list[Job]:
        """The store's jobs, newest first."""
        jobs = {b["id"]: Job.from_dict(b) for b in self._reader.service_records(JOB)}
        with self._lock:
            jobs.update({job_id: self._copy(e.job) for job_id, e in self._live.items()})
        found = sorted(jobs.values(), key=lambda j: (j.created_at, j.id), reverse=True)
        return [j for j in found if state is None or j.state == state][:limit]

    def cancel(self, job_id: str) -> Job:
        """Stop a job: a queued one at once, a running one at its next safe point (a job past
        the point of no return, such as a model swap in progress, finishes). JobConflict when it
        has already ended."""
        with self._lock:
            entry = self._live.get(job_id)
            ended = entry is not None and entry.job.finished
            never_started = False
            if entry is not None and not ended:
                # Never started and not yet cancelled: this call ends it; the worker skips it.
                never_started = entry.job.state == "queued" and not entry.cancel.is_set()
                entry.cancel.set()
                entry.job.cancel_requested = True
                entry.version += 1
        if entry is not None and not ended:
            if never_started:
                self._end(entry, "cancelled")
            # else: the job's next record (a beat, or its end) carries the request; no write here,
            # which could wait on the job's own transaction (an import)
            return self.get(job_id)
        job = self._copy(entry.job) if entry is not None else self.get(job_id)
        if job.finished:
            raise JobConflict(f"job {job_id} has already ended ({job.state})",
                              fix="nothing to cancel; GET /admin/jobs/{id} shows how it ended")
        if not owner_alive(job.owner, job.heartbeat_at):
            return self._fail_orphan(job)
        # Another server process runs it: it reads cancel requests at every beat.
        self._writer.put_service_record(CANCEL, job_id, {"id": job_id, "at": _now()})
        job.cancel_requested = True
        return job

    # -- recovery ---------------------------------------------------------------------------------

    def recover(self) -> list[Job]:
        """Mark failed the jobs whose server stopped while they were queued or running, remove
        their scratch folders, and release a lock no live job holds. Run when a server starts."""
        recovered = []
        for body in self._reader.service_records(JOB):
            job = Job.from_dict(body)
            if job.finished or owner_alive(job.owner, job.heartbeat_at):
                continue
            recovered.append(self._fail_orphan(job))
        lock = self._reader.service_record(LOCK, LOCK_ID)
        if lock is not None and self._lock_is_stale(lock):
            self._writer.delete_service_record(LOCK, LOCK_ID)
        scratch = self.work_dir / "scratch"
        if scratch.is_dir():  # folders of jobs that never got a record, or whose record is gone
            running = {j.id for j in self.list(limit=KEEP_FINISHED * 10) if not j.finished}
            for folder in scratch.iterdir():
                if folder.name not in running:
                    shutil.rmtree(folder, ignore_errors=True)
        return recovered

    def _fail_orphan(self, job: Job) -> Job:
        job.state = "failed"
        job.error = (f"the server stopped while the job ran (process {job.owner.get('pid')} on "
                     f"{job.owner.get('host')}); submit it again")
        job.finished_at = _now()
        job.log = [*job.log, job.error][-LOG_LINES:]
        if job.owner.get("host") == _HOST:
            shutil.rmtree(job.scratch, ignore_errors=True)
        self._writer.put_service_record(JOB, job.id, job.to_dict())
        self._writer.delete_service_record(CANCEL, job.id)
        lock = self._reader.service_record(LOCK, LOCK_ID)
        if lock is not None and lock.get("job") == job.id:
            self._writer.delete_service_record(LOCK, LOCK_ID)
        return job

    # -- the store's job lock ----------------------------------------------------------------------

    def _take_lock(self, job: Job) -> None:
        body = {"job": job.id, "kind": job.kind, "owner": job.owner, "at": job.created_at}
        for _ in range(2):
            held = self._reader.service_record(LOCK, LOCK_ID)  # a read first: never waits on a writer
            if held is not None and not self._lock_is_stale(held):
                break
            if held is not None:  # its job ended without releasing it (its server died)
                # Two servers taking over the same dead lock at once could, in a narrow window,
                # both succeed; `recover` at start-up releases dead locks, which makes that rare.
                self._writer.delete_service_record(LOCK, LOCK_ID)
            if self._writer.put_service_record(LOCK, LOCK_ID, body, create_only=True):
                return
        held = self._reader.service_record(LOCK, LOCK_ID) or {}
        raise JobConflict(f"job {held.get('job')} ({held.get('kind')}) is changing this store; one such job "
                          "runs at a time", fix=f"wait for it to end (GET /admin/jobs/{held.get('job')}), or "
                                                f"cancel it (DELETE /admin/jobs/{held.get('job')})")

    def _lock_is_stale(self, lock: dict[str, Any]) -> bool:
        job_id = lock.get("job")
        with self._lock:
            if job_id in self._live:
                return False
        body = self._reader.service_record(JOB, str(job_id))
        if body is None:
            return not owner_alive(lock.get("owner") or {}, lock.get("at"))
        job = Job.from_dict(body)
        return job.finished or not owner_alive(job.owner, job.heartbeat_at)

    def _release_lock(self, job_id: str) -> None:
        lock = self._reader.service_record(LOCK, LOCK_ID)
        if lock is not None and lock.get("job") == job_id:
            self._writer.delete_service_record(LOCK, LOCK_ID)

    # -- running ----------------------------------------------------------------------------------

    def _start_threads(self) -> None:
        if self._threads:
            return
        for target, name in ((self._work, "memlane-jobs"), (self._beat, "memlane-jobs-beat")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                entry = self._live.get(self._queue.popleft())
            if entry is not None and not entry.job.finished:
                self._run(entry)

    def _run(self, entry: _Entry) -> None:
        job = entry.job
        with self._lock:
            if entry.cancel.is_set():  # cancelled while queued: `cancel` ends it
                return
            job.state, job.started_at = "running", _now()
            entry.version += 1
        self._save(entry)
        ctx = JobContext(self, entry)
        outcome: Outcome | None = None
        error = None
        state = "failed"
        try:
            Path(job.scratch).mkdir(parents=True, exist_ok=True)
            ctx.check()
            outcome = entry.run(ctx)
            state = "refused" if outcome.refused else "succeeded"
        except Cancelled:
            state = "cancelled"
            ctx.log("cancelled")
        except MemlaneError as exc:
            error = str(exc)
        except Exception as exc:  # a bug or an unexpected library error: recorded, the server goes on
            error = f"{type(exc).__name__}: {exc}"
            for line in traceback.format_exc().splitlines()[-12:]:
                ctx.log(line)
        finally:
            if error:
                ctx.log(f"failed: {error}")
            self._end(entry, state, outcome, error)

    def _end(self, entry: _Entry, state: str, outcome: Outcome | None = None, error: str | None = None) -> None:
        """End a job: its scratch folder and the store's lock go first, then its last state is
        published and written, so a client that sees the job ended finds the store free."""
        shutil.rmtree(entry.job.scratch, ignore_errors=True)
        try:
            self._release_lock(entry.job.id)
        finally:
            with self._lock:
                if outcome is not None:
                    entry.job.result, entry.job.gate = outcome.result, outcome.gate
                entry.job.error = error
                entry.job.state = state
                entry.job.finished_at = _now()
                entry.version += 1
            self._save(entry)
            with self._lock:
                self._live.pop(entry.job.id, None)
            try:
                self._writer.delete_service_record(CANCEL, entry.job.id)
            except StoreError:
                pass

    def _beat(self) -> None:
        """Write the running jobs' records as they change (at least every HEARTBEAT_SECONDS), and
        pick up cancel requests made through another server process."""
        while not self._closing:
            time.sleep(BEAT_SECONDS)
            with self._lock:
                entries = list(self._live.values())
            for entry in entries:
                try:
                    if not entry.cancel.is_set() and self._reader.service_record(CANCEL, entry.job.id):
                        self.cancel(entry.job.id)
                    self._save(entry, heartbeat=True)
                except (StoreError, NotFoundError, JobConflict):
                    pass  # a writer holds the store (an import): the next beat tries again

    def _save(self, entry: _Entry, *, heartbeat: bool = False) -> None:
        with self._save_lock:
            with self._lock:
                saved = self._saved.get(entry.job.id, -1)
                stale = _age_seconds(entry.job.heartbeat_at) >= HEARTBEAT_SECONDS
                if entry.version <= saved and not (heartbeat and stale):
                    return
                if heartbeat and entry.job.finished:
                    return  # the worker writes the final state itself
                entry.job.heartbeat_at = _now()
                version, body = entry.version, entry.job.to_dict()
            self._writer.put_service_record(JOB, entry.job.id, body)
            self._saved[entry.job.id] = version
            if entry.job.finished:
                self._saved.pop(entry.job.id, None)

    def _copy(self, job: Job) -> Job:
        return Job.from_dict(job.to_dict())

    def _prune(self) -> None:
        finished = [b for b in self._reader.service_records(JOB) if b.get("state") in FINISHED]
        finished.sort(key=lambda b: b.get("created_at", ""))
        for body in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            self._writer.delete_service_record(JOB, body["id"])

    def close(self, timeout: float = 10.0) -> None:
        """Stop: cancel the running job and wait up to `timeout` seconds for it to end."""
        with self._wake:
            self._closing = True
            entries = list(self._live.values())
            self._wake.notify_all()
        for entry in entries:
            entry.cancel.set()
        for thread in self._threads:
            thread.join(timeout)
        if not self._shared_store:
            self._reader.close()
            self._writer.close()


def default_work_dir(store: str) -> Path:
    """Where a server keeps its jobs' files unless told: beside a SQLite file (memlane.db.jobs),
    else in the cache folder ($MEMLANE_CACHE_DIR or ~/.cache/memlane)/jobs."""
    from memlane.store import backend_name

    if backend_name(store) == "sqlite" and store != ":memory:":
        file = Path(store.removeprefix("sqlite://")).expanduser()
        return file.with_name(file.name + ".jobs")
    base = os.environ.get("MEMLANE_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "memlane") / "jobs"


def _require_file(path: Any, field_name: str) -> None:
    if not isinstance(path, str) or not Path(path).expanduser().is_file():
        raise InputError("no such file on the server", file=str(path), field=field_name,
                         fix="pass the path of a file the server can read")


# -- the jobs ---------------------------------------------------------------------------------------


def _run_fine_tune(manager: JobManager, params: dict[str, Any], ctx: JobContext) -> Outcome:
    """`memlane retrain` in the job's scratch folder; a checkpoint the gate accepts is moved to
    work_dir/models/ID, the store reindexed with it and the server switched to it."""
    from memlane.tune.pipeline import record_checkpoint, retrain

    memory = manager.live.current
    config = memory.config.model_copy(deep=True)
    for name in ("epochs", "batch_size", "learning_rate"):
        if params.get(name) is not None:
            setattr(config.fine_tune, name, params[name])

    def status(line: str) -> None:
        ctx.log(line)
        ctx.check()

    result = retrain(
        memory.path, config, ctx.scratch / "run", eval_queries=params["eval_queries"], labels=params["labels"],
        synthetic=params["synthetic"], users=params["users"], min_gain=params["min_gain"],
        status=status, progress=lambda _stage: ctx.progress,
        on_step=lambda step, total, _loss: ctx.progress(step, total), on_stage=ctx.stage,
    )
    report = result.gate
    gate = {k: v for k, v in asdict(report).items() if k != "candidate"}
    out: dict[str, Any] = {"examples": result.examples, "dropped_overlapping": result.dropped_overlapping}
    if result.train is not None:
        out["train"] = {"steps": result.train.steps, "epochs": result.train.epochs, "seconds": result.train.seconds,
                        "first_loss": result.train.first_loss, "last_loss": result.train.last_loss}
    ctx.log(report.reason)
    if not report.passed:
        return Outcome(out, gate=gate, refused=True)

    checkpoint = manager.work_dir / "models" / ctx.scratch.name
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(report.checkpoint), checkpoint)
    gate["checkpoint"] = str(checkpoint.resolve())
    deployed = memory.config.model_copy(deep=True)
    deployed.fine_tune.enabled, deployed.fine_tune.checkpoint_path = True, str(checkpoint.resolve())
    ctx.stage("deploy")
    try:
        out["deployed"] = switch_model(manager.live, deployed, ctx)
    except BaseException:
        shutil.rmtree(checkpoint, ignore_errors=True)  # not swapped in: nothing uses it
        raise
    if manager.config_path is not None:
        record_checkpoint(manager.config_path, str(checkpoint.resolve()))
        ctx.log(f"recorded the checkpoint in {manager.config_path}")
    else:
        ctx.log("the server has no config file: before restarting it, set [fine_tune] enabled = true and "
                f"checkpoint_path = \"{checkpoint.resolve()}\"")
    return Outcome(out, gate=gate)


def _run_reindex(manager: JobManager, model: str | None, ctx: JobContext) -> Outcome:
    from memlane.config import MemoryConfig

    config = manager.live.current.config
    if model is not None:  # serve `model` itself: the embedder section names it, fine-tuning is off
        data = config.model_dump()
        data["embedder"] = {**data["embedder"], "model": model}
        data["fine_tune"] = {**data["fine_tune"], "enabled": False}
        config = MemoryConfig.from_dict(data, source="the reindex job's model")
    ctx.stage("reindex")
    report = switch_model(manager.live, config, ctx)
    if model is not None:
        ctx.log(f"the server now embeds with {model}; set embedder.model to it in the config before restarting")
    return Outcome(report)


def _run_import(manager: JobManager, path: str, ctx: JobContext) -> Outcome:
    from memlane.memory import Memory
    from memlane.transfer import import_memories

    current = manager.live.current
    ctx.stage("import")
    # A connection of its own: the import is one transaction, and searches go on beside it.
    with Memory(current.path, current.config, embedder=current.embedder, create=False) as target:
        report = import_memories(target, path, on_progress=ctx.progress)
    ctx.log(f"imported {report.memories} memories of {report.users} user(s)")
    return Outcome(asdict(report))


class _Built(Exception):
    """The new index holds every memory: the reindex is stopped right before its swap."""


def switch_model(live: LiveMemory, config: "MemoryConfig", ctx: JobContext) -> dict[str, Any]:
    """Re-embed the store with `config`'s active model and make the server search with it.

    First, while the old index answers, `reindex` builds the new one and is stopped once every
    memory has a vector in it (cancellable; an interrupted build is resumed later). Then, with
    every call to the server's Memory held (`LiveMemory.exclusive`), `reindex` runs again: it
    embeds what was added meanwhile, swaps the indexes, and the Memory is replaced by one with
    the new model. No call sees the new index with the old model."""
    from memlane.embed import make_embedders
    from memlane.memory import Memory, reindex

    path = live.current.path
    embedder = make_embedders(config.active_embedder())[0]
    passages = config.ingest.passages
    started = time.perf_counter()
    probe = open_store(path, create=False)
    try:
        require(probe, "reindex")

        def built() -> bool:
            index = probe.building_index(embedder.name, embedder.dims)
            return index is not None and not any(probe.missing_from_index(index, 1, sessions=s) for s in (False, True))

        def on_progress(done: int, total: int) -> None:
            ctx.progress(done, total)
            if built():
                raise _Built()

        if probe.stats().memories and not built():
            try:
                reindex(path, embedder=embedder, on_progress=on_progress, passages=passages)
            except _Built:
                pass
    finally:
        probe.close()
    ctx.stage("swap")
    with live.exclusive():
        report = reindex(path, embedder=embedder, passages=passages)
        live.replace(Memory(path, config))
    ctx.log(f"now searching with {report.model} ({report.dims} dims, {report.memories} memories)")
    return {"model": report.model, "dims": report.dims, "memories": report.memories,
            "seconds": round(time.perf_counter() - started, 2)}
