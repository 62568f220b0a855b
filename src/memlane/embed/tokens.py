"""A model's tokenizer called directly, for the ONNX path.

sentence-transformers tokenizes through several layers (modality checks, keyword merging, the
transformers tokenizer wrapper, torch tensors); between searches, with the CPU caches cold, they
cost about 0.6 ms per question on 2 cores. The Rust `tokenizers` core underneath does the same
work for a fraction of that. It is used only where it gives exactly the model's own inputs on
probe texts (long, empty, accented, mixed scripts, odd whitespace); any other model keeps the
model's own tokenization."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from memlane.embed._common import as_int64

Tokenize = Callable[[Sequence[str]], dict[str, np.ndarray]]
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

PROBES = (
    "What did Caroline say about the adoption agency?",
    "",
    "   leading and trailing spaces   ",
    "Tabs\tand\nnew lines\r\nand  double  spaces",
    "Ünïcödé àccents, straße, İstanbul, ΑΒΓ, Привет, 東京で会いましょう, مرحبا 😀👍🏽",
    "ALL CAPS, MiXeD cAsE, numbers 3.14 and 2026-12-02, e-mail ana@example.org, url https://example.org/a?b=c",
    " ".join(f"word{i}" for i in range(600)),  # past any model's token limit
    "x" * 3000,
)


def direct_tokenizer(model: Any, reference: Tokenize) -> Tokenize | None:
    """`model`'s (a loaded SentenceTransformer) tokenizer core, truncating at its sequence limit
    and padding to the longest text, giving int64 arrays by input name; None when the model has
    no such core or it differs from `reference` (the model's own tokenization) on a probe, alone
    or in a batch."""
    try:
        core = _core(model)
    except (AttributeError, TypeError, ValueError, ImportError):
        return None
    if core is None:
        return None
    wanted = tuple(name for name in INPUTS if name in reference(PROBES[:1]))

    def tokenize(texts: Sequence[str]) -> dict[str, np.ndarray]:
        encodings = core.encode_batch(list(texts))
        columns = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                   "token_type_ids": [e.type_ids for e in encodings]}
        return {name: np.array(columns[name], dtype=np.int64) for name in wanted}

    batches = [[text] for text in PROBES] + [list(PROBES)]
    return tokenize if all(_same(tokenize(batch), reference(batch)) for batch in batches) else None


def _core(model: Any) -> Any:
    """A copy of the model's `tokenizers.Tokenizer`, set to truncate and pad as the model does."""
    from tokenizers import Tokenizer

    wrapper = model.tokenizer
    backend = getattr(wrapper, "backend_tokenizer", None)
    if backend is None or wrapper.pad_token is None:
        return None
    core = Tokenizer.from_str(backend.to_str())  # a copy: the model's own stays as it was
    core.enable_truncation(max_length=int(model.max_seq_length))
    core.enable_padding(pad_id=int(wrapper.pad_token_id), pad_token=wrapper.pad_token,
                        pad_type_id=int(getattr(wrapper, "pad_token_type_id", 0) or 0))
    return core


def _same(ours: dict[str, np.ndarray], theirs: dict[str, Any]) -> bool:
    if set(ours) != {name for name in theirs if name in INPUTS}:
        return False
    for name, array in ours.items():
        other = as_int64(theirs[name])
        if other.shape != array.shape or not np.array_equal(other, array):
            return False
    return True
