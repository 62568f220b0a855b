"""The search pipeline: candidates from several strategies, fused, diversified, explained."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np

from memlane.config import RetrievalConfig
from memlane.embed import Embedder
from memlane.filters import Filter
from memlane.records import Explanation, Hit, StrategyHit
from memlane.retrieve.fusion import (
    adaptive_weights,
    boost_neighbours,
    informative_terms,
    min_max,
    mmr,
    query_specificity,
    reciprocal_rank_fusion,
)
from memlane.retrieve.context import UserContext
from memlane.retrieve.query import QueryAnalysis, analyze_query
from memlane.store import Store


class Retriever:
    """Runs one search for one user. Knows the store only through its protocol."""

    def __init__(self, store: Store, embedder: Embedder, config: RetrievalConfig, *,
                 rescorer: Embedder | None = None) -> None:
        self.store = store
        self.embedder = embedder  # the model the store's vectors come from
        self.rescorer = rescorer  # a stronger model that re-scores candidates (tiered path)
        self.config = config

    def search(
        self,
        user_id: str,
        query: str,
        *,
        limit: int = 10,
        filters: Filter | None = None,
        now: date | datetime | None = None,
        explain: bool = False,
        notes: list[str] | None = None,
    ) -> list[Hit]:
        """`notes` (e.g. how the question was routed) are added to every explanation."""
        filters = Filter.parse(filters)
        with _single_threaded_blas(), self.store.snapshot(user_id):  # one state of the user, start to end
            return self._search(UserContext(self.store, user_id), query, limit=limit, filters=filters, now=now,
                                explain=explain, notes=notes or [])

    def _search(
        self, user: UserContext, query: str, *, limit: int, filters: Filter,
        now: date | datetime | None, explain: bool, notes: list[str],
    ) -> list[Hit]:
        cfg = self.config
        user_id = user.user_id
        n = max(cfg.candidates, limit)
        speakers = self._known_entities(user)
        analysis = analyze_query(query, now, speakers)
        named = {s.lower() for s in speakers}
        subject = _subject(analysis.entities, named)
        # Turns the speaker prior lowers: those of the other named speakers (never a role).
        lowered = named - {subject} if cfg.mode == "full" and subject and cfg.speaker_prior < 1.0 else set()
        # BM25 alone needs no query vector; encoding one would only add latency to the ablation.
        query_vector = self.embedder.encode([query], purpose="query")[0] if cfg.mode != "bm25" else None

        # Started first: a backend that can draws them while BM25 is read (see the store's docs).
        dense = (self.store.dense_candidates_ahead(user_id, query_vector, n, filters)
                 if cfg.mode != "bm25" else None)
        frequencies, total = (self.store.document_frequencies(user_id, analysis.terms)
                              if analysis.terms else ({}, 0))
        # Full mode drops terms found in most memories; the plain ablations keep every term.
        terms = informative_terms(frequencies, total) if cfg.mode == "full" else analysis.terms
        lexical = self.store.lexical_candidates(user_id, terms, n, filters) if cfg.mode != "dense" else None
        rankings: dict[str, list[tuple[str, float]]] = {}
        weights: dict[str, float] = {}
        if dense is not None:
            rankings["dense"] = dense()
            weights["dense"] = 1.0
        if lexical is not None:
            rankings["bm25"] = lexical
            weights["bm25"] = 1.0
        if self.rescorer is not None and "dense" in rankings:
            self._rescore(user_id, query, rankings, weights)
        if cfg.mode == "full":
            self._add_full_strategies(user, analysis, named, query_vector, frequencies, total, terms, n, filters,
                                      rankings, weights)
        fused = self._fuse(user, rankings, weights, lowered)
        if not fused:
            return []
        # A "when" question is answered by a memory that says when; ingestion resolved its time.
        dated = (user.dated(list(fused))
                 if cfg.mode == "full" and analysis.asks_when and cfg.when_boost > 1.0 else set())
        for mid in dated:
            fused[mid] *= cfg.when_boost
        superseded = user.superseded(list(fused))
        for mid in superseded:  # an outdated fact stays findable, below the one that replaced it
            fused[mid] *= cfg.superseded_weight
        ranked = sorted(fused, key=lambda mid: -fused[mid])
        if cfg.mode == "full":
            pool = ranked[: limit * 3]
            picked = mmr(min_max([fused[mid] for mid in pool]), self.store.vectors(user_id, pool), limit,
                         trade_off=cfg.mmr_lambda, duplicate_threshold=cfg.dedupe_threshold)
            chosen = [pool[i] for i in picked]
        else:
            chosen = ranked[:limit]
        records = {r.id: r for r in self.store.get_many(user_id, chosen)}
        hits = []
        for mid in chosen:
            if mid not in records:  # deleted between candidate search and fetch
                continue
            explanation = None
            if explain:
                explanation = self._explain(mid, rankings, weights, fused[mid], analysis)
                explanation.node = records[mid].node_type
                explanation.notes = notes + explanation.notes
                if (records[mid].speaker or "").lower() in lowered:
                    explanation.notes.append(f"said by {records[mid].speaker}, not by {subject}, whom the "
                                             f"question is about (score x {cfg.speaker_prior})")
                if mid in dated:
                    dates = ", ".join(e.expression for e in records[mid].event_dates[:3])
                    explanation.notes.append(f"says when ({dates}) and the question asks when "
                                             f"(score x {cfg.when_boost})")
                if mid in superseded:
                    explanation.notes.append(f"superseded (score x {cfg.superseded_weight}); valid until "
                                             f"{records[mid].valid_until}")
            hits.append(Hit(record=records[mid], score=fused[mid], explanation=explanation))
        return hits

    def _fuse(self, user: UserContext, rankings: dict[str, list[tuple[str, float]]], weights: dict[str, float],
              lowered: set[str]) -> dict[str, float]:
        """Weighted RRF of the rankings, then (full mode) the neighbour boost and the speaker prior
        on the turns of the `lowered` speakers."""
        cfg = self.config
        fused = reciprocal_rank_fusion({name: [mid for mid, _ in ranked] for name, ranked in rankings.items()},
                                       weights, k=cfg.rrf_k)
        if cfg.mode == "full" and cfg.neighbour_boost > 0:
            around = user.turns_around(list(fused), cfg.neighbour_reach)
            fused = boost_neighbours(fused, around, cfg.neighbour_boost, cfg.neighbour_decay)
        if lowered:
            # The named speaker's own words answer questions about them far more often than what
            # others said to them; others' turns stay findable, lower. Only other named speakers
            # are lowered: an assistant's answer to "What did Ana ask about?" is still about Ana.
            for mid, speaker in user.speakers_of(list(fused)).items():
                if speaker in lowered:
                    fused[mid] *= cfg.speaker_prior
        return fused

    def _add_full_strategies(
        self, user: UserContext, analysis: QueryAnalysis, named: set[str], query_vector: np.ndarray, frequencies: dict[str, int],
        total: int, terms: list[str], n: int, filters: Filter,
        rankings: dict[str, list[tuple[str, float]]], weights: dict[str, float],
    ) -> None:
        """Adaptive BM25/dense weights, then the candidate sources only the full retriever uses."""
        cfg = self.config
        user_id = user.user_id
        if cfg.adaptive_weights and analysis.terms:
            weights.update(adaptive_weights(query_specificity(frequencies, total)))
        if cfg.context_weight > 0 and cfg.neighbour_weight > 0:
            rankings["dense_context"] = user.context_candidates(query_vector, cfg.neighbour_weight, n, filters)
            weights["dense_context"] = cfg.context_weight
            rankings["bm25_context"] = self._lexical_context(user, rankings["bm25"], n)
            weights["bm25_context"] = cfg.context_weight
        if cfg.session_weight > 0 and filters.allows_node_type("turn"):
            rankings["session"] = self._session_prior(user, query_vector, terms, rankings, weights, n, filters)
            weights["session"] = cfg.session_weight
        if analysis.needles:
            found = self.store.substring_matches(user_id, analysis.needles, n, filters)
            rankings["lookup"] = [(mid, 1.0) for mid, _ in found]
            weights["lookup"] = cfg.lookup_weight
        if analysis.time_range is not None and cfg.temporal_boost > 0:
            in_range = filters.narrowed_to(analysis.time_range.start, analysis.time_range.end)
            rankings["temporal"] = self.store.dense_candidates(user_id, query_vector, n, in_range)
            weights["temporal"] = cfg.temporal_boost
        # Speakers are the speaker prior's business: nearly every turn is said by or addressed to
        # one of them, so as anchors they only add noise. Other names (people, places, titles) anchor.
        anchors = [e for e in analysis.entities if e.lower() not in named]
        if anchors and cfg.entity_weight > 0:
            base = reciprocal_rank_fusion({k: [mid for mid, _ in rankings[k]] for k in ("dense", "bm25")}, weights, k=cfg.rrf_k)
            rankings["entity"] = self._entity_ranking(user, anchors, base, n, filters)
            weights["entity"] = cfg.entity_weight

    def _rescore(self, user_id: str, query: str, rankings: dict[str, list[tuple[str, float]]],
                 weights: dict[str, float]) -> None:
        """Tiered path: the full model re-scores the first stage's best turns (static dense and
        BM25), and its order becomes the dense ranking; the static order stays as a weaker vote."""
        m = self.config.rescore_candidates
        pool = list(dict.fromkeys(mid for name in ("dense", "bm25") for mid, _ in rankings.get(name, [])[:m]))
        texts = self.store.turn_texts(user_id, pool)
        if not texts:
            return
        ids = list(texts)
        query_vector = self.rescorer.encode([query], purpose="query")[0]
        vectors = self.rescorer.encode([texts[mid] for mid in ids], purpose="document")
        scores = vectors @ query_vector
        order = np.argsort(-scores, kind="stable")
        rankings["dense_static"] = rankings["dense"]
        weights["dense_static"] = 0.5 * weights["dense"]
        rankings["dense"] = [(ids[i], float(scores[i])) for i in order]

    def _session_prior(
        self, user: UserContext, query_vector: np.ndarray, terms: list[str],
        rankings: dict[str, list[tuple[str, float]]], weights: dict[str, float], n: int,
        filters: Filter,
    ) -> list[tuple[str, float]]:
        """Candidate turns ordered by their session's rank (dense and BM25 over whole sessions and
        by their best turns), then by their own fused rank: a turn in the right conversation beats
        a lookalike elsewhere."""
        user_id = user.user_id
        session_filter = filters.only(node_type="session")
        session_rankings = {
            "dense": [mid for mid, _ in self.store.dense_candidates(user_id, query_vector, n, session_filter)],
            "bm25": [mid for mid, _ in self.store.lexical_candidates(user_id, terms, n, session_filter)],
        }
        session_of = user.session_ids(session_rankings["dense"] + session_rankings["bm25"])
        memory_of = {sid: mid for mid, sid in session_of.items()}
        base = reciprocal_rank_fusion({k: [mid for mid, _ in v] for k, v in rankings.items()}, weights, k=self.config.rrf_k)
        turn_sessions = user.session_ids(list(base))
        # A session also ranks by its best turn: one passage that answers beats a whole session
        # that is vaguely about the topic (its vector is a mean, its BM25 diluted by its length).
        for name in ("dense", "bm25"):
            best_first = dict.fromkeys(turn_sessions[mid] for mid, _ in rankings[name] if mid in turn_sessions)
            session_rankings[f"{name}_best_turn"] = [memory_of[sid] for sid in best_first if sid in memory_of]
        session_weights = {**weights, "dense_best_turn": weights["dense"], "bm25_best_turn": weights["bm25"]}
        sessions = reciprocal_rank_fusion(session_rankings, session_weights, k=self.config.rrf_k)
        session_rank: dict[str, int] = {}
        for mid in sorted(sessions, key=lambda mid: -sessions[mid]):
            if mid in session_of:
                session_rank.setdefault(session_of[mid], len(session_rank))
        ordered = sorted(
            (mid for mid in base if turn_sessions.get(mid) in session_rank),
            key=lambda mid: (session_rank[turn_sessions[mid]], -base[mid]),
        )
        return [(mid, 1.0 / (1 + session_rank[turn_sessions[mid]])) for mid in ordered[:n]]

    def _lexical_context(self, user: UserContext, lexical: list[tuple[str, float]], n: int) -> list[tuple[str, float]]:
        """BM25 over a turn with its neighbours: its score plus the neighbour weight times theirs
        (scores of turns outside the lexical candidates count as zero)."""
        scores = dict(lexical)
        w = self.config.neighbour_weight
        context: dict[str, float] = {}
        for mid, nearby in user.turns_around(list(scores), 1).items():
            context[mid] = context.get(mid, 0.0) + scores[mid]
            for other, _distance in nearby:
                context[other] = context.get(other, 0.0) + w * scores[mid]
        for mid, score in scores.items():  # sessions and other memories without neighbours
            context.setdefault(mid, score)
        return sorted(context.items(), key=lambda item: -item[1])[:n]

    @staticmethod
    def _known_entities(user: UserContext) -> list[str]:
        names = user.speakers()
        return [s for s in names if s.lower() not in {"user", "assistant", "system", "tool"}]

    def _entity_ranking(
        self, user: UserContext, anchors: list[str], base: dict[str, float], n: int,
        filters: Filter,
    ) -> list[tuple[str, float]]:
        """Memories said by or mentioning a name in the question: first those the dense and
        lexical strategies found, in their fused order, then other mentions."""
        pool = sorted(base, key=lambda mid: -base[mid])
        said_or_mentioned = user.mentioning(pool, anchors)
        ranked = [(mid, base[mid]) for mid in pool if mid in said_or_mentioned]
        seen = {mid for mid, _ in ranked}
        for mid, _needle in self.store.substring_matches(user.user_id, anchors, n, filters):
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
        time_range = analysis.time_range
        return Explanation(strategies=strategies, fused_score=fused, weights=dict(weights), notes=notes, analysis={
            "time_range": None if time_range is None else {"expression": time_range.expression,
                                                           "start": time_range.start.isoformat(),
                                                           "end": time_range.end.isoformat()},
            "entities": list(analysis.entities), "needles": list(analysis.needles)})



def _subject(entities: list[str], speakers: set[str]) -> str | None:
    """The one speaker a question is about (lower-cased): a known speaker (`speakers`, lower-cased)
    named in it, when exactly one is. Questions naming two speakers, or none, have no subject."""
    named = {e.lower() for e in entities if e.lower() in speakers}
    return next(iter(named)) if len(named) == 1 else None


_BLAS = None


def _single_threaded_blas():
    """Run numpy's BLAS on one thread during a search. Its products here are small (a query
    against at most tens of thousands of rows), and a second BLAS thread only fights the
    embedding model's threads for the cores: on 2 cores this cut LoCoMo search p95 from ~58 ms
    to ~12 ms. Costs a few microseconds per search."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")
