import os

import numpy as np
import pytest

from memlane.embed import SentenceTransformerEmbedder, local, onnx
from memlane.errors import ConfigError


class Transformer:
    auto_model = object()


class Pooling:
    def __init__(self, mode="mean", include_prompt=True):
        self.pooling_mode, self.include_prompt = mode, include_prompt


class Normalize:
    pass


class Dense:
    pass


class FakeModel:
    def __init__(self, *modules):
        self.modules = modules

    def children(self):
        return iter(self.modules)


@pytest.mark.parametrize("model, reason", [
    (FakeModel(Transformer(), Pooling()), None),
    (FakeModel(Transformer(), Pooling("cls"), Normalize()), None),
    (FakeModel(Transformer(), Pooling("max")), "pools by 'max'"),
    (FakeModel(Transformer(), Pooling(), Dense(), Normalize()), "Transformer -> Pooling -> Dense -> Normalize"),
    (FakeModel(Transformer(), Pooling(include_prompt=False)), "prompt"),
])
def test_only_models_the_export_reproduces_are_exported(model, reason):
    found = onnx.unsupported_reason(model)
    assert found is None if reason is None else reason in found


def test_an_unknown_runtime_is_a_config_error_that_lists_the_choices():
    with pytest.raises(ConfigError, match="auto, onnx, torch"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="tensorflow")


TEXTS = [
    "hi",
    "Caroline went to the LGBTQ support group last Tuesday.",
    "Zoë's café, 東京 and crème brûlée. " * 80,  # past the model's 256-token limit
] + [f"turn {i}: we talked about hiking, painting and the kids" * (i % 4 + 1) for i in range(70)]


@pytest.mark.model
def test_onnx_runtime_gives_torchs_vectors_for_questions_batches_and_prefixes():
    fast = SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="onnx", query_prefix="query: ")
    slow = SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="torch", query_prefix="query: ")
    assert fast.onnx_encoder() is not None and slow.onnx_encoder() is None
    for texts, purpose in ((TEXTS[:1], "query"), (TEXTS[1:2], "document"), (TEXTS, "document"), (TEXTS[:5], "query"),
                           (TEXTS[::-1], "document")):  # bulk: texts run one by one, unpadded, on threads
        a, b = fast.encode(texts, purpose=purpose), slow.encode(texts, purpose=purpose)
        assert a.shape == b.shape == (len(texts), 384) and a.dtype == np.float32
        assert np.abs(a - b).max() < 1e-5
        assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


@pytest.mark.model
def test_concurrent_questions_share_batches_on_one_thread_and_get_torchs_vectors():
    import threading

    fast = SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="onnx")
    reference = SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="torch").encode(TEXTS[:40], purpose="query")
    encoder = fast.onnx_encoder()
    runs, real_run = [], encoder.encode

    def counted(features, *, shared=False):
        runs.append((len(features["input_ids"]), shared))
        return real_run(features, shared=shared)

    encoder.encode = counted
    got = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, fast.encode([TEXTS[i]], purpose="query")))
               for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(40):
        assert got[i].shape == (1, 384) and np.abs(got[i][0] - reference[i]).max() < 1e-5
    assert sum(n for n, _ in runs) == 40 and len(runs) < 40  # combined into fewer model calls
    assert all(shared == (n > 1) for n, shared in runs)  # a combined batch runs on the one-thread session
    assert encoder._one_thread is not None


