"""Schemathesis over the OpenAPI document, against the ASGI app with an admin key: no request,
valid or not, makes the server fail (5xx), and every answer is one the document describes (its
status, content type, headers and body schema). Inputs the schema forbids must be refused."""

from __future__ import annotations

import itertools
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memlane import Memory, MemoryConfig
from memlane.embed import HashEmbedder
from memlane.server.app import create_app
from memlane.server.keys import KeyRing
from memlane.store import open_store

EXAMPLES = int(os.environ.get("MEMLANE_FUZZ_EXAMPLES", "25"))  # per operation, for each of the positive and negative phases
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    config = MemoryConfig()
    config.embedder.provider, config.embedder.model, config.embedder.cache_path = "hash", "hash-256", "off"
    memory = Memory(folder / "store.db", config, embedder=HashEmbedder(dims=256))
    records = open_store(memory.path)
    ring = KeyRing(records)
    _, token = ring.create("admin")
    memory.add("I moved to Lisbon in May and adopted a cat", user_id="ana")
    yield create_app(memory, ring.authenticate, records=records), token
    records.close()
    memory.close()


def test_no_server_errors_and_no_answers_outside_the_schema(served):
    app, token = served
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    calls: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(mode))
        # Derandomized: schemathesis mutates query values into other JSON types that still read as
        # valid strings ("agent_id=4.2e-22"), so a random run can fail on what no server can tell
        # apart. MEMLANE_FUZZ_SEED=random explores new cases by hand (and found real defects).
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=os.environ.get("MEMLANE_FUZZ_SEED") != "random")
        def run(case):
            calls.append(1)
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # a route with nothing to get wrong (no body, free-text path)
        except (Exception, BaseExceptionGroup) as exc:  # gather every operation's failures, then report them all
            failures[f"{operation.label} ({mode.value})"] = str(exc)[:3000]
    assert len(calls) > 10 * len(operations)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
