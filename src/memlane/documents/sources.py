"""Files to remember, from what a caller names: files, folders (walked, with ignore patterns) and
.tar/.zip archives (read in place, nothing extracted to disk). Problems with one file (binary,
undecodable, empty, too large, a format memlane does not read) skip that file and say why; a path
that does not exist, an unreadable archive or an import past the size limit refuses the call."""

from __future__ import annotations

import fnmatch
import os
import posixpath
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator, Sequence

from memlane.documents.model import SkippedFile, SourceFile
from memlane.documents.parse import FORMATS, format_of
from memlane.errors import InputError

ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")
_BINARY_PROBE = 8192  # bytes looked at for a NUL, as git does


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVES)


def read_sources(paths: Sequence[str | os.PathLike[str]], *, ignore: Sequence[str] = (), root: str | None = None,
                 max_file_bytes: int, max_total_bytes: int) -> tuple[list[SourceFile], list[SkippedFile]]:
    """Every document file under `paths`, in a stable order, and the files skipped with why.
    Each file's root is `root` when given (an upload's name), else the absolute path it was found under.
    Raises InputError for a missing path, a lone file of an unknown format, an unreadable
    archive, two roots giving one document path, or more than `max_total_bytes` in all."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise InputError("no files or folders were given", field="paths", fix="pass a file, a folder or an archive")
    files: list[SourceFile] = []
    skipped: list[SkippedFile] = []
    total = 0
    seen: dict[str, str] = {}
    for given in paths:
        path = Path(os.fspath(given)).expanduser()
        if not path.exists():
            raise InputError(f"{given}: no such file or folder", field="paths",
                             fix="check the path (relative paths are read from the current folder)")
        where = root or str(path.resolve())
        if path.is_dir():
            found = _walk(path, where, ignore, max_file_bytes)
        elif is_archive(path):
            found = _archive(path, where, ignore, max_file_bytes)
        else:
            if format_of(path.name) is None:
                raise InputError(f"{given}: memlane does not read this kind of file", field="paths",
                                 fix="pass " + ", ".join(sorted(e for e in set(FORMATS) | set(ARCHIVES) if e)) + " files, or a folder")
            found = _lone_file(path, where, max_file_bytes)
        for item in found:
            if isinstance(item, SkippedFile):
                skipped.append(item)
                continue
            if item.path in seen:
                raise InputError(f"two of the given files are both named {item.path!r} (under {seen[item.path]} and "
                                 f"{given})", field="paths", fix="add them in separate calls, or rename one folder")
            seen[item.path] = str(given)
            total += len(item.data)
            if total > max_total_bytes:
                raise InputError(f"the documents add up to more than {max_total_bytes:,} bytes", field="paths",
                                 fix="add fewer folders per call, or raise limits.max_import_bytes")
            files.append(item)
    return files, skipped


def decode(data: bytes) -> str:
    """A file's text (UTF-8, with or without a byte-order mark, or UTF-16 with one), newlines as
    \\n. Raises ValueError saying why a file is not text: binary, undecodable or empty."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise ValueError("not valid UTF-16 text") from None
    else:
        if b"\x00" in data[:_BINARY_PROBE]:
            raise ValueError("a binary file (it holds NUL bytes)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,}); "
                             "convert it to UTF-8") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError("empty")
    return text


def _ignored(name: str, relative: str, ignore: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(relative, p) for p in ignore)


def _too_large(size: int, limit: int) -> str | None:
    if size > limit:
        return f"{size / 1e6:.1f} MB, larger than documents.max_file_bytes ({limit / 1e6:.1f} MB)"
    return None


def _unsupported(name: str) -> str | None:
    if format_of(name) is None:
        return f"not a document format memlane reads ({posixpath.splitext(name)[1] or 'no extension'})"
    return None


def _walk(folder: Path, root: str, ignore: Sequence[str], limit: int) -> Iterator[SourceFile | SkippedFile]:
    """Files under `folder`, sorted, named `<folder name>/<path inside>`; symbolic links to
    folders are not followed (a link cycle would never end)."""
    for here, dirs, names in os.walk(folder):
        inside = Path(here).relative_to(folder).as_posix()
        inside = "" if inside == "." else inside
        dirs[:] = sorted(d for d in dirs if not _ignored(d, posixpath.join(inside, d), ignore)
                         and not os.path.islink(os.path.join(here, d)))
        for name in sorted(names):
            relative = posixpath.join(inside, name)
            if _ignored(name, relative, ignore):
                continue
            path = f"{folder.name}/{relative}"
            full = Path(here) / name
            reason = _unsupported(name) or _too_large(full.stat().st_size, limit)
            if reason is None and not full.is_file():
                reason = "not a regular file"
            if reason:
                yield SkippedFile(root, path, reason)
                continue
            try:
                yield SourceFile(root, path, full.read_bytes())
            except OSError as exc:
                yield SkippedFile(root, path, f"cannot be read ({exc.strerror or exc})")


def _lone_file(path: Path, root: str, limit: int) -> Iterator[SourceFile | SkippedFile]:
    reason = _too_large(path.stat().st_size, limit)
    if reason:
        yield SkippedFile(root, path.name, reason)
        return
    try:
        yield SourceFile(root, path.name, path.read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})", field="paths") from None


def _member_path(name: str) -> str | None:
    """An archive member's path, normalized; None for one that would leave the archive."""
    clean = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
    if clean in ("", ".") or clean.startswith("../") or clean == ".." or name.startswith("/"):
        return None
    return clean


def _archive(path: Path, root: str, ignore: Sequence[str], limit: int) -> Iterator[SourceFile | SkippedFile]:
    try:
        if path.name.lower().endswith(".zip"):
            yield from _zip_members(path, root, ignore, limit)
        else:
            yield from _tar_members(path, root, ignore, limit)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise InputError(f"{path}: not a readable archive ({exc})", field="paths",
                         fix="check the file, or extract it and add the folder") from None


def _member(root: str, name: str, size: int, ignore: Sequence[str], limit: int,
            read: Callable[[int], bytes]) -> SourceFile | SkippedFile | None:
    clean = _member_path(name)
    if clean is None:
        return SkippedFile(root, name, "a path that leaves the archive")
    parts = clean.split("/")
    if any(_ignored(part, "/".join(parts[:i + 1]), ignore) for i, part in enumerate(parts)):
        return None
    reason = _unsupported(parts[-1]) or _too_large(size, limit)
    if reason:
        return SkippedFile(root, clean, reason)
    data = read(limit + 1)  # a header can lie about the size: never read past the limit
    if len(data) > limit:
        return SkippedFile(root, clean, _too_large(len(data), limit) or "too large")
    return SourceFile(root, clean, data)


def _tar_members(path: Path, root: str, ignore: Sequence[str], limit: int) -> Iterator[SourceFile | SkippedFile]:
    with tarfile.open(path, "r:*") as tar:
        for info in tar:
            if not info.isfile():
                continue
            stream = tar.extractfile(info)
            if stream is None:
                continue
            with stream:
                item = _member(root, info.name, info.size, ignore, limit, stream.read)
            if item is not None:
                yield item


def _zip_members(path: Path, root: str, ignore: Sequence[str], limit: int) -> Iterator[SourceFile | SkippedFile]:
    with zipfile.ZipFile(path) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            with archive.open(info) as stream:
                item = _member(root, info.filename, info.file_size, ignore, limit, stream.read)
            if item is not None:
                yield item
