"""Map jobs: what to compute (tagged with the map generation), running the core's generator, and
how a finished map is shown (its unit and colour range)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tissue_inn.progress import Progress

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
