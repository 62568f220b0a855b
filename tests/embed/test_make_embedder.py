import pytest

import memlane.embed
from memlane.config import EmbedderConfig
from memlane.embed import (
    CachedEmbedder,
    Embedder,
    HashEmbedder,
    OpenAIHTTPEmbedder,
    SentenceTransformerEmbedder,
    make_embedder,
)
from memlane.errors import ConfigError


def test_hash_provider_is_wrapped_in_the_cache(tmp_path):
    embedder = make_embedder(EmbedderConfig(provider="hash", dims=64, cache_path=str(tmp_path / "c.sqlite")))
    assert isinstance(embedder, CachedEmbedder) and isinstance(embedder.inner, HashEmbedder)
    assert embedder.dims == 64
    assert (tmp_path / "c.sqlite").exists()


def test_cache_off_returns_the_bare_embedder():
    assert isinstance(make_embedder(EmbedderConfig(provider="hash", cache_path="off")), HashEmbedder)


def test_default_cache_path_honours_memlane_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLANE_CACHE_DIR", str(tmp_path))
    embedder = make_embedder(EmbedderConfig(provider="hash"))
    assert embedder.cache.path == tmp_path / "vectors.sqlite"


def test_local_provider_builds_without_loading_the_model():
    embedder = make_embedder(EmbedderConfig(cache_path="off", query_prefix="q: ", batch_size=8))
    assert isinstance(embedder, SentenceTransformerEmbedder)
    assert (embedder.query_prefix, embedder.batch_size, embedder.loaded) == ("q: ", 8, False)


def test_local_dims_that_contradict_the_model_are_a_config_error():
    with pytest.raises(ConfigError, match="384"):
        make_embedder(EmbedderConfig(dims=768, cache_path="off"))


def test_unknown_local_model_is_a_config_error_listing_choices():
    with pytest.raises(ConfigError, match="Valid choices"):
        make_embedder(EmbedderConfig(model="nobody/nothing", cache_path="off"))


def test_unknown_provider_is_a_config_error_listing_choices():
    config = EmbedderConfig.model_construct(provider="magic", cache_path="off")
    with pytest.raises(ConfigError, match="local, http, hash"):
        make_embedder(config)


def test_http_provider_needs_a_base_url():
    with pytest.raises(ConfigError, match="base_url"):
        make_embedder(EmbedderConfig(provider="http", model="m", cache_path="off"))


def test_http_provider_gets_its_settings():
    embedder = make_embedder(
        EmbedderConfig(provider="http", model="m", base_url="http://h:1/v1/", dims=8, api_key="k", cache_path="off")
    )
    assert isinstance(embedder, OpenAIHTTPEmbedder)
    assert (embedder.url, embedder.dims, embedder.api_key) == ("http://h:1/v1/embeddings", 8, "k")


def test_all_lists_the_public_names():
    assert set(memlane.embed.__all__) >= {
        "Embedder", "make_embedder", "SentenceTransformerEmbedder", "OpenAIHTTPEmbedder",
        "HashEmbedder", "VectorCache", "CachedEmbedder",
    }
    for name in memlane.embed.__all__:
        assert hasattr(memlane.embed, name)


def test_every_embedder_satisfies_the_protocol(tmp_path):
    assert isinstance(make_embedder(EmbedderConfig(provider="hash", cache_path=str(tmp_path / "c"))), Embedder)
