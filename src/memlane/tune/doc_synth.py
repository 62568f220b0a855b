"""Synthetic questions for document chunks, with or without an LLM.

The positive of every question is the chunk it was written for (its `embed_text`, the title and
section line then the text, as the index embeds it). At most `limit` chunks per user are sampled,
round-robin over documents (`spread_over_documents`): one long document does not take all.

With an LLM (`llm.base_url` set): each sampled chunk is shown with its document's title and its
section, and the model writes the question a developer would ask whose answer is in it.

Without one, three rules, deterministic for a seed. For each sampled chunk, rule 1 or 2 (at
random when both have questions) writes its question; rule 3 only when neither has one:

1. Heading questions, for the first chunk of each section. A heading names what its section
   answers, so the questions a reader brings to the section can be read off it; they teach the
   model to match how someone asks ("how should I name functions?") to how documents title
   things ("Function and Variable Names"), which neither BM25 nor a general model does well.
   The heading's form picks the templates:
   - a generic heading ("Motivation", "Rationale", "Rejected Ideas", "Specification",
     "Backwards Compatibility", "Security Implications", "How to Teach This", ...) says what
     kind of answer the section holds, not about what: the question names its subject, the
     nearest specific heading above it or the document's topic ("Why was {topic} proposed?",
     "What alternatives to {topic} were rejected?", "Does {topic} break backwards
     compatibility?");
   - a question heading ("Tabs or Spaces?") is already the question;
   - a gerund heading ("Designing for Inheritance") asks how to do it ("How should I go about
     designing for inheritance?");
   - a noun phrase ("Function and Variable Names") asks what the document says about it, with
     the rule-like forms where they fit ("How should function and variable names be
     written?", "What are the naming conventions for function and variable names?");
   - under a "Rejected Ideas" heading, a specific heading is an idea that lost ("Why not X?",
     "Why was X rejected?"); under "Examples", an example ("Is there an example of X?");
   - a heading that is a sentence ("A Foolish Consistency is the Hobgoblin of Little Minds")
     says no topic to ask about: rules 2 and 3 ask about its chunk instead;
   - boilerplate (Copyright, References, Acknowledgements, ...) gets no question, and its
     chunks are not sampled at all.
   People rarely know a document's exact title, so a question names the document by a topic
   phrase shortened from its title (`topic_phrase`: "Style Guide for Python Code" -> "the style
   guide"); only one question of a generic heading names it exactly ("Why was PEP 572
   proposed?"), and a specific heading is also asked without naming the document at all.
2. Sentence questions. A definitional or normative sentence ("Function names should be
   lowercase", "A PEP is a design document ...") is a fact the section states; turned into a
   question about its subject ("Should function names be lowercase?", "What is a PEP?") it
   gives a pair whose answer is the chunk for sure. Only sentences whose subject is a clear
   noun phrase (at most six words, no pronoun, conjunction or preposition leading it) are used,
   and chunks that are mostly code or a list of links are skipped.
3. Key-phrase questions, as synth.py's rule 2 does for turns: the chunk's two or three rarest
   content words among the user's chunks, the words it repeats first (`keyphrase_terms`), go
   into a template ("What is the policy on {a} and {b}?", "How does {a} work with {b}?"). They
   teach the model the corpus's vocabulary; being the least natural questions, they are written
   only for chunks the other rules have nothing for.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from itertools import pairwise

from memlane.documents.chunk import sentence_starts
from memlane.errors import LLMError
from memlane.records import MemoryRecord, NodeType
from memlane.retrieve.query import content_terms
from memlane.store import Store, scan
from memlane.tune.examples import Example

CHUNK = NodeType.CHUNK.value
MIN_KEYPHRASE_WORDS = 3  # as for turns: fewer content words say too little to ask about
MAX_SUBJECT_WORDS = 6  # a longer subject is a clause, not a noun phrase
MAX_PREDICATE_WORDS = 12  # a longer predicate makes a question nobody asks
CODE_SHARE = 0.5  # a chunk with less than this share of prose characters is code
LINK_SHARE = 0.5  # a chunk with at least this share of lines holding a link or a reference is a link list
DOC_LLM_PROMPT = (
    'Here is a section of the document "{title}"{section}.\n\n{text}\n\n'
    "Write one question a developer could ask whose answer is in this section. Ask it as someone "
    "who has not read the document would: do not copy its wording, and name the document by its "
    "topic rather than its exact title. "
    'Answer with JSON: {{"question": "..."}}'
)

# -- headings ------------------------------------------------------------------------------------

# Generic headings: what kind of answer a section holds. Matched on the heading in lower case,
# after numbering and labels are stripped ("3. Rationale", "Part 2: Implementation").
GENERIC_HEADINGS: dict[str, str] = {
    **dict.fromkeys(("abstract", "summary", "overview", "introduction", "scope", "description"), "overview"),
    **dict.fromkeys(("motivation", "problem", "the problem", "problem statement", "background", "use cases",
                     "goals", "rationale and goals", "motivation and rationale"), "motivation"),
    **dict.fromkeys(("rationale", "design", "design decisions", "discussion", "discussions"), "rationale"),
    **dict.fromkeys(("rejected ideas", "rejected alternatives", "alternatives", "alternative proposals",
                     "rejected proposals", "alternatives considered", "rejected alternative proposals",
                     "objections", "deferred ideas", "alternative ideas", "alternate proposals",
                     "alternative approaches", "rejected approaches"), "rejected"),
    **dict.fromkeys(("specification", "proposal", "the proposal", "semantics", "syntax", "grammar", "details",
                     "detailed specification", "proposed solution", "api", "c api", "changes",
                     "proposed changes", "syntax and semantics", "definition"), "specification"),
    **dict.fromkeys(("implementation", "reference implementation", "implementation notes",
                     "reference implementation and test cases", "implementation details"), "implementation"),
    **dict.fromkeys(("backwards compatibility", "backward compatibility", "compatibility", "transition plan",
                     "migration", "migration plan", "backwards compatibility considerations"), "compatibility"),
    **dict.fromkeys(("security implications", "security considerations", "security"), "security"),
    **dict.fromkeys(("how to teach this", "teaching", "documentation"), "teaching"),
    **dict.fromkeys(("open issues", "open questions", "unresolved issues", "issues", "resolved issues"), "open"),
    **dict.fromkeys(("performance", "performance impact", "benchmarks"), "performance"),
    **dict.fromkeys(("examples", "example", "usage", "examples of use"), "examples"),
    **dict.fromkeys(("rejection notice", "pep rejection", "rejection"), "rejection"),
    **dict.fromkeys(("pep withdrawal", "withdrawal", "withdrawal notice"), "withdrawal"),
    **dict.fromkeys(("pep deferral", "deferral", "deferral notice"), "deferral"),
    **dict.fromkeys(("acceptance", "pep acceptance", "bdfl pronouncement", "bdfl pronouncements", "pronouncement",
                     "resolution"), "acceptance"),
    **dict.fromkeys(("terminology", "definitions", "glossary"), "terminology"),
    **dict.fromkeys(("copyright", "references", "footnotes", "acknowledgements", "acknowledgments", "credits",
                     "thanks", "links", "change history", "version history", "resources",
                     "references and footnotes", "changelog", "see also", "copyright notice"), "boilerplate"),
}
# {S} is the subject; {was}, {does}, {is}, {has} agree with it (singular or plural).
GENERIC_TEMPLATES: dict[str, tuple[str, ...]] = {
    "overview": ("What {is} {S}?", "What {does} {S} propose?", "What {is} {S} about?"),
    "motivation": ("Why {was} {S} proposed?", "What problem {does} {S} solve?", "Why {is} {S} needed?"),
    "rationale": ("Why {was} {S} designed this way?", "What is the reasoning behind {S}?",
                  "What is the rationale for {S}?"),
    "rejected": ("What alternatives to {S} were rejected?", "Which other designs were considered for {S}?",
                 "Why weren't other approaches to {S} chosen?"),
    "specification": ("How {does} {S} work?", "What exactly {does} {S} specify?", "What are the details of {S}?"),
    "implementation": ("Is there an implementation of {S}?", "How {is} {S} implemented?",
                       "Where can I find the code for {S}?"),
    "compatibility": ("{Does} {S} break backwards compatibility?", "Will {S} break existing code?",
                      "{Is} {S} backwards compatible?"),
    "security": ("{Does} {S} have security implications?", "{Is} {S} a security risk?",
                 "What are the security concerns with {S}?"),
    "teaching": ("How should {S} be taught?", "How do I explain {S} to beginners?"),
    "open": ("What questions are still open about {S}?", "What is unresolved in {S}?"),
    "performance": ("{Does} {S} affect performance?", "How fast {is} {S}?", "What is the performance impact of {S}?"),
    "examples": ("Is there an example of {S}?", "How do I use {S}?", "What does {S} look like in code?"),
    "rejection": ("Why {was} {S} rejected?", "{Was} {S} accepted?"),
    "withdrawal": ("Why {was} {S} withdrawn?", "What happened to {S}?"),
    "deferral": ("Why {was} {S} deferred?", "What happened to {S}?"),
    "acceptance": ("{Was} {S} accepted?", "Who approved {S}?"),
    "terminology": ("What do the terms used in {S} mean?", "How {does} {S} define its terms?"),
}
_AGREEMENT = {"was": ("was", "were"), "does": ("does", "do"), "is": ("is", "are"), "has": ("has", "have")}
# Parent headings of a "rules" kind: "Naming Conventions > Function Names" -> "What are the naming
# conventions for function names?"
_RULE_PARENTS = frozenset({"conventions", "rules", "recommendations", "guidelines", "requirements",
                           "restrictions", "considerations", "policies", "principles"})
# Head nouns of things one writes: "How should X be written?"
_WRITTEN = frozenset({"name", "names", "comment", "comments", "docstring", "docstrings", "string", "strings",
                      "quote", "quotes", "import", "imports", "line", "lines", "indentation", "whitespace",
                      "annotation", "annotations", "spaces", "tabs", "arguments", "constants", "messages",
                      "identifiers", "literals", "expressions", "statements", "commas", "headers", "titles"})
# Words ending in -ing that are nouns or adjectives, not the verb of a gerund heading.
_NOT_GERUNDS = frozenset({"string", "strings", "thing", "things", "naming", "packaging", "threading", "versioning",
                          "warning", "warnings", "setting", "settings", "building", "opening", "meaning",
                          "encoding", "encodings", "logging", "typing", "spring", "during", "pending", "missing",
                          "existing", "remaining", "following", "working", "matching", "ongoing", "testing", "scoping",
                          "tracing", "profiling", "scheduling", "licensing", "funding", "voting", "booting",
                          "nothing", "something", "anything", "everything", "morning", "evening", "ring",
                          "king", "bring", "ping", "sing", "wing", "timing", "ordering", "padding", "escaping",
                          "caching", "hashing", "pickling", "formatting", "indexing", "slicing", "mapping",
                          "mappings", "binding", "bindings", "handling", "processing", "parsing", "rounding"})
# Singular head nouns that want "the" before them ("the secrets module", "the style guide").
_COUNTABLE = frozenset({"module", "guide", "function", "statement", "class", "type", "operator", "method",
                        "package", "protocol", "tag", "api", "format", "keyword", "decorator", "file", "field",
                        "hook", "mechanism", "object", "schedule", "process", "model", "hierarchy", "repository",
                        "builtin", "attribute", "flag", "variable", "interpreter", "loop", "council", "policy",
                        "specification", "proposal", "standard", "registry", "index", "platform", "launcher",
                        "library", "interface", "command", "option", "parameter", "syntax", "encoding",
                        "system", "tool", "installer", "server", "header", "message", "exception",
                        "error", "warning", "constructor", "expression", "literal", "directive", "convention",
                        "framework", "layout", "algorithm", "namespace", "structure", "feature", "change",
                        "release", "version", "election", "governance", "workflow", "signature", "annotation"})
# Words that make a topic a document one asks "what does it say about X" (a guide, a policy).
_GUIDE_WORDS = frozenset({"guide", "guidelines", "conventions", "convention", "style", "policy", "policies",
                          "process", "rules", "manual", "handbook", "tutorial", "howto", "faq", "readme",
                          "procedure", "procedures", "recommendations", "checklist", "workflow", "standards"})
# What may follow the -ing word of a gerund heading ("Submitting a PEP", "Designing for Inheritance").
_GERUND_NEXT = frozenset({"a", "an", "the", "for", "to", "of", "with", "on", "in", "into", "over", "from", "by",
                          "your", "our", "its", "their", "this", "these", "new", "existing", "multiple", "custom",
                          "common", "old", "other", "all", "each", "and", "or", "up", "out", "away", "back"})
# A heading holding one of these between its words is a statement ("A Foolish Consistency is the
# Hobgoblin of Little Minds", "Failing test cases need to get fixed"), not a topic.
_FINITE_VERBS = frozenset({"is", "are", "was", "were", "should", "must", "can", "cannot", "will", "has", "have",
                           "need", "needs", "does", "do", "doesn't", "don't", "isn't", "aren't", "won't"})
_QUESTION_WORDS = frozenset({"why", "how", "what", "when", "where", "which", "who", "should", "can", "does", "do"})
_DETERMINERS = frozenset({"a", "an", "the", "all", "each", "every", "any", "no", "both"})
_TITLE_PREFIX = re.compile(r"^\s*PEP\s*\d+\s*(?::|--|–|—|-)\s*", re.IGNORECASE)
_TITLE_SPLIT = re.compile(r"\s+(?:--|–|—)\s+|[:,]\s+")
_LEADING_GENERIC = re.compile(
    r"^(?:(?:a|an|the)\s+)?(?:(?:proposal|support|request)\s+(?:for|to)\s+|(?:adding|add|introducing|introduce|"
    r"new|allowing|allow|enabling|enable|providing|provide)\s+)+(?:(?:a|an|the)\s+)?", re.IGNORECASE)
_TRAILING_GENERIC = re.compile(
    r"\s+(?:(?:in|for|to|into|of)\s+(?:the\s+)?(?:python|cpython)(?:\s+(?:code|language|standard\s+library|"
    r"stdlib|core|interpreter))?|(?:in|to|into)\s+the\s+standard\s+library)\s*$", re.IGNORECASE)
_NUMBERING = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?|[A-Z]\.|[ivxIVX]+\.)\s+")
_LABEL = re.compile(r"^([A-Za-z]+(?:\s+[A-Za-z0-9]+)?):\s+(?=\S)")
_PEP_NUMBER = re.compile(r"^\s*PEP\s*0*(\d+)\b")
_CODE_NAME = re.compile(r"^[\w.-]+\.(?:py|pyi|c|h|toml|cfg|txt|json|rst|md)$|\(\)$|^[a-z_]+\.[a-z_.]+$")
_LOWER_WORD = re.compile(r"\b[a-z][a-z]+\b")
_MID_SENTENCE_CAPITAL = re.compile(r"(?<=[a-z,;] )[A-Z][a-z]+\b")
_QUOTES = re.compile(r"[\"“”‘’]|(?<!\w)'|'(?!\w)")  # quotation marks, not an apostrophe
_MARKUP = re.compile(r"`+(?:__?(?![\w]))?|\*{1,2}")  # ``code``, `link`_, *emphasis*, **strong**

# -- sentences -----------------------------------------------------------------------------------

_NORMATIVE = re.compile(
    r"^(?P<subject>[^\s,;:()\"']+(?: [^\s,;:()\"']+){0,5}?) "
    r"(?P<verb>must (?i:not)|mustn't|must|should (?i:not)|shouldn't|should|shall (?i:not)|shall|is|are)"
    r" (?P<rest>[^\n]+)$")
_BAD_SUBJECT_START = frozenset(
    """it its this that these those there here they them we you i he she which what who whom whose such if when
    where while although though because since as in on at for to with by from of and or but so then also however
    therefore thus note currently now instead otherwise only even some many most several other another one
    each this however hence finally first second third again yet still just there's it's that's perhaps maybe
    similarly likewise nevertheless unfortunately fortunately""".split())
_SUBJECT_STOP = frozenset({"not", "also", "only", "then", "now", "that", "which", "who", "because", "if", "when"})
_CUT = re.compile(r"[;:(\[]| -- | — |,? (?:because|since|so that|unless|which|although|whereas|e\.g\.|i\.e\.|"
                  r"for example|such as|except|including)\b|, (?:and|or|as|so|but|if|when|where|while|though|"
                  r"even|however|then|not|otherwise|unlike|like|with|without)\b")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|#\.)\s+")
_LINK = re.compile(r"https?://|www\.|^\s*(?:\.\.\s+)?\[[^\]]{1,12}\]|^\s*\.\.\s+_", re.IGNORECASE)
_CODE_MARK = re.compile(r">>>|\w\(|\)\s*$|[{};]|\s=\s|==|"
                        r"^\s*(?:#|//|\$ |def |class |import |from \S+ import|return\b|@\w)")
_PROSE_END = re.compile(r"[.?!:,\"')\]]$")
_TERM_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_SUBJECT_WORD = re.compile(r"[A-Za-z0-9@_][\w'’.@()-]*")  # a word or code; no "--" or "->"


def user_chunks(store: Store, user_id: str) -> list[MemoryRecord]:
    """A user's chunk memories, by document then position in it."""
    chunks = scan(store, user_id, {"node_type": CHUNK})
    return sorted(chunks, key=lambda r: (document_of(r), r.turn_index or 0))


