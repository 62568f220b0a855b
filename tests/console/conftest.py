"""Fixtures of the console tests: a store with two users, an extracted fact that was superseded,
node definitions, keys of each kind, small benchmark reports, and a client that signs in."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import pytest
from _console_support import sign_in
from _support import REPO
from fastapi.testclient import TestClient

from memlane.nodes.spec import default_topology
from memlane.records import Category, HistoryEvent, MemoryRecord
from memlane.server.app import create_app
from memlane.server.console import install_console

RESULTS = REPO / "benchmarks" / "results"


@dataclass
class Keys:
    admin: str
    ana: str  # a tenant of ana alone
    org: str  # a tenant of the users starting with org1/


@dataclass
class Stored:
    turns: list[MemoryRecord]  # ana's turns, oldest first
    updated: MemoryRecord  # a turn of ana's whose text was changed
    old_fact: MemoryRecord  # an extracted fact, superseded by new_fact
    new_fact: MemoryRecord
    bob: MemoryRecord  # bob's only memory


@pytest.fixture
def keys(ring) -> Keys:
    return Keys(admin=ring.create("admin")[1], ana=ring.create("tenant", users=["ana"])[1],
                org=ring.create("tenant", user_prefix="org1/")[1])


@pytest.fixture
def stored(memory, records) -> Stored:
    memory.add([{"role": "user", "content": "I adopted a beagle named Biscuit last Tuesday."},
                {"role": "assistant", "content": "Congratulations on Biscuit!"},
                {"role": "user", "content": "My sister Maria lives in Lisbon and works as a nurse."}],
               user_id="ana", session_id="s1", session_date="2024-05-08")
    memory.add([{"role": "user", "content": "I moved to Porto in June."},
                {"role": "user", "content": "Biscuit loves the beach at Matosinhos."}],
               user_id="ana", session_id="s2", session_date="2024-06-20")
    memory.add("Bob likes chess.", user_id="bob", session_date="2024-01-02")
    memory.add("Org user note.", user_id="org1/zoe")
    turns = memory.get_all("ana", filters={"node_type": "turn"}).records
    updated = memory.update(turns[1].id, "Congratulations on adopting Biscuit!", user_id="ana")
    old = MemoryRecord("fact-1", "ana", "Ana lives in Lisbon", "Ana lives in Lisbon", category=Category.SEMANTIC,
                       node_type="profile_attribute", recorded_at="2024-05-08T10:00:00Z", fact_key="ana|home",
                       valid_from="2024-05-08", valid_until="2024-06-20", superseded_by="fact-2",
                       metadata={"evidence": [turns[2].id], "fields": {"entity": "Ana", "attribute": "home"}})
    new = MemoryRecord("fact-2", "ana", "Ana lives in Porto", "Ana lives in Porto", category=Category.SEMANTIC,
                       node_type="profile_attribute", recorded_at="2024-06-20T10:00:00Z", fact_key="ana|home",
                       valid_from="2024-06-20", metadata={"evidence": [turns[3].id]})
    vectors = memory.embedder.encode([old.embed_text, new.embed_text])
    records.write([old, new], list(vectors), [
        HistoryEvent("fact-1", "ADD", None, old.text, "2024-05-08T10:00:00Z"),
        HistoryEvent("fact-2", "ADD", None, new.text, "2024-06-20T10:00:00Z"),
        HistoryEvent("fact-1", "SUPERSEDE", None, "fact-2", "2024-06-20T10:00:00Z")])
    for spec in default_topology()[:2]:
        memory.define_node(spec)
    return Stored(turns=turns, updated=updated, old_fact=old, new_fact=new, bob=memory.get_all("bob").records[0])


@pytest.fixture(scope="session")
def reports_dir(tmp_path_factory):
    """Two LoCoMo reports and a LongMemEval one, cut to their first questions, with their plots."""
    folder = tmp_path_factory.mktemp("results")
    for name, keep in (("locomo-full", 60), ("locomo-hybrid", 60), ("longmemeval-full-tiered", 30)):
        data = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
        data["per_question"] = data["per_question"][:keep]
        (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
        for suffix in ("-recall.png", "-categories.png"):
            shutil.copy(RESULTS / f"{name}{suffix}", folder / f"{name}{suffix}")
    (folder / "speed.json").write_text('{"benchmark": "speed"}', encoding="utf-8")  # not a retrieval report
    return folder


@pytest.fixture
def app(memory, ring, records, reports_dir, tmp_path):
    app = create_app(memory, ring.authenticate, records=records)
    install_console(app, records, reports_dir=reports_dir, upload_dir=tmp_path / "uploads")
    return app


@pytest.fixture
def client(app) -> TestClient:
    return TestClient(app)


@pytest.fixture
def admin(client, keys) -> TestClient:
    return sign_in(client, keys.admin)
