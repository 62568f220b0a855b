"""Split a parsed document into chunks (what each memory holds) and say what gets embedded.

Pure functions. A chunk packs consecutive blocks of one section up to `max_chars`; a block longer
than that is cut where a reader would pause: between sentences for prose, between lines for code
and tables, between items (then sentences) for lists. Only a sentence longer than `max_chars` is
cut inside, at its last space before the limit; only a longer token, at the limit."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from memlane.documents.model import Block, Chunk, ParsedDocument
from memlane.documents.parse import DATE_FIELDS, iso_day
from memlane.errors import InputError

# A section with less text than this (a heading over one short sentence, say) is carried into
# the chunk of the subsection that follows it, when one does and both fit: its text introduces
# that subsection, and its heading stays in the merged chunk's heading path. A tiny section
# followed by a sibling or by a section elsewhere is a chunk of its own, so no heading is lost.
TINY_SECTION_CHARS = 120

_SEPARATOR = "\n\n"  # between the blocks of a chunk

# Words after which a period does not end a sentence (compared in lower case).
_ABBREVIATIONS = frozenset({
    "e.g.", "i.e.", "etc.", "vs.", "cf.", "viz.", "al.", "approx.", "ca.", "resp.", "esp.",
    "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "jr.", "sr.", "no.", "nos.", "fig.", "figs.",
    "vol.", "p.", "pp.", "ch.", "sec.", "inc.", "ltd.", "co.", "corp.", "dept.", "est.", "jan.",
    "feb.", "mar.", "apr.", "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.",
})
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]\u2019\u201d]*\s+")
_SENTENCE_OPENERS = frozenset("\"'([`*\u2018\u201c")

# Fields that say who and where rather than what: left out of a document's summary line.
_PEOPLE_AND_LINK_FIELDS = frozenset({
    "title", "pep", "author", "authors", "post-history", "resolution", "discussions-to", "sponsor",
    "bdfl-delegate", "pep-delegate", "delegate", "content-type", "editor", "editors", "version",
    "last-modified", "reviewer", "reviewers",
})
_LONG_FIELD_CHARS = 60


class _Piece(NamedTuple):
    text: str
    first: int
    last: int


def chunk_document(document: ParsedDocument, max_chars: int = 1000) -> list[Chunk]:
    """The document's chunks in reading order: consecutive blocks of one heading path joined by
    a blank line, each chunk at most `max_chars` characters long (see the module docstring for
    where long blocks are cut and TINY_SECTION_CHARS for the one merge across sections)."""
    if max_chars < 1:
        raise InputError(f"max_chars must be at least 1, got {max_chars}", field="max_chars",
                         fix="give the largest chunk, in characters, that the embedding model reads well (e.g. 1000)")
    groups: list[tuple[tuple[str, ...], list[_Piece]]] = []
    carried: tuple[tuple[str, ...], list[_Piece]] | None = None
    for path, blocks in _sections(document.blocks):
        pieces = [piece for block in blocks for piece in _split_block(block, max_chars)]
        own_chars = sum(len(piece.text) for piece in pieces)
        if carried:
            carried_path, carried_pieces = carried
            opens_subsection = len(path) > len(carried_path) and path[:len(carried_path)] == carried_path
            if opens_subsection and _joined_length(carried_pieces + pieces[:1]) <= max_chars:
                pieces = carried_pieces + pieces
            else:
                groups += [(carried_path, group) for group in _pack(carried_pieces, max_chars)]
            carried = None
        if own_chars < TINY_SECTION_CHARS:
            carried = (path, pieces)
            continue
        groups += [(path, group) for group in _pack(pieces, max_chars)]
    if carried:
        groups += [(carried[0], group) for group in _pack(carried[1], max_chars)]
    return [Chunk(heading_path=path, text=_SEPARATOR.join(piece.text for piece in group),
                  first_line=min(piece.first for piece in group), last_line=max(piece.last for piece in group),
                  position=position)
            for position, (path, group) in enumerate(groups)]


def embed_text(document: ParsedDocument, chunk: Chunk) -> str:
    """What is embedded and indexed for a chunk: the title and heading path on one line
    ("PEP 8: Style Guide for Python Code > Naming Conventions"), then the chunk's text."""
    return " > ".join([title_line(document), *chunk.heading_path]) + "\n" + chunk.text


