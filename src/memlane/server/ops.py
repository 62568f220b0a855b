"""Running the server: liveness and readiness probes, Prometheus metrics, and the access log.

- `GET /healthz`: the process answers (no store access, no key).
- `GET /readyz`: the store answers a cheap read (no key); 503 when it does not.
- `GET /metrics` (admin key): requests by route template, method and status; latency by route;
  the store's memories, users and bytes; jobs by state. With several workers, set
  PROMETHEUS_MULTIPROC_DIR (`memlane serve --workers N` does) and every worker reports the sum.
- The access log (logger `memlane.access`): one JSON line per request with the method, the route
  template (never the raw path or query string, which hold user ids), the status, the time and
  the API key's id. Never a token, a header or a body.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import Any, Callable, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from memlane.memory import Memory
from memlane.server.auth import Caller
from memlane.server.schemas import ErrorBody, ErrorResponse, HealthOut

ACCESS_LOG = logging.getLogger("memlane.access")
UNMATCHED = "unmatched"  # the route label of a request no route matched (bounded label values)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
JOB_KIND = "job"
_CONVERTOR = re.compile(r":\w+}")  # /v1/users/{user_id:path}/... is logged as /v1/users/{user_id}/...


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self, memory: Callable[[], Memory], records: Any = None, *, stats_ttl_s: float = 15.0) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("memlane_http_requests", "HTTP requests by route template, method and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("memlane_http_request_duration_seconds", "Time to answer a request, by route.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.store = StoreCollector(memory, records, ttl_s=stats_ttl_s)
        self.registry.register(self.store)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format: this process's, or every worker's under
        PROMETHEUS_MULTIPROC_DIR."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self.store)
        return generate_latest(registry)


class StoreCollector(Collector):
    """Gauges read from the store at scrape time (at most once per `ttl_s`: counting is a scan):
    memories, users and bytes, and jobs by state from the store's "job" service records.
    `memory` gives the app's current Memory (a model swap may replace it)."""

    def __init__(self, memory: Callable[[], Memory], records: Any = None, *, ttl_s: float = 15.0) -> None:
        self._memory = memory
        self._records = records  # a store with the "service" capability, or None
        self._ttl_s = ttl_s
        self._read: tuple[float, list[GaugeMetricFamily]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if self._read is None or time.monotonic() - self._read[0] >= self._ttl_s:
                self._read = (time.monotonic(), self._families())
            yield from self._read[1]

    def _families(self) -> list[GaugeMetricFamily]:
        stats = self._memory().stats()
        families = [GaugeMetricFamily("memlane_store_memories", "Memories in the store.", value=stats.memories),
                    GaugeMetricFamily("memlane_store_users", "Users with memories.", value=stats.users),
                    GaugeMetricFamily("memlane_store_bytes", "Size of the store on disk (0 when unknown).",
                                      value=stats.file_bytes)]
        jobs = GaugeMetricFamily("memlane_jobs", "Jobs by state.", labels=["state"])
        states: dict[str, int] = {}
        if self._records is not None:
            for body in self._records.service_records(JOB_KIND):
                state = str(body.get("state") or body.get("status") or "unknown")
                states[state] = states.get(state, 0) + 1
        for state, count in sorted(states.items()):
            jobs.add_metric([state], count)
        return families + [jobs]


class AccessLog:
    """ASGI middleware: times every HTTP request, counts it in `metrics`, and logs one JSON line."""

    def __init__(self, app: Any, metrics: Metrics, logger: logging.Logger = ACCESS_LOG) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = logger

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500  # what the client gets if the app fails before answering

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - start
            route = _CONVERTOR.sub("}", getattr(scope.get("route"), "path", None) or UNMATCHED)
            self.metrics.observe(scope["method"], route, status, seconds)
            if self.logger.isEnabledFor(logging.INFO):
                self.logger.info(json.dumps({
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "method": scope["method"], "route": route,
                    "status": status, "ms": round(seconds * 1000, 2), "key_id": state.get("key_id"),
                }))


def install(app: FastAPI, records: Any = None) -> Metrics:
    """Add the probes, /metrics and the access log to `app` (whose state holds its `memory`)."""
    metrics = Metrics(lambda: app.state.memory, records)
    app.state.metrics = metrics
    app.add_middleware(AccessLog, metrics=metrics)

    @app.get("/healthz", response_model=HealthOut, operation_id="healthz", tags=["operations"])
    async def healthz() -> HealthOut:
        """The process is alive (no key needed)."""
        return HealthOut(status="ok")

    @app.get("/readyz", response_model=HealthOut, responses={503: {"model": ErrorResponse}}, operation_id="readyz",
             tags=["operations"])
    def readyz(request: Request) -> Any:
        """The store answers a read (no key needed); 503 when it does not."""
        try:
            request.app.state.memory.node_versions()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the type says which
            body = ErrorBody(type="store", message=f"the store does not answer ({type(exc).__name__})",
                             fix="check the store URL and that the database is up")
            return JSONResponse(ErrorResponse(error=body).model_dump(), status_code=503)
        return HealthOut(status="ok")

    @app.get("/metrics", response_class=Response, operation_id="metrics", tags=["operations"],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format."},
                        **{s: {"model": ErrorResponse} for s in (401, 403, 429)}})
    def metrics_route(who: Caller) -> Response:
        """Prometheus metrics (admin key)."""
        who.require_admin()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return metrics


def log_json_lines(level: int = logging.INFO) -> None:
    """Send the access log to stderr as bare JSON lines (what `memlane serve` does); once."""
    if any(getattr(h, "memlane_access", False) for h in ACCESS_LOG.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.memlane_access = True  # type: ignore[attr-defined]
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(level)
    ACCESS_LOG.propagate = False
