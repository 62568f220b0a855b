"""Hard-negative mining: the memories the current retriever ranks high for a query but that are
not its answer.

For each example the hybrid retriever (BM25 + the current embedder, fused by RRF) ranks the
user's memories of the positive's kind. Non-positives are taken in rank order; one whose cosine
to the query exceeds `margin` x the best positive's cosine is skipped as a likely unlabeled
answer (a false negative), as is any whose text equals a positive's.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from memlane.config import MemoryConfig
from memlane.embed import make_embedder
from memlane.tune.examples import Example, positive_records

Progress = Callable[[int, int], None]


def keep_negatives(positive_similarity: float, candidate_similarities: Sequence[float], margin: float, k: int) -> list[int]:
    """Indices of the first `k` candidates with similarity <= margin x positive_similarity.

    Candidates arrive in the retriever's rank order, so the hardest acceptable ones are kept.
    """
    threshold = margin * positive_similarity
    kept = [i for i, similarity in enumerate(candidate_similarities) if similarity <= threshold]
    return kept[:k]


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
    kinds = {r.node_type for r in positive_records(memory, example)}
    filters = {"node_type": sorted(kinds)} if kinds else None
    hits = memory.search(example.query, user_id=example.user_id, limit=depth, now=example.now, filters=filters)
    positives = set(example.positives)
    candidates = [h.record for h in hits if h.record.id not in positive_ids and h.record.embed_text not in positives]
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
