"""Synthetic questions for document chunks: each rule on hand-written chunks, the sampling over
documents, and a store of Markdown files through synthesis and mining."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from memlane.config import EmbedderConfig, LLMConfig
from memlane.errors import InputError
from memlane.llm import LLMClient
from memlane.records import MemoryRecord
from memlane.store import open_store
from memlane.tune.doc_synth import (
    chunk_llm_queries,
    chunk_rule_queries,
    heading_kind,
    heading_questions,
    is_code,
    is_link_list,
    keyphrase_question,
    keyphrase_terms,
    sentence_question,
    sentence_questions,
    spread_over_documents,
    topic_phrase,
)
from memlane.tune.gate import check_scorable, evaluate
from memlane.tune.mine import mine, order_chunk_candidates
from memlane.tune.synth import chunk_share, rule_queries

STYLE = "Style Guide for Python Code"
PATHLIB = "The pathlib module -- object-oriented filesystem paths"
NAMING = "Function names should be lowercase, with words separated by underscores as necessary to improve readability."
CODE = "def long_function_name(\n        var_one, var_two,\n        var_three):\n    print(var_one)\nfoo = bar(1, 2)"
LINKS = "[1] PEP 7, Style Guide for C Code https://peps.python.org/pep-0007/\n[2] Barry's style guide http://barry.warsaw.us/"


def _chunk(i, text, source="peps/pep-0008.rst", title=STYLE, section="Naming Conventions",
           position=None):
    return MemoryRecord(
        id=f"c{i}", user_id="u", text=text, embed_text=f"{title} > {section}\n{text}", node_type="chunk",
        session_id=f"doc:{source}", turn_index=i if position is None else position,
        metadata={"source": source, "title": title, "section": section, "lines": [1, 2], "document_id": source},
    )


# -- rule 1: headings ----------------------------------------------------------------------------

@pytest.mark.parametrize("title, topic", [
    (STYLE, "the style guide"),
    ("PEP 8: Style Guide for Python Code", "the style guide"),
    (PATHLIB, "the pathlib module"),
    ("Adding A Secrets Module To The Standard Library", "the secrets module"),
    ("Assignment Expressions", "assignment expressions"),
    ("tomllib: Support for Parsing TOML in the Standard Library", "tomllib"),
])
def test_a_title_is_shortened_to_the_topic_a_reader_would_name(title, topic):
    assert topic_phrase(title, {"Python"}) == topic


@pytest.mark.parametrize("heading, kind", [
    ("Rationale", "rationale"), ("3. Rejected Ideas", "rejected"), ("Backwards Compatibility", "compatibility"),
    ("Part 2: Specification", "specification"), ("Copyright", "boilerplate"), ("Tabs or Spaces?", "question"),
    ("Designing for Inheritance", "gerund"), ("Naming Conventions", "noun"), ("Overriding Principle", "noun"),
    ("A Foolish Consistency is the Hobgoblin of Little Minds", "statement"),
])
def test_a_heading_s_form_is_recognized(heading, kind):
    assert heading_kind(heading) == kind


def test_a_noun_phrase_heading_asks_what_the_document_says_about_it():
    section = ("Naming Conventions", "Prescriptive: Naming Conventions", "Function and Variable Names")
    questions = heading_questions(STYLE, section, name="PEP 8")
    assert "How should function and variable names be written?" in questions
    assert "What does the style guide say about function and variable names?" in questions
    assert "What are the naming conventions for function and variable names?" in questions
    assert not any(STYLE.lower() in q.lower() or "PEP 8" in q for q in questions)  # a specific heading: no exact title


@pytest.mark.parametrize("title, section, expected", [
    ("Assignment Expressions", ("Motivation",), "Why were assignment expressions proposed?"),
    ("Assignment Expressions", ("Rejected Ideas",), "What alternatives to assignment expressions were rejected?"),
    (PATHLIB, ("Backwards Compatibility",), "Does the pathlib module break backwards compatibility?"),
    (PATHLIB, ("Rationale",), "Why was the pathlib module designed this way?"),
    (PATHLIB, ("Security Implications",), "Does the pathlib module have security implications?"),
    (PATHLIB, ("Proposal", "Class hierarchy", "Rationale"), "Why was the class hierarchy designed this way?"),
    (STYLE, ("Naming Conventions", "Designing for Inheritance"), "How should I go about designing for inheritance?"),
    (STYLE, ("Code Lay-out", "Tabs or Spaces?"), "Tabs or spaces?"),
    ("Hashes in lock files", ("Rejected Ideas", "Rely only on hash checking"), "Why not rely only on hash checking?"),
])
def test_each_heading_form_has_its_templates(title, section, expected):
    assert expected in heading_questions(title, section)


def test_a_generic_heading_names_the_document_by_topic_more_often_than_exactly():
    questions = heading_questions("Assignment Expressions", ("Motivation",), name="PEP 572")
    assert sum("PEP 572" in q for q in questions) == 1 < len(questions)


def test_boilerplate_and_sentence_headings_get_no_heading_question():
    assert heading_questions(STYLE, ("Copyright",)) == []
    assert heading_questions(STYLE, ("A Foolish Consistency is the Hobgoblin of Little Minds",)) == []


# -- rule 2: sentences ---------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, question", [
    (NAMING, "Should function names be lowercase?"),
    ("Names must not contain spaces.", "Can names contain spaces?"),
    ("Identifiers must be ASCII.", "Must identifiers be ASCII?"),
    ("Bare except clauses should not be used.", "Should bare except clauses be used?"),
    ("A PEP is a design document providing information to the Python community.", "What is a PEP?"),
    ("Code in the core Python distribution should always use UTF-8.",
     "Should code in the core Python distribution always use UTF-8?"),
    ("It should be noted that this works.", None),  # a pronoun is no subject
    ("In most cases the scope is the current scope.", None),  # nor is a preposition
    ("The file is a text file.", None),  # "the" and one word: not a clear noun phrase
    ("The default is 79 characters.", None),  # "is" without "a"/"an" defines nothing
])
def test_a_normative_or_definitional_sentence_becomes_a_question_about_its_subject(sentence, question):
    assert sentence_question(sentence, {"Python"}) == question


def test_code_and_link_lists_get_no_sentence_question():
    assert is_code(CODE) and not is_code(NAMING)
    assert is_link_list(LINKS) and not is_link_list(NAMING)
    assert sentence_questions(CODE) == [] and sentence_questions(LINKS) == []
    assert sentence_questions(f"{NAMING}\n\n{CODE[:20]}") == ["Should function names be lowercase?"]


# -- rule 3: key phrases -------------------------------------------------------------------------

def test_keyphrases_are_the_rarest_words_the_chunk_repeats():
    text = "Walrus targets bind in the containing scope. A walrus in a comprehension binds targets outside."
    frequency = Counter({"walrus": 3, "targets": 2, "comprehension": 1, "containing": 1, "scope": 9})
    assert keyphrase_terms(text, frequency, 2) == ["targets", "walrus"]  # repeated first, then rarest
    question = keyphrase_question(text, frequency, random.Random(0), topic="assignment expressions")
    assert "targets" in question and "walrus" in question and question.endswith("?")
    assert keyphrase_question("Too short.", frequency, random.Random(0)) is None


# -- sampling and examples -----------------------------------------------------------------------

def _library():
    """One long document (12 chunks) and three short ones (2 chunks each)."""
    long = [_chunk(i, f"Walrus section {i} talks about targets and scopes number {i}.",
                   source="peps/pep-0572.rst", title="Assignment Expressions", section=f"Part {i}")
            for i in range(12)]
    short = [_chunk(100 + 10 * d + i, f"Document {d} explains kettles, knives and spoons in part {i}.",
                    source=f"notes/{d}.md", title=f"Kitchen note {d}", section="Tools", position=i)
             for d in range(3) for i in range(2)]
    return long + short


def test_sampling_goes_round_robin_over_documents():
    order = spread_over_documents(_library(), random.Random(1))
    assert len({r.metadata["source"] for r in order[:4]}) == 4
    examples = chunk_rule_queries(_library(), "u", 4, seed=1)
    assert len(examples) == 4
    assert len({e.positives[0].split(" > ")[0] for e in examples}) == 4


def test_rule_queries_are_deterministic_for_a_seed_and_bounded():
    chunks = _library()
    first, again = chunk_rule_queries(chunks, "u", 10, seed=3), chunk_rule_queries(chunks, "u", 10, seed=3)
    assert [(e.query, e.positive_ids) for e in first] == [(e.query, e.positive_ids) for e in again]
    assert len(first) == 10
    other = chunk_rule_queries(chunks, "u", 10, seed=4)
    assert [(e.query, e.positive_ids) for e in other] != [(e.query, e.positive_ids) for e in first]
    for example in first:
        chunk = next(c for c in chunks if c.id == example.positive_ids[0])
        assert example.positives == [chunk.embed_text] and example.source.startswith("synthetic-rules:chunk-")


def test_code_and_boilerplate_chunks_are_skipped():
    chunks = [_chunk(0, NAMING, section="Naming"), _chunk(1, CODE, section="Naming"),
              _chunk(2, "This document has been placed in the public domain, as written here.", section="Copyright"),
              _chunk(3, LINKS, section="Further reading")]
    examples = chunk_rule_queries(chunks, "u", 10)
    assert [e.positive_ids for e in examples] == [["c0"]]


def test_an_opening_code_chunk_is_asked_about_by_its_heading_only():
    examples = chunk_rule_queries([_chunk(0, CODE, section="Code Lay-out > Indentation")], "u", 5)
    assert [e.source for e in examples] == ["synthetic-rules:chunk-heading"]


def test_chunks_share_the_examples_in_proportion_to_turns():
    assert chunk_share(300, turns=100, chunks=0) == 0
    assert chunk_share(300, turns=0, chunks=10) == 300
    assert chunk_share(300, turns=100, chunks=50) == 100


def test_llm_questions_for_chunks_keep_good_answers_and_report_bad_ones(server):
    server.play(server.chat(json.dumps({"question": "How do I name functions in Python?"})),
                server.chat("not json at all"))
    client = LLMClient(LLMConfig(base_url=server.url, model="scripted", concurrency=1, max_retries=0))
    chunks = [_chunk(0, NAMING), _chunk(1, "Class names use CapWords.", source="peps/pep-0009.rst")]
    errors = []
    examples = chunk_llm_queries(chunks, "u", 2, client, on_error=errors.append)
    assert [e.query for e in examples] == ["How do I name functions in Python?"]
    assert examples[0].source == "synthetic-llm:chunk" and len(errors) == 1 and "not valid JSON" in errors[0]
    prompt = server.requests[0]["body"]["messages"][0]["content"]
    assert "Write one question a developer could ask" in prompt and 'section "Naming Conventions"' in prompt


# -- mining and the gate -------------------------------------------------------------------------

def test_chunk_negatives_come_from_other_documents_first_and_never_from_the_same_section():
    positive = _chunk(0, "a", source="a.md", section="Install")
    candidates = [_chunk(1, "b", source="a.md", section="Install"), _chunk(2, "c", source="a.md", section="Usage"),
                  _chunk(3, "d", source="b.md", section="Install"), _chunk(4, "e", source="c.md", section="Setup")]
    assert [r.id for r in order_chunk_candidates(candidates, [positive])] == ["c3", "c4", "c2"]
    turns = [MemoryRecord(id=f"t{i}", user_id="u", text="x", embed_text=f"x{i}") for i in range(2)]
    assert order_chunk_candidates(turns, turns[:1]) == turns  # turns keep the retriever's order


def test_a_tiered_embedder_cannot_be_gated_on_chunk_answers():
    check_scorable(EmbedderConfig(first_stage="static"), {"turn"})
    check_scorable(EmbedderConfig(), {"chunk", "turn"})
    with pytest.raises(InputError, match="first_stage"):
        check_scorable(EmbedderConfig(first_stage="static"), {"chunk"})


DOCS = {
    "kettle.md": "# Kettle guide\n\n## Descaling\n\nThe kettle should be descaled with vinegar every month.\n\n"
                 "## Filling\n\nFill the kettle with fresh water only. Never boil it empty.\n",
    "knives.md": "# Knife care\n\n## Sharpening\n\nKnives should be sharpened on a whetstone every Sunday.\n\n"
                 "## Storage\n\nA knife block is a wooden stand that keeps blades apart. Knives must not go in "
                 "the dishwasher.\n",
    "travel.md": "# Travel policy\n\n## Booking\n\nTrains should be booked for trips under five hundred "
                 "kilometres.\n\n## Expenses\n\nExpenses must be claimed within thirty days with a receipt.\n",
    "garden.md": "# Garden notes\n\n## Watering\n\nTomatoes should be watered at dawn, never at noon.\n\n"
                 "## Pruning\n\nRoses are pruned in late winter, just above an outward bud.\n",
    "bikes.md": "# Bicycle maintenance\n\n## Chains\n\nThe chain should be oiled after every wet ride.\n\n"
                "## Tyres\n\nTyre pressure must be checked weekly with a floor pump.\n",
}


@pytest.fixture
def library(tmp_path, memory):
    """`memory` holding five small Markdown files (ten chunks) for user "ana"."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    memory.add_documents(folder, user_id="ana")
    return memory


