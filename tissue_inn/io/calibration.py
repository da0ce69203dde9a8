"""From what a camera stores to reflectance: white/dark references, a scale factor, and the checks
that refuse values that are not reflectance (percent, raw counts).

Reflectance is ``(raw − dark) / (white − dark)`` per pixel and band; a reference may be a full
frame (H × W × B), one spectrum (1 × 1 × B or a B-vector) or a file of either. A reference whose
file carries wavelengths is matched to the cube's bands by wavelength (like a cube to a model), so
a reference stored in another band order is still applied to the right bands.

:func:`calibrate` does all of this to an opened :class:`~tissue_inn.io.cube.Cube` (the GUI's Open
dialog uses it); :func:`~tissue_inn.io.cube.read_cube` calls it for ``white=``/``dark=``/``scale=``.

>>> import numpy as np
>>> to_reflectance(np.array([[[60.0, 30.0]]]), white=np.array([110.0, 50.0]), dark=10.0)[0].tolist()
[[[0.5, 0.5]]]
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tissue_inn.errors import BandMismatchError, DataFileError
from tissue_inn.io.bands import fmt_nm, match_bands
from tissue_inn.io.lazy import LazyCube
from tissue_inn.io.readers.base import require_regular_file

if TYPE_CHECKING:
    from tissue_inn.io.cube import Cube

__all__ = ["calibrate", "to_reflectance", "load_reference", "apply_references", "check_reflectance_values"]


def _reference_file(p: Path, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A reference file's values and wavelengths (nm, or None)."""
    from tissue_inn.io.readers.npy import load_npy
    from tissue_inn.io.readers.registry import open_raw
    from tissue_inn.io.wavelengths import read_sidecar_wavelengths, wavelengths_to_nm

    require_regular_file(p, f"a {name} reference file")
    if p.suffix.lower() == ".npy":
        arr = np.asarray(load_npy(p, f"{name} reference"))
        side = read_sidecar_wavelengths(p)
        wl = None if side is None else wavelengths_to_nm(side[0], side[1], p.name, [])[0]
        return arr, wl
    _, raw = open_raw(p)
    return np.asarray(raw.data), (None if raw.wavelength_problem else raw.wavelengths_nm)


def load_reference(
    ref: Any, name: str, shape: tuple[int, int, int], cube_wavelengths_nm: Any = None
) -> tuple[np.ndarray, str]:
    """A white/dark reference as float32, broadcastable to ``shape``, in the cube's band order.

    Args:
        ref: Array (h × w × B, 1 × 1 × B, B-vector, scalar) or a file (any cube format, or .npy).
        name: ``"white"`` or ``"dark"`` (for messages).
        shape: The cube's (H, W, B).
        cube_wavelengths_nm: The cube's band centres; with a reference file that has wavelengths,
            its bands are picked and reordered to match (nearest within 2 nm).

    Returns:
        ``(array, description)``; the description notes a reordering.

    Raises:
        DataFileError: Unreadable file, wrong shape, bands that cannot be matched.
    """
    ref_wl = None
    if isinstance(ref, (str, os.PathLike)):
        p = Path(ref)
        desc = str(p)
        arr, ref_wl = _reference_file(p, name)
    else:
        arr, desc = ref, f"array {np.shape(ref)}"
    try:
        arr = np.asarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{name} reference is not numeric: {exc}") from exc
    h, w, b = shape
    if arr.ndim == 0:
        arr = arr.reshape(1, 1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, 1, -1)
    if arr.ndim == 3 and ref_wl is not None and ref_wl.size == arr.shape[2] and cube_wavelengths_nm is not None:
        cube_wl = np.asarray(cube_wavelengths_nm, dtype=np.float64).reshape(-1)
        try:
            idx = match_bands(ref_wl, cube_wl)
        except BandMismatchError as exc:
            raise DataFileError(f"{name} reference ({desc}): its bands do not fit the cube's: {exc}") from None
        if not np.array_equal(idx, np.arange(arr.shape[2])):
            arr = arr[:, :, idx]
            desc += f" (bands matched by wavelength {fmt_nm(ref_wl[idx])})"
    elif arr.ndim == 3 and arr.shape[2] not in (1, b):
        known = f"wavelengths {fmt_nm(ref_wl)}" if ref_wl is not None else "no wavelengths"
        raise DataFileError(
            f"{name} reference ({desc}) has {arr.shape[2]} bands and {known}; the cube has {b} bands"
            f"{' ' + fmt_nm(cube_wavelengths_nm) if cube_wavelengths_nm is not None else ''}: give a reference "
            "with the cube's bands, or wavelengths for both so the bands can be matched"
        )
    if arr.ndim != 3 or arr.shape[2] not in (1, b) or arr.shape[0] not in (1, h) or arr.shape[1] not in (1, w):
        raise DataFileError(
            f"{name} reference ({desc}) has shape {tuple(arr.shape)}; the cube is {h} × {w} × {b}: give "
            f"{h} × {w} × {b}, 1 × 1 × {b} or a {b}-vector (average reference frames over rows if needed)"
        )
    return arr, desc


