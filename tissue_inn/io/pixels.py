"""The one definition of a usable pixel, with the reason each unusable pixel is masked.

A pixel (one spectrum) may be given to a network only when every band is finite, at least
``r_min`` (default 1e-5, which rejects ≤ 0), below the raw ``saturation`` level (when known) and at
most ``r_max`` (default 1.0: reflectance above 1 is a specular highlight or saturation). Each
unusable pixel gets one reason code, the first that applies in this order:

=====  ================  ==============================
code   name              shown as
=====  ================  ==============================
0      usable            usable
1      ``nan``           NaN or infinite
2      ``non_positive``  ≤ 0 (dark or dead pixel)
3      ``saturated``     saturated
4      ``above_max``     above 1 (specular highlight)
=====  ================  ==============================

The image loaders, the map engine, ``Posterior.validate`` and the workspace all ask this module.

>>> import numpy as np
>>> tile = np.array([[[0.2, 0.3], [np.nan, 0.3], [0.0, 0.3], [0.2, 1.4]]])
>>> pixel_reasons(tile).tolist()
[[0, 1, 2, 4]]
>>> describe_reason(2)
'masked: ≤ 0 (dark or dead pixel)'
>>> describe_counts({"nan": 1, "non_positive": 1, "saturated": 0, "above_max": 1})
'1 NaN or infinite, 1 ≤ 0 (dark or dead pixel), 1 above 1 (specular highlight)'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tissue_inn.errors import NoUsablePixelsError

__all__ = [
    "USABLE",
    "REASONS",
    "REASON_TEXT",
    "DEFAULT_R_MIN",
    "DEFAULT_R_MAX",
    "pixel_reasons",
    "reason_counts",
    "valid_mask",
    "describe_reason",
    "describe_counts",
    "spectra_problem",
    "count_usable_pixels",
    "require_usable_pixels",
]

USABLE = 0
REASONS = ("nan", "non_positive", "saturated", "above_max")  # code = index + 1
REASON_TEXT = {
    "nan": "NaN or infinite",
    "non_positive": "≤ 0 (dark or dead pixel)",
    "saturated": "saturated",
    "above_max": "above 1 (specular highlight)",
}
DEFAULT_R_MIN = 1e-5
DEFAULT_R_MAX = 1.0


def pixel_reasons(
    tile: Any,
    r_min: float | None = DEFAULT_R_MIN,
    r_max: float | None = DEFAULT_R_MAX,
    saturation: float | None = None,
    raw: Any = None,
) -> np.ndarray:
    """Reason code per pixel (uint8, 0 = usable; see the module docstring) of an h × w × B tile.

    Args:
        tile: h × w × B reflectance (a 2-D ``[N, B]`` array is taken as N pixels and gives ``[N]``).
        r_min: Smallest accepted value; ≤ 0 is never accepted (None or 0: accept anything > 0).
        r_max: Largest accepted reflectance (None: no limit).
        saturation: Raw saturation level (None: not checked); a pixel with any band ≥ it is saturated.
        raw: h × w × B raw counts for the saturation test (default: ``tile``).
    """
    tile = np.asarray(tile)
    if tile.ndim == 2:
        return pixel_reasons(tile[:, None, :], r_min, r_max, saturation, None if raw is None else np.asarray(raw)[:, None, :])[:, 0]
    if tile.ndim != 3:
        raise ValueError(f"tile must be h × w × bands, got shape {tile.shape}")
    codes = np.zeros(tile.shape[:2], dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        bad_nan = ~np.all(np.isfinite(tile), axis=-1)
        low = (tile <= 0) | (tile < r_min) if r_min is not None else tile <= 0
        codes[np.any(low, axis=-1)] = 2
        if r_max is not None:
            high = np.any(tile > r_max, axis=-1) & (codes == 0)
        if saturation is not None:
            ref = tile if raw is None else np.asarray(raw)
            if ref.shape[:2] != tile.shape[:2]:
                raise ValueError(f"raw shape {ref.shape} does not match tile shape {tile.shape}")
            codes[np.any(ref >= saturation, axis=-1) & (codes == 0)] = 3
        if r_max is not None:
            codes[high & (codes == 0)] = 4
    codes[bad_nan] = 1
    return codes


def reason_counts(codes: np.ndarray) -> dict[str, int]:
    """``{"nan", "non_positive", "saturated", "above_max"} → number of pixels`` from reason codes."""
    counts = np.bincount(np.asarray(codes, dtype=np.uint8).reshape(-1), minlength=len(REASONS) + 1)
    return {name: int(counts[i + 1]) for i, name in enumerate(REASONS)}


def valid_mask(
    tile: np.ndarray,
    r_min: float | None = DEFAULT_R_MIN,
    r_max: float | None = DEFAULT_R_MAX,
    saturation: float | None = None,
    raw: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Which pixels of a reflectance tile may be given to a network: ``(mask bool [h, w], counts)``.

    Same rules and arguments as :func:`pixel_reasons`; each unusable pixel is counted once, under
    its first reason, so the counts add up to the number of unusable pixels.
    """
    tile = np.asarray(tile)
    if tile.ndim != 3:
        raise ValueError(f"tile must be h × w × bands, got shape {tile.shape}")
    codes = pixel_reasons(tile, r_min=r_min, r_max=r_max, saturation=saturation, raw=raw)
    return codes == USABLE, reason_counts(codes)


