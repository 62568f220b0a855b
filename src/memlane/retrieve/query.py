"""What a question asks for, read without a model: its terms, names, exact strings and time."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from memlane.ingest.temporal import TimeRange, parse_query_range

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
    during each few for from further had hadn't has hasn't have haven't having he he'd he'll he's her here
    here's hers herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself
    let's me more most mustn't my myself no nor not of off on once only or other ought our ours ourselves
    out over own same shan't she she'd she'll she's should shouldn't so some such than that that's the their
    theirs them themselves then there there's these they they'd they'll they're they've this those through
    to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when when's
    where where's which while who who's whom why why's with won't would wouldn't you you'd you'll you're
    you've your yours yourself yourselves also just get got go went kind sort thing things something
    anything would like likely might may will shall""".split()
)

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")
# An email's local part starts where a run of its characters starts (the lookbehind): tried from
# every character of a long run ("a" * 100_000), the scan to the run's end made the search quadratic.
# `_EMAIL_AT` continues a run where the previous email ended, as an unanchored search would.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)+")
_EMAIL_AT = re.compile(r"[\w.+-]++@[\w-]+(?:\.[\w-]+)+")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
# Possessive: a quote is tried at most 200 characters ahead and never backed into ("“" * 1_000_000).
_QUOTED = re.compile(r"\"([^\"]{2,200}+)\"|“([^”]{2,200}+)”")
# Codes and long numbers (order numbers, phone numbers, "AB-1234"); plain years are too common to anchor on.
# Every branch holds a digit; no lookahead scans ahead for one (from each boundary of "a-a-a-...",
# that scan was quadratic).
_CODE = re.compile(r"\b(?:[A-Za-z]+-?\d[\w-]*|\d{5,}|\d[\d-]{4,}\d)\b")
_CAPITALIZED = re.compile(r"\b[A-Z][a-zA-Z'’\-]+(?:\s+[A-Z][a-zA-Z'’\-]+)*")
# Questions whose answer is a time: "When did ...", "What year ...", "How long ago ...".
_ASKS_WHEN = re.compile(r"^\W*(?:when|since when|what (?:year|month|date|day|time)|which (?:year|month|day)|how long ago)\b",
                        re.IGNORECASE)
_SENTENCE_START = re.compile(r"(?:^|[.!?]\s+)([A-Z][a-zA-Z'’\-]*)")


def content_terms(text: str) -> list[str]:
    """Lower-cased words worth matching: no stopwords, possessive 's dropped, order kept, no repeats."""
    terms: list[str] = []
    for word in _WORD.findall(text):
        word = word.lower().replace("’", "'")
        if word.endswith("'s"):
            word = word[:-2]
        word = word.strip("'-")
        if len(word) < 2 and not word.isdigit():
            continue
        if word in STOPWORDS:
            continue
        terms.append(word)
    return list(dict.fromkeys(terms))


def _emails(text: str) -> list[str]:
    """The emails in `text`, as `re.findall` of the unanchored pattern finds them, in linear time."""
    found: list[str] = []
    position = 0
    while True:
        # After an email, the next may start in the same run of local-part characters ("a@b.c+d@e.f").
        match = (found and _EMAIL_AT.match(text, position)) or _EMAIL.search(text, position)
        if match is None:
            return found
        found.append(match.group(0))
        position = match.end()


def lookup_needles(text: str) -> list[str]:
    """Strings to find verbatim: memory ids, emails, quoted phrases, codes and long numbers."""
    needles = _UUID.findall(text) + _emails(text)
    needles += [a or b for a, b in _QUOTED.findall(text)]
    needles += [c for c in _CODE.findall(text) if not _UUID.search(c)]
    return list(dict.fromkeys(n.strip() for n in needles if n.strip()))


def entity_mentions(text: str, known: list[str] | None = None) -> list[str]:
    """Names in a question: capitalized words past the sentence start, and known speakers in any case."""
    # A capital at the start of a sentence says nothing about a name.
    sentence_starts = {m.start(1) for m in _SENTENCE_START.finditer(text)}
    found: list[str] = []
    for match in _CAPITALIZED.finditer(text):
        words = match.group(0).split()
        if match.start() in sentence_starts:
            words = words[1:]
        words = [w for w in words if w.lower() not in STOPWORDS]
        # "Caroline's" and "James'" name Caroline and James; a closing quote ('The Nightingale')
        # is not part of the name either (left on, it was looked for in the texts).
        phrase = re.sub(r"['’]s$", "", " ".join(words)).strip("'’-")
        if phrase:
            found.append(phrase)
    lowered = text.lower()
    for name in known or []:
        if name and re.search(r"\b" + re.escape(name.lower()) + r"\b", lowered):
            found.append(name)
    return list(dict.fromkeys(found))


@dataclass
class QueryAnalysis:
    text: str
    terms: list[str]
    needles: list[str]
    entities: list[str]
    time_range: TimeRange | None
    asks_when: bool = False  # the answer is a time ("When did ...?")
    notes: list[str] = field(default_factory=list)


def analyze_query(text: str, now: date | datetime | None, known_entities: list[str] | None = None) -> QueryAnalysis:
    time_range = parse_query_range(text, now) if now is not None else None
    return QueryAnalysis(
        text=text,
        terms=content_terms(text),
        needles=lookup_needles(text),
        entities=entity_mentions(text, known_entities),
        time_range=time_range,
        asks_when=bool(_ASKS_WHEN.match(text)),
    )
