"""The serve load benchmark, on a tiny conversation: real server processes on loopback."""

from memlane.bench.serve import run_serve_benchmark, serve_markdown
from memlane.config import MemoryConfig
from memlane.ingest.formats import load_conversations

from _support import FIXTURES


def test_the_load_benchmark_counts_requests_and_finds_every_acknowledged_write():
    config = MemoryConfig()
    config.embedder.provider, config.embedder.model, config.embedder.cache_path = "hash", "hash-256", "off"
    result = run_serve_benchmark(config, load_conversations(FIXTURES / "locomo_mini.json"), clients=(3,), seconds=1.5,
                                 ramp=0.5)
    servers = [p for p in result["phases"] if p["where"].startswith("server")]
    assert [p["where"] for p in servers] == ["server, 1 worker", "server, 2 workers"]
    assert all(p["requests"] > 0 and p["error_count"] == 0 for p in servers), servers
    assert result["acknowledged_adds"] > 0 and result["lost_writes"] == 0
    assert result["memories_after"] == result["memories_before"] + result["acknowledged_adds"] + sum(
        p["acknowledged_memories"] for p in result["phases"] if p["where"] == "in-process Memory")
    assert all(0 < p["client_mean_ms"]["fastest"] <= p["client_mean_ms"]["slowest"] for p in result["phases"])
    assert "| server, 2 workers | 3 |" in serve_markdown(result, "memlane bench serve")


def test_bench_serve_refuses_client_counts_that_name_no_number_plainly(tmp_path):
    from typer.testing import CliRunner

    from memlane.cli import app

    result = CliRunner().invoke(app, ["bench", "serve", "--clients", "lots", "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 2 and "names no client count" in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "s.json").exists()
