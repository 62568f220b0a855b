"""Speed benchmark: raw encoder throughput, ingest throughput and search latency at scale."""

from __future__ import annotations

import json
import lzma
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from memlane.bench.datasets import locomo_files
from memlane.bench.machine import describe_machine
from memlane.bench.metrics import percentiles
from memlane.config import MemoryConfig
from memlane.embed import make_embedder
from memlane.ingest.build import turn_embed_text
from memlane.ingest.dates import parse_session_date
from memlane.ingest.formats import load_conversations
from memlane.records import Session, Turn

Status = Callable[[str], None]


@dataclass
class Corpus:
    sessions: list[Session]
    questions: list[str]

    @property
    def turns(self) -> int:
        return sum(len(s.turns) for s in self.sessions)


def build_corpus(data_dir: Path, turns: int, max_words: int = 80) -> Corpus:
    """Distinct real turns: every LoCoMo turn, then LongMemEval user turns of at most `max_words`
    words (its assistant turns are long answers, unlike chat memories) until `turns` are reached."""
    sessions: list[Session] = []
    questions: list[str] = []
    seen: set[str] = set()
    count = 0
    for path in locomo_files(data_dir):
        for conversation in load_conversations(path):
            for session in conversation.sessions:
                kept = [t for t in session.turns if t.text not in seen][: max(0, turns - count)]
                seen.update(t.text for t in kept)
                if kept:
                    sessions.append(Session(turns=kept, session_id=f"{conversation.conversation_id}/{session.session_id}", date=session.date))
                    count += len(kept)
            questions += [q["question"] for q in conversation.questions if q.get("category") != 5]
    lme = data_dir / "longmemeval" / "longmemeval_s_cleaned_dev.json.xz"
    if count < turns and lme.exists():
        with lzma.open(lme, "rt", encoding="utf-8") as handle:
            items = json.load(handle)
        for item in items:
            questions.append(item["question"])
            for sid, day, raw in zip(item["haystack_session_ids"], item["haystack_dates"], item["haystack_sessions"]):
                kept = []
                for turn in raw:
                    text = turn["content"].strip()
                    if turn["role"] != "user" or not text or len(text.split()) > max_words or text in seen:
                        continue
                    seen.add(text)
                    kept.append(Turn(text=text, speaker="user", role="user"))
                kept = kept[: max(0, turns - count)]
                if kept:
                    sessions.append(Session(turns=kept, session_id=sid, date=parse_session_date(day).isoformat()))
                    count += len(kept)
                if count >= turns:
                    break
            if count >= turns:
                break
    return Corpus(sessions=sessions, questions=questions)


def run_speed_benchmark(
    config: MemoryConfig,
    data_dir: Path,
    *,
    turns: int = 10_000,
    encode_sample: int = 1_000,
    queries: int = 300,
    status: Status = lambda _: None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Measure with the vector cache off, so every number is real model work."""
    from memlane.memory import Memory

    config = config.model_copy(deep=True)
    config.embedder.cache_path = "off"
    status("building corpus")
    corpus = build_corpus(data_dir, turns)
    embedder = make_embedder(config.embedder)

    status(f"raw encode of {encode_sample} turns")
    everything = [turn_embed_text(t.speaker, t.text, (s.date or "")[:10], []) for s in corpus.sessions for t in s.turns]
    # Evenly spaced over the corpus, so the sample has the same mix of short and long turns as the ingest.
    step = max(1, len(everything) // encode_sample)
    sample = everything[::step][:encode_sample]
    embedder.encode(sample[:16])  # load the model outside the timing
    started = time.perf_counter()
    embedder.encode(sample)
    encode_seconds = time.perf_counter() - started
    count_tokens = getattr(getattr(embedder, "inner", embedder), "count_tokens", None)
    sample_tokens = count_tokens(sample) if count_tokens else None
    corpus_tokens = count_tokens(everything) if count_tokens else None

    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(Path(tmp) / "speed.db", config, embedder=embedder)
        status(f"ingesting {corpus.turns} turns")
        report = memory.ingest(corpus.sessions, user_id="bench", on_progress=on_progress)
        status(f"searching {queries} questions")
        latencies = []
        asked = corpus.questions[:queries]
        memory.search(asked[0], user_id="bench")  # warm the per-user vector matrix
        for question in asked:
            started = time.perf_counter()
            memory.search(question, user_id="bench", limit=10)
            latencies.append((time.perf_counter() - started) * 1000)
        stats = memory.stats()
        memory.close()

    non_embedding = report.seconds - report.embed_seconds
    return {
        "benchmark": "speed",
        "model": embedder.name,
        "machine": describe_machine(),
        "encode": {
            "texts": len(sample),
            "seconds": encode_seconds,
            "texts_per_second": len(sample) / encode_seconds,
            "tokens": sample_tokens,
            "tokens_per_second": (sample_tokens / encode_seconds) if sample_tokens else None,
        },
        "ingest": {
            "turns": report.turns,
            "sessions": report.sessions,
            "memories": report.memories,
            "seconds": report.seconds,
            "embed_seconds": report.embed_seconds,
            "turns_per_second": report.turns_per_second,
            "tokens": corpus_tokens,
            "embedding_tokens_per_second": (corpus_tokens / report.embed_seconds) if corpus_tokens else None,
            "non_embedding_seconds": non_embedding,
            "non_embedding_share": non_embedding / report.seconds,
        },
        "search": {
            "store_memories": stats.memories,
            "queries": len(latencies),
            "latency_ms": percentiles(latencies),
        },
    }


def _rate(tokens_per_second: float | None) -> str:
    return f"{tokens_per_second:.0f} tokens/s" if tokens_per_second else "tokens not counted"


def speed_markdown(result: dict, command: str) -> str:
    e, i, s, m = result["encode"], result["ingest"], result["search"], result["machine"]
    tokens = f"{e['tokens_per_second']:.0f} tokens/s" if e.get("tokens_per_second") else "n/a"
    lat = s["latency_ms"]
    return f"""# Speed: ingest and search

Command: `{command}`

Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}, torch {m.get('torch', '?')} ({m.get('torch_threads', '?')} threads).
Model: `{result['model']}` on {m.get('embedding_runtime', '?')}, vector cache off (every vector computed).

| measure | value |
|---|---|
| raw encode, {e['texts']} turns | {e['texts_per_second']:.1f} turns/s ({tokens}) |
| ingest, {i['turns']} turns in {i['sessions']} sessions ({i['memories']} memories) | {i['turns_per_second']:.1f} turns/s, {i['seconds']:.1f} s |
| of which embedding | {i['embed_seconds']:.1f} s ({_rate(i.get('embedding_tokens_per_second'))}) |
| of which everything else (date resolution, records, SQLite + FTS5 writes) | {i['non_embedding_seconds']:.1f} s ({100 * i['non_embedding_share']:.1f}%) |
| search latency on {s['store_memories']} memories, {s['queries']} questions | p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms |
"""
