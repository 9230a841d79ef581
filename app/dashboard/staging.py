"""Uploads wait for the user's confirmation in a private folder inside the store.

`<store>/staging/` is mode 0700 and owned by the server's user; each upload gets a folder
of its own with a random name (`mkdtemp`, 0700) and its file is written once (0600, never
through a link). The import re-reads that file only after checking it still holds the
bytes that were reviewed (sha256): a file changed after review is refused. A zip of
tracker runs is unpacked (`unpack`) into a private folder beside it, safely: no entry
leaves the folder, sizes are counted as written, zip bombs are refused. Staged files
are removed after their import and when the user drops them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.errors import BadInputError, ScalinglabError

STAGING_DIR = "staging"
PRIVATE = 0o700
STALE_S = 24 * 3600.0  # a staged upload nobody confirmed or dropped for a day
ZIP_MAGIC = b"PK\x03\x04"


class StagingError(ScalinglabError):
    """The staging folder is not private (another user's, a link, a file)."""


@dataclass(frozen=True)
class Staged:
    """One uploaded file waiting for confirmation: where it is and the hash reviewed."""

    name: str
    path: Path
    sha256: str

    @property
    def folder(self) -> Path:
        return self.path.parent


def staging_root(store_root: str | os.PathLike[str]) -> Path:
    """`<store>/staging`, made private (0700) if need be; StagingError when it is a link,
    not a folder, or another user's."""
    root = Path(store_root) / STAGING_DIR
    root.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=PRIVATE)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode):
        raise StagingError(f"{root} is not a folder: remove it so uploads can be staged")
    if info.st_uid != os.geteuid():
        raise StagingError(f"{root} belongs to another user: uploads are not staged there")
    if stat.S_IMODE(info.st_mode) != PRIVATE:
        os.chmod(root, PRIVATE)
    return root


def safe_name(name: str) -> str:
    """The file name alone (no folders), never empty, '.' or '..'."""
    base = Path(str(name).replace("\\", "/")).name.strip()
    return base if base not in ("", ".", "..") else "upload.csv"


def stage(store_root: str | os.PathLike[str], name: str, payload: bytes) -> Staged:
    """Write `payload` to a fresh private folder under the staging root."""
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=staging_root(store_root)))
    path = folder / safe_name(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(payload)
    return Staged(name=str(name), path=path, sha256=hashlib.sha256(payload).hexdigest())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(staged: Staged) -> None:
    """BadInputError unless the staged file still holds the reviewed bytes."""
    try:
        now = sha256_of(staged.path)
    except OSError as err:
        raise BadInputError(
            f"the staged copy is gone ({err.strerror}): upload the file again",
            file=staged.name,
        ) from err
    if now != staged.sha256:
        raise BadInputError(
            f"changed after it was reviewed (sha256 {now[:12]}..., reviewed "
            f"{staged.sha256[:12]}...): nothing imported; upload it again",
            file=staged.name,
        )


def is_zip(path: Path) -> bool:
    """Whether the staged file is a zip archive (by its first bytes, not its name)."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == ZIP_MAGIC
    except OSError:
        return False


def unpack(staged: Staged, *, limits: ZipLimits | None = None) -> Path:
    """Unpack the staged zip into a fresh private folder beside it, after checking its
    sha256 is the one reviewed; the folder to read (the archive's single top folder, if
    it has one, as `scalinglab import runs/` names runs below `runs/`).

    Links are not unpacked. Refused with a clear message, leaving nothing unpacked: a
    name that leaves the folder (absolute, `..`, a drive), an encrypted entry, a name given twice, more
    than `limits.files` entries or `limits.total_bytes` unpacked, or an entry that
    expands more than `limits.ratio` times (a zip bomb). Sizes are counted as written,
    not as the archive claims."""
    limits = limits or ZipLimits()
    verify(staged)
    target = Path(tempfile.mkdtemp(prefix="unpacked-", dir=staged.folder))
    try:
        _extract(staged, target, limits)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    children = list(target.iterdir())
    return children[0] if len(children) == 1 and children[0].is_dir() else target


@dataclass(frozen=True)
class ZipLimits:
    """What a zip may unpack to: entries, bytes in all, and expansion per entry."""

    files: int = 100_000
    total_bytes: int = 4 << 30
    ratio: float = 200.0
    ratio_floor: int = 1 << 20  # entries smaller than this may expand more


def _extract(staged: Staged, target: Path, limits: ZipLimits) -> None:
    import zipfile

    def refuse(message: str) -> BadInputError:
        return BadInputError(f"{message}: nothing imported", file=staged.name)

    try:
        archive = zipfile.ZipFile(staged.path)
    except (zipfile.BadZipFile, OSError) as err:
        raise refuse(f"not a readable zip archive ({err})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.files:
            raise refuse(f"the zip holds {len(entries):,} entries, more than {limits.files:,}")
        written = 0
        for entry in entries:
            parts = _entry_parts(entry.filename)
            if parts is None:
                raise refuse(f"the zip entry {entry.filename!r} leaves its folder")
            if stat.S_ISLNK(entry.external_attr >> 16):
                continue  # never made: `zip -y` stores W&B's `latest-run` link like this
            if entry.flag_bits & 0x1:
                raise refuse(f"the zip entry {entry.filename!r} is encrypted")
            path = target.joinpath(*parts) if parts else target
            try:
                if entry.is_dir():
                    path.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(mode=PRIVATE, parents=True, exist_ok=True)
                written += _write_entry(archive, entry, path, limits, written, refuse)
            except (OSError, zipfile.BadZipFile) as err:  # a file where a folder was, a bad CRC
                raise refuse(f"cannot unpack {entry.filename!r} ({err})") from None


def _entry_parts(name: str) -> list[str] | None:
    """The entry's folders and name below the target, or None when it would leave it."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    return None if any(p == ".." for p in parts) else parts


def _write_entry(
    archive: Any, entry: Any, path: Path, limits: ZipLimits, before: int, refuse: Any
) -> int:
    """Copy one entry out in blocks, stopping the moment a limit is passed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise refuse(f"the zip names {entry.filename!r} twice") from None
    size = 0
    allowed = max(limits.ratio_floor, int(limits.ratio * max(entry.compress_size, 1)))
    with os.fdopen(fd, "wb") as out, archive.open(entry) as source:
        while block := source.read(1 << 20):
            size += len(block)
            if size > allowed:
                raise refuse(
                    f"the zip entry {entry.filename!r} expands more than {limits.ratio:.0f} "
                    "times (a zip bomb?)"
                )
            if before + size > limits.total_bytes:
                raise refuse(f"the zip unpacks to more than {_size(limits.total_bytes)}")
            out.write(block)
    return size


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def discard(staged: Staged) -> None:
    """Remove the upload's private folder (and its file)."""
    shutil.rmtree(staged.folder, ignore_errors=True)


def sweep_stale(
    store_root: str | os.PathLike[str], older_than_s: float = STALE_S, now: float | None = None
) -> list[Path]:
    """Remove staged uploads left for longer than `older_than_s` (a closed browser tab
    never drops its files); the folders removed."""
    root = staging_root(store_root)
    limit = (time.time() if now is None else now) - older_than_s
    removed = []
    for folder in root.iterdir():
        try:
            if folder.is_dir() and not folder.is_symlink() and folder.stat().st_mtime < limit:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:
            continue
    return removed
