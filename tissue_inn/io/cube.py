"""Measured cubes: :class:`Cube` (H × W × B, read lazily) and :func:`read_cube`, the one way in.

``read_cube`` checks the path (a regular file, never a pipe), asks the reader registry
(:mod:`tissue_inn.io.readers`) to open it, settles the wavelengths (the user's, else the file's),
applies white/dark references or a scale (:mod:`tissue_inn.io.calibration`) and refuses values that
are clearly not reflectance (percent, raw counts). Pixel usability is :mod:`tissue_inn.io.pixels`;
band matching is :mod:`tissue_inn.io.bands`.

>>> import numpy as np, tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     p = pathlib.Path(d) / "x.npy"
...     np.save(p, np.full((4, 5, 3), 0.4, np.float32))
...     cube = read_cube(p, wavelengths_nm=[500, 560, 600])
...     cube.shape, cube.tile(0, 2, 0, 2).shape
((4, 5, 3), (2, 2, 3))
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.errors import DataFileError
from tissue_inn.hashing import file_sha256
from tissue_inn.io.calibration import calibrate, check_reflectance_values
from tissue_inn.io.lazy import LazyCube
from tissue_inn.io.pixels import valid_mask
from tissue_inn.io.readers.base import require_regular_file
from tissue_inn.io.readers.registry import open_raw, supported_formats_text
from tissue_inn.io.wavelengths import parse_wavelength_values

__all__ = ["Cube", "LazyCube", "read_cube", "MAX_PIXELS"]

# Largest image read_cube opens (H × W): 2^30 ≈ 1.07e9 pixels, e.g. 32768 × 32768; beyond that a
# header is more likely hostile or corrupt than a real measurement, and maps would not fit in memory.
MAX_PIXELS = 1 << 30


@dataclass
class Cube:
    """A multispectral measurement, H × W × B.

    Attributes:
        data: ``np.ndarray`` or :class:`LazyCube` (H × W × B); slicing yields reflectance (after the
            white/dark references, if any were given).
        wavelengths_nm: Band centres in nm (length B) or None when the file carries none.
        source_path: The file read (for ENVI: the binary image file; the header is in ``metadata``).
        metadata: Format, dataset path, dtype, wavelength source, reference details, ``warnings`` (list).
        ground_truth: Optional name → H × W array (HDF5 group ``ground_truth``).
        saturation: Raw-count saturation level (pixels with raw ≥ this are invalid), or None.
        raw: Raw (pre-reference) array-like when references were applied, else None.
    """

    data: Any
    wavelengths_nm: np.ndarray | None = None
    source_path: Path | None = None
    metadata: dict = field(default_factory=dict)
    ground_truth: dict[str, np.ndarray] | None = None
    saturation: float | None = None
    raw: Any = None
    _convert: Callable[[np.ndarray, int, int, int, int], np.ndarray] | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.data.shape) != 3:
            raise DataFileError(f"cube has {len(self.data.shape)} dimensions, expected H × W × bands")
        if self.wavelengths_nm is not None:
            self.wavelengths_nm = np.asarray(self.wavelengths_nm, dtype=np.float64).reshape(-1)
            if self.wavelengths_nm.size != self.shape[2]:
                raise DataFileError(
                    f"{self._name()}: {self.wavelengths_nm.size} wavelengths given for {self.shape[2]} bands"
                )
        if self.source_path is not None:
            self.source_path = Path(self.source_path)
        self.metadata.setdefault("warnings", [])

    def _name(self) -> str:
        return self.source_path.name if self.source_path is not None else "cube"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, B)."""
        return tuple(int(s) for s in self.data.shape)

    @property
    def source_sha256(self) -> str | None:
        """SHA-256 hex digest of ``source_path`` (streamed in 1 MiB chunks, computed once)."""
        if self._sha256 is None and self.source_path is not None:
            try:
                self._sha256 = file_sha256(self.source_path)
            except OSError as exc:
                raise DataFileError(f"{self.source_path}: cannot read for checksum: {exc.strerror}") from exc
        return self._sha256

    def tile(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows ``r0:r1`` and columns ``c0:c1`` (all bands) as a float32 array."""
        h, w, _ = self.shape
        if not (0 <= r0 <= r1 <= h and 0 <= c0 <= c1 <= w):
            raise IndexError(f"tile rows {r0}:{r1}, columns {c0}:{c1} is outside the {h} × {w} image")
        return np.ascontiguousarray(self.data[r0:r1, c0:c1, :], dtype=np.float32)

    def iter_tiles(self, tile_rows: int) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(r0, r1, tile)`` row strips of ``tile_rows`` rows over the full width."""
        if tile_rows < 1:
            raise ValueError("tile_rows must be ≥ 1")
        h, w, _ = self.shape
        for r0 in range(0, h, tile_rows):
            r1 = min(h, r0 + tile_rows)
            yield r0, r1, self.tile(r0, r1, 0, w)

    def valid_tile(
        self, r0: int, r1: int, c0: int, c1: int, r_min: float | None = 1e-5, r_max: float | None = 1.0
    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """Read a tile and its validity mask, checking saturation on the raw counts.

        Returns:
            ``(tile float32 [h, w, B], mask bool [h, w] (True = usable), reasons)`` as :func:`valid_mask`.
        """
        if self.saturation is not None and self.raw is not None and self._convert is not None:
            h, w, _ = self.shape
            if not (0 <= r0 <= r1 <= h and 0 <= c0 <= c1 <= w):
                raise IndexError(f"tile rows {r0}:{r1}, columns {c0}:{c1} is outside the {h} × {w} image")
            raw = np.asarray(self.raw[r0:r1, c0:c1, :], dtype=np.float32)
            tile = self._convert(raw, r0, r1, c0, c1)
        else:
            tile = self.tile(r0, r1, c0, c1)
            raw = None
        mask, reasons = valid_mask(tile, r_min=r_min, r_max=r_max, saturation=self.saturation, raw=raw)
        return tile, mask, reasons


def read_cube(
    path: str | os.PathLike,
    dataset: str | None = None,
    wavelengths_nm: Any = None,
    white: Any = None,
    dark: Any = None,
    saturation: float | None = None,
    scale: float | None = None,
    *,
    check_values: bool = True,
) -> Cube:
    """Open a multispectral cube (H × W × B) without reading it whole.

    Formats: every reader of :data:`tissue_inn.io.readers.READERS` — HDF5 (``dataset`` path
    selectable; by default the only 3-D dataset or the one named ``reflectance``/``cube``;
    wavelengths from an attribute or a sibling dataset ``wavelengths_nm``; optional group
    ``ground_truth``), NumPy ``.npy`` (memory-mapped; wavelengths from a sidecar
    ``<name>.wavelengths.txt``/``.json``), TIFF (pages = bands, or H × W × samples; wavelengths from
    an ImageDescription JSON) and ENVI (``.hdr`` + binary; wavelength units nm or µm).

    Args:
        path: The file (a regular file; pipes, devices and folders are refused without opening).
        dataset: HDF5 dataset path (HDF5 only).
        wavelengths_nm: Band centres in nm; overrides the file's wavelengths.
        white: White reference (array or file), turns raw counts into reflectance; a file with
            wavelengths is matched to the cube's bands by wavelength.
        dark: Dark reference (array or file); zero when only ``white`` is given.
        saturation: Raw-count saturation level; pixels reaching it are reported invalid by
            :meth:`Cube.valid_tile`.
        scale: Factor turning the stored values into reflectance (0.01 for percent); not with ``white``.
        check_values: Refuse values that are clearly not reflectance (percent, raw counts; see
            :func:`~tissue_inn.io.calibration.check_reflectance_values`). Off only for files that are
            not meant to be reflectance (references, display of raw frames).

    Raises:
        DataFileError: Missing, non-regular, corrupt, unsupported or inconsistent file, or values
            that are not reflectance (the message names the file and the option that fixes it).
    """
    path = Path(path)
    require_regular_file(path, f"a cube file ({supported_formats_text()})")
    _, raw = open_raw(path, dataset)
    metadata = raw.metadata
    metadata["warnings"] = list(raw.warnings)
    for message in raw.warnings:
        warnings.warn(message, UserWarning, stacklevel=2)
    h, w, b = raw.data.shape
    if min(h, w, b) < 1:
        raise DataFileError(f"{path.name}: empty cube of shape {raw.data.shape}")
    if h * w > MAX_PIXELS:
        raise DataFileError(
            f"{path.name}: the cube claims {h} × {w} pixels, more than the {MAX_PIXELS:,} this tool opens; "
            "crop it into tiles and analyse them one by one"
        )
    wl = _settle_wavelengths(path, raw.wavelengths_nm, raw.wavelength_problem, wavelengths_nm, b, metadata)
    cube = Cube(
        data=raw.data,
        wavelengths_nm=wl,
        source_path=raw.source_path or path,
        metadata=metadata,
        ground_truth=raw.ground_truth,
    )
    cube = calibrate(cube, white=white, dark=dark, scale=scale)
    if saturation is not None:
        cube.saturation = float(saturation)
        cube.metadata["saturation"] = float(saturation)
    if check_values:
        check_reflectance_values(cube)
    return cube


def _settle_wavelengths(
    path: Path, file_wl: np.ndarray | None, problem: str | None, given: Any, b: int, metadata: dict
) -> np.ndarray | None:
    """The user's wavelengths if given (warning when the file's differ), else the file's."""
    source = metadata.get("wavelength_source")
    if given is None:
        if problem is not None:
            raise DataFileError(problem)
        if file_wl is None:
            metadata["wavelength_source"] = None
            return None
        if file_wl.size != b:
            raise DataFileError(f"{path.name}: {file_wl.size} wavelengths ({source}) for {b} bands; pass the right ones with --wavelengths")
        return file_wl
    wl = parse_wavelength_values(given, "wavelengths_nm argument")
    if wl.size != b:
        raise DataFileError(f"{path.name}: {wl.size} wavelengths given for a cube with {b} bands")
    metadata["wavelength_source"] = "argument"
    note = None
    if problem is not None:
        note = f"{path.name}: wavelengths in the file ({source}) unreadable; using the given ones"
    elif file_wl is not None and (file_wl.size != b or np.max(np.abs(file_wl - wl)) > 0.5):
        note = f"{path.name}: given wavelengths differ from the file's ({source}); using the given ones"
    if note:
        metadata["warnings"].append(note)
        warnings.warn(note, UserWarning, stacklevel=3)
    return wl
