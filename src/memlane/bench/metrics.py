"""Pure metric functions shared by every benchmark and by the fine-tuning gate."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Collection, Sequence

import numpy as np


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[str, float]:
    """p50/p95/p99 (linear interpolation between order statistics, numpy's default)."""
    if not values:
        return {f"p{p}": float("nan") for p in points}
    array = np.asarray(values, dtype=np.float64)
    return {f"p{p}": float(np.percentile(array, p)) for p in points}


def mean_of(rows: Sequence[dict[str, float]], key: str) -> float:
    """Mean of one metric over per-question rows, skipping NaN (a question it does not apply to)."""
    values = [r[key] for r in rows if r[key] == r[key]]
    return sum(values) / len(values) if values else float("nan")


def gold_ranks(ranked: Sequence[str], gold: Collection[str]) -> dict[str, int | None]:
    """The 1-based rank of each gold item in `ranked`, or None when it is absent."""
    position = {}
    for rank, item in enumerate(ranked, start=1):
        position.setdefault(item, rank)
    return {g: position.get(g) for g in gold}


def recall_at_k(ranks: Collection[int | None], k: int) -> float:
    """Fractional recall: the share of gold items ranked within the top k."""
    if not ranks:
        return float("nan")
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def recall_any_at_k(ranks: Collection[int | None], k: int) -> float:
    """1 when at least one gold item is in the top k, else 0."""
    return float(any(r is not None and r <= k for r in ranks))


def recall_all_at_k(ranks: Collection[int | None], k: int) -> float:
    """1 when every gold item is in the top k, else 0."""
    return float(bool(ranks) and all(r is not None and r <= k for r in ranks))


def ndcg_at_k(ranks: Collection[int | None], k: int) -> float:
    """Binary-relevance NDCG: DCG = sum over gold ranked r <= k of 1/log2(r + 1), divided by the
    DCG of the ideal ranking, which puts min(|gold|, k) gold items first."""
    if not ranks:
        return float("nan")
    dcg = sum(1.0 / math.log2(r + 1) for r in ranks if r is not None and r <= k)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(ranks), k) + 1))
    return dcg / ideal


def bootstrap_mean_ci(values: Sequence[float], resamples: int = 1000, seed: int = 42,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval (low, high) of the mean."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, array.size, size=(resamples, array.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    return float(array.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], resamples: int = 1000, seed: int = 42,
                     confidence: float = 0.95) -> dict[str, float]:
    """Paired bootstrap of mean(b − a) over the same questions: the difference, its confidence
    interval, and the share of resamples in which b is not better (a one-sided p-value)."""
    a_arr, b_arr = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples differ in size: {a_arr.size} vs {b_arr.size}")
    diff = b_arr - a_arr
    mean, low, high = bootstrap_mean_ci(diff, resamples, seed, confidence)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1) if diff.size else np.array([0.0])
    return {"a": float(a_arr.mean()) if a_arr.size else float("nan"),
            "b": float(b_arr.mean()) if b_arr.size else float("nan"),
            "delta": mean, "ci_low": low, "ci_high": high, "p_not_better": float((means <= 0).mean())}


# -- answer-level metrics (LoCoMo QA) ---------------------------------------------------------------

_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = re.compile(r"[^\w\s]")
_ANSWER_STOPWORDS = _ARTICLES | {"and", "or", "of", "in", "on", "at", "to", "for", "with", "is", "was", "her", "his",
                                 "their", "she", "he", "they", "it", "by", "from"}
_NO_ANSWER = re.compile(r"\b(i don'?t know|do not know|not (mentioned|stated|specified|known|available)|"
                        r"no (information|mention|record)|cannot (be )?(determined|answer)|unknown|unanswerable)\b")


def normalize_answer(text: object) -> list[str]:
    """Lower-case tokens with punctuation and articles removed (SQuAD-style normalization)."""
    words = _PUNCTUATION.sub(" ", str(text).lower()).split()
    return [w for w in words if w not in _ARTICLES]


def token_f1(prediction: object, gold: object) -> float:
    """Harmonic mean of token precision and recall between normalized answers (multiset overlap)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def bleu1(prediction: object, gold: object) -> float:
    """Unigram BLEU: clipped unigram precision x brevity penalty exp(1 - r/c) when c < r."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if not pred or not ref:
        return 0.0
    precision = sum((Counter(pred) & Counter(ref)).values()) / len(pred)
    brevity = 1.0 if len(pred) >= len(ref) else math.exp(1 - len(ref) / len(pred))
    return precision * brevity


def answer_token_recall(gold: object, context: str) -> float:
    """Share of the gold answer's content tokens that appear in `context` (offline answer recall)."""
    tokens = [t for t in normalize_answer(gold) if t not in _ANSWER_STOPWORDS] or normalize_answer(gold)
    if not tokens:
        return float("nan")
    present = set(normalize_answer(context))
    return sum(1 for t in tokens if t in present) / len(tokens)


def says_no_answer(text: object) -> bool:
    """True for "I don't know"-style answers."""
    return bool(_NO_ANSWER.search(str(text).lower()))


def contains_answer(prediction: object, gold: object) -> bool:
    """The fast judge pass: the normalized gold answer appears inside the normalized prediction."""
    ref, pred = " ".join(normalize_answer(gold)), " ".join(normalize_answer(prediction))
    return bool(ref) and f" {ref} " in f" {pred} "
