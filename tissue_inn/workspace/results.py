"""Results of the workspace: maps, regions, exports and the latent grid (the half of
:class:`~tissue_inn.workspace.state.Workspace` that works on a loaded model and image)."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tissue_inn.errors import TissueInnError
from tissue_inn.progress import Progress
from tissue_inn.workspace import export, latent, maps, regions
from tissue_inn.workspace.images import LoadedImage
from tissue_inn.workspace.labels import ParameterLabel
from tissue_inn.workspace.models import LoadedModel
from tissue_inn.workspace.pixel import PixelResult
from tissue_inn.workspace.regions import REGION_COLORS, Region, region_mask

if TYPE_CHECKING:
    from tissue_inn.inference.image import MapResult
    from tissue_inn.workspace.state import Generation

__all__ = ["WorkspaceResults", "NOT_READY"]

NOT_READY = "load a model and an image whose bands match first"


class WorkspaceResults:
    """Maps, regions, exports and the latent grid; mixed into :class:`~tissue_inn.workspace.state.Workspace`
    (which defines the state below and the helpers used here)."""

    model: LoadedModel | None
    loaded_image: LoadedImage | None
    maps: MapResult | None
    maps_saved: bool
    regions: dict[str, Region]
    region_stats: list[dict[str, Any]]
    region_samples: dict[str, np.ndarray]
    pixel_result: PixelResult | None
    n_draws_map: int
    seed: int
    snr: float | None
    _region_counter: int
    ready: bool
    shape: tuple[int, int]
    parameter_names: list[str]
    units: dict[str, str]
    prior_bounds: dict[str, tuple[float, float]]
    model_name: str
    model_path: Path | None
    image_path: Path | None
    labels: dict[str, ParameterLabel]
    map_generation: Generation

    if TYPE_CHECKING:  # defined by Workspace

        def plot_range(self, name: str) -> tuple[float, float]: ...

        def prior_samples(self, n: int = 100_000, seed: int | None = None) -> np.ndarray: ...

        def histograms(
            self, result: PixelResult | None = None, bins: int = 40, samples: np.ndarray | None = None
        ) -> dict[str, dict[str, np.ndarray]]: ...

    png_path_for = staticmethod(export.png_path_for)

    # ------------------------------------------------------------------ maps
    def new_map_job(
        self, roi_mask: np.ndarray | None = None, n_draws: int | None = None, seed: int | None = None,
        predictive: bool = True, kind: str = "exact", preview: bool = False,
    ) -> maps.MapJob:
        """Describe a map computation (whole image or ``roi_mask``); increases the map generation."""
        if not self.ready or self.model is None or self.loaded_image is None:
            raise TissueInnError(NOT_READY)
        if roi_mask is not None:
            roi_mask = np.asarray(roi_mask, dtype=bool)
            if roi_mask.shape != self.shape:
                raise ValueError(f"region mask {roi_mask.shape} does not match the image {self.shape}")
            if not roi_mask.any():
                raise TissueInnError("the region is empty; draw it over the image")
        return maps.MapJob(
            self.map_generation.next(), roi_mask, int(n_draws or self.n_draws_map),
            self.seed if seed is None else int(seed), self.model.posterior, self.loaded_image.cube, bool(predictive),
            self.snr, kind, bool(preview),
        )

    def run_map_job(
        self, job: maps.MapJob, should_stop: Callable[[], bool] | None = None
    ) -> Generator[Progress, None, MapResult]:
        """The core's ``infer_image`` generator for ``job`` (drive it in a worker)."""
        return (yield from maps.run_map_job(job, should_stop))

    def accept_maps(self, job: maps.MapJob, result: MapResult | None) -> bool:
        """Keep a finished map result unless a newer job, model or image made it stale."""
        if not self.map_generation.is_current(job.generation) or result is None:
            return False
        self.maps = result
        self.maps_saved = False
        return True

    def map_keys(self) -> list[str]:
        return maps.map_keys(self.maps)

    def map_parameters(self) -> list[str]:
        """Parameters (plus ``predictive``) present in the maps, in model order."""
        return maps.map_parameters(self.maps, self.parameter_names)

    def map_statistics(self, parameter: str) -> list[str]:
        return maps.map_statistics(self.maps, parameter)

    def map_image(self, key: str) -> np.ndarray:
        if self.maps is None or key not in self.maps.maps:
            raise KeyError(f"no map {key!r}; compute maps first")
        return np.asarray(self.maps.maps[key], dtype=np.float32)

    def map_unit(self, key: str) -> str:
        return maps.map_unit(self.maps, key, self.units)

    def map_kind(self) -> str:
        """Which kind of map is shown: ``"exact INN map, 500 draws/pixel"``, ``"incomplete map: 12 of 64 rows"``."""
        if self.maps is None:
            return ""
        kind = str(self.maps.attrs.get("map_kind") or "exact")
        draws = self.maps.attrs.get("n_draws")
        what = {"exact": "exact map (the network's draws", "amortised": "instant map (amortised quantile network"}.get(
            kind, f"{kind} map ("
        )
        what += f", {draws} draws/pixel)" if draws and kind == "exact" else ")"
        preview = self.maps.preview_mask
        if preview is not None and np.any(preview):
            return f"{what}, refining: coarse preview where not yet computed"
        if not self.maps.complete:
            return f"incomplete {what}: {self.maps.rows_done} of {self.shape[0]} rows"
        return what

    def unexplained(self) -> tuple[np.ndarray | None, str]:
        """H × W bool of mapped pixels the model does not explain (misfit gate), and a legend line."""
        explained = self.maps.explained if self.maps is not None else None
        if explained is None:
            return None, ""
        flagged = ~explained & np.asarray(self.maps.mask, bool)
        n, total = int(flagged.sum()), int(np.asarray(self.maps.mask, bool).sum())
        pct = 100 * n / total if total else 0.0
        return flagged, f"{n} pixels ({pct:.0f} %) not explained by {self.model_name} (1 % false-alarm level)"

    def region_comparison(self, all_parameters: bool = False) -> tuple[list[str], list[list[str]]]:
        """The compact region table: one row per region, ``median [q16–q84]`` in clinical units, for the
        parameters the regions' spectra inform (pooled spread < 90 % of the prior's; all with the flag)."""
        labels = self.labels
        params = list(self.parameter_names)
        if not all_parameters and self.region_stats and self.model is not None:
            prior = self.prior_samples()
            informed = []
            for j, name in enumerate(params):
                var = float(np.nanvar(prior[:, j]))
                stds = [r.get("pooled_std") for r in self.region_stats if r.get("parameter") == name]
                if var > 0 and any(s is not None and 1 - s**2 / var >= 0.1 for s in stds):
                    informed.append(name)
            params = informed or params

        def cell(name: str, row: Mapping[str, Any]) -> str:
            med, lo, hi = row.get("pooled_median"), row.get("pooled_q16"), row.get("pooled_q84")
            if med is None:
                return ""
            lab = labels[name]
            return lab.format_interval(med, lo, hi).removeprefix(lab.short).strip() if lo is not None else lab.format(med)

        headers, rows = regions.comparison_rows(self.region_stats, params, cell)
        return [h if h not in labels else labels[h].short for h in headers], rows

    def map_axis(self, key: str) -> tuple[str, float]:
        """Colour-bar label (clinical name, statistic, display unit) and tick scale of a map."""
        return maps.map_axis(key, self.labels, self.map_unit(key))

    def hover_text(self, row: int, col: int, key: str | None = None) -> str:
        """The readout under the cursor: pixel, reflectances, and the shown map's value in clinical units."""
        h, w = self.shape
        if not (0 <= row < h and 0 <= col < w) or self.loaded_image is None:
            return ""
        s = self.loaded_image.data[row, col, :]
        text = f"pixel (row {row}, col {col}) · R = " + " ".join(f"{v:.3f}" for v in s)
        reason = self.loaded_image.mask_reason(row, col)
        if reason:
            return text + f" · {reason}"
        value = maps.map_readout(self.maps, key, row, col, self.labels)
        return text + (f" · {value}" if value else "")

    def map_range(self, key: str, mode: str = "prior") -> tuple[float, float]:
        """Colour range of a map: ``"prior"`` (fixed, from the prior) or ``"auto"`` (1–99 % of shown pixels)."""
        parameter, _, statistic = key.partition("/")
        if mode == "prior" and parameter in self.prior_bounds:
            if statistic in maps.VALUE_STATISTICS:
                return self.plot_range(parameter)
            if statistic in maps.SPREAD_STATISTICS:
                col = self.prior_samples()[:, self.parameter_names.index(parameter)]
                if np.isfinite(col).any():
                    return 0.0, maps.spread_of(col, statistic)
            if statistic in maps.SCORE_STATISTICS:
                return 0.0, 1.0
        return maps.auto_range(self.map_image(key))

    # ------------------------------------------------------------------ regions
    def add_region(self, kind: str, geometry: Mapping[str, Any], name: str | None = None) -> Region:
        """Add a region (mask computed from its geometry); it gets the next free colour."""
        if self.loaded_image is None:
            raise TissueInnError("open an image before drawing regions")
        self._region_counter += 1
        name = name or f"R{self._region_counter}"
        color = REGION_COLORS[(self._region_counter - 1) % len(REGION_COLORS)]
        region = Region(name, kind, dict(geometry), region_mask(kind, geometry, self.shape), color)
        self.regions[name] = region
        return region

    def update_region(self, name: str, geometry: Mapping[str, Any]) -> Region:
        region = self.regions[name]
        region.geometry = dict(geometry)
        region.mask = region_mask(region.kind, geometry, self.shape)
        return region

    def rename_region(self, old: str, new: str) -> Region:
        """Rename a region (e.g. "ischemic", "control"); its statistics follow the new name."""
        new = new.strip()
        if not new:
            raise TissueInnError("a region needs a name")
        if new != old and new in self.regions:
            raise TissueInnError(f"a region called {new!r} exists already; choose another name")
        region = self.regions[old]
        region.name = new
        self.regions = {(new if k == old else k): v for k, v in self.regions.items()}
        if old in self.region_samples:
            self.region_samples[new] = self.region_samples.pop(old)
        for row in self.region_stats:
            if row.get("region") == old:
                row["region"] = new
        return region

    def remove_region(self, name: str) -> None:
        self.regions.pop(name, None)
        self.region_samples.pop(name, None)
        self.region_stats = [r for r in self.region_stats if r.get("region") != name]

    def compute_regions(
        self, names: Sequence[str] | None = None, n_draws_per_pixel: int = 64, seed: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Generator[Progress, None, tuple[dict[str, np.ndarray], list[dict[str, Any]]]]:
        """Pooled posterior samples and statistics of regions (a generator; drive it in a worker)."""
        if not self.ready or self.model is None or self.loaded_image is None:
            raise TissueInnError(NOT_READY)
        chosen = [self.regions[n] for n in (list(self.regions) if names is None else names)]
        return regions.compute_regions(
            self.model.posterior, self.loaded_image.cube, chosen, n_draws_per_pixel,
            self.seed if seed is None else int(seed), self.maps, should_stop,
        )

    def accept_regions(self, pooled: Mapping[str, np.ndarray], rows: list[dict[str, Any]]) -> None:
        self.region_samples.update(pooled)
        names = set(pooled)
        self.region_stats = [r for r in self.region_stats if r.get("region") not in names] + list(rows)

    # ------------------------------------------------------------------ export
    def _export_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = dict(self.maps.attrs) if self.maps is not None else {}
        attrs.setdefault("model", self.model_name)
        attrs.setdefault("model_path", str(self.model_path) if self.model_path else "")
        attrs.setdefault("image", str(self.image_path) if self.image_path else "")
        return attrs

    def export_maps(
        self, path: str | os.PathLike, fmt: str | None = None, keys: Sequence[str] | None = None,
        force: bool = False, range_mode: str = "prior",
    ) -> list[Path]:
        """Write maps: ``hdf5`` / ``tiff`` (all selected keys in one file) or ``png`` (one file per key)."""
        if self.maps is None:
            raise TissueInnError("no maps yet; compute maps first")
        keys = list(keys) if keys else self.map_keys()
        images = {k: self.map_image(k) for k in keys}
        units = {k: self.map_unit(k) for k in keys}

        def style(k: str) -> tuple[str, float, float]:
            lo, hi = self.map_range(k, range_mode)
            return f"{k.replace('/', ' — ')}  ({self.model_name})", lo, hi

        out = export.write_maps(path, images, units, self._export_attrs(), self.maps.mask, fmt, force, style)
        self.maps_saved = True
        return out

    def histogram_rows(self, result: PixelResult | None = None, bins: int = 40) -> list[dict[str, Any]]:
        """CSV rows of the shown histograms: one row per parameter and bin."""
        result = result or self.pixel_result
        hists = self.histograms(result, bins)
        return export.histogram_rows(hists, self.units, result.request.row, result.request.col)

    def summary_rows(self, result: PixelResult | None = None) -> list[dict[str, Any]]:
        """CSV rows of the per-parameter summaries of a pixel posterior."""
        result = result or self.pixel_result
        if result is None:
            raise TissueInnError("no pixel posterior yet; click a pixel first")
        req = result.request
        prov = {"pixel_row": req.row, "pixel_col": req.col, "n_draws": req.n_draws, "seed": req.seed,
                "model": self.model_name, "image": str(self.image_path or "")}
        if req.snr is not None:
            prov["snr"] = req.snr
        return export.summary_rows(result.summaries, self.parameter_names, self.units, prov, result.ground_truth)

    def export_histograms_csv(self, path: str | os.PathLike, force: bool = False, bins: int = 40) -> list[Path]:
        """Write the current histograms (``path``) and the summaries (``<stem>_summary.csv``)."""
        if self.pixel_result is None:
            raise TissueInnError("no pixel posterior yet; click a pixel first")
        path = Path(path)
        summary = path.with_name(path.stem + "_summary.csv")
        return [
            export.write_rows_csv(path, self.histogram_rows(bins=bins), force=force),
            export.write_rows_csv(summary, self.summary_rows(), force=force),
        ]

    def export_region_stats_csv(self, path: str | os.PathLike, force: bool = False) -> Path:
        if not self.region_stats:
            raise TissueInnError("no region statistics yet; draw a region and compute its statistics")
        return export.write_rows_csv(path, self.region_stats, force=force)

    def default_export_path(self, kind: str) -> Path:
        """Where an export goes by default: next to the image, named after it."""
        px = None
        if kind.startswith("histograms") and self.pixel_result is not None:
            px = (self.pixel_result.request.row, self.pixel_result.request.col)
        return export.default_export_path(self.image_path, kind, px)

    # ------------------------------------------------------------------ latent explorer
    def n_latent(self) -> int:
        """Number of latent dimensions of the loaded model's network."""
        if self.model is None:
            raise TissueInnError("load a model first")
        return latent.n_latent(self.model.posterior)

    def latent_grid(
        self, spectrum: np.ndarray, dim_a: int = 0, dim_b: int | None = 1, extent: float = 3.0, n: int = 41
    ) -> latent.LatentGrid:
        """Run the network backwards on a grid over two latent dimensions (others 0) for one spectrum."""
        if self.model is None:
            raise TissueInnError("load a model first")
        return latent.latent_grid(self.model.posterior, spectrum, dim_a, dim_b, extent, n, self.snr)