@pytest.mark.model
def test_a_damaged_export_is_made_again_and_old_exports_are_pruned(tmp_path):
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="torch")
    model = embedder.model

    def load():
        return onnx.load_encoder(model, embedder.fingerprint, tmp_path, embedder._features, embedder._encode_torch)

    first = load()
    assert first.path.stat().st_size > 1_000_000 and first.path.stat().st_mode & 0o777 == 0o644
    first.path.write_bytes(b"not an onnx graph")
    for i in range(onnx.KEEP_EXPORTS + 2):  # exports of other checkpoints, used long ago
        (tmp_path / f"old{i}.onnx").write_bytes(b"x")
        os.utime(tmp_path / f"old{i}.onnx", (1_000_000 + i, 1_000_000 + i))
    again = load()
    assert again.path == first.path and again.path.stat().st_size > 1_000_000
    assert np.abs(again.encode(embedder._features(TEXTS[:3])) - embedder._encode_torch(TEXTS[:3])).max() < 1e-5
    left = sorted(p.name for p in tmp_path.glob("*.onnx"))
    newest_old = [f"old{i}.onnx" for i in range(onnx.KEEP_EXPORTS + 1, 2, -1)]
    assert left == sorted([first.path.name, *newest_old])
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.model
def test_a_model_the_export_cannot_reproduce_stays_on_torch_or_is_refused(monkeypatch):
    monkeypatch.setattr(local, "_ONNX", {})
    monkeypatch.setattr(onnx, "unsupported_reason", lambda model: "it pools by 'max'")
    auto = SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="auto")
    assert auto.onnx_encoder() is None
    assert auto.encode(["hello"]).shape == (1, 384)
    # Refused whether the export is tried now or was found impossible before.
    with pytest.raises(ConfigError, match="runtime is 'onnx'.*pools by 'max'.*Fix"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="onnx").encode(["hello"])
    monkeypatch.setattr(local, "_ONNX", {})
    with pytest.raises(ConfigError, match="runtime is 'onnx'.*pools by 'max'.*Fix"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="onnx").encode(["hello"])


@pytest.mark.model
def test_an_export_that_fails_leaves_no_file_and_the_model_on_torch(monkeypatch, tmp_path):
    import torch

    def broken_export(*args, **kwargs):
        raise TypeError("cannot trace this architecture")

    monkeypatch.setattr(local, "_ONNX", {})
    monkeypatch.setattr(torch.onnx, "export", broken_export)
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="auto", onnx_dir=tmp_path)
    assert embedder.onnx_encoder() is None
    assert embedder.encode(["hello"]).shape == (1, 384)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(local, "_ONNX", {})
    with pytest.raises(ConfigError, match="export failed: TypeError: cannot trace"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="onnx", onnx_dir=tmp_path).encode(["hello"])


def test_int8_precision_on_torch_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="precision 'int8'.*runtime is 'torch'.*Fix"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", runtime="torch", precision="int8")
    with pytest.raises(ConfigError, match="float32, int8"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision="int4")


@pytest.mark.model
def test_int8_precision_is_another_model_with_close_vectors_and_a_damaged_copy_is_made_again(monkeypatch, tmp_path):
    monkeypatch.setattr(local, "_ONNX", {})
    full = SentenceTransformerEmbedder("all-MiniLM-L6-v2", onnx_dir=tmp_path)
    small = SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision="int8", onnx_dir=tmp_path)
    # Stores and vector caches key on these: int8 vectors never mix with float32 ones.
    assert small.name == full.name + "+int8" and small.fingerprint == full.fingerprint + "+int8"
    a, b = full.encode(TEXTS), small.encode(TEXTS)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() >= onnx.INT8_MIN_COSINE and cosine.mean() > 0.985
    assert np.abs(a - b).max() > 1e-3  # really other weights, not the float32 graph again
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    quantized = small.onnx_encoder().path
    assert quantized.stat().st_size < 0.7 * full.onnx_encoder().path.stat().st_size  # the layers, not the token table
    assert local.runtimes_in_use()[small.fingerprint] == "onnx"

    # Each text runs alone: its vector is the same in any batch, a question's the same as a document's.
    assert np.array_equal(small.encode(TEXTS[5:9]), b[5:9]) and np.array_equal(small.encode([TEXTS[1]], purpose="query")[0], b[1])

    quantized.write_bytes(b"not an onnx graph")
    monkeypatch.setattr(local, "_ONNX", {})
    again = SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision="int8", onnx_dir=tmp_path)
    assert np.abs(again.encode(TEXTS[:3]) - b[:3]).max() < 1e-5
    assert again.onnx_encoder().path == quantized and not list(tmp_path.glob("*.part"))


@pytest.mark.model
def test_an_int8_copy_that_strays_from_the_model_is_refused_and_not_kept(monkeypatch, tmp_path):
    monkeypatch.setattr(local, "_ONNX", {})
    monkeypatch.setattr(onnx, "INT8_MIN_COSINE", 0.99999)
    with pytest.raises(ConfigError, match="precision is 'int8'.*cosine to torch.*Fix: set embedder.precision"):
        SentenceTransformerEmbedder("all-MiniLM-L6-v2", precision="int8", onnx_dir=tmp_path).encode(["hello"])
    assert len(list(tmp_path.glob("*.onnx"))) == 1  # the float32 export only
