"""A description of the machine a benchmark ran on, recorded in every report."""

from __future__ import annotations

import os
import platform
import sys


def describe_machine() -> dict[str, str | int]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = "unknown"
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            kb = int(handle.readline().split()[1])
            memory = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    info: dict[str, str | int] = {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "memory": memory,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    from memlane.embed.local import runtimes_in_use

    if runtimes := runtimes_in_use():  # what the models of this run ran on
        info["embedding_runtime"] = ", ".join(f"{name}: {runtime}" for name, runtime in sorted(runtimes.items()))
    return info


def warm_vector_cache(config) -> dict[str, float | str] | None:
    """Read the configured vector cache file once before a timed run, as the OS holds it on a
    machine that uses it, so latencies measure search rather than a cold disk (reported; None
    when the cache is off)."""
    import time

    from memlane.embed.cache import read_ahead

    path = config.embedder.cache_file()
    if path is None:
        return None
    started = time.perf_counter()
    read = read_ahead(path)
    return {"path": str(path), "bytes": read, "seconds": round(time.perf_counter() - started, 2)}
