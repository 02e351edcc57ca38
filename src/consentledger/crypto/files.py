"""Private files written in one step: a crash never leaves half a key file behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

from consentledger.errors import KeystoreError

PRIVATE_MODE = 0o600
"""The mode of every key file: readable and writable by its owner only."""


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False, what: str = "key file") -> None:
    """Write `data` to `path` with mode 0600, atomically; an existing file is kept unless `overwrite`.

    Raises `KeystoreError` (naming `what`) if the file exists and `overwrite` is false, or on any
    OS error.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # A private temp file beside the target is moved into place in one step. Without overwrite it
    # is hard-linked instead, which fails atomically if the target appeared in the meantime.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), PRIVATE_MODE)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeystoreError(f"{path} already exists; refusing to overwrite a {what}") from None
    except OSError as exc:
        raise KeystoreError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_key_file(path: Path, what: str = "key file") -> bytes:
    """Return the bytes of the key file at `path`; raise `KeystoreError` naming it if unreadable."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def replace_file(source: Path, target: Path, *, what: str = "key file") -> None:
    """Move `source` over `target` in one atomic step, durably (the directory entry is synced).

    Whatever `target` held is gone afterwards: this is how a rotation destroys an old key file.
    Raises `KeystoreError` (naming `what`) on any OS error.
    """
    try:
        os.replace(source, target)
    except OSError as exc:
        raise KeystoreError(f"cannot replace {what} {target}: {exc.strerror or exc}") from exc
    sync_directory(target.parent)


def sync_directory(directory: Path) -> None:
    """Flush `directory`'s entries to disk, so a file just created, renamed or removed there survives a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileLock:
    """An advisory lock (`flock`) on a file, held until `release` (or the process ends, even by SIGKILL)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases its flock
            self._fd = None


def try_lock_file(path: Path, *, exclusive: bool) -> FileLock | None:
    """Return a lock on the existing file `path`, shared or exclusive, or None if a conflicting one is held.

    Never waits. Raises `KeystoreError` if the file cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeystoreError(f"cannot open {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:
        os.close(fd)
        raise KeystoreError(f"cannot lock {path}: {exc.strerror or exc}") from exc
    return FileLock(fd)
