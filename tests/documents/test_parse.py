"""parse_document: each format's structure as blocks under headings, with lines that point back."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import pytest

from memlane.documents.parse import FORMATS, format_of, iso_day, parse_document
from memlane.errors import InputError

PEPS = Path("/work/shared/data/peps/peps-rst.tar.xz")

PEP = """\
PEP: 9999
Title: A Sample Proposal
Author: Jane Doe <jane@example.org>,
        John Roe <john@example.org>
Status: Draft
Type: Standards Track
Created: 05-Jul-2001
Post-History: `01-Aug-2001 <https://mail.example.org/1>`__

Abstract
========

This PEP follows :pep:`8` and the :pep:`style guidelines <7>`, with
``literal`` text, a :func:`len` call and `a link <https://example.org>`_.

Specification
=============

Syntax
------

The form is::

    x = 1

    y = 2

.. code-block:: python
   :caption: example

   print("hi")

Semantics
---------

- first item
- second item
  continues here

.. note:: Notes are kept,
   whole.

.. This comment is dropped.

.. _target: https://example.org/dropped

.. |sub| replace:: dropped substitution

.. contents::

References
==========

.. [1] A footnote that is kept.

..
   Local Variables:
   mode: indented-text
   End:
"""


def blocks_of(text: str, path: str = "doc.rst"):
    return parse_document(path, text).blocks


def texts(text: str, path: str = "doc.rst") -> list[str]:
    return [block.text for block in blocks_of(text, path)]


# --- formats ------------------------------------------------------------------------------------

def test_format_of_maps_extensions_case_insensitively():
    assert format_of("a/b/README.md") == "markdown"
    assert format_of("notes.MARKDOWN") == "markdown"
    assert format_of("pep-0008.rst") == "rst"
    assert format_of("LICENSE") == "text"
    assert format_of("page.htm") == "html"
    assert format_of("data.csv") is None
    assert set(FORMATS.values()) == {"markdown", "rst", "text", "html"}


def test_an_unsupported_extension_names_the_file_and_the_supported_ones():
    with pytest.raises(InputError) as raised:
        parse_document("data/table.csv", "a,b")
    assert "data/table.csv" in str(raised.value)
    assert ".md" in str(raised.value) and ".rst" in str(raised.value)


# --- the PEP header -----------------------------------------------------------------------------

def test_pep_header_becomes_fields_with_continuations_joined():
    fields = parse_document("pep-9999.rst", PEP).fields
    assert fields["PEP"] == "9999"
    assert fields["Author"] == "Jane Doe <jane@example.org>, John Roe <john@example.org>"
    assert fields["Post-History"] == "01-Aug-2001"  # the link markup is gone


def test_title_comes_from_the_title_field_and_date_from_created():
    document = parse_document("pep-9999.rst", PEP)
    assert document.title == "A Sample Proposal"
    assert document.date == "2001-07-05"
    assert document.format == "rst"


def test_header_lines_are_not_blocks():
    assert not any("Jane Doe" in text for text in texts(PEP))


# --- reST sections ------------------------------------------------------------------------------

def test_heading_paths_follow_adornment_levels():
    paths = {block.text: block.heading_path for block in blocks_of(PEP)}
    assert paths["The form is:"] == ("Specification", "Syntax")
    assert paths["[1] A footnote that is kept."] == ("References",)


def test_levels_are_given_by_first_appearance_not_by_character():
    text = "A\n~~~\n\none\n\nB\n***\n\ntwo\n\nC\n~~~\n\nthree\n"
    paths = [block.heading_path for block in blocks_of(text)]
    assert paths == [("A",), ("A", "B"), ("C",)]


def test_the_only_top_level_title_is_the_document_title_and_leaves_the_paths():
    text = "==========\n Handbook\n==========\n\nIntro.\n\nPart One\n--------\n\nBody.\n"
    document = parse_document("handbook.rst", text)
    assert document.title == "Handbook"
    assert [block.heading_path for block in document.blocks] == [(), ("Part One",)]


def test_several_top_level_titles_all_stay_in_the_paths():
    document = parse_document("guide.rst", "One\n===\n\nfirst\n\nTwo\n===\n\nsecond\n")
    assert document.title == "One"
    assert [block.heading_path for block in document.blocks] == [("One",), ("Two",)]


def test_title_falls_back_to_the_file_stem():
    assert parse_document("docs/plain-notes.rst", "Just a paragraph.\n").title == "plain-notes"


# --- reST body ----------------------------------------------------------------------------------

def test_roles_and_literals_read_as_text():
    abstract = blocks_of(PEP)[0].text
    assert abstract == ("This PEP follows PEP 8 and the style guidelines (PEP 7), with literal text, "
                        "a len call and a link.")


def test_a_literal_block_is_one_code_block_with_its_blank_lines():
    code = [block for block in blocks_of(PEP) if block.kind == "code"]
    assert code[0].text == "x = 1\n\ny = 2"
    assert code[1].text == 'print("hi")'  # the :caption: option is not code


def test_the_double_colon_leaves_one_colon_or_none():
    assert texts("Example::\n\n    code\n")[0] == "Example:"
    assert texts("Example ::\n\n    code\n")[0] == "Example"
    assert texts("::\n\n    code\n") == ["code"]


def test_a_list_is_one_block_with_an_item_per_line():
    lists = [block for block in blocks_of(PEP) if block.kind == "list"]
    assert [block.text for block in lists] == ["- first item\n- second item continues here"]


def test_enumerated_items_with_code_inside_stay_in_their_list():
    text = "#. Run::\n\n      make\n\n#. Done.\n"
    assert texts(text) == ["1. Run:\n    make\n2. Done."]


def test_admonitions_are_kept_with_their_label():
    assert "Note: Notes are kept, whole." in texts(PEP)


def test_comments_targets_substitutions_contents_and_emacs_block_are_dropped():
    body = "\n".join(texts(PEP))
    assert "comment" not in body
    assert "dropped" not in body
    assert "Local Variables" not in body
    assert "contents" not in body


def test_footnotes_are_kept_with_their_label():
    assert "[1] A footnote that is kept." in texts(PEP)


def test_grid_table_rows_join_the_lines_of_each_cell():
    table = ("+------+--------+\n| Name | Role   |\n+======+========+\n"
             "| ann  | writes |\n|      | tests  |\n+------+--------+\n")
    [block] = blocks_of(table)
    assert (block.kind, block.text) == ("table", "Name | Role\nann | writes tests")


def test_simple_table_rows_are_cut_at_the_border_columns():
    table = "=====  =====\nA      B\n=====  =====\n1      one\n2      two\n=====  =====\n"
    [block] = blocks_of(table)
    assert (block.kind, block.text) == ("table", "A | B\n1 | one\n2 | two")


def test_definition_list_items_read_term_then_definition():
    assert texts("``spam``\n    A tinned meat.\n\neggs\n    Laid.\n") == ["spam: A tinned meat.\neggs: Laid."]


def test_block_lines_point_at_the_source():
    lines = PEP.split("\n")
    for block in blocks_of(PEP):
        first, last = lines[block.first_line - 1], lines[block.last_line - 1]
        words = block.text.split()
        assert words[0].strip("[]-:") in first or block.text.startswith("Note"), (block, first)
        assert words[-1].strip(".:)\"") in last, (block, last)


def test_a_txt_file_with_a_pep_header_is_read_as_rest():
    document = parse_document("pep-0001.txt", PEP)
    assert document.format == "rst"
    assert document.title == "A Sample Proposal"
    assert document.blocks[0].heading_path == ("Abstract",)


# --- Markdown -----------------------------------------------------------------------------------

MARKDOWN = """\
---
title: "Notes on Memory"
tags: [memory, agents]
authors:
  - Ann
  - Bob