def document_of(record: MemoryRecord) -> str:
    """The document a chunk belongs to: its source path (its session "doc:<path>" otherwise)."""
    return str(record.metadata.get("source") or record.session_id or "")


def section_of(record: MemoryRecord) -> tuple[str, ...]:
    """The chunk's heading path, outermost first (empty before the first heading)."""
    section = record.metadata.get("section") or ""
    return tuple(part.strip() for part in str(section).split(" > ") if part.strip())


# -- sampling ------------------------------------------------------------------------------------

def spread_over_documents(chunks: Sequence[MemoryRecord], rng: random.Random) -> list[MemoryRecord]:
    """All of `chunks` in a round-robin order over their documents: documents in a shuffled
    order, each document's chunks shuffled, then one chunk of each document in turn until all are
    taken. Taking the first `limit` of this order spreads a sample over as many documents as it can."""
    by_document: dict[str, list[MemoryRecord]] = defaultdict(list)
    for record in chunks:
        by_document[document_of(record)].append(record)
    documents = sorted(by_document)
    rng.shuffle(documents)
    queues = []
    for document in documents:
        queue = list(by_document[document])
        rng.shuffle(queue)
        queues.append(queue)
    order = []
    for depth in range(max((len(q) for q in queues), default=0)):
        order += [q[depth] for q in queues if depth < len(q)]
    return order


