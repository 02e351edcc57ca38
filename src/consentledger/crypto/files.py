"""Private files written in one step: a crash never leaves half a key file behind."""

from __future__ import annotations

import contextlib
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
