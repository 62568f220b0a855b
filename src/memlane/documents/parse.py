"""Turn a document's text into a ParsedDocument: its title, header fields, date and blocks under
their headings. Markdown, reStructuredText (PEPs above all), plain text and HTML.

Pure functions over strings: no I/O, no dependency beyond the standard library. Each format is a
line scanner that emits events (a heading, or a block with its line range); `_assemble` turns the
events into blocks with heading paths, the same way for every format. Every regular expression
here is anchored or bounded by characters it cannot repeat, so a pathological line (a megabyte of
one character) costs linear time."""

from __future__ import annotations

import datetime
import re
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import PurePosixPath
from typing import NamedTuple

from memlane.documents.model import Block, ParsedDocument
from memlane.errors import InputError

FORMATS: dict[str, str] = {
    ".md": "markdown", ".markdown": "markdown", ".mdown": "markdown",
    ".rst": "rst", ".rest": "rst",
    ".txt": "text", ".text": "text", "": "text",
    ".html": "html", ".htm": "html",
}

# Header fields that may give a document its date, in order of preference (looked up case-insensitively).
DATE_FIELDS = ("created", "date", "published")


def format_of(path: str) -> str | None:
    """The format a file's extension says it holds ("markdown", "rst", "text", "html"), or None."""
    return FORMATS.get(PurePosixPath(path.replace("\\", "/")).suffix.lower())


def parse_document(path: str, text: str) -> ParsedDocument:
    """Parse `text`, the content of the file at `path`, by the format its extension names."""
    fmt = format_of(path)
    if fmt is None:
        known = ", ".join(sorted(ext or "(no extension)" for ext in FORMATS))
        raise InputError(f"unsupported file extension '{PurePosixPath(path).suffix}'", file=path,
                         fix=f"give a file with one of these extensions: {known}")
    lines = _split_lines(text)
    stem = PurePosixPath(path.replace("\\", "/")).stem or path
    if fmt == "markdown":
        return _parse_markdown(path, lines, stem)
    if fmt == "html":
        return _parse_html(path, text, stem)
    fields, body_start = _read_header(lines)
    if fmt == "rst" or fields:  # a .txt file with a PEP-style header is an old-style PEP: reST
        return _parse_rst(path, lines, stem, fields, body_start)
    return _parse_text(path, lines, stem)


def iso_day(value: str) -> str | None:
    """The ISO day (YYYY-MM-DD) that `value` starts with: "2001-07-05", "05-Jul-2001", "5 July 2001",
    "July 5, 2001" (a time after an ISO day is ignored); None when it names no valid day."""
    value = value.strip()
    match = _ISO_DAY.match(value)
    if match:
        return _day(match[1], match[2], match[3])
    match = _DAY_MONTH_YEAR.match(value)
    if match:
        return _day(match[3], _month(match[2]), match[1])
    match = _MONTH_DAY_YEAR.match(value)
    if match:
        return _day(match[3], _month(match[1]), match[2])
    return None


# --- shared: lines, header, dates, assembling events into blocks ---------------------------------

class _Heading(NamedTuple):
    level: int
    title: str
    line: int


class _Raw(NamedTuple):
    kind: str
    text: str
    first: int
    last: int


def _split_lines(text: str) -> list[str]:
    """Lines as the file numbers them, right-stripped, tabs expanded (so indentation compares)."""
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(line.expandtabs() if "\t" in line else line).replace("\f", "").rstrip() for line in lines]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


_FIELD_LINE = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):(?:[ \t]+(.*))?$")


def _read_header(lines: list[str]) -> tuple[dict[str, str], int]:
    """A PEP-style header: the first paragraph, made only of `Name: value` lines (continuations
    indented), with at least two fields. Returns the fields (values joined with single spaces and
    inline markup made readable) and the index of the first line after it; ({}, 0) when there is none."""
    start = 0
    while start < len(lines) and not lines[start]:
        start += 1
    names: list[str] = []
    values: list[list[str]] = []
    index = start
    while index < len(lines) and lines[index]:
        line = lines[index]
        match = None if line[0] == " " else _FIELD_LINE.match(line)
        if match:
            names.append(match[1])
            values.append([match[2].strip()] if match[2] else [])
        elif line[0] == " " and names:
            values[-1].append(line.strip())
        else:
            return {}, 0
        index += 1
    if len(names) < 2:
        return {}, 0
    fields = {name: _clean_rst(" ".join(parts)) for name, parts in zip(names, values)}
    return fields, index


def _date_of(fields: dict[str, str]) -> str | None:
    """The ISO day of the first date field (Created, Date, Published) whose value parses."""
    lowered = {name.lower(): value for name, value in fields.items()}
    for name in DATE_FIELDS:
        if name in lowered:
            day = iso_day(lowered[name])
            if day:
                return day
    return None


_ISO_DAY = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?!\d)")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?[- ]([A-Za-z]{3,9})\.?[-, ]+(\d{4})(?!\d)")
_MONTH_DAY_YEAR = re.compile(r"([A-Za-z]{3,9})\.? (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})(?!\d)")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")


def _month(name: str) -> int | None:
    """1-12 for a month's name or its abbreviation ("Jul", "Sept", "July"), else None."""
    name = name.lower()
    for number, full in enumerate(_MONTHS, start=1):
        if len(name) >= 3 and full.startswith(name):
            return number
    return 9 if name == "sept" else None


def _day(year: str, month: str | int | None, day: str) -> str | None:
    if month is None:
        return None
    try:
        return datetime.date(int(year), int(month), int(day)).isoformat()
    except ValueError:
        return None


