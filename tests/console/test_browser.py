"""The web console in a real browser: Playwright drives the system's Chromium against a real
`memlane serve` on 127.0.0.1, over a tiny LoCoMo store embedded by a tiny model (so that a
fine-tune runs in seconds). Signs in, pages through memories, opens a memory's history,
searches with explanations, edits a node (refused, then accepted), opens a benchmark report's
plots and compares two reports, follows a fine-tune to its gate, and checks that a tenant key
is refused an admin page. Every page is screenshot (1280 px wide, and phone width; into
docs/console/ with MEMLANE_SCREENSHOTS=1) and checked for labelled controls, keyboard use and no
sideways scrolling."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _support import DATA, REPO, make_tiny_checkpoint, tiny_config
from playwright.sync_api import Browser, Page, expect, sync_playwright
from typer.testing import CliRunner

from memlane import Memory
from memlane.cli import app as cli
from memlane.ingest.formats import load_conversations
from memlane.nodes.spec import default_topology
from memlane.tune.labels import locomo_labels, write_label_rows

# Screenshots go to docs/console/ when MEMLANE_SCREENSHOTS=1 (to refresh the committed ones);
# otherwise to a temporary folder, so a test run leaves the working tree as it was.
DOCS = REPO / "docs" / "console" if os.environ.get("MEMLANE_SCREENSHOTS") == "1" else \
    Path(tempfile.mkdtemp(prefix="memlane-console-shots-"))
WIDE = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
CHROMIUM = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def chromium() -> str:
    """The system's Chromium. Missing, the test fails (never skips): CI installs it."""
    for name in CHROMIUM:
        found = name if os.path.isfile(name) else shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is not installed: run `apt-get install -y chromium` (.ci/run does this as root); the "
                "console's browser tests drive it with Playwright, whose own browser download is not used")


@dataclass
class Served:
    url: str
    admin: str  # API keys, as `memlane keys create` printed them
    tenant: str  # users: bob
    eval_queries: Path
    log: Path
    updated_id: str  # a memory whose text was changed (two history events)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_key(store: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["keys", "create", *args, "--store", str(store)])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`memlane serve` over the first four LoCoMo sessions of conversation 26 (user "26") and one
    memory of user "bob", with the default memory nodes, embedded by a tiny model."""
    folder = tmp_path_factory.mktemp("console")
    model = make_tiny_checkpoint(folder / "tiny")
    config = tiny_config(folder, model)
    conversation = load_conversations(DATA / "locomo" / "26.json")[0]
    conversation.sessions = conversation.sessions[:4]
    store = folder / "store.db"
    with Memory(store, config) as memory:
        memory.ingest(conversation.sessions, user_id="26")
        memory.add("Bob keeps bees on his roof in Porto.", user_id="bob", session_date="2023-06-01")
        turn = memory.get_all("26", limit=5, filters={"node_type": "turn"}).records[2]
        memory.update(turn.id, turn.text + " (corrected)", user_id="26")
        for spec in default_topology():
            memory.define_node(spec)
    eval_queries = folder / "eval.jsonl"
    write_label_rows(eval_queries, locomo_labels([conversation]))
    config_file = folder / "memlane.toml"
    config_file.write_text(f'[embedder]\nmodel = "{model}"\ncache_path = "off"\n\n'
                           "[fine_tune]\nbatch_size = 16\nepochs = 2\nlearning_rate = 1e-3\n", encoding="utf-8")
    admin, tenant = make_key(store, "--role", "admin"), make_key(store, "--role", "tenant", "--users", "bob")
    port = free_port()
    log = folder / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMLANE_")}
    env["HF_HUB_OFFLINE"] = "1"
    with log.open("wb") as out:  # from the repository, whose benchmarks/results the console lists
        process = subprocess.Popen([sys.executable, "-m", "memlane.cli", "serve", "--host", "127.0.0.1", "--port",
                                    str(port), "--store", str(store), "--config", str(config_file)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    result = Served(url, admin, tenant, eval_queries, log, turn.id)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, result.output()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{result.output()}"
            time.sleep(0.1)
        yield result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser() -> Browser:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium())
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def admin(browser, served) -> Page:
    """One admin tab, signed in through the form, shared by the tests in order."""
    DOCS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=WIDE)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto(f"{served.url}/console")
    expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    check(page, "sign-in")
    page.get_by_label("API key").fill(served.admin)
    page.keyboard.press("Enter")  # the form is sent from the keyboard
    expect(page).to_have_url(re.compile(r"/console/overview$"))
    yield page
    context.close()


def check(page: Page, name: str | None = None) -> None:
    """Every control has a label, the page does not scroll sideways, and it is saved as
    docs/console/NAME.png."""
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.outerHTML)""")
    assert not unlabelled, unlabelled
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1, f"{page.url} is {width} px wide: it scrolls sideways"
    if name:
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)
        assert (DOCS / f"{name}.png").stat().st_size > 5_000  # a page was drawn, not a blank