def document_text(document: ParsedDocument, max_chars: int = 1000) -> str:
    """A short text for the document as a whole: its title line, its useful header fields on one
    line ("Status: Active. Type: Process. Created: 2001-07-05."), then the start of its first
    paragraph (the abstract, usually), cut between sentences to keep the whole within `max_chars`."""
    lines = [title_line(document)]
    fields = _summary_fields(document.fields)
    if fields:
        lines.append(fields)
    first_text = next((block.text for block in document.blocks if block.kind == "text"), None)
    room = max_chars - sum(len(line) + 1 for line in lines)
    if first_text and room > 0:
        start, end = _spans(first_text, room, _TEXT_CUTS)[0]
        lines.append(first_text[start:end].strip())
    return "\n".join(lines)


def title_line(document: ParsedDocument) -> str:
    """The document's title, led by its PEP number when it has one ("PEP 8: Style Guide ...")."""
    number = document.fields.get("PEP", "").strip()
    if not number:
        return document.title
    return f"PEP {int(number) if number.isdigit() else number}: {document.title}"


def sentence_starts(text: str) -> list[int]:
    """Offsets where a new sentence starts in `text`: after `.`, `!` or `?` (and closing quotes or
    brackets), whitespace, then an uppercase letter, a digit, an opening quote or bracket; not
    after an abbreviation ("e.g.", "etc.", "Mr.") or an initial ("J. Smith")."""
    starts = []
    for match in _SENTENCE_END.finditer(text):
        after = match.end()
        if after >= len(text):
            break
        opener = text[after]
        if not (opener.isupper() or opener.isdigit() or opener in _SENTENCE_OPENERS):
            continue
        word = text[max(0, match.start() - 12):match.start() + 1].split()
        word = word[-1].lstrip("\"'([").lower() if word else ""
        if word in _ABBREVIATIONS or (len(word) == 2 and word[0].isalpha() and text[match.start()] == "."):
            continue
        starts.append(after)
    return starts


# --- cutting a block ----------------------------------------------------------------------------

def _sections(blocks: tuple[Block, ...]) -> Iterator[tuple[tuple[str, ...], list[Block]]]:
    """Runs of consecutive blocks under the same heading path."""
    run: list[Block] = []
    for block in blocks:
        if run and block.heading_path != run[0].heading_path:
            yield run[0].heading_path, run
            run = []
        run.append(block)
    if run:
        yield run[0].heading_path, run


def _line_starts(text: str) -> list[int]:
    return [match.end() for match in re.finditer("\n", text)]


# Where a piece of a block may end, finest last. A level gives the sorted offsets where a cut may fall.
_CutLevel = Callable[[str], list[int]]
_TEXT_CUTS: tuple[_CutLevel, ...] = (sentence_starts,)
_LIST_CUTS: tuple[_CutLevel, ...] = (_line_starts, sentence_starts)
_LINE_CUTS: tuple[_CutLevel, ...] = (_line_starts,)
_CUTS_BY_KIND = {"code": _LINE_CUTS, "table": _LINE_CUTS, "list": _LIST_CUTS}


