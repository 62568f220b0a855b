"""Where the benchmark data lives. It is read in place, never copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path

from memlane.errors import ConfigError


def find_data_dir(explicit: str | Path | None = None) -> Path:
    """The shared data folder: `explicit`, $MEMLANE_DATA_DIR, or a `shared/data` beside the
    working directory or beside this checkout."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("MEMLANE_DATA_DIR"):
        candidates.append(Path(os.environ["MEMLANE_DATA_DIR"]))
    here = Path.cwd()
    checkout = Path(__file__).resolve().parents[3]
    candidates += [here / "shared" / "data", here.parent / "shared" / "data", checkout.parent / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "locomo").is_dir() or (candidate / "longmemeval").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(f"no benchmark data found (looked in {tried}); pass --data DIR or set MEMLANE_DATA_DIR")


def locomo_files(data_dir: Path) -> list[Path]:
    folder = data_dir / "locomo" if (data_dir / "locomo").is_dir() else data_dir
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ConfigError(f"no LoCoMo .json files in {folder}")
    return files


def longmemeval_file(data: Path | None) -> Path:
    """`data` when it names a file, else the S dev file in the shared data folder."""
    if data is not None and data.is_file():
        return data
    return find_data_dir(data) / "longmemeval" / "longmemeval_s_cleaned_dev.json.xz"


def locomo_paths(data: Path | None) -> list[Path]:
    """`data` when it names a file; the LoCoMo files in `data` when it names a folder (or its
    `locomo/` subfolder); else those of the shared data folder."""
    if data is not None and data.is_file():
        return [data]
    return locomo_files(data if data is not None else find_data_dir(None))


def peps_path(data: Path | None) -> Path:
    """`data` when given (a folder, an archive or a file of documents), else the PEP archive of the
    shared data folder (`peps/peps-rst.tar.xz`)."""
    if data is not None:
        if not data.exists():
            raise ConfigError(f"{data}: no such file or folder; pass --data with documents to import")
        return data
    path = find_data_dir(None) / "peps" / "peps-rst.tar.xz"
    if not path.is_file():
        raise ConfigError(f"no PEP archive at {path}; pass --data FOLDER_OR_ARCHIVE or set MEMLANE_DATA_DIR")
    return path
