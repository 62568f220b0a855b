"""Client: the `Memory` API of a memlane server, over HTTP.

    from memlane import Client
    memory = Client("http://localhost:8420", api_key="ml_...")  # was: Memory("memories.db")
    memory.add("I moved to Lisbon last month", user_id="ana")
    hits = memory.search("Where does Ana live?", user_id="ana", explain=True)

The methods have `Memory`'s names, arguments and return types (records, hits with their
explanations, history events, pages, stats, node specs), and raise its errors: the server answers
every error as `{"error": {"type", "message", "field", "fix"}}` and its type picks the exception
(`input` -> InputError with its field and fix, `not_found` -> NotFoundError, `model_mismatch`,
`llm`, `store`, `config`; `unauthorized` and `forbidden` -> AccessError; `rate_limited` ->
RateLimitError with the Retry-After seconds). A server that cannot be reached is a StoreError
naming its URL. The API key is sent as a bearer token and appears in no message or repr.

Differences that come from the server, not the client:
- The server decides by the API key what a call may reach. `admin=True` is accepted for
  signature parity but changes nothing. A call with `user_id=None` acts for the key's only user
  (a tenant key with one user) and is refused (AccessError) for any other key.
- A memory id or node name that travels in a URL path may not contain '/'.
- `add_documents` uploads the files (a folder, or several paths, packed into one .tar.gz in
  memory first) and takes a `collection` name instead of `root`: what one upload syncs. A file
  the server does not read is reported in the report's `skipped`.
- `ingest`, `reset`, `reindex` and the embedder are the embedded store's only.
"""

from __future__ import annotations

import fnmatch
import io
import json
import math
import os
import tarfile
import urllib.parse
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import httpx

from memlane._http import open_client, retry_after, shown_url
from memlane.config import DocumentsConfig, LimitsConfig
from memlane.documents.model import DocumentReport, SkippedFile
from memlane.documents.sources import decode, is_archive
from memlane.errors import (
    AccessError,
    ConfigError,
    InputError,
    LLMError,
    MemlaneError,
    ModelMismatchError,
    NotFoundError,
    RateLimitError,
    StoreError,
    describe,
)
from memlane.filters import LIST_FIELDS, Filter
from memlane.ingest.dates import parse_session_date
from memlane.ingest.formats import check_text
from memlane.memory import Page
from memlane.nodes.spec import NodeSpec, load_specs, parse_spec
from memlane.records import Category, HistoryEvent, Hit, MemoryRecord, Session, Turn
from memlane.store import IndexInfo, StoreStats

T = TypeVar("T")

_MAX_ID_CHARS = 512  # as Memory: user, agent, session and memory ids
_USER_FIX = "pass user_id='alice' (every memory belongs to exactly one user)"

# The server's error types (see memlane.server.app.STATUS) and the library error each one is.
ERROR_TYPES: dict[str, type[MemlaneError]] = {
    "input": InputError,
    "not_found": NotFoundError,
    "model_mismatch": ModelMismatchError,
    "llm": LLMError,
    "store": StoreError,
    "config": ConfigError,
    "unauthorized": AccessError,
    "forbidden": AccessError,
    "rate_limited": RateLimitError,
    "no_route": StoreError,  # the URL reaches a server without this route: not a memlane server, or another version
}


