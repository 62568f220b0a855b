"""The console's document pages through the ASGI app: a user's documents with the upload form,
one document's chunks by section, deleting one, search grouped by document, and what a tenant
key may reach."""

from __future__ import annotations

import html
import io
import re
import tarfile

import pytest
from _console_support import csrf, sign_in

PLAN = ("# Launch plan\n\nWe launch in May.\n\n## Budget\n\nThe paint budget is 300 euros.\n\n"
        "## Team\n\nAna and Bob paint the fence.\n")
FAQ = "# FAQ\n\n## Returns\n\nReturns are accepted within 30 days with the receipt.\n"


def text(response) -> str:
    """A page's text with tags dropped and entities decoded, to search what a reader sees."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)))


def tar_gz(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tar.addfile(info, io.BytesIO(data.encode()))
    return buffer.getvalue()


@pytest.fixture
def documents(memory):
    memory.add_document("notes/plan.md", PLAN, user_id="ana")
    memory.add_document("faq.md", FAQ, user_id="ana", category="procedural")
    memory.add_document("secret.md", "# Secret\n\nBob's secret plan.", user_id="bob")


def test_the_documents_page_lists_a_users_documents(admin, documents):
    page = admin.get("/console/documents", params={"user": "ana"})
    shown = text(page)
    assert page.status_code == 200 and "Launch plan" in shown and "notes/plan.md" in shown and "FAQ" in shown
    assert "procedural" in shown and "Secret" not in shown
    row = shown.split("notes/plan.md")[1][:40]
    assert re.search(r"\b2\b", row)  # its chunks
    assert 'href="/console/documents" aria-current="page"' in page.text  # the navigation
    assert 'enctype="multipart/form-data"' in page.text and 'name="files"' in page.text
    assert "/console/document?user=ana&amp;path=notes%2Fplan.md" in page.text


def test_an_upload_is_remembered_and_its_report_shown(admin, memory):
    page = admin.get("/console/documents")
    archive = tar_gz({"docs/plan.md": PLAN, "docs/faq.md": FAQ})
    form = {"csrf": csrf(page.text), "user": "dana", "category": "procedural"}
    response = admin.post("/console/documents", data=form, files=[("files", ("docs.tar.gz", archive))])
    shown = text(response)
    assert response.status_code == 200, shown
    assert "Upload remembered" in shown and "2 (" in shown and "docs/plan.md" in shown
    sources = sorted(r.metadata["source"] for r in memory.get_all("dana", filters={"node_type": "document"}).records)
    assert sources == ["docs/faq.md", "docs/plan.md"]
    assert {r.category.value for r in memory.get_all("dana").records} == {"procedural"}

    files = [("files", ("plan.md", PLAN.encode())), ("files", ("logo.png", b"\x89PNG\r\n\x1a\n\x00"))]
    second = admin.post("/console/documents", data={"csrf": csrf(page.text), "user": "dana", "collection": "mix"},
                        files=files)
    assert second.status_code == 200 and "logo.png : not a document format memlane reads (.png)" in text(second)


def test_an_upload_the_library_refuses_shows_why(admin, memory):
    page = admin.get("/console/documents")
    bad = admin.post("/console/documents", data={"csrf": csrf(page.text), "user": "dana"},
                     files=[("files", ("docs.zip", b"not a zip"))])
    assert bad.status_code == 422 and "docs.zip: not a readable archive" in text(bad)
    several = admin.post("/console/documents", data={"csrf": csrf(page.text), "user": "dana"},
                         files=[("files", ("a.md", b"# A\n\ntext")), ("files", ("b.md", b"# B\n\ntext"))])
    assert several.status_code == 422 and "collection" in text(several)
    assert memory.get_all("dana").records == []


def test_an_upload_without_the_forms_token_is_refused(admin, memory):
    response = admin.post("/console/documents", data={"csrf": "0" * 32, "user": "dana"},
                          files=[("files", ("plan.md", PLAN.encode()))])
    assert response.status_code == 403 and memory.get_all("dana").records == []


def test_a_documents_page_shows_its_chunks_by_section_with_their_lines(admin, documents):
    page = admin.get("/console/document", params={"user": "ana", "path": "notes/plan.md"})
    shown = text(page)
    assert page.status_code == 200 and "Launch plan" in shown and "markdown" in shown
    budget, team = shown.index("Budget"), shown.index("Team")
    assert budget < team and "The paint budget is 300 euros." in shown[budget:team]
    assert re.search(r"lines \d+–\d+|line \d+", shown)
    missing = admin.get("/console/document", params={"user": "ana", "path": "nope.md"})
    assert missing.status_code == 404 and "no document 'nope.md'" in text(missing)


def test_a_document_is_deleted_from_its_page(admin, documents, memory):
    page = admin.get("/console/document", params={"user": "ana", "path": "notes/plan.md"})
    response = admin.post("/console/documents/delete", data={"csrf": csrf(page.text), "user": "ana",
                                                             "path": "notes/plan.md"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/documents?user=ana&deleted=notes%2Fplan.md"
    assert "Deleted the document notes/plan.md" in text(admin.get(response.headers["location"]))
    assert memory.get_all("ana", filters={"source": "notes/plan.md"}).records == []


def test_search_grouped_by_document_shows_documents_with_their_sections(admin, documents):
    plain = admin.get("/console/search", params={"q": "paint budget", "user": "ana"})
    assert 'name="group"' in plain.text and "Group by document" in text(plain)
    grouped = admin.get("/console/search", params={"q": "paint budget", "user": "ana", "group": "document"})
    shown = text(grouped)
    assert grouped.status_code == 200 and re.search(r"\d+ documents? for ana", shown)
    first = shown.split("#1", 1)[1]
    assert first.index("Launch plan") < first.index("Budget") and "The paint budget is 300 euros." in first
    assert 'name="group" type="checkbox" value="document" checked' in grouped.text
    bad = admin.get("/console/search", params={"q": "paint", "user": "ana", "group": "session"})
    assert bad.status_code == 422 and "group_by" in text(bad)


def test_a_tenant_reaches_only_its_users_documents(client, keys, documents, memory):
    ana = sign_in(client, keys.ana)
    page = ana.get("/console/documents")
    assert page.status_code == 200 and "Launch plan" in text(page) and "Secret" not in text(page)
    assert ana.get("/console/documents", params={"user": "bob"}).status_code == 403
    assert ana.get("/console/document", params={"user": "bob", "path": "secret.md"}).status_code == 403
    token = csrf(page.text)
    upload = ana.post("/console/documents", data={"csrf": token, "user": "bob"},
                      files=[("files", ("plan.md", PLAN.encode()))])
    assert upload.status_code == 403
    delete = ana.post("/console/documents/delete", data={"csrf": token, "user": "bob", "path": "secret.md"})
    assert delete.status_code == 403
    assert ana.get("/console/search", params={"q": "secret", "user": "bob", "group": "document"}).status_code == 403
    assert [r.metadata["source"] for r in memory.get_all("bob", filters={"node_type": "document"}).records] \
        == ["secret.md"]
    own = ana.post("/console/documents", data={"csrf": token}, files=[("files", ("new.md", b"# New\n\ntext"))])
    assert own.status_code == 200 and "new.md" in text(own)