def _assemble(events: list[_Heading | _Raw], top_level: int) -> tuple[list[Block], str | None]:
    """Blocks with their heading paths, and the first heading's title.

    A heading at `top_level` that is the only one there is the document's title rather than a
    section (as docutils decides), so it is left out of the heading paths: every block would
    otherwise repeat it."""
    tops = [index for index, event in enumerate(events)
            if isinstance(event, _Heading) and event.level == top_level]
    first_title = next((event.title for event in events if isinstance(event, _Heading)), None)
    document_heading = tops[0] if len(tops) == 1 else -1
    stack: list[tuple[int, str, int]] = []  # (level, title, event index)
    blocks: list[Block] = []
    for index, event in enumerate(events):
        if isinstance(event, _Heading):
            while stack and stack[-1][0] >= event.level:
                stack.pop()
            stack.append((event.level, event.title, index))
        elif event.text:
            path = tuple(title for _, title, at in stack if at != document_heading)
            blocks.append(Block(path, event.text, event.first, event.last, event.kind))
    return blocks, first_title


def _document(path: str, fmt: str, title: str, fields: dict[str, str], blocks: list[Block]) -> ParsedDocument:
    return ParsedDocument(path=path, format=fmt, title=title, fields=fields, date=_date_of(fields),
                          blocks=tuple(blocks))


def _field(fields: dict[str, str], name: str) -> str | None:
    """A field's value by case-insensitive name, None when absent or blank."""
    for key, value in fields.items():
        if key.lower() == name and value.strip():
            return value.strip()
    return None


def _dedent(lines: list[str]) -> list[str]:
    depth = min((_indent(line) for line in lines if line), default=0)
    return [line[depth:] for line in lines]


def _trimmed(lines: list[str], numbers: list[int]) -> tuple[list[str], list[int]]:
    """Without leading and trailing blank lines."""
    start, end = 0, len(lines)
    while start < end and not lines[start]:
        start += 1
    while end > start and not lines[end - 1]:
        end -= 1
    return lines[start:end], numbers[start:end]


# Lists in lists, quotes in quotes: deeper than this, the rest is read as one paragraph (so a line
# of a million "- " or ">" costs neither a million recursions nor a million copies of the line).
_MAX_NESTING = 16


def _flat_text(lines: list[str], numbers: list[int]) -> _Raw | None:
    """All the lines as one text block, whitespace collapsed."""
    lines, numbers = _trimmed(lines, numbers)
    return _Raw("text", " ".join(" ".join(lines).split()), numbers[0], numbers[-1]) if lines else None


def _code(lines: list[str], numbers: list[int]) -> _Raw | None:
    """A code block from its lines, dedented, blank lines around it removed."""
    lines, numbers = _trimmed(lines, numbers)
    if not lines:
        return None
    return _Raw("code", "\n".join(_dedent(lines)), numbers[0], numbers[-1])


# --- reStructuredText ---------------------------------------------------------------------------

def _parse_rst(path: str, lines: list[str], stem: str, fields: dict[str, str], body_start: int) -> ParsedDocument:
    numbers = list(range(1, len(lines) + 1))
    styles: list[tuple[str, bool]] = []  # adornment styles in order of first appearance = levels
    events = _rst_events(lines[body_start:], numbers[body_start:], styles)
    blocks, heading_title = _assemble(events, top_level=0)
    title = _field(fields, "title") or heading_title or stem
    return _document(path, "rst", title, fields, blocks)


_ADORNMENT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_BULLET = re.compile(r"([-*+\u2022\u2023\u2043])(?: +|$)")
_ENUMERATOR = re.compile(r"(?:(\d+|#|[A-Za-z]|[ivxlcdmIVXLCDM]{1,6})[.)]"
                         r"|\((\d+|#|[A-Za-z]|[ivxlcdmIVXLCDM]{1,6})\))(?: +|$)")
_FIELD_MARKER = re.compile(r":([^:`\s][^:`]*):(?: +|$)")
_DIRECTIVE = re.compile(r"\.\. +([A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)?)::(?: +(.*))?$")
_FOOTNOTE = re.compile(r"\.\. +\[([^\[\]]+)\](?: +(.*))?$")
_GRID_BORDER = re.compile(r"\+[-=+]+\+$")
_SIMPLE_BORDER = re.compile(r"=+(?: +=+)+$")

# Directives whose body is literal text.
_CODE_DIRECTIVES = frozenset({"code-block", "code", "sourcecode", "parsed-literal", "productionlist",
                              "math", "doctest", "testcode", "testoutput"})
# Directives that carry nothing to search: layout, includes, images, the table of contents, and
# the PEP banners whose only argument is a link to the canonical documentation.
_DROPPED_DIRECTIVES = frozenset({"contents", "sectnum", "highlight", "image", "include", "literalinclude",
                                 "raw", "class", "role", "default-role", "meta", "title", "target-notes",
                                 "header", "footer", "index", "toctree", "rubric", "tabularcolumns",
                                 "canonical-doc", "canonical-pypa-spec", "canonical-typing-spec",
                                 "highlightlang", "moduleauthor", "sectionauthor", "codeauthor"})
# Admonitions: their body is text, led by a label (the directive's argument for the titled ones).
_ADMONITION_LABELS = {"note": "Note", "warning": "Warning", "tip": "Tip", "hint": "Hint",
                      "important": "Important", "attention": "Attention", "caution": "Caution",
                      "danger": "Danger", "error": "Error", "seealso": "See also",
                      "withdrawn": "Withdrawn", "rejected": "Rejected", "superseded": "Superseded",
                      "deprecated": "Deprecated", "versionadded": "Added", "versionchanged": "Changed"}
_TITLED_DIRECTIVES = frozenset({"admonition", "topic", "sidebar", "table"})


def _is_adornment(line: str) -> bool:
    return len(line) >= 2 and line[0] in _ADORNMENT and line.count(line[0]) == len(line)


def _region_end(lines: list[str], start: int) -> int:
    """End (exclusive) of the indented region from `start`: blank or indented lines, trailing
    blank lines excluded."""
    end = index = start
    while index < len(lines) and (not lines[index] or lines[index][0] == " "):
        index += 1
        if lines[index - 1]:
            end = index
    return end


