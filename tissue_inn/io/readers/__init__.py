"""Cube readers: one module per file format behind one small protocol and one registry.

See :mod:`tissue_inn.io.readers.base` for the :class:`Reader` protocol and :class:`RawCube`, and
:mod:`tissue_inn.io.readers.registry` for the list of readers and what is built from it.
"""

from tissue_inn.io.readers.base import RawCube, Reader
from tissue_inn.io.readers.registry import (
    READERS,
    file_dialog_filter,
    open_raw,
    supported_formats_text,
    supported_suffixes,
)

__all__ = [
    "Reader",
    "RawCube",
    "READERS",
    "open_raw",
    "file_dialog_filter",
    "supported_formats_text",
    "supported_suffixes",
]