def describe_reason(code: int) -> str:
    """``"usable"`` or ``"masked: <reason>"`` for one pixel's code (for the GUI's pixel header)."""
    code = int(code)
    if code == USABLE:
        return "usable"
    if not 1 <= code <= len(REASONS):
        raise ValueError(f"unknown pixel reason code {code}")
    return f"masked: {REASON_TEXT[REASONS[code - 1]]}"


def describe_counts(counts: dict[str, int]) -> str:
    """The non-zero reason counts as one phrase, e.g. ``"12 NaN or infinite, 3 saturated"``."""
    parts = [f"{int(counts[k])} {REASON_TEXT[k]}" for k in REASONS if counts.get(k, 0)]
    return ", ".join(parts) if parts else "none"


def spectra_problem(y: np.ndarray, r_min: float | None = DEFAULT_R_MIN, r_max: float | None = DEFAULT_R_MAX) -> str | None:
    """Why some of the spectra ``y [N, B]`` cannot be given to a network (first reason only), or None."""
    codes = pixel_reasons(np.asarray(y)[:, None, :], r_min=r_min, r_max=r_max)[:, 0]
    for code, name in enumerate(REASONS, start=1):
        hit = codes == code
        if not hit.any():
            continue
        n, first = int(hit.sum()), int(np.argmax(hit))
        if name == "nan":
            return f"{n} spectrum/spectra contain NaN or infinite values (first: row {first}); mask invalid pixels"
        if name == "non_positive":
            lim = f"< {r_min:g} (≤ 0: dead or dark pixel" if r_min is not None else "≤ 0 (dead or dark pixel"
            return f"{n} spectrum/spectra have reflectance {lim}; first: row {first})"
        return (
            f"{n} spectrum/spectra have reflectance above {r_max:g} "
            f"(specular highlight or saturation; first: row {first})"
        )
    return None


def count_usable_pixels(
    cube: Any, r_min: float | None = DEFAULT_R_MIN, r_max: float | None = DEFAULT_R_MAX, tile_rows: int = 64
) -> tuple[int, dict[str, int]]:
    """``(number of usable pixels, reason → count)`` of a whole :class:`~tissue_inn.io.cube.Cube`,
    read in row strips of ``tile_rows`` (saturation checked on the raw counts when the cube knows them)."""
    h, w, _ = cube.shape
    n_usable, counts = 0, dict.fromkeys(REASONS, 0)
    for r0 in range(0, h, tile_rows):
        _, mask, reasons = cube.valid_tile(r0, min(h, r0 + tile_rows), 0, w, r_min=r_min, r_max=r_max)
        n_usable += int(np.count_nonzero(mask))
        for k, v in reasons.items():
            counts[k] += int(v)
    return n_usable, counts


def require_usable_pixels(counts: dict[str, int], n_usable: int, name: str = "the image") -> None:
    """Raise :class:`~tissue_inn.errors.NoUsablePixelsError` when no pixel is usable.

    Args:
        counts: Reason → pixel count (as :func:`reason_counts`/:func:`valid_mask` give).
        n_usable: Number of usable pixels (in the image or the region analysed).
        name: What to call the image in the message (e.g. the file name).
    """
    if int(n_usable) > 0:
        return
    total = sum(int(v) for v in counts.values())
    hint = ""
    if counts.get("above_max", 0) * 2 > total:
        hint = "; values above 1 may be percent (pass --scale 0.01) or raw counts (give --white and --dark)"
    elif counts.get("non_positive", 0) * 2 > total:
        hint = "; check the dark reference (is it brighter than the image?)"
    raise NoUsablePixelsError(
        f"{name}: no usable pixel among {total} ({describe_counts(counts)}); nothing to analyse{hint}",
        counts,
    )