def _rst_events(lines: list[str], numbers: list[int], styles: list[tuple[str, bool]] | None,
                depth: int = 0) -> list:
    """Headings and blocks of reST lines whose least indentation is 0. `styles` is None inside a
    body (a list item, a directive: `depth` levels down) where section titles cannot occur."""
    if depth > _MAX_NESTING:
        return [raw for raw in [_flat_text(lines, numbers)] if raw]
    events: list = []
    index, count = 0, len(lines)
    while index < count:
        line = lines[index]
        if not line:
            index += 1
            continue
        if line[0] == " ":  # a block quote: its own body
            end = _region_end(lines, index)
            events += _rst_events(_dedent(lines[index:end]), numbers[index:end], None, depth + 1)
            index = end
            continue
        nxt = lines[index + 1] if index + 1 < count else ""
        if styles is not None:
            heading = _rst_heading(lines, index)
            if heading:
                title, style, used = heading
                if style not in styles:
                    styles.append(style)
                events.append(_Heading(styles.index(style), _clean_rst(title), numbers[index + (1 if style[1] else 0)]))
                index += used
                continue
        if _is_adornment(line) and len(line) >= 4 and not nxt:  # a transition
            index += 1
            continue
        if line.startswith(".."):
            index = _rst_explicit(lines, numbers, index, events, depth)
        elif line.startswith("__ "):  # an anonymous hyperlink target: only a URL
            index = _region_end(lines, index + 1)
        elif _GRID_BORDER.match(line):
            index = _rst_grid_table(lines, numbers, index, events)
        elif _SIMPLE_BORDER.match(line):
            index = _rst_simple_table(lines, numbers, index, events)
        elif _list_marker(line, nxt):
            index = _rst_list(lines, numbers, index, events, depth)
        elif line.startswith(">>>"):
            end = index
            while end < count and lines[end]:
                end += 1
            events.append(_code(lines[index:end], numbers[index:end]))
            index = end
        elif nxt and nxt[0] == " " and not line.endswith("::"):
            index = _rst_definitions(lines, numbers, index, events, depth)
        else:
            index = _rst_paragraph(lines, numbers, index, events)
    return [event for event in events if event is not None]


