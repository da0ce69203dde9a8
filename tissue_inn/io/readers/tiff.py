"""TIFF cubes: pages = bands (B × H × W) or one H × W × samples page; wavelengths and layout from a
JSON ImageDescription (``{"wavelengths_nm": [...], "layout": "HWB"}``). Memory-mapped when possible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tissue_inn.errors import DataFileError
from tissue_inn.io.lazy import LazyCube
from tissue_inn.io.readers.base import RawCube, refuse_dataset, suffix_or_magic
from tissue_inn.io.wavelengths import WAVELENGTH_KEYS, jsonable, units_from_key, wavelengths_to_nm

__all__ = ["TiffReader"]

_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _open(path: Path):
    """(array or memmap, axes, dtype, ImageDescription, memory-mapped?)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise DataFileError(f"{path.name}: TIFF contains no images")
            series = tif.series[0]
            axes, dtype = series.axes, series.dtype
            description = tif.pages[0].description if tif.pages else ""
            try:
                return tifffile.memmap(path, mode="r"), axes, dtype, description, True
            except (ValueError, OSError):
                return np.asarray(series.asarray()), axes, dtype, description, False
    except DataFileError:
        raise
    except tifffile.TiffFileError as exc:
        raise DataFileError(f"{path.name}: not a readable TIFF file (truncated or corrupt?): {exc}") from exc
    except (ValueError, OSError, EOFError) as exc:
        raise DataFileError(f"{path.name}: cannot read TIFF ({exc})") from exc


class TiffReader:
    name = "TIFF"
    suffixes = (".tif", ".tiff")
    description = "TIFF (pages = bands, or H × W × samples; wavelengths in a JSON ImageDescription)"

    def can_read(self, path: Path) -> str | None:
        return suffix_or_magic(path, self.suffixes, _MAGICS, "TIFF")

    def read(self, path: Path, dataset: str | None = None) -> RawCube:
        refuse_dataset(path, dataset, "tiff")
        arr, axes, dtype, description, memmapped = _open(path)
        while arr.ndim > 3 and arr.shape[0] == 1:  # drop singleton leading axes (e.g. T=1)
            arr = arr[0]
            axes = axes[1:]
        if arr.ndim != 3:
            raise DataFileError(f"{path.name}: cube has {arr.ndim} dimensions, expected H × W × bands (axes {axes})")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise DataFileError(f"{path.name}: data type {dtype} is not numeric")
        info: dict = {}
        if description:
            try:
                parsed = json.loads(description)
                info = parsed if isinstance(parsed, dict) else {}
            except json.JSONDecodeError:
                info = {}
        layout = str(info.get("layout", "")).upper()
        if layout in ("HWB", "HWC", "YXC", "YXS") or (not layout and axes[-1] in "SC"):
            hwb = True
        elif layout in ("BHW", "CHW", "CYX") or not layout:
            hwb = False
        else:
            raise DataFileError(f"{path.name}: unknown layout {layout!r} in ImageDescription; use 'HWB' or 'BHW'")
        out = RawCube(data=None)
        out.metadata = {"format": "tiff", "dtype": str(dtype), "axes": axes, "layout": "HWB" if hwb else "BHW (pages = bands)"}
        out.metadata["description"] = {k: jsonable(v) for k, v in info.items() if k not in WAVELENGTH_KEYS}
        out.metadata["memory_mapped"] = memmapped
        for key in WAVELENGTH_KEYS:
            if key in info:
                source = f"ImageDescription {key!r}"
                out.metadata["wavelength_source"] = source
                out.wavelengths_nm, out.wavelength_problem = wavelengths_to_nm(
                    info[key], units_from_key(key, info.get("wavelength_units")), f"{path.name} ({source})", out.warnings
                )
                break
        if hwb:
            h, w, b = arr.shape

            def reader(r0, r1, c0, c1):
                return arr[r0:r1, c0:c1, :]
        else:
            b, h, w = arr.shape

            def reader(r0, r1, c0, c1):
                return np.moveaxis(arr[:, r0:r1, c0:c1], 0, -1)

        out.data = LazyCube((h, w, b), reader, description=path.name)
        return out
