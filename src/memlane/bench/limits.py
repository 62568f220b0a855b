"""Limits benchmark: time against input size, up to the documented limits (`LimitsConfig`), for a
search question, one message and an import of a chat-message file; and the time to refuse an
input just past a limit.

Vectors are seeded by each text (`TextSeededEmbedder`, no model runs), so the times are memlane's
own processing:
query analysis, date resolution, sentence passages, checks, records, SQLite and FTS5 writes. Each
path is measured on realistic text and on adversarial shapes: the inputs that once took quadratic
time (a long run of one character, letters or digits between hyphens, many time expressions, many
dates in one sentence) and others the regexes are exposed to (capitalized words, quotes). The
growth exponent is the least-squares slope of log(seconds) against log(bytes); near-linear is a
slope of at most 1.2.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from memlane.bench.machine import describe_machine
from memlane.config import MemoryConfig
from memlane.errors import InputError
from memlane.records import Session, Turn

Status = Callable[[str], None]
SEED = 42
NEAR_LINEAR = 1.2  # the largest growth exponent called near-linear
MB = 1_000_000  # bytes in a megabyte, as the report counts them
DEFAULT_IMPORT_BYTES = (100_000, 1_000_000, 10_000_000, 50_000_000)
HASH_DIMS = 384

# Chat-like sentences: names, numbers, codes, an email, quotes and time expressions, as people write.
SENTENCES = (
    "I went to the market yesterday and bought fresh basil for the pesto.",
    "Caroline said the support group on May 7th was the best one yet!",
    "We're going to Lisbon next summer, probably for two weeks.",
    "My order AB-12345 still hasn't arrived; I emailed help@shop.example.com about it.",
    "Last weekend Melanie and I painted the fence, which took the whole Saturday.",
    "Did you ever finish \"The Left Hand of Darkness\"? I loved the ending.",
    "The kids start school again on the 5th, so things will get busy.",
    "How was the hike? You said the trail near Lake Tahoe was closed a few weeks ago.",
    "I've been running three times a week since January 2023.",
    "Call me at 555-0123 when you land tomorrow morning.",
    "Honestly, I think the new job is great, but the commute is long.",
    "In the spring of 2022 we adopted Biscuit from the shelter.",
    "She'll be back from Berlin this coming Friday.",
    "We met at the conference in Denver two years ago, remember?",
    "Thanks! That means a lot, especially after the week I've had.",
    "The recipe needs 200 g of flour, two eggs and a pinch of salt.",
    "My grandmother turns 90 on 2023-08-14 and we're planning a party.",
    "I may go to the concert tonight if I finish the report.",
    "Jon opened his dance studio last month; the first class was full.",
    "What do you think about switching to the 6 a.m. yoga class?",
)
QUESTIONS = (
    "When did Caroline go to the support group?",
    "What did Melanie paint last weekend?",
    "Where is the trail near Lake Tahoe?",
    "Which order did I email help@shop.example.com about?",
    "How long ago did we adopt Biscuit?",
    "What did Jon open last month?",
)


def realistic_text(chars: int, seed: int = SEED, pool: Sequence[str] = SENTENCES) -> str:
    """`chars` characters of chat text: sentences of `pool` in seeded random order, cut to length."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < chars:
        parts.append(rng.choice(pool))
        size += len(parts[-1]) + 1
    return " ".join(parts)[:chars]


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda chars: (unit * (chars // len(unit) + 1))[:chars]


# Adversarial shapes: inputs some regex or loop once took quadratic time on, and others regexes fear.
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "one long word": _repeat("a"),
    "letters and hyphens": _repeat("a-"),
    "digits and hyphens": _repeat("1-"),
    "capitalized words": _repeat("Ab "),
    "curly quotes": _repeat("“"),
    "many time expressions": _repeat("I went to the market yesterday. "),
    "dates in one sentence": _repeat("in may on the 5th "),
}


def shapes(realistic: Callable[[int], str]) -> dict[str, Callable[[int], str]]:
    return {"realistic": realistic, **ADVERSARIAL}


def growth_exponent(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """The least-squares slope b of log t = a + b log n: 1 for linear time, 2 for quadratic."""
    if len(sizes) < 2:
        raise InputError("a growth exponent needs at least two sizes", field="sizes", fix="measure two sizes or more")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(t, 1e-9)) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    if spread == 0:
        raise InputError("a growth exponent needs different sizes", field="sizes", fix="measure two sizes or more")
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / spread


def ladder(limit: int, steps: int = 5, ratio: float = 3.0) -> list[int]:
    """`steps` sizes growing by `ratio` up to and including `limit` (the smallest at least 1)."""
    return sorted({max(1, round(limit / ratio ** k)) for k in range(steps)})


def _timed(call: Callable[[], object], repeats: int, budget: float = 0.25, most: int = 50) -> float:
    """The fastest run, in seconds (the least disturbed by the machine): of at least `repeats` runs,
    and of more while all of them together took under `budget` seconds (at most `most`), so that a
    call of a few milliseconds is timed as steadily as a long one."""
    best, spent, runs = math.inf, 0.0, 0
    while runs < repeats or (spent < budget and runs < most):
        started = time.perf_counter()
        call()
        took = time.perf_counter() - started
        best, spent, runs = min(best, took), spent + took, runs + 1
    return best


def _row(shape: str, text_or_bytes: str | int, seconds: float, **extra) -> dict:
    size = text_or_bytes if isinstance(text_or_bytes, int) else len(text_or_bytes.encode("utf-8"))
    row = {"shape": shape, "bytes": size, "seconds": seconds, "seconds_per_mb": seconds / (size / MB)}
    if not isinstance(text_or_bytes, int):
        row = {"shape": shape, "chars": len(text_or_bytes), **row}
    return {**row, **extra}


def _summary(runs: list[dict]) -> dict:
    """Per shape: the slope over every size (fit) and between the two largest (top, shown only: two
    points of a few milliseconds are at the machine's mercy); the path's worst fit and verdict."""
    slopes: dict[str, dict[str, float]] = {}
    for shape in dict.fromkeys(r["shape"] for r in runs):
        mine = sorted((r for r in runs if r["shape"] == shape), key=lambda r: r["bytes"])
        if len(mine) < 2:
            continue
        sizes, seconds = [r["bytes"] for r in mine], [r["seconds"] for r in mine]
        slopes[shape] = {"fit": growth_exponent(sizes, seconds), "top": growth_exponent(sizes[-2:], seconds[-2:])}
    worst = max((s["fit"] for s in slopes.values()), default=math.nan)
    verdict = "near-linear" if worst <= NEAR_LINEAR else "SUPERLINEAR"
    return {"slopes": slopes, "slope": worst, "verdict": verdict}


def _refusal(path: str, limit_name: str, limit: int, size: int, call: Callable[[], object]) -> dict:
    """Run `call`, which should be refused with InputError, and time it."""
    started = time.perf_counter()
    try:
        call()
    except InputError as exc:
        seconds = time.perf_counter() - started
        return {"path": path, "limit": limit_name, "value": limit, "size": size, "refused": True,
                "seconds": seconds, "error": str(exc).splitlines()[0]}
    return {"path": path, "limit": limit_name, "value": limit, "size": size, "refused": False,
            "seconds": time.perf_counter() - started, "error": None}


def _peak_rss_mb() -> float | None:
    """The process's peak resident memory so far, in MB (None where the OS does not say). The
    imports run from the smallest, so after each it is that import's peak."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak * 1024 / MB  # bytes on macOS, KiB on Linux


class TextSeededEmbedder:
    """A vector per text at almost no cost: a random unit vector seeded by the text's CRC-32, so
    the same text always gets the same vector. Not a model of meaning: it stands in for one where
    only memlane's own cost (parsing, dates, passages, checks, SQLite and FTS5) is measured. The
    token-hashing test embedder costs as much as everything else together in Python, so it would
    hide what this benchmark looks for."""

    def __init__(self, dims: int = HASH_DIMS) -> None:
        self.dims = dims
        self.name = f"hash-{dims}"  # the store records the configured name
        self.fingerprint = f"text-seeded-{dims}"

    def encode(self, texts, purpose="document") -> np.ndarray:
        out = np.empty((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = np.random.default_rng(zlib.crc32(text.encode("utf-8"))).standard_normal(self.dims)
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out


def _hash_config(config: MemoryConfig) -> MemoryConfig:
    config = config.model_copy(deep=True)
    config.embedder.provider = "hash"
    config.embedder.model = f"hash-{HASH_DIMS}"
    config.embedder.cache_path = "off"
    return config


def write_messages_file(path: Path, size: int, seed: int = SEED, turns_per_session: int = 20) -> int:
    """A chat-message JSONL file of about `size` bytes (at least one line): two speakers in sessions
    of `turns_per_session` messages, a day apart, each message one to four realistic sentences.
    Returns the number of messages."""
    rng = random.Random(seed)
    written = count = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < size or count == 0:
            session = count // turns_per_session
            day = 1 + session % 28
            month = 1 + session // 28 % 12
            message = {
                "role": "user" if count % 2 == 0 else "assistant",
                "content": " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 4))),
                "session_id": f"s{session}",
                "session_date": f"{2020 + session // 336}-{month:02d}-{day:02d}",
            }
            line = json.dumps(message, ensure_ascii=False) + "\n"
            handle.write(line)
            written += len(line.encode("utf-8"))
            count += 1
    return count


def write_conversation_file(path: Path, size: int, sessions: Sequence[Session]) -> int:
    """A chat-message JSONL file of about `size` bytes from real sessions (each once, in order,
    repeated if the size needs more). Returns the number of messages."""
    written = count = 0
    with path.open("w", encoding="utf-8") as handle:
        for round_ in itertools.count():
            for session in sessions:
                for turn in session.turns:
                    line = json.dumps({"role": turn.role, "content": turn.text,
                                       "session_id": f"{session.session_id}-{round_}",
                                       "session_date": session.date}, ensure_ascii=False) + "\n"
                    handle.write(line)
                    written += len(line.encode("utf-8"))
                    count += 1
                if written >= size:
                    return count
            if not sessions:
                return count


def real_sessions(data: Path | None) -> list[Session]:
    """The distinct sessions of the LongMemEval S dev file (real chat text), or [] without the data."""
    from memlane.bench.datasets import longmemeval_file
    from memlane.errors import ConfigError
    from memlane.ingest.formats import load_conversations

    try:
        file = longmemeval_file(data)
    except ConfigError:
        return []
    seen: dict[str, Session] = {}
    for conversation in load_conversations(file):
        for session in conversation.sessions:
            seen.setdefault(session.session_id, session)
    return list(seen.values())


def run_limits(
    config: MemoryConfig,
    *,
    real: Sequence[Session] = (),
    query_sizes: Sequence[int] | None = None,
    message_sizes: Sequence[int] | None = None,
    import_sizes: Sequence[int] = DEFAULT_IMPORT_BYTES,
    repeats: int = 3,
    budget: float = 0.25,
    with_model: bool = False,
    status: Status = lambda _: None,
) -> dict:
    """Time `Memory.search` on questions and `Memory.add` on one message of growing length (default:
    five sizes, each 3x the last, up to `config.limits`' max_query_chars and max_text_chars, every
    shape; each timed `repeats` times, and more while the runs took under `budget` seconds in
    all), and loading plus `Memory.ingest_conversations` of chat-message JSONL files of
    `import_sizes` bytes. Then time the refusal of inputs just past the limits. With
    `with_model`, realistic messages are also added with the configured (real) embedder, cache off."""
    from memlane.embed import make_embedder
    from memlane.ingest.formats import load_conversations
    from memlane.memory import Memory

    if repeats < 1:
        raise InputError(f"repeats must be at least 1, got {repeats}", field="repeats", fix="pass repeats=3")
    model_config = config.model_copy(deep=True)
    model_config.embedder.cache_path = "off"
    config = _hash_config(config)
    limits = config.limits
    query_sizes = sorted(query_sizes or ladder(limits.max_query_chars))
    message_sizes = sorted(message_sizes or ladder(limits.max_text_chars))
    import_sizes = sorted(import_sizes)
    if not import_sizes or import_sizes[0] < 1:
        raise InputError(f"import_sizes must be one or more positive byte counts, got {import_sizes}",
                         field="import_sizes", fix="pass import_sizes=[100_000, 1_000_000]")
    for name, sizes, limit in (("query_sizes", query_sizes, limits.max_query_chars),
                               ("message_sizes", message_sizes, limits.max_text_chars)):
        if sizes[-1] > limit or sizes[0] < 1:
            raise InputError(f"{name} must lie in 1..{limit:,} (the limit), got {sizes}", field=name,
                             fix="give sizes up to the limit, or raise the limit in the config")
    result: dict = {
        "benchmark": "limits",
        "machine": describe_machine(),
        "embedder": f"hash-{HASH_DIMS}",
        "limits": limits.model_dump(),
        "repeats": repeats,
        "paths": {},
        "past_limit": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        memory = Memory(folder / "limits.db", config, embedder=TextSeededEmbedder(HASH_DIMS))
        # What the questions search: a session of 200 realistic turns.
        turns = [Turn(text=realistic_text(300, seed=i), speaker="user" if i % 2 == 0 else "assistant")
                 for i in range(200)]
        memory.ingest([Session(turns=turns, session_id="seed", date="2023-05-08")], user_id="bench")

        status(f"search: {len(query_sizes)} question lengths up to {limits.max_query_chars:,} characters")
        runs = []
        for shape, make in shapes(lambda n: realistic_text(n, pool=QUESTIONS)).items():
            for size in query_sizes:
                query = make(size)
                seconds = _timed(lambda: memory.search(query, user_id="bench", now="2023-06-01"), repeats, budget)
                runs.append(_row(shape, query, seconds))
        result["paths"]["search"] = {"limit": "max_query_chars", "value": limits.max_query_chars, "runs": runs,
                                     **_summary(runs)}

        status(f"one message: {len(message_sizes)} lengths up to {limits.max_text_chars:,} characters")
        runs = []
        for shape, make in shapes(realistic_text).items():
            for size in message_sizes:
                text = make(size)
                users = itertools.count()
                seconds = _timed(lambda: memory.add(text, user_id=f"{shape}-{size}-{next(users)}",
                                                    session_date="2023-05-08"), repeats, budget)
                runs.append(_row(shape, text, seconds))
        result["paths"]["message"] = {"limit": "max_text_chars", "value": limits.max_text_chars, "runs": runs,
                                      **_summary(runs)}

        if with_model:
            model_embedder = make_embedder(model_config.embedder)
            status(f"one message with {model_embedder.name}")
            model_memory = Memory(folder / "model.db", model_config, embedder=model_embedder)
            model_memory.add("Warm the model up. It loads on first use.", user_id="warm", session_date="2023-05-08")
            runs = []
            for size in message_sizes:
                text = realistic_text(size)
                seconds = _timed(lambda: model_memory.add(text, user_id=f"model-{size}", session_date="2023-05-08"), 1, 0)
                runs.append(_row("realistic", text, seconds))
            model_memory.close()
            result["paths"]["message_model"] = {"limit": "max_text_chars", "value": limits.max_text_chars,
                                                "model": model_embedder.name, "runs": runs, **_summary(runs)}

        runs = []
        writers = {"real conversations (LongMemEval sessions)": lambda p, n: write_conversation_file(p, n, real),
                   "time-dense synthetic chat": write_messages_file}
        if not real:
            writers.pop("real conversations (LongMemEval sessions)")
        for shape, write in writers.items():
            for size in import_sizes:
                status(f"import: {shape}, a chat-message file of {size / MB:g} MB")
                path = folder / f"messages-{size}.jsonl"
                turns = write(path, size)
                importer = Memory(folder / f"import-{size}.db", config, embedder=TextSeededEmbedder(HASH_DIMS))
                started = time.perf_counter()
                conversations = load_conversations(path, limits)
                loaded = time.perf_counter()
                report = importer.ingest_conversations(conversations)
                done = time.perf_counter()
                importer.close()
                runs.append(_row(shape, path.stat().st_size, done - started, turns=turns,
                                 memories=report.memories, load_seconds=loaded - started,
                                 ingest_seconds=done - loaded, peak_rss_mb=_peak_rss_mb()))
                del conversations
                (folder / f"import-{size}.db").unlink()
        result["paths"]["import"] = {"limit": "max_import_bytes", "value": limits.max_import_bytes, "runs": runs,
                                     **_summary(runs)}

        status("inputs just past the limits")
        past = result["past_limit"]
        too_long = "a" * (limits.max_query_chars + 1)
        past.append(_refusal("search", "max_query_chars", limits.max_query_chars, len(too_long),
                             lambda: memory.search(too_long, user_id="bench")))
        too_long = realistic_text(limits.max_text_chars + 1)
        past.append(_refusal("message", "max_text_chars", limits.max_text_chars, len(too_long),
                             lambda: memory.add(too_long, user_id="bench-past")))
        too_many = [{"role": "user", "content": "hi"}] * (limits.max_messages + 1)
        past.append(_refusal("message", "max_messages", limits.max_messages, len(too_many),
                             lambda: memory.add(too_many, user_id="bench-past")))
        # The default import limits (512 MiB, a million turns) are out of a benchmark's reach: the largest
        # file measured is refused under limits lowered to just below it.
        largest = folder / f"messages-{import_sizes[-1]}.jsonl"
        size, turns = largest.stat().st_size, result["paths"]["import"]["runs"][-1]["turns"]
        lowered = limits.model_copy(update={"max_import_bytes": size - 1})
        past.append(_refusal("import", "max_import_bytes (lowered)", size - 1, size,
                             lambda: load_conversations(largest, lowered)))
        lowered = limits.model_copy(update={"max_import_turns": turns - 1})
        past.append(_refusal("import", "max_import_turns (lowered)", turns - 1, turns,
                             lambda: load_conversations(largest, lowered)))
        for refusal in past:  # the temporary folder's name says nothing
            refusal["error"] = refusal["error"] and refusal["error"].replace(f"{folder}{os.sep}", "")
        memory.close()
    return result


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


_TITLES = {
    "search": "a search question (`Memory.search`)",
    "message": "one message (`Memory.add`)",
    "message_model": "one message (`Memory.add`), real model",
    "import": "an import (`load_conversations` + `Memory.ingest_conversations`)",
}


def limits_markdown(result: dict, command: str) -> str:
    m = result["machine"]
    lines = [
        "# Limits: time against input size",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; Python {m['python']}.",
        "Vectors are random unit vectors seeded by each text's CRC-32 (`TextSeededEmbedder`: no model runs, "
        "a few microseconds a text; rows marked \"real model\" excepted): "
        "these are memlane's own costs (query analysis, date resolution, passages, checks, SQLite and FTS5 "
        f"writes). Each time is the fastest of at least {result['repeats']} runs, more for calls of a few "
        "milliseconds (imports: one run). MB = 10^6 bytes. "
        f"The growth exponent is the log-log slope of seconds against bytes over every size (fit; the "
        f"verdict: near-linear is at most {NEAR_LINEAR}); the slope between the two largest sizes (top) "
        "is shown too. A fixed cost per call (a search's retrieval) makes small inputs' slopes low.",
        "",
        "| path | limit | worst exponent | verdict | s/MB at the largest size (worst shape) |",
        "|---|---|---|---|---|",
    ]
    for key, path in result["paths"].items():
        largest = {r["shape"]: r for r in sorted(path["runs"], key=lambda r: r["bytes"])}.values()
        worst = max(largest, key=lambda r: r["seconds_per_mb"])
        lines.append(f"| {_TITLES.get(key, key)} | {path['limit']} = {path['value']:,} | {path['slope']:.2f} | "
                     f"{path['verdict']} | {worst['seconds_per_mb']:.2f} ({worst['shape']}) |")
    for key, path in result["paths"].items():
        lines += ["", f"## {_TITLES.get(key, key)}", ""]
        if path.get("model"):
            lines += [f"Model: `{path['model']}`.", ""]
        first = [r for r in path["runs"] if r["shape"] == path["runs"][0]["shape"]]
        sizes = [f"{r['chars']:,} chars" if "chars" in r else f"{r['bytes'] / MB:.3g} MB" for r in first]
        lines += ["| shape | exponent (fit / top) | " + " | ".join(sizes) + " |", "|---|---|" + "---|" * len(sizes)]
        for shape, slope in path["slopes"].items():
            cells = [_seconds(r["seconds"]) for r in path["runs"] if r["shape"] == shape]
            lines.append(f"| {shape} | {slope['fit']:.2f} / {slope['top']:.2f} | " + " | ".join(cells) + " |")
        lines += ["", "| shape | chars | bytes | seconds | s/MB |" + (" turns | load s | ingest s | peak RSS MB |"
                                                                     if key == "import" else ""),
                  "|---|---|---|---|---|" + ("---|---|---|---|" if key == "import" else "")]
        for r in path["runs"]:
            rss = f"{r['peak_rss_mb']:,.0f}" if r.get("peak_rss_mb") else "?"
            extra = (f" {r['turns']:,} | {r['load_seconds']:.2f} | {r['ingest_seconds']:.2f} | {rss} |"
                     if key == "import" else "")
            lines.append(f"| {r['shape']} | {r.get('chars', '')} | {r['bytes']:,} | {r['seconds']:.4f} | "
                         f"{r['seconds_per_mb']:.2f} |" + extra)
    lines += ["", "## Just past a limit", "",
              "| path | limit | size | refused | seconds | error |", "|---|---|---|---|---|---|"]
    for p in result["past_limit"]:
        lines.append(f"| {p['path']} | {p['limit']} = {p['value']:,} | {p['size']:,} | "
                     f"{'yes' if p['refused'] else '**no**'} | {p['seconds']:.4f} | {p['error'] or ''} |")
    if any("(lowered)" in p["limit"] for p in result["past_limit"]):
        lines += ["", "The default import limits (max_import_bytes, max_import_turns) are beyond what a benchmark "
                  "builds: the largest file measured is read under limits lowered to one below its size and its "
                  "turns. A file's size is checked before it is read; its turns are counted as it is parsed, so "
                  "that refusal comes once the file is parsed, before anything is stored."]
    return "\n".join(lines) + "\n"
