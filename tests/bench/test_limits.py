"""The limits benchmark: time against input size for search, one message and an import, and
refusal just past each limit. Shapes of the result only; speed is what the benchmark reports."""

import math

import pytest

from memlane import MemoryConfig
from memlane.bench.limits import (ADVERSARIAL, growth_exponent, ladder, limits_markdown, realistic_text,
                                  run_limits, write_messages_file)
from memlane.errors import InputError
from memlane.ingest.formats import load_conversations


def _small_config() -> MemoryConfig:
    config = MemoryConfig()
    config.limits.max_query_chars = 120
    config.limits.max_text_chars = 400
    config.limits.max_messages = 5
    return config


def test_the_growth_exponent_is_the_log_log_slope():
    sizes = [10, 100, 1000]
    assert growth_exponent(sizes, [2 * n for n in sizes]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [n * n / 1e6 for n in sizes]) == pytest.approx(2.0)
    assert growth_exponent(sizes, [0.5, 0.5, 0.5]) == pytest.approx(0.0)
    with pytest.raises(InputError):
        growth_exponent([10], [1.0])


def test_the_ladder_climbs_to_the_limit():
    assert ladder(4000) == [49, 148, 444, 1333, 4000]
    assert ladder(3, steps=4) == [1, 3]


def test_every_shape_makes_text_of_the_length_asked():
    assert len(realistic_text(1000)) == 1000 and realistic_text(1000) == realistic_text(1000)
    for name, make in ADVERSARIAL.items():
        assert len(make(777)) == 777, name


def test_the_generated_import_is_a_chat_message_file(tmp_path):
    path = tmp_path / "messages.jsonl"
    turns = write_messages_file(path, 20_000, turns_per_session=10)
    assert path.stat().st_size >= 20_000
    [conversation] = load_conversations(path)
    assert sum(len(s.turns) for s in conversation.sessions) == turns
    assert len(conversation.sessions) == -(-turns // 10)


def test_the_benchmark_measures_every_path_up_to_the_limits_and_the_refusals_past_them():
    result = run_limits(_small_config(), import_sizes=[3_000, 9_000], repeats=1, budget=0)
    assert result["benchmark"] == "limits" and result["embedder"] == "hash-384"
    assert set(result["paths"]) == {"search", "message", "import"}
    search, message, imported = (result["paths"][k] for k in ("search", "message", "import"))
    assert max(r["chars"] for r in search["runs"]) == 120
    assert max(r["chars"] for r in message["runs"]) == 400
    shapes = {"realistic", *ADVERSARIAL}
    for path in (search, message):
        assert {r["shape"] for r in path["runs"]} == shapes and set(path["slopes"]) == shapes
        assert len(path["runs"]) == len(shapes) * 5
    assert [r["bytes"] >= size for r, size in zip(imported["runs"], [3_000, 9_000])] == [True, True]
    for path in result["paths"].values():
        assert path["verdict"] in ("near-linear", "SUPERLINEAR") and math.isfinite(path["slope"])
        for run in path["runs"]:
            assert run["seconds"] > 0 and run["seconds_per_mb"] == pytest.approx(run["seconds"] / (run["bytes"] / 1e6))
    assert imported["runs"][0]["memories"] > imported["runs"][0]["turns"]  # turns plus session memories
    past = {p["limit"]: p for p in result["past_limit"]}
    assert set(past) == {"max_query_chars", "max_text_chars", "max_messages", "max_import_bytes (lowered)",
                         "max_import_turns (lowered)"}
    assert all(p["refused"] and p["error"] for p in past.values())
    assert past["max_query_chars"]["size"] == 121 and past["max_messages"]["size"] == 6
    markdown = limits_markdown(result, "memlane bench limits")
    assert "Command: `memlane bench limits`" in markdown and "| a search question (`Memory.search`) |" in markdown
    assert "## Just past a limit" in markdown and "**no**" not in markdown


def test_sizes_past_the_limit_are_refused_by_name():
    with pytest.raises(InputError, match="query_sizes must lie in 1..120"):
        run_limits(_small_config(), query_sizes=[100, 121], import_sizes=[1_000])
    with pytest.raises(InputError, match="repeats must be at least 1"):
        run_limits(_small_config(), repeats=0)
