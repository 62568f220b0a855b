"""Documents uploaded over HTTP, for the REST route and the console's form alike: the uploaded
parts are written where `Memory.add_documents` reads them, and the upload's collection becomes
the root it syncs (uploading a collection again replaces what it held).

One archive (.tar, .tar.gz, .tar.xz, .zip, ...) is saved as it came. Any other upload, one file
or several, is written as the members of one plain .tar, so that the library reads it as it
reads an archive: each document named by its file name alone, and a file it does not read
(an image, a binary) skipped and reported rather than refusing the whole upload."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import unicodedata
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, Sequence

from memlane.documents.sources import is_archive
from memlane.errors import InputError, describe

if TYPE_CHECKING:
    from memlane.documents.model import DocumentReport
    from memlane.memory import Memory

MAX_NAME_CHARS = 255
UPLOAD_ROOT = "upload:"  # the root of an uploaded collection: "upload:<collection>"


class Upload(Protocol):
    """An uploaded part (FastAPI's and Starlette's `UploadFile`)."""

    filename: str | None
    file: IO[bytes]


def upload_name(filename: object) -> str:
    """The name a part is saved and remembered under: the last step of the client's file name
    (a browser or curl may send a path), refused when nothing usable is left."""
    if not isinstance(filename, str) or not filename.strip():
        raise InputError(f"an uploaded file has no file name ({describe(filename)})", field="files",
                         fix="send each file as a multipart file part with its filename")
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", "..") or len(name) > MAX_NAME_CHARS \
            or any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise InputError(f"the uploaded file name {filename[:80]!r} cannot name a document", field="files",
                         fix=f"name the file like 'plan.md' (at most {MAX_NAME_CHARS} characters, no control "
                             "characters)")
    return name


def add_uploaded(memory: "Memory", files: Sequence[Upload], *, user_id: str, category: str,
                 collection: str | None = None) -> "DocumentReport":
    """Remember the uploaded `files` (one archive, or documents) for `user_id` as the collection
    `collection` (default: the name of a lone file or archive; several files must name one)."""
    if not files:
        raise InputError("no file was uploaded", field="files", fix="send one or more files, or one archive")
    names = [upload_name(f.filename) for f in files]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"two uploaded files are both named {repeated[0]!r}", field="files",
                         fix="upload them in separate collections, or as an archive of their folders")
    if collection is None:
        if len(files) > 1:
            raise InputError(f"{len(files)} files were uploaded without naming their collection", field="collection",
                             fix="pass collection='handbook' (uploading the same collection again syncs it)")
        collection = names[0]
    with tempfile.TemporaryDirectory(prefix="memlane-upload-") as folder:
        if len(files) == 1 and is_archive(names[0]):
            saved = Path(folder) / names[0]
            with saved.open("wb") as out:
                shutil.copyfileobj(files[0].file, out)
        else:
            saved = Path(folder) / "upload.tar"
            with tarfile.open(saved, "w", format=tarfile.PAX_FORMAT) as tar:
                for name, part in zip(names, files):
                    info = tarfile.TarInfo(name)
                    info.size = _size(part.file)
                    tar.addfile(info, part.file)
        try:
            return memory.add_documents([saved], user_id=user_id, category=category,
                                        root=UPLOAD_ROOT + collection)
        except InputError as exc:  # the library names the saved file: show the upload's name instead
            shown = folder + os.sep
            raise InputError(exc.problem.replace(shown, ""), file=exc.file, record=exc.record,
                             field="files" if exc.field == "paths" else exc.field, fix=exc.fix) from None


def _size(stream: IO[bytes]) -> int:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    return size