def test_a_store_of_documents_gives_chunk_examples_and_chunk_negatives(library, config):
    store = open_store(library.path, create=False)
    try:
        examples = rule_queries(store, "ana", 8, seed=5)
        chunks = {r.id: r for r in store.get_many("ana", [e.positive_ids[0] for e in examples])}
    finally:
        store.close()
    assert len(examples) == 8 and all(e.query.strip() for e in examples)
    assert all(chunks[e.positive_ids[0]].node_type == "chunk" for e in examples)
    assert len({chunks[e.positive_ids[0]].metadata["source"] for e in examples}) == 5  # every document
    assert {e.positives[0] for e in examples} == {chunks[e.positive_ids[0]].embed_text for e in examples}

    config.fine_tune.hard_negatives = 2
    mined = mine(library.path, examples, config)
    assert any(e.negatives for e in mined)
    store = open_store(library.path, create=False)
    try:
        for example in mined:
            positive = chunks[example.positive_ids[0]]
            negatives = store.get_many("ana", example.negative_ids)
            assert [r.embed_text for r in negatives] == example.negatives
            assert all(r.node_type == "chunk" and r.id != positive.id for r in negatives)
            assert not any(r.metadata["source"] == positive.metadata["source"]
                           and r.metadata["section"] == positive.metadata["section"] for r in negatives)
    finally:
        store.close()


