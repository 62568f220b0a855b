"""A static embedder distilled from a sentence-transformers model on this machine.

Every vocabulary token is run through the model once, alone ("[CLS] token [SEP]"), and its
pooled output kept. A text's vector is then the idf-weighted mean of its tokens' vectors: no
transformer at encode time, so it embeds hundreds of thousands of texts a minute on a CPU. It is
the cheap first stage of the tiered path; the full model re-scores only the best candidates.
Distillation takes about a minute and is cached on disk per model fingerprint.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from memlane.config import default_cache_path
from memlane.embed._common import Purpose, check_purpose
from memlane.embed.local import SentenceTransformerEmbedder


# Distilled tables and tokenizers, shared read-only by every static embedder of this process.
_TABLES: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_TOKENIZERS: dict[str, object] = {}


class StaticEmbedder:
    """Token-vector averaging distilled from `base`. Name: 'static:<base name>'."""

    def __init__(self, base: SentenceTransformerEmbedder, cache_dir: str | Path | None = None,
                 max_tokens: int = 512) -> None:
        self.base = base
        # The same instruction prefixes as the model it was distilled from.
        self.query_prefix = base.query_prefix
        self.document_prefix = base.document_prefix
        self.name = f"static:{base.name}"
        self.fingerprint = f"static-v1:{base.fingerprint}"
        self.max_tokens = max_tokens
        self._cache_dir = Path(cache_dir) if cache_dir else default_cache_path().parent / "static"
        self._table: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._tokenizer = None

    @property
    def dims(self) -> int:
        return self.base.dims

    def _file(self) -> Path:
        digest = hashlib.sha256(self.fingerprint.encode()).hexdigest()[:16]
        return self._cache_dir / f"{digest}.npz"

    def _load(self) -> None:
        if self._table is not None:
            return
        from tokenizers import Tokenizer

        tokenizer_file = str(self.base.path / "tokenizer.json")
        tokenizer = _TOKENIZERS.get(tokenizer_file)
        if tokenizer is None:
            tokenizer = _TOKENIZERS[tokenizer_file] = Tokenizer.from_file(tokenizer_file)
            tokenizer.no_padding()
            tokenizer.no_truncation()
        self._tokenizer = tokenizer
        path = self._file()
        if str(path) in _TABLES:  # shared by every store of this process, read-only
            self._table, self._weights = _TABLES[str(path)]
            return
        if path.exists():
            stored = np.load(path)
            self._table, self._weights = stored["table"], stored["weights"]
        else:
            self._table, self._weights = distill(self.base, tokenizer)
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".tmp.npz")
            np.savez(partial, table=self._table, weights=self._weights)
            partial.replace(path)  # atomic: a crash never leaves a half-written table
        _TABLES[str(path)] = (self._table, self._weights)

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        check_purpose(purpose)
        self._load()
        assert self._table is not None and self._weights is not None and self._tokenizer is not None
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        if not texts:
            return out
        prefix = self.query_prefix if purpose == "query" else self.document_prefix
        encodings = self._tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=False)
        for row, encoding in enumerate(encodings):
            ids = np.asarray(encoding.ids[: self.max_tokens], dtype=np.int64)
            if ids.size == 0:
                continue
            weights = self._weights[ids]
            out[row] = weights @ self._table[ids]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def __repr__(self) -> str:
        return f"StaticEmbedder({self.base.name!r})"


def distill(base: SentenceTransformerEmbedder, tokenizer, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Token table (vocab x dims) from the model's pooled output of each token alone, and a
    weight per token that grows with the log of its rank: BERT's WordPiece vocabulary lists words
    from the most frequent ("the" at 1996) down, so the rank stands in for rarity, as in SIF and
    Zipf weighting. Punctuation and single characters before it get the floor weight."""
    import torch

    model = base.model
    vocab = tokenizer.get_vocab_size()
    cls_id = tokenizer.token_to_id("[CLS]")
    sep_id = tokenizer.token_to_id("[SEP]")
    transformer = model[0].auto_model
    table = np.zeros((vocab, base.dims), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, vocab, batch_size):
            ids = torch.arange(start, min(start + batch_size, vocab))
            batch = torch.stack([torch.full_like(ids, cls_id), ids, torch.full_like(ids, sep_id)], dim=1)
            hidden = transformer(input_ids=batch, attention_mask=torch.ones_like(batch)).last_hidden_state
            pooled = hidden.mean(dim=1)  # all-MiniLM pools by mean over the three positions
            table[start:start + len(ids)] = torch.nn.functional.normalize(pooled, dim=1).numpy()
    first_word = tokenizer.token_to_id("the") or 0
    weights = np.array([max(0.1, math.log(1 + max(0, i - first_word) / 100.0)) for i in range(vocab)], dtype=np.float32)
    for special in ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"):
        token = tokenizer.token_to_id(special)
        if token is not None:
            weights[token] = 0.0
    return table, weights
