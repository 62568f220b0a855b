"""Tenant isolation through the HTTP API, as a property: whatever any tenant key asks, in any
order, no answer holds another tenant's memory, and no tenant changes another's memories."""

from __future__ import annotations

from dataclasses import dataclass

from _server_support import bearer
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlane import Memory
from memlane.embed import HashEmbedder
from memlane.server.app import create_app
from memlane.server.keys import KeyRing
from memlane.store import open_store


@dataclass(frozen=True)
class Tenant:
    name: str
    marker: str  # a word only this tenant's memories contain
    users: tuple[str, ...]  # the key's users (and users under its prefix that the test writes to)
    key: dict  # KeyRing.create's settings


TENANTS = [
    Tenant("one", "alphamark", ("ana",), {"users": ["ana"]}),
    Tenant("two", "bravomark", ("bob", "cy"), {"users": ["bob", "cy"]}),
    Tenant("three", "charliemark", ("org1/x", "org1/y"), {"user_prefix": "org1/"}),
    Tenant("four", "deltamark", ("org2/x", "dee"), {"users": ["dee"], "user_prefix": "org2/"}),
]
OWNER = {user: t for t in TENANTS for user in t.users}
USERS = sorted(OWNER) + ["org1", "nobody"]
WORDS = ["hiking", "mountains", "coffee", "dog", "Lisbon", "piano", "Friday", "birthday", "doctor", "garden"]

texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)
steps = st.tuples(
    st.sampled_from(TENANTS),  # who asks
    st.sampled_from(["add", "search", "list", "get", "history", "update", "delete", "expired", "search_unnamed"]),
    st.sampled_from(USERS),  # the user the request names
    texts,
    st.integers(min_value=0, max_value=10_000),  # picks a memory id among those made so far
)


def test_no_tenant_ever_sees_or_changes_another_tenants_memories(tmp_path, config):
    memory = Memory(tmp_path / "store.db", config, embedder=HashEmbedder(dims=256))
    records = open_store(memory.path)
    ring = KeyRing(records)
    tokens = {t.name: ring.create("tenant", **t.key)[1] for t in TENANTS}
    admin = bearer(ring.create("admin")[1])
    client = TestClient(create_app(memory, ring.authenticate, records=records))
    owner_of_id: dict[str, Tenant] = {}

    def act(tenant: Tenant, op: str, user: str, text: str, pick: int) -> None:
        ids = sorted(owner_of_id)
        memory_id = ids[pick % len(ids)] if ids else "no-such-id"
        headers = bearer(tokens[tenant.name])
        words = f"{text} {tenant.marker}"
        if op == "add":
            r = client.post("/v1/memories", json={"messages": words, "user_id": user}, headers=headers)
        elif op == "search":
            r = client.post("/v1/memories/search", json={"query": words, "user_id": user, "limit": 50}, headers=headers)
        elif op == "search_unnamed":
            r = client.post("/v1/memories/search", json={"query": words, "limit": 50}, headers=headers)
        elif op == "list":
            r = client.get("/v1/memories", params={"user_id": user}, headers=headers)
        elif op == "get":
            r = client.get(f"/v1/memories/{memory_id}", params={"user_id": user}, headers=headers)
        elif op == "history":
            r = client.get(f"/v1/memories/{memory_id}/history", params={"user_id": user}, headers=headers)
        elif op == "update":
            r = client.put(f"/v1/memories/{memory_id}", json={"text": words, "user_id": user}, headers=headers)
        elif op == "delete":
            r = client.delete(f"/v1/memories/{memory_id}", params={"user_id": user}, headers=headers)
        else:
            r = client.get(f"/v1/users/{user}/expired", headers=headers)
        reachable = OWNER.get(user) is tenant and op != "search_unnamed" or (
            op == "search_unnamed" and tenant.name == "one")
        if not reachable and op != "search_unnamed":
            assert r.status_code == 403, (tenant.name, op, user, r.text)
        if op in ("get", "update", "delete") and reachable and owner_of_id.get(memory_id) is not tenant:
            assert r.status_code == 404, (tenant.name, op, user, r.text)
        if op == "history" and reachable and owner_of_id.get(memory_id) is not tenant:
            assert r.status_code == 404 or r.json() == [], (tenant.name, op, user, r.text)
        for other in TENANTS:
            if other is not tenant:
                assert other.marker not in r.text, (tenant.name, op, user, r.text)
        for other_id, owner in owner_of_id.items():
            if owner is not tenant and other_id != memory_id:
                assert other_id not in r.text, (tenant.name, op, user, r.text)
        if op == "add" and r.status_code == 201:
            for made in r.json()["results"]:
                owner_of_id[made["id"]] = tenant

    @given(st.lists(steps, min_size=1, max_size=8))
    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(sequence):
        for step in sequence:
            act(*step)
        for user, tenant in OWNER.items():  # what each user holds carries only its own tenant's marker
            page = client.get("/v1/memories", params={"user_id": user, "limit": 10_000}, headers=admin).json()
            for record in page["results"]:
                assert tenant.marker in record["text"], (user, record["text"])
                assert owner_of_id[record["id"]] is tenant

    try:
        run()
        assert owner_of_id, "no memory was ever written"
    finally:
        records.close()
        memory.close()