def test_signed_in_the_overview_shows_the_store_and_the_keyboard_reaches_the_content(admin):
    expect(admin.get_by_role("heading", name="Overview")).to_be_visible()
    for part in ("Memories", "By kind", "By category", "Recent activity", "signed in (admin key)"):
        expect(admin.get_by_text(part).first).to_be_visible()
    check(admin, "overview")
    admin.keyboard.press("Tab")
    assert admin.evaluate("document.activeElement.className") == "skip"
    admin.keyboard.press("Enter")
    assert admin.evaluate("document.activeElement.id") == "main"


def test_memories_page_by_page_and_a_memorys_history(admin, served):
    admin.get_by_role("link", name="Memories", exact=True).click()
    admin.get_by_label("User").select_option("26")
    admin.get_by_label("Kind (node)").fill("turn")
    admin.get_by_label("Per page").select_option("20")
    admin.get_by_role("button", name="Show").click()
    expect(admin.get_by_role("heading", name="26: page 1")).to_be_visible()
    expect(admin.locator("table.memories tbody tr")).to_have_count(20)
    check(admin, "memories")
    admin.get_by_role("link", name="Next page").click()
    expect(admin.get_by_role("heading", name="26: page 2")).to_be_visible()
    expect(admin.get_by_label("Kind (node)")).to_have_value("turn")
    admin.get_by_role("link", name="First page").click()
    admin.get_by_role("link", name=served.updated_id[:12]).click()
    expect(admin.get_by_role("heading", name="History")).to_be_visible()
    history = admin.locator("section", has=admin.get_by_role("heading", name="History"))
    expect(history.locator("tbody tr")).to_have_count(2)
    expect(history).to_contain_text("UPDATE")
    expect(history).to_contain_text("(corrected)")
    check(admin, "memory")


def test_search_shows_why_each_hit_was_found(admin):
    admin.get_by_role("link", name="Search", exact=True).click()
    admin.get_by_label("Question").fill("When did Caroline go to the LGBTQ support group last May?")
    admin.get_by_label("User").select_option("26")
    admin.get_by_label("Asked on (now)").fill("2023-06-01")
    admin.get_by_role("button", name="Search").click()
    analysis = admin.locator("section.analysis")
    expect(analysis).to_contain_text("Caroline")
    expect(analysis).to_contain_text("“last May”: 2023-05-01 to 2023-05-31")
    expect(admin.locator("li.hit").first.locator("table.why svg.bar").first).to_be_visible()
    assert admin.locator("svg.bar").count() >= admin.locator("li.hit").count() >= 1
    check(admin, "search")


def test_a_node_edit_is_refused_with_its_error_and_then_accepted(admin):
    admin.get_by_role("link", name="Nodes", exact=True).click()
    admin.get_by_role("link", name="temporal_event", exact=True).click()
    editor = admin.get_by_label("Definition of temporal_event (YAML)")
    original = editor.input_value()
    editor.fill(original.replace("{{who}}: {{event_description}}", "{{nobody}}"))
    admin.get_by_role("button", name="Save temporal_event").click()
    node = admin.locator("#node")
    expect(node.get_by_role("alert")).to_contain_text("{{nobody}}, which is neither a schema field")
    expect(admin.get_by_label("Definition of temporal_event (YAML)")).to_have_attribute("aria-invalid", "true")
    node.scroll_into_view_if_needed()
    check(admin, "nodes-refused")
    admin.get_by_label("Definition of temporal_event (YAML)").fill(
        original.replace("{{who}}: {{event_description}}", "{{who}} - {{event_description}}"))
    admin.get_by_role("button", name="Save temporal_event").click()
    expect(admin.get_by_role("status")).to_contain_text("Saved: temporal_event v2")
    expect(admin.locator("#node h2")).to_contain_text("v2")
    check(admin, "nodes")
    admin.get_by_role("link", name="version 1", exact=True).click()
    expect(admin.locator("#node pre")).to_contain_text("{{who}}: {{event_description}}")


