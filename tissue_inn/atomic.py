"""Atomic file writes: write beside the target, flush to disk, then rename into place.

An interrupted write never leaves a half-written file at the target path, and an
existing file is only replaced when ``force`` is given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tissue_inn.errors import OutputExistsError, TissueInnError

__all__ = ["atomic_path", "atomic_dir", "check_writable"]


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """Fail early, with a clear message, when ``path`` cannot be written."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass --force to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TissueInnError(f"cannot create folder {parent}: {exc.strerror}; choose another output path") from exc
    if not os.access(parent, os.W_OK):
        raise TissueInnError(f"cannot write to folder {parent}: permission denied; choose another output path")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_path(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hello")
        >>> (d / "a.txt").read_text()
        'hello'
    """
    path = check_writable(path, force=force)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask applied)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if path.exists() and not force:
            raise OutputExistsError(f"{path} appeared while writing; pass --force to replace it")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(folder: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``folder``; on success it replaces ``folder``.

    An existing ``folder`` is only replaced with ``force`` (it is moved aside first and removed after the
    new one is in place); on an exception the temporary folder is removed and ``folder`` is untouched.
    """
    folder = Path(folder)
    if folder.exists() and not force:
        raise OutputExistsError(f"{folder} already exists; pass --force to replace it")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            old = folder.with_name(folder.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