def first_of_sections(chunks: Sequence[MemoryRecord]) -> set[str]:
    """Ids of the chunks that open their section (lowest position per document and heading path):
    the ones heading questions are written for."""
    first: dict[tuple[str, tuple[str, ...]], MemoryRecord] = {}
    for record in chunks:
        key = (document_of(record), section_of(record))
        if key not in first or (record.turn_index or 0) < (first[key].turn_index or 0):
            first[key] = record
    return {r.id for r in first.values()}


def is_boilerplate(record: MemoryRecord) -> bool:
    """True for a chunk whose own heading is boilerplate (Copyright, References, ...): nobody asks about it."""
    section = section_of(record)
    return bool(section) and heading_kind(section[-1]) == "boilerplate"


def is_link_list(text: str) -> bool:
    """True when at least LINK_SHARE of the text's non-empty lines hold a URL or start like a
    reference ("[3] ...", ".. [3]", ".. _name:")."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and sum(1 for line in lines if _LINK.search(line)) >= LINK_SHARE * len(lines)


def prose_lines(text: str) -> list[str]:
    """The lines of `text` that read as prose (bullets stripped): at least four words, ending
    like a sentence or clause (or at least eight words long), and free of code marks (`f(`,
    `{`, `;`, ` = `, `>>>`, a leading `#`, `def`, `import` ...)."""
    out = []
    for line in text.splitlines():
        stripped = _BULLET.sub("", line).strip()
        words = stripped.split()
        if len(words) < 4 or _CODE_MARK.search(stripped):
            continue
        if _PROSE_END.search(stripped) or len(words) >= 8:
            out.append(stripped)
    return out


def is_code(text: str) -> bool:
    """True when less than CODE_SHARE of the text's non-space characters are on prose lines."""
    total = sum(len(line.strip()) for line in text.splitlines())
    prose = sum(len(line) for line in prose_lines(text))
    return total > 0 and prose < CODE_SHARE * total


