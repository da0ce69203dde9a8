"""What a cube reader is: the :class:`Reader` protocol and the :class:`RawCube` it returns.

A reader knows one file format. ``can_read(path)`` answers quickly from the name and the first
bytes (None = "yes", otherwise the reason why not, shown to the user when no reader fits);
``read(path, dataset)`` opens the file lazily and returns a :class:`RawCube`. Everything that is the
same for every format (user-given wavelengths, white/dark references, scale, value checks) happens
once, in :func:`tissue_inn.io.cube.read_cube`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tissue_inn.errors import DataFileError

__all__ = ["Reader", "RawCube", "file_head", "refuse_dataset", "require_regular_file", "suffix_or_magic"]


@dataclass
class RawCube:
    """What a reader found in a file, before any calibration.

    Attributes:
        data: H × W × B array-like that yields float32 on slicing (usually a
            :class:`~tissue_inn.io.lazy.LazyCube`).
        wavelengths_nm: Band centres in nm from the file, or None.
        metadata: Format, dtype, dataset path, wavelength source … (JSON-able).
        warnings: Texts for the user (shown once by ``read_cube``).
        wavelength_problem: Why the file's wavelengths could not be read (raised by ``read_cube``
            unless the user gives wavelengths), else None.
        ground_truth: Optional name → H × W array (simulated images).
        source_path: The file holding the pixels (ENVI: the binary, not the header); default: the path read.
    """

    data: Any
    wavelengths_nm: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    wavelength_problem: str | None = None
    ground_truth: dict[str, np.ndarray] | None = None
    source_path: Path | None = None


@runtime_checkable
class Reader(Protocol):
    """One file format. Register an instance in :data:`tissue_inn.io.readers.registry.READERS`."""

    name: str  # short format name shown in messages, e.g. "HDF5"
    suffixes: tuple[str, ...]  # lower-case, with the dot, e.g. (".h5", ".hdf5")
    description: str  # one line for help texts and the file dialog

    def can_read(self, path: Path) -> str | None:
        """None when this reader should try ``path``, else the reason it will not."""
        ...

    def read(self, path: Path, dataset: str | None = None) -> RawCube:
        """Open ``path`` lazily; raise :class:`~tissue_inn.errors.DataFileError` naming the file on failure."""
        ...


def file_head(path: Path, n: int = 8) -> bytes:
    """The first ``n`` bytes of a regular file (b"" when unreadable)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def suffix_or_magic(path: Path, suffixes: tuple[str, ...], magics: tuple[bytes, ...], what: str) -> str | None:
    """None when ``path`` has one of ``suffixes`` or starts with one of ``magics``, else the reason."""
    if path.suffix.lower() in suffixes:
        return None
    head = file_head(path)
    if any(head.startswith(m) for m in magics):
        return None
    return f"not {what} (suffix {path.suffix or '(none)'} and no {what} signature)"


def refuse_dataset(path: Path, dataset: str | None, fmt: str) -> None:
    """Formats with a single image take no dataset name."""
    if dataset is not None:
        raise DataFileError(f"{path.name}: --dataset applies to HDF5 files only (this is {fmt})")


def require_regular_file(path: Path, what: str = "a cube file") -> None:
    """Refuse a missing path, a folder, a named pipe, a device or a socket before anything opens it.

    Uses ``os.stat`` only, so a FIFO is never opened (opening one for reading blocks forever).
    """
    import os
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataFileError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot access: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise DataFileError(f"{path}: is a folder, expected {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise DataFileError(f"{path}: is {kind}, not a regular file; save the data to a file and give that")
