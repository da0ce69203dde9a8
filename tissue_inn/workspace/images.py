"""The loaded image: reading a cube whole for display, matching its bands to a model, and which
pixels are usable (with the reason for each one that is not).

All file-format knowledge stays in :mod:`tissue_inn.io`; this module only asks it for a cube, for
the band matching and for the reader list (the Open dialog's filter and folder browsing use it).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tissue_inn.errors import BandMismatchError, DataFileError

if TYPE_CHECKING:
    from tissue_inn.io.cube import Cube

__all__ = [
    "LoadedImage",
    "load_image",
    "check_bands",
    "band_mismatch_message",
    "match_bands",
    "image_suffixes",
    "image_filter",
    "reason_names",
    "USABLE",
]

#: Reason code of a usable pixel (the codes are :mod:`tissue_inn.io.pixels`'s: the one definition).
USABLE = 0


@dataclass
class LoadedImage:
    """A cube read whole, ready to show and to click.

    Attributes:
        path: The file.
        cube: The reader's cube (lazy access, wavelengths, ground truth, provenance).
        data: ``H × W × B`` float32 in the cube's band order.
        reasons: ``H × W`` uint8 mask reason code (0 usable; :mod:`tissue_inn.io.pixels`).
        white, dark: The references applied (paths), if any.
    """

    path: Path
    cube: Cube
    data: np.ndarray
    reasons: np.ndarray
    white: Path | None = None
    dark: Path | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[0]), int(self.data.shape[1])

    @property
    def n_bands(self) -> int:
        return int(self.data.shape[2])

    @property
    def valid(self) -> np.ndarray:
        """``H × W`` bool: pixels that may be given to a network."""
        return self.reasons == USABLE

    @property
    def wavelengths_nm(self) -> np.ndarray | None:
        wl = self.cube.wavelengths_nm
        return None if wl is None else np.asarray(wl, dtype=float)

    def inside(self, row: int, col: int) -> bool:
        h, w = self.shape
        return 0 <= row < h and 0 <= col < w

    def mask_reason(self, row: int, col: int) -> str | None:
        """Why a pixel is not usable (``"masked: NaN or infinite"``), or None when it is."""
        from tissue_inn.io.pixels import describe_reason

        code = int(self.reasons[row, col])
        return None if code == USABLE else describe_reason(code)

    def ground_truth_at(self, row: int, col: int) -> dict[str, float]:
        """Parameter name → true value at a pixel (images simulated with ground truth only)."""
        out: dict[str, float] = {}
        for name, arr in (self.cube.ground_truth or {}).items():
            try:
                v = float(np.asarray(arr[row, col]))
            except (IndexError, TypeError, ValueError):
                continue
            if math.isfinite(v):
                out[str(name)] = v
        return out


def load_image(
    path: str | os.PathLike,
    white: str | os.PathLike | None = None,
    dark: str | os.PathLike | None = None,
) -> LoadedImage:
    """Read a cube whole (for display), optionally turning raw counts into reflectance with references.

    Raises:
        DataFileError: Unreadable, corrupt or empty file (the message names it).
    """
    from tissue_inn.io.cube import read_cube
    from tissue_inn.io.pixels import pixel_reasons, reason_counts

    path = Path(path)
    cube = read_cube(path, white=white, dark=dark)
    h, w, b = cube.shape
    if h == 0 or w == 0 or b == 0:
        raise DataFileError(f"{path.name}: empty image {cube.shape}")
    try:
        data = np.asarray(cube.tile(0, h, 0, w), dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{path.name}: cannot read the image data ({exc})") from exc
    raw = None
    if cube.saturation is not None and cube.raw is not None:
        raw = np.asarray(cube.raw[0:h, 0:w, :])
    reasons = pixel_reasons(data, saturation=cube.saturation, raw=raw)
    counts = reason_counts(reasons)
    return LoadedImage(
        path, cube, data, reasons, Path(white) if white else None, Path(dark) if dark else None, counts
    )


def check_bands(
    cube_wavelengths_nm: Sequence[float] | None,
    model_band_centers_nm: Sequence[float],
    n_cube_bands: int | None = None,
    tol_nm: float = 2.0,
) -> np.ndarray:
    """Indices of the cube's bands that give the model's bands, or a :class:`BandMismatchError`.

    The error message names both band lists and the model bands that have no partner, so a dialog can
    show it as it is.
    """
    from tissue_inn.io.bands import match_bands

    try:
        return np.asarray(
            match_bands(cube_wavelengths_nm, model_band_centers_nm, tol_nm, n_cube_bands=n_cube_bands), dtype=int
        )
    except BandMismatchError as exc:
        raise BandMismatchError(
            band_mismatch_message(cube_wavelengths_nm, model_band_centers_nm, tol_nm) + f"\n({exc})"
        ) from None


def match_bands(loaded: LoadedImage, model) -> np.ndarray:
    """:func:`check_bands` of a loaded image and a loaded model; a :class:`BandMismatchError` carries the
    image's band centres as ``cube_wavelengths_nm`` (the GUI offers a model for that camera)."""
    try:
        return check_bands(loaded.wavelengths_nm, model.band_centers_nm, n_cube_bands=loaded.n_bands)
    except BandMismatchError as exc:
        exc.cube_wavelengths_nm = None if loaded.wavelengths_nm is None else tuple(
            float(w) for w in loaded.wavelengths_nm)
        raise


def band_mismatch_message(
    cube_wavelengths_nm: Sequence[float] | None, model_band_centers_nm: Sequence[float], tol_nm: float = 2.0
) -> str:
    """A readable account of how the image's bands differ from the model's.

    >>> band_mismatch_message([500, 600], [500, 610])[:40]
    "the model's bands do not match the image"
    """
    model = [float(v) for v in model_band_centers_nm]
    if cube_wavelengths_nm is None:
        return f"the image carries no wavelengths; the model needs bands {_fmt_nm(model)}"
    cube = [float(v) for v in cube_wavelengths_nm]
    missing = [m for m in model if not any(abs(m - c) <= tol_nm for c in cube)]
    return (
        f"the model's bands do not match the image: model {_fmt_nm(model)}, image {_fmt_nm(cube)}; "
        f"no image band within {tol_nm:g} nm of {_fmt_nm(missing)}. Load a model trained for this camera."
    )


def _fmt_nm(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "] nm"


def image_suffixes() -> tuple[str, ...]:
    """File suffixes that some reader opens (lower case, with the dot), from the reader registry."""
    from tissue_inn.io.readers.registry import supported_suffixes

    out = [s.lower() for suffixes in supported_suffixes().values() for s in suffixes]
    return tuple(dict.fromkeys(out))


def image_filter() -> str:
    """The Open dialog's file filter, built from the reader registry."""
    from tissue_inn.io.readers.registry import file_dialog_filter

    return file_dialog_filter()


def reason_names() -> dict[int, str]:
    """Reason code → plain words (for the overlay's legend of masked pixels)."""
    from tissue_inn.io.pixels import REASON_TEXT, REASONS

    return {i + 1: REASON_TEXT[name] for i, name in enumerate(REASONS)}