def _spans(text: str, max_chars: int, levels: tuple[_CutLevel, ...],
           keep_indent: bool = False) -> list[tuple[int, int]]:
    """(start, end) of pieces of `text`, each at most `max_chars` long once stripped. Each piece
    ends at the furthest cut of the coarsest level that has one in reach; failing all levels, at
    the last whitespace before the limit; failing that (one long token), at the limit. With
    `keep_indent`, a piece that starts a line keeps the line's indentation (code)."""
    cuts = [level(text) for level in levels]
    spans = []
    text_end = len(text.rstrip())
    start = _skip_space(text, 0)
    if keep_indent:
        start = text.rfind("\n", 0, start) + 1
    while start < text_end:
        content = _skip_space(text, start)
        # Keep the line's indentation when the piece still fits with it; drop it rather than cut a token.
        end = None
        for first in dict.fromkeys((start, content)):
            if text_end - first <= max_chars:
                break
            limit = first + max_chars
            end = next((found for found in (_last_cut(offsets, content, limit) for offsets in cuts) if found), None)
            if end is None:
                space = max(text.rfind(" ", content + 1, limit + 1), text.rfind("\n", content + 1, limit + 1),
                            text.rfind("\t", content + 1, limit + 1))
                end = space if space > content else None
            if end is not None:
                break
        else:
            first, end = content, content + max_chars  # one token longer than a piece: cut at the limit
        if end is None:  # the rest fits
            spans.append((first, len(text)))
            break
        start = first
        spans.append((start, end))
        start = _skip_space(text, end)
        if keep_indent and text[end - 1] == "\n":
            start = text.rfind("\n", end - 1, start) + 1  # back to the start of its line
    return spans


def _last_cut(offsets: list[int], start: int, limit: int) -> int | None:
    """The largest offset in (start, limit], or None."""
    at = bisect.bisect_right(offsets, limit)
    return offsets[at - 1] if at and offsets[at - 1] > start else None


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _split_block(block: Block, max_chars: int) -> list[_Piece]:
    """The block as pieces of at most `max_chars`, each with the lines it covers. Code and tables
    keep their indentation. When the block's text has one line per source line, a piece's lines
    are counted; when its lines were joined (a reflowed paragraph), they are estimated by offset."""
    text = block.text.strip("\n") if block.kind in ("code", "table") else block.text.strip()
    if not text:
        return []
    if len(text) <= max_chars:
        return [_Piece(text, block.first_line, block.last_line)]
    span_lines = block.last_line - block.first_line
    counted = text.count("\n") == span_lines
    pieces = []
    newlines_before, counted_to = 0, 0
    keep_indent = block.kind in ("code", "table")
    for start, end in _spans(text, max_chars, _CUTS_BY_KIND.get(block.kind, _TEXT_CUTS), keep_indent):
        piece = text[start:end].rstrip()
        if not keep_indent:
            piece = piece.lstrip()
        if not piece:
            continue
        stop = start + len(text[start:end].rstrip())
        if counted:
            newlines_before += text.count("\n", counted_to, start)
            first = block.first_line + newlines_before
            last = first + text.count("\n", start, stop)
            counted_to = start
        else:
            first = block.first_line + span_lines * start // len(text)
            last = block.first_line + span_lines * max(start, stop - 1) // len(text)
        pieces.append(_Piece(piece, first, last))
    return pieces


def _joined_length(pieces: list[_Piece]) -> int:
    return sum(len(piece.text) for piece in pieces) + len(_SEPARATOR) * max(0, len(pieces) - 1)


def _pack(pieces: list[_Piece], max_chars: int) -> list[list[_Piece]]:
    """Consecutive pieces grouped greedily, each group's joined text at most `max_chars`."""
    groups: list[list[_Piece]] = []
    current: list[_Piece] = []
    size = 0
    for piece in pieces:
        added = len(piece.text) + (len(_SEPARATOR) if current else 0)
        if current and size + added > max_chars:
            groups.append(current)
            current, size, added = [], 0, len(piece.text)
        current.append(piece)
        size += added
    if current:
        groups.append(current)
    return groups


# --- the document's own memory ------------------------------------------------------------------

def _summary_fields(fields: dict[str, str]) -> str:
    """The header fields worth a line: not people, links or anything long; dates as ISO days."""
    parts = []
    for name, value in fields.items():
        value = " ".join(value.split())
        if (name.lower() in _PEOPLE_AND_LINK_FIELDS or not value or len(value) > _LONG_FIELD_CHARS
                or "@" in value or "://" in value):
            continue
        if name.lower() in DATE_FIELDS:
            value = iso_day(value) or value
        parts.append(f"{name}: {value}" + ("" if value.endswith(".") else "."))
    return " ".join(parts)
