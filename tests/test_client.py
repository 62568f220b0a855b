"""memlane.Client against a running server: the same calls give what Memory gives, with the same errors."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import socket
import subprocess
import sys
import zipfile
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest
import yaml
from _support import CHAT, uvicorn_in_thread

from memlane import Client, HistoryEvent, Hit, Memory, MemoryRecord, Session, Turn
from memlane.embed import HashEmbedder
from memlane.errors import (
    AccessError,
    ConfigError,
    InputError,
    LLMError,
    ModelMismatchError,
    NotFoundError,
    RateLimitError,
    StoreError,
)
from memlane.nodes.spec import default_topology
from memlane.server.app import create_app
from memlane.server.auth import Principal, Unauthorized

ADMIN_KEY = "sk-admin-5f2c91"
TENANT_KEY = "sk-tenant-8d04e7"  # reaches ana and bob
SOLO_KEY = "sk-solo-1b77a3"  # reaches carol only
KEYS = {
    ADMIN_KEY: Principal(key_id="admin", role="admin"),
    TENANT_KEY: Principal(key_id="tenant", role="tenant", users=("ana", "bob")),
    SOLO_KEY: Principal(key_id="solo", role="tenant", users=("carol",)),
}
SECRETS = (*KEYS, "sk-wrong-4e4e4e")


def authenticate(token: str | None) -> Principal:
    if token not in KEYS:
        raise Unauthorized("missing or unknown API key")
    return KEYS[token]


@contextlib.contextmanager
def serving(memory: Memory):
    """`memory` served by uvicorn on a free loopback port, in a thread; yields the base URL."""
    with uvicorn_in_thread(create_app(memory, authenticate), lifespan="off") as base:
        yield base


@pytest.fixture
def url(memory):
    with serving(memory) as base:
        yield base


@pytest.fixture
def admin(url):
    with Client(url, ADMIN_KEY) as client:
        yield client


@pytest.fixture
def tenant(url):
    with Client(url, TENANT_KEY) as client:
        yield client


def same_hits(served, embedded):
    assert [h.id for h in served] == [h.id for h in embedded]
    assert [h.text for h in served] == [h.text for h in embedded]
    assert [h.score for h in served] == pytest.approx([h.score for h in embedded], abs=1e-6)
    assert [h.record.to_dict() for h in served] == [h.record.to_dict() for h in embedded]


def no_secret_in(error: BaseException) -> None:
    shown = " ".join([str(error), repr(error), str(getattr(error, "fix", "")), str(getattr(error, "field", ""))])
    assert not any(key in shown for key in SECRETS), shown


# -- the same API ---------------------------------------------------------------------------------------------

API = ["add", "search", "get", "get_all", "update", "delete", "delete_all", "history", "stats", "nodes",
       "node_versions", "define_node", "remove_node", "consolidate", "apply_retention", "expired", "restore",
       "purge", "add_document", "delete_document", "close", "__exit__"]


@pytest.mark.parametrize("name", API)
def test_every_method_has_memorys_signature(name):
    assert inspect.signature(getattr(Client, name)) == inspect.signature(getattr(Memory, name))


# -- the same results -------------------------------------------------------------------------------------------


def test_records_hits_and_events_round_trip_through_their_dicts(memory):
    records = memory.add(CHAT, user_id="ana", session_date="2023-05-08")
    assert [MemoryRecord.from_dict(r.to_dict()) for r in records] == records
    assert any(r.event_dates for r in records)
    hits = memory.search("When is the invoice due?", user_id="ana", explain=True)
    assert [Hit.from_dict(h.to_dict()) for h in hits] == hits and hits[0].explanation is not None
    events = memory.history(records[0].id, user_id="ana")
    assert [HistoryEvent.from_dict(dataclasses.asdict(e)) for e in events] == events


def test_a_scenario_gives_what_memory_gives(memory, admin):
    added = admin.add(CHAT, user_id="ana", session_id="s1", session_date=date(2023, 5, 8))
    assert [r.to_dict() for r in added] == [memory.get(r.id, user_id="ana").to_dict() for r in added]
    memory.add("My favourite dish is bacalhau with chickpeas.", user_id="ana", session_date="2023-05-10")

    for query, options in [("What pet does the user have?", {}),
                           ("Where does Maria live?", {"filters": {"node_type": "turn"}, "limit": 3}),
                           ("When is the invoice due?", {"now": date(2023, 5, 9), "explain": True}),
                           ("favourite dish", {"as_of": datetime(2023, 5, 9, 12, tzinfo=timezone.utc)})]:
        served = admin.search(query, user_id="ana", **options)
        embedded = memory.search(query, user_id="ana", **options)
        same_hits(served, embedded)
        assert [h.to_dict() for h in served] == [h.to_dict() for h in embedded]  # explanations too

    served_pages, embedded_pages, cursor = [], [], None
    for pages, source in ((served_pages, admin), (embedded_pages, memory)):
        cursor = None
        while True:
            page = source.get_all("ana", limit=2, cursor=cursor)
            pages.append(([r.to_dict() for r in page.records], page.next_cursor))
            cursor = page.next_cursor
            if cursor is None:
                break
    assert served_pages == embedded_pages and len(served_pages) == 3
    for filters in ({"node_type": "session"}, {"node_type": ["turn", "session"], "as_of": "2030-01-01"},
                    {"agent_id": ["nobody"]}):
        assert admin.get_all("ana", filters=filters) == memory.get_all("ana", filters=filters)

    turn = added[2]
    updated = admin.update(turn.id, "My sister Maria moved to Porto.", user_id="ana")
    assert updated.to_dict() == memory.get(turn.id, user_id="ana").to_dict()
    assert updated.text == "My sister Maria moved to Porto."
    assert admin.history(turn.id, user_id="ana") == memory.history(turn.id, user_id="ana")
    assert [e.event for e in admin.history(turn.id, user_id="ana")] == ["ADD", "UPDATE"]

    admin.delete(turn.id, user_id="ana")
    assert admin.get(turn.id, user_id="ana") is None and memory.get(turn.id, user_id="ana") is None
    assert [e.event for e in admin.history(turn.id, user_id="ana")] == ["ADD", "UPDATE", "DELETE"]
    assert admin.stats() == memory.stats()
    assert admin.delete_all("ana") == 5 and memory.get_all("ana").records == []


def test_dates_and_sessions_are_sent_as_memory_takes_them(memory, admin):
    when = datetime(2023, 5, 8, 18, 30, tzinfo=timezone(timedelta(hours=2)))
    served = admin.add("I ran a marathon yesterday.", user_id="ana", session_date=when)
    embedded = memory.add("I ran a marathon yesterday.", user_id="bob", session_date=when)
    assert served[0].session_date == embedded[0].session_date == "2023-05-08T16:30:00"
    assert served[0].event_dates == embedded[0].event_dates

    session = Session(turns=[Turn("I started learning the cello.", "Ana"), Turn("Lovely!", "bot", role="assistant")],
                      session_id="s2", date="2023-06-01")
    by_client = admin.add(session, user_id="ana", metadata={"source": "app"}, category="Episodic")
    by_memory = memory.add(session, user_id="bob", metadata={"source": "app"}, category="Episodic")
    def shape(records):
        return [(r.text, r.speaker, r.session_id, r.session_date, r.category, r.node_type) for r in records]

    assert shape(by_client) == shape(by_memory)
    assert [r.metadata.get("source") for r in by_client] == ["app"] * 3


def test_a_category_other_than_episodic_is_stored(memory, admin):
    assert admin.add("I prefer short answers.", user_id="ana", category="procedural")[0].category.value == "procedural"


def test_nodes_are_defined_listed_and_removed_as_in_memory(memory, admin, tenant, tmp_path):
    specs = default_topology()
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump({"nodes": [s.to_data() for s in specs[:2]]}), encoding="utf-8")
    assert admin.define_node(path) == [(specs[0].name, 1), (specs[1].name, 1)]
    assert admin.define_node(specs[2]) == [(specs[2].name, 1)]
    assert admin.define_node(specs[3].to_data()) == [(specs[3].name, 1)]
    assert admin.nodes() == memory.nodes() == sorted(specs, key=lambda s: s.name)
    assert admin.node_versions() == memory.node_versions()

    admin.remove_node(specs[0].name)
    assert [s.name for s in admin.nodes()] == sorted(s.name for s in specs[1:])
    with pytest.raises(AccessError):
        tenant.define_node(specs[0])
    with pytest.raises(InputError) as served:
        admin.define_node({"name": "x"})
    with pytest.raises(InputError) as embedded:
        memory.define_node({"name": "x"})
    assert str(served.value) == str(embedded.value)


def test_retention_expires_restores_and_purges_as_in_memory(tmp_path, config):
    config.retention.episodic_days = 30
    with Memory(tmp_path / "r.db", config, embedder=HashEmbedder(dims=256)) as memory, serving(memory) as base, \
            Client(base, ADMIN_KEY) as admin:
        old = admin.add(CHAT[:2], user_id="ana", session_date="2023-01-05")
        admin.add("I moved to Porto.", user_id="ana", session_date="2023-05-30")
        assert admin.consolidate("ana") == 0
        assert admin.apply_retention(now=date(2023, 6, 1), user_id="ana") == 3
        assert [r.to_dict() for r in admin.expired("ana")] == [r.to_dict() for r in memory.expired("ana")]
        assert {r.id for r in admin.expired("ana")} == {r.id for r in old}
        assert admin.restore(old[0].id, user_id="ana").id == old[0].id
        assert admin.purge("ana") == 2
        assert memory.expired("ana") == [] and memory.get(old[0].id, user_id="ana") is not None


def test_a_real_uvicorn_process_serves_what_the_store_holds(tmp_path, config):
    """The server as its own process, over a store file this test then opens embedded."""
    store = tmp_path / "served.db"
    script = (
        "import os, socket, sys, uvicorn\n"
        "from memlane import Memory, MemoryConfig\n"
        "from memlane.embed import HashEmbedder\n"
        "from memlane.server.app import create_app\n"
        "from memlane.server.auth import Principal, Unauthorized\n"
        "def authenticate(token):\n"
        "    if token != os.environ['MEMLANE_TEST_KEY']:\n"
        "        raise Unauthorized('missing or unknown API key')\n"
        "    return Principal(key_id='k', role='admin')\n"
        "config = MemoryConfig()\n"
        "config.embedder.provider, config.embedder.model, config.embedder.cache_path = 'hash', 'hash-256', 'off'\n"
        "memory = Memory(sys.argv[1], config, embedder=HashEmbedder(dims=256))\n"
        "sock = socket.socket()\n"
        "sock.bind(('127.0.0.1', 0))\n"
        "sock.listen(64)\n"
        "print(sock.getsockname()[1], flush=True)\n"
        "uvicorn.Server(uvicorn.Config(create_app(memory, authenticate), log_level='warning')).run(sockets=[sock])\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script, str(store)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "MEMLANE_TEST_KEY": ADMIN_KEY})
    try:
        port = int(process.stdout.readline())
        with Client(f"http://127.0.0.1:{port}/", ADMIN_KEY) as client:
            added = client.add(CHAT, user_id="ana", session_date="2023-05-08")
            served = client.search("Who is Maria?", user_id="ana", explain=True)
            page = client.get_all("ana", limit=3)
            with pytest.raises(NotFoundError):
                client.delete("no-such-id", user_id="ana")
        with Memory(store, config, embedder=HashEmbedder(dims=256)) as memory:
            same_hits(served, memory.search("Who is Maria?", user_id="ana", explain=True))
            assert [r.id for r in page.records] == [r.id for r in added[:3]]
            assert [r.to_dict() for r in memory.get_all("ana", limit=3).records] == [r.to_dict() for r in page.records]
    finally:
        process.terminate()
        process.wait(10)


# -- the same errors ---------------------------------------------------------------------------------------------

INVALID = {
    "a date that is none": lambda m: m.search("x", user_id="ana", now="next blursday"),
    "an unknown filter": lambda m: m.search("x", user_id="ana", filters={"colour": "red"}),
    "an unknown role": lambda m: m.add([{"role": "robot", "content": "beep"}], user_id="ana"),
    "a cursor never given": lambda m: m.get_all("ana", cursor="abc"),
    "working memory": lambda m: m.add("hi", user_id="ana", category="working"),
    "a blank new text": lambda m: m.update(m.add("hello", user_id="ana")[0].id, "   ", user_id="ana"),
    "an id that is not text": lambda m: m.get(42, user_id="ana"),
}


@pytest.mark.parametrize("call", INVALID.values(), ids=INVALID.keys())
def test_input_errors_keep_their_message_field_and_fix(memory, admin, call):
    with pytest.raises(InputError) as embedded:
        call(memory)
    with pytest.raises(InputError) as served:
        call(admin)
    assert str(served.value) == str(embedded.value)
    assert (served.value.field, served.value.fix) == (embedded.value.field, embedded.value.fix)


def test_a_request_the_server_refuses_names_the_field_and_the_fix(admin):
    with pytest.raises(InputError) as error:
        admin.search("x", user_id="ana", limit=0)
    assert error.value.field == "limit" and error.value.fix and f"Fix: {error.value.fix}" in str(error.value)


MISSING = {
    "delete": lambda m: m.delete("feedface", user_id="ana"),
    "update": lambda m: m.update("feedface", "new text", user_id="ana"),
    "restore": lambda m: m.restore("feedface", user_id="ana"),
    "remove_node": lambda m: m.remove_node("no_such_node"),
}


@pytest.mark.parametrize("call", MISSING.values(), ids=MISSING.keys())
def test_a_missing_memory_is_not_found_as_in_memory(memory, admin, call):
    with pytest.raises(NotFoundError) as embedded:
        call(memory)
    with pytest.raises(NotFoundError) as served:
        call(admin)
    assert str(served.value) == str(embedded.value)


def test_get_of_a_missing_memory_is_none(memory, admin):
    assert admin.get("feedface", user_id="ana") is None is memory.get("feedface", user_id="ana")


def test_keys_decide_whom_a_call_reaches(memory, url, tenant):
    zoe = memory.add("Zoe's secret plan", user_id="zoe")[0]
    assert tenant.add("I like green tea.", user_id="ana")[0].user_id == "ana"
    errors = []
    for call in (lambda: tenant.get_all("zoe"), lambda: tenant.search("plan", user_id="zoe"),
                 lambda: tenant.get(zoe.id, user_id="zoe"), lambda: tenant.stats(), lambda: tenant.get(zoe.id)):
        with pytest.raises(AccessError) as error:
            call()
        errors.append(error.value)
    assert "zoe" in str(errors[0])
    for key in ("sk-wrong-4e4e4e", None):
        with Client(url, key) as stranger, pytest.raises(AccessError) as error:
            stranger.search("plan", user_id="ana")
        errors.append(error.value)
    with Client(url, SOLO_KEY) as solo:  # a key with one user may leave user_id out
        assert solo.add("Carol here.", user_id=None)[0].user_id == "carol"
        assert [h.text for h in solo.search("Carol", user_id=None)] == ["Carol here."]
    for error in errors:
        no_secret_in(error)
    assert ADMIN_KEY not in repr(Client(url, ADMIN_KEY)) and "***" in repr(Client(url, ADMIN_KEY))


@pytest.mark.parametrize("kind, status, cls", [
    ("input", 422, InputError), ("not_found", 404, NotFoundError), ("model_mismatch", 409, ModelMismatchError),
    ("llm", 502, LLMError), ("store", 503, StoreError), ("config", 500, ConfigError),
    ("unauthorized", 401, AccessError), ("forbidden", 403, AccessError), ("rate_limited", 429, RateLimitError),
])
def test_each_error_type_of_the_server_is_its_library_error(kind, status, cls):
    body = {"error": {"type": kind, "message": f"{kind} went wrong", "field": "query", "fix": "do it right"}}
    answer = lambda request: httpx.Response(status, json=body, headers={"Retry-After": "7"})  # noqa: E731
    with Client("http://memlane.test", "sk-k", transport=httpx.MockTransport(answer)) as client, \
            pytest.raises(cls) as error:
        client.search("q", user_id="ana")
    assert type(error.value) is cls
    assert str(error.value).startswith(f"{kind} went wrong")
    if cls is InputError:
        assert (error.value.field, error.value.fix) == ("query", "do it right")
    if cls is RateLimitError:
        assert error.value.retry_after == 7


def test_answers_that_are_not_the_servers_are_store_errors():
    answers = {"/v1/memories/search": httpx.Response(502, text="<html>Bad Gateway</html>"),
               "/v1/memories/abc": httpx.Response(404, json={"detail": "Not Found"})}
    transport = httpx.MockTransport(lambda request: answers[request.url.path])
    with Client("http://memlane.test", transport=transport) as client:
        with pytest.raises(StoreError, match="memlane.test.*HTTP 502: <html>Bad Gateway"):
            client.search("q", user_id="ana")
        with pytest.raises(StoreError, match="HTTP 404"):  # a wrong URL is not "no such memory"
            client.get("abc", user_id="ana")


def test_an_unreachable_server_is_a_store_error_naming_the_url_not_the_key():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", SOLO_KEY) as client, pytest.raises(StoreError) as error:
        client.get_all("carol")
    assert f"127.0.0.1:{port}" in str(error.value)
    no_secret_in(error.value)


def test_a_slow_server_is_a_store_error():
    def stall(request):
        raise httpx.ReadTimeout("timed out", request=request)

    with Client("http://memlane.test", ADMIN_KEY, timeout=2, transport=httpx.MockTransport(stall)) as client, \
            pytest.raises(StoreError, match="did not answer .* within 2 s"):
        client.stats()


def test_an_echoed_key_is_blanked_out():
    body = {"error": {"type": "unauthorized", "message": f"key {ADMIN_KEY} is revoked", "field": None, "fix": None}}
    transport = httpx.MockTransport(lambda request: httpx.Response(401, json=body))
    with Client("http://memlane.test", ADMIN_KEY, transport=transport) as client, pytest.raises(AccessError) as error:
        client.stats()
    no_secret_in(error.value)


def test_what_cannot_travel_is_refused_before_sending():
    sent = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(500))
    with Client("http://memlane.test", transport=transport) as client:
        with pytest.raises(InputError, match="'/'") as error:
            client.delete("a/b", user_id="ana")
        assert error.value.field == "memory_id"
        with pytest.raises(InputError) as error:
            client.add("hi", user_id="ana", metadata={"when": object()})
        assert error.value.field == "metadata"
        assert client.get_all("ana", filters={"speaker": []}).records == []
    assert sent == []
    with pytest.raises(InputError, match="http"):
        Client("localhost:8420")
    with pytest.raises(InputError) as error:
        Client("http://localhost:8420", api_key="sk-has a space")
    no_secret_in(error.value)
    assert "sk-has a space" not in str(error.value)


def test_a_closed_client_says_so(admin):
    admin.close()
    with pytest.raises(StoreError, match="closed"):
        admin.stats()



def test_a_user_id_with_a_slash_reaches_its_user_routes(memory, admin):
    admin.add("I keep bees on the roof.", user_id="org1/ana")
    assert [r.text for r in admin.get_all("org1/ana").records] == ["I keep bees on the roof."]
    assert admin.delete_all("org1/ana") == 1 and memory.get_all("org1/ana").records == []


# -- documents ----------------------------------------------------------------------------------------------------

PLAN = "# Launch plan\n\nWe launch in May.\n\n## Budget\n\nThe paint budget is 300 euros.\n\n## Team\n\nAna paints.\n"
FAQ = "# FAQ\n\n## Returns\n\nReturns are accepted within 30 days with the receipt.\n"


def counts(report):
    return (report.documents, report.chunks, report.added, report.changed, report.unchanged, report.removed,
            report.embedded)


def documents_of(memory, user):
    return sorted(r.metadata["source"] for r in memory.get_all(user, filters={"node_type": "document"}).records)


def test_a_document_put_searched_and_deleted_gives_what_memory_gives(memory, admin):
    served = admin.add_document("notes/plan.md", PLAN, user_id="ana")
    embedded = memory.add_document("notes/plan.md", PLAN, user_id="bob")
    assert counts(served) == counts(embedded) and served.skipped == [] and served.seconds > 0
    admin.add_document("faq.md", FAQ.encode("utf-8"), user_id="ana", category="procedural")
    memory.add_document("faq.md", FAQ, user_id="bob", category="procedural")
    assert documents_of(memory, "ana") == documents_of(memory, "bob") == ["faq.md", "notes/plan.md"]

    hits = admin.search("paint budget", user_id="ana", group_by="document", explain=True)
    same = memory.search("paint budget", user_id="ana", group_by="document", explain=True)
    same_hits(hits, same)
    assert [h.to_dict() for h in hits] == [h.to_dict() for h in same]
    assert hits[0].record.metadata["source"] == "notes/plan.md" and hits[0].parts
    assert hits[0].parts[0].record.node_type == "chunk" and hits[0].parts[0].explanation is not None
    only_faq = admin.search("paint", user_id="ana", group_by="document", filters={"source": "faq.md"})
    assert [h.record.metadata["source"] for h in only_faq] == ["faq.md"]

    assert admin.delete_document("notes/plan.md", user_id="ana") == memory.delete_document("notes/plan.md",
                                                                                             user_id="bob")
    with pytest.raises(NotFoundError) as served_error:
        admin.delete_document("notes/plan.md", user_id="ana")
    with pytest.raises(NotFoundError) as embedded_error:
        memory.delete_document("notes/plan.md", user_id="ana")
    assert str(served_error.value) == str(embedded_error.value)
    with pytest.raises(InputError) as unreadable:
        admin.add_document("plan.docx", "text", user_id="ana")
    assert unreadable.value.field == "content" and "plan.docx" in str(unreadable.value)


def test_a_folder_is_uploaded_with_the_names_memory_gives_it(memory, admin, tmp_path):
    folder = tmp_path / "handbook"
    (folder / "guide").mkdir(parents=True)
    (folder / ".git").mkdir()
    (folder / "plan.md").write_text(PLAN, encoding="utf-8")
    (folder / "guide" / "faq.md").write_text(FAQ, encoding="utf-8")
    (folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    served = admin.add_documents(folder, user_id="ana")
    embedded = memory.add_documents(folder, user_id="bob")
    assert counts(served) == counts(embedded)
    assert documents_of(memory, "ana") == documents_of(memory, "bob") == ["handbook/guide/faq.md", "handbook/plan.md"]
    assert [(s.root, s.path, s.reason) for s in served.skipped] == [
        ("upload:handbook", "handbook/logo.png", "not a document format memlane reads (.png)")]

    (folder / "guide" / "faq.md").unlink()
    again = admin.add_documents(str(folder), user_id="ana")  # the same collection: synced
    assert again.removed >= 2 and again.added == 0
    assert documents_of(memory, "ana") == ["handbook/plan.md"]


def test_files_and_archives_are_uploaded_as_collections(memory, admin, tmp_path):
    plan, faq = tmp_path / "plan.md", tmp_path / "faq.md"
    plan.write_text(PLAN, encoding="utf-8")
    faq.write_text(FAQ, encoding="utf-8")
    assert admin.add_documents(plan, user_id="ana").documents == 1
    assert admin.add_documents([plan, faq], user_id="bob", collection="both", category="procedural").documents == 2
    assert documents_of(memory, "ana") == ["plan.md"] and documents_of(memory, "bob") == ["faq.md", "plan.md"]
    assert {r.category.value for r in memory.get_all("bob").records} == {"procedural"}
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("docs/faq.md", FAQ)
    assert admin.add_documents(archive, user_id="cy").documents == 1 and documents_of(memory, "cy") == ["docs/faq.md"]
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not an archive")
    with pytest.raises(InputError, match="broken.tar.gz: not a readable archive") as error:
        admin.add_documents(broken, user_id="cy")
    assert error.value.field == "files"


def test_document_uploads_refused_before_sending(admin, tmp_path):
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN, encoding="utf-8")
    with pytest.raises(InputError) as error:
        admin.add_documents([plan, tmp_path], user_id="ana")
    assert error.value.field == "collection"
    with pytest.raises(InputError, match="no such file or folder"):
        admin.add_documents(tmp_path / "nope.md", user_id="ana")
    with pytest.raises(InputError):
        admin.add_documents([], user_id="ana")


def test_a_tenant_uploads_only_for_its_users(memory, url, tenant, tmp_path):
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN, encoding="utf-8")
    with pytest.raises(AccessError):
        tenant.add_documents(plan, user_id="zoe")
    with pytest.raises(AccessError):
        tenant.add_document("plan.md", PLAN, user_id="zoe")
    memory.add_document("secret.md", "# Secret\n\nZoe's plan.", user_id="zoe")
    with pytest.raises(AccessError):
        tenant.delete_document("secret.md", user_id="zoe")
    with pytest.raises(AccessError):
        tenant.search("plan", user_id="zoe", group_by="document")
    with Client(url, SOLO_KEY) as solo:  # a key with one user may leave user_id out
        assert solo.add_documents(plan).documents == 1
    assert documents_of(memory, "carol") == ["plan.md"] and documents_of(memory, "zoe") == ["secret.md"]
