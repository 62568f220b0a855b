import numpy as np

from memlane.embed import Embedder, HashEmbedder
from memlane.embed.hashing import stem


def test_same_text_gives_same_vector_in_every_instance():
    texts = ["My sister lives in Lisbon", "I bought running shoes"]
    assert np.array_equal(HashEmbedder().encode(texts), HashEmbedder().encode(texts))


def test_vectors_are_float32_unit_rows_of_the_configured_size():
    vectors = HashEmbedder(dims=64).encode(["one text", "another text", ""])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-5)


def test_empty_input_gives_zero_rows():
    assert HashEmbedder(dims=16).encode([]).shape == (0, 16)


def test_texts_sharing_words_are_closer_than_unrelated_texts():
    query, related, unrelated = HashEmbedder().encode(
        ["my dog loves walks in the park", "walking the dog in the park", "quarterly tax filing deadline"]
    )
    assert query @ related > query @ unrelated + 0.2


def test_stemming_links_inflected_forms():
    assert stem("walking") == stem("walked") == stem("walks") == "walk"
    a, b, c = HashEmbedder().encode(["walking", "walked", "taxes"])
    assert a @ b > a @ c


def test_name_and_fingerprint_name_the_size():
    embedder = HashEmbedder(dims=128)
    assert embedder.name == "hash-128"
    assert "128" in embedder.fingerprint
    assert isinstance(embedder, Embedder)