def test_a_benchmark_reports_plots_and_two_reports_compared(admin):
    admin.get_by_role("link", name="Benchmarks", exact=True).click()
    check(admin, "benchmarks")
    admin.get_by_role("link", name="locomo-full", exact=True).click()
    expect(admin.get_by_role("heading", name="Per category")).to_be_visible()
    images = admin.locator("figure img")
    expect(images).to_have_count(2)
    # The plots load after the page: wait for both (a busy machine took longer than one look).
    admin.wait_for_function("() => [...document.querySelectorAll('figure img')].every(img => img.complete)",
                            timeout=30_000)
    for i in range(2):
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth") > 100
    check(admin, "report")
    admin.get_by_role("link", name="All reports").click()
    admin.get_by_label("Report A (baseline)").select_option(label="locomo-full (locomo)")
    admin.get_by_label("Report B").select_option(label="locomo-hybrid (locomo)")
    admin.get_by_role("button", name="Compare").click()
    expect(admin.get_by_role("heading", name=re.compile("Paired bootstrap"))).to_be_visible()
    expect(admin.locator("svg.ci")).to_have_count(6)
    check(admin, "compare")


def test_a_fine_tune_started_and_followed_to_its_gate(admin, served):
    admin.get_by_role("link", name="Jobs", exact=True).click()
    admin.get_by_label("Held-out queries (JSONL on the server)").fill(str(served.eval_queries))
    admin.get_by_label("synthetic (written from the store)").check()
    admin.get_by_label("Epochs").fill("4")
    admin.get_by_label("Learning rate").fill("0.003")
    check(admin, "jobs")
    admin.get_by_role("button", name="Start fine-tune").click()
    expect(admin).to_have_url(re.compile(r"/console/jobs/[0-9a-f]+$"))
    expect(admin.locator("#job-stage")).not_to_have_text("–")  # filled in while the job runs
    expect(admin.locator("#gate-h")).to_be_visible(timeout=120_000)  # the page reloads when the job ends
    expect(admin.locator("#job-state")).to_have_text(re.compile("succeeded|refused"))
    gate = admin.locator("table.gate")
    expect(gate).to_contain_text("ndcg@10")
    expect(gate).to_contain_text("…")
    expect(admin.locator("#job-log")).to_contain_text("stage: gate")
    check(admin, "job")


def test_a_tenant_key_is_refused_an_admin_page(browser, served):
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    page.goto(f"{served.url}/console/sign-in")
    page.get_by_label("API key").fill(served.tenant)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Your users")).to_be_visible()
    expect(page.get_by_role("link", name="Jobs", exact=True)).to_have_count(0)
    response = page.goto(f"{served.url}/console/jobs")
    assert response.status == 403
    expect(page.get_by_role("alert")).to_contain_text("needs an admin API key")
    check(page, "forbidden")
    page.goto(f"{served.url}/console/memories")
    expect(page.get_by_label("User").locator("option")).to_have_count(1)
    expect(page.locator("table.memories")).to_contain_text("bees")
    context.close()


def test_readable_at_phone_width(browser, served, admin):
    context = browser.new_context(viewport=PHONE, storage_state=admin.context.storage_state(), is_mobile=True)
    page = context.new_page()
    for path, name in (("/console/overview", "overview-phone"), ("/console/memories?user=26&limit=20", None),
                       ("/console/search?q=What+did+Caroline+paint%3F&user=26", "search-phone"),
                       ("/console/nodes", None), ("/console/benchmarks/report?id=results%3Alocomo-full.json", None)):
        page.goto(served.url + path)
        expect(page.locator("main h1")).to_be_visible()
        check(page, name)
    context.close()
