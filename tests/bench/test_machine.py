from memlane.bench.machine import describe_machine
from memlane.embed import local


def test_the_machine_description_says_what_each_loaded_model_ran_on(monkeypatch):
    monkeypatch.setattr(local, "_LOADED", {"model-a": object(), "model-b": object()})
    monkeypatch.setattr(local, "_ONNX", {"model-a": (object(), None), "model-b": (None, "pools by 'max'")})
    info = describe_machine()
    assert info["embedding_runtime"] == "model-a: onnx, model-b: torch"
    assert info["cores"] >= 1 and info["onnxruntime"]


def test_no_model_loaded_means_no_runtime_claimed(monkeypatch):
    monkeypatch.setattr(local, "_LOADED", {})
    monkeypatch.setattr(local, "_ONNX", {})  # nor one an earlier test ran on ONNX Runtime
    assert "embedding_runtime" not in describe_machine()
