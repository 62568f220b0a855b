"""The MCP server, driven by the SDK's own client: in process, over stdio (`memlane mcp`), and over
streamable HTTP at /mcp of `memlane serve`'s app, where the user comes from the API key."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, AsyncIterator, Iterator

import anyio
import httpx
import httpx2
import pytest
from _server_support import bearer, tampered
from _support import uvicorn_in_thread
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from memlane import Memory, MemoryConfig
from memlane.cli import app as cli
from memlane.records import Explanation, Hit, MemoryRecord, StrategyHit
from memlane.server.keys import KeyRing
from memlane.server.mcp import USER_HEADER, build_mcp, excerpt, reason
from memlane.server.run import build_app
from memlane.store import open_store

TOOLS = {"add_memory", "search_memories", "get_memory", "list_memories", "update_memory", "delete_memory",
         "memory_history", "add_document", "search_documents"}
CONFIG = '[embedder]\nprovider = "hash"\nmodel = "hash-256"\ncache_path = "off"\n'
LISBON = [{"role": "user", "content": "I moved to Lisbon last month.", "name": "Ana"},
          {"role": "assistant", "content": "How do you like Lisbon so far?"}]
RUNBOOK = ("# Release runbook\n\nHow we ship.\n\n## Rollback\n\nTo roll back a release, redeploy the previous tag "
           "with the deploy script and tell the on-call channel.\n\n## Announce\n\nPost the release notes in "
           "the news channel.\n")


async def call(client: Client, tool: str, **arguments: Any) -> dict:
    """A tool's structured result; fails the test on a tool error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """The message of a tool error (fails the test when the call succeeds)."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return result.content[0].text


def hash_config() -> MemoryConfig:
    return MemoryConfig.load_text(CONFIG)


# -- why a hit was found -------------------------------------------------------------------------------


def hit(text: str, strategies: list[tuple[str, int]], notes: list[str], speaker: str | None = "user",
        analysis: dict | None = None) -> Hit:
    record = MemoryRecord(id="m1", user_id="ana", text=text, embed_text=text, speaker=speaker)
    explanation = Explanation([StrategyHit(name, rank, 1.0) for name, rank in strategies], 0.5, {}, notes,
                              analysis=analysis or {})
    return Hit(record, 0.5, explanation)


def test_reason_names_the_strategies_the_mentions_and_the_time_range():
    found = hit("We landed in Lisbon on Friday", [("bm25", 3), ("dense", 1), ("session", 1), ("temporal", 2)], [],
                analysis={"time_range": {"expression": "last week", "start": "2024-06-03", "end": "2024-06-09"},
                          "entities": ["Lisbon", "Porto"], "needles": []})
    assert reason(found) == ("meaning #1, date #2, keywords #3; mentions 'Lisbon'; "
                             "in the question's time range (last week = 2024-06-03..2024-06-09)")


def test_reason_keeps_what_changed_a_hits_score_and_drops_the_routing():
    found = hit("Ana: I work at the bakery", [("session", 2)],
                ["routed: the question is about a job", "entities: Ana",
                 "superseded (score x 0.5); valid until 2024-02-01"], speaker="Ana", analysis={"entities": ["Ana"]})
    assert reason(found) == "its conversation #2; mentions 'Ana'; said by Ana; superseded; valid until 2024-02-01"


def test_reason_without_an_explanation():
    assert reason(Hit(MemoryRecord(id="m", user_id="ana", text="t", embed_text="t"), 0.1)) == "found by search"


def test_an_excerpt_is_one_line_cut_at_a_word():
    assert excerpt("Short\n\ntext.") == "Short text."
    assert excerpt("alpha beta gamma delta", limit=14) == "alpha beta…"
    assert len(excerpt("word " * 200)) <= 300


# -- in process: every tool over the library ----------------------------------------------------------


@contextlib.asynccontextmanager
async def in_process(memory: Memory, user: str = "ana") -> AsyncIterator[Client]:
    async with Client(build_mcp(lambda: memory, lambda _ctx: user)) as client:
        yield client


def test_the_tools_describe_themselves_and_never_take_a_user(memory):
    async def main():
        async with in_process(memory) as client:
            return (await client.list_tools()).tools

    tools = {t.name: t for t in anyio.run(main)}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description) > 60, tool.name
        assert not {"user", "user_id"} & set(tool.input_schema["properties"]), tool.name
        assert tool.output_schema is not None
    assert tools["search_memories"].annotations.read_only_hint
    assert tools["delete_memory"].annotations.destructive_hint


