import json
import os
import shutil

import numpy as np
import pytest

from memlane.embed import Embedder, SentenceTransformerEmbedder
from memlane.embed.local import BUNDLED_NAME, peek_dims
from memlane.errors import ConfigError


def test_bundled_model_has_384_dims_without_loading():
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    assert embedder.dims == 384
    assert isinstance(embedder, Embedder)
    assert not embedder.loaded


def test_both_spellings_of_the_bundled_model_resolve_to_the_same_name():
    short = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    full = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    assert short.name == full.name == short.fingerprint == BUNDLED_NAME
    assert short.path == full.path


def test_an_unknown_model_name_is_a_config_error_that_says_how_to_fix_it():
    with pytest.raises(ConfigError) as error:
        SentenceTransformerEmbedder("no-such-org/no-such-model")
    message = str(error.value)
    assert "no-such-org/no-such-model" in message
    assert "local" in message and "all-MiniLM-L6-v2" in message


def test_a_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SentenceTransformerEmbedder(str(tmp_path / "missing" / "model"))


@pytest.fixture
def model_copy(tmp_path):
    """A local checkpoint directory: the bundled model's files, linked, not copied."""
    source = SentenceTransformerEmbedder("all-MiniLM-L6-v2").path
    target = tmp_path / "my-checkpoint"
    shutil.copytree(source, target, copy_function=os.symlink)
    return target


def test_a_local_directory_is_named_by_its_absolute_path(model_copy):
    embedder = SentenceTransformerEmbedder(str(model_copy))
    assert embedder.name == str(model_copy.resolve())
    assert embedder.dims == 384 and not embedder.loaded


def test_the_fingerprint_follows_the_weights_not_the_folder(model_copy):
    before = SentenceTransformerEmbedder(str(model_copy)).fingerprint
    moved = model_copy.rename(model_copy.with_name("moved"))
    assert SentenceTransformerEmbedder(str(moved)).fingerprint == before


def test_the_fingerprint_changes_when_the_weights_change(model_copy):
    before = SentenceTransformerEmbedder(str(model_copy)).fingerprint
    weights = model_copy / "model.safetensors"
    weights.unlink()
    weights.write_bytes(b"retrained")
    assert SentenceTransformerEmbedder(str(model_copy)).fingerprint != before


def test_dims_follow_a_dense_layer_without_loading(model_copy):
    modules = json.loads((model_copy / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    modules[-1]["idx"] = 3
    (model_copy / "modules.json").unlink()
    (model_copy / "modules.json").write_text(json.dumps(modules))
    (model_copy / "2_Dense").mkdir()
    (model_copy / "2_Dense" / "config.json").write_text(json.dumps({"in_features": 384, "out_features": 128}))
    assert peek_dims(model_copy) == 128


def test_a_model_in_the_hugging_face_cache_resolves_offline(model_copy, tmp_path, monkeypatch):
    import huggingface_hub.constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--acme--tiny-embedder"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_copy, repo / "snapshots" / commit, symlinks=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    embedder = SentenceTransformerEmbedder("acme/tiny-embedder")
    assert embedder.name == "acme/tiny-embedder"
    assert embedder.dims == 384 and not embedder.loaded


@pytest.mark.model
def test_bundled_model_loads_offline(minilm):
    assert minilm.loaded
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


@pytest.mark.model
def test_encode_gives_unit_float32_rows(minilm):
    vectors = minilm.encode(["first sentence", "second one"], purpose="query")
    assert vectors.dtype == np.float32 and vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


@pytest.mark.model
def test_paraphrases_are_closer_than_unrelated_sentences(minilm):
    puppy, dog, stocks = minilm.encode(["I adopted a puppy", "We got a new dog", "The stock market fell"])
    assert puppy @ dog > puppy @ stocks + 0.2


@pytest.mark.model
def test_count_tokens_counts_special_tokens_and_truncates(minilm):
    assert minilm.count_tokens(["hello world"]) == 4  # [CLS] hello world [SEP]
    assert minilm.count_tokens(["word " * 1000]) == minilm.max_seq_length == 256


@pytest.mark.model
def test_prefixes_change_the_vector_by_purpose(minilm):
    prefixed = SentenceTransformerEmbedder("all-MiniLM-L6-v2", query_prefix="query: ")
    prefixed._model = minilm.model  # share the loaded weights
    text = ["where do I keep my passport"]
    assert np.array_equal(prefixed.encode(text, "document"), minilm.encode(text, "document"))
    assert not np.allclose(prefixed.encode(text, "query"), minilm.encode(text, "query"))


@pytest.mark.model
def test_embedders_of_the_same_weights_share_one_loaded_model():
    first = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    second = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    first.encode(["load"])
    second.encode(["load"])
    assert first.model is second.model


@pytest.mark.model
def test_the_direct_path_for_a_few_texts_matches_sentence_transformers(minilm):
    questions = ["When did Nate get his first two turtles?", "What did I buy for my sister's birthday last week?"]
    reference = minilm.model.encode(questions, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    one_by_one = np.vstack([minilm.encode([q], purpose="query") for q in questions])
    np.testing.assert_allclose(one_by_one, reference, atol=1e-5)
    np.testing.assert_allclose(minilm.encode(questions, purpose="query"), reference, atol=1e-5)