class Client:
    """A memlane server's memories, with the methods of `Memory` (see the module docstring for
    the few differences). `timeout` bounds connecting and each read, in seconds; `transport` is
    an httpx transport to send requests through instead of the network (tests)."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        base = _check_url(url)
        _check_key(api_key)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise InputError(f"timeout must be a positive number of seconds, got {describe(timeout)}",
                             field="timeout", fix="pass timeout=30")
        self.url = shown_url(base)
        self.timeout = float(timeout)
        self._api_key = api_key
        self._http = open_client(api_key=api_key, timeout_s=self.timeout, base_url=base, transport=transport)
        self._closed = False

    # -- writing ---------------------------------------------------------------------------

    def add(
        self,
        messages: str | Sequence[dict[str, Any]] | Session,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        session_date: str | date | datetime | None = None,
        metadata: dict[str, Any] | None = None,
        category: str | Category = Category.EPISODIC,
    ) -> list[MemoryRecord]:
        """Remember a conversation (chat messages, a string, or a Session); see `Memory.add`."""
        if isinstance(messages, Session):
            session_id = session_id or messages.session_id
            session_date = session_date or messages.date
        kind = _category(category)
        body = {
            "messages": _messages(messages),
            "user_id": _id(user_id, "user_id", required=False),
            "agent_id": _id(agent_id, "agent_id", required=False),
            "session_id": _id(session_id, "session_id", required=False),
            "session_date": _when(session_date, "session_date"),
            "metadata": metadata,
        }
        if kind != Category.EPISODIC.value:  # the server's default, left out
            body["category"] = kind
        answer = self._call("POST", "/v1/memories", body=body)
        return self._decode(lambda a: [MemoryRecord.from_dict(r) for r in a["results"]], answer)

    def add_documents(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        user_id: str | None = None,
        category: str | Category = Category.SEMANTIC,
        collection: str | None = None,
    ) -> DocumentReport:
        """Remember files of this machine on the server (see `Memory.add_documents`): a document
        or an archive is uploaded as it is; a folder, or several paths, are packed into one
        .tar.gz in memory first, a folder's files named '<folder>/<path inside>' as Memory names
        them (leaving out the default `documents.ignore` names). One upload is synced as one
        `collection`: uploading it again adds, changes and removes its documents. Default: the
        name of the lone file, archive or folder; several paths must name one."""
        given = [paths] if isinstance(paths, (str, os.PathLike)) else paths
        if not isinstance(given, (list, tuple)) or not given:
            raise InputError(f"paths must be a file, a folder or an archive, or a list of them, got {describe(paths)}",
                             field="paths", fix="pass 'notes/' or ['plan.md', 'faq.md']")
        found = []
        for item in given:
            if not isinstance(item, (str, os.PathLike)):
                raise InputError(f"a path must be a string or a Path, got {describe(item)}", field="paths",
                                 fix="pass 'notes/' or ['plan.md', 'faq.md']")
            path = Path(os.fspath(item)).expanduser()
            if not path.exists():
                raise InputError(f"{item}: no such file or folder", field="paths",
                                 fix="check the path (relative paths are read from the current folder)")
            found.append(path)
        if collection is None and len(found) > 1:
            raise InputError(f"{len(found)} paths are uploaded as one collection, which needs a name",
                             field="collection", fix="pass collection='handbook' (uploading it again syncs it)")
        if len(found) == 1 and found[0].is_file():
            name, data = found[0].name, found[0].read_bytes()
        else:
            name, data = _packed(found)
            collection = collection or _name_of(found[0])
        form = {"user_id": _id(user_id, "user_id", required=False), "category": _category(category),
                "collection": _id(collection, "collection", required=False)}
        answer = self._call("POST", "/v1/documents", form=form, files=[("files", (name, data))])
        return self._decode(_document_report, answer)

    def add_document(
        self,
        path: str,
        content: str | bytes,
        *,
        user_id: str,
        category: str | Category = Category.SEMANTIC,
    ) -> DocumentReport:
        """Remember one document given as its text under `path` (its extension gives the format);
        the same path again replaces it. See `Memory.add_document`."""
        if isinstance(content, (bytes, bytearray)):
            try:
                content = decode(bytes(content))
            except ValueError as exc:
                raise InputError(f"{path}: {exc}", field="content", fix="pass the document's text") from None
        body = {"content": content, "user_id": _id(user_id, "user_id", required=False),
                "category": _category(category)}
        answer = self._call("PUT", f"/v1/documents/{_document_path(path)}", body=body)
        return self._decode(_document_report, answer)

    def delete_document(self, path: str, *, user_id: str) -> int:
        """Forget one document and every chunk of it; returns how many memories were deleted
        (NotFoundError when the user has no such document)."""
        return self._count("DELETE", f"/v1/documents/{_document_path(path)}",
                           params={"user_id": _id(user_id, "user_id", required=False)})

    def update(self, memory_id: str, text: str, *, user_id: str | None = None, admin: bool = False) -> MemoryRecord:
        """Replace a memory's text (re-embedded; the old text stays in its history)."""
        body = {"text": text, "user_id": _id(user_id, "user_id", required=False)}
        answer = self._call("PUT", f"/v1/memories/{_segment(memory_id, 'memory_id')}", body=body)
        return self._decode(MemoryRecord.from_dict, answer)

    def delete(self, memory_id: str, *, user_id: str | None = None, admin: bool = False) -> None:
        """Forget one memory (NotFoundError when the user has none with this id)."""
        self._call("DELETE", f"/v1/memories/{_segment(memory_id, 'memory_id')}",
                   params={"user_id": _id(user_id, "user_id", required=False)})

    def delete_all(self, user_id: str) -> int:
        """Forget every memory of one user; returns how many were deleted."""
        return self._count("DELETE", f"/v1/users/{_segment(user_id, 'user_id')}/memories")

    # -- reading ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 10,
        filters: Filter | dict[str, Any] | None = None,
        now: str | date | datetime | None = None,
        explain: bool = False,
        as_of: str | date | datetime | None = None,
        group_by: str | None = None,
    ) -> list[Hit]:
        """A user's memories relevant to `query`, best first; with `group_by="document"`, documents
        with their chunks that were found as `parts`. See `Memory.search`."""
        wanted = Filter.parse(filters)
        body = {
            "query": query,
            "user_id": _id(user_id, "user_id", required=False),
            "limit": limit,
            "filters": wanted.to_dict() if not wanted.is_empty else None,
            "now": _when(now, "now"),
            "explain": explain,
            "as_of": Filter(as_of=as_of).as_of if as_of is not None else None,
        }
        if group_by is not None:  # left out otherwise, for servers older than documents
            body["group_by"] = group_by
        answer = self._call("POST", "/v1/memories/search", body=body)
        return self._decode(lambda a: [Hit.from_dict(h) for h in a["results"]], answer)

    def get(self, memory_id: str, *, user_id: str | None = None, admin: bool = False) -> MemoryRecord | None:
        """One of the user's memories by id, or None (also when it belongs to another user)."""
        try:
            answer = self._call("GET", f"/v1/memories/{_segment(memory_id, 'memory_id')}",
                                params={"user_id": _id(user_id, "user_id", required=False)})
        except NotFoundError:
            return None
        return self._decode(MemoryRecord.from_dict, answer)

    def get_all(self, user_id: str, limit: int = 100, cursor: str | None = None,
                filters: Filter | dict[str, Any] | None = None) -> Page:
        """One page of a user's memories matching `filters`, oldest first; pass `next_cursor` back."""
        _id(user_id, "user_id", required=False)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise InputError(f"limit must be a whole number, got {describe(limit)}", field="limit",
                             fix="pass limit=100")
        if cursor is not None and not isinstance(cursor, str):
            raise InputError(f"cursor {describe(cursor)} is not a cursor of this store", field="cursor",
                             fix="pass None for the first page, then the next_cursor of the page before")
        query = _listing_filters(Filter.parse(filters))
        if query is None:  # a filter that allows no value of a field: nothing matches
            return Page([], None)
        answer = self._call("GET", "/v1/memories",
                            params={"user_id": user_id, "limit": limit, "cursor": cursor, **query})
        return self._decode(lambda a: Page([MemoryRecord.from_dict(r) for r in a["results"]], a["next_cursor"]),
                            answer)

    def history(self, memory_id: str, *, user_id: str | None = None, admin: bool = False) -> list[HistoryEvent]:
        """Every ADD, UPDATE and DELETE of one of the user's memories, oldest first."""
        answer = self._call("GET", f"/v1/memories/{_segment(memory_id, 'memory_id')}/history",
                            params={"user_id": _id(user_id, "user_id", required=False)})
        return self._decode(lambda a: [HistoryEvent.from_dict(e) for e in a], answer)

    def stats(self) -> StoreStats:
        """Counts across the whole store (an admin key's)."""
        def stats(a: dict[str, Any]) -> StoreStats:
            index = IndexInfo(a["index"]["name"], a["index"]["model"], a["index"]["dims"]) if a["index"] else None
            return StoreStats(memories=a["memories"], users=a["users"], by_node_type=a["by_node_type"],
                              by_category=a["by_category"], index=index, file_bytes=a["store_bytes"])

        return self._decode(stats, self._call("GET", "/v1/stats"))

    # -- memory nodes ----------------------------------------------------------------------

    def nodes(self) -> list[NodeSpec]:
        """The memory nodes the server runs at ingestion (latest version of each)."""
        return [spec for spec, _ in self.node_versions()]

    def node_versions(self) -> list[tuple[NodeSpec, int]]:
        """Each node the server runs with the version of its definition (1 for the first)."""
        answer = self._call("GET", "/v1/nodes")
        return self._decode(lambda a: [(parse_spec(n["spec"], f"server node {n['name']}", stored=True), n["version"])
                                       for n in a], answer)

    def define_node(self, node: NodeSpec | dict | str | Path) -> list[tuple[str, int]]:
        """Add or change memory nodes (an admin key's): a NodeSpec, a dict, or a YAML/JSON file of
        one or more, read here and sent one by one. Returns (name, version) for each."""
        if isinstance(node, NodeSpec):
            definitions = [node.to_data()]
        elif isinstance(node, dict):
            definitions = [node]  # checked by the server, with Memory's messages
        elif isinstance(node, (str, Path)) and str(node).strip():
            path = Path(node).expanduser()
            if not path.is_file():
                raise InputError("no such file", file=str(node), fix="pass a YAML or JSON file of node definitions")
            if path.stat().st_size > LimitsConfig().max_metadata_bytes * 16:
                raise InputError(f"the file is {path.stat().st_size:,} bytes; node definitions are small",
                                 file=str(node), fix="check that this is a node definition file")
            definitions = [spec.to_data() for spec in load_specs(path)]
        else:
            raise InputError(f"a node is a NodeSpec, a dict or a YAML/JSON file, got {describe(node)}",
                             field="node", fix="pass a path such as 'nodes.yaml'")
        out: list[tuple[str, int]] = []
        for definition in definitions:
            answer = self._call("PUT", "/v1/nodes", body=definition)
            out += self._decode(lambda a: [(v["name"], v["version"]) for v in a], answer)
        return out

    def remove_node(self, name: str) -> None:
        """Stop running a node (an admin key's). Its memories stay."""
        self._call("DELETE", f"/v1/nodes/{_segment(name, 'name')}")

    # -- lifecycle: consolidation and retention ----------------------------------------------

    def consolidate(self, user_id: str) -> int:
        """Merge a user's duplicate node memories; returns how many were merged away."""
        return self._count("POST", f"/v1/users/{_segment(user_id, 'user_id')}/consolidate")

    def apply_retention(self, *, now: str | date | datetime | None = None, user_id: str | None = None) -> int:
        """Expire memories older than their category's retention limit; returns how many. Without
        `user_id`: every user's with an admin key, the key's only user's with a tenant key."""
        body = {"user_id": _id(user_id, "user_id", required=False), "now": _when(now, "now")}
        return self._count("POST", "/v1/retention/expire", body=body)

    def expired(self, user_id: str) -> list[MemoryRecord]:
        """A user's expired memories, recoverable with restore() until purge()."""
        answer = self._call("GET", f"/v1/users/{_segment(user_id, 'user_id')}/expired")
        return self._decode(lambda a: [MemoryRecord.from_dict(r) for r in a], answer)

    def restore(self, memory_id: str, *, user_id: str) -> MemoryRecord:
        """Bring an expired memory back into search."""
        path = f"/v1/users/{_segment(user_id, 'user_id')}/expired/{_segment(memory_id, 'memory_id')}/restore"
        return self._decode(MemoryRecord.from_dict, self._call("POST", path))

    def purge(self, user_id: str) -> int:
        """Delete a user's expired memories for good; returns how many."""
        return self._count("DELETE", f"/v1/users/{_segment(user_id, 'user_id')}/expired")

    # -- the connection --------------------------------------------------------------------

    def close(self) -> None:
        """Close the kept connections; later calls raise StoreError."""
        self._closed = True
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = ", api_key='***'" if self._api_key else ""
        return f"Client({self.url!r}{key})"

    def _count(self, method: str, path: str, *, body: dict[str, Any] | None = None,
               params: dict[str, Any] | None = None) -> int:
        return self._decode(lambda a: int(a["count"]), self._call(method, path, body=body, params=params))

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              body: Any = None, form: dict[str, Any] | None = None, files: list[Any] | None = None) -> Any:
        """The decoded JSON answer of one request (None for an empty one); every failure raised as
        the library error it stands for. `form` and `files` send a multipart upload instead of `body`."""
        where = f"memlane server {self.url}"
        if self._closed:
            raise StoreError(f"this Client of {where} is closed. Fix: make a new Client")
        content = _encode(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        upload: dict[str, Any] = {}
        if files is not None:
            upload = {"files": files, "data": {k: v for k, v in (form or {}).items() if v is not None}}
        try:
            response = self._http.request(method, path, params=query, content=content, headers=headers, **upload)
        except httpx.TimeoutException:
            raise StoreError(f"{where} did not answer {method} {path} within {self.timeout:g} s. Fix: pass a "
                             "longer Client(..., timeout=...): an add that runs LLM extraction takes a while") from None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise StoreError(self._scrub(f"cannot reach {where}: {exc}. Fix: check that the server runs "
                                         "(memlane serve) and that the URL is its root")) from None
        except httpx.HTTPError as exc:  # an answer that cannot be decoded (a broken content encoding)
            raise StoreError(self._scrub(f"{where} answered {method} {path} with something unreadable: {exc}")) \
                from None
        if not response.is_success:
            raise self._error(response, f"{method} {path}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise StoreError(f"{where} answered {method} {path} with something that is not JSON: "
                             f"{response.content[:200]!r}") from None

    def _decode(self, convert: Callable[[Any], T], answer: Any) -> T:
        try:
            return convert(answer)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"memlane server {self.url} answered in an unexpected shape ({exc!r}). "
                             "Fix: use a client and a server of the same memlane version") from None

    def _error(self, response: httpx.Response, request: str) -> MemlaneError:
        """The library error an error answer stands for (see `ERROR_TYPES`)."""
        status = response.status_code
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            # Not the server's own answer (a proxy, another service at this URL, a missing route).
            text = response.content.decode("utf-8", errors="replace").strip()[:200] or response.reason_phrase
            message = self._scrub(f"memlane server {self.url} answered {request} with HTTP {status}: {text}")
            if status in (401, 403):
                return AccessError(message)
            if status == 429:
                return RateLimitError(message, _seconds(retry_after(response)))
            return StoreError(message + ". Fix: check that the URL is the root of a memlane server")
        kind = error.get("type")
        message = self._scrub(error["message"])
        field = error.get("field") if isinstance(error.get("field"), str) else None
        fix = self._scrub(error["fix"]) if isinstance(error.get("fix"), str) else None
        cls = ERROR_TYPES.get(kind)
        if cls is InputError:
            return _rebuilt_input_error(message, field, fix)
        if cls is ModelMismatchError:
            return _rebuilt(ModelMismatchError, message, store_model=None, store_dims=None, wanted_model=None,
                            wanted_dims=None)
        if cls is RateLimitError:
            return RateLimitError(message, _seconds(retry_after(response)))
        if cls is not None:
            return cls(message)
        return MemlaneError(f"memlane server {self.url} answered {request} with HTTP {status} ({kind}): {message}")

    def _scrub(self, text: str) -> str:
        """`text` with the API key blanked out, should anything have echoed it."""
        return text.replace(self._api_key, "***") if self._api_key else text


