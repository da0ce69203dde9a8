"""NumPy ``.npy`` cubes (H × W × B, memory-mapped; never unpickled); wavelengths from a sidecar
``<name>.wavelengths.txt``/``.json`` beside the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissue_inn.errors import DataFileError
from tissue_inn.io.lazy import LazyCube
from tissue_inn.io.readers.base import RawCube, refuse_dataset, suffix_or_magic
from tissue_inn.io.wavelengths import read_sidecar_wavelengths, wavelengths_to_nm

__all__ = ["NpyReader", "load_npy"]


def load_npy(path: Path, what: str = "") -> np.ndarray:
    """Memory-map a numeric ``.npy`` array; clear errors for pickles, truncation and corruption."""
    label = f"{path.name}{': ' + what if what else ''}"
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise DataFileError(f"{label}: not a NumPy .npy file (bad header; truncated or corrupt?)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataFileError(
                f"{label}: holds pickled Python objects, which are never loaded (unsafe); save a numeric array"
            ) from exc
        raise DataFileError(f"{label}: not a readable .npy file (truncated or corrupt?): {exc}") from exc
    except (OSError, EOFError) as exc:
        raise DataFileError(f"{label}: not a readable .npy file (truncated or corrupt?): {exc}") from exc
    if not isinstance(arr, np.ndarray):
        raise DataFileError(f"{label}: expected a single array, found {type(arr).__name__}")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataFileError(f"{label}: data type {arr.dtype} is not numeric")
    return arr


class NpyReader:
    name = "NumPy"
    suffixes = (".npy",)
    description = "NumPy array H × W × bands (wavelengths in <name>.wavelengths.txt/.json)"

    def can_read(self, path: Path) -> str | None:
        return suffix_or_magic(path, self.suffixes, (b"\x93NUMPY",), "a NumPy .npy file")

    def read(self, path: Path, dataset: str | None = None) -> RawCube:
        refuse_dataset(path, dataset, "npy")
        arr = load_npy(path)
        if arr.ndim != 3:
            raise DataFileError(f"{path.name}: cube has {arr.ndim} dimensions, expected H × W × bands")
        out = RawCube(data=None, metadata={"format": "npy", "dtype": str(arr.dtype)})
        side = read_sidecar_wavelengths(path)
        if side is not None:
            wl, units, cand = side
            out.metadata["wavelength_source"] = f"sidecar {cand.name}"
            out.wavelengths_nm, out.wavelength_problem = wavelengths_to_nm(
                wl, units, f"{path.name} (sidecar {cand.name})", out.warnings
            )

        def reader(r0, r1, c0, c1):
            return arr[r0:r1, c0:c1, :]

        out.data = LazyCube(arr.shape, reader, description=path.name)
        return out