def _rst_heading(lines: list[str], index: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, adornment style, lines used) when a section title starts at `index`."""
    line = lines[index]
    nxt = lines[index + 1] if index + 1 < len(lines) else ""
    if _is_adornment(line):
        after = lines[index + 2] if index + 2 < len(lines) else ""
        if nxt.strip() and _is_adornment(after) and after[0] == line[0] and not _is_adornment(nxt.strip()):
            return nxt.strip(), (line[0], True), 3
        return None
    if _is_adornment(nxt) and len(nxt) >= 3 and (len(nxt) >= 4 or len(nxt) >= len(line)):
        return line.strip(), (nxt[0], False), 2
    return None


def _list_marker(line: str, nxt: str) -> re.Match | None:
    """The bullet, enumerator or field marker that starts a list item on `line`, if any. An
    enumerator ("2001. was a year") starts an item only when the item is not continued unindented."""
    match = _BULLET.match(line) or _FIELD_MARKER.match(line)
    if match:
        return match
    match = _ENUMERATOR.match(line)
    if match and (not nxt or nxt[0] == " " or _ENUMERATOR.match(nxt)):
        return match
    return None


def _marker_kind(match: re.Match) -> str:
    """Items of one list share this: the bullet character, the enumerator style, or 'field'."""
    marker = match[0].strip()
    if match.re is _FIELD_MARKER:
        return "field"
    if match.re is _BULLET:
        return marker
    return ("(" if marker.startswith("(") else "") + marker[-1]


def _item_body(lines: list[str], numbers: list[int], index: int, column: int) -> tuple[list[str], list[int], int]:
    """The body of a list item, footnote or directive whose text starts at `column` of line
    `index`: that text, then its indented continuation lines dedented. Returns (lines, numbers, end)."""
    end = _region_end(lines, index + 1)
    first = lines[index][column:].strip()
    rest = lines[index + 1:end]
    # continuation lines align with the text after the marker; deeper ones (a literal block) stay deeper
    depth = min([column] * bool(first) + [_indent(line) for line in rest if line], default=0)
    body = ([first] if first else []) + [line[depth:] for line in rest]
    body_numbers = ([numbers[index]] if first else []) + numbers[index + 1:end]
    return body, body_numbers, end


def _render_item(marker: str, parts: list[_Raw]) -> str:
    """One list item as text: its marker, its first paragraph on the same line, further parts
    indented below it (code by four spaces, so it reads as code)."""
    out: list[str] = []
    for position, part in enumerate(parts):
        part_lines = part.text.split("\n")
        pad = "    " if part.kind == "code" else "  "
        if position == 0 and part.kind != "code":
            out.append(f"{marker} {part_lines[0]}".strip())
            out += [pad + text if text else "" for text in part_lines[1:]]
        else:
            if position == 0:
                out.append(marker)
            out += [pad + text if text else "" for text in part_lines]
    return "\n".join(out) if out else marker


def _rst_list(lines: list[str], numbers: list[int], index: int, events: list, depth: int) -> int:
    """A bullet, enumerated or field list: one "list" block for all its consecutive items."""
    kind = None
    items: list[str] = []
    first = numbers[index]
    last = first
    auto = 0
    while index < len(lines):
        line = lines[index]
        match = _list_marker(line, lines[index + 1] if index + 1 < len(lines) else "")
        if not match or (kind is not None and _marker_kind(match) != kind):
            break
        kind = _marker_kind(match)
        body, body_numbers, end = _item_body(lines, numbers, index, match.end())
        marker = match[0].strip()
        if kind == "field":
            marker = _clean_rst(match[1]) + ":"
        elif match.re is _BULLET:
            marker = "-"
        elif "#" in marker:
            auto += 1
            marker = marker.replace("#", str(auto))
        items.append(_render_item(marker, _rst_events(body, body_numbers, None, depth + 1)))
        last = numbers[end - 1]
        index = end
        while index < len(lines) and not lines[index]:
            index += 1
    events.append(_Raw("list", "\n".join(items), first, last))
    return index


def _rst_definitions(lines: list[str], numbers: list[int], index: int, events: list, depth: int) -> int:
    """A definition list (a term, its definition indented on the next lines): one "list" block,
    each item rendered `term: definition`."""
    items: list[str] = []
    first = numbers[index]
    last = first
    while index + 1 < len(lines) and lines[index] and lines[index][0] != " " and lines[index + 1][:1] == " ":
        line = lines[index]
        if line.startswith("..") or _list_marker(line, lines[index + 1]) or _is_adornment(line):
            break
        term = _clean_rst(line.strip())
        end = _region_end(lines, index + 1)
        parts = _rst_events(_dedent(lines[index + 1:end]), numbers[index + 1:end], None, depth + 1)
        items.append(_render_item(term if term.endswith(":") else term + ":", parts))
        last = numbers[end - 1]
        index = end
        while index < len(lines) and not lines[index]:
            index += 1
    if not items:  # a lone line before an indented block: a paragraph, then a block quote
        return _rst_paragraph(lines, numbers, index, events)
    events.append(_Raw("list", "\n".join(items), first, last))
    return index


def _rst_paragraph(lines: list[str], numbers: list[int], index: int, events: list) -> int:
    """A paragraph: unindented lines up to a blank or indented one. Ending in `::`, it introduces
    a literal block: the indented (or quoted) lines after it, one "code" block."""
    end = index
    while end < len(lines) and lines[end] and lines[end][0] != " ":
        end += 1
    text = " ".join(" ".join(lines[index:end]).split())
    literal = text.endswith("::")
    if literal:
        text = text[:-2].rstrip() if (text == "::" or text[-3:-2].isspace()) else text[:-1]
    if text:
        events.append(_Raw("text", _clean_rst(text), numbers[index], numbers[end - 1]))
    if not literal:
        return end
    start = end
    while start < len(lines) and not lines[start]:
        start += 1
    if start < len(lines) and lines[start][0] == " ":
        stop = _region_end(lines, start)
        events.append(_code(lines[start:stop], numbers[start:stop]))
        return stop
    if start < len(lines) and lines[start][0] in _ADORNMENT and start > end:  # quoted literal block
        quote, stop = lines[start][0], start
        while stop < len(lines) and lines[stop][:1] == quote:
            stop += 1
        events.append(_code(lines[start:stop], numbers[start:stop]))
        return stop
    return end


def _rst_explicit(lines: list[str], numbers: list[int], index: int, events: list, depth: int) -> int:
    """Explicit markup (`..`): directives, footnotes and citations are read; comments, reference
    targets and substitution definitions are dropped with their indented bodies."""
    line = lines[index]
    end = _region_end(lines, index + 1)
    footnote = _FOOTNOTE.match(line)
    if footnote:
        body, body_numbers, end = _item_body(lines, numbers, index, footnote.start(2) if footnote[2] else len(line))
        parts = _rst_events(body, body_numbers, None, depth + 1)
        if parts and parts[0].kind == "text":
            parts[0] = parts[0]._replace(text=f"[{footnote[1]}] {parts[0].text}", first=numbers[index])
        events += parts
        return end
    directive = _DIRECTIVE.match(line)
    if directive:
        _rst_directive(directive[1].lower(), (directive[2] or "").strip(), lines, numbers, index, end, events,
                       depth)
    return end


def _rst_directive(name: str, argument: str, lines: list[str], numbers: list[int], index: int, end: int,
                   events: list, depth: int) -> None:
    name = name.rsplit(":", 1)[-1]  # "py:function" reads as "function"
    if name in _DROPPED_DIRECTIVES:
        return
    start = index + 1
    while start < end and lines[start].lstrip().startswith(":") and _FIELD_MARKER.match(lines[start].lstrip()):
        start += 1  # the directive's options
    content, content_numbers = _trimmed(_dedent(lines[start:end]), numbers[start:end])
    if name in _CODE_DIRECTIVES:
        if not content and argument and name == "math":
            events.append(_Raw("code", argument, numbers[index], numbers[index]))
        else:
            events.append(_code(content, content_numbers))
    elif name == "list-table":
        events.append(_list_table(content, content_numbers))
    elif name == "csv-table":
        if content:
            rows = [_clean_rst(row.strip()) for row in content if row.strip()]
            events.append(_Raw("table", "\n".join(rows), content_numbers[0], content_numbers[-1]))
    else:
        label = _ADMONITION_LABELS.get(name)
        if label and argument and name not in ("deprecated", "versionadded", "versionchanged"):
            # an admonition's text may start on the directive's own line
            content, content_numbers = [argument] + lines[index + 1:start] + content, \
                [numbers[index]] + numbers[index + 1:start] + content_numbers
            content = [content[0]] + _dedent(content[1:])
        elif name in _TITLED_DIRECTIVES or label:
            label = " ".join(filter(None, [label, argument])) or None
        parts = _rst_events(content, content_numbers, None, depth + 1)
        if label and parts and parts[0].kind == "text":
            parts[0] = parts[0]._replace(text=f"{_clean_rst(label)}: {parts[0].text}")
        elif label and argument and name in _TITLED_DIRECTIVES:
            parts.insert(0, _Raw("text", _clean_rst(argument), numbers[index], numbers[index]))
        events += parts


def _list_table(content: list[str], numbers: list[int]) -> _Raw | None:
    """A `list-table`'s nested bullet list as rows of cells joined by " | "."""
    rows: list[list[str]] = []
    for line in content:
        stripped = line.strip()
        if not stripped or _DIRECTIVE.match(stripped):  # a directive inside a cell: keep its body only
            continue
        row_start = _BULLET.match(line)
        if row_start:
            rows.append([])
            stripped = line[row_start.end():].strip()
        cell_start = _BULLET.match(stripped)
        if rows and (cell_start or not rows[-1]) and (row_start or _indent(line) <= 2 or cell_start):
            cell = stripped[cell_start.end():].strip() if cell_start else stripped
            rows[-1].append("" if _DIRECTIVE.match(cell) else cell)
        elif rows and rows[-1]:
            rows[-1][-1] = (rows[-1][-1] + " " + stripped).strip()
    text = "\n".join(" | ".join(_clean_rst(cell) for cell in row) for row in rows if row)
    return _Raw("table", text, numbers[0], numbers[-1]) if text else None