# -- rule 1: headings ----------------------------------------------------------------------------

def clean_heading(heading: str) -> str:
    """A heading without markup (``code``, *emphasis*), numbering ("3.2 ", "B. ") or a short
    label before a colon ("Prescriptive: Naming Conventions" -> "Naming Conventions", "Part 2:
    Implementation" -> "Implementation")."""
    text = _MARKUP.sub("", heading)
    text = _NUMBERING.sub("", text).strip()
    label = _LABEL.match(text)
    if label and len(text) > label.end():
        text = text[label.end():]
    return " ".join(text.split()).rstrip(":").strip()


def heading_kind(heading: str) -> str:
    """What form a heading has: a generic kind from GENERIC_HEADINGS ("motivation", "rejected",
    "boilerplate", ...); "question" (ends with "?" or starts with "why", "how" ...); "statement"
    (a verb such as "is" or "should" between its words, a comma, or more than ten words: a
    sentence, not a topic); "gerund" ("Designing for Inheritance": a first word in -ing that is
    not a noun such as "String" or "Naming", followed by an article, a preposition or, in a
    sentence-case heading, its object); or "noun" (anything else: a noun phrase naming a topic)."""
    text = clean_heading(heading)
    lower = text.lower()
    if lower in GENERIC_HEADINGS:
        return GENERIC_HEADINGS[lower]
    for prefix, kind in (("rejected ", "rejected"), ("backward", "compatibility"), ("how to teach", "teaching"),
                         ("security ", "security"), ("reference implementation", "implementation"),
                         ("motivation", "motivation"), ("rationale", "rationale"), ("acknowledg", "boilerplate"),
                         ("references", "boilerplate"), ("copyright", "boilerplate")):
        if lower.startswith(prefix):
            return kind
    if lower.startswith("open ") and lower.endswith(("issues", "questions")):
        return "open"
    if text.endswith("?") or (lower.split() or [""])[0] in _QUESTION_WORDS:
        return "question"
    if (len(words := lower.split()) >= 4 and _FINITE_VERBS & set(words[1:-1])) or "," in text or len(words) > 10:
        return "statement"
    gerund = len(words) >= 2 and len(words[0]) >= 5 and words[0].endswith("ing") and words[0] not in _NOT_GERUNDS
    sentence_case = len(words) >= 3 and text.split()[1][:1].islower()
    if gerund and (words[0] == "using" or words[1] in _GERUND_NEXT or sentence_case):
        return "gerund"
    return "noun"


