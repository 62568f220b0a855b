"""Which memory nodes a question should search. Verbatim turns and sessions are always searched.

Rules first: a node is chosen when the question contains one of its `route_keywords`; a question
that matches no node searches them all. With `extraction.router = "llm"`, the LLM picks from the
nodes' names and descriptions; if it fails, the rules decide and the explanation says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from memlane.errors import LLMError
from memlane.nodes.spec import NodeSpec

_WORD = re.compile(r"[a-z0-9']+")


@dataclass
class Route:
    nodes: list[str]
    reason: str
    notes: list[str] = field(default_factory=list)


def route_by_rules(question: str, specs: Sequence[NodeSpec]) -> Route:
    words = set(_WORD.findall(question.lower()))
    chosen = [s.name for s in specs if words & {k.lower() for k in s.route_keywords}]
    if chosen:
        return Route(chosen, "rules: " + ", ".join(
            f"{s.name} ({', '.join(sorted(words & {k.lower() for k in s.route_keywords}))})" for s in specs if s.name in chosen))
    return Route([s.name for s in specs], "rules: no node keyword in the question, every node searched")


def route_by_llm(question: str, specs: Sequence[NodeSpec], client) -> Route:
    listing = "\n".join(f"- {s.name}: {s.description}" for s in specs)
    messages = [{"role": "user", "content": (
        f"Which kinds of memory could answer this question?\n\nQuestion: {question}\n\nKinds:\n{listing}\n\n"
        'Answer with JSON: {"nodes": ["name", ...]} (an empty list if none fits).')}]
    try:
        answer = client.complete_json(messages)
    except LLMError as exc:
        fallback = route_by_rules(question, specs)
        fallback.notes.append(f"router: the LLM failed ({exc}); rules decided")
        return fallback
    known = {s.name for s in specs}
    picked = [n for n in (answer.get("nodes", []) if isinstance(answer, dict) else []) if n in known]
    if not picked:
        return Route([s.name for s in specs], "llm: no node chosen, every node searched")
    return Route(picked, "llm: " + ", ".join(picked))
