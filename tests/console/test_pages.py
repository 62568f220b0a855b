"""The web console's pages through the ASGI app: signing in and out, what a tenant key may see,
the admin pages, paging, a memory's page, search explanations, node edits, benchmark reports and
jobs. The browser test (test_browser.py) drives the same pages in Chromium."""

from __future__ import annotations

import hashlib
import html
import json
import re
import time

import pytest
from _console_support import csrf, sign_in
from fastapi.testclient import TestClient

from memlane.server.app import create_app
from memlane.server.console import install_console
from memlane.server.console.sessions import COOKIE, KIND
from memlane.server.job_routes import install_jobs
from memlane.server.jobs import FINISHED, Outcome


def text(response) -> str:
    """A page's text with tags dropped and entities decoded, to search what a reader sees."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


# -- signing in -------------------------------------------------------------------------------------


def test_a_browser_without_a_session_is_sent_to_sign_in_and_brought_back(client, keys, stored):
    response = client.get("/console/memories?user=ana", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fmemories%3Fuser%3Dana"
    page = client.get(response.headers["location"])
    assert page.status_code == 200 and 'type="password"' in page.text and 'for="api-key"' in page.text
    signed = client.post("/console/sign-in", data={"api_key": keys.admin, "next": "/console/memories?user=ana"},
                         follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/console/memories?user=ana"


def test_signing_in_keeps_an_opaque_session_in_an_httponly_strict_cookie(client, keys, records):
    response = client.post("/console/sign-in", data={"api_key": keys.admin}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    session = client.cookies[COOKIE]
    secret = keys.admin.split("_", 2)[2]
    assert secret not in cookie and keys.admin not in cookie
    [record] = records.service_records(KIND)  # the store keeps the session's digest and the key id only
    assert record["id"] == hashlib.sha256(session.encode()).hexdigest() and session not in json.dumps(record)
    assert record["key_id"] == keys.admin.split("_")[1] and secret not in json.dumps(record)
    page = client.get("/console/overview")
    assert page.status_code == 200 and keys.admin not in page.text and secret not in page.text


@pytest.mark.parametrize("token, says", [("mlk_0123456789ab_" + "x" * 43, "unknown API key"),
                                         ("not-a-key", "malformed API key"), ("", "no API key")])
def test_a_wrong_key_is_refused_on_the_sign_in_page_without_being_repeated(client, keys, token, says):
    response = client.post("/console/sign-in", data={"api_key": token})
    assert response.status_code == 401 and says in text(response)
    assert COOKIE not in response.headers.get("set-cookie", "")
    assert not token or token not in response.text


def test_signing_out_ends_the_session(admin, records):
    page = admin.get("/console/overview")
    response = admin.post("/console/sign-out", data={"csrf": csrf(page.text)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console/sign-in"
    assert not records.service_records(KIND)
    assert admin.get("/console/overview", follow_redirects=False).status_code == 303


def test_a_revoked_keys_sessions_end(memory, ring, records, reports_dir, tmp_path):
    app = create_app(memory, ring.authenticate, records=records)
    console = install_console(app, records, reports_dir=reports_dir, upload_dir=tmp_path / "up")
    console.sessions._cache_s = 0
    key_id, token = ring.create("admin")
    client = sign_in(TestClient(app), token)
    assert client.get("/console/overview").status_code == 200
    ring.revoke(key_id)
    assert client.get("/console/overview", follow_redirects=False).status_code == 303
    assert not records.service_records(KIND)


def test_an_expired_session_is_refused(memory, ring, records, reports_dir, tmp_path, keys):
    app = create_app(memory, ring.authenticate, records=records)
    console = install_console(app, records, reports_dir=reports_dir, upload_dir=tmp_path / "up",
                              session_lifetime_s=0.2)
    console.sessions._cache_s = 0
    client = sign_in(TestClient(app), keys.admin)
    time.sleep(0.3)
    assert client.get("/console/overview", follow_redirects=False).status_code == 303


def test_a_form_without_its_token_or_from_another_site_is_refused(admin):
    page = admin.get("/console/nodes")
    assert admin.post("/console/nodes", data={"text": "name: x", "csrf": "0" * 32}).status_code == 403
    response = admin.post("/console/nodes", data={"text": "name: x", "csrf": csrf(page.text)},
                          headers={"Origin": "https://evil.example"})
    assert response.status_code == 403 and "another site" in text(response)


def test_without_auth_the_console_serves_an_admin_and_asks_for_no_key(memory, records, reports_dir, tmp_path, stored):
    app = create_app(memory)  # --no-auth, loopback only
    install_console(app, records, reports_dir=reports_dir, upload_dir=tmp_path / "up")
    client = TestClient(app)
    assert client.get("/console/sign-in", follow_redirects=False).headers["location"] == "/console/overview"
    page = client.get("/console/overview")
    assert page.status_code == 200 and "no auth" in text(page) and "Sign out" not in page.text


# -- who sees what ----------------------------------------------------------------------------------


def test_a_tenant_picks_only_its_users_and_is_refused_others(client, keys, stored):
    sign_in(client, keys.ana)
    page = client.get("/console/memories")
    assert page.status_code == 200
    assert re.findall(r'<option value="([^"]+)"', page.text.split('id="user"')[1].split("</select>")[0]) == ["ana"]
    assert "Bob likes chess" not in page.text and "Biscuit" in page.text
    other = client.get("/console/memories?user=bob")
    assert other.status_code == 403 and "does not reach user 'bob'" in text(other)
    assert client.get(f"/console/memories/{stored.bob.id}?user=bob").status_code == 403
    assert client.get(f"/console/memories/{stored.bob.id}?user=ana").status_code == 404
    assert client.get(f"/console/memories/{stored.bob.id}").status_code == 404  # its own user, by default
    assert client.get("/console/search?q=chess&user=bob").status_code == 403


def test_a_prefix_tenant_picks_the_stored_users_under_its_prefix(client, keys, stored):
    sign_in(client, keys.org)
    page = client.get("/console/overview")
    assert "org1/zoe" in page.text and "ana" not in re.findall(r"memories\?user=([^\"&]+)", page.text)
    assert "Org user note" in client.get("/console/memories").text


@pytest.mark.parametrize("path", ["/console/jobs", "/console/jobs/abc"])
def test_a_tenant_key_gets_the_403_page_on_admin_pages(client, keys, path):
    sign_in(client, keys.ana)
    response = client.get(path)
    assert response.status_code == 403 and "needs an admin API key" in text(response)
    assert response.headers["content-type"].startswith("text/html")


def test_a_tenant_sees_nodes_but_may_not_edit_them_or_upload_reports(client, keys, stored):
    sign_in(client, keys.ana)
    page = client.get("/console/nodes?name=temporal_event")
    assert page.status_code == 200 and "event_description" in page.text and "<textarea" not in page.text
    assert client.post("/console/nodes", data={"text": "x: 1", "csrf": "x"}).status_code == 403
    assert 'enctype="multipart/form-data"' not in client.get("/console/benchmarks").text
    assert client.post("/console/benchmarks/upload", files={"file": ("r.json", b"{}")},
                       data={"csrf": "x"}).status_code == 403
    assert "Jobs</a>" not in page.text


def test_the_overview_of_a_tenant_counts_its_users_memories(client, keys, stored):
    sign_in(client, keys.ana)
    shown = text(client.get("/console/overview"))
    assert "Your users" in shown and "ana 9 " in shown
    assert "profile_attribute 2" in shown and "turn 5" in shown and "session 2" in shown


def test_the_overview_of_an_admin_shows_the_store(admin, memory, stored):
    added = memory.add("A secret recipe for plum jam.", user_id="zed")[0]
    memory.delete(added.id, user_id="zed")
    shown = text(admin.get("/console/overview"))
    for part in ("Memories", "Users", "hash-256", "By kind", "profile_attribute", "By category", "semantic",
                 "Recent activity", "signed in (admin key)", "node temporal_event version 1 defined",
                 f"DELETE of memory {added.id} of user zed", f"ADD of memory {added.id} of user zed"):
        assert part in shown, part
    assert "plum" not in shown  # the feed says what changed, never what was said


# -- memories ---------------------------------------------------------------------------------------


def test_memories_come_in_pages_with_a_cursor(admin, memory):
    memory.add([{"role": "user", "content": f"Note number {i}."} for i in range(25)], user_id="pat")
    first = admin.get("/console/memories?user=pat&node_type=turn&limit=20")
    assert first.status_code == 200 and "Note number 0." in first.text and "Note number 20." not in first.text
    following = re.search(r'href="(/console/memories\?[^"]*cursor=[^"]*)" rel="next"', first.text).group(1)
    second = admin.get(html.unescape(following))
    assert "page 2" in second.text and "Note number 20." in second.text and "Note number 0." not in second.text
    assert "Next page" not in second.text and "First page" in second.text
    assert 'value="turn"' in second.text  # the filter is kept from page to page
    sessions = text(admin.get("/console/memories?user=pat&node_type=session"))
    assert "Note number 0." in sessions and "Note number 20." not in sessions  # one session, its text cut short
    assert "last page" in sessions


def test_a_bad_filter_is_shown_beside_the_form(admin, stored):
    response = admin.get("/console/memories?user=ana&date_from=someday")
    assert response.status_code == 422 and 'role="alert"' in response.text and "date_from" in text(response)


def test_a_memorys_page_shows_evidence_supersession_and_history(admin, stored):
    page = admin.get("/console/memories/fact-1?user=ana")
    shown = text(page)
    assert page.status_code == 200 and "Ana lives in Lisbon" in shown
    assert "Superseded by fact-2" in shown and "Ana lives in Porto" in shown
    assert "ana|home" in shown and "2024-05-08 – 2024-06-20" in shown
    assert "My sister Maria lives in Lisbon" in shown  # its evidence turn
    assert "SUPERSEDE" in shown and "ADD" in shown
    turn = text(admin.get(f"/console/memories/{stored.updated.id}?user=ana"))
    assert "UPDATE" in turn and "Congratulations on Biscuit!" in turn and "Congratulations on adopting Biscuit!" in turn
    cited = text(admin.get(f"/console/memories/{stored.turns[2].id}?user=ana"))
    assert "Cited by 1 extracted memory" in cited
    dated = text(admin.get(f"/console/memories/{stored.turns[0].id}?user=ana"))
    assert "last Tuesday = 2024-05-07" in dated


def test_an_unknown_memory_is_a_404_page(admin, stored):
    response = admin.get("/console/memories/nope?user=ana")
    assert response.status_code == 404 and "no memory with id nope" in text(response)


# -- search -----------------------------------------------------------------------------------------


def test_search_explains_every_hit_and_the_question(admin, stored):
    response = admin.get("/console/search", params={"q": "Where did Maria live last May?", "user": "ana",
                                                    "now": "2024-07-01"})
    shown = text(response)
    assert response.status_code == 200 and "Maria lives in Lisbon" in shown
    assert "How the question was read" in shown and "Maria" in shown.split("Entities")[1][:80]
    assert "“last May”: 2024-05-01 to 2024-05-31" in shown
    assert "dense" in shown and "bm25" in shown and "Weights" in shown
    assert response.text.count('class="fill"') >= 2  # the strategies' bars
    assert re.search(r'<rect class="fill" x="0" y="0" width="140.0"', response.text)  # a top score fills its bar


def test_search_filters_and_an_invalid_now(admin, stored):
    filtered = admin.get("/console/search", params={"q": "Biscuit", "user": "ana", "session_id": "s2"})
    assert "Biscuit loves the beach" in filtered.text and "I adopted a beagle" not in filtered.text
    bad = admin.get("/console/search", params={"q": "Biscuit", "user": "ana", "now": "tomorrowish"})
    assert bad.status_code == 422 and "now" in text(bad)


# -- nodes ------------------------------------------------------------------------------------------


def test_a_node_edit_is_refused_with_its_error_inline_then_accepted(admin, stored, memory):
    page = admin.get("/console/nodes?name=temporal_event")
    editor = re.search(r'id="yaml-temporal_event"[^>]*>(.*?)</textarea>', page.text, re.DOTALL)
    yaml_text = html.unescape(editor.group(1))
    broken = yaml_text.replace("{{who}}: {{event_description}}", "{{nobody}}")
    refused = admin.post("/console/nodes", data={"text": broken, "editing": "temporal_event", "csrf": csrf(page.text)})
    assert refused.status_code == 422
    section = refused.text.split('id="node"')[1].split("</section>")[0]
    assert 'role="alert"' in section and "{{nobody}}" in html.unescape(section) and 'aria-invalid="true"' in section
    assert "neither a schema field" in html.unescape(section)
    fixed = broken.replace("{{nobody}}", "{{who}} did {{event_description}}")
    saved = admin.post("/console/nodes", data={"text": fixed, "editing": "temporal_event", "csrf": csrf(page.text)},
                       follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"] == "/console/nodes?name=temporal_event&saved=temporal_event%20v2"
    after = admin.get(saved.headers["location"])
    assert "Saved: temporal_event v2" in text(after)
    assert "{{who}} did {{event_description}}" in html.unescape(after.text)
    assert {s.name: v for s, v in memory.node_versions()}["temporal_event"] == 2
    assert admin.get("/console/nodes?name=nothing").status_code == 404
    old = admin.get("/console/nodes?name=temporal_event&version=1")
    assert "version 1" in text(old) and "{{who}}: {{event_description}}" in html.unescape(old.text)


def test_bad_yaml_and_a_new_node_through_the_add_form(admin, stored, memory):
    token = csrf(admin.get("/console/nodes").text)
    bad = admin.post("/console/nodes", data={"text": "name: [unclosed", "editing": "new", "csrf": token})
    assert bad.status_code == 422 and "cannot parse the YAML" in text(bad) and "name: [unclosed" in bad.text
    new = ("name: pet_fact\ncategory: semantic\nprompt: List the pets each person has.\n"
           "schema: {type: object, properties: {pet: {type: string}, evidence: {type: array, items: {type: string}}}}\n"
           "template: 'Pet: {{pet}}'\n")
    added = admin.post("/console/nodes", data={"text": new, "editing": "new", "csrf": token}, follow_redirects=False)
    assert added.status_code == 303 and "pet_fact" in [s.name for s in memory.nodes()]


# -- benchmarks -------------------------------------------------------------------------------------


def test_the_benchmarks_page_lists_retrieval_reports_only(admin):
    shown = text(admin.get("/console/benchmarks"))
    assert "locomo-full" in shown and "locomo-hybrid" in shown and "longmemeval-full-tiered" in shown
    assert "speed" not in shown.split("Compare two reports")[0]


def test_a_report_shows_its_tables_and_serves_its_plots(admin):
    page = admin.get("/console/benchmarks/report?id=results:locomo-full.json")
    shown = text(page)
    assert "turn_recall@10" in shown and "multi-hop" in shown and "Per category" in shown
    plots = re.findall(r'<img src="([^"]+)"', page.text)
    assert len(plots) == 2
    image = admin.get(html.unescape(plots[0]))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content[:4] == b"\x89PNG"


@pytest.mark.parametrize("query", ["id=results:../../../etc/passwd.json", "id=results:speed.json",
                                   "id=elsewhere:locomo-full.json",
                                   "id=results:locomo-full.json&name=../locomo-hybrid-recall.png"])
def test_no_file_outside_the_reports_is_served(admin, query):
    path = "/console/benchmarks/plot?" if "name=" in query else "/console/benchmarks/report?"
    assert admin.get(path + query).status_code in (404, 422)


def test_two_reports_are_compared_with_bootstrap_intervals(admin):
    page = admin.get("/console/benchmarks/compare?a=results:locomo-full.json&b=results:locomo-hybrid.json")
    shown = text(page)
    assert page.status_code == 200 and "Paired bootstrap" in shown and "turn_recall@5" in shown
    assert shown.count(" … ") >= 6 and page.text.count('<svg class="ci"') == 6
    assert len(re.findall(r'<img src="', page.text)) == 4
    mixed = admin.get("/console/benchmarks/compare?a=results:locomo-full.json&b=results:longmemeval-full-tiered.json")
    assert mixed.status_code == 422 and "cannot compare" in text(mixed)


def test_an_admin_uploads_a_report_which_is_drawn_and_listed(admin, reports_dir):
    token = csrf(admin.get("/console/benchmarks").text)
    content = (reports_dir / "locomo-hybrid.json").read_bytes()
    response = admin.post("/console/benchmarks/upload", files={"file": ("my run.json", content, "application/json")},
                          data={"csrf": token}, follow_redirects=False)
    assert response.status_code == 303 and "uploaded%3Amy-run.json" in response.headers["location"]
    page = admin.get(response.headers["location"])
    assert len(re.findall(r'<img src="', page.text)) == 2
    assert "uploaded" in text(admin.get("/console/benchmarks"))
    refused = admin.post("/console/benchmarks/upload", files={"file": ("x.json", b'{"benchmark": "speed"}')},
                         data={"csrf": token})
    assert refused.status_code == 422 and "not a retrieval benchmark report" in text(refused)
    broken = admin.post("/console/benchmarks/upload", files={"file": ("x.json", b"{oops")}, data={"csrf": token})
    assert broken.status_code == 422 and "not JSON" in text(broken)


# -- jobs -------------------------------------------------------------------------------------------


@pytest.fixture
def with_jobs(memory, ring, records, reports_dir, tmp_path, keys):
    app = create_app(memory, ring.authenticate, records=records)
    manager = install_jobs(app, memory, tmp_path / "jobs")
    install_console(app, records, reports_dir=reports_dir)
    yield sign_in(TestClient(app), keys.admin), manager
    manager.close()


def test_a_refused_fine_tune_is_shown_beside_the_form_with_what_was_typed(with_jobs, tmp_path):
    client, _ = with_jobs
    token = csrf(client.get("/console/jobs").text)
    missing = client.post("/console/jobs/fine-tune", data={"eval_queries": str(tmp_path / "none.jsonl"),
                                                           "source": "synthetic", "csrf": token})
    assert missing.status_code == 422 and "no such file on the server" in text(missing)
    assert str(tmp_path / "none.jsonl") in missing.text
    nan = client.post("/console/jobs/fine-tune", data={"eval_queries": "x", "epochs": "two", "csrf": token})
    assert nan.status_code == 422 and "'two' is not an integer" in text(nan)


def test_a_job_page_follows_the_job_and_shows_the_gate(with_jobs):
    client, manager = with_jobs
    gate = {"passed": True, "reason": "NDCG@10 rose by 0.200", "min_gain": 0.01, "queries": 40,
            "before": {"ndcg@10": 0.3, "recall@5": 0.4}, "after": {"ndcg@10": 0.5, "recall@5": 0.55},
            "deltas": {"ndcg@10": {"delta": 0.2, "ci_low": 0.12, "ci_high": 0.28, "p_not_better": 0.0},
                       "recall@5": {"delta": 0.15, "ci_low": 0.05, "ci_high": 0.25, "p_not_better": 0.01}},
            "base_model": "tiny", "checkpoint": "/models/x"}

    def run(ctx):
        ctx.stage("training")
        ctx.progress(3, 4)
        return Outcome({"examples": 12}, gate=gate)

    job = manager.submit("fine_tune", {"eval_queries": "e.jsonl", "synthetic": True}, run)
    while manager.get(job.id).state not in FINISHED:
        time.sleep(0.02)
    status = client.get(f"/console/jobs/{job.id}/status.json").json()
    assert status["state"] == "succeeded" and status["finished"] and "stage: training" in status["log"]
    shown = text(client.get(f"/console/jobs/{job.id}"))
    assert "The gate: accepted" in shown and "NDCG@10 rose by 0.200" in shown
    assert "ndcg@10 0.300 0.500 +0.200 +0.120 … +0.280" in shown
    listed = text(client.get("/console/jobs"))
    assert job.id in listed and "succeeded" in listed
    cancel = client.post(f"/console/jobs/{job.id}/cancel", data={"csrf": csrf(client.get("/console/jobs").text)})
    assert cancel.status_code == 409 and "already ended" in text(cancel)


def test_a_running_job_is_cancelled_from_its_page(with_jobs):
    client, manager = with_jobs

    def run(ctx):
        ctx.stage("training")
        while True:
            ctx.progress(1, 10)
            time.sleep(0.01)

    job = manager.submit("fine_tune", {"eval_queries": "e.jsonl", "synthetic": True}, run)
    while manager.get(job.id).state != "running":
        time.sleep(0.01)
    page = client.get(f"/console/jobs/{job.id}")
    assert 'data-finished="no"' in page.text and "Cancel job" in page.text and "<progress" in page.text
    response = client.post(f"/console/jobs/{job.id}/cancel", data={"csrf": csrf(page.text)}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/console/jobs/{job.id}"
    while manager.get(job.id).state not in FINISHED:
        time.sleep(0.02)
    shown = text(client.get(f"/console/jobs/{job.id}"))
    assert manager.get(job.id).state == "cancelled" and "cancelled" in shown and "Cancel job" not in shown


def test_uploads_go_beside_the_jobs_unless_told_and_are_refused_with_neither(with_jobs, memory, records, reports_dir,
                                                                           keys, ring):
    client, manager = with_jobs
    token = csrf(client.get("/console/benchmarks").text)
    content = (reports_dir / "locomo-full.json").read_bytes()
    kept = client.post("/console/benchmarks/upload", files={"file": ("run.json", content)}, data={"csrf": token},
                       follow_redirects=False)
    assert kept.status_code == 303 and (manager.work_dir / "reports" / "run-recall.png").is_file()
    app = create_app(memory, ring.authenticate, records=records)
    install_console(app, records, reports_dir=reports_dir)  # no jobs, no upload folder
    bare = sign_in(TestClient(app), keys.admin)
    page = bare.get("/console/benchmarks")
    assert 'enctype="multipart/form-data"' not in page.text
    refused = bare.post("/console/benchmarks/upload", files={"file": ("run.json", content)},
                        data={"csrf": csrf(page.text)})
    assert refused.status_code == 500 and "no folder for uploaded reports" in text(refused)


def test_the_status_route_answers_json_even_for_errors(with_jobs):
    client, _ = with_jobs
    response = client.get("/console/jobs/nope/status.json")
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"


# -- the pages themselves ---------------------------------------------------------------------------


PAGES = ["/console/overview", "/console/memories?user=ana", "/console/memories/fact-1?user=ana",
         "/console/search?q=Biscuit&user=ana", "/console/nodes", "/console/nodes?name=temporal_event",
         "/console/nodes?name=temporal_event&version=1", "/console/benchmarks",
         "/console/benchmarks/report?id=results:locomo-full.json",
         "/console/benchmarks/compare?a=results:locomo-full.json&b=results:locomo-hybrid.json", "/console/jobs"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_labelled_controls_and_strict_headers(admin, stored, path):
    response = admin.get(path)
    assert response.status_code == 200, response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"
    assert '<a class="skip" href="#main">' in response.text and '<main id="main"' in response.text
    labels = set(re.findall(r'<label for="([^"]+)"', response.text))
    for tag, attributes in re.findall(r"<(input|select|textarea)\b([^>]*)>", response.text):
        if 'type="hidden"' in attributes or 'type="radio"' in attributes:
            continue
        control = re.search(r'\bid="([^"]+)"', attributes)
        assert control and (control.group(1) in labels or "aria-label" in attributes), f"unlabelled {tag}{attributes}"


def test_an_unknown_console_page_is_a_404_page(admin, client):
    response = admin.get("/console/nowhere")
    assert response.status_code == 404 and "no page /console/nowhere" in text(response)
    assert admin.get("/console/static/console.css").headers["content-type"].startswith("text/css")


def test_the_console_is_not_in_the_openapi_document(app):
    paths = TestClient(app).get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/console")]
