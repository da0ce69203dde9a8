"""Map jobs: what to compute (tagged with the map generation), running the core's generator, and
how a finished map is shown (its unit and colour range)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tissue_inn.progress import Progress
from tissue_inn.workspace.labels import ParameterLabel

if TYPE_CHECKING:
    from tissue_inn.inference.image import MapResult
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.io.cube import Cube

__all__ = [
    "MapJob",
    "run_map_job",
    "map_keys",
    "map_parameters",
    "map_statistics",
    "map_unit",
    "spread_of",
    "VALUE_STATISTICS",
    "SPREAD_STATISTICS",
    "SCORE_STATISTICS",
    "STAT_NAMES",
    "map_axis",
    "map_readout",
]

#: Statistics whose values carry the parameter's unit and live in its prior range.
VALUE_STATISTICS = ("mean", "median", "map", "q05", "q16", "q25", "q75", "q84", "q95")
#: Statistics that measure spread (same unit, range from 0).
SPREAD_STATISTICS = ("std", "iqr")
#: Dimensionless scores in [0, 1].
SCORE_STATISTICS = ("multimodality", "contraction")


@dataclass(frozen=True)
class MapJob:
    """A map computation: generation, region of interest (None = whole image), sampling settings.

    ``predictive``: also map the posterior predictive residual (one forward solve per pixel).
    """

    generation: int
    roi_mask: np.ndarray | None
    n_draws: int
    seed: int
    posterior: Posterior = field(repr=False, compare=False)
    cube: Cube = field(repr=False, compare=False)
    predictive: bool = True
    snr: float | None = None
    kind: str = "exact"
    preview: bool = False


def run_map_job(job: MapJob, should_stop: Callable[[], bool] | None = None) -> Generator[Progress, None, MapResult]:
    """The core's ``infer_image`` generator for ``job`` (drive it in a worker)."""
    from tissue_inn.inference.image import infer_image

    return (
        yield from infer_image(
            job.posterior,
            job.cube,
            n_draws=job.n_draws,
            seed=job.seed,
            roi_mask=job.roi_mask,
            should_stop=should_stop,
            predictive="median" if job.predictive else None,
            snr=job.snr,
            kind=job.kind,
            preview=job.preview,
        )
    )


def map_keys(maps: MapResult | None) -> list[str]:
    return list(maps.maps) if maps is not None else []


def map_parameters(maps: MapResult | None, parameter_names: list[str]) -> list[str]:
    """Parameters (plus ``predictive``) present in the maps, in model order."""
    present = {k.split("/", 1)[0] for k in map_keys(maps)}
    ordered = [n for n in parameter_names if n in present]
    return ordered + sorted(present - set(ordered))


def map_statistics(maps: MapResult | None, parameter: str) -> list[str]:
    return [k.split("/", 1)[1] for k in map_keys(maps) if k.split("/", 1)[0] == parameter and "/" in k]


def map_unit(maps: MapResult | None, key: str, units: Mapping[str, str]) -> str:
    """The unit of a map (the map result's own, else the parameter's for value/spread statistics)."""
    if maps is not None and key in maps.units:
        return str(maps.units[key])
    parameter, _, statistic = key.partition("/")
    if statistic in VALUE_STATISTICS or statistic in SPREAD_STATISTICS:
        return units.get(parameter, "")
    if parameter == "predictive":
        return "reflectance" if "residual" not in statistic else "relative"
    return ""


def spread_of(prior_column: np.ndarray, statistic: str) -> float:
    """The prior's std or IQR of one parameter (the fixed colour range of a spread map)."""
    col = np.asarray(prior_column, dtype=float)
    col = col[np.isfinite(col)]
    if not col.size:
        return 1.0
    spread = float(np.std(col)) if statistic == "std" else float(np.subtract(*np.percentile(col, [75, 25])))
    return spread if spread > 0 else 1.0


def auto_range(image: np.ndarray) -> tuple[float, float]:
    """1–99 % of the finite pixels."""
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, [1, 99]))
    return (lo, hi) if hi > lo else (lo, lo + (abs(lo) * 1e-6 or 1e-6))


#: Plain names of map statistics.
STAT_NAMES = {
    "mean": "mean", "median": "median", "map": "MAP", "std": "standard deviation", "iqr": "IQR",
    "q05": "5th percentile", "q25": "25th percentile", "q75": "75th percentile", "q95": "95th percentile",
    "contraction": "contraction", "multimodality": "multimodality", "residual": "predictive residual",
}


def map_axis(key: str, labels: Mapping[str, ParameterLabel], unit: str = "") -> tuple[str, float]:
    """Colour-bar label and tick scale of a map: ``("StO2 — median [%]", 100.0)``; scores stay 0–1."""
    parameter, _, statistic = key.partition("/")
    stat = STAT_NAMES.get(statistic, statistic)
    lab = labels.get(parameter)
    if lab is not None and (statistic in VALUE_STATISTICS or statistic in SPREAD_STATISTICS):
        return (f"{lab.short} — {stat} [{lab.unit}]" if lab.unit else f"{lab.short} — {stat}"), lab.scale
    name = lab.short if lab is not None else parameter
    shown = "" if unit in ("", "1") or unit.startswith("1 ") else unit
    return (f"{name} — {stat} [{shown}]" if shown else f"{name} — {stat}"), 1.0


def map_readout(
    maps: MapResult | None, key: str | None, row: int, col: int, labels: Mapping[str, ParameterLabel]
) -> str:
    """The hover text of a map pixel: ``"StO2 38 % [30–46 %] (median, 25–75 %)"``, or the shown statistic."""
    if maps is None or not key or key not in maps.maps:
        return ""
    parameter, _, statistic = key.partition("/")
    lab = labels.get(parameter)
    value = float(np.asarray(maps.maps[key])[row, col])
    if not np.isfinite(value):
        return f"{lab.short if lab else parameter}: not mapped here"
    med, lo, hi = (f"{parameter}/{s}" for s in ("median", "q25", "q75"))
    if lab is not None and all(k in maps.maps for k in (med, lo, hi)) and statistic in VALUE_STATISTICS:
        vals = [float(np.asarray(maps.maps[k])[row, col]) for k in (med, lo, hi)]
        return lab.format_interval(*vals) + " (median, 25–75 %)"
    if lab is not None and (statistic in VALUE_STATISTICS or statistic in SPREAD_STATISTICS):
        return f"{lab.short} {STAT_NAMES.get(statistic, statistic)} {lab.format(value)}"
    return f"{lab.short if lab else parameter} {STAT_NAMES.get(statistic, statistic)} {value:.3g}"
