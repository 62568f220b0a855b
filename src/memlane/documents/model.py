"""What document memory passes between its steps: files read from folders and archives, the
documents parsed from them (title, header fields, blocks under their headings), and the chunks
that become memories. Plain frozen data; the steps are functions in sibling modules."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceFile:
    """One file to remember. `root` is what the caller named (a folder, an archive or a file,
    as an absolute path); `path` is the document's identity: its path inside the folder or
    archive, led by the folder's own name for a folder ("peps/pep-0008.rst"), or the file's name
    for a lone file. Adding the same root again syncs the documents under it."""

    root: str
    path: str
    data: bytes


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not remembered, and why (binary, undecodable, empty, too large, unknown format)."""

    root: str
    path: str
    reason: str


@dataclass(frozen=True)
class Block:
    """A paragraph-sized piece of a document in reading order, under its headings (outermost
    first). Lines are 1-based and inclusive, in the file as it was read."""

    heading_path: tuple[str, ...]
    text: str
    first_line: int
    last_line: int
    kind: str = "text"  # "text", "code", "list" or "table": code and tables are never split inside a line


@dataclass(frozen=True)
class ParsedDocument:
    """A document as its structure gives it: title, header fields (a PEP's `Field: value` lines,
    Markdown front matter, HTML meta), its date as an ISO day when a field gives one, and its blocks."""

    path: str
    format: str  # "markdown", "rst", "text" or "html"
    title: str
    fields: dict[str, str] = field(default_factory=dict)
    date: str | None = None
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """What one memory holds: consecutive blocks of one section, at most the embedding model's
    window long, never cut inside a sentence. `position` is its order in the document (0-based)."""

    heading_path: tuple[str, ...]
    text: str
    first_line: int
    last_line: int
    position: int


@dataclass
class DocumentReport:
    """What an add_documents call did. `added`, `changed`, `unchanged` and `removed` count
    memories (chunks and document-level memories); `embedded` counts model calls' texts."""

    documents: int = 0
    chunks: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0