def _rst_grid_table(lines: list[str], numbers: list[int], index: int, events: list) -> int:
    """A grid table: each row (between border lines) as its cells joined by " | ", the lines of a
    cell joined by spaces. Cells are cut at the `+` columns of the table's first border."""
    end = index
    while end < len(lines) and lines[end] and lines[end][0] in "+|":
        end += 1
    columns = [at for at, char in enumerate(lines[index]) if char == "+"]
    rows: list[str] = []
    cells: list[list[str]] = []
    for line in lines[index:end]:
        if line[0] == "+":
            if any(cells):
                rows.append(" | ".join(_clean_rst(" ".join(cell)) for cell in cells))
            cells = []
            continue
        pieces = [line[left + 1:right].strip() for left, right in pairwise(columns)]
        if not cells:
            cells = [[] for _ in pieces]
        for cell, piece in zip(cells, pieces):
            if piece.strip("|").strip():
                cell.append(piece.strip("|").strip())
    if any(cells):
        rows.append(" | ".join(_clean_rst(" ".join(cell)) for cell in cells))
    events.append(_Raw("table", "\n".join(row for row in rows if row.strip(" |")), numbers[index], numbers[end - 1]))
    return end


def _rst_simple_table(lines: list[str], numbers: list[int], index: int, events: list) -> int:
    """A simple table (`=====  =====` borders): rows cut at the border's columns, a row whose first
    column is empty continuing the row above; it ends at a border followed by a blank line."""
    spans = [(match.start(), match.end()) for match in re.finditer(r"=+", lines[index])]
    end = index + 1
    while end < len(lines):
        if _SIMPLE_BORDER.match(lines[end]) and (end + 1 >= len(lines) or not lines[end + 1]):
            end += 1
            break
        end += 1
    rows: list[list[str]] = []
    for line in lines[index + 1:end]:
        if not line or _SIMPLE_BORDER.match(line) or (line[0] == "-" and set(line) <= {"-", " "}):
            continue
        bounds = [start for start, _ in spans[1:]] + [len(line)]
        cells = [line[start:stop].strip() for (start, _), stop in zip(spans, bounds)]  # the last runs on
        if rows and not cells[0]:
            rows[-1] = [" ".join(filter(None, pair)) for pair in zip(rows[-1], cells)]
        else:
            rows.append(cells)
    text = "\n".join(" | ".join(_clean_rst(cell) for cell in row) for row in rows)
    events.append(_Raw("table", text, numbers[index], numbers[end - 1]))
    return end


# Inline markup. Each pattern stops at a character it cannot cross (a backtick, a bracket, a line
# end), so no input makes it backtrack more than linearly. One left-to-right pass takes ``literals``,
# :roles:`text` and `interpreted text`_ in the order they come, so a literal may show a role's syntax.
_REFERENCE_NAME = re.compile(r"(?<![\w`-])([A-Za-z][\w-]*[A-Za-z0-9])__?(?=[\s.,;:!?)\]]|$)")
_BACKQUOTED = re.compile(r"``(?P<literal>.+?)``"
                         r"|:(?P<role>[A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*){0,2}):`(?P<content>[^`]*)`"
                         r"|`(?P<text>[^`]+)`_{0,2}")
_FOOTNOTE_REFERENCE = re.compile(r"(\[[^\[\]\s]+\])_")


def _clean_rst(text: str) -> str:
    """reST inline markup made readable: roles (`:pep:` as "PEP 8"), ``literals``, hyperlink
    references (`text <url>`_ as "text") and footnote references lose their markup; emphasis stays."""
    if "`" not in text and "_" not in text:
        return text
    text = _REFERENCE_NAME.sub(r"\1", text)
    if "`" in text:
        text = _BACKQUOTED.sub(_backquoted_text, text)
    return _FOOTNOTE_REFERENCE.sub(r"\1", text)


def _backquoted_text(match: re.Match) -> str:
    if match["literal"] is not None:
        return match["literal"]
    if match["role"] is not None:
        return _role_text(match["role"].lower(), match["content"].strip())
    label, target = _label_and_target(match["text"].strip())
    return label or target


def _label_and_target(content: str) -> tuple[str, str]:
    """`label <target>` as (label, target); anything else as ("", content)."""
    if content.endswith(">") and "<" in content:
        cut = content.rfind("<")
        return content[:cut].strip(), content[cut + 1:-1].strip()
    return "", content


def _role_text(role: str, content: str) -> str:
    """What a role reads as: `:pep:`8`` as "PEP 8", `:pep:`style <7>`` as "style (PEP 7)",
    `:rfc:` likewise, any other role as its text (or its target when it has no text)."""
    label, target = _label_and_target(content)
    if role in ("pep", "rfc", "pep-reference", "rfc-reference"):
        number = target.split("#", 1)[0].strip()
        if number.isdigit():
            name = f"{role[:3].upper()} {int(number)}"
            return f"{label} ({name})" if label else name
    return label or target.lstrip("~!")


# --- Markdown -----------------------------------------------------------------------------------

def _parse_markdown(path: str, lines: list[str], stem: str) -> ParsedDocument:
    fields, start = _front_matter(lines)
    numbers = list(range(1, len(lines) + 1))
    events = _markdown_events(lines[start:], numbers[start:], headings=True)
    blocks, _ = _assemble(events, top_level=1)
    first_h1 = next((event.title for event in events if isinstance(event, _Heading) and event.level == 1), None)
    title = _field(fields, "title") or first_h1 or stem
    return _document(path, "markdown", title, fields, blocks)