def _slice_ref(ref: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    rows = slice(r0, r1) if ref.shape[0] > 1 else slice(None)
    cols = slice(c0, c1) if ref.shape[1] > 1 else slice(None)
    return ref[rows, cols, :]


def apply_references(raw: np.ndarray, white: np.ndarray, dark: np.ndarray) -> tuple[np.ndarray, int]:
    """``(raw − dark) / (white − dark)`` as float32; entries where white ≤ dark become NaN (counted)."""
    denom = white - dark
    bad = denom <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (raw - dark) / np.where(bad, np.float32(1.0), denom)
    out = np.asarray(out, dtype=np.float32)
    n_bad = 0
    if np.any(bad):
        bad_full = np.broadcast_to(bad, out.shape)
        out = np.where(bad_full, np.float32(np.nan), out)
        n_bad = int(np.count_nonzero(bad_full))
    return out, n_bad


def to_reflectance(raw: np.ndarray, white: Any, dark: Any = None) -> tuple[np.ndarray, int]:
    """Reflectance ``(raw − dark) / (white − dark)``; entries where white ≤ dark become NaN.

    Args:
        raw: Raw counts, h × w × B (or anything broadcastable with the references).
        white: White reference: array (h × w × B, 1 × 1 × B, B-vector) or a file (cube format or .npy).
        dark: Dark reference, same forms; None means zero.

    Returns:
        ``(reflectance float32, n_invalid)`` where ``n_invalid`` counts result entries whose
        reference had white ≤ dark (set to NaN).
    """
    raw = np.asarray(raw, dtype=np.float32)
    shape3 = raw.shape if raw.ndim == 3 else (1, 1, raw.shape[-1])
    w, _ = load_reference(white, "white", shape3)
    d = np.zeros((1, 1, 1), np.float32) if dark is None else load_reference(dark, "dark", shape3)[0]
    return apply_references(raw, w, d)


def calibrate(cube: Cube, white: Any = None, dark: Any = None, scale: float | None = None) -> Cube:
    """A new :class:`~tissue_inn.io.cube.Cube` whose values are ``(raw − dark) / (white − dark)``
    (or ``raw × scale``), read lazily from ``cube``; saturation stays checked on the raw values.

    Args:
        cube: The opened measurement (raw counts, or reflectance in other units).
        white: White reference (array or file); bands matched by wavelength when it has them.
        dark: Dark reference (array or file); zero when only ``white`` is given.
        scale: Factor applied to the values (e.g. 0.01 for percent); not together with ``white``.

    Raises:
        DataFileError: References that do not fit, or ``scale`` together with a white reference.
    """
    from tissue_inn.io.cube import Cube

    if white is None and dark is None and scale is None:
        return cube
    name = cube.source_path.name if cube.source_path is not None else "cube"
    if cube.raw is not None:
        raise DataFileError(f"{name}: already calibrated ({cube.metadata.get('values')}); open the raw file again")
    if scale is not None and white is not None:
        raise DataFileError(f"{name}: give either a white reference (--white/--dark) or --scale, not both")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise DataFileError(f"{name}: --scale must be a positive number, got {scale}")
    metadata = dict(cube.metadata)
    metadata["warnings"] = list(cube.metadata.get("warnings", []))
    h, w, b = cube.shape
    wl = cube.wavelengths_nm
    dark_arr = np.zeros((1, 1, 1), np.float32)
    white_arr = None
    if dark is not None:
        dark_arr, metadata["dark_reference"] = load_reference(dark, "dark", (h, w, b), wl)
    if white is not None:
        white_arr, metadata["white_reference"] = load_reference(white, "white", (h, w, b), wl)
        wb, db = np.broadcast_arrays(white_arr, dark_arr)
        n_bad = int(np.count_nonzero(wb <= db))
        metadata["reference_white_le_dark"] = n_bad
        if n_bad:
            _warn(metadata, f"{name}: white ≤ dark in {n_bad} reference entries; those pixels/bands are NaN")
        metadata["values"] = "reflectance (raw − dark) / (white − dark)"
    elif scale is not None:
        metadata["scale"] = float(scale)
        metadata["values"] = f"reflectance (stored values{' − dark' if dark is not None else ''}) × {scale:g}"
    else:
        metadata["values"] = "raw − dark (no white reference: not reflectance)"
        _warn(metadata, f"{name}: dark subtracted but no white reference given; values are not reflectance")
    factor = np.float32(1.0 if scale is None else scale)

    def convert(raw: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        d = _slice_ref(dark_arr, r0, r1, c0, c1)
        if white_arr is not None:
            return apply_references(raw, _slice_ref(white_arr, r0, r1, c0, c1), d)[0]
        return np.asarray((raw - d) * factor, dtype=np.float32)

    raw_data = cube.data

    def reader(r0, r1, c0, c1):
        return convert(np.asarray(raw_data[r0:r1, c0:c1, :], dtype=np.float32), r0, r1, c0, c1)

    description = getattr(cube.data, "description", name)
    return Cube(
        data=LazyCube((h, w, b), reader, description=description),
        wavelengths_nm=wl,
        source_path=cube.source_path,
        metadata=metadata,
        ground_truth=cube.ground_truth,
        saturation=cube.saturation,
        raw=raw_data,
        _convert=convert,
    )


def _warn(metadata: dict, message: str) -> None:
    metadata.setdefault("warnings", []).append(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _sample_values(cube: Cube, rows: int = 16, windows: int = 16, width: int = 256) -> np.ndarray:
    """Up to rows × windows × width pixels spread over the image (all bands), read lazily."""
    h, w, _ = cube.shape
    rr = np.unique(np.linspace(0, h - 1, min(rows, h)).astype(int))
    n_windows = 1 if w <= width else min(windows, -(-w // width))
    starts = np.unique(np.linspace(0, max(w - width, 0), n_windows).astype(int))
    parts = [cube.tile(int(r), int(r) + 1, int(c), min(w, int(c) + width)) for r in rr for c in starts]
    return np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts], axis=0)


def check_reflectance_values(cube: Cube) -> None:
    """Refuse a cube whose values are clearly not reflectance in [0, 1] (read from a sample of pixels).

    Most finite values above 1 mean percent (floats up to ~100: "pass --scale 0.01") or raw
    counts (integers, or larger floats: "give --white and --dark (or --scale)"). After a white
    reference or a scale the same finding means the references or the factor are wrong. A cube with
    only a dark frame subtracted is not reflectance by design and is not checked.

    Raises:
        DataFileError: Naming the finding and the option that fixes it.
    """
    meta = cube.metadata
    name = cube.source_path.name if cube.source_path is not None else "cube"
    if "dark_reference" in meta and "white_reference" not in meta and "scale" not in meta:
        return
    vals = _sample_values(cube)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0 or np.mean(vals > 1.0) <= 0.5:
        return
    med, p99 = float(np.median(vals)), float(np.quantile(vals, 0.99))
    seen = f"median {med:.4g}, 99th percentile {p99:.4g} in a sample of {vals.size} values"
    if "white_reference" in meta:
        raise DataFileError(
            f"{name}: after white/dark calibration most values are above 1 ({seen}); check that the white "
            "reference is a white target imaged with the same settings"
        )
    if "scale" in meta:
        raise DataFileError(f"{name}: after --scale {meta['scale']:g} most values are still above 1 ({seen}); check the factor")
    try:
        integer = np.issubdtype(np.dtype(str(meta.get("dtype", "float32"))), np.integer)
    except TypeError:
        integer = False
    if not integer and p99 <= 110.0:
        raise DataFileError(f"{name}: looks like percent ({seen}): pass --scale 0.01")
    kind = "integer" if integer else "large"
    raise DataFileError(
        f"{name}: {kind} values above 1 ({seen}) are raw counts: give --white and --dark (or --scale "
        "if they are scaled reflectance, e.g. --scale 0.0001 for reflectance × 10000)"
    )
