"""Atomic file writes: write beside the target, flush to disk, then rename into place.

An interrupted write never leaves a half-written file at the target path, and an
existing file is only replaced when ``force`` is given. Temporary files are named
``.TARGET.HOST-PID.RANDOM.part``; one whose process is gone (a ``kill -9``, a power cut) is
removed the next time anything writes the same target (:func:`clean_stale_temporaries`).
:func:`atomic_group` writes several outputs as one: all of them appear, or none.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tissue_inn.errors import OutputExistsError, TissueInnError

__all__ = ["atomic_path", "atomic_dir", "atomic_group", "check_writable", "check_not_inputs",
           "clean_stale_temporaries", "make_scratch_dir"]

#: A temporary file of a live process on another host (or with a reused pid) is removed after this age.
STALE_SECONDS = 6 * 3600
#: Temporaries named by older versions (no pid in the name) are removed after this age.
LEGACY_STALE_SECONDS = 3600
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _temp_prefix(name: str) -> str:
    return f".{name}.{_HOST}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    except OSError:
        return False
    return True


def clean_stale_temporaries(folder: str | os.PathLike, name: str, now: float | None = None) -> list[Path]:
    """Remove temporaries of ours for target ``name`` in ``folder`` whose writer is gone; return them.

    A temporary is stale when its process (same host) no longer runs, or it is older than
    :data:`STALE_SECONDS`; temporaries without a pid (older versions) after :data:`LEGACY_STALE_SECONDS`.
    Nothing but files and folders named like our temporaries for ``name`` is touched.
    """
    folder = Path(folder)
    now = time.time() if now is None else now
    ours = re.compile(rf"^\.{re.escape(name)}\.(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)\.[A-Za-z0-9_]+\.part$")
    legacy = re.compile(rf"^\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.part$")
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = ours.match(entry.name)
        try:
            age = now - entry.lstat().st_mtime
        except OSError:
            continue
        if m is not None:
            dead = m["host"] == _HOST and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"]))
            stale = dead or age > STALE_SECONDS
        else:
            stale = legacy.match(entry.name) is not None and age > LEGACY_STALE_SECONDS
        if not stale:
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
    return removed


def make_scratch_dir(prefix: str, parent: str | os.PathLike | None = None) -> Path:
    """A private scratch folder ``PREFIX + HOST-PID.RANDOM`` in ``parent`` (default: the system's temp folder).

    Scratch folders of the same prefix left by processes of this host that are gone (``kill -9``) are
    removed first, so a crash leaves at most one generation of litter.
    """
    parent = Path(tempfile.gettempdir() if parent is None else parent)
    pattern = re.compile(rf"^{re.escape(prefix)}(?P<host>[0-9a-f]{{8}})-(?P<pid>\d+)\.[A-Za-z0-9_]+$")
    try:
        entries = list(parent.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        m = pattern.match(entry.name)
        if m is None or m["host"] != _HOST or int(m["pid"]) == os.getpid() or _pid_alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{_HOST}-{os.getpid()}.", dir=parent))


def check_writable(path: str | os.PathLike, force: bool = False) -> Path:
    """Fail early, with a clear message, when ``path`` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise TissueInnError(f"{path} is a folder; give a file name")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass --force to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TissueInnError(f"cannot create folder {parent}: {exc.strerror}; choose another output path") from exc
    if not parent.is_dir():
        raise TissueInnError(f"cannot write {path}: {parent} is not a folder; choose another output path")
    if not os.access(parent, os.W_OK):
        raise TissueInnError(f"cannot write to folder {parent}: permission denied; choose another output path")
    if path.exists() and not os.access(path, os.W_OK) and not os.access(parent, os.W_OK):
        raise TissueInnError(f"cannot replace {path}: permission denied; choose another output path")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_not_inputs(outputs: dict[str, str | os.PathLike], inputs: dict[str, str | os.PathLike | None],
                     replaced_folders: Sequence[str | os.PathLike] = ()) -> None:
    """An input is never an output: refuse (even with ``--force``) when an output is an input file, under any
    spelling (``sub/../x``, a symbolic or hard link), or when a folder to be replaced holds an input.

    ``outputs`` and ``inputs`` map a label for the message (e.g. ``"-o"``, ``"the image"``) to a path.
    """
    ins = {label: Path(p) for label, p in inputs.items() if p is not None}
    for out_label, out in outputs.items():
        out = Path(out)
        for in_label, inp in ins.items():
            if _same_file(out, inp):
                raise TissueInnError(f"{out_label} {out} is {in_label} ({inp}); an input is never overwritten, "
                                     "even with --force: choose another output path")
    for folder in replaced_folders:
        real = Path(os.path.realpath(folder))
        for in_label, inp in ins.items():
            if Path(os.path.realpath(inp)).is_relative_to(real):
                raise TissueInnError(f"the output folder {folder} holds {in_label} ({inp}); replacing the folder "
                                     "would delete it: choose another output folder")


def _new_temp_file(path: Path) -> Path:
    clean_stale_temporaries(path.parent, path.name)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".part", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask applied)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    return Path(tmp_name)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


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
    tmp = _new_temp_file(path)
    try:
        yield tmp
        _fsync(tmp)
        if path.exists() and not force:
            raise OutputExistsError(f"{path} appeared while writing; pass --force to replace it")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_group(paths: Sequence[str | os.PathLike], force: bool = False) -> Iterator[list[Path]]:
    """Write several files as one: yield a temporary path for each; when the block succeeds all are renamed
    into place, otherwise none is (existing targets are moved aside first and restored if a rename fails).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_group([d / "a.txt", d / "b.txt"]) as (ta, tb):
        ...     _ = ta.write_text("a"), tb.write_text("b")
        >>> sorted(p.name for p in d.iterdir())
        ['a.txt', 'b.txt']
    """
    targets = [check_writable(p, force=force) for p in paths]
    if len({os.path.realpath(p) for p in targets}) != len(targets):
        raise TissueInnError("output paths must differ")
    temps: list[Path] = []
    backups: list[tuple[Path, Path]] = []
    try:
        for t in targets:
            temps.append(_new_temp_file(t))
        yield list(temps)
        for t, tmp in zip(targets, temps):
            _fsync(tmp)
            if t.exists() and not force:
                raise OutputExistsError(f"{t} appeared while writing; pass --force to replace it")
        done: list[Path] = []
        try:
            for t in targets:
                if t.exists():
                    backup = _new_temp_file(t)
                    os.replace(t, backup)
                    backups.append((t, backup))
            for t, tmp in zip(targets, temps):
                os.replace(tmp, t)
                done.append(t)
        except OSError as exc:
            for t in done:
                with contextlib.suppress(OSError):
                    t.unlink()
            for t, backup in backups:
                with contextlib.suppress(OSError):
                    os.replace(backup, t)
            backups.clear()
            raise TissueInnError(f"could not put the outputs in place ({exc}); nothing was written") from exc
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for _t, backup in backups:
            with contextlib.suppress(OSError):
                backup.unlink()


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
    clean_stale_temporaries(folder.parent, folder.name)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(folder.name), suffix=".part", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=_temp_prefix(folder.name), suffix=".part", dir=folder.parent))
            os.rmdir(old)
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