def proper_nouns(texts: Iterable[str]) -> frozenset[str]:
    """Capitalized words that are names in `texts`: written capitalized after a lower-case word
    or a comma (not where a sentence starts) at least twice as often as in lower case (Python,
    Windows, Guido; "python" in a command line does not make Python a common noun)."""
    capitalized: Counter = Counter()
    lowered: Counter = Counter()
    for text in texts:
        lowered.update(_LOWER_WORD.findall(text))
        capitalized.update(_MID_SENTENCE_CAPITAL.findall(text))
    return frozenset(w for w, n in capitalized.items() if n >= 2 * lowered[w.lower()])


def phrase_case(phrase: str, names: Collection[str] = frozenset()) -> str:
    """`phrase` as it reads inside a sentence: a capitalized word (Function, Names, A) is lowercased
    unless it is one of `names` (see `proper_nouns`); acronyms, single capitals (C), mixed case
    (PyPI), code and numbers are kept."""
    words = []
    for word in phrase.split():
        core = word.strip("\"'()[],.:;!?")
        base = re.sub(r"['’]s$", "", core)
        if core[:1].isupper() and (base[1:].islower() or core == "A") and base not in names:
            word = word.replace(core, core.lower(), 1)
        words.append(word)
    return " ".join(words)


def is_plural(phrase: str) -> bool:
    """A noun phrase is plural when it joins two with "and" or its head (its last word, or the
    word before "of") ends in -s (not -ss, -us, -is); a gerund phrase ("changing the scope
    rules") is singular."""
    words = phrase.lower().split()
    if not words or any(w.endswith("ing") and len(w) >= 5 and w not in _NOT_GERUNDS for w in words[:2]):
        return False
    if "and" in words[1:-1] and "of" not in words:
        return True
    head = re.sub(r"[^a-z]", "", _head(words))
    return len(head) > 2 and head.endswith("s") and not head.endswith(("ss", "us", "is"))


def _head(words: list[str]) -> str:
    """The head noun of a noun phrase: the word before its first preposition, else its last word."""
    for i, word in enumerate(words[1:], start=1):
        if word in ("of", "for", "in", "to", "on", "with", "between", "from", "by"):
            return words[i - 1]
    return words[-1]


def with_article(phrase: str) -> str:
    """`phrase` led by "the" when it is a bare singular noun phrase whose head is a countable noun
    ("secrets module" -> "the secrets module") or that is followed by "of" ("scope of the target"
    -> "the scope of the target"); left as it is when it has a determiner, is plural, or starts
    with code, a name or a capital."""
    words = phrase.split()
    if not words or words[0].lower() in _DETERMINERS or not words[0][:1].islower() or is_plural(phrase):
        return phrase
    if words[0].endswith("ing") and len(words[0]) >= 5 and words[0] not in _NOT_GERUNDS:
        return phrase  # a gerund: "reworking the exception hierarchy"
    if not re.fullmatch(r"[a-z][a-z-]*", words[0]):
        return phrase
    head = re.sub(r"[^a-z]", "", _head([w.lower() for w in words]))
    return f"the {phrase}" if head in _COUNTABLE or "of" in words[1:] else phrase


