"""chunk_document, embed_text, document_text: sections packed into chunks, cut only where a reader pauses."""

from __future__ import annotations

import statistics
import tarfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memlane.documents.chunk import (
    chunk_document,
    document_text,
    embed_text,
    sentence_starts,
)
from memlane.documents.model import Block, ParsedDocument
from memlane.documents.parse import parse_document
from memlane.errors import InputError

PEPS = Path("/work/shared/data/peps/peps-rst.tar.xz")


def document(*blocks: Block, title: str = "Guide", fields: dict[str, str] | None = None) -> ParsedDocument:
    return ParsedDocument(path="guide.rst", format="rst", title=title, fields=fields or {}, blocks=blocks)


def block(text: str, *path: str, first: int = 1, last: int | None = None, kind: str = "text") -> Block:
    return Block(tuple(path), text, first, first + text.count("\n") if last is None else last, kind)


def sentences(count: int, words: int = 12) -> str:
    return " ".join(f"Sentence {n} " + " ".join(["word"] * words) + "." for n in range(count))


# --- packing ------------------------------------------------------------------------------------

def test_a_document_without_blocks_has_no_chunks():
    assert chunk_document(document()) == []


def test_blocks_of_one_section_share_a_chunk_joined_by_a_blank_line():
    [chunk] = chunk_document(document(block("First paragraph of the intro section.", "Intro", first=3),
                                      block("Second paragraph of the intro section.", "Intro", first=5)))
    assert chunk.text == "First paragraph of the intro section.\n\nSecond paragraph of the intro section."
    assert (chunk.heading_path, chunk.first_line, chunk.last_line, chunk.position) == (("Intro",), 3, 5, 0)


def test_blocks_that_do_not_fit_start_a_new_chunk():
    paragraph = sentences(4)
    chunks = chunk_document(document(*[block(paragraph, "A", first=n) for n in range(1, 5)]), max_chars=600)
    assert [chunk.text.count("Sentence 0") for chunk in chunks] == [2, 2]
    assert [chunk.position for chunk in chunks] == [0, 1]


def test_a_new_heading_path_starts_a_new_chunk():
    text = sentences(2)
    chunks = chunk_document(document(block(text, "A"), block(text, "B"), block(text, "B", "C")))
    assert [chunk.heading_path for chunk in chunks] == [("A",), ("B",), ("B", "C")]


def test_a_tiny_section_joins_the_chunk_of_its_first_subsection():
    chunks = chunk_document(document(block("Three parts follow.", "Spec", first=10),
                                     block(sentences(2), "Spec", "Syntax", first=14)))
    assert len(chunks) == 1
    assert chunks[0].heading_path == ("Spec", "Syntax")
    assert chunks[0].text.startswith("Three parts follow.\n\nSentence 0")
    assert (chunks[0].first_line, chunks[0].last_line) == (10, 14)


def test_a_tiny_section_before_a_sibling_stays_its_own_chunk():
    chunks = chunk_document(document(block("Placed in the public domain.", "Copyright"),
                                     block(sentences(2), "Appendix")))
    assert [chunk.heading_path for chunk in chunks] == [("Copyright",), ("Appendix",)]


# --- cutting long blocks ------------------------------------------------------------------------

def test_a_long_paragraph_is_cut_between_sentences():
    chunks = chunk_document(document(block(sentences(30), "A")), max_chars=300)
    assert len(chunks) > 3
    for chunk in chunks:
        assert len(chunk.text) <= 300
        assert chunk.text.startswith("Sentence ") and chunk.text.endswith("word.")


def test_abbreviations_initials_and_numbers_do_not_end_a_sentence():
    text = "Use e.g. Python 3.8 here. See Mr. Smith and J. Doe, etc. Then stop! Why? Because. done."
    starts = sentence_starts(text)
    assert [text[at:at + 4] for at in starts] == ["See ", "Why?", "Beca"]


def test_closing_quotes_and_brackets_stay_with_their_sentence():
    text = 'He said "stop." Then (quietly.) "Go" she said.'
    assert [text[at:] for at in sentence_starts(text)] == ['Then (quietly.) "Go" she said.', '"Go" she said.']


def test_a_cut_never_falls_inside_a_sentence_that_fits():
    text = "Short one. " + "A much longer second sentence that runs on " * 3 + "to its end. Third here."
    for max_chars in range(len("Short one. A"), len(text)):
        for chunk in chunk_document(document(block(text, "A")), max_chars=max_chars):
            assert chunk.text.endswith(".") or len(chunk.text) > max_chars - 45, (max_chars, chunk.text)


def test_a_sentence_longer_than_the_limit_is_cut_at_its_last_space():
    text = "alpha beta gamma delta epsilon zeta eta theta"
    chunks = chunk_document(document(block(text, "A")), max_chars=20)
    assert [chunk.text for chunk in chunks] == ["alpha beta gamma", "delta epsilon zeta", "eta theta"]


def test_a_token_longer_than_the_limit_is_cut_at_the_limit():
    chunks = chunk_document(document(block("x" * 25, "A")), max_chars=10)
    assert [chunk.text for chunk in chunks] == ["x" * 10, "x" * 10, "x" * 5]


def test_code_is_cut_between_lines_and_its_lines_are_counted():
    code = "\n".join(f"line_{n} = {n}" for n in range(1, 41))  # source lines 101-140
    chunks = chunk_document(document(block(code, "A", first=101, kind="code")), max_chars=100)
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert all(line.startswith("line_") for line in lines)
        assert (chunk.first_line, chunk.last_line) == (100 + int(lines[0].split("_")[1].split()[0]),
                                                       100 + int(lines[-1].split("_")[1].split()[0]))


