"""Limits benchmark: time against input size, up to the documented limits (`LimitsConfig`), for a
search question, one message and an import of a chat-message file; and the time to refuse an
input just past a limit.

Vectors are hashed (`HashEmbedder`, no model runs), so the times are memlane's own processing:
query analysis, date resolution, sentence passages, checks, records, SQLite and FTS5 writes. Each
path is measured on realistic text and on adversarial shapes, one per class of input that once
took quadratic time (a long run of one character, letters or digits between hyphens, capitalized
words, quotes, many time expressions, many dates in one sentence). The growth exponent is the
least-squares slope of log(seconds) against log(bytes); near-linear is a slope of at most 1.2.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from memlane.bench.machine import describe_machine
from memlane.config import MemoryConfig
from memlane.errors import InputError

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


# The adversarial shapes: each is a class of input that some regex or loop once took quadratic time on.
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


def _timed(call: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` runs, in seconds (the least disturbed by the machine)."""
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _row(shape: str, text_or_bytes: str | int, seconds: float, **extra) -> dict:
    size = text_or_bytes if isinstance(text_or_bytes, int) else len(text_or_bytes.encode("utf-8"))
    row = {"shape": shape, "bytes": size, "seconds": seconds, "seconds_per_mb": seconds / (size / MB)}
    if not isinstance(text_or_bytes, int):
        row = {"shape": shape, "chars": len(text_or_bytes), **row}
    return {**row, **extra}


def _summary(runs: list[dict]) -> dict:
    """Per shape: the slope over every size and over the two largest; the path's worst of them."""
    slopes: dict[str, dict[str, float]] = {}
    for shape in dict.fromkeys(r["shape"] for r in runs):
        mine = sorted((r for r in runs if r["shape"] == shape), key=lambda r: r["bytes"])
        if len(mine) < 2:
            continue
        sizes, seconds = [r["bytes"] for r in mine], [r["seconds"] for r in mine]
        slopes[shape] = {"fit": growth_exponent(sizes, seconds), "top": growth_exponent(sizes[-2:], seconds[-2:])}
    worst = max((max(s.values()) for s in slopes.values()), default=math.nan)
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