def _front_matter(lines: list[str]) -> tuple[dict[str, str], int]:
    """YAML-ish front matter between `---` lines at the very top: `key: value` scalars (quotes
    removed), lists (`[a, b]` or `- item` lines) as comma-joined strings, folded (`>`, `|`) values
    as one line. Nested mappings are skipped. Returns the fields and the first line after them."""
    if not lines or lines[0].strip() != "---":
        return {}, 0
    close = next((at for at in range(1, len(lines)) if lines[at].strip() in ("---", "...")), None)
    first = next((line for line in lines[1:close] if line.strip()), "") if close else ""
    if close is None or (first and not _FRONT_MATTER_KEY.match(first)):  # a thematic break, not front matter
        return {}, 0
    fields: dict[str, str] = {}
    key = None
    for line in lines[1:close]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] != " " and not line.startswith("- "):
            match = _FRONT_MATTER_KEY.match(line)
            if not match:
                key = None
                continue
            key = match[1].strip()
            value = (match[2] or "").strip()
            if value in ("|", ">", "|-", ">-"):
                value = ""
            fields[key] = _yaml_scalar(value)
        elif key is not None:
            item = line.strip()
            if item.startswith("- "):
                item = _yaml_scalar(item[2:].strip())
                fields[key] = f"{fields[key]}, {item}" if fields[key] else item
            elif ":" not in item or fields[key]:  # a folded value's line (a nested mapping is skipped)
                fields[key] = f"{fields[key]} {item}".strip()
    return {name: value for name, value in fields.items() if value}, close + 1


_FRONT_MATTER_KEY = re.compile(r"([^:\s][^:]*):(?:[ \t]+(.*))?$")


def _yaml_scalar(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    if value.startswith("[") and value.endswith("]"):
        return ", ".join(_yaml_scalar(item.strip()) for item in value[1:-1].split(",") if item.strip())
    return value


_MD_BULLET = re.compile(r" {0,3}(?:[-*+]|\d{1,9}[.)])(?: +|$)")
_MD_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)$")
_MD_LINK_DEFINITION = re.compile(r" {0,3}\[[^\[\]]+\]:[ \t]*\S")


def _markdown_events(lines: list[str], numbers: list[int], headings: bool, depth: int = 0) -> list:
    """Headings and blocks of Markdown lines. Inside a block quote (`depth` levels down) `headings`
    is False."""
    if depth > _MAX_NESTING:
        return [raw for raw in [_flat_text(lines, numbers)] if raw]
    events: list = []
    index, count = 0, len(lines)
    while index < count:
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            index += 1
            continue
        fence = _fence(line)
        if fence:
            index = _md_fenced(lines, numbers, index, fence, events)
        elif _atx_level(line):
            level = _atx_level(line)
            title = _clean_markdown(_atx_title(line, level))
            if headings and title:
                events.append(_Heading(level, title, numbers[index]))
            elif title:
                events.append(_Raw("text", title, numbers[index], numbers[index]))
            index += 1
        elif stripped.startswith("<!--"):
            while index < count and "-->" not in lines[index]:
                index += 1
            index += 1
        elif _is_thematic_break(line) or _MD_LINK_DEFINITION.match(line):
            index += 1
        elif _indent(line) >= 4:
            end = index
            while end < count and (not lines[end] or _indent(lines[end]) >= 4):
                end += 1
            events.append(_code(lines[index:end], numbers[index:end]))
            index = end
        elif stripped.startswith(">"):
            end = index
            while end < count and lines[end].strip():
                end += 1
            quoted = [_unquote(text) for text in lines[index:end]]
            events += _markdown_events(quoted, numbers[index:end], headings=False, depth=depth + 1)
            index = end
        elif _is_table_start(lines, index):
            index = _md_table(lines, numbers, index, events)
        elif _MD_BULLET.match(line):
            index = _md_list(lines, numbers, index, events)
        else:
            index = _md_paragraph(lines, numbers, index, events, headings)
    return [event for event in events if event is not None]


def _fence(line: str) -> tuple[str, int] | None:
    """(fence character, fence length) when `line` opens a fenced code block."""
    match = _MD_FENCE.match(line)
    if not match or (match[2][0] == "`" and "`" in match[3]):
        return None
    return match[2][0], len(match[2])


def _md_fenced(lines: list[str], numbers: list[int], index: int, fence: tuple[str, int], events: list) -> int:
    """A fenced code block: everything up to the closing fence (or the end), never read for headings."""
    char, length = fence
    depth = _indent(lines[index])
    end = index + 1
    while end < len(lines):
        stripped = lines[end].strip()
        if _indent(lines[end]) < 4 and stripped.startswith(char * length) and not stripped.strip(char):
            break
        end += 1
    body = [line[min(depth, _indent(line)):] for line in lines[index + 1:end]]
    events.append(_code(body, numbers[index + 1:end]))
    return end + 1


def _atx_level(line: str) -> int:
    """1-6 when `line` is an ATX heading (`## Title`), else 0."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3 or not stripped.startswith("#"):
        return 0
    level = len(stripped) - len(stripped.lstrip("#"))
    if level > 6 or (len(stripped) > level and stripped[level] not in " \t"):
        return 0
    return level


def _atx_title(line: str, level: int) -> str:
    title = line.strip()[level:].strip()
    closed = title.rstrip("#")
    if closed != title and (not closed or closed[-1] in " \t"):
        title = closed.strip()
    return title


def _is_thematic_break(line: str) -> bool:
    compact = line.replace(" ", "")
    return _indent(line) < 4 and len(compact) >= 3 and compact[0] in "-*_" and compact.count(compact[0]) == len(compact)


def _setext_level(line: str) -> int:
    """1 or 2 when `line` underlines a setext heading (`===` or `---`), else 0."""
    stripped = line.strip()
    if _indent(line) > 3 or not stripped or stripped[0] not in "=-" or stripped.count(stripped[0]) != len(stripped):
        return 0
    return 1 if stripped[0] == "=" else 2


def _unquote(line: str) -> str:
    stripped = line.lstrip()
    if stripped.startswith(">"):
        return stripped[1:].removeprefix(" ")
    return line


def _table_cells(line: str) -> list[str]:
    """A pipe-table row's cells; an escaped pipe (`\\|`) stays inside its cell."""
    stripped = line.strip().removeprefix("|")
    if stripped.endswith("|") and not stripped.endswith("\\|"):
        stripped = stripped[:-1]
    return [cell.strip().replace("\\|", "|") for cell in _UNESCAPED_PIPE.split(stripped)]


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _is_delimiter_row(line: str) -> bool:
    if "-" not in line:
        return False
    cells = _table_cells(line)
    return all(cell and cell.strip(":") and not cell.strip(":").strip("-") for cell in cells)