# -- what is sent ------------------------------------------------------------------------------


def _check_url(url: Any) -> str:
    """The server's base URL, without a trailing slash; InputError unless it is http(s)."""
    try:
        parts = urllib.parse.urlsplit(url.strip()) if isinstance(url, str) else None
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        shown = shown_url(url) if isinstance(url, str) else type(url).__name__
        raise InputError(f"the server URL must be an http:// or https:// URL, got {shown!r}", field="url",
                         fix="pass the server's root, such as Client('http://localhost:8420', api_key=...)")
    return url.strip().rstrip("/")


def _check_key(api_key: Any) -> None:
    """An API key fit for a header; the error never shows it."""
    if api_key is None:
        return
    if not isinstance(api_key, str) or not api_key or not api_key.isascii() or not api_key.isprintable() \
            or any(c.isspace() for c in api_key):
        raise InputError(f"the API key must be a non-empty string of printable ASCII without spaces "
                         f"(got a {type(api_key).__name__}; its value is not shown)", field="api_key",
                         fix="pass the key exactly as `memlane keys create` printed it")


def _id(value: Any, field: str, *, required: bool = True) -> str | None:
    """An id argument, checked as Memory checks it: non-empty text of at most 512 characters."""
    if value is None and not required:
        return None
    return check_text(value, field=field, max_chars=_MAX_ID_CHARS, fix=_USER_FIX if field == "user_id" else None)


