"""Regions of interest: masks from drawn shapes, names and colours, and their pooled posteriors.

Coordinates are image coordinates: ``x`` = column, ``y`` = row; the pixel (r, c) covers
[c, c+1) × [r, r+1) and its centre is (c + 0.5, r + 0.5).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tissue_inn.errors import Cancelled
from tissue_inn.progress import Progress

if TYPE_CHECKING:
    from tissue_inn.inference.image import MapResult
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.io.cube import Cube

__all__ = ["REGION_COLORS", "Region", "region_mask", "compute_regions", "comparison_rows", "display_rows"]

#: Colour-blind-friendly region colours (Okabe & Ito 2008 palette).
REGION_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")


@dataclass
class Region:
    """A region of interest drawn on the image."""

    name: str
    kind: str
    geometry: dict[str, Any]
    mask: np.ndarray
    color: str

    @property
    def n_pixels(self) -> int:
        return int(self.mask.sum())


def region_mask(kind: str, geometry: Mapping[str, Any], shape: tuple[int, int]) -> np.ndarray:
    """H × W bool mask of the pixels whose centres lie inside a region.

    Args:
        kind: ``"rect"`` (geometry ``x, y, w, h``), ``"ellipse"`` (``x, y, w, h`` of the bounding box)
            or ``"polygon"`` (``points``: list of (x, y)).
        geometry: As above.
        shape: (H, W).

    >>> int(region_mask("rect", {"x": 1, "y": 1, "w": 2, "h": 3}, (5, 5)).sum())
    6
    """
    h, w = int(shape[0]), int(shape[1])
    cols = np.arange(w) + 0.5
    rows = np.arange(h) + 0.5
    if kind in ("rect", "ellipse"):
        x, y, gw, gh = (float(geometry[k]) for k in ("x", "y", "w", "h"))
        if gw < 0:
            x, gw = x + gw, -gw
        if gh < 0:
            y, gh = y + gh, -gh
        if kind == "rect":
            return ((rows >= y) & (rows < y + gh))[:, None] & ((cols >= x) & (cols < x + gw))[None, :]
        if gw == 0 or gh == 0:
            return np.zeros((h, w), dtype=bool)
        cx, cy = x + gw / 2, y + gh / 2
        return ((cols[None, :] - cx) / (gw / 2)) ** 2 + ((rows[:, None] - cy) / (gh / 2)) ** 2 <= 1.0
    if kind == "polygon":
        from matplotlib.path import Path as MplPath

        pts = np.asarray(geometry["points"], dtype=float).reshape(-1, 2)
        if len(pts) < 3:
            return np.zeros((h, w), dtype=bool)
        cc, rr = np.meshgrid(cols, rows)
        inside = MplPath(pts).contains_points(np.column_stack([cc.ravel(), rr.ravel()]))
        return inside.reshape(h, w)
    raise ValueError(f"region kind {kind!r} unknown; use 'rect', 'ellipse' or 'polygon'")


def compute_regions(
    posterior: Posterior,
    cube: Cube,
    regions: Sequence[Region],
    n_draws_per_pixel: int,
    seed: int,
    maps: MapResult | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, tuple[dict[str, np.ndarray], list[dict[str, Any]]]]:
    """Pooled posterior samples and statistics of regions (a generator; drive it in a worker).

    Returns:
        ``(name → pooled samples [M, D], statistics rows)``.
    """
    from tissue_inn.inference.image import pooled_region, region_statistics

    pooled: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []
    for i, region in enumerate(regions):
        if should_stop is not None and should_stop():
            raise Cancelled("region statistics cancelled")
        yield Progress("regions", i, len(regions), f"region {region.name} ({region.n_pixels} px)")
        samples = np.asarray(pooled_region(posterior, cube, region.mask, n_draws_per_pixel, seed))
        if samples.shape[0] == 0:
            continue
        pooled[region.name] = samples
        region_rows = region_statistics(
            posterior, cube, {region.name: region.mask}, n_draws_per_pixel, seed, result=maps
        )
        q16, q84 = np.quantile(samples, [0.16, 0.84], axis=0)  # the 68 % interval shown in the table
        for row, lo, hi in zip(region_rows, q16, q84):
            row["pooled_q16"], row["pooled_q84"] = float(lo), float(hi)
            row["seed"] = seed
        rows.extend(region_rows)
    yield Progress("regions", len(regions), len(regions), "done")
    return pooled, rows


def comparison_rows(
    stats: Sequence[Mapping[str, Any]], parameters: Sequence[str], format_interval: Callable[[str, Mapping], str]
) -> tuple[list[str], list[list[str]]]:
    """A compact comparison: one row per region, one column per parameter (``median [q16–q84]``).

    ``format_interval(parameter, row)`` writes one cell from a statistics row.
    """
    regions = list(dict.fromkeys(str(r.get("region")) for r in stats))
    by_key = {(str(r.get("region")), str(r.get("parameter"))): r for r in stats}
    table = []
    for name in regions:
        first = next((r for r in stats if str(r.get("region")) == name), {})
        cells = [name, str(first.get("n_valid", ""))]
        for p in parameters:
            row = by_key.get((name, p))
            cells.append(format_interval(p, row) if row is not None else "")
        table.append(cells)
    return ["region", "pixels", *parameters], table


#: Statistics of a region row that are parameter values (scaled to display units by :func:`display_rows`).
VALUE_KEYS = ("pooled_median", "pooled_q16", "pooled_q84", "pooled_mean", "pooled_std", "median_map_mean")


def display_rows(rows: Sequence[Mapping[str, Any]], labels: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Region statistics in clinical names and display units (StO2 in %, not ``sao2`` in 1); the code
    name moves to ``"code"``. ``labels`` maps code → :class:`~tissue_inn.workspace.labels.ParameterLabel`.

    >>> from tissue_inn.workspace.labels import label_for
    >>> row = display_rows([{"parameter": "sao2", "unit": "1", "pooled_median": 0.8}], {"sao2": label_for("sao2", "1")})[0]
    >>> row["parameter"], row["unit"], round(row["pooled_median"], 6), row["code"]
    ('StO2', '%', 80.0, 'sao2')
    """
    out = []
    for row in rows:
        d = dict(row)
        lab = labels.get(str(row.get("parameter", "")))
        if lab is not None:
            d.update(code=lab.code, parameter=lab.short, unit=lab.unit)
            for k in VALUE_KEYS:
                v = d.get(k)
                if isinstance(v, int | float | np.floating) and v is not None:
                    d[k] = lab.value(float(v))
        out.append(d)
    return out
