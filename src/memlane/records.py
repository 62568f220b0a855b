"""The data memlane reads and returns: turns and sessions in, memory records and hits out."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Mapping

from memlane.errors import InputError


class Category(str, Enum):
    """Kinds of long-term memory. Working memory stays in the prompt and is never stored."""

    EPISODIC = "episodic"
    PROCEDURAL = "procedural"
    SEMANTIC = "semantic"
    SOCIAL = "social"

    @classmethod
    def parse(cls, value: "str | Category") -> "Category":
        if isinstance(value, Category):
            return value
        text = str(value).strip().lower()
        if text == "working":
            raise InputError(
                "category 'working' cannot be stored: working memory stays in the prompt",
                field="category",
                fix="keep it in the prompt, or store it as one of: " + ", ".join(c.value for c in cls),
            )
        try:
            return cls(text)
        except ValueError:
            raise InputError(
                f"unknown category '{value}'",
                field="category",
                fix="use one of: " + ", ".join(c.value for c in cls),
            ) from None


class NodeType(str, Enum):
    """The verbatim kinds of record, stored with no LLM. Memories extracted by a user-defined
    node carry that node's name as their node_type."""

    TURN = "turn"
    SESSION = "session"
    CHUNK = "chunk"  # a section's text of a document, in order within it (as turns are within a session)
    DOCUMENT = "document"  # a whole document: its title, header fields and opening (as a session is)


DOCUMENT_SESSION = "doc:"  # a document's memories share the session "doc:<its path>"


@dataclass(frozen=True)
class EventDate:
    """A time expression found in a text, resolved to an ISO date range (inclusive)."""

    expression: str
    start: str  # ISO date, YYYY-MM-DD
    end: str  # ISO date; equal to start for a single day
    granularity: str  # day | week | weekend | month | season | year

    def render(self) -> str:
        span = self.start if self.start == self.end else f"{self.start}..{self.end}"
        return f"{self.expression} = {span}"


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    text: str
    speaker: str
    role: str = "user"
    turn_id: str | None = None  # the source's own id (e.g. LoCoMo's dia_id)
    timestamp: str | None = None  # ISO datetime if the message carries its own time
    caption: str | None = None  # text describing a shared photo
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Session:
    """A conversation session: turns that share a date."""

    turns: list[Turn]
    session_id: str | None = None
    date: str | None = None  # ISO datetime (or date) the session took place
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MemoryRecord:
    """One stored memory."""

    id: str
    user_id: str
    text: str
    embed_text: str
    category: Category = Category.EPISODIC
    node_type: str = NodeType.TURN.value
    agent_id: str | None = None
    speaker: str | None = None
    session_id: str | None = None
    session_date: str | None = None
    turn_index: int | None = None
    recorded_at: str | None = None
    event_dates: list[EventDate] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    # Knowledge updates (extracted memories): the fact's identity, and when it held.
    fact_key: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    superseded_by: str | None = None

    @property
    def current(self) -> bool:
        """False once a newer memory about the same entity and attribute has superseded this one."""
        return self.superseded_by is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "category": self.category.value,
            "node_type": self.node_type,
            "text": self.text,
            "embed_text": self.embed_text,
            "speaker": self.speaker,
            "session_id": self.session_id,
            "session_date": self.session_date,
            "turn_index": self.turn_index,
            "recorded_at": self.recorded_at,
            "event_dates": [vars(e) for e in self.event_dates],
            "metadata": self.metadata,
            "fact_key": self.fact_key,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "superseded_by": self.superseded_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MemoryRecord":
        """The record `to_dict` describes: `MemoryRecord.from_dict(r.to_dict()) == r`. Keys this
        version does not know are left out (a newer server may send more)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["category"] = Category(values.get("category", Category.EPISODIC.value))
        values["event_dates"] = [EventDate(**e) for e in values.get("event_dates") or ()]
        values["metadata"] = dict(values.get("metadata") or {})
        return cls(**values)


@dataclass(frozen=True)
class StrategyHit:
    """Where one retrieval strategy placed a memory."""

    strategy: str  # dense | bm25 | entity | lookup | temporal
    rank: int  # 1-based
    score: float


@dataclass
class Explanation:
    """Why a memory was found: each strategy that found it, and how the scores combined."""

    strategies: list[StrategyHit]
    fused_score: float
    weights: dict[str, float]
    notes: list[str] = field(default_factory=list)
    node: str | None = None  # the node that produced the memory: turn, session, or an extraction node
    # What was read from the question: "time_range" ({expression, start, end} or None),
    # "entities" and "needles" (exact strings looked up), as data for consoles and tools.
    analysis: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "strategies": [vars(s) for s in self.strategies],
            "fused_score": self.fused_score,
            "weights": self.weights,
            "notes": self.notes,
            "analysis": self.analysis,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Explanation":
        """The explanation `to_dict` describes (its inverse)."""
        return cls(
            strategies=[StrategyHit(s["strategy"], s["rank"], s["score"]) for s in data.get("strategies") or ()],
            fused_score=data["fused_score"],
            weights=dict(data.get("weights") or {}),
            notes=list(data.get("notes") or ()),
            node=data.get("node"),
            analysis=dict(data.get("analysis") or {}),
        )


@dataclass
class Hit:
    """A search result."""

    record: MemoryRecord
    score: float
    explanation: Explanation | None = None
    parts: list["Hit"] = field(default_factory=list)  # grouped by document: its matching chunks, best first

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def text(self) -> str:
        return self.record.text

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "score": self.score, "memory": self.record.to_dict()}
        if self.explanation is not None:
            out["explanation"] = self.explanation.to_dict()
        if self.parts:
            out["parts"] = [part.to_dict() for part in self.parts]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Hit":
        """The hit `to_dict` describes (its inverse); an absent or null explanation is None."""
        explanation = data.get("explanation")
        return cls(record=MemoryRecord.from_dict(data["memory"]), score=data["score"],
                   explanation=Explanation.from_dict(explanation) if explanation is not None else None,
                   parts=[cls.from_dict(part) for part in data.get("parts") or ()])


@dataclass(frozen=True)
class HistoryEvent:
    """One add, update or delete of a memory."""

    memory_id: str
    event: str  # ADD | UPDATE | DELETE | SUPERSEDE | MERGE | EXPIRE | RESTORE | PURGE
    old_text: str | None
    new_text: str | None
    at: str  # ISO datetime, UTC

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HistoryEvent":
        """The event its fields' dict describes (`dataclasses.asdict` gives one; so does the server)."""
        return cls(data["memory_id"], data["event"], data.get("old_text"), data.get("new_text"), data["at"])
