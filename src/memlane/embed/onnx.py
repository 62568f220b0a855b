"""A sentence-transformers model run by ONNX Runtime: the same vectors as torch (to about 1e-7)
for much less per call on a CPU. A question takes about 3 ms instead of 9 on 2 cores, which is
most of a search's latency. Batches of long texts gain little (the matrix products are the same
work); a few short questions in one call cost about 40% less CPU each on one thread than one at a
time, which a busy server gets by combining concurrent questions (`memlane.embed.combine`).

The model is exported once per weights fingerprint into the cache folder and checked against
torch on probe texts each time it is loaded: a file that disagrees is exported again, and a model
this module cannot reproduce exactly (pooling other than mean or CLS, extra layers) stays on torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from memlane.embed._common import as_int64

log = logging.getLogger("memlane")

# Short, long (truncated at the model's limit) and non-ASCII: exported graphs that disagree with
# torch on any of these are not used.
PROBE_TEXTS = (
    "hi",
    "When did Caroline go to the LGBTQ support group? She said it was last Tuesday, 7 May 2023.",
    "Zoë's café serves crème brûlée; 東京 was lovely. " * 60,
)
TOLERANCE = 1e-4  # max absolute difference per vector component; export noise is ~1e-7
# Least cosine between an int8 copy's vector and torch's on the probes; per-channel weights give
# about 0.99 (0.986 at worst on 256 PEP chunks), a broken quantization well under 0.95.
INT8_MIN_COSINE = 0.97
QUANTIZATION = "dynamic,per-channel,MatMul"  # in the file key: another recipe makes another file
KEEP_EXPORTS = 6  # exported models kept in the folder (~90 MB for MiniLM, ~59 MB int8), most recently used
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def unsupported_reason(model: Any) -> str | None:
    """Why this loaded SentenceTransformer cannot run on ONNX Runtime here, or None if it can:
    a transformer, then mean or CLS pooling over every token, then at most a normalization."""
    modules = list(model.children())
    names = [type(m).__name__ for m in modules]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        return f"its modules are {' -> '.join(names)}, not Transformer -> Pooling (-> Normalize)"
    pooling = modules[1]
    mode = getattr(pooling, "pooling_mode", None)
    if mode not in ("mean", "cls"):
        return f"it pools by {mode!r}; only 'mean' and 'cls' are exported"
    if getattr(pooling, "include_prompt", True) is False:
        return "its pooling leaves out the prompt tokens"
    if not hasattr(modules[0], "auto_model"):
        return "its transformer module has no auto_model"
    return None


class OnnxEncoder:
    """One exported model in ONNX Runtime sessions; `encode` takes the model's tokenized inputs.

    A lone batch runs on `threads` cores for the shortest wait. Batches marked `shared` (several
    concurrent questions combined, so the machine is busy) run on a one-thread session of their
    own: splitting a small batch across cores costs about 30% more CPU in all, CPU that the other
    requests in flight need."""

    def __init__(self, path: Path, input_names: Sequence[str], threads: int) -> None:
        self.path = path
        self.input_names = tuple(input_names)
        self._session = _session(path, threads)
        self._threads = threads
        self._one_thread: Any = None
        self._lock = threading.Lock()

    def encode(self, features: dict[str, Any], *, shared: bool = False) -> np.ndarray:
        """Unit vectors for one tokenized batch (`features` as the model's `preprocess` returns them)."""
        feeds = {name: as_int64(features[name]) for name in self.input_names}
        session = self._one_thread_session() if shared and self._threads > 1 else self._session
        return session.run(None, feeds)[0].astype(np.float32, copy=False)

    def encode_each(self, features: dict[str, Any]) -> np.ndarray:
        """Unit vectors for a tokenized batch (as `encode` takes it), each text run alone without
        its padding on a one-thread session, `threads` runs at once. On 2 cores this embeds about
        1.5x the tokens per second of the padded batch split across both cores. With 8-bit weights
        it is also what keeps a text's vector its own: activations are quantized per run, so in a
        batch they would depend on the batch's other texts."""
        arrays = {name: as_int64(features[name]) for name in self.input_names}
        kept = as_int64(features["attention_mask"]).astype(bool)
        feeds = [{name: array[row][kept[row]][None, :] for name, array in arrays.items()} for row in range(len(kept))]
        session = self._one_thread_session() if self._threads > 1 else self._session

        def run(feed: dict[str, np.ndarray]) -> np.ndarray:
            return session.run(None, feed)[0][0]

        if self._threads > 1 and len(feeds) > 1:
            with ThreadPoolExecutor(min(self._threads, len(feeds))) as pool:  # ONNX Runtime runs without the GIL
                rows = list(pool.map(run, feeds))
        else:
            rows = [run(feed) for feed in feeds]
        return np.stack(rows).astype(np.float32, copy=False)

    def _one_thread_session(self) -> Any:
        with self._lock:
            if self._one_thread is None:
                self._one_thread = _session(self.path, 1)
        return self._one_thread


def _session(path: Path, threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: a server runs many encodes at once, and a
    # spinning pool burns the cores the other requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_encoder(model: Any, fingerprint: str, folder: Path, tokenize: Any, reference: Any,
                 precision: str = "float32") -> OnnxEncoder:
    """The ONNX encoder of `model` (a loaded SentenceTransformer), exported into `folder` unless a
    file that passes the probe check is already there. `tokenize(texts)` gives the model's inputs,
    `reference(texts)` torch's vectors. With `precision` 'int8' the export's weights are then
    quantized, and the copy is used only if its vectors stay within INT8_MIN_COSINE of torch's.
    Raises RuntimeError when no export (or quantized copy) passes its check."""
    reason = unsupported_reason(model)
    if reason is not None:
        raise RuntimeError(f"not exported to ONNX: {reason}")
    probe = tokenize(list(PROBE_TEXTS))
    names = [n for n in _INPUTS if n in probe]
    expected = reference(list(PROBE_TEXTS))

    def same_vectors(encoder: OnnxEncoder) -> str | None:
        difference = float(np.abs(encoder.encode(probe) - expected).max())
        return None if difference <= TOLERANCE else f"max difference {difference:.2e}"

    path = folder / f"{_file_key(fingerprint, names)}.onnx"
    encoder = _checked(path, names, lambda: _export(model, probe, names, path), same_vectors, "ONNX export")
    if precision == "float32":
        return encoder

    def close_vectors(candidate: OnnxEncoder) -> str | None:
        cosine = float((candidate.encode(probe) * expected).sum(axis=1).min())
        return None if cosine >= INT8_MIN_COSINE else f"cosine to torch {cosine:.4f} < {INT8_MIN_COSINE}"

    quantized = folder / f"{_file_key(fingerprint + '+' + precision + '|' + QUANTIZATION, names)}.onnx"
    return _checked(quantized, names, lambda: _quantize(path, quantized), close_vectors, "int8 copy")


def _checked(path: Path, names: list[str], make: Any, problem_of: Any, what: str) -> OnnxEncoder:
    """An encoder over `path`, made by `make()` when missing, or remade once when `problem_of`
    finds a problem with the file there (stale, damaged, from other versions)."""
    made = False
    while True:
        if not path.exists():
            make()
            made = True
        try:
            encoder = OnnxEncoder(path, names, _threads())
            problem = problem_of(encoder)
            if problem is None:
                os.utime(path)  # most recently used, for pruning
                _prune(path.parent)
                return encoder
        except Exception as exc:  # an unreadable or truncated file
            problem = str(exc)
        if made:
            path.unlink(missing_ok=True)  # a file that failed its check is never left to be tried again
            raise RuntimeError(f"its {what} does not reproduce its torch vectors ({problem})")
        log.warning("%s %s disagrees with torch (%s); making it again", what, path.name, problem)
        path.unlink(missing_ok=True)


def _quantize(source: Path, path: Path) -> None:
    """8-bit weights per output channel (activations quantized per batch as it runs), written atomically."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    with _EXPORT_LOCK, _part_file(path) as temporary:
        root.addFilter(_quantizer_hint)  # only the quantizer's own records: other threads keep logging
        try:
            # Matrix products only: the embedding table stays float32, closer vectors at the same speed.
            quantize_dynamic(str(source), temporary, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
        except Exception as exc:
            raise RuntimeError(f"the int8 quantization failed: {type(exc).__name__}: {exc}") from exc
        finally:
            root.removeFilter(_quantizer_hint)


def _quantizer_hint(record: logging.LogRecord) -> bool:
    """False for what onnxruntime's quantizer logs to the root logger (a hint to pre-process the model)."""
    parts = Path(record.pathname).parts
    return not ("onnxruntime" in parts and "quantization" in parts)


_EXPORT_LOCK = threading.Lock()


def _export(model: Any, probe: dict[str, Any], names: list[str], path: Path) -> None:
    """Export the transformer with pooling and normalization as one graph, written atomically."""
    import torch

    graph = _pooled_module(model[0].auto_model, model[1].pooling_mode, names).eval()
    example = tuple(torch.as_tensor(as_int64(probe[n])) for n in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    with _EXPORT_LOCK, _part_file(path) as temporary, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(graph, example, temporary, input_names=names, output_names=["embedding"],
                              dynamic_axes=axes, opset_version=17, dynamo=False)
        except Exception as exc:  # the tracer fails in many ways on architectures it cannot follow
            raise RuntimeError(f"the ONNX export failed: {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def _part_file(path: Path) -> Iterator[str]:
    """A temporary file beside `path` to write; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # as readable as the vector cache beside it (mkstemp makes 0600)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _pooled_module(transformer: Any, mode: str, names: list[str]) -> Any:
    """Transformer, pooling and L2 normalization as one torch module, as sentence-transformers runs them."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, *inputs: Any) -> Any:
            features = dict(zip(names, inputs))
            tokens = self.transformer(**features, return_dict=True).last_hidden_state
            if mode == "cls":
                pooled = tokens[:, 0]
            else:
                mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
                pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return Pooled()


def _file_key(fingerprint: str, names: list[str]) -> str:
    import onnxruntime
    import torch

    # The exporter and runtime versions are in the key: a file from other versions is re-made, not trusted.
    material = "|".join([fingerprint, ",".join(names), torch.__version__, onnxruntime.__version__, "v1"])
    return hashlib.sha256(material.encode()).hexdigest()[:24]


def _threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


def _prune(folder: Path) -> None:
    """Keep the most recently used exports: each fine-tuned checkpoint gets its own."""
    files = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP_EXPORTS:]:
        try:
            old.unlink()
        except OSError:
            pass
