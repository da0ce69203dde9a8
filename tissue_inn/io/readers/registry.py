"""The one list of cube readers, and what is built from it: the dispatcher, the file-dialog filter
and the format list of help texts and error messages.

To add a format: write ``tissue_inn/io/readers/<format>.py`` with a class following
:class:`~tissue_inn.io.readers.base.Reader`, import it here and append an instance to
:data:`READERS`. Order matters: the first reader whose ``can_read`` says yes opens the file.

>>> [r.name for r in READERS][:4]
['HDF5', 'NumPy', 'TIFF', 'ENVI']
>>> file_dialog_filter().split(";;")[0].startswith("Multispectral images (*.h5 ")
True
"""

from __future__ import annotations

from pathlib import Path

from tissue_inn.errors import DataFileError
from tissue_inn.io.readers.base import RawCube, Reader
from tissue_inn.io.readers.csv_spectra import CsvSpectraReader
from tissue_inn.io.readers.envi import EnviReader
from tissue_inn.io.readers.hdf5 import Hdf5Reader
from tissue_inn.io.readers.npy import NpyReader
from tissue_inn.io.readers.tiff import TiffReader

__all__ = ["READERS", "open_raw", "file_dialog_filter", "supported_formats_text", "supported_suffixes"]

READERS: list[Reader] = [
    Hdf5Reader(),
    NpyReader(),
    TiffReader(),
    EnviReader(),
    CsvSpectraReader(),
]


def supported_suffixes() -> dict[str, tuple[str, ...]]:
    """Format name → file suffixes, in registry order."""
    return {r.name: tuple(r.suffixes) for r in READERS}


def supported_formats_text() -> str:
    """One line for help texts and errors, e.g. ``"HDF5 (.h5/.hdf5/…), NumPy (.npy), …"``."""
    return ", ".join(f"{r.name} ({'/'.join(r.suffixes)})" for r in READERS)


def file_dialog_filter() -> str:
    """A Qt file-dialog filter: all cube formats, then one entry per format, then all files."""
    every = " ".join(f"*{s}" for r in READERS for s in r.suffixes)
    one_each = ";;".join(f"{r.name} ({' '.join('*' + s for s in r.suffixes)})" for r in READERS)
    return f"Multispectral images ({every});;{one_each};;All files (*)"


def open_raw(path: Path, dataset: str | None = None) -> tuple[Reader, RawCube]:
    """Open ``path`` with the first registered reader that accepts it.

    Readers that accept the file are tried in order until one reads it; when none accepts it the
    error lists every reader's reason, and when all accepting readers fail it gives the first
    reader's error (the most specific) and the others' in brackets.
    """
    reasons: list[str] = []
    errors: list[DataFileError] = []
    for reader in READERS:
        why = reader.can_read(path)
        if why is not None:
            reasons.append(f"{reader.name}: {why}")
            continue
        try:
            return reader, reader.read(path, dataset)
        except DataFileError as exc:
            errors.append(exc)
            reasons.append(f"{reader.name}: {exc}")
    if errors:
        if len(errors) == 1:
            raise errors[0]
        others = "; ".join(str(e) for e in errors[1:])
        raise DataFileError(f"{errors[0]} (also tried: {others})") from errors[0]
    raise DataFileError(
        f"{path.name}: unsupported file type {path.suffix or '(no suffix)'}; supported: {supported_formats_text()}. "
        f"Why each reader declined: {'; '.join(reasons)}"
    )