def topic_phrase(title: str, names: Collection[str] = frozenset()) -> str:
    """A short name for what a document is about, as someone who does not know its exact title
    would say it: no "PEP NNN:" prefix; of "X -- Y", "X: Y" or "X, Y" the first part when it is short
    ("The pathlib module -- object-oriented filesystem paths" -> "the pathlib module"); without
    leading "Adding/Support for/Proposal for" and trailing "for Python Code/in the Standard
    Library" ("Style Guide for Python Code" -> "the style guide"); cased by `phrase_case` and led
    by "the" where `with_article` wants it."""
    title = _TITLE_PREFIX.sub("", _QUOTES.sub("", _MARKUP.sub("", title))).strip()
    parts = [p.strip() for p in _TITLE_SPLIT.split(title, maxsplit=1) if p.strip()]
    if len(parts) == 2 and 1 <= len(parts[0].split()) <= 4:
        title = parts[0]
    trimmed = _TRAILING_GENERIC.sub("", _LEADING_GENERIC.sub("", title)).strip()
    if content_terms(trimmed):
        title = trimmed
    return with_article(phrase_case(" ".join(title.split()).rstrip(".?!"), names))


def document_name(title: str, embed_text: str = "") -> str:
    """How someone who knows a document names it exactly: "PEP 8" when its title line (the first
    line of a chunk's embed_text) starts with a PEP number, else its title as written."""
    number = _PEP_NUMBER.match(embed_text)
    return f"PEP {number.group(1)}" if number else _MARKUP.sub("", title).strip()


def is_guide(topic: str) -> bool:
    """True when a topic names a document of rules or explanations (a style guide, conventions, a
    policy, a process): one asks what it says. Other topics name a feature (assignment
    expressions) and are asked about."""
    words = re.sub(r"[^a-z\s-]", " ", topic.lower()).split()
    return bool(words) and bool(_GUIDE_WORDS & set(words))


def _fill(template: str, subject: str) -> str:
    plural = is_plural(subject)
    values = {"S": subject}
    for key, forms in _AGREEMENT.items():
        values[key] = forms[plural]
        values[key.capitalize()] = forms[plural].capitalize()
    question = template.format(**values)
    return question[0].upper() + question[1:]


def _about(phrase: str, topic: str) -> list[str]:
    """A question about `phrase` within a topic: what a guide says about it, or what about it
    in a feature; none when the phrase already names the topic."""
    if not topic or set(content_terms(topic)) <= set(content_terms(phrase)):
        return []
    if is_guide(topic):
        return [_fill("What {does} {S} say about " + phrase + "?", topic)]
    return [f"What about {with_article(phrase)} in {topic}?"]


def heading_questions(title: str, section: Sequence[str], *, names: Collection[str] = frozenset(),
                      name: str = "") -> list[str]:
    """Every heading question for a chunk of document `title` under the heading path `section`
    (rule 1 of the module docstring); [] for boilerplate, or for a chunk with neither a heading
    nor a title. `names` are the corpus's proper nouns (kept capitalized); `name` is how the
    document is named exactly ("PEP 8", see `document_name`), used in one question of a generic
    heading with no specific heading above it ("What is PEP 8?")."""
    headings = [h for h in (clean_heading(h) for h in section) if h]
    topic = topic_phrase(title, names) if title.strip() else ""
    exact = name if name and name.lower() != topic.lower() else ""
    if not headings:
        return [_fill(t, topic) for t in GENERIC_TEMPLATES["overview"]] if topic else []
    heading, kind = headings[-1], heading_kind(headings[-1])
    if kind == "boilerplate":
        return []
    if kind in GENERIC_TEMPLATES:
        specific = [h for h in headings[:-1] if heading_kind(h) in ("noun", "gerund")]
        subjects = [with_article(phrase_case(specific[-1], names))] if specific else []
        subjects += [topic] if topic else []
        questions = [_fill(t, s) for s in subjects for t in GENERIC_TEMPLATES[kind]]
        if exact and not specific:
            questions.append(_fill(GENERIC_TEMPLATES[kind][0], exact))
        return list(dict.fromkeys(questions))
    phrase = phrase_case(heading, names)
    if kind == "statement":
        return []  # a sentence for a heading: rule 2 or 3 asks about the chunk instead
    if kind == "question":
        asked = phrase[0].upper() + phrase[1:] + ("" if phrase.endswith("?") else "?")
        questions = [asked]
        if topic and len(content_terms(heading)) < 3:
            questions.append(f"{asked.rstrip('?').rstrip()} in {topic}?")
        return questions
    context = next((heading_kind(h) for h in reversed(headings[:-1]) if heading_kind(h) in GENERIC_TEMPLATES), None)
    if context == "rejected":
        questions = [_fill("Why {was} {S} rejected?", with_article(phrase)), f"Why not {phrase}?"]
        if topic and not set(content_terms(topic)) <= set(content_terms(phrase)):
            questions.append(_fill("{Was} {S} considered for " + topic + "?", with_article(phrase)))
        return questions
    if context == "examples":
        if _CODE_NAME.search(heading) and topic:
            return [f"Are there examples of {topic} in {heading}?", f"How would {heading} use {topic}?"]
        with_topic = [f"Is there an example of {phrase} with {topic}?"] if topic else []
        return [f"Is there an example of {phrase}?", *with_topic]
    questions = []
    words = phrase.split()
    short = len(words) <= 4 and words[0].lower() not in _DETERMINERS
    if kind == "gerund":
        questions += [f"How should I go about {phrase}?", f"What is the right way of {phrase}?"]
    else:
        head = re.sub(r"[^a-z]", "", words[-1].lower())
        if head in _WRITTEN and short:
            questions.append(f"How should {phrase} be written?")
        parents = [phrase_case(h, names) for h in headings[:-1] if heading_kind(h) == "noun"]
        if parents and re.sub(r"[^a-z]", "", parents[-1].split()[-1].lower()) in _RULE_PARENTS:
            questions.append(f"What are the {parents[-1].lower()} for {phrase}?")
        if short and (is_guide(topic) or head in _WRITTEN):
            questions.append(f"What are the rules for {phrase}?")
        elif short and head not in ("work", "works", "issue", "issues"):
            questions.append(_fill("How {does} {S} work?", with_article(phrase)))
    return list(dict.fromkeys(questions + _about(phrase, topic)))