def _is_table_start(lines: list[str], index: int) -> bool:
    return ("|" in lines[index] and index + 1 < len(lines) and _is_delimiter_row(lines[index + 1])
            and len(_table_cells(lines[index])) == len(_table_cells(lines[index + 1])))


def _md_table(lines: list[str], numbers: list[int], index: int, events: list) -> int:
    """A pipe table: its rows, cells joined by " | ", the delimiter row left out."""
    end = index + 2
    while end < len(lines) and lines[end].strip() and "|" in lines[end]:
        end += 1
    rows = [lines[index]] + lines[index + 2:end]
    text = "\n".join(" | ".join(_clean_markdown(cell) for cell in _table_cells(row)) for row in rows)
    events.append(_Raw("table", text, numbers[index], numbers[end - 1]))
    return end


def _md_list(lines: list[str], numbers: list[int], index: int, events: list) -> int:
    """A list with its nested lists and code: one "list" block, an item per line (its wrapped lines
    joined), nested items indented, fenced code inside items kept line by line."""
    base = _indent(lines[index])
    out: list[str] = []
    joinable = False
    fence: tuple[str, int] | None = None
    end = index
    last = index
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence[0] * fence[1]) and not stripped.strip(fence[0]):
                fence = None
            else:
                out.append(line[min(base, _indent(line)):])
            last = end
            end += 1
            continue
        if not stripped:
            following = next((text for text in lines[end + 1:end + 2]), "")
            if not following.strip() or (_indent(following) <= base and not _MD_BULLET.match(following)):
                break
            joinable = False
            end += 1
            continue
        depth = _indent(line)
        marker = _MD_BULLET.match(stripped) if depth >= base else None
        if depth < base and not joinable:
            break
        if not marker and depth <= base and not joinable:
            break
        if depth <= base + 3 and not marker and (_atx_level(line) or _is_thematic_break(line)):
            break
        if _fence(line):
            fence = _fence(line)
            joinable = False
        elif marker or not joinable:
            out.append(" " * max(0, depth - base) + _clean_markdown(stripped))
            joinable = True
        else:
            out[-1] += " " + _clean_markdown(stripped)
        last = end
        end += 1
    events.append(_Raw("list", "\n".join(out), numbers[index], numbers[last]))
    return end


def _md_paragraph(lines: list[str], numbers: list[int], index: int, events: list, headings: bool) -> int:
    """A paragraph, or a setext heading when its lines are underlined with `===` or `---`."""
    end = index + 1
    while end < len(lines):
        line = lines[end]
        if not line.strip():
            break
        level = _setext_level(line)
        if level:
            title = _clean_markdown(" ".join(text.strip() for text in lines[index:end]))
            events.append(_Heading(level, title, numbers[index]) if headings
                          else _Raw("text", title, numbers[index], numbers[end - 1]))
            return end + 1
        if (_fence(line) or _atx_level(line) or line.lstrip().startswith(">") or _is_thematic_break(line)
                or _is_table_start(lines, end) or (_MD_BULLET.match(line) and line.strip() not in "-*+")):
            break
        end += 1
    text = _clean_markdown(" ".join(line.strip() for line in lines[index:end]))
    events.append(_Raw("text", text, numbers[index], numbers[end - 1]))
    return end


_MD_IMAGE_OR_LINK = re.compile(r"!?\[([^\[\]]*)\](?:\([^()\s]*(?:[ \t]+\"[^\"\n]*\")?\)|\[[^\[\]]*\])")
_MD_AUTOLINK = re.compile(r"<((?:https?|mailto):[^<>\s]*)>")
_MD_CODE = re.compile(r"``(.+?)``|`([^`]+)`")


def _clean_markdown(text: str) -> str:
    """Markdown inline markup made readable: links and images as their text, autolinks as their
    address, code spans as their content; emphasis stays."""
    if "[" in text:
        text = _MD_IMAGE_OR_LINK.sub(r"\1", text)
    if "<" in text:
        text = _MD_AUTOLINK.sub(r"\1", text)
    if "`" in text:
        text = _MD_CODE.sub(lambda match: (match[1] or match[2]).strip(), text)
    return text


# --- plain text ---------------------------------------------------------------------------------

_SHORT_TITLE = 80  # a first line longer than this is prose, not a title


def _parse_text(path: str, lines: list[str], stem: str) -> ParsedDocument:
    """Paragraphs separated by blank lines, their line breaks kept (plain text may be laid out)."""
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        end = index
        while end < len(lines) and lines[end].strip():
            end += 1
        text = "\n".join(_dedent(lines[index:end]))
        blocks.append(Block((), text, index + 1, end))
        index = end
    first_line = blocks[0].text.split("\n", 1)[0].strip() if blocks else ""
    title = first_line if first_line and len(first_line) <= _SHORT_TITLE else stem
    return _document(path, "text", title, {}, blocks)


# --- HTML ---------------------------------------------------------------------------------------

def _parse_html(path: str, text: str, stem: str) -> ParsedDocument:
    reader = _HtmlReader()
    reader.feed(_defuse_brackets(text.removeprefix("\ufeff").replace("\r\n", "\n")))
    reader.close()
    reader.flush()
    blocks, _ = _assemble(reader.events, top_level=1)
    title = reader.title.strip() or reader.first_h1 or stem
    return _document(path, "html", title, reader.fields, blocks)


def _defuse_brackets(text: str) -> str:
    """`text` with each `<` that cannot open a tag (no `>` before the next `<`) written `&lt;`.

    The standard library's parser rescans from an unfinished tag each time it meets one, which
    makes a long run of them ("<a <a <a ...") quadratic; defused, they are text. Comments are kept
    whole. Each search result is reused until passed, so this is one linear pass."""
    out: list[str] = []
    done = 0
    next_close = next_comment_end = -1
    at = text.find("<")
    while at != -1:
        if text.startswith("<!--", at):
            if next_comment_end < at:
                found = text.find("-->", at + 4)
                next_comment_end = found if found != -1 else len(text)
            if next_comment_end < len(text):
                at = text.find("<", next_comment_end + 3)
                continue
        if next_close < at:
            found = text.find(">", at)
            next_close = found if found != -1 else len(text)
        following = text.find("<", at + 1)
        if next_close == len(text) or (following != -1 and following < next_close):
            out += [text[done:at], "&lt;"]
            done = at + 1
        at = following
    out.append(text[done:])
    return "".join(out)


