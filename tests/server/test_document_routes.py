"""The document routes: uploads of files and archives synced as collections, one document put as
text, listing, deleting, and search grouped by document, each bound to the key's users."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
from _server_support import bearer
from fastapi.testclient import TestClient

from memlane.server.app import create_app

PLAN = (b"# Launch plan\n\nWe launch in May.\n\n## Budget\n\nThe paint budget is 300 euros.\n\n"
        b"## Team\n\nAna and Bob paint the fence.\n")
FAQ = b"# FAQ\n\n## Returns\n\nReturns are accepted within 30 days with the receipt.\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(client: TestClient, token: str, files: list[tuple[str, bytes]], **form: str):
    return client.post("/v1/documents", data=form, files=[("files", (name, data)) for name, data in files],
                       headers=bearer(token))


def sources(client: TestClient, token: str, user: str | None = None) -> list[str]:
    params = {"user_id": user} if user else {}
    response = client.get("/v1/documents", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return sorted(r["metadata"]["source"] for r in response.json()["results"])


# -- uploads ----------------------------------------------------------------------------------------


def test_uploaded_files_are_remembered_and_a_non_document_is_skipped(client, keys, memory):
    response = upload(client, keys.admin, [("plan.md", PLAN), ("faq.md", FAQ), ("logo.png", PNG)],
                      user_id="ana", collection="handbook")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["documents"] == 2 and report["chunks"] >= 3 and report["added"] == report["chunks"] + 2
    assert report["skipped"] == [{"root": "upload:handbook", "path": "logo.png",
                                  "reason": "not a document format memlane reads (.png)"}]
    assert sources(client, keys.admin, "ana") == ["faq.md", "plan.md"]
    [plan] = memory.get_all("ana", filters={"source": "plan.md", "node_type": "document"}).records
    assert plan.metadata["title"] == "Launch plan" and plan.category.value == "semantic"


def test_uploading_a_collection_again_syncs_it(client, keys):
    upload(client, keys.admin, [("plan.md", PLAN), ("faq.md", FAQ)], user_id="ana", collection="handbook")
    changed = PLAN.replace(b"300 euros", b"450 euros")
    again = upload(client, keys.admin, [("plan.md", changed)], user_id="ana", collection="handbook").json()
    assert again["removed"] >= 2 and again["embedded"] >= 1 and again["unchanged"] >= 1
    assert sources(client, keys.admin, "ana") == ["plan.md"]
    same = upload(client, keys.admin, [("plan.md", changed)], user_id="ana", collection="handbook").json()
    assert same["added"] == same["changed"] == same["removed"] == same["embedded"] == 0


def test_one_file_is_its_own_collection_and_an_archive_keeps_its_folders(client, keys):
    assert upload(client, keys.admin, [("plan.md", PLAN)], user_id="ana").status_code == 200
    archive = tar_gz({"docs/faq.md": FAQ, "docs/guide/plan.md": PLAN, "docs/logo.png": PNG, "docs/.git/HEAD": b"x"})
    report = upload(client, keys.admin, [("docs.tar.gz", archive)], user_id="ana", category="procedural").json()
    assert report["documents"] == 2 and [s["path"] for s in report["skipped"]] == ["docs/logo.png"]
    assert report["skipped"][0]["root"] == "upload:docs.tar.gz"
    assert sources(client, keys.admin, "ana") == ["docs/faq.md", "docs/guide/plan.md", "plan.md"]
    listed = client.get("/v1/documents", params={"user_id": "ana"}, headers=bearer(keys.admin)).json()["results"]
    assert {r["metadata"]["source"]: r["category"] for r in listed}["docs/faq.md"] == "procedural"
    assert all(r["node_type"] == "document" for r in listed)
    zip_report = upload(client, keys.admin, [("more.zip", zipped({"more/faq2.md": FAQ}))], user_id="bob").json()
    assert zip_report["documents"] == 1 and sources(client, keys.admin, "bob") == ["more/faq2.md"]


def test_a_bad_archive_is_refused_with_the_librarys_message(client, keys):
    response = upload(client, keys.admin, [("docs.tar.gz", b"this is not an archive")], user_id="ana")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "input" and error["field"] == "files"
    assert error["message"].startswith("field 'files': docs.tar.gz: not a readable archive")
    assert "memlane-upload-" not in error["message"]  # the server's temporary folder is not shown
    assert sources(client, keys.admin, "ana") == []


@pytest.mark.parametrize("sent, stored", [("../../etc/plan.md", "plan.md"), ("C:\\Users\\ana\\plan.md", "plan.md"),
                                          ("notes/./plan.md", "plan.md")])
def test_upload_names_lose_the_clients_folders(client, keys, sent, stored):
    response = upload(client, keys.admin, [(sent, PLAN)], user_id="ana")
    assert response.status_code == 200, response.text
    assert sources(client, keys.admin, "ana") == [stored]


@pytest.mark.parametrize("files, form, field, says", [
    ([("a.md", PLAN), ("b.md", FAQ)], {}, "collection", "without naming their collection"),
    ([("a.md", PLAN), ("x/a.md", FAQ)], {"collection": "c"}, "files", "both named 'a.md'"),
    ([("..", PLAN)], {}, "files", "cannot name a document"),
    ([("plan.md", PLAN)], {"category": "episodic"}, "category", "semantic"),
])
def test_uploads_that_are_refused_say_why(client, keys, files, form, field, says):
    response = upload(client, keys.admin, files, user_id="ana", **form)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field and says in response.json()["error"]["message"]


def test_an_upload_past_the_body_limit_is_413(memory, ring, records, keys):
    memory.config.limits.max_request_bytes = 4096
    client = TestClient(create_app(memory, ring.authenticate, records=records))
    response = upload(client, keys.admin, [("big.md", b"# Big\n\n" + b"word " * 2000)], user_id="ana")
    assert response.status_code == 413 and response.json()["error"]["type"] == "input"


# -- one document as text -----------------------------------------------------------------------------


def test_a_document_put_as_text_is_replaced_by_the_same_path(client, keys, memory):
    first = client.put("/v1/documents/notes/plan.md", json={"content": PLAN.decode(), "user_id": "ana"},
                       headers=bearer(keys.admin))
    assert first.status_code == 200 and first.json()["documents"] == 1 and first.json()["skipped"] == []
    body = {"content": PLAN.decode().replace("May", "June"), "user_id": "ana", "category": "procedural"}
    second = client.put("/v1/documents/notes/plan.md", json=body, headers=bearer(keys.admin)).json()
    assert second["documents"] == 1 and second["embedded"] == 1 and second["changed"] >= 1
    [doc] = memory.get_all("ana", filters={"source": "notes/plan.md", "node_type": "document"}).records
    assert doc.category.value == "procedural" and sources(client, keys.admin, "ana") == ["notes/plan.md"]


def test_a_put_document_the_library_cannot_read_is_422(client, keys):
    response = client.put("/v1/documents/notes/plan.docx", json={"content": "hello", "user_id": "ana"},
                          headers=bearer(keys.admin))
    assert response.status_code == 422 and response.json()["error"]["field"] == "content"
    assert response.json()["error"]["message"].startswith("field 'content': notes/plan.docx: ")
    unknown = client.put("/v1/documents/a.md", json={"content": "x", "user_id": "ana", "title": "no"},
                         headers=bearer(keys.admin))
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "title"


# -- listing and deleting -------------------------------------------------------------------------------


def test_documents_are_listed_page_by_page(client, keys):
    for name in ("a.md", "b.md", "c.md"):
        client.put(f"/v1/documents/{name}", json={"content": f"# {name}\n\nText of {name}.", "user_id": "ana"},
                   headers=bearer(keys.admin))
    first = client.get("/v1/documents", params={"user_id": "ana", "limit": 2}, headers=bearer(keys.admin)).json()
    rest = client.get("/v1/documents", params={"user_id": "ana", "cursor": first["next_cursor"]},
                      headers=bearer(keys.admin)).json()
    assert [r["metadata"]["source"] for r in first["results"] + rest["results"]] == ["a.md", "b.md", "c.md"]
    assert rest["next_cursor"] is None


def test_deleting_a_document_forgets_it_and_its_chunks(client, keys, memory):
    client.put("/v1/documents/notes/plan.md", json={"content": PLAN.decode(), "user_id": "ana"},
               headers=bearer(keys.admin))
    client.put("/v1/documents/faq.md", json={"content": FAQ.decode(), "user_id": "ana"}, headers=bearer(keys.admin))
    ids = [r.id for r in memory.get_all("ana", filters={"source": "notes/plan.md"}).records]
    response = client.delete("/v1/documents/notes/plan.md", params={"user_id": "ana"}, headers=bearer(keys.admin))
    assert response.status_code == 200 and response.json() == {"count": len(ids)} and len(ids) >= 3
    assert sources(client, keys.admin, "ana") == ["faq.md"]
    assert all(memory.history(i, user_id="ana")[-1].event == "DELETE" for i in ids)
    again = client.delete("/v1/documents/notes/plan.md", params={"user_id": "ana"}, headers=bearer(keys.admin))
    assert again.status_code == 404 and again.json()["error"]["type"] == "not_found"


# -- search grouped by document ----------------------------------------------------------------------


def test_search_grouped_by_document_gives_documents_with_their_sections(client, keys):
    upload(client, keys.admin, [("plan.md", PLAN), ("faq.md", FAQ)], user_id="ana", collection="handbook")
    client.post("/v1/memories", json={"messages": "I like painting fences.", "user_id": "ana"},
                headers=bearer(keys.admin))
    body = {"query": "paint budget euros", "user_id": "ana", "group_by": "document", "explain": True}
    results = client.post("/v1/memories/search", json=body, headers=bearer(keys.admin)).json()["results"]
    assert results and all(r["memory"]["node_type"] == "document" for r in results)
    top = results[0]
    assert top["memory"]["metadata"]["source"] == "plan.md" and top["parts"]
    part = top["parts"][0]
    assert part["memory"]["node_type"] == "chunk" and part["explanation"] is not None
    assert {"source", "section", "lines", "title"} <= set(part["memory"]["metadata"])
    only = client.post("/v1/memories/search", json={**body, "filters": {"source": ["faq.md"]}},
                       headers=bearer(keys.admin)).json()["results"]
    assert [r["memory"]["metadata"]["source"] for r in only] == ["faq.md"]
    plain = client.post("/v1/memories/search", json={"query": "paint", "user_id": "ana"},
                        headers=bearer(keys.admin)).json()["results"]
    assert all(r["parts"] == [] for r in plain)
    bad = client.post("/v1/memories/search", json={**body, "group_by": "session"}, headers=bearer(keys.admin))
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "group_by"


# -- tenants ----------------------------------------------------------------------------------------


def test_a_tenant_key_reaches_only_its_users_documents(client, keys, memory):
    memory.add_document("secret.md", "# Secret\n\nBob's secret plan.", user_id="bob")
    assert upload(client, keys.ana, [("plan.md", PLAN)]).status_code == 200  # its one user, left out
    assert sources(client, keys.ana) == ["plan.md"]
    refused = [
        upload(client, keys.ana, [("plan.md", PLAN)], user_id="bob"),
        client.put("/v1/documents/x.md", json={"content": "# X\n\ntext", "user_id": "bob"}, headers=bearer(keys.ana)),
        client.get("/v1/documents", params={"user_id": "bob"}, headers=bearer(keys.ana)),
        client.delete("/v1/documents/secret.md", params={"user_id": "bob"}, headers=bearer(keys.ana)),
        client.post("/v1/memories/search", json={"query": "secret", "user_id": "bob", "group_by": "document"},
                    headers=bearer(keys.ana)),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert all(r.json()["error"]["type"] == "forbidden" for r in refused)
    assert client.delete("/v1/documents/secret.md", headers=bearer(keys.ana)).status_code == 404  # not ana's
    assert [r.metadata["source"] for r in memory.get_all("bob", filters={"node_type": "document"}).records] \
        == ["secret.md"]
    assert upload(client, keys.pair, [("plan.md", PLAN)]).status_code == 403  # two users: name one
    assert upload(client, keys.org, [("plan.md", PLAN)], user_id="org1/zoe").status_code == 200


def test_the_document_routes_are_in_the_openapi_document(client):
    schema = client.get("/openapi.json").json()
    operations = {op["operationId"]: (path, method, op) for path, methods in schema["paths"].items()
                  for method, op in methods.items()}
    for name, method in (("add_documents", "post"), ("list_documents", "get"), ("put_document", "put"),
                         ("delete_document", "delete")):
        path, found, op = operations[name]
        assert path.startswith("/v1/documents") and found == method and op["tags"] == ["documents"]
    assert "multipart/form-data" in operations["add_documents"][2]["requestBody"]["content"]
    assert schema["components"]["schemas"]["SearchRequest"]["properties"]["group_by"]
    parts = schema["components"]["schemas"]["HitOut"]["properties"]["parts"]
    assert parts["items"] == {"$ref": "#/components/schemas/HitOut"}
