"""The search pipeline: candidates from several strategies, fused, diversified, explained."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from memlane.config import RetrievalConfig
from memlane.embed import Embedder
from memlane.records import Explanation, Hit, StrategyHit
from memlane.retrieve.fusion import (
    adaptive_weights,
    informative_terms,
    min_max,
    mmr,
    query_specificity,
    reciprocal_rank_fusion,
)
from memlane.retrieve.query import QueryAnalysis, analyze_query
from memlane.store import Store


class Retriever:
    """Runs one search for one user. Knows the store only through its protocol."""

    def __init__(self, store: Store, embedder: Embedder, config: RetrievalConfig) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config

    def search(
        self,
        user_id: str,
        query: str,
        *,
        limit: int = 10,
        filters: dict[str, Any] | None = None,
        now: date | datetime | None = None,
        explain: bool = False,
    ) -> list[Hit]:
        cfg = self.config
        n = max(cfg.candidates, limit)
        analysis = analyze_query(query, now, self._known_entities(user_id))
        query_vector = self.embedder.encode([query], purpose="query")[0]

        frequencies, total = (self.store.document_frequencies(user_id, analysis.terms)
                              if analysis.terms else ({}, 0))
        dense = self.store.dense_candidates(user_id, query_vector, n, filters)
        lexical = self.store.lexical_candidates(user_id, informative_terms(frequencies, total), n, filters)
        rankings: dict[str, list[tuple[str, float]]] = {"dense": dense, "bm25": lexical}
        weights = ({"bm25": 1.0, "dense": 1.0} if not cfg.adaptive_weights or not analysis.terms
                   else adaptive_weights(query_specificity(frequencies, total)))

        if analysis.needles:
            found = self.store.substring_matches(user_id, analysis.needles, n, filters)
            rankings["lookup"] = [(mid, 1.0) for mid, _ in found]
            weights["lookup"] = cfg.lookup_weight
        if analysis.time_range is not None and cfg.temporal_boost > 0:
            in_range = dict(filters or {})
            in_range["date_from"] = max(analysis.time_range.start.isoformat(), in_range.get("date_from") or "")
            in_range["date_to"] = min(analysis.time_range.end.isoformat(), in_range.get("date_to") or "9999-12-31")
            rankings["temporal"] = self.store.dense_candidates(user_id, query_vector, n, in_range)
            weights["temporal"] = cfg.temporal_boost
        if analysis.entities and cfg.entity_weight > 0:
            base = reciprocal_rank_fusion({k: [mid for mid, _ in rankings[k]] for k in ("dense", "bm25")}, weights, k=cfg.rrf_k)
            rankings["entity"] = self._entity_ranking(user_id, analysis, base, n, filters)
            weights["entity"] = cfg.entity_weight
        ordered = {name: [mid for mid, _ in ranked] for name, ranked in rankings.items()}
        fused = reciprocal_rank_fusion(ordered, weights, k=cfg.rrf_k)
        if not fused:
            return []
        pool = sorted(fused, key=lambda mid: -fused[mid])[: max(limit * 3, limit)]
        vectors = self.store.vectors(user_id, pool)
        picked = mmr(
            min_max([fused[mid] for mid in pool]),
            vectors,
            limit,
            trade_off=cfg.mmr_lambda,
            duplicate_threshold=cfg.dedupe_threshold,
        )
        chosen = [pool[i] for i in picked]
        records = {r.id: r for r in self.store.get_many(user_id, chosen)}
        hits = []
        for mid in chosen:
            if mid not in records:  # deleted between candidate search and fetch
                continue
            explanation = self._explain(mid, rankings, weights, fused[mid], analysis) if explain else None
            hits.append(Hit(record=records[mid], score=fused[mid], explanation=explanation))
        return hits

    def _known_entities(self, user_id: str) -> list[str]:
        names = self.store.speakers(user_id)
        return [s for s in names if s.lower() not in {"user", "assistant", "system", "tool"}]

    def _entity_ranking(
        self, user_id: str, analysis: QueryAnalysis, base: dict[str, float], n: int,
        filters: dict[str, Any] | None,
    ) -> list[tuple[str, float]]:
        """Memories said by or mentioning a name in the question: first those the dense and
        lexical strategies found, in their fused order, then other mentions."""
        pool = sorted(base, key=lambda mid: -base[mid])
        said_or_mentioned = self.store.mentioning(user_id, pool, analysis.entities)
        ranked = [(mid, base[mid]) for mid in pool if mid in said_or_mentioned]
        seen = {mid for mid, _ in ranked}
        for mid, _needle in self.store.substring_matches(user_id, analysis.entities, n, filters):
            if mid not in seen:
                ranked.append((mid, 0.0))
                seen.add(mid)
        return ranked[:n]

    @staticmethod
    def _explain(
        memory_id: str, rankings: dict[str, list[tuple[str, float]]], weights: dict[str, float],
        fused: float, analysis: QueryAnalysis,
    ) -> Explanation:
        strategies = []
        for name, ranked in rankings.items():
            for rank, (mid, score) in enumerate(ranked, start=1):
                if mid == memory_id:
                    strategies.append(StrategyHit(strategy=name, rank=rank, score=round(score, 6)))
                    break
        notes = []
        if analysis.time_range is not None:
            notes.append(f"time range from '{analysis.time_range.expression}': "
                         f"{analysis.time_range.start.isoformat()}..{analysis.time_range.end.isoformat()}")
        if analysis.entities:
            notes.append("entities: " + ", ".join(analysis.entities))
        if analysis.needles:
            notes.append("exact strings: " + ", ".join(analysis.needles))
        return Explanation(strategies=strategies, fused_score=fused, weights=dict(weights), notes=notes)

