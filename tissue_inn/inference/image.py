"""Streaming posterior maps of whole images.

Public API (used by the CLI and the GUI; keep stable):

``infer_image(posterior, cube, n_draws=1000, seed=0, roi_mask=None, tile_pixels=65536,
predictive="median", should_stop=None, stats=ALL_MAP_STATS, band_tol_nm=2.0)``
    A generator: yields :class:`~tissue_inn.progress.Progress` (``stage="infer"``, ``done``/``total``
    in pixels, ``message`` with rate and ETA, ``extra`` with ``eta_s``, ``rows_done``) and returns a
    :class:`MapResult`. ``cube`` is a :class:`~tissue_inn.io.cube.Cube` or an H × W × B array
    (then its bands are taken to be the model's, in order). The image is read in row strips of
    ``max(1, tile_pixels // W)`` rows; each strip's pixels are sampled in *seed units* (runs of
    ``posterior.unit_pixels(n_draws)`` pixels of one row, each with its own generator from
    ``(seed, row, unit)``) and reduced to statistics on the device right away; the samples are never
    kept. Hence the maps do not depend on ``tile_pixels``, the ROI or other pixels' validity: a
    pixel's draws depend only on its own spectrum, its position, ``seed``, ``n_draws`` and
    ``posterior.max_batch_elements``. Invalid pixels inside a unit are replaced by a placeholder
    spectrum for the network call and discarded.

    Statistics ``stats``: any of mean, median, map, std, q05, q25, q75, q95, iqr, contraction,
    multimodality (definitions: :mod:`tissue_inn.inference.summaries`); maps are keyed
    ``"<parameter>/<stat>"``. With ``predictive="median"`` the posterior median of every pixel is
    re-simulated with the card's forward model and ``"predictive/residual"`` holds the relative
    spectral residual (:func:`tissue_inn.inference.posterior.relative_residual`): a "does the model
    explain this pixel" map. ``predictive=None`` skips it (the re-simulation costs one forward
    solve per pixel). When the model's card carries a calibrated misfit gate
    (:mod:`tissue_inn.inference.misfit`) the residual comes from its forward surrogate (microseconds
    per pixel) and two more maps are made: ``"misfit/score"`` (> 1: not explained at the gate's 1 %
    false-alarm level) and ``"misfit/explained"`` (1 explained, 0 not, NaN not estimated), judged
    at ``snr`` (default: the model's nominal SNR); ``attrs["misfit_gate"]`` records the level, the
    SNR and the count of pixels not explained. Bands are matched with
    :func:`~tissue_inn.io.bands.match_bands` (a mismatch raises ``BandMismatchError`` naming both
    lists). Pixels failing
    :func:`~tissue_inn.io.pixels.valid_mask` (NaN, ≤ 0, saturated, > 1) are NaN in every map and
    counted in ``MapResult.mask_reasons``; pixels outside ``roi_mask`` are NaN and counted as
    ``outside_roi``.

    Cancelling: ``should_stop()`` is polled before every image row; when it returns True the
    generator raises :class:`tissue_inn.errors.Cancelled` whose ``partial`` attribute holds the
    :class:`MapResult` of the rows finished so far (``complete=False``). Closing the generator
    (``GeneratorExit``) just stops.

``MapResult``: ``maps`` (key → H × W float32, NaN where not estimated), ``mask`` (H × W bool, True
= estimated), ``mask_reasons`` (reason → count), ``attrs`` (provenance: model name/sha256, source
file/sha256, draws, seed, device, timing …), ``units`` (key → unit), ``parameter_names``,
``stats``, ``complete``, ``rows_done``; ``save_hdf5(path, force=False)``.

``pooled_region(posterior, cube, mask, n_draws_per_pixel=64, seed=0, max_pixels=20000) -> [M, D]``
    Samples of all valid pixels in ``mask`` pooled together (the distribution of the parameter over
    the region *including* per-pixel uncertainty). Regions with more than ``max_pixels`` valid
    pixels are subsampled (deterministically from ``seed``).

``region_statistics(posterior, cube, regions, n_draws_per_pixel=64, seed=0, result=None) -> list[dict]``
    CSV rows (one per region and parameter): pooled mean/std/quantiles plus, with a
    :class:`MapResult`, the spatial mean and std of the pixel medians.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tissue_inn import __version__
from tissue_inn.errors import Cancelled, TissueInnError
from tissue_inn.inference.misfit import gate_for
from tissue_inn.inference.sampling import PREDICTIVE_N_QUAD, relative_residual, unit_generator
from tissue_inn.inference.summaries import ALL_MAP_STATS, quantiles_sorted, stat_unit, summarize
from tissue_inn.io.bands import match_bands
from tissue_inn.io.cube import Cube
from tissue_inn.io.pixels import valid_mask
from tissue_inn.progress import Progress, RateEstimator

if TYPE_CHECKING:  # the posterior calls this module, never the other way round at run time
    from tissue_inn.inference.posterior import Posterior

__all__ = ["MapResult", "infer_image", "pooled_region", "region_statistics", "map_units", "REASONS"]

REASONS = ("nan", "non_positive", "saturated", "above_max", "outside_roi")
_PLACEHOLDER_REFLECTANCE = 0.2  # stands in for invalid pixels inside a seed unit (results discarded)
_PROGRESS_EVERY_S = 0.5


@dataclass
class MapResult:
    """Posterior maps of one image (see the module docstring)."""

    maps: dict[str, np.ndarray]
    mask: np.ndarray
    mask_reasons: dict[str, int]
    attrs: dict[str, Any]
    units: dict[str, str]
    parameter_names: tuple[str, ...]
    stats: tuple[str, ...]
    complete: bool = True
    rows_done: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    def save_hdf5(self, path, force: bool = False):
        """Write maps, mask and provenance with :func:`tissue_inn.io.maps.write_maps_hdf5` (atomic)."""
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


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _as_cube(cube: Any) -> Cube:
    if isinstance(cube, Cube):
        return cube
    arr = np.asarray(cube)
    if arr.ndim != 3:
        raise TissueInnError(f"image must be H × W × bands, got shape {arr.shape}")
    return Cube(data=arr.astype(np.float32, copy=False))


def _slim_card(card: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in card.items() if not str(k).startswith("_")}
    if isinstance(out.get("training"), dict):
        out["training"] = {k: v for k, v in out["training"].items() if k != "history"}
    w = out.get("weights")
    if isinstance(w, dict):
        out["weights"] = {k: v for k, v in w.items() if k != "tensors"}
    return out


def infer_image(
    posterior: Posterior,
    cube: Any,
    n_draws: int = 1000,
    seed: int = 0,
    roi_mask: np.ndarray | None = None,
    tile_pixels: int = 65536,
    predictive: str | None = "median",
    should_stop: Callable[[], bool] | None = None,
    stats: tuple[str, ...] | list[str] = ALL_MAP_STATS,
    band_tol_nm: float = 2.0,
    snr: float | None = None,
) -> Generator[Progress, None, MapResult]:
    """Map posterior statistics over an image (generator; see the module docstring)."""
    t_start = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    cube = _as_cube(cube)
    stats = tuple(stats)
    unknown = set(stats) - set(ALL_MAP_STATS)
    if unknown or not stats:
        raise ValueError(f"stats must be a non-empty subset of {list(ALL_MAP_STATS)}; unknown: {sorted(unknown)}")
    if predictive not in (None, "none", "median"):
        raise ValueError(f"predictive must be 'median' or None, got {predictive!r}")
    do_pred = predictive == "median"
    if do_pred and not posterior.has_forward_model:
        raise TissueInnError(
            "the model card records no tissue/camera, so pixels cannot be re-simulated; "
            "turn the predictive check off (--predictive none)"
        )
    n_draws = int(n_draws)
    if n_draws < 2:
        raise ValueError("n_draws must be ≥ 2")
    h, w, _ = cube.shape
    band_idx = match_bands(cube, posterior.band_centers_nm, band_tol_nm)
    roi = None
    if roi_mask is not None:
        roi = np.asarray(roi_mask, dtype=bool)
        if roi.shape != (h, w):
            raise TissueInnError(f"ROI mask has shape {roi.shape}; the image is {h} × {w}")
    names = posterior.parameter_names
    n_par = len(names)
    tile_rows = max(1, int(tile_pixels) // max(w, 1))
    up = posterior.unit_pixels(n_draws)
    n_units = math.ceil(w / up)
    dev = torch.device(posterior.device)
    pv = torch.as_tensor(posterior.prior_variance, dtype=torch.float64, device=dev)
    red_stats = stats + (("median",) if do_pred and "median" not in stats else ())

    store = np.full((len(stats), n_par, h, w), np.nan, dtype=np.float32)
    maps: dict[str, np.ndarray] = {
        f"{p}/{s}": store[si, di] for si, s in enumerate(stats) for di, p in enumerate(names)
    }
    residual = np.full((h, w), np.nan, dtype=np.float32) if do_pred else None
    if residual is not None:
        maps["predictive/residual"] = residual
    gate = gate_for(posterior) if do_pred else None
    gate_snr = float(snr if snr is not None else (getattr(posterior.estimator, "nominal_snr", None) or 20.0))
    if gate is not None:
        maps["misfit/score"] = misfit_score = np.full((h, w), np.nan, dtype=np.float32)
        maps["misfit/explained"] = misfit_explained = np.full((h, w), np.nan, dtype=np.float32)
    mask = np.zeros((h, w), dtype=bool)
    reasons = dict.fromkeys(REASONS, 0)
    total = h * w
    rate = RateEstimator(total)
    last_report = time.monotonic()
    t_network = t_pred = 0.0
    placeholder = torch.full((len(band_idx),), _PLACEHOLDER_REFLECTANCE, dtype=torch.float64, device=dev)

    attrs: dict[str, Any] = {
        "tissue_inn_version": __version__,
        "created": started,
        **posterior.provenance(),
        "source_path": None if cube.source_path is None else str(cube.source_path),
        "source_format": cube.metadata.get("format"),
        "source_dataset": cube.metadata.get("dataset"),
        "cube_shape": list(cube.shape),
        "cube_wavelengths_nm": None if cube.wavelengths_nm is None else [float(v) for v in cube.wavelengths_nm],
        "band_indices": [int(i) for i in band_idx],
        "model_band_centers_nm": [float(v) for v in posterior.band_centers_nm],
        "n_draws": n_draws,
        "seed": int(seed),
        "seeding": "torch.Generator per (seed, row, unit) seeded by SplitMix64; unit = "
        f"{up} consecutive pixels of a row",
        "unit_pixels": up,
        "tile_rows": tile_rows,
        "stats": list(stats),
        "parameter_names": list(names),
        "parameter_units": list(posterior.parameter_units),
        "prior_bounds": [[None if not math.isfinite(v) else float(v) for v in row] for row in posterior.prior_bounds],
        "prior_variance": [None if not math.isfinite(v) else float(v) for v in posterior.prior_variance],
        "predictive": "median" if do_pred else "none",
        "predictive_n_quad": PREDICTIVE_N_QUAD if do_pred and gate is None else None,
        "misfit_gate": None if gate is None else {
            "alpha": gate.alpha, "snr": gate_snr, "calibrated_snr_range": list(gate.snr_range),
            "residual_engine": gate.section.get("residual_engine"), "definitions": "tissue_inn.inference.misfit"},
        "validity": {"r_min": posterior.r_min, "r_max": posterior.r_max, "saturation": cube.saturation},
        "roi": None if roi is None else {"pixels": int(roi.sum()), "bbox_rows_cols": _bbox(roi)},
        "cube_warnings": list(cube.metadata.get("warnings", [])),
        "model_card": _slim_card(posterior.card),
    }

    def result(complete: bool, rows_done: int) -> MapResult:
        seconds = time.monotonic() - t_start
        n_est = int(mask.sum())
        a = dict(attrs)
        a.update(
            mask_reasons=dict(reasons),
            pixels_total=total,
            pixels_estimated=n_est,
            rows_done=rows_done,
            complete=complete,
            seconds=round(seconds, 3),
            seconds_network_and_reduce=round(t_network - t_pred, 3),
            seconds_predictive=round(t_pred, 3),
            posterior_samples=n_est * n_draws,
            samples_per_second=(n_est * n_draws / (t_network - t_pred)) if t_network > t_pred else None,
        )
        if gate is not None:
            a["misfit_gate"] = dict(a["misfit_gate"], pixels_not_explained=int(np.sum(misfit_explained == 0)))
        units = map_units(names, posterior.parameter_units, stats, do_pred)
        if gate is not None:
            units.update({"misfit/score": "1 (> 1: not explained)", "misfit/explained": "1 (1 explained, 0 not)"})
        if cube.source_path is not None:
            try:
                a["source_sha256"] = cube.source_sha256
            except TissueInnError:
                a["source_sha256"] = None
        return MapResult(
            maps=maps,
            mask=mask,
            mask_reasons=dict(reasons),
            attrs=a,
            units=units,
            parameter_names=tuple(names),
            stats=stats,
            complete=complete,
            rows_done=rows_done,
        )

    def report(done: int, rows_done: int, note: str = "") -> Progress:
        r = rate.rate(done)
        eta = rate.eta_s(done)
        msg = f"{r:,.0f} px/s, ETA {_fmt_eta(eta)}" + (f" ({note})" if note else "")
        return Progress("infer", done, total, msg, {"eta_s": eta, "rows_done": rows_done, "pixels_per_s": r})

    yield report(0, 0)
    done = 0
    for r0 in range(0, h, tile_rows):
        r1 = min(h, r0 + tile_rows)
        tile, valid, tile_reasons = _read_tile(cube, r0, r1, w, band_idx, roi, posterior)
        for k, v in tile_reasons.items():
            reasons[k] += v
        tile_t = torch.as_tensor(tile, dtype=torch.float64, device=dev)
        valid_t = torch.as_tensor(valid, device=dev)
        for rr in range(r0, r1):
            if should_stop is not None and should_stop():
                exc = Cancelled(f"image inference stopped after {rr} of {h} rows")
                exc.partial = result(False, rr)
                raise exc
            i = rr - r0
            if not valid[i].any():
                continue
            t0 = time.monotonic()
            for u in range(n_units):
                c0, c1 = u * up, min(w, (u + 1) * up)
                need = valid[i, c0:c1]
                if not need.any():
                    continue
                y_unit = torch.where(valid_t[i, c0:c1, None], tile_t[i, c0:c1], placeholder)
                samples = posterior.sample_unit(y_unit, n_draws, unit_generator(seed, rr, u))
                red = summarize(samples, pv, red_stats)
                block = torch.stack([red[s] for s in stats]).to(torch.float32).cpu().numpy()  # [S, P, D]
                cols = np.nonzero(need)[0]
                store[:, :, rr, c0 + cols] = block[:, cols, :].transpose(0, 2, 1)
                if do_pred:
                    cols_t = torch.as_tensor(cols, device=dev)
                    med = red["median"][cols_t]
                    t1 = time.monotonic()
                    if gate is not None:  # surrogate residual + prior-edge mass, calibrated verdict
                        g = gate.score_tensor(tile_t[i, c0 + cols], samples[cols_t], gate_snr, med)
                        res = g["residual"]
                        misfit_score[rr, c0 + cols] = g["score"].to(torch.float32).cpu().numpy()
                        misfit_explained[rr, c0 + cols] = g["explained"].to(torch.float32).cpu().numpy()
                    else:
                        with torch.inference_mode():
                            y_sim = posterior.forward_model().bands(med)
                        res = relative_residual(y_sim, tile_t[i, c0 + cols], posterior.scale_free)
                    residual[rr, c0 + cols] = res.to(torch.float32).cpu().numpy()
                    t_pred += time.monotonic() - t1
                mask[rr, c0 + cols] = True
            t_network += time.monotonic() - t0
            if time.monotonic() - last_report > _PROGRESS_EVERY_S:
                last_report = time.monotonic()
                yield report(done + (rr + 1 - r0) * w, rr + 1)
        done += (r1 - r0) * w
        last_report = time.monotonic()
        yield report(done, r1)
    return result(True, h)


def _bbox(m: np.ndarray) -> list[int] | None:
    rows = np.nonzero(m.any(axis=1))[0]
    cols = np.nonzero(m.any(axis=0))[0]
    if rows.size == 0:
        return None
    return [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]


def _read_tile(
    cube: Cube, r0: int, r1: int, w: int, band_idx: np.ndarray, roi: np.ndarray | None, posterior: Posterior
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Model-band tile ``[rows, W, B]``, validity (inside the ROI) and reason counts (ROI pixels only)."""
    raw = None
    if cube.saturation is not None and cube.raw is not None:
        tile_full, _, _ = cube.valid_tile(r0, r1, 0, w)
        raw = np.asarray(cube.raw[r0:r1, 0:w, :], dtype=np.float32)[..., band_idx]
    else:
        tile_full = cube.tile(r0, r1, 0, w)
    tile = np.ascontiguousarray(tile_full[..., band_idx])
    inroi = np.ones(tile.shape[:2], dtype=bool) if roi is None else roi[r0:r1]
    check = tile if roi is None else np.where(inroi[..., None], tile, np.float32(_PLACEHOLDER_REFLECTANCE))
    if raw is not None and roi is not None:
        raw = np.where(inroi[..., None], raw, np.float32(0))
    valid, reasons = valid_mask(
        check, r_min=posterior.r_min, r_max=posterior.r_max, saturation=cube.saturation, raw=raw
    )
    valid &= inroi
    reasons = dict(reasons)
    reasons["outside_roi"] = int((~inroi).sum())
    return tile, valid, reasons


# ----------------------------------------------------------------------------------------------- regions


def pooled_region(
    posterior: Posterior,
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


def _region_spectra(posterior: Posterior, cube: Any, mask: np.ndarray, band_tol_nm: float):
    cube = _as_cube(cube)
    h, w, _ = cube.shape
    m = np.asarray(mask, dtype=bool)
    if m.shape != (h, w):
        raise TissueInnError(f"region mask has shape {m.shape}; the image is {h} × {w}")
    band_idx = match_bands(cube, posterior.band_centers_nm, band_tol_nm)
    rows = np.nonzero(m.any(axis=1))[0]
    if rows.size == 0:
        return np.zeros((0, len(band_idx))), 0
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    tile, valid, _ = _read_tile(cube, r0, r1, w, band_idx, m, posterior)
    n_in = int(m.sum())
    return tile[valid].astype(np.float64), n_in


def region_statistics(
    posterior: Posterior,
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
            if result is not None and f"{pname}/median" in result.maps:
                vals = result.maps[f"{pname}/median"][np.asarray(m, bool) & result.mask]
                row["median_map_mean"] = float(np.mean(vals)) if vals.size else None
                row["median_map_std"] = float(np.std(vals)) if vals.size else None
            rows.append(row)
    return rows