published: 2024-03-05
---

# Notes

Intro with a [link](https://example.org) and `code`.

Setext Section
--------------

Under the setext heading.

```python
# not a heading
def f():
    return 1
```

- item one
  wrapped
- item two
  - nested

| a | b |
|---|:-:|
| 1 | 2 |

## Second

Last words.
"""


def test_front_matter_becomes_fields_and_gives_title_and_date():
    document = parse_document("notes.md", MARKDOWN)
    assert document.title == "Notes on Memory"
    assert document.fields["tags"] == "memory, agents"
    assert document.fields["authors"] == "Ann, Bob"
    assert document.date == "2024-03-05"


def test_setext_and_atx_headings_build_paths_under_the_single_h1():
    paths = {block.text: block.heading_path for block in blocks_of(MARKDOWN, "notes.md")}
    assert paths["Under the setext heading."] == ("Setext Section",)
    assert paths["Last words."] == ("Second",)


def test_fenced_code_is_one_block_never_read_for_headings():
    [code] = [block for block in blocks_of(MARKDOWN, "notes.md") if block.kind == "code"]
    assert code.text == "# not a heading\ndef f():\n    return 1"
    assert (code.first_line, code.last_line) == (20, 22)


def test_markdown_lists_tables_and_inline_markup():
    blocks = {block.kind: block.text for block in blocks_of(MARKDOWN, "notes.md")}
    assert blocks["list"] == "- item one wrapped\n- item two\n  - nested"
    assert blocks["table"] == "a | b\n1 | 2"
    assert blocks_of(MARKDOWN, "notes.md")[0].text == "Intro with a link and code."


def test_markdown_title_falls_back_to_the_first_h1_then_the_stem():
    assert parse_document("a.md", "# Heading One\n\ntext\n").title == "Heading One"
    assert parse_document("dir/readme-notes.md", "## Only a subheading\n").title == "readme-notes"


def test_an_escaped_pipe_stays_in_its_cell():
    [table] = blocks_of("| command | use |\n|---|---|\n| `a \\| b` | pipes |\n", "a.md")
    assert table.text == "command | use\na | b | pipes"


def test_items_nested_four_spaces_deep_stay_items():
    [items] = blocks_of("- outer\n    - inner\n- next\n", "a.md")
    assert items.text == "- outer\n    - inner\n- next"


def test_an_unclosed_fence_runs_to_the_end():
    [code] = blocks_of("```\n# inside\n\ntext\n", "a.md")
    assert (code.kind, code.text) == ("code", "# inside\n\ntext")


# --- plain text ---------------------------------------------------------------------------------

def test_plain_text_paragraphs_and_a_short_first_line_as_title():
    document = parse_document("notes.txt", "Shopping\n\nEggs and\nham.\n\nBread.\n")
    assert document.title == "Shopping"
    assert [(b.text, b.first_line, b.last_line) for b in document.blocks] == [
        ("Shopping", 1, 1), ("Eggs and\nham.", 3, 4), ("Bread.", 6, 6)]


def test_a_long_first_line_is_no_title():
    assert parse_document("log.txt", "x " * 100).title == "log"


# --- HTML ---------------------------------------------------------------------------------------

HTML = """<!doctype html>
<html><head><title>Page Title</title>
<meta name="description" content="A page about things">
<meta name="date" content="2020-01-02">
<style>p { color: red }</style>
<script>var x = "<p>not text</p>";</script>
</head>
<body>
<nav><a href="/">Home</a></nav>
<h1>Main</h1>
<p>First &amp; paragraph
spanning lines.</p>
<h2>Sub</h2>
<ul><li>one</li><li>two <b>bold</b></li></ul>
<pre>
code line 1
  code line 2
</pre>
<table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
<footer>Copyright footer</footer>
</body></html>
"""


def test_html_title_meta_and_date():
    document = parse_document("page.html", HTML)
    assert document.title == "Page Title"
    assert document.fields["description"] == "A page about things"
    assert document.date == "2020-01-02"


def test_html_script_style_nav_and_footer_are_not_text():
    body = " ".join(texts(HTML, "page.html"))
    assert "not text" not in body and "color" not in body
    assert "Home" not in body and "footer" not in body


def test_html_blocks_kinds_paths_and_lines():
    blocks = blocks_of(HTML, "page.html")
    assert [(b.kind, b.text, b.heading_path) for b in blocks] == [
        ("text", "First & paragraph spanning lines.", ()),
        ("list", "- one", ("Sub",)),
        ("list", "- two bold", ("Sub",)),
        ("code", "code line 1\n  code line 2", ("Sub",)),
        ("table", "k | v\na | 1", ("Sub",)),
    ]
    assert (blocks[0].first_line, blocks[0].last_line) == (11, 12)
    assert (blocks[3].first_line, blocks[3].last_line) == (16, 17)


# --- dates --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["05-Jul-2001", "2001-07-05", "5 July 2001", "July 5, 2001",
                                   "2001-07-05T10:00:00Z", "5-Jul-2001 (revised)", "Jul 5 2001"])
def test_iso_day_reads_common_formats(value):
    assert iso_day(value) == "2001-07-05"


@pytest.mark.parametrize("value", ["", "soon", "31-Feb-2001", "<date created on, in dd-mmm-yyyy format>",
                                   "Smarch 5, 2001"])
def test_iso_day_is_none_for_what_is_no_day(value):
    assert iso_day(value) is None


def test_the_date_is_never_guessed_from_the_body():
    assert parse_document("a.md", "Written on 2001-07-05.\n").date is None


# --- robustness ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["x.rst", "x.md", "x.txt", "x.html"])
@pytest.mark.parametrize("unit", ["a", "`", ":a", "[a](", "- ", "<a ", "``a", "x.\n", "> "])
def test_a_megabyte_of_one_pattern_parses(path, unit):
    text = unit * (1_000_000 // len(unit))
    document = parse_document(path, text)
    assert len(" ".join(block.text for block in document.blocks)) <= len(text) + 1000


# --- the real corpus ----------------------------------------------------------------------------

@pytest.mark.skipif(not PEPS.exists(), reason="the PEP archive is not on this machine")
def test_every_pep_parses_with_its_title_and_sections():
    with tarfile.open(PEPS, "r:xz") as archive:
        files = {member.name: archive.extractfile(member).read().decode("utf-8")
                 for member in archive.getmembers() if member.isfile() and member.name.endswith(".rst")}
    started = time.perf_counter()
    documents = {name: parse_document(name, text) for name, text in files.items()}
    print(f"\nparsed {len(documents)} PEPs in {time.perf_counter() - started:.2f}s")
    pep8 = documents["peps/pep-0008.rst"]
    assert pep8.title == "Style Guide for Python Code"
    assert ("Naming Conventions", "Prescriptive: Naming Conventions", "Function and Variable Names") in {
        block.heading_path for block in pep8.blocks}
    dated = [document for document in documents.values() if document.date]
    assert len(dated) >= len(documents) - 2
    for name, document in documents.items():
        assert document.title and document.title != Path(name).stem, name
        for block in document.blocks:
            assert block.text.strip() and 1 <= block.first_line <= block.last_line, (name, block)
