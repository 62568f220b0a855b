import numpy as np
import pytest

from memlane.embed.local import SentenceTransformerEmbedder
from memlane.embed.static import StaticEmbedder

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def static(tmp_path_factory):
    return StaticEmbedder(SentenceTransformerEmbedder("all-MiniLM-L6-v2"), cache_dir=tmp_path_factory.mktemp("static"))


def test_static_vectors_are_unit_length_and_meaningful(static):
    v = static.encode(["I adopted a puppy last week", "We got a new dog", "The stock market fell sharply"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_the_distilled_table_is_cached_and_reloaded(static, tmp_path_factory):
    static.encode(["warm up"])
    again = StaticEmbedder(static.base, cache_dir=static._cache_dir)
    assert np.allclose(again.encode(["a dog"]), static.encode(["a dog"]))
    assert static.name == "static:sentence-transformers/all-MiniLM-L6-v2"
