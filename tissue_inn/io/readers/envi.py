"""ENVI cubes: a text header (``.hdr``) beside a raw binary (BSQ/BIL/BIP); wavelength units nm or µm;
the header's ``data ignore value`` marks no-data pixels (read as NaN, i.e. unusable)."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from tissue_inn.errors import DataFileError
from tissue_inn.io.lazy import LazyCube
from tissue_inn.io.readers.base import RawCube, refuse_dataset
from tissue_inn.io.wavelengths import jsonable, wavelengths_to_nm

__all__ = ["EnviReader", "envi_header_for"]


def envi_header_for(path: Path) -> Path | None:
    """The header beside a binary ENVI image (``x.raw.hdr`` or ``x.hdr``), or None."""
    for cand in (Path(str(path) + ".hdr"), path.with_suffix(".hdr"), path.with_suffix(".HDR")):
        if cand.is_file() and cand != path:
            return cand
    return None


class EnviReader:
    name = "ENVI"
    suffixes = (".hdr", ".raw", ".img", ".dat", ".bil", ".bip", ".bsq")
    description = "ENVI (.hdr header + raw binary)"

    def can_read(self, path: Path) -> str | None:
        if path.suffix.lower() == ".hdr" or envi_header_for(path) is not None:
            return None
        return f"no ENVI header ({path.name}.hdr or {path.stem}.hdr) beside it"

    def read(self, path: Path, dataset: str | None = None) -> RawCube:
        from spectral.io import envi

        refuse_dataset(path, dataset, "envi")
        if path.suffix.lower() == ".hdr":
            hdr, image = path, None
        else:
            hdr, image = envi_header_for(path), path
            if hdr is None:
                raise DataFileError(f"{path.name}: no ENVI header ({path.name}.hdr or {path.stem}.hdr) beside it")
        try:
            img = envi.open(str(hdr), None if image is None else str(image))
        except envi.EnviDataFileNotFoundError as exc:
            raise DataFileError(f"{hdr.name}: ENVI data file not found beside the header ({exc})") from exc
        except (envi.EnviException, OSError, ValueError, TypeError, KeyError) as exc:
            raise DataFileError(f"{hdr.name}: not a readable ENVI header/image: {exc}") from exc
        data_path = Path(img.filename)
        st = data_path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise DataFileError(f"{data_path.name}: the ENVI image is not a regular file (a pipe, device or folder)")
        expected = int(np.prod(img.shape)) * np.dtype(img.dtype).itemsize + int(getattr(img, "offset", 0))
        if st.st_size < expected:
            raise DataFileError(
                f"{data_path.name}: ENVI image is {st.st_size} bytes, header needs {expected} (truncated?)"
            )
        meta = img.metadata
        out = RawCube(data=None, source_path=data_path)
        out.metadata = {
            "format": "envi",
            "header_path": str(hdr),
            "dtype": str(np.dtype(img.dtype)),
            "interleave": meta.get("interleave"),
            "header": {k: jsonable(v) for k, v in meta.items() if k not in ("wavelength", "fwhm", "band names")},
        }
        if "fwhm" in meta:
            out.metadata["fwhm"] = meta["fwhm"]
        if "wavelength" in meta:
            source = "ENVI header 'wavelength'"
            out.metadata["wavelength_source"] = source
            out.wavelengths_nm, out.wavelength_problem = wavelengths_to_nm(
                meta["wavelength"], meta.get("wavelength units"), f"{data_path.name} ({source})", out.warnings
            )
        ignore = meta.get("data ignore value")
        try:
            ignore = None if ignore is None else float(ignore)
        except (TypeError, ValueError):
            out.warnings.append(f"{hdr.name}: 'data ignore value' {ignore!r} is not a number; ignored")
            ignore = None
        out.metadata["data_ignore_value"] = ignore

        def reader(r0, r1, c0, c1):
            try:
                block = img.read_subregion((r0, r1), (c0, c1))
            except (OSError, ValueError) as exc:
                raise DataFileError(f"{data_path.name}: cannot read rows {r0}:{r1}: {exc}") from exc
            if ignore is not None:
                block = np.asarray(block, dtype=np.float32)
                block[block == np.float32(ignore)] = np.nan  # no-data pixels → invalid (NaN)
            return block

        out.data = LazyCube(img.shape, reader, description=data_path.name)
        return out
