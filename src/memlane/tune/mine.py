"""Hard-negative mining: the memories the current retriever ranks high for a query but that are
not its answer.

For each example the hybrid retriever (BM25 + the current embedder, fused by RRF) ranks the
user's memories of the positive's kind. Non-positives are taken in rank order; one whose cosine
to the query exceeds `margin` x the best positive's cosine is skipped as a likely unlabeled
answer (a false negative), as is any whose text equals a positive's.

When the positives are document chunks, the candidates are the user's other chunks
(`order_chunk_candidates`): a chunk of the same document and section as a positive is never a
negative (a section cut into several chunks answers its questions together), and chunks of other
documents come before the positive's own document's other sections. What document search must
get right first is the document; sections of one document also restate each other (an abstract,
its specification), so within a document a "negative" is more often a second answer.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from memlane.config import MemoryConfig
from memlane.embed import make_embedder
from memlane.records import MemoryRecord, NodeType
from memlane.tune.examples import Example, positive_records

Progress = Callable[[int, int], None]


def keep_negatives(positive_similarity: float, candidate_similarities: Sequence[float], margin: float, k: int) -> list[int]:
    """Indices of the first `k` candidates with similarity <= margin x positive_similarity.

    Candidates arrive in the retriever's rank order, so the hardest acceptable ones are kept.
    """
    threshold = margin * positive_similarity
    kept = [i for i, similarity in enumerate(candidate_similarities) if similarity <= threshold]
    return kept[:k]


def order_chunk_candidates(candidates: Sequence[MemoryRecord],
                           positives: Sequence[MemoryRecord]) -> list[MemoryRecord]:
    """Candidates in the order negatives are taken from them, for positives that are chunks:
    chunks of another document first, then chunks of a positive's document in another section,
    each group in the retriever's rank order; chunks of a positive's document and section are
    dropped. Candidates that are not chunks, and every candidate when no positive is a chunk,
    keep their rank order (after the chunks)."""
    chunk = NodeType.CHUNK.value
    sections = {(_source(p), p.metadata.get("section", "")) for p in positives if p.node_type == chunk}
    if not sections:
        return list(candidates)
    documents = {source for source, _ in sections}
    other, same, rest = [], [], []
    for record in candidates:
        if record.node_type != chunk:
            rest.append(record)
        elif _source(record) not in documents:
            other.append(record)
        elif (_source(record), record.metadata.get("section", "")) not in sections:
            same.append(record)
    return other + same + rest


def _source(record: MemoryRecord) -> str:
    return str(record.metadata.get("source") or record.session_id or "")


def mine(store_path: str, examples: Sequence[Example], config: MemoryConfig, *,
         on_progress: Progress | None = None) -> list[Example]:
    """The examples with `negatives` / `negative_ids` filled (up to fine_tune.hard_negatives each)."""
    from memlane.memory import Memory

    tune = config.fine_tune
    ranking = config.model_copy(deep=True)
    ranking.retrieval.mode = "hybrid"
    embedder = make_embedder(config.active_embedder())  # the full model, even behind a static first stage
    mined: list[Example] = []
    with Memory(store_path, ranking) as memory:
        for done, example in enumerate(examples, start=1):
            mined.append(_mine_one(memory, embedder, example, tune.mine_depth, tune.margin, tune.hard_negatives))
            if on_progress:
                on_progress(done, len(examples))
    return mined


def _mine_one(memory, embedder, example: Example, depth: int, margin: float, k: int) -> Example:
    positive_ids = set(example.positive_ids)
    records = positive_records(memory, example)
    kinds = {r.node_type for r in records}
    filters = {"node_type": sorted(kinds)} if kinds else None
    hits = memory.search(example.query, user_id=example.user_id, limit=depth, now=example.now, filters=filters)
    positives = set(example.positives)
    candidates = [h.record for h in hits if h.record.id not in positive_ids and h.record.embed_text not in positives]
    candidates = order_chunk_candidates(candidates, records)
    result = Example(**{**example.__dict__, "negatives": [], "negative_ids": []})
    if not candidates or k == 0:
        return result
    query = embedder.encode([example.query], purpose="query")[0]
    positive_similarity = float(np.max(embedder.encode(example.positives, purpose="document") @ query))
    # Encode in small chunks, in rank order, and stop once k negatives are kept: most queries
    # need only the first few candidates, and every encode is a full-model call.
    for start in range(0, len(candidates), max(k * 2, 4)):
        chunk = candidates[start:start + max(k * 2, 4)]
        similarities = embedder.encode([r.embed_text for r in chunk], purpose="document") @ query
        for i in keep_negatives(positive_similarity, similarities.tolist(), margin, k - len(result.negatives)):
            result.negatives.append(chunk[i].embed_text)
            result.negative_ids.append(chunk[i].id)
        if len(result.negatives) >= k:
            break
    return result
