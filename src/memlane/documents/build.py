"""A file as the memories it becomes: decoded, parsed, chunked, each chunk with the text that is
embedded and indexed and that text's hash (what sync compares), and the document-level text."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from memlane.documents.chunk import chunk_document, document_text, embed_text
from memlane.documents.model import Chunk, ParsedDocument, SkippedFile, SourceFile
from memlane.documents.parse import parse_document
from memlane.documents.sources import decode
from memlane.errors import InputError
from memlane.records import DOCUMENT_SESSION, NodeType

DOCUMENT = NodeType.DOCUMENT.value
CHUNK = NodeType.CHUNK.value


@dataclass(frozen=True)
class BuiltDocument:
    """One file, ready to sync: its chunks with their embedding texts and hashes."""

    root: str
    parsed: ParsedDocument
    chunks: tuple[Chunk, ...]
    texts: tuple[str, ...]  # embedded and indexed, one per chunk
    hashes: tuple[str, ...]  # of each text: an unchanged chunk keeps its vector
    summary: str  # the document-level memory's text
    file_hash: str

    @property
    def path(self) -> str:
        return self.parsed.path

    @property
    def session_id(self) -> str:
        return session_of(self.parsed.path)


def session_of(path: str) -> str:
    return DOCUMENT_SESSION + path


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def build_document(file: SourceFile, chunk_chars: int) -> BuiltDocument | SkippedFile:
    """The file's document, or why it is skipped (not text, empty, nothing to remember in it)."""
    try:
        text = decode(file.data)
    except ValueError as exc:
        return SkippedFile(file.root, file.path, str(exc))
    try:
        parsed = parse_document(file.path, text)
    except InputError as exc:
        return SkippedFile(file.root, file.path, exc.problem)
    chunks = tuple(chunk_document(parsed, max_chars=chunk_chars))
    if not chunks:
        return SkippedFile(file.root, file.path, "no text to remember in it")
    texts = tuple(embed_text(parsed, c) for c in chunks)
    return BuiltDocument(root=file.root, parsed=parsed, chunks=chunks, texts=texts,
                         hashes=tuple(content_hash(t) for t in texts), summary=document_text(parsed),
                         file_hash=hashlib.sha256(file.data).hexdigest()[:32])
