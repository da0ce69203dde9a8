"""CSV of spectra: one row per pixel, a header row of band centres in nm; read as an N × 1 × B cube.

Example file (two pixels, four bands)::

    470,480,511,560
    0.21,0.25,0.31,0.42
    0.19,0.22,0.30,0.40
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tissue_inn.errors import DataFileError
from tissue_inn.io.readers.base import RawCube, refuse_dataset

__all__ = ["CsvSpectraReader"]


class CsvSpectraReader:
    name = "CSV spectra"
    suffixes = (".csv",)
    description = "CSV of spectra (one row per pixel, header = wavelengths in nm)"

    def can_read(self, path: Path) -> str | None:
        return None if path.suffix.lower() in self.suffixes else "not a .csv file"

    def read(self, path: Path, dataset: str | None = None) -> RawCube:
        refuse_dataset(path, dataset, "CSV")
        try:
            with open(path, encoding="utf-8") as fh:
                header = fh.readline()
                wavelengths_nm = np.array([float(v) for v in header.split(",")])
                spectra = np.loadtxt(fh, delimiter=",", ndmin=2, dtype=np.float32)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise DataFileError(
                f"{path.name}: not a CSV of spectra (a header of wavelengths in nm, then one row of numbers "
                f"per pixel): {exc}"
            ) from exc
        if spectra.size == 0 or spectra.shape[1] != wavelengths_nm.size:
            raise DataFileError(
                f"{path.name}: {wavelengths_nm.size} wavelengths in the header but rows of "
                f"{spectra.shape[1] if spectra.size else 0} values"
            )
        metadata = {"format": "csv", "dtype": "float32", "wavelength_source": "CSV header"}
        return RawCube(data=spectra[:, None, :], wavelengths_nm=wavelengths_nm, metadata=metadata)