def test_every_tool_over_one_users_memory(memory):
    async def main():
        async with in_process(memory) as client:
            added = (await call(client, "add_memory", messages=LISBON, session_date="2024-05-08"))["memories"]
            await call(client, "add_memory", text="My dentist appointment is on Friday.", session_date="2024-06-03")
            turn = next(m for m in added if m["text"].startswith("I moved"))
            assert turn["date"].startswith("2024-05-08") and turn["speaker"] == "Ana" and turn["kind"] == "turn"
            assert turn["dates_mentioned"] == ["last month = 2024-04-01..2024-04-30"]
            assert {m["kind"] for m in added} == {"turn", "session"}

            hits = (await call(client, "search_memories", query="Where did Ana move to, Lisbon?", limit=3))["results"]
            assert turn["id"] in [h["id"] for h in hits]
            first = next(h for h in hits if h["id"] == turn["id"])
            assert "mentions 'Lisbon'" in first["reason"] and "#" in first["reason"] and first["date"]
            june = (await call(client, "search_memories", query="appointment", date_from="2024-06-01",
                               date_to="2024-06-30"))["results"]
            assert [h["text"] for h in june] == ["My dentist appointment is on Friday."]

            assert (await call(client, "get_memory", memory_id=turn["id"]))["text"] == turn["text"]
            page = await call(client, "list_memories", limit=2)
            rest = await call(client, "list_memories", cursor=page["next_cursor"], limit=50)
            assert len(page["memories"]) == 2 and len(rest["memories"]) == 2 and rest["next_cursor"] is None

            updated = await call(client, "update_memory", memory_id=turn["id"], text="I moved to Porto last month.")
            assert updated["text"] == "I moved to Porto last month." and updated["id"] == turn["id"]
            assert (await call(client, "delete_memory", memory_id=turn["id"])) == {"deleted": turn["id"]}
            events = (await call(client, "memory_history", memory_id=turn["id"]))["events"]
            assert [e["event"] for e in events] == ["ADD", "UPDATE", "DELETE"]
            assert events[1]["old_text"] == "I moved to Lisbon last month."
            assert "no memory with id" in await refused(client, "get_memory", memory_id=turn["id"])

    anyio.run(main)
    assert {r.user_id for r in memory.get_all("ana").records} == {"ana"}
    assert memory.get_all("bob").records == []


def test_library_errors_come_back_as_tool_errors_with_the_librarys_message(memory):
    async def main():
        async with in_process(memory) as client:
            assert "no memory with id nope" in await refused(client, "get_memory", memory_id="nope")
            assert "no memory with id nope" in await refused(client, "update_memory", memory_id="nope", text="x")
            message = await refused(client, "search_memories", query="x", date_from="2024-13-01")
            assert "date_from" in message and "YYYY-MM-DD" in message
            assert "session_date" in await refused(client, "add_memory", text="hi", session_date="someday")
            assert "not a cursor" in await refused(client, "list_memories", cursor="abc")
            assert "either text" in await refused(client, "add_memory")
            assert "not both" in await refused(client, "add_memory", text="a", messages=LISBON)

    anyio.run(main)


def test_documents_are_added_and_searched_by_section(memory):
    async def main():
        async with in_process(memory) as client:
            added = await call(client, "add_document", path="ops/runbook.md", content=RUNBOOK, category="procedural")
            assert added["path"] == "ops/runbook.md" and added["title"] == "Release runbook"
            assert added["chunks"] >= 2 and added["added"] == added["chunks"] + 1 and added["removed"] == 0
            await call(client, "add_document", path="notes/lunch.txt", content="Lunch ideas: soup, salad, curry.")
            await call(client, "add_memory", text="I roll back my bike on Sundays.")

            found = (await call(client, "search_documents", query="how do I roll back a release?", limit=5))["results"]
            top = found[0]
            assert top["path"] == "ops/runbook.md" and top["title"] == "Release runbook" and top["score"] > 0
            assert "#" in top["reason"]
            section = top["sections"][0]
            assert section["section"].endswith("Rollback") and "redeploy the previous tag" in section["excerpt"]
            first, last = section["lines"]
            assert "redeploy the previous tag" in "\n".join(RUNBOOK.splitlines()[first - 1:last])
            assert all(r["path"] in ("ops/runbook.md", "notes/lunch.txt") for r in found)  # documents only

            again = await call(client, "add_document", path="ops/runbook.md", category="procedural",
                               content=RUNBOOK.replace("previous tag", "previous release"))
            assert again["added"] == 1 and again["removed"] == 1 and again["unchanged"] == 1  # one section changed
            assert "deck.pptx" in await refused(client, "add_document", path="deck.pptx", content="x")

    anyio.run(main)
    runbook = memory.get_all("ana", filters={"source": "ops/runbook.md"}).records
    assert len(runbook) == 3 and {r.category.value for r in runbook} == {"procedural"}
    assert memory.get_all("bob").records == []


