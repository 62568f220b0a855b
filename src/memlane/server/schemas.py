"""The server's request and response bodies: pydantic models, strict (an unknown field or a value
of the wrong type is refused, never coerced), shared by the REST routes, the Python client and
the MCP server. Each response model mirrors a library type and is built from it by `of`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from memlane.documents.model import DocumentReport
from memlane.records import Category, HistoryEvent, Hit, MemoryRecord
from memlane.store import StoreStats

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- requests ---------------------------------------------------------------------------------------


class Message(Strict):
    role: str = Field(min_length=1, max_length=64, description="user, assistant, system or tool")
    content: str = Field(max_length=1_000_000)
    name: str | None = Field(None, max_length=512, description="The speaker's name, when known.")
    timestamp: str | None = Field(None, max_length=64, description="When it was said (ISO date or datetime).")
    metadata: dict[str, Any] | None = None


class AddRequest(Strict):
    """Messages of one conversation, or one text, to remember."""

    messages: list[Message] | str = Field(description="Chat messages, or one text (said by the user).")
    user_id: str | None = Field(None, min_length=1, max_length=512,
                                description="Whose memory; a tenant key with one user may leave it out.")
    agent_id: str | None = Field(None, min_length=1, max_length=512)
    session_id: str | None = Field(None, min_length=1, max_length=512)
    session_date: str | None = Field(None, max_length=64, description="ISO date or datetime the session took place.")
    metadata: dict[str, Any] | None = None
    category: Category = Field(Category.EPISODIC, strict=False, description="episodic, procedural, semantic or social")


class SearchRequest(Strict):
    query: str = Field(min_length=1, max_length=100_000)
    user_id: str | None = Field(None, min_length=1, max_length=512)
    limit: int = Field(10, ge=1, le=1000)
    filters: dict[str, Any] | None = Field(None, description="node_type, category, agent_id, session_id, speaker, "
                                           "source (a document's path) (a value or a list), date_from, date_to, "
                                           "as_of")
    now: str | None = Field(None, max_length=64, description="ISO date the question is asked on (for 'last week').")
    as_of: str | None = Field(None, max_length=64, description="Search the state of this day: what was said by "
                              "then and not yet superseded.")
    explain: bool = False
    group_by: Literal["document"] | None = Field(None, description="'document': documents instead of memories, "
                                                 "ranked by their best chunks, each with the chunks found as parts.")


DocumentCategory = Literal["semantic", "procedural"]


class DocumentRequest(Strict):
    """One document given as its text; the path in the URL names it ("notes/plan.md"), and its
    extension gives the format (.md, .rst, .txt, .html). Sending the same path again replaces it."""

    content: str = Field(min_length=1, description="The document's text (at most documents.max_file_bytes).")
    user_id: str | None = Field(None, min_length=1, max_length=512,
                                description="Whose memory; a tenant key with one user may leave it out.")
    category: DocumentCategory = Field("semantic", description="semantic (knowledge) or procedural (how to do things)")


class UpdateRequest(Strict):
    text: str = Field(min_length=1, max_length=1_000_000)
    user_id: str | None = Field(None, min_length=1, max_length=512)


class RetentionRequest(Strict):
    user_id: str | None = Field(None, min_length=1, max_length=512)
    now: str | None = Field(None, max_length=64)


# -- responses --------------------------------------------------------------------------------------


class MemoryOut(BaseModel):
    id: str
    user_id: str
    agent_id: str | None
    category: str
    node_type: str
    text: str
    embed_text: str
    speaker: str | None
    session_id: str | None
    session_date: str | None
    turn_index: int | None
    recorded_at: str | None
    event_dates: list[dict[str, Any]]
    metadata: dict[str, Any]
    fact_key: str | None
    valid_from: str | None
    valid_until: str | None
    superseded_by: str | None

    @classmethod
    def of(cls, record: MemoryRecord) -> "MemoryOut":
        return cls.model_validate(record.to_dict())


class StrategyOut(BaseModel):
    strategy: str
    rank: int
    score: float


class ExplanationOut(BaseModel):
    node: str | None
    strategies: list[StrategyOut]
    fused_score: float
    weights: dict[str, float]
    notes: list[str]
    analysis: dict[str, Any] = Field(default_factory=dict, description="What was read from the question: "
                                     "time_range {expression, start, end} or null, entities, needles.")


class HitOut(BaseModel):
    id: str
    score: float
    memory: MemoryOut
    explanation: ExplanationOut | None = None
    parts: list[HitOut] = Field(default_factory=list, description="Searched with group_by: the document's chunks "
                                "that were found, best first (the hit's memory is the document).")

    @classmethod
    def of(cls, hit: Hit) -> "HitOut":
        return cls.model_validate(hit.to_dict())


class SearchResponse(BaseModel):
    results: list[HitOut]


class AddResponse(BaseModel):
    results: list[MemoryOut]


class Page(BaseModel):
    results: list[MemoryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class SkippedOut(BaseModel):
    root: str = Field(description="What was added: the upload's collection as 'upload:<name>', or a path.")
    path: str
    reason: str = Field(description="Why it was not remembered: binary, not UTF-8, empty, too large, not a "
                                    "document format.")


class DocumentReportOut(BaseModel):
    """What adding documents did. added, changed, unchanged and removed count memories (chunks and
    document-level memories); embedded counts the texts the model embedded."""

    documents: int
    chunks: int
    added: int
    changed: int
    unchanged: int
    removed: int
    embedded: int
    skipped: list[SkippedOut]
    seconds: float
    embed_seconds: float

    @classmethod
    def of(cls, report: DocumentReport) -> "DocumentReportOut":
        return cls(documents=report.documents, chunks=report.chunks, added=report.added, changed=report.changed,
                   unchanged=report.unchanged, removed=report.removed, embedded=report.embedded,
                   skipped=[SkippedOut(root=s.root, path=s.path, reason=s.reason) for s in report.skipped],
                   seconds=report.seconds, embed_seconds=report.embed_seconds)


class HistoryEventOut(BaseModel):
    memory_id: str
    event: str
    old_text: str | None
    new_text: str | None
    at: str

    @classmethod
    def of(cls, event: HistoryEvent) -> "HistoryEventOut":
        return cls(memory_id=event.memory_id, event=event.event, old_text=event.old_text,
                   new_text=event.new_text, at=event.at)


class IndexOut(BaseModel):
    name: str
    model: str
    dims: int


class StatsOut(BaseModel):
    memories: int
    users: int
    by_node_type: dict[str, int]
    by_category: dict[str, int]
    index: IndexOut | None
    store_bytes: int

    @classmethod
    def of(cls, stats: StoreStats) -> "StatsOut":
        index = IndexOut(name=stats.index.name, model=stats.index.model, dims=stats.index.dims) if stats.index else None
        return cls(memories=stats.memories, users=stats.users, by_node_type=stats.by_node_type,
                   by_category=stats.by_category, index=index, store_bytes=stats.file_bytes)


class Count(BaseModel):
    count: int = Field(description="How many memories the call changed.")


class ErrorBody(BaseModel):
    type: Literal["input", "not_found", "no_route", "forbidden", "unauthorized", "model_mismatch", "conflict", "llm",
                  "store", "config", "rate_limited", "internal"]
    message: str
    field: str | None = None
    fix: str | None = None


class ErrorResponse(BaseModel):
    """Every error the server answers has this shape."""

    error: ErrorBody


class NodeOut(BaseModel):
    name: str
    version: int
    spec: dict[str, Any] = Field(description="The definition: category, prompt, schema, template, ...")


class NodeVersion(BaseModel):
    name: str
    version: int


class HealthOut(BaseModel):
    status: Literal["ok"]


# -- jobs (fine-tuning, reindex, import) ------------------------------------------------------------


class FineTuneRequest(Strict):
    """Fine-tune the embedder on this store; the checkpoint is deployed only if the gate accepts it."""

    eval_queries: str = Field(min_length=1, max_length=4096, description="Server-side JSONL of held-out queries "
                              "(query, user_id, positive_ids or positive_turn_ids), never trained on.")
    labels: str | None = Field(None, min_length=1, max_length=4096,
                               description="Server-side JSONL of labeled training queries (or set synthetic).")
    synthetic: bool = Field(False, description="Write training queries from the store (LLM if configured, else rules).")
    users: list[str] | None = Field(None, max_length=10_000, description="With synthetic: only these users.")
    min_gain: float | None = Field(None, ge=-1, le=1, description="Accept only if held-out NDCG@10 rises by at "
                                   "least this [default: fine_tune.min_gain].")
    epochs: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=2, le=65_536)
    learning_rate: float | None = Field(None, gt=0, le=1)


class ReindexRequest(Strict):
    model: str | None = Field(None, min_length=1, max_length=4096, description="Model name, local path or "
                              "checkpoint to embed every memory with [default: the configured model].")


class ImportRequest(Strict):
    path: str = Field(min_length=1, max_length=4096, description="Server-side file written by `memlane export`.")


class JobProgress(BaseModel):
    done: int
    total: int
    eta_seconds: float | None = Field(description="Time left in this stage, from its pace so far.")


class MetricDelta(BaseModel):
    delta: float = Field(description="after - before, averaged over the held-out queries.")
    ci_low: float = Field(description="95% paired bootstrap confidence interval of the delta.")
    ci_high: float
    p_not_better: float


class GateOut(BaseModel):
    """The fine-tuning gate's verdict on held-out queries."""

    passed: bool
    reason: str
    min_gain: float
    queries: int
    before: dict[str, float]
    after: dict[str, float]
    deltas: dict[str, MetricDelta]
    base_model: str
    checkpoint: str | None = Field(description="The deployed checkpoint (null when refused).")


class JobOut(BaseModel):
    id: str
    kind: Literal["fine_tune", "reindex", "import"]
    state: Literal["queued", "running", "succeeded", "refused", "failed", "cancelled"]
    stage: str | None
    progress: JobProgress | None
    log: list[str] = Field(description="The last lines the job wrote.")
    params: dict[str, Any]
    result: dict[str, Any] | None = Field(description="Counts: examples and training for a fine-tune, "
                                          "memories for a reindex or an import.")
    gate: GateOut | None = None
    error: str | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None

    @classmethod
    def of(cls, job: Any) -> "JobOut":
        return cls.model_validate(job.to_dict())


class JobList(BaseModel):
    results: list[JobOut]