def test_a_user_with_turns_and_chunks_gets_examples_of_both_in_proportion(library):
    library.add([{"role": "user", "content": f"My {thing} broke again yesterday, the {part} snapped off completely."}
                 for thing, part in [("kettle", "handle"), ("bike", "pedal"), ("umbrella", "spoke"), ("chair", "leg")]],
                user_id="ana", session_date="2024-05-01")
    store = open_store(library.path, create=False)
    try:
        examples = rule_queries(store, "ana", 7, seed=1)
        kinds = Counter(store.get("ana", e.positive_ids[0]).node_type for e in examples)
    finally:
        store.close()
    assert kinds["chunk"] == chunk_share(7, turns=4, chunks=10) == 5
    assert set(kinds) == {"chunk", "turn"} and kinds["turn"] <= 2


def test_the_gate_ranks_a_chunk_answer_among_the_user_s_chunks(library, config):
    store = open_store(library.path, create=False)
    try:
        examples = rule_queries(store, "ana", 6, seed=2)
    finally:
        store.close()
    evaluation = evaluate(library.path, examples, config, config.embedder)
    assert len(evaluation.per_query) == 6 and 0 < evaluation.metrics["ndcg@10"] <= 1
    assert all(q["ranks"][e.positive_ids[0]] is not None for q, e in zip(evaluation.per_query, examples))
