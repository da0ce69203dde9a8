"""Writing results: maps (HDF5, TIFF, PNG), the shown histograms and summaries (CSV), region
statistics (CSV), and where exports go by default (next to the image, named after it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.errors import TissueInnError

__all__ = [
    "png_path_for",
    "default_export_path",
    "histogram_rows",
    "summary_rows",
    "write_maps",
    "write_rows_csv",
    "EXPORT_SUFFIXES",
]

#: What each export is called next to the image: ``<image stem>_<kind>.<ext>``.
EXPORT_SUFFIXES = {
    "hdf5": "_maps.h5",
    "tiff": "_maps.tif",
    "png": "_map.png",
    "histograms_png": "_histograms.png",
    "histograms_csv": "_histograms.csv",
    "regions_csv": "_regions.csv",
}


def default_export_path(image_path: str | os.PathLike | None, kind: str, pixel: tuple[int, int] | None = None) -> Path:
    """The default file of an export: next to the image, named after it (``cube_maps.h5``;
    ``cube_r5_c9_histograms.csv`` for a pixel's histograms). Without an image: the current folder.

    >>> default_export_path("/data/study/img01.h5", "histograms_csv", (5, 9)).name
    'img01_r5_c9_histograms.csv'
    """
    suffix = EXPORT_SUFFIXES[kind]
    if image_path is None:
        return Path.cwd() / ("tissue_inn" + suffix)
    p = Path(image_path)
    stem = p.stem + (f"_r{pixel[0]}_c{pixel[1]}" if pixel is not None else "")
    return p.with_name(stem + suffix)


def png_path_for(base: str | os.PathLike, key: str) -> Path:
    """Where the PNG of map ``key`` goes for a folder or stem ``base``."""
    base = Path(base)
    safe = key.replace("/", "_")
    if base.is_dir():
        return base / f"{safe}.png"
    stem = base.with_suffix("") if base.suffix.lower() == ".png" else base
    return stem.with_name(f"{stem.name}_{safe}.png")


def histogram_rows(
    hists: Mapping[str, Mapping[str, np.ndarray]], units: Mapping[str, str], row: int, col: int
) -> list[dict[str, Any]]:
    """CSV rows of the shown histograms: one row per parameter and bin."""
    out = []
    for name, h in hists.items():
        for i in range(len(h["edges"]) - 1):
            out.append(
                {
                    "pixel_row": row,
                    "pixel_col": col,
                    "parameter": name,
                    "unit": units.get(name, ""),
                    "bin_low": float(h["edges"][i]),
                    "bin_high": float(h["edges"][i + 1]),
                    "posterior_density": float(h["posterior"][i]),
                    "prior_density": float(h["prior"][i]),
                }
            )
    return out


def summary_rows(
    summaries: Mapping[str, Mapping[str, Any]],
    names: Sequence[str],
    units: Mapping[str, str],
    provenance: Mapping[str, Any],
    ground_truth: Mapping[str, float],
) -> list[dict[str, Any]]:
    """CSV rows of the per-parameter summaries of a pixel posterior (``provenance`` columns first)."""
    rows = []
    for name in names:
        s = summaries.get(name, {})
        row: dict[str, Any] = dict(provenance)
        row.update({"parameter": name, "unit": units.get(name, "")})
        row.update({k: float(v) for k, v in s.items() if np.ndim(v) == 0})
        if name in ground_truth:
            row["ground_truth"] = ground_truth[name]
        rows.append(row)
    return rows


def write_rows_csv(path: str | os.PathLike, rows: list[dict[str, Any]], force: bool = False) -> Path:
    from tissue_inn.io.maps import write_csv

    return write_csv(path, rows, force=force)


def write_maps(
    path: str | os.PathLike,
    maps: Mapping[str, np.ndarray],
    units: Mapping[str, str],
    attrs: Mapping[str, Any],
    mask: np.ndarray | None,
    fmt: str | None = None,
    force: bool = False,
    png_style: Callable[[str], tuple[str, float, float]] | None = None,
) -> list[Path]:
    """Write maps: ``hdf5`` / ``tiff`` (all keys in one file) or ``png`` (one file per key).

    For PNG, ``path`` is a file for a single key or a folder / stem for several
    (``<stem>_<parameter>_<statistic>.png``); ``png_style(key)`` gives ``(title, vmin, vmax)``.
    The format defaults to the path's suffix.
    """
    from tissue_inn.io.maps import write_map_png, write_maps_hdf5, write_maps_tiff

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "hdf5").lower()
    fmt = {"h5": "hdf5", "tif": "tiff"}.get(fmt, fmt)
    if fmt == "hdf5":
        return [write_maps_hdf5(path, dict(maps), attrs=dict(attrs), mask=mask, units=dict(units), force=force)]
    if fmt == "tiff":
        return [write_maps_tiff(path, dict(maps), units=dict(units), force=force, mask=mask, extra=dict(attrs))]
    if fmt == "png":
        if png_style is None:
            raise TissueInnError("PNG export needs a colour range for each map")
        written = []
        single = len(maps) == 1 and path.suffix.lower() == ".png"
        for k, img in maps.items():
            target = path if single else png_path_for(path, k)
            title, lo, hi = png_style(k)
            written.append(
                write_map_png(
                    target, img, title=title, unit=units[k] or k, vmin=lo, vmax=hi, cmap="viridis", mask=mask,
                    force=force,
                )
            )
        return written
    raise ValueError(f"map export format {fmt!r} unknown; use hdf5, tiff or png")
