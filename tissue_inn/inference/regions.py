"""Region statistics: pooled posterior samples of the pixels inside a mask, as CSV rows.

``pooled_region(posterior, cube, mask, n_draws_per_pixel=64, seed=0, max_pixels=20000) -> [M, D]``
and ``region_statistics(posterior, cube, regions, n_draws_per_pixel=64, seed=0, result=None)``; see
:mod:`tissue_inn.inference.image` (their public home). With a map result that carries the misfit
gate's verdicts, every row also counts the region's pixels not explained by the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from tissue_inn.errors import TissueInnError
from tissue_inn.inference.map_engine import as_cube, read_tile
from tissue_inn.inference.map_result import MapResult
from tissue_inn.inference.summaries import quantiles_sorted
from tissue_inn.io.bands import match_bands

__all__ = ["pooled_region", "region_statistics"]


def pooled_region(
    posterior,
    cube: Any,
    mask: np.ndarray,
    n_draws_per_pixel: int = 64,
    seed: int = 0,
    max_pixels: int = 20000,
    band_tol_nm: float = 2.0,
) -> np.ndarray:
    """Pooled posterior samples ``[M, D]`` of the valid pixels in ``mask`` (see the module docstring)."""
    y, _ = _region_spectra(posterior, cube, mask, band_tol_nm)
    if y.shape[0] == 0:
        return np.zeros((0, posterior.n_parameters))
    if y.shape[0] > max_pixels:
        pick = np.sort(np.random.default_rng(seed).choice(y.shape[0], size=max_pixels, replace=False))
        y = y[pick]
    return posterior.sample(y, n_draws_per_pixel, seed).reshape(-1, posterior.n_parameters)


def _region_spectra(posterior, cube: Any, mask: np.ndarray, band_tol_nm: float):
    cube = as_cube(cube)
    h, w, _ = cube.shape
    m = np.asarray(mask, dtype=bool)
    if m.shape != (h, w):
        raise TissueInnError(f"region mask has shape {m.shape}; the image is {h} × {w}")
    band_idx = match_bands(cube, posterior.band_centers_nm, band_tol_nm)
    rows = np.nonzero(m.any(axis=1))[0]
    if rows.size == 0:
        return np.zeros((0, len(band_idx))), 0
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    tile, valid, _ = read_tile(cube, r0, r1, w, band_idx, m, posterior)
    n_in = int(m.sum())
    return tile[valid].astype(np.float64), n_in


def region_statistics(
    posterior,
    cube: Any,
    regions: Mapping[str, np.ndarray] | np.ndarray,
    n_draws_per_pixel: int = 64,
    seed: int = 0,
    result: MapResult | None = None,
    max_pixels: int = 20000,
) -> list[dict[str, Any]]:
    """Rows for a CSV: per region and parameter, pooled posterior statistics (module docstring)."""
    if not isinstance(regions, Mapping):
        regions = {"region": regions}
    rows: list[dict[str, Any]] = []
    for rname, m in regions.items():
        y, n_in = _region_spectra(posterior, cube, m, 2.0)
        n_valid = y.shape[0]
        if n_valid > max_pixels:
            pick = np.sort(np.random.default_rng(seed).choice(n_valid, size=max_pixels, replace=False))
            y = y[pick]
        pooled = (
            posterior.sample(y, n_draws_per_pixel, seed).reshape(-1, posterior.n_parameters)
            if n_valid
            else np.zeros((0, posterior.n_parameters))
        )
        for d, (pname, unit) in enumerate(zip(posterior.parameter_names, posterior.parameter_units)):
            row: dict[str, Any] = {
                "region": rname,
                "parameter": pname,
                "unit": unit,
                "n_pixels": n_in,
                "n_valid": n_valid,
                "n_draws_per_pixel": n_draws_per_pixel,
            }
            col = pooled[:, d]
            if col.size:
                srt = torch.as_tensor(np.sort(col))
                q = quantiles_sorted(srt, (0.05, 0.25, 0.5, 0.75, 0.95)).numpy()
                row.update(
                    pooled_mean=float(col.mean()),
                    pooled_std=float(col.std(ddof=1)) if col.size > 1 else 0.0,
                    pooled_q05=float(q[0]),
                    pooled_q25=float(q[1]),
                    pooled_median=float(q[2]),
                    pooled_q75=float(q[3]),
                    pooled_q95=float(q[4]),
                )
            else:
                row.update(
                    pooled_mean=None,
                    pooled_std=None,
                    pooled_q05=None,
                    pooled_q25=None,
                    pooled_median=None,
                    pooled_q75=None,
                    pooled_q95=None,
                )
            if result is not None and result.explained is not None:
                region_mask = np.asarray(m, bool) & result.mask
                row["n_not_explained"] = int(np.sum(region_mask & ~result.explained))
            if result is not None and f"{pname}/median" in result.maps:
                vals = result.maps[f"{pname}/median"][np.asarray(m, bool) & result.mask]
                row["median_map_mean"] = float(np.mean(vals)) if vals.size else None
                row["median_map_std"] = float(np.std(vals)) if vals.size else None
            rows.append(row)
    return rows
