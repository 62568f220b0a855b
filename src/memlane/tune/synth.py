"""Synthetic queries for the memories of a store, with or without an LLM.

With an LLM (`llm.base_url` set): each sampled turn is shown with its speaker and date, and the
model writes the question a user would later ask whose answer is in it.

Without one, two documented rules, deterministic for a seed:
1. Questions asked in the conversation. When a turn asks a question ("What did you paint
   last week?") and the next turn, by someone else, answers it, the question becomes the query
   and the answer the positive. Second-person words are rewritten to the answerer's name
   ("What did Mel paint last week?"). Questions with fewer than two content words ("How are
   you?") are skipped.
2. Key-phrase questions for the remaining sampled turns: the turn's two or three rarest content
   words within its user's memories (by document frequency; turns with fewer than three content
   words are skipped) go into a template, "What did
   {speaker} say about {a} and {b}?", or, for a turn with a resolved date, "When did {speaker}
   mention {a} and {b}?".
Rule 1 gives natural paraphrases; rule 2 mostly teaches the model the store's vocabulary.

A user who also has document chunks (`Memory.add_documents`) gets questions for them too, written
by doc_synth.py's rules or its LLM prompt: of the `limit` examples, the chunks' share is their
share of the user's turns and chunks (`chunk_share`); turns take what the chunks leave. A store
of conversations only gets exactly what it got before documents existed.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Callable, Sequence

from memlane.records import MemoryRecord
from memlane.retrieve.query import content_terms
from memlane.store import Store, scan
from memlane.tune.doc_synth import chunk_llm_queries, chunk_rule_queries, llm_examples, user_chunks
from memlane.tune.examples import Example

_SENTENCE = re.compile(r"[^.!?]*\?")
_CONTRACTIONS = {"re": "is", "ve": "has", "ll": "will", "d": "would"}
_CONTRACTED = re.compile(r"\byou['’](re|ve|ll|d)\b", re.I)
_SECOND_PERSON = [
    (re.compile(r"\b(are|were|have|do|did|will|would|can|could|should)\s+you\b", re.I), None),
    (re.compile(r"\s*\byourself\b", re.I), ""),
    (re.compile(r"\byours\b", re.I), "{name}'s"),
    (re.compile(r"\byour\b", re.I), "{name}'s"),
    (re.compile(r"\byou\b", re.I), "{name}"),
]
_AGREE = {"are": "is", "were": "was", "have": "has", "do": "does"}
MIN_CONTENT_WORDS = 2
MIN_KEYPHRASE_WORDS = 3  # a turn with fewer content words ("haha yes") says too little to ask about
LLM_PROMPT = (
    "Here is one message from a conversation{date}.\n\n{speaker}: {text}\n\n"
    "Write one question that someone could ask months later whose answer is in this message. "
    "Name people instead of saying 'you' or 'I', and do not copy the message's wording. "
    'Answer with JSON: {{"question": "..."}}'
)


def user_turns(store: Store, user_id: str) -> list[MemoryRecord]:
    """A user's turn memories, in session and turn order."""
    turns = scan(store, user_id, {"node_type": "turn"})
    return sorted(turns, key=lambda r: (r.session_date or "", r.session_id or "", r.turn_index or 0))


def to_third_person(question: str, name: str) -> str:
    """Rewrite a question addressed to `name` ('did you', 'your') to one about them."""
    def auxiliary(match: re.Match[str]) -> str:
        verb = match.group(1)
        third = _AGREE.get(verb.lower(), verb)
        return f"{third[0].upper() + third[1:] if verb[0].isupper() else third} {name}"

    text = _CONTRACTED.sub(lambda m: f"{name} {_CONTRACTIONS[m.group(1).lower()]}", question)
    text = _SECOND_PERSON[0][0].sub(auxiliary, text)
    for pattern, replacement in _SECOND_PERSON[1:]:
        text = pattern.sub(replacement.format(name=name), text)
    return " ".join(text.split())


def conversation_questions(turns: Sequence[MemoryRecord]) -> list[tuple[str, MemoryRecord]]:
    """(query, answering turn) for every question in a turn that the next turn, by another speaker, answers."""
    pairs = []
    for asking, answering in zip(turns, turns[1:]):
        if asking.session_id != answering.session_id or not asking.speaker or not answering.speaker:
            continue
        if asking.speaker == answering.speaker:
            continue
        questions = [q.strip() for q in _SENTENCE.findall(asking.text)]
        questions = [q for q in questions if len(content_terms(q)) >= MIN_CONTENT_WORDS]
        if questions:
            longest = max(questions, key=lambda q: len(content_terms(q)))
            pairs.append((to_third_person(longest, answering.speaker), answering))
    return pairs