_HTML_SKIPPED = frozenset({"script", "style", "nav", "footer", "noscript", "template", "svg", "iframe",
                           "object", "select", "button"})
_HTML_BLOCKS = frozenset({"p", "div", "section", "article", "main", "header", "aside", "blockquote",
                          "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "address", "form",
                          "hr", "body", "details", "summary", "fieldset", "pre", "li", "table",
                          "h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_HTML_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                        "source", "track", "wbr"})
# What may stand in <head>; any other tag there means the body has begun (without a <body> tag).
_HTML_HEAD_TAGS = frozenset({"head", "title", "meta", "link", "style", "script", "base", "noscript", "template"})


class _HtmlReader(HTMLParser):
    """Collects the title, meta fields and events (headings; text, list, code and table blocks with
    their source lines) of an HTML page, skipping scripts, styles, navigation and footers. Blocks
    end at block-level tags, so unclosed <p> and <li> still read right."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.events: list = []
        self.fields: dict[str, str] = {}
        self.title = ""
        self.first_h1: str | None = None
        self._skipping = 0
        self._in_head = False
        self._in_title = False
        self._pre = 0
        self._item = 0
        self._lists: list[int] = []  # the item depth when each open list began
        self._heading: tuple[int, list[str]] | None = None
        self._heading_line = 0
        self._parts: list[str] = []
        self._has_text = False
        self._first = self._last = 0
        self._table = 0
        self._rows: list[list[str]] = []
        self._table_first = self._table_last = 0

    def _add(self, data: str) -> None:
        """Gather text into the current block, noting the lines of its first and last characters."""
        line = self.getpos()[0]
        stripped = data.rstrip()
        if stripped and not self._has_text:
            self._first = line + data.count("\n", 0, len(data) - len(data.lstrip()))
            self._has_text = True
        if stripped:
            self._last = line + data.count("\n", 0, len(stripped))
        self._parts.append(data)

    def flush(self) -> None:
        """End the current block."""
        raw = "".join(self._parts)
        self._parts = []
        if not self._has_text:
            return
        self._has_text = False
        if self._pre:
            lines = raw.split("\n")
            while lines and not lines[0].strip():
                lines.pop(0)
            text, kind = "\n".join(lines).rstrip(), "code"
        else:
            text = " ".join(raw.split())
            kind = "list" if self._item else "text"
            if kind == "list":
                text = "- " + text
        self.events.append(_Raw(kind, text, self._first, max(self._first, self._last)))

    def _end_heading(self) -> None:
        level, parts = self._heading
        self._heading = None
        title = " ".join("".join(parts).split())
        if title:
            self.events.append(_Heading(level, title, self._heading_line))
            if level == 1 and self.first_h1 is None:
                self.first_h1 = title

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            values = dict(attrs)
            name = values.get("name") or values.get("property")
            if name and values.get("content"):
                self.fields[name] = " ".join(values["content"].split())
            return
        if tag == "head":
            self._in_head = True
        elif tag == "title":
            self._in_title = True
        elif self._in_head and tag not in _HTML_HEAD_TAGS:
            self._in_head = False
        if tag in _HTML_SKIPPED:
            self._skipping += 1
            return
        if self._skipping or self._in_head:
            return
        if tag == "br":
            self._parts.append("\n")
            return
        if self._table:
            self._table_cell(tag)
            return
        if tag in _HTML_BLOCKS and not (self._pre and tag != "pre"):
            if self._heading:
                self._end_heading()
            self.flush()
        if tag == "table":
            self._table, self._rows, self._table_first = 1, [], self.getpos()[0]
        elif tag in _HTML_HEADINGS:
            self._heading = (_HTML_HEADINGS[tag], [])
            self._heading_line = self.getpos()[0]
        elif tag == "pre":
            self._pre += 1
        elif tag in ("ul", "ol"):
            self._lists.append(self._item)
        elif tag == "li":
            self._item += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _HTML_VOID:  # XHTML's <div/>: opened and closed
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
        if tag in _HTML_SKIPPED:
            self._skipping = max(0, self._skipping - 1)
            return
        if self._skipping or self._in_head:
            return
        if self._table:
            if tag == "table":
                self._table -= 1
                if not self._table:
                    self._emit_table()
            return
        if tag in _HTML_HEADINGS and self._heading:
            self._end_heading()
        elif tag == "pre" and self._pre:
            self.flush()
            self._pre -= 1
        elif tag == "li" and self._item:
            self.flush()
            self._item -= 1
        elif tag in ("ul", "ol"):
            self.flush()
            self._item = self._lists.pop() if self._lists else 0
        elif tag in _HTML_BLOCKS and not self._pre:
            self.flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif self._skipping or self._in_head:
            return
        elif self._table:
            if self._rows and self._rows[-1]:
                self._rows[-1][-1] += data
                self._table_last = self.getpos()[0] + data.count("\n", 0, len(data.rstrip()))
        elif self._heading:
            self._heading[1].append(data)
        else:
            self._add(data)

    def _table_cell(self, tag: str) -> None:
        """Inside a table, rows and cells are all that count (a nested table joins its cell)."""
        if tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th"):
            if not self._rows:
                self._rows.append([])
            self._rows[-1].append("")
        elif tag == "table":
            self._table += 1

    def _emit_table(self) -> None:
        rows = [" | ".join(" ".join(cell.split()) for cell in row) for row in self._rows]
        text = "\n".join(row for row in rows if row.strip(" |"))
        if text:
            self.events.append(_Raw("table", text, self._table_first, max(self._table_first, self._table_last)))
        self._rows = []
