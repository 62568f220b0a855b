"""The benchmark reports the console shows: the retrieval reports `memlane bench` wrote into a
folder (JSON with PNG plots beside it), and reports an admin uploaded into a scratch folder.

A report is named by an id, "results:<path in the reports folder>" or "uploaded:<file name>",
never by a path the browser chooses: every file served is checked to lie in its folder. Reading
a report keeps only what the pages show (headline, per category, curves) in memory; the full
JSON (its per-question rows) is read again for a comparison, whose result is cached."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlane.bench.compare import compare_reports
from memlane.bench.report import category_metric, curves, headline
from memlane.errors import ConfigError, InputError, NotFoundError

DATASETS = ("locomo", "longmemeval", "locomo-qa")  # the retrieval reports `bench.report` renders
MAX_UPLOAD_BYTES = 50 * 2**20
PLOT_SUFFIXES = ("-recall.png", "-categories.png")
_UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Report:
    """What the console shows of one report."""

    id: str
    name: str  # the path in its folder, without ".json"
    dataset: str
    retriever: str
    questions: int
    headline: dict[str, float]
    per_category: dict[str, dict[str, Any]]
    curves: dict[str, dict[str, float]]
    category_metric: str
    model: str
    latency_ms: dict[str, float]
    command: str | None
    plots: tuple[str, ...]  # file names of the PNGs beside the JSON
    comparable: bool  # has per-question rows that `bench.compare` pairs

    @property
    def shown_columns(self) -> list[str]:
        """The per-category columns worth a table: the metrics at 1, 5 and 10, and answer scores."""
        first = next(iter(self.per_category.values()), {})
        keys = [k for k in first if k not in ("name", "questions")]
        return [k for k in keys if k.endswith(("@1", "@5", "@10")) or k in ("f1", "bleu1", "judge")][:9]


def summarize(report_id: str, path: Path, data: Any) -> Report:
    """The parts of a report JSON the pages show; InputError when it is not a retrieval report."""
    if not isinstance(data, dict) or data.get("dataset") not in DATASETS:
        found = data.get("dataset") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"not a retrieval benchmark report (dataset {found!r})", file=path.name,
                         fix=f"upload the JSON `memlane bench` wrote for one of: {', '.join(DATASETS)}")
    try:
        flat = headline(data)
        drawn = curves(data)
        per_category = {str(k): dict(v) for k, v in data["per_category"].items()}
        metric = category_metric(data)
        questions = int(data["questions"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"the report lacks a field the console reads ({exc})", file=path.name,
                         fix="upload a report as `memlane bench` writes it, unedited") from None
    plots = tuple(path.stem + suffix for suffix in PLOT_SUFFIXES if (path.parent / (path.stem + suffix)).is_file())
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    return Report(
        id=report_id, name=report_id.split(":", 1)[1].removesuffix(".json"), dataset=data["dataset"],
        retriever=str(data.get("retriever") or data.get("mode") or "full"), questions=questions,
        headline={k: float(v) for k, v in flat.items()}, per_category=per_category,
        curves={label: {str(k): float(v) for k, v in curve.items()} for label, curve in drawn.items()},
        category_metric=metric, model=str((config.get("embedder") or {}).get("model", "?")),
        latency_ms=dict(data.get("latency_ms") or {}), command=data.get("command"), plots=plots,
        comparable=data["dataset"] in ("locomo", "longmemeval") and isinstance(data.get("per_question"), list),
    )


class Reports:
    """The reports of a results folder (searched recursively) and of an upload folder."""

    def __init__(self, results: str | Path, uploads: str | Path | None) -> None:
        self.roots = {"results": Path(results).expanduser().resolve()}
        if uploads is not None:
            self.roots["uploaded"] = Path(uploads).expanduser().resolve()
        self._lock = threading.Lock()
        self._summaries: dict[Path, tuple[tuple[int, int], Report | None]] = {}
        self._comparisons: dict[tuple, list[dict]] = {}

    def list(self) -> list[Report]:
        """Every retrieval report, committed ones by path, then uploaded ones; other JSON is skipped."""
        found = []
        for root, folder in self.roots.items():
            if not folder.is_dir():
                continue
            for path in sorted(folder.rglob("*.json")):
                report = self._summary(f"{root}:{path.relative_to(folder).as_posix()}", path)
                if report is not None:
                    found.append(report)
        return found

    def get(self, report_id: str) -> Report:
        path = self.path(report_id)
        report = self._summary(report_id, path)
        if report is None:
            raise InputError(f"{report_id} is not a retrieval benchmark report", field="id",
                             fix="pick a report the benchmarks page lists")
        return report

    def path(self, report_id: str, *, file: str | None = None) -> Path:
        """The file a report id names (or, with `file`, a file beside it), checked to lie in its folder."""
        root, _, relative = str(report_id).partition(":")
        if root not in self.roots or not relative.endswith(".json"):
            raise NotFoundError(f"no benchmark report {report_id!r}; the benchmarks page lists them")
        folder = self.roots[root]
        path = (folder / relative).resolve()
        if file is not None:
            path = (path.parent / file).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            raise NotFoundError(f"no benchmark report {report_id!r}; the benchmarks page lists them")
        return path

    def plot(self, report_id: str, name: str) -> Path:
        """A PNG plot of a report: only the ones `bench.report.plot` writes beside it."""
        report = self.get(report_id)
        if name not in report.plots:
            raise NotFoundError(f"report {report_id} has no plot {name!r}")
        return self.path(report_id, file=name)

    def compare(self, a: str, b: str, *, resamples: int = 1000) -> list[dict]:
        """Paired bootstrap of B - A on the questions both answered (`bench.compare`), cached."""
        paths = (self.path(a), self.path(b))
        key = (a, b, resamples, *(_stamp(p) for p in paths))
        with self._lock:
            if key in self._comparisons:
                return self._comparisons[key]
        left, right = (_read_json(p) for p in paths)
        rows = compare_reports(left, right, resamples=resamples)
        with self._lock:
            if len(self._comparisons) > 64:
                self._comparisons.clear()
            self._comparisons[key] = rows
        return rows

    def upload(self, filename: str, content: bytes) -> Report:
        """Keep an uploaded report (checked first) in the upload folder, with its plots drawn."""
        if len(content) > MAX_UPLOAD_BYTES:
            raise InputError(f"the file is {len(content):,} bytes; at most {MAX_UPLOAD_BYTES:,} are accepted",
                             file=filename, fix="upload the JSON report itself")
        try:
            data = json.loads(content.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"not JSON: {exc}", file=filename or "upload",
                             fix="upload the .json file `memlane bench` wrote") from None
        if "uploaded" not in self.roots:
            raise ConfigError("this server keeps no folder for uploaded reports; serve with `memlane serve`, "
                              "or pass upload_dir to install_console")
        stem = _UPLOAD_NAME.sub("-", Path(filename or "report").stem).strip(".-")[:80] or "report"
        folder = self.roots["uploaded"]
        summarize(f"uploaded:{stem}.json", folder / f"{stem}.json", data)  # refuses what is not a report
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}.json"
        path.write_bytes(content)
        try:
            from memlane.bench.report import plot

            plot(data, path)
        except Exception as exc:  # the report stays readable as tables without its plots
            raise InputError(f"the report was kept, but its plots could not be drawn: {exc}", file=filename,
                             fix="check the report's curves and per-category rows") from None
        return self.get(f"uploaded:{path.name}")

    def _summary(self, report_id: str, path: Path) -> Report | None:
        stamp = _stamp(path)
        with self._lock:
            cached = self._summaries.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            report: Report | None = summarize(report_id, path, _read_json(path))
        except (InputError, OSError, ValueError):
            report = None
        with self._lock:
            self._summaries[path] = (stamp, report)
        return report


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_bytes())