# -- over stdio: the `memlane mcp` command -------------------------------------------------------------


def test_memlane_mcp_serves_one_user_over_stdio(tmp_path):
    config = tmp_path / "memlane.toml"
    config.write_text(CONFIG, encoding="utf-8")
    store = tmp_path / "stdio.db"
    params = StdioServerParameters(command=sys.executable, cwd=str(tmp_path), args=[
        "-m", "memlane.cli", "mcp", "--store", str(store), "--user", "ana", "--config", str(config)])

    async def main():
        with anyio.fail_after(60):
            await session()

    async def session():
        async with Client(params, read_timeout_seconds=30) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            added = (await call(client, "add_memory", messages=LISBON, session_date="2024-05-08"))["memories"]
            hits = (await call(client, "search_memories", query="Lisbon"))["results"]
            assert {h["id"] for h in hits} <= {m["id"] for m in added} and hits
            assert len((await call(client, "list_memories"))["memories"]) == len(added)
            assert "no memory with id" in await refused(client, "delete_memory", memory_id="missing")

    anyio.run(main)
    with Memory(store, hash_config(), create=False) as memory:
        assert len(memory.get_all("ana").records) == 3


def test_memlane_mcp_needs_a_user(tmp_path, monkeypatch):
    monkeypatch.delenv("MEMLANE_USER", raising=False)
    result = CliRunner().invoke(cli, ["mcp", "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "--user" in result.output
    result = CliRunner().invoke(cli, ["mcp", "--store", str(tmp_path / "s.db"), "--user", " "])
    assert result.exit_code == 2 and "user id is empty" in result.output
    assert not (tmp_path / "s.db").exists()


# -- over HTTP: /mcp in the REST server, the user from the API key --------------------------------------


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """`app` under uvicorn (lifespan on) on a free loopback port, in a thread; yields the /mcp URL."""
    with uvicorn_in_thread(app, lifespan="on") as base:
        yield base + "/mcp"


@contextlib.asynccontextmanager
async def over_http(url: str, token: str | None = None, user: str | None = None,
                    mode: str = "auto") -> AsyncIterator[Client]:
    headers = {**(bearer(token) if token else {}), **({USER_HEADER: user} if user else {})}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


class Served:
    def __init__(self, url: str, tokens: dict[str, str]) -> None:
        self.url = url
        self.tokens = tokens


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """`memlane serve`'s app over a fresh store, with tenant keys for ana, for bob, for bob and cy,
    for eve (one request a minute), and an admin key."""
    store = str(tmp_path_factory.mktemp("mcp") / "served.db")
    records = open_store(store, create=True)
    ring = KeyRing(records)
    tokens = {"ana": ring.create("tenant", users=["ana"])[1], "bob": ring.create("tenant", users=["bob"])[1],
              "pair": ring.create("tenant", users=["bob", "cy"])[1], "admin": ring.create("admin")[1],
              "slow": ring.create("tenant", users=["eve"], rate="1/min")[1]}
    records.close()
    with serving(build_app(store, hash_config(), work_dir=tmp_path_factory.mktemp("jobs"))) as url:
        yield Served(url, tokens)


def test_two_keys_never_reach_each_others_memories(served):
    async def main():
        async with over_http(served.url, served.tokens["ana"]) as ana, \
                over_http(served.url, served.tokens["bob"], mode="legacy") as bob:
            anas = (await call(ana, "add_memory", text="My locker code is 4711 and I live in Lisbon."))["memories"]
            bobs = (await call(bob, "add_memory", text="My locker code is 9035 and I live in Porto."))["memories"]
            ana_ids, bob_ids = {m["id"] for m in anas}, {m["id"] for m in bobs}
            for client, mine, theirs in ((ana, ana_ids, bob_ids), (bob, bob_ids, ana_ids)):
                hits = (await call(client, "search_memories", query="locker code Lisbon Porto 4711 9035",
                                   limit=100))["results"]
                assert {h["id"] for h in hits} == mine
                assert {m["id"] for m in (await call(client, "list_memories"))["memories"]} == mine
                (other,) = theirs
                for tool in ("get_memory", "delete_memory", "memory_history"):
                    result = await client.call_tool(tool, {"memory_id": other})
                    assert result.is_error or result.structured_content == {"events": []}, tool
                assert (await client.call_tool("update_memory", {"memory_id": other, "text": "mine now"})).is_error
            assert (await call(ana, "get_memory", memory_id=next(iter(ana_ids))))["text"].startswith("My locker")
            assert (await call(bob, "get_memory", memory_id=next(iter(bob_ids))))["text"].startswith("My locker")

    anyio.run(main)


def test_two_keys_never_reach_each_others_documents(served):
    async def main():
        async with over_http(served.url, served.tokens["ana"]) as ana, \
                over_http(served.url, served.tokens["bob"]) as bob:
            await call(ana, "add_document", path="ana/runbook.md", content=RUNBOOK)
            await call(bob, "add_document", path="bob/lunch.md", content="# Lunch\n\nSoup on Mondays, release day.")
            for client, mine in ((ana, "ana/runbook.md"), (bob, "bob/lunch.md")):
                found = await call(client, "search_documents", query="release rollback lunch soup", limit=20)
                assert [r["path"] for r in found["results"]] == [mine]

    anyio.run(main)


def test_a_missing_or_invalid_key_is_refused(served):
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for headers in ({}, bearer(tampered(served.tokens["ana"])), {"Authorization": "Basic abc"}):
        response = httpx.post(served.url, json=message, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"

    async def main():
        with pytest.raises(Exception):
            async with over_http(served.url, tampered(served.tokens["ana"])):
                pass

    anyio.run(main)


def test_the_keys_rate_limit_holds_at_mcp(served):
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    first, second = (httpx.post(served.url, json=message, headers=bearer(served.tokens["slow"])) for _ in range(2))
    assert first.status_code != 429
    assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
    assert second.json()["error"]["type"] == "rate_limited"


def test_a_key_of_several_users_names_one_in_the_header(served):
    async def main():
        async with over_http(served.url, served.tokens["pair"]) as unnamed:
            assert USER_HEADER in await refused(unnamed, "list_memories")
        async with over_http(served.url, served.tokens["pair"], user="ana") as foreign:
            assert "does not reach user 'ana'" in await refused(foreign, "search_memories", query="Lisbon")
        async with over_http(served.url, served.tokens["pair"], user="cy") as cy:
            await call(cy, "add_memory", text="I collect stamps from Lisbon.")
            hits = (await call(cy, "search_memories", query="Lisbon", limit=100))["results"]
            assert [h["text"] for h in hits] == ["I collect stamps from Lisbon."]
        async with over_http(served.url, served.tokens["admin"]) as admin:
            assert USER_HEADER in await refused(admin, "list_memories")
        async with over_http(served.url, served.tokens["ana"], user="cy") as ana:  # a one-user key: the same rule
            assert "does not reach user 'cy'" in await refused(ana, "list_memories")

    anyio.run(main)


def test_the_key_is_never_logged(served, caplog):
    token = served.tokens["ana"]

    async def main():
        async with over_http(served.url, token) as ana:
            await call(ana, "search_memories", query="anything")
            await refused(ana, "get_memory", memory_id="missing")

    with caplog.at_level(logging.DEBUG):
        anyio.run(main)
        httpx.post(served.url, json={}, headers=bearer(tampered(token)))
    server_side = [r for r in caplog.records if r.name.split(".")[0] in ("memlane", "mcp", "uvicorn", "starlette")]
    secret = token.split("_", 2)[2]  # mlk_<id>_<secret>; the secret itself may hold "_"
    assert not any(secret[:-1] in r.getMessage() for r in server_side)  # nor the tampered one
    key_id = token.split("_")[1]
    assert any('"route": "/mcp"' in r.getMessage() and key_id in r.getMessage() for r in server_side
               if r.name == "memlane.access")


def test_without_auth_every_call_names_its_user(tmp_path):
    app = build_app(str(tmp_path / "open.db"), hash_config(), auth=False, work_dir=tmp_path / "jobs")

    async def main(url):
        async with over_http(url) as unnamed:
            assert USER_HEADER in await refused(unnamed, "list_memories")
        async with over_http(url, user="dana") as dana:
            await call(dana, "add_memory", text="I play the cello.")
            assert [m["text"] for m in (await call(dana, "list_memories"))["memories"]] == ["I play the cello."]

    with serving(app) as url:
        anyio.run(main, url)