# -- rule 2: sentences ---------------------------------------------------------------------------

def _clear_subject(subject: str) -> bool:
    """A clear noun phrase: 1 to MAX_SUBJECT_WORDS words or code names, with a content word, not
    led by a pronoun, conjunction, preposition or adverb (_BAD_SUBJECT_START), not ending in a
    determiner or preposition, and with no "not", "that", "which", "if" ... inside it."""
    words = subject.lower().split()
    if not words or len(words) > MAX_SUBJECT_WORDS:
        return False
    if words[0] in _BAD_SUBJECT_START or words[-1] in _DETERMINERS or _SUBJECT_STOP & set(words[1:]):
        return False
    if words[-1] in ("of", "to", "for", "with", "in", "on", "by", "and", "or"):
        return False
    return bool(content_terms(subject)) and all(_SUBJECT_WORD.fullmatch(w) for w in subject.split())


def sentence_question(sentence: str, names: Collection[str] = frozenset()) -> str | None:
    """The question a definitional or normative sentence answers, about its subject, or None:
    "X must not Y" -> "Can X Y?"; "X must Y" -> "Must X Y?"; "X should (not) Y" -> "Should X Y?";
    "X is/are a/an Y" -> "What is/are X?" ("X is the Y" says which, not what: no question).
    A subject led by "the" needs two words after it ("the file" alone is not clear).
    The subject must be a clear noun phrase (`_clear_subject`), its first word is lowercased
    unless it is one of `names`, and the predicate's first clause (up to a comma, a parenthesis,
    "because", "unless" ...) is at most MAX_PREDICATE_WORDS words."""
    sentence = " ".join(_BULLET.sub("", sentence).split()).rstrip(".!:;")
    match = _NORMATIVE.match(sentence)
    if not match or sentence.endswith("?"):
        return None
    subject, verb, rest = match.group("subject"), match.group("verb").lower(), match.group("rest")
    if not _clear_subject(subject) or (subject.lower().startswith("the ") and len(subject.split()) < 3):
        return None
    words = subject.split()
    subject = " ".join([phrase_case(words[0], names), *words[1:]])
    clause = _CUT.split(rest, maxsplit=1)[0].strip().rstrip(".")
    clause_words = clause.split()
    if not clause_words or len(clause_words) > MAX_PREDICATE_WORDS:
        return None
    if verb in ("is", "are"):
        if clause_words[0].lower() not in ("a", "an", "one"):
            return None
        return f"What {verb} {subject}?"
    if verb in ("must not", "mustn't", "shall not"):
        return f"Can {subject} {clause}?"
    if verb in ("should not", "shouldn't", "should"):
        return f"Should {subject} {clause}?"
    if clause_words[0].lower() == "not":
        return f"Can {subject} {' '.join(clause_words[1:])}?"
    return f"{'Must' if verb == 'must' else 'Shall'} {subject} {clause}?"


def sentence_questions(text: str, names: Collection[str] = frozenset()) -> list[str]:
    """The sentence questions of a chunk's prose lines (rule 2); [] for code or a list of links."""
    if is_code(text) or is_link_list(text):
        return []
    questions = []
    for line in prose_lines(text):
        starts = [0, *sentence_starts(line), len(line)]
        for begin, end in pairwise(starts):
            question = sentence_question(line[begin:end].strip(), names)
            if question:
                questions.append(question)
    return list(dict.fromkeys(questions))


# -- rule 3: key phrases -------------------------------------------------------------------------

def chunk_terms(text: str) -> list[str]:
    """A chunk's content words worth asking about: alphabetic, at least three letters."""
    return [t for t in content_terms(text) if t.isalpha() and len(t) >= 3]