def test_a_code_block_that_fits_is_never_cut():
    code = "\n".join(f"value_{n} = {n}" for n in range(10))
    chunks = chunk_document(document(block(sentences(9), "A"), block(code, "A", kind="code")), max_chars=700)
    assert [chunk.text for chunk in chunks if "value_" in chunk.text] == [code]


def test_chunk_lines_point_at_the_source_through_parsing():
    source = "Intro\n=====\n\nThe loop::\n\n" + "".join(f"    step_{n}()\n" for n in range(60))
    chunks = chunk_document(parse_document("loop.rst", source), max_chars=150)
    lines = source.split("\n")
    for chunk in chunks[1:]:
        assert lines[chunk.first_line - 1].strip() == chunk.text.split("\n")[0].strip()
        assert lines[chunk.last_line - 1].strip() == chunk.text.split("\n")[-1].strip()


def test_code_keeps_its_indentation_when_cut():
    code = "def f():\n" + "\n".join(f"    x{n} = {n}" for n in range(30))
    chunks = chunk_document(document(block(code, "A", kind="code")), max_chars=80)
    assert chunks[1].text.startswith("    x")


def test_a_long_list_is_cut_between_items():
    items = "\n".join(f"- item {n} says something short." for n in range(40))
    chunks = chunk_document(document(block(items, "A", kind="list")), max_chars=200)
    for chunk in chunks:
        assert all(line.startswith("- item ") and line.endswith(".") for line in chunk.text.split("\n"))


def test_the_lines_of_a_reflowed_paragraph_are_estimated_within_the_block():
    chunks = chunk_document(document(block(sentences(40), "A", first=20, last=59)), max_chars=400)
    firsts = [chunk.first_line for chunk in chunks]
    assert firsts[0] == 20 and firsts == sorted(firsts)
    assert all(20 <= chunk.first_line <= chunk.last_line <= 59 for chunk in chunks)
    assert chunks[-1].last_line >= 57


@settings(max_examples=60, deadline=None)
@given(paragraphs=st.lists(st.tuples(st.sampled_from(["A", "B"]),
                                     st.lists(st.sampled_from(["Word", "e.g.", "3.8", "end.", "Yes!", "x" * 30,
                                                               "(Aside.)", "etc.", "\n"]), max_size=80),
                                     st.sampled_from(["text", "list", "code"])),
                           max_size=8),
       max_chars=st.integers(min_value=30, max_value=400))
def test_chunking_never_loses_or_reorders_words(paragraphs, max_chars):
    blocks = [block(" ".join(words), heading, kind=kind) for heading, words, kind in paragraphs
              if "".join(words).strip()]
    chunks = chunk_document(document(*blocks), max_chars=max_chars)
    assert " ".join(chunk.text for chunk in chunks).split() == " ".join(b.text for b in blocks).split()
    assert all(len(chunk.text) <= max_chars for chunk in chunks)


def test_max_chars_must_be_positive():
    with pytest.raises(InputError, match="max_chars"):
        chunk_document(document(block("text", "A")), max_chars=0)


# --- what is embedded ---------------------------------------------------------------------------

def test_embed_text_leads_with_title_and_heading_path():
    doc = document(block("Use lowercase.", "Naming", "Functions"), title="Style Guide")
    [chunk] = chunk_document(doc)
    assert embed_text(doc, chunk) == "Style Guide > Naming > Functions\nUse lowercase."


def test_embed_text_names_the_pep():
    doc = document(block("Use lowercase.", "Naming"), title="Style Guide for Python Code", fields={"PEP": "8"})
    [chunk] = chunk_document(doc)
    assert embed_text(doc, chunk).split("\n")[0] == "PEP 8: Style Guide for Python Code > Naming"


def test_document_text_has_title_useful_fields_and_the_first_paragraph():
    fields = {"PEP": "8", "Title": "Style Guide", "Author": "Guido <guido@python.org>", "Status": "Active",
              "Type": "Process", "Created": "05-Jul-2001", "Post-History": "05-Jul-2001, 01-Aug-2013"}
    doc = document(block("print(1)", "Intro", kind="code"), block("This document gives conventions.", "Intro"),
                   title="Style Guide", fields=fields)
    assert document_text(doc) == ("PEP 8: Style Guide\nStatus: Active. Type: Process. Created: 2001-07-05.\n"
                                  "This document gives conventions.")


def test_document_text_is_cut_between_sentences():
    doc = document(block(sentences(40), "Abstract"), title="Long")
    text = document_text(doc, max_chars=300)
    assert len(text) <= 300 and text.endswith("word.")


# --- the real corpus ----------------------------------------------------------------------------

@pytest.mark.skipif(not PEPS.exists(), reason="the PEP archive is not on this machine")
def test_every_pep_chunks_without_losing_words():
    with tarfile.open(PEPS, "r:xz") as archive:
        files = {member.name: archive.extractfile(member).read().decode("utf-8")
                 for member in archive.getmembers() if member.isfile() and member.name.endswith(".rst")}
    started = time.perf_counter()
    documents = [parse_document(name, text) for name, text in files.items()]
    chunks = [chunk_document(doc, max_chars=1000) for doc in documents]
    elapsed = time.perf_counter() - started
    lengths = [len(chunk.text) for doc_chunks in chunks for chunk in doc_chunks]
    print(f"\nparsed and chunked {len(documents)} PEPs in {elapsed:.2f}s: {len(lengths)} chunks, "
          f"mean {statistics.mean(lengths):.0f} characters")
    for doc, doc_chunks in zip(documents, chunks):
        assert " ".join(c.text for c in doc_chunks).split() == " ".join(b.text for b in doc.blocks).split()
        assert all(len(chunk.text) <= 1000 for chunk in doc_chunks)
        assert [chunk.position for chunk in doc_chunks] == list(range(len(doc_chunks)))
