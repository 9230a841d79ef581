"""Zips of tracker runs unpacked from the staging folder: only inside their own private
folder, within size limits, zip bombs refused, and only while the bytes are the reviewed
ones. Each refusal names the upload and leaves nothing unpacked."""

from __future__ import annotations

import re
import stat
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from app.dashboard import staging
from store.errors import BadInputError


def zipped(entries: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def stage(tmp_path: Path, payload: bytes, name: str = "runs.zip") -> staging.Staged:
    return staging.stage(tmp_path / "store", name, payload)


def unpacked_files(staged: staging.Staged) -> list[Path]:
    return sorted(p for p in staged.folder.rglob("*") if p.is_file() and p != staged.path)


def test_a_runs_folder_unpacks_privately_and_its_top_folder_is_read(tmp_path: Path) -> None:
    staged = stage(tmp_path, zipped({"runs/a/x.txt": b"one", "runs/b/y.txt": b"two"}))
    assert staging.is_zip(staged.path)
    folder = staging.unpack(staged)
    assert folder.name == "runs"  # as `scalinglab import runs/` names the runs below it
    assert (folder / "a" / "x.txt").read_bytes() == b"one"
    assert folder.parent.parent == staged.folder
    assert stat.S_IMODE(folder.parent.stat().st_mode) == staging.PRIVATE
    assert stat.S_IMODE((folder / "b" / "y.txt").stat().st_mode) == 0o600
    # Several top-level entries: the unpacked folder itself.
    flat = stage(tmp_path, zipped({"a/x.txt": b"1", "b.txt": b"2"}), "flat.zip")
    assert sorted(p.name for p in staging.unpack(flat).iterdir()) == ["a", "b.txt"]


@pytest.mark.parametrize(
    "name", ["runs/../../evil.txt", "/etc/evil.txt", "C:/evil.txt", "runs\\..\\..\\evil.txt"]
)
def test_entries_that_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    # A good entry first: what was unpacked before the bad one is removed too.
    staged = stage(tmp_path, zipped({"runs/ok.txt": b"ok", name: b"x"}))
    with pytest.raises(BadInputError) as caught:
        staging.unpack(staged)
    assert (
        str(caught.value) == f"runs.zip: the zip entry {name!r} leaves its folder: nothing imported"
    )
    assert unpacked_files(staged) == []
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "store" / "evil.txt").exists()


def test_links_are_not_unpacked(tmp_path: Path) -> None:
    links = {"runs/latest-run": "run-1", "runs/passwd": "/etc/passwd"}
    staged = stage(tmp_path, zipped({"runs/run-1/a.txt": b"x"}, links=links))
    folder = staging.unpack(staged)
    assert [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))] == [
        "run-1",
        "run-1/a.txt",
    ]


def test_a_zip_bomb_is_refused_while_unpacking(tmp_path: Path) -> None:
    # 64 MiB of zeros deflate to about 64 KiB: a thousandfold expansion.
    staged = stage(tmp_path, zipped({"runs/a/events.out.tfevents.1": bytes(64 << 20)}))
    with pytest.raises(BadInputError) as caught:
        staging.unpack(staged)
    assert str(caught.value) == (
        "runs.zip: the zip entry 'runs/a/events.out.tfevents.1' expands more than 200 times "
        "(a zip bomb?): nothing imported"
    )
    assert unpacked_files(staged) == []


def test_the_total_size_and_the_number_of_entries_are_limited(tmp_path: Path) -> None:
    payload = zipped({f"runs/{i}.bin": bytes(range(256)) * 8 for i in range(5)})
    staged = stage(tmp_path, payload)
    with pytest.raises(BadInputError, match="the zip unpacks to more than 8 KiB"):
        staging.unpack(staged, limits=staging.ZipLimits(total_bytes=4 * 2048))
    with pytest.raises(BadInputError, match="the zip holds 5 entries, more than 4"):
        staging.unpack(staged, limits=staging.ZipLimits(files=4))
    assert unpacked_files(staged) == []
    assert len(list(staging.unpack(staged).iterdir())) == 5  # within the defaults


def test_a_name_given_twice_and_a_damaged_zip_are_refused(tmp_path: Path) -> None:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("runs/a.txt", b"first")
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("runs/a.txt", b"second")
    staged = stage(tmp_path, buffer.getvalue())
    with pytest.raises(BadInputError, match=re.escape("the zip names 'runs/a.txt' twice")):
        staging.unpack(staged)
    cut = stage(tmp_path, zipped({"runs/a.txt": b"x" * 1000})[:60], "cut.zip")
    with pytest.raises(BadInputError, match=re.escape("cut.zip: not a readable zip archive")):
        staging.unpack(cut)


def test_a_zip_changed_after_review_is_not_unpacked(tmp_path: Path) -> None:
    staged = stage(tmp_path, zipped({"runs/a.txt": b"reviewed"}))
    staged.path.write_bytes(zipped({"runs/a.txt": b"swapped"}))
    with pytest.raises(BadInputError, match="changed after it was reviewed"):
        staging.unpack(staged)
    assert unpacked_files(staged) == []