def _segment(value: Any, field: str) -> str:
    """An id as one segment of a URL path: checked, every character quoted (dots too, so '.' and
    '..' stay ids rather than becoming path steps). A user id may hold '/' (keys reach users by
    prefix, e.g. 'org1/'): the server's user routes take the rest of the path as the id. Other
    ids may not."""
    text = _id(value, field)
    assert text is not None
    if "/" in text and field != "user_id":
        raise InputError(f"{field} '{text[:60]}' contains '/', which a server's URL paths cannot carry", field=field,
                         fix=f"use a {field} without '/' (the embedded Memory takes any)")
    return urllib.parse.quote(text, safe="").replace(".", "%2E")


def _document_path(value: Any) -> str:
    """A document's path as the rest of a URL path: every character quoted ('/' and dots too, so
    that no step of it is read as a step of the URL); the server's document routes take it whole."""
    text = check_text(value, field="path", max_chars=_MAX_ID_CHARS)
    return urllib.parse.quote(text, safe="").replace(".", "%2E")


def _packed(paths: Sequence[Path]) -> tuple[str, bytes]:
    """Files and folders as one .tar.gz (its name, its bytes): a file by its name, a folder's
    files as '<folder>/<path inside>', leaving out the default `documents.ignore` names."""
    ignore = DocumentsConfig().ignore
    buffer = io.BytesIO()

    def kept(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = info.name.split("/")
        if any(fnmatch.fnmatchcase(part, p) for part in parts[1:] for p in ignore):
            return None
        return info if info.isfile() or info.isdir() else None

    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in paths:
            if path.is_file() and is_archive(path) and len(paths) > 1:
                raise InputError(f"{path}: an archive is uploaded alone, not with other paths", field="paths",
                                 fix="add the archive in a call of its own")
            tar.add(path, arcname=_name_of(path), filter=kept)
    name = _name_of(paths[0]) if len(paths) == 1 else "upload"
    return f"{name}.tar.gz", buffer.getvalue()


def _name_of(path: Path) -> str:
    """A path's own name, also for '.' or '..' (the folder they stand for)."""
    return path.name if path.name not in ("", ".", "..") else path.resolve().name or "files"


def _when(value: Any, field: str) -> str | None:
    """A date argument as sent: a string as given (the server parses it), a date or datetime as
    the ISO text of the naive UTC time Memory would take it for."""
    if value is None or isinstance(value, str):
        return value
    return parse_session_date(value, field=field).isoformat()


def _category(value: Any) -> str:
    if not isinstance(value, (str, Category)):
        raise InputError(f"category must be a string, got {describe(value)}", field="category",
                         fix="pass one of: " + ", ".join(c.value for c in Category))
    return Category.parse(value).value


def _messages(messages: Any) -> Any:
    """The messages of an add call as JSON: a string, or a list of message objects (a Session's
    or Turn's fields become their message fields)."""
    if isinstance(messages, str):
        return messages
    if isinstance(messages, Session):
        if messages.metadata:
            raise InputError("a Session's own metadata cannot be sent to a server", field="messages",
                             fix="pass it as add(..., metadata=...)")
        return [_message(turn, f"messages.turns[{i}]") for i, turn in enumerate(messages.turns)]
    if isinstance(messages, (list, tuple)):
        return [_message(item, f"messages[{i}]") for i, item in enumerate(messages)]
    raise InputError(
        f"messages must be a string, a list of chat messages or a Session, got {describe(messages)}",
        field="messages",
        fix="pass [{'role': 'user', 'content': '...'}]"
            + (", decoding bytes first (data.decode('utf-8'))" if isinstance(messages, (bytes, bytearray)) else ""))


def _message(item: Any, where: str) -> Any:
    if not isinstance(item, Turn):
        return item  # a message dict (or anything else, which the server refuses)
    if item.caption is not None or item.turn_id is not None:
        raise InputError("a Turn's caption and turn_id have no chat message field to travel in", record=where,
                         fix="put them in the text or the metadata, or use the embedded Memory")
    message: dict[str, Any] = {"role": item.role, "content": item.text, "name": item.speaker}
    if item.timestamp is not None:
        message["timestamp"] = item.timestamp
    if item.metadata:
        message["metadata"] = item.metadata
    return message


def _listing_filters(wanted: Filter) -> dict[str, Any] | None:
    """A get_all filter as the listing route's query parameters (a list field repeats its
    parameter); None when it matches nothing."""
    query: dict[str, Any] = {}
    for name in wanted.restricted:
        value = getattr(wanted, name)
        if name in LIST_FIELDS:
            if not value:
                return None
            value = list(value)
        query[name] = value
    return query


def _encode(body: Any) -> bytes:
    """A request body as JSON; InputError naming the argument that JSON cannot hold."""
    try:
        return json.dumps(body, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        culprit = None
        if isinstance(body, dict):
            for key, value in body.items():
                try:
                    json.dumps(value, allow_nan=False)
                except (TypeError, ValueError):
                    culprit = key
                    break
        raise InputError(f"cannot be sent as JSON: {exc}", field=culprit,
                         fix="pass only strings, numbers, booleans, None, lists and dicts") from None


# -- what is answered ----------------------------------------------------------------------------


def _document_report(answer: dict[str, Any]) -> DocumentReport:
    return DocumentReport(
        documents=answer["documents"], chunks=answer["chunks"], added=answer["added"], changed=answer["changed"],
        unchanged=answer["unchanged"], removed=answer["removed"], embedded=answer["embedded"],
        skipped=[SkippedFile(s["root"], s["path"], s["reason"]) for s in answer["skipped"]],
        seconds=answer["seconds"], embed_seconds=answer["embed_seconds"])


def _seconds(retry: float | None) -> float:
    """Retry-After as RateLimitError holds it: 1 s when the server named no time."""
    return 1.0 if retry is None else retry


def _rebuilt(cls: type[MemlaneError], message: str, **attributes: Any) -> MemlaneError:
    """An error of `cls` whose message is `message` exactly (its own constructor would rebuild it)."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    for name, value in attributes.items():
        setattr(error, name, value)
    return error


def _rebuilt_input_error(message: str, field: str | None, fix: str | None) -> MemlaneError:
    """The server's InputError: its message, field and fix as the server gave them (with the fix
    added to the message when the server left it out)."""
    problem = message
    if field and problem.startswith(f"field '{field}': "):
        problem = problem[len(f"field '{field}': "):]
    if fix:
        if problem.endswith(f". Fix: {fix}"):
            problem = problem[: -len(f". Fix: {fix}")]
        if f"Fix: {fix}" not in message:
            message += f". Fix: {fix}"
    return _rebuilt(InputError, message, problem=problem, file=None, record=None, field=field, fix=fix)
