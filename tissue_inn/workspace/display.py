"""What the image and the histograms show: contrast stretch, pseudo-RGB bands, density histograms,
plot ranges and the grouping of parameters by tissue layer. Pure numpy, no state."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

__all__ = [
    "stretch",
    "histogram",
    "default_rgb_bands",
    "band_label",
    "band_short_label",
    "parameter_groups",
    "plot_range",
]

#: Wavelengths (nm) shown as red, green and blue in the pseudo-colour image.
RGB_TARGETS_NM = (620.0, 550.0, 470.0)


def stretch(image: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.0) -> np.ndarray:
    """Percentile contrast stretch of each channel to [0, 1] (NaN stays NaN).

    >>> stretch(np.array([[0.0, 1.0], [2.0, np.nan]]), 0, 100).tolist()[0]
    [0.0, 0.5]
    """
    img = np.asarray(image, dtype=np.float32)
    chans = img[..., None] if img.ndim == 2 else img
    out = np.empty_like(chans)
    for k in range(chans.shape[-1]):
        c = chans[..., k]
        finite = c[np.isfinite(c)]
        if finite.size == 0:
            out[..., k] = np.nan
            continue
        lo, hi = np.percentile(finite, [low_pct, high_pct])
        if not hi > lo:
            hi = lo + 1e-6
        out[..., k] = np.clip((c - lo) / (hi - lo), 0.0, 1.0)
    return out[..., 0] if img.ndim == 2 else out


def histogram(samples: np.ndarray, low: float, high: float, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram on [low, high]: ``(edges [bins+1], density [bins])`` (density integrates to the
    fraction of samples inside the range)."""
    s = np.asarray(samples, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if not high > low:
        high = low + 1.0
    counts, edges = np.histogram(s, bins=bins, range=(low, high))
    width = (high - low) / bins
    density = counts / (max(s.size, 1) * width)
    return edges, density


def default_rgb_bands(wavelengths_nm: np.ndarray | None, n_bands: int) -> tuple[int, int, int]:
    """Band indices nearest to 620 / 550 / 470 nm (red, green, blue), or the first three bands.

    >>> default_rgb_bands(np.array([470.0, 560.0, 600.0, 700.0]), 4)
    (2, 1, 0)
    """
    b = int(n_bands)
    if wavelengths_nm is None or b < 3:
        return (min(2, b - 1), min(1, b - 1), 0) if b else (0, 0, 0)
    wl = np.asarray(wavelengths_nm, dtype=float)
    r, g, bl = (int(np.argmin(np.abs(wl - t))) for t in RGB_TARGETS_NM)
    return r, g, bl


def band_label(k: int, wavelengths_nm: np.ndarray | None) -> str:
    """``"band 3 (560 nm)"`` (or ``"band 3"`` without wavelengths)."""
    return f"band {k}" + (f" ({wavelengths_nm[k]:g} nm)" if wavelengths_nm is not None else "")


def band_short_label(k: int, wavelengths_nm: np.ndarray | None) -> str:
    """``"560 nm"`` for a band picker (``"band 3"`` without wavelengths)."""
    return f"{wavelengths_nm[k]:g} nm" if wavelengths_nm is not None else f"band {k}"


def parameter_groups(parameter_names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Group parameters by tissue layer: ``[("shared", [...]), ("layer 1 (top)", [...]), ...]``.

    Parameters named ``<property>_<k>`` belong to layer k; the others are shared by the stack.
    """
    shared: list[str] = []
    layers: dict[int, list[str]] = {}
    for name in parameter_names:
        m = re.fullmatch(r"(.+)_(\d+)", name)
        if m:
            layers.setdefault(int(m.group(2)), []).append(name)
        else:
            shared.append(name)
    groups: list[tuple[str, list[str]]] = [("shared", shared)] if shared else []
    for k in sorted(layers):
        label = f"layer {k} (top)" if k == 1 and len(layers) > 1 else f"layer {k}"
        groups.append((label, layers[k]))
    return groups


def plot_range(bounds: tuple[float, float], prior_column: np.ndarray | None = None) -> tuple[float, float]:
    """The x range of a parameter's histogram: its prior bounds, or prior quantiles where unbounded.

    >>> plot_range((0.0, 1.0))
    (0.0, 1.0)
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi
    col = np.asarray(prior_column if prior_column is not None else [], dtype=float)
    col = col[np.isfinite(col)]
    if col.size:
        qlo, qhi = np.percentile(col, [0.5, 99.5])
        lo = lo if math.isfinite(lo) else float(qlo)
        hi = hi if math.isfinite(hi) else float(qhi)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        lo = lo if math.isfinite(lo) else 0.0
        hi = hi if math.isfinite(hi) and hi > lo else lo + 1.0
    return lo, hi
