"""Reading what a caller names: folders walked with ignore patterns, archives read in place,
bad files skipped with the reason, and calls that cannot be honoured refused."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from memlane.documents.sources import decode, read_sources
from memlane.errors import InputError

LIMITS = {"max_file_bytes": 10_000, "max_total_bytes": 1_000_000}


def _folder(tmp_path):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.md").write_text("# A\n\nalpha", encoding="utf-8")
    (notes / "sub" / "b.rst").write_text("B\n=\n\nbeta", encoding="utf-8")
    (notes / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (notes / ".git").mkdir()
    (notes / ".git" / "c.md").write_text("# hidden", encoding="utf-8")
    (notes / "node_modules").mkdir()
    (notes / "node_modules" / "d.md").write_text("# vendored", encoding="utf-8")
    return notes


def test_a_folder_is_walked_in_order_named_from_the_folder_with_ignores_left_out(tmp_path):
    files, skipped = read_sources([_folder(tmp_path)], ignore=[".*", "node_modules"], **LIMITS)
    assert [f.path for f in files] == ["notes/a.md", "notes/sub/b.rst"]
    assert all(f.root == str((tmp_path / "notes").resolve()) for f in files)
    assert [(s.path, "not a document format" in s.reason) for s in skipped] == [("notes/photo.png", True)]


def test_an_ignore_pattern_can_name_a_path_inside_the_folder(tmp_path):
    files, _ = read_sources([_folder(tmp_path)], ignore=[".*", "node_modules", "sub/*"], **LIMITS)
    assert [f.path for f in files] == ["notes/a.md"]


def test_a_tar_archive_is_read_in_place_with_its_member_paths(tmp_path):
    archive = tmp_path / "docs.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        for name, body in (("docs/x.md", b"# X\n\nx"), ("docs/.cache/y.md", b"# Y"), ("../evil.md", b"# E")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    files, skipped = read_sources([archive], ignore=[".*"], **LIMITS)
    assert [(f.path, f.data) for f in files] == [("docs/x.md", b"# X\n\nx")]
    assert [s.reason for s in skipped] == ["a path that leaves the archive"]
    assert not (tmp_path / "docs").exists()  # nothing extracted


def test_a_zip_member_larger_than_the_limit_is_skipped_without_reading_it_whole(tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("small.md", "# S\n\nsmall")
        z.writestr("big.md", "x " * 20_000)
    files, skipped = read_sources([archive], **LIMITS)
    assert [f.path for f in files] == ["small.md"]
    assert skipped[0].path == "big.md" and "larger than documents.max_file_bytes" in skipped[0].reason


def test_a_missing_path_an_unknown_lone_file_and_a_broken_archive_are_refused(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        read_sources([tmp_path / "nope"], **LIMITS)
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="does not read this kind of file"):
        read_sources([tmp_path / "x.png"], **LIMITS)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(InputError, match="not a readable archive"):
        read_sources([tmp_path / "broken.zip"], **LIMITS)


def test_more_bytes_than_the_import_limit_is_refused(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.md").write_text("x" * 4_000, encoding="utf-8")
    with pytest.raises(InputError, match="add up to more than"):
        read_sources([folder], max_file_bytes=10_000, max_total_bytes=15_000)


def test_two_roots_giving_one_document_path_are_refused(tmp_path):
    for parent in ("one", "two"):
        (tmp_path / parent / "notes").mkdir(parents=True)
        (tmp_path / parent / "notes" / "a.md").write_text("# A", encoding="utf-8")
    with pytest.raises(InputError, match="'notes/a.md'"):
        read_sources([tmp_path / "one" / "notes", tmp_path / "two" / "notes"], **LIMITS)


@pytest.mark.parametrize("data, reason", [
    (b"\x00\x01binary", "binary"),
    (b"caf\xe9 au lait", "not UTF-8 text (byte 0xe9 at offset 3)"),
    (b"  \n\t\n", "empty"),
])
def test_decode_says_why_a_file_is_not_text(data, reason):
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode(data)


def test_decode_reads_utf8_with_a_bom_and_utf16_and_normalizes_newlines():
    assert decode(b"\xef\xbb\xbfhello\r\nworld\r") == "hello\nworld\n"
    assert decode("héllo".encode("utf-16")) == "héllo"