def keyphrase_terms(text: str, document_frequency: Counter, k: int) -> list[str]:
    """The chunk's `k` rarest content words among the user's chunks (by document frequency, ties
    in reading order), taken first from the words the chunk uses at least twice: those say what
    it is about, while a word used once is as often an aside ("foresees", "illustrates")."""
    terms = chunk_terms(text)
    counts = Counter(word.lower() for word in _TERM_WORD.findall(text))
    def rank(t: str) -> tuple[int, int]:
        return document_frequency[t], terms.index(t)
    repeated = sorted((t for t in terms if counts[t] >= 2), key=rank)
    once = sorted((t for t in terms if counts[t] < 2), key=rank)
    return (repeated + once)[:k]


def keyphrase_question(text: str, document_frequency: Counter, rng: random.Random, topic: str = "") -> str | None:
    """A template question from the chunk's two or three `keyphrase_terms`, or None for a chunk
    with fewer than MIN_KEYPHRASE_WORDS content words."""
    if len(chunk_terms(text)) < MIN_KEYPHRASE_WORDS:
        return None
    rarest = keyphrase_terms(text, document_frequency, rng.choice((2, 3)))
    if len(rarest) == 2:
        a, b = rarest
        templates = [f"What is the policy on {a} and {b}?", f"How does {a} work with {b}?",
                     f"Where are {a} and {b} explained?"]
    else:
        a, b, c = rarest
        templates = [f"What is the policy on {a}, {b} and {c}?", f"Where are {a}, {b} and {c} explained?"]
    if topic:
        phrase = f"{', '.join(rarest[:-1])} and {rarest[-1]}"
        templates.append(_fill("What {does} {S} say about " + phrase + "?", topic) if is_guide(topic)
                         else f"What about {phrase} in {topic}?")
    return rng.choice(templates)


# -- examples ------------------------------------------------------------------------------------

def chunk_rule_queries(chunks: Sequence[MemoryRecord], user_id: str, limit: int, seed: int = 42) -> list[Example]:
    """Up to `limit` LLM-free examples for one user's `chunks`, one per sampled chunk (see the
    module docstring). Deterministic for (chunks, user_id, limit, seed)."""
    rng = random.Random(f"{seed}:{user_id}:chunks")
    eligible = [r for r in chunks if not is_boilerplate(r) and not is_link_list(r.text)]
    document_frequency: Counter = Counter()
    for record in eligible:
        document_frequency.update(set(chunk_terms(record.text)))
    openers = first_of_sections(chunks)
    names = proper_nouns(r.text for r in chunks)
    examples: list[Example] = []
    for record in spread_over_documents(eligible, rng):
        if len(examples) >= limit:
            break
        title = str(record.metadata.get("title") or "")
        topic = topic_phrase(title, names) if title.strip() else ""
        rules = []
        if record.id in openers:
            rules.append(("heading", heading_questions(title, section_of(record), names=names,
                                                       name=document_name(title, record.embed_text))))
        rules.append(("sentence", sentence_questions(record.text, names)))
        rules = [(rule, questions) for rule, questions in rules if questions]
        if not rules and not is_code(record.text):  # key phrases only where no heading or sentence asks
            keyphrase = keyphrase_question(record.text, document_frequency, rng, topic)
            rules = [("keyphrase", [keyphrase])] if keyphrase else []
        if not rules:
            continue
        rule, questions = rng.choice(rules)
        examples.append(Example(query=rng.choice(questions), user_id=user_id, positive_ids=[record.id],
                                positives=[record.embed_text], source=f"synthetic-rules:chunk-{rule}"))
    return examples


def chunk_llm_queries(chunks: Sequence[MemoryRecord], user_id: str, limit: int, llm, seed: int = 42,
                      on_error: Callable[[str], None] = lambda _: None) -> list[Example]:
    """Up to `limit` examples for one user's `chunks`, the questions written by `llm` (an
    `LLMClient`) from each sampled chunk's title, section and text; a failed or empty answer is
    reported to `on_error` and skipped, as for turns."""
    rng = random.Random(f"{seed}:{user_id}:chunks")
    eligible = [r for r in chunks if not is_boilerplate(r) and not is_link_list(r.text)]
    picked = spread_over_documents(eligible, rng)[:limit]
    if not picked:
        return []
    prompts = [[{"role": "user", "content": DOC_LLM_PROMPT.format(
        title=r.metadata.get("title") or document_of(r),
        section=f', section "{r.metadata["section"]}"' if r.metadata.get("section") else "", text=r.text)}]
        for r in picked]
    return llm_examples(picked, llm.map(prompts, json_output=True), user_id, "synthetic-llm:chunk", on_error)


def llm_examples(records: Sequence[MemoryRecord], answers: Iterable, user_id: str, source: str,
                 on_error: Callable[[str], None]) -> list[Example]:
    """One example per record whose LLM answer is a JSON object with a non-empty "question";
    each other answer (an LLMError, or no question) is reported through `on_error` and skipped."""
    examples = []
    for record, answer in zip(records, answers):
        question = answer.get("question") if isinstance(answer, dict) else None
        if isinstance(answer, LLMError) or not isinstance(question, str) or not question.strip():
            on_error(f"memory {record.id}: {answer if isinstance(answer, LLMError) else 'no question in the answer'}")
            continue
        examples.append(Example(query=question.strip(), user_id=user_id, positive_ids=[record.id],
                                positives=[record.embed_text], source=source))
    return examples