def keyphrase_query(record: MemoryRecord, document_frequency: Counter, rng: random.Random) -> str | None:
    """A template question from a turn's rarest content words, or None for a turn with too few."""
    speaker_terms = set(content_terms(record.speaker or ""))
    terms = [t for t in dict.fromkeys(content_terms(record.text)) if t not in speaker_terms and not t.isdigit()]
    if len(terms) < MIN_KEYPHRASE_WORDS:
        return None
    rarest = sorted(terms, key=lambda t: (document_frequency[t], terms.index(t)))[: rng.choice((2, 3))]
    phrase = ", ".join(rarest[:-1]) + f" and {rarest[-1]}"
    who = record.speaker or "I"
    if record.event_dates and rng.random() < 0.5:
        return f"When did {who} mention {phrase}?"
    return f"What did {who} say about {phrase}?"


def chunk_share(limit: int, turns: int, chunks: int) -> int:
    """How many of `limit` examples go to document chunks: round(limit x chunks / (turns + chunks)),
    0 when the user has no chunks, `limit` when they have no turns."""
    if chunks == 0:
        return 0
    return round(limit * chunks / (turns + chunks))


def rule_queries(store: Store, user_id: str, limit: int, seed: int = 42) -> list[Example]:
    """Up to `limit` LLM-free examples for one user: from their document chunks (their share, see
    `chunk_share`), and from their turns (conversation questions first, then key phrases)."""
    turns = user_turns(store, user_id)
    chunks = user_chunks(store, user_id)
    share = chunk_share(limit, len(turns), len(chunks))
    from_chunks = chunk_rule_queries(chunks, user_id, share, seed) if share else []
    return turn_rule_queries(turns, user_id, limit - len(from_chunks), seed) + from_chunks


def turn_rule_queries(turns: Sequence[MemoryRecord], user_id: str, limit: int, seed: int = 42) -> list[Example]:
    """Up to `limit` LLM-free examples from a user's `turns` (in `user_turns` order): conversation
    questions first, then key phrases."""
    rng = random.Random(f"{seed}:{user_id}")
    document_frequency: Counter = Counter()
    for record in turns:
        document_frequency.update(set(content_terms(record.text)))
    examples = [
        Example(query=q, user_id=user_id, positive_ids=[r.id], positives=[r.embed_text], source="synthetic-rules:question")
        for q, r in conversation_questions(turns)
    ]
    rng.shuffle(examples)
    examples = examples[:limit]
    taken = {e.positive_ids[0] for e in examples}
    rest = [r for r in turns if r.id not in taken]
    rng.shuffle(rest)
    for record in rest:
        if len(examples) >= limit:
            break
        query = keyphrase_query(record, document_frequency, rng)
        if query:
            examples.append(Example(query=query, user_id=user_id, positive_ids=[record.id],
                                    positives=[record.embed_text], source="synthetic-rules:keyphrase"))
    return examples


def llm_queries(store: Store, user_id: str, limit: int, llm, seed: int = 42,
                on_error: Callable[[str], None] = lambda _: None) -> list[Example]:
    """Up to `limit` examples for one user, the queries written by `llm` (an `LLMClient`): for
    their document chunks (their share, see `chunk_share`) and for their turns."""
    rng = random.Random(f"{seed}:{user_id}")
    turns = [r for r in user_turns(store, user_id) if len(content_terms(r.text)) >= MIN_CONTENT_WORDS]
    chunks = user_chunks(store, user_id)
    share = chunk_share(limit, len(turns), len(chunks))
    from_chunks = chunk_llm_queries(chunks, user_id, share, llm, seed, on_error=on_error) if share else []
    picked = rng.sample(turns, min(limit - len(from_chunks), len(turns)))
    prompts = [[{"role": "user", "content": LLM_PROMPT.format(
        date=f" on {r.session_date[:10]}" if r.session_date else "", speaker=r.speaker or "someone", text=r.text)}]
        for r in picked]
    return llm_examples(picked, llm.map(prompts, json_output=True), user_id, "synthetic-llm", on_error) + from_chunks