def run_limits(
    config: MemoryConfig,
    *,
    query_sizes: Sequence[int] | None = None,
    message_sizes: Sequence[int] | None = None,
    import_sizes: Sequence[int] = DEFAULT_IMPORT_BYTES,
    repeats: int = 3,
    with_model: bool = False,
    status: Status = lambda _: None,
) -> dict:
    """Time `Memory.search` on questions and `Memory.add` on one message of growing length (default:
    five sizes, each 3x the last, up to `config.limits`' max_query_chars and max_text_chars, every
    shape), and loading plus `Memory.ingest_conversations` of chat-message JSONL files of
    `import_sizes` bytes. Then time the refusal of inputs just past the limits. With
    `with_model`, realistic messages are also added with the configured (real) embedder, cache off."""
    from memlane.embed import HashEmbedder, make_embedder
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
        memory = Memory(folder / "limits.db", config, embedder=HashEmbedder(dims=HASH_DIMS))
        seed_messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": realistic_text(300, seed=i)}
                         for i in range(200)]
        memory.add(seed_messages, user_id="bench", session_date="2023-05-08")

        status(f"search: {len(query_sizes)} question lengths up to {limits.max_query_chars:,} characters")
        runs = []
        for shape, make in shapes(lambda n: realistic_text(n, pool=QUESTIONS)).items():
            for size in query_sizes:
                query = make(size)
                seconds = _timed(lambda: memory.search(query, user_id="bench", now="2023-06-01"), repeats)
                runs.append(_row(shape, query, seconds))
        result["paths"]["search"] = {"limit": "max_query_chars", "value": limits.max_query_chars, "runs": runs,
                                     **_summary(runs)}

        status(f"one message: {len(message_sizes)} lengths up to {limits.max_text_chars:,} characters")
        runs = []
        for shape, make in shapes(realistic_text).items():
            for size in message_sizes:
                text = make(size)
                users = iter(range(repeats))
                seconds = _timed(lambda: memory.add(text, user_id=f"{shape}-{size}-{next(users)}",
                                                    session_date="2023-05-08"), repeats)
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
                seconds = _timed(lambda: model_memory.add(text, user_id=f"model-{size}", session_date="2023-05-08"), 1)
                runs.append(_row("realistic", text, seconds))
            model_memory.close()
            result["paths"]["message_model"] = {"limit": "max_text_chars", "value": limits.max_text_chars,
                                                "model": model_embedder.name, "runs": runs, **_summary(runs)}

        runs = []
        for size in import_sizes:
            status(f"import: a chat-message file of {size / MB:g} MB")
            path = folder / f"messages-{size}.jsonl"
            turns = write_messages_file(path, size)
            importer = Memory(folder / f"import-{size}.db", config, embedder=HashEmbedder(dims=HASH_DIMS))
            started = time.perf_counter()
            conversations = load_conversations(path, limits)
            loaded = time.perf_counter()
            report = importer.ingest_conversations(conversations)
            done = time.perf_counter()
            importer.close()
            runs.append(_row("chat-message JSONL", path.stat().st_size, done - started, turns=turns,
                             memories=report.memories, load_seconds=loaded - started,
                             ingest_seconds=done - loaded))
            del conversations
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
        # The default import limits (2 GiB, 2 million turns) are out of a benchmark's reach: the largest
        # file measured is refused under limits lowered to just below it.
        largest = folder / f"messages-{import_sizes[-1]}.jsonl"
        size, turns = largest.stat().st_size, result["paths"]["import"]["runs"][-1]["turns"]
        lowered = limits.model_copy(update={"max_import_bytes": size - 1})
        past.append(_refusal("import", "max_import_bytes (lowered)", size - 1, size,
                             lambda: load_conversations(largest, lowered)))
        lowered = limits.model_copy(update={"max_import_turns": turns - 1})
        past.append(_refusal("import", "max_import_turns (lowered)", turns - 1, turns,
                             lambda: load_conversations(largest, lowered)))
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
        f"Vectors are hashed (`{result['embedder']}`, no model runs; rows marked \"real model\" excepted): "
        "these are memlane's own costs (query analysis, date resolution, passages, checks, SQLite and FTS5 "
        f"writes). Each time is the fastest of {result['repeats']} runs (imports: one run). MB = 10^6 bytes. "
        f"The growth exponent is the log-log slope of seconds against bytes, over every size (fit) and "
        f"between the two largest (top); near-linear is at most {NEAR_LINEAR}.",
        "",
        "| path | limit | worst exponent | verdict | s/MB at the largest size (worst shape) |",
        "|---|---|---|---|---|",
    ]
    for key, path in result["paths"].items():
        largest = max(r["bytes"] for r in path["runs"])
        worst = max((r for r in path["runs"] if r["bytes"] == largest), key=lambda r: r["seconds_per_mb"])
        lines.append(f"| {_TITLES.get(key, key)} | {path['limit']} = {path['value']:,} | {path['slope']:.2f} | "
                     f"{path['verdict']} | {worst['seconds_per_mb']:.2f} ({worst['shape']}) |")
    for key, path in result["paths"].items():
        lines += ["", f"## {_TITLES.get(key, key)}", ""]
        if path.get("model"):
            lines += [f"Model: `{path['model']}`.", ""]
        first = [r for r in path["runs"] if r["shape"] == path["runs"][0]["shape"]]
        sizes = [f"{r['chars']:,} chars" if "chars" in r else f"{r['bytes'] / MB:g} MB" for r in first]
        lines += ["| shape | exponent (fit / top) | " + " | ".join(sizes) + " |", "|---|---|" + "---|" * len(sizes)]
        for shape, slope in path["slopes"].items():
            cells = [_seconds(r["seconds"]) for r in path["runs"] if r["shape"] == shape]
            lines.append(f"| {shape} | {slope['fit']:.2f} / {slope['top']:.2f} | " + " | ".join(cells) + " |")
        lines += ["", "| shape | chars | bytes | seconds | s/MB |" + (" turns | load s | ingest s |"
                                                                     if key == "import" else ""),
                  "|---|---|---|---|---|" + ("---|---|---|" if key == "import" else "")]
        for r in path["runs"]:
            extra = f" {r['turns']:,} | {r['load_seconds']:.2f} | {r['ingest_seconds']:.2f} |" if key == "import" else ""
            lines.append(f"| {r['shape']} | {r.get('chars', '')} | {r['bytes']:,} | {r['seconds']:.4f} | "
                         f"{r['seconds_per_mb']:.2f} |" + extra)
    lines += ["", "## Just past a limit", "",
              "| path | limit | size | refused | seconds | error |", "|---|---|---|---|---|---|"]
    for p in result["past_limit"]:
        lines.append(f"| {p['path']} | {p['limit']} = {p['value']:,} | {p['size']:,} | "
                     f"{'yes' if p['refused'] else '**no**'} | {p['seconds']:.4f} | {p['error'] or ''} |")
    return "\n".join(lines) + "\n"
