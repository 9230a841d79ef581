"""Uploads wait for the user's confirmation in a private folder inside the store.

`<store>/staging/` is mode 0700 and owned by the server's user; each upload gets a folder
of its own with a random name (`mkdtemp`, 0700) and its file is written once (0600, never
through a link). The import re-reads that file only after checking it still holds the
bytes that were reviewed (sha256): a file changed after review is refused. Staged files
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

from store.errors import BadInputError, ScalinglabError

STAGING_DIR = "staging"
PRIVATE = 0o700
STALE_S = 24 * 3600.0  # a staged upload nobody confirmed or dropped for a day


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
