"""Text -> vectors: the `Embedder` protocol, its providers, and a persistent vector cache.

Every embedder returns float32 rows of unit length, so a dot product is a cosine.
Build one from configuration with `make_embedder(config.embedder)`.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from memlane.config import EmbedderConfig
from memlane.embed._common import Purpose
from memlane.embed.cache import CachedEmbedder, VectorCache
from memlane.embed.hashing import HashEmbedder
from memlane.embed.http import OpenAIHTTPEmbedder
from memlane.embed.local import SentenceTransformerEmbedder
from memlane.errors import ConfigError

PROVIDERS = ("local", "http", "hash")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors.

    name:        the model's user-facing name, recorded in stores.
    dims:        the vector size.
    fingerprint: identifies the exact weights; vector caches key on it.

    Embedders that prepend instructions by purpose may also expose `query_prefix` and
    `document_prefix` strings and a `batch_size` int; `CachedEmbedder` uses them if present.

    On Python 3.11, `isinstance(x, Embedder)` reads these attributes, so for an embedder whose
    `dims` is not yet known (an HTTP one built with dims=None, an unusual local model) it sends
    a probe request or loads the model.
    """

    name: str
    dims: int
    fingerprint: str

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        """Return an array of shape (len(texts), dims), float32, each row of unit length."""
        ...


def make_embedders(config: EmbedderConfig) -> tuple[Embedder, Embedder | None]:
    """(the embedder memories are indexed with, the embedder that re-scores candidates or None).

    With `first_stage = "static"` the index gets a static model distilled from the configured
    local model, and the configured model (cached) re-scores candidates at search time.
    """
    from memlane.embed.static import StaticEmbedder

    if config.model.startswith("static:"):  # the static model alone, no re-scoring
        base = config.model_copy(update={"model": config.model.removeprefix("static:"), "cache_path": "off"})
        inner = make_embedder(base)
        if not isinstance(inner, SentenceTransformerEmbedder):
            raise ConfigError(f"'{config.model}' needs a local model to distill. Fix: name a local model after 'static:'.")
        return StaticEmbedder(inner), None
    full = make_embedder(config)
    if config.first_stage == "none":
        return full, None
    inner = getattr(full, "inner", full)
    if not isinstance(inner, SentenceTransformerEmbedder):
        raise ConfigError(
            f"embedder.first_stage 'static' needs a local model to distill, not provider '{config.provider}'. "
            "Fix: set embedder.provider = 'local', or embedder.first_stage = 'none'."
        )
    return StaticEmbedder(inner), full


def make_embedder(config: EmbedderConfig) -> Embedder:
    """Build the configured embedder, wrapped in the vector cache unless `cache_path` is 'off'.

    Nothing is loaded here: the local model loads on first use.
    """
    embedder: Embedder
    if config.provider == "local":
        local = SentenceTransformerEmbedder(
            config.model,
            batch_size=config.batch_size,
            query_prefix=config.query_prefix,
            document_prefix=config.document_prefix,
            runtime=config.runtime,
            precision=config.precision,
        )
        known = local.known_dims
        if config.dims is not None and known is not None and config.dims != known:
            raise ConfigError(
                f"embedder.dims is {config.dims} but model '{local.name}' makes {known}-dimensional "
                f"vectors. Fix: remove embedder.dims (it is read from the model) or set it to {known}."
            )
        embedder = local
    elif config.provider == "http":
        if not config.base_url:
            raise ConfigError(
                "embedder.provider is 'http' but embedder.base_url is not set. "
                "Fix: set embedder.base_url to the server's OpenAI-compatible base, e.g. http://localhost:8080/v1."
            )
        embedder = OpenAIHTTPEmbedder(
            config.base_url,
            config.model,
            dims=config.dims,
            api_key=config.api_key,
            batch_size=config.batch_size,
            timeout_s=config.timeout_s,
            query_prefix=config.query_prefix,
            document_prefix=config.document_prefix,
        )
    elif config.provider == "hash":
        embedder = HashEmbedder(dims=config.dims or 256)
    else:
        raise ConfigError(
            f"unknown embedder provider '{config.provider}'. Valid choices: {', '.join(PROVIDERS)}."
        )

    path = config.cache_file()
    if path is None:
        return embedder
    return CachedEmbedder(embedder, VectorCache(path), cache_queries=config.cache_queries)


__all__ = [
    "CachedEmbedder",
    "Embedder",
    "HashEmbedder",
    "OpenAIHTTPEmbedder",
    "Purpose",
    "SentenceTransformerEmbedder",
    "VectorCache",
    "make_embedder",
    "make_embedders",
]
