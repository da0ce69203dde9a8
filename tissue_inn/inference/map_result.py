"""The result of mapping an image: maps, the mask of estimated pixels, provenance, and what kind of map it is."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tissue_inn.inference.summaries import stat_unit

__all__ = ["MapResult", "map_units", "REASONS", "KIND_EXACT", "KIND_AMORTISED", "MISFIT_UNITS", "AMORTISED_STATS"]

REASONS = ("nan", "non_positive", "saturated", "above_max", "outside_roi")
KIND_EXACT = "exact"
"""Maps reduced from the INN's posterior draws (the reference)."""
KIND_AMORTISED = "amortised"
"""Maps from the bundle's amortised quantile network (instant; medians and quantile intervals only)."""
AMORTISED_STATS = ("median", "q05", "q25", "q75", "q95", "iqr")
"""The statistics an amortised map can hold."""
MISFIT_UNITS = {"misfit/score": "1 (> 1: not explained)", "misfit/explained": "1 (1 explained, 0 not)"}


@dataclass
class MapResult:
    """Posterior maps of one image.

    Attributes:
        maps: key ``"<parameter>/<statistic>"`` → H × W float32 (NaN where not estimated); a read-only
            mapping (:class:`~tissue_inn.io.maps_store.MapStore`: in memory, or streamed to disk for big images).
        mask: H × W bool, True where the pixel's maps are final.
        mask_reasons: reason → number of pixels not estimated.
        attrs: provenance (model, source, draws, seed, device, timing, ``map_kind`` …).
        units: key → unit.
        complete: False when the run was cancelled (then ``mask`` says which pixels are done).
        rows_done: rows finished by the exact pass.
        preview_mask: H × W bool or None: pixels holding preview values only (a progressive run in progress).
    """

    maps: Mapping[str, np.ndarray]
    mask: np.ndarray
    mask_reasons: dict[str, int]
    attrs: dict[str, Any]
    units: dict[str, str]
    parameter_names: tuple[str, ...]
    stats: tuple[str, ...]
    complete: bool = True
    rows_done: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    preview_mask: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    @property
    def kind(self) -> str:
        """``"exact"`` (from the INN's draws) or ``"amortised"`` (from the quantile network)."""
        return str(self.attrs.get("map_kind", KIND_EXACT))

    @property
    def explained(self) -> np.ndarray | None:
        """H × W bool: the misfit gate's verdict (False also where not estimated), or None without a gate."""
        if "misfit/explained" not in self.maps:
            return None
        return np.asarray(self.maps["misfit/explained"]) == 1

    def save_hdf5(self, path, force: bool = False):
        """Write maps, mask and provenance with :func:`tissue_inn.io.maps.write_maps_hdf5` (atomic; streamed)."""
        from tissue_inn.io.maps import write_maps_hdf5

        return write_maps_hdf5(path, self.maps, attrs=self.attrs, mask=self.mask, units=self.units, force=force)


def map_units(parameter_names, parameter_units, stats, predictive: bool) -> dict[str, str]:
    """Unit per map key: the parameter's unit for location/spread stats, ``"1"`` for the scores."""
    units = {}
    for name, unit in zip(parameter_names, parameter_units):
        for s in stats:
            units[f"{name}/{s}"] = stat_unit(s, unit)
    if predictive:
        units["predictive/residual"] = "1 (relative, RMS log ratio)"
    return units
