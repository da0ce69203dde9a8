"""The map generator behind :func:`tissue_inn.inference.image.infer_image` (the CLI and the GUI drive it).

Passes, in order (each yields :class:`~tissue_inn.progress.Progress` whose ``extra`` holds ``pass``,
``rows`` (the row block just written), ``rows_done`` and ``result``, the live
:class:`~tissue_inn.inference.map_result.MapResult` whose maps fill in place):

``preview`` (``preview=True``, exact maps only)
    A whole-image first look within seconds: the bundle's amortised quantile network when it has one
    (median and quantile maps), otherwise one pixel per 8 × 8 block with 32 draws, painted over its
    block. Preview pixels are marked in ``result.preview_mask``; the exact pass overwrites them.
``exact``
    Row blocks of the INN's draws, reduced to statistics where they were drawn (see ``image.py``).
``amortised`` (``kind="amortised"``)
    The quantile network over the whole image, tile by tile: medians and 5/25/75/95 % quantiles only.

Cancelling: ``should_stop()`` is polled before every seed unit (≤ 64 pixels; well under a second),
then :class:`~tissue_inn.errors.Cancelled` is raised with ``partial``: the result so far, ``complete
= False``, ``mask`` = the pixels whose exact maps are done, NaN elsewhere (preview values dropped).

The misfit gate (:mod:`tissue_inn.inference.misfit`, when the card has one and the residual is on)
scores every pixel of the exact pass from its draws: ``"misfit/score"``, ``"misfit/explained"``.

One concept, the map generator (≈ 420 lines, kept whole): :func:`run_map` is one generator whose passes
share the live result, the seed units, the cancel point and the progress reports; its row blocks
(:mod:`~tissue_inn.inference.map_preview`) and results (:mod:`~tissue_inn.inference.map_result`) are
already modules of their own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch

from tissue_inn import __version__
from tissue_inn.errors import Cancelled, TissueInnError
from tissue_inn.inference.map_preview import amortised_block, sparse_preview_block
from tissue_inn.inference.map_result import (
    AMORTISED_STATS,
    KIND_AMORTISED,
    KIND_EXACT,
    MISFIT_UNITS,
    REASONS,
    MapResult,
    map_units,
)
from tissue_inn.inference.sampling import PREDICTIVE_N_QUAD, relative_residual, unit_generator
from tissue_inn.inference.summaries import ALL_MAP_STATS, summarize
from tissue_inn.io.bands import match_bands
from tissue_inn.io.cube import Cube
from tissue_inn.io.maps_store import MapStore
from tissue_inn.io.pixels import valid_mask
from tissue_inn.progress import Progress, RateEstimator

__all__ = ["run_map", "as_cube", "read_tile"]

_PLACEHOLDER_REFLECTANCE = 0.2  # stands in for invalid pixels inside a seed unit (results discarded)
_PROGRESS_EVERY_S = 0.5
BATCH_ROWS = 16384
"""(pixel × draw) rows per network call when seed units are merged (small ``n_draws``): fewer, larger
calls; small enough that a cancel is answered well within a second."""


def as_cube(cube: Any) -> Cube:
    if isinstance(cube, Cube):
        return cube
    arr = np.asarray(cube)
    if arr.ndim != 3:
        raise TissueInnError(f"image must be H × W × bands, got shape {arr.shape}")
    return Cube(data=arr.astype(np.float32, copy=False))


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _slim_card(card) -> dict[str, Any]:
    out = {k: v for k, v in card.items() if not str(k).startswith("_")}
    if isinstance(out.get("training"), dict):
        out["training"] = {k: v for k, v in out["training"].items() if k != "history"}
    for key in ("weights", "amortised"):
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if k not in ("tensors", "history")}
    return out


def _bbox(m: np.ndarray) -> list[int] | None:
    rows = np.nonzero(m.any(axis=1))[0]
    cols = np.nonzero(m.any(axis=0))[0]
    if rows.size == 0:
        return None
    return [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]


def read_tile(cube: Cube, r0: int, r1: int, w: int, band_idx: np.ndarray, roi: np.ndarray | None, posterior):
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
    valid, reasons = valid_mask(check, r_min=posterior.r_min, r_max=posterior.r_max, saturation=cube.saturation,
                                raw=raw)
    valid &= inroi
    reasons = dict(reasons)
    reasons["outside_roi"] = int((~inroi).sum())
    return tile, valid, reasons


def _snr_map(snr: Any, h: int, w: int, posterior) -> tuple[np.ndarray | None, float]:
    """``(per-pixel SNR map or None, scalar SNR for the record and the gate)``."""
    nominal = posterior.nominal_snr or 20.0
    if snr is None:
        return None, float(nominal)
    if np.ndim(snr) == 0:
        v = float(snr)
        if not (math.isfinite(v) and v > 0):
            raise TissueInnError(f"SNR {snr!r} must be a positive number")
        return None, v
    arr = np.asarray(snr, dtype=np.float64)
    if arr.shape != (h, w):
        raise TissueInnError(f"the SNR map has shape {arr.shape}; the image is {h} × {w}")
    ok = np.isfinite(arr) & (arr > 0)
    if not ok.any():
        raise TissueInnError("the SNR map holds no positive value")
    med = float(np.median(arr[ok]))
    return np.where(ok, arr, med), med


def run_map(
    posterior,
    cube: Any,
    *,
    n_draws: int,
    seed: int,
    roi_mask: np.ndarray | None,
    tile_pixels: int,
    predictive: str | None,
    should_stop: Callable[[], bool] | None,
    stats: tuple[str, ...],
    band_tol_nm: float,
    snr: Any = None,
    kind: str = KIND_EXACT,
    preview: bool = False,
    gate: Any = "auto",
    on_disk: bool | None = None,
) -> Generator[Progress, None, MapResult]:
    """The map generator (module docstring; arguments as :func:`~tissue_inn.inference.image.infer_image`)."""
    t_start = time.monotonic()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    cube = as_cube(cube)
    stats = tuple(stats)
    if kind not in (KIND_EXACT, KIND_AMORTISED):
        raise ValueError(f"kind must be {KIND_EXACT!r} or {KIND_AMORTISED!r}, got {kind!r}")
    unknown = set(stats) - set(ALL_MAP_STATS)
    if unknown or not stats:
        raise ValueError(f"stats must be a non-empty subset of {list(ALL_MAP_STATS)}; unknown: {sorted(unknown)}")
    if predictive not in (None, "none", "median"):
        raise ValueError(f"predictive must be 'median' or None, got {predictive!r}")
    dropped: tuple[str, ...] = ()
    if kind == KIND_AMORTISED:
        if not posterior.has_amortised:
            raise TissueInnError(f"model {posterior.model_name} has no amortised summary network; "
                                 "make exact maps instead")
        dropped = tuple(s for s in stats if s not in AMORTISED_STATS)
        stats = tuple(s for s in stats if s in AMORTISED_STATS) or ("median", "iqr")
        predictive = None  # the residual needs the draws' median re-simulated: exact maps only
    do_pred = predictive == "median"
    if gate == "auto":
        gate = None
        if do_pred:
            from tissue_inn.inference.misfit import gate_for  # lazy: the gate builds on the posterior

            gate = gate_for(posterior)
    if do_pred and gate is None and not posterior.has_forward_model:
        raise TissueInnError("the model card records no tissue/camera, so pixels cannot be re-simulated; "
                             "pass --predictive none")
    n_draws = int(n_draws)
    if kind == KIND_EXACT and n_draws < 2:
        raise ValueError("n_draws must be ≥ 2")
    h, w, _ = cube.shape
    band_idx = match_bands(cube, posterior.band_centers_nm, band_tol_nm)
    roi = None
    if roi_mask is not None:
        roi = np.asarray(roi_mask, dtype=bool)
        if roi.shape != (h, w):
            raise TissueInnError(f"ROI mask has shape {roi.shape}; the image is {h} × {w}")
    snr_map, snr_value = _snr_map(snr, h, w, posterior)
    names = posterior.parameter_names
    n_par = len(names)
    n_stat_keys = len(stats) * n_par
    tile_rows = max(1, int(tile_pixels) // max(w, 1))
    up = posterior.unit_pixels(n_draws) if kind == KIND_EXACT else 0
    n_units = math.ceil(w / up) if up else 0
    dev = torch.device(posterior.device)
    pv = torch.as_tensor(posterior.prior_variance, dtype=torch.float64, device=dev)
    red_stats = stats + (("median",) if (do_pred or gate is not None) and "median" not in stats else ())

    keys = [f"{p}/{s}" for s in stats for p in names]
    if do_pred:
        keys.append("predictive/residual")
    if gate is not None:
        keys += ["misfit/score", "misfit/explained"]
    k_res = keys.index("predictive/residual") if do_pred else -1
    k_score = keys.index("misfit/score") if gate is not None else -1
    store = MapStore(keys, (h, w), on_disk=on_disk)
    mask = np.zeros((h, w), dtype=bool)
    reasons = dict.fromkeys(REASONS, 0)
    total = h * w
    rate = RateEstimator(total)
    timing = {"network": 0.0, "predictive": 0.0}
    placeholder = torch.full((len(band_idx),), _PLACEHOLDER_REFLECTANCE, dtype=torch.float64, device=dev)
    units = map_units(names, posterior.parameter_units, stats, do_pred)
    if gate is not None:
        units.update(MISFIT_UNITS)

    attrs: dict[str, Any] = {
        "tissue_inn_version": __version__,
        "created": started,
        **posterior.provenance(),
        "map_kind": kind,
        "map_kind_note": "amortised quantile network (instant; medians and quantile intervals)"
        if kind == KIND_AMORTISED else "exact: statistics of the INN's posterior draws",
        "stats_not_in_amortised_maps": list(dropped),
        "source_path": None if cube.source_path is None else str(cube.source_path),
        "source_format": cube.metadata.get("format"),
        "source_dataset": cube.metadata.get("dataset"),
        "cube_shape": list(cube.shape),
        "cube_wavelengths_nm": None if cube.wavelengths_nm is None else [float(v) for v in cube.wavelengths_nm],
        "band_indices": [int(i) for i in band_idx],
        "model_band_centers_nm": [float(v) for v in posterior.band_centers_nm],
        "n_draws": n_draws if kind == KIND_EXACT else None,
        "seed": int(seed),
        "seeding": "torch.Generator per (seed, row, unit) seeded by SplitMix64; unit = "
        f"{up} consecutive pixels of a row" if kind == KIND_EXACT else "deterministic (no draws)",
        "unit_pixels": up,
        "tile_rows": tile_rows,
        "stats": list(stats),
        "parameter_names": list(names),
        "parameter_units": list(posterior.parameter_units),
        "prior_bounds": [[None if not math.isfinite(v) else float(v) for v in row] for row in posterior.prior_bounds],
        "prior_variance": [None if not math.isfinite(v) else float(v) for v in posterior.prior_variance],
        "snr": "per-pixel map" if snr_map is not None else snr_value,
        "snr_given": snr is not None,
        "predictive": "median" if do_pred else "none",
        "predictive_n_quad": PREDICTIVE_N_QUAD if do_pred and gate is None else None,
        "misfit_gate": None if gate is None else {
            "alpha": gate.alpha, "snr": snr_value, "calibrated_snr_range": list(gate.snr_range),
            "residual_engine": gate.section.get("residual_engine"), "definitions": "tissue_inn.inference.misfit"},
        "validity": {"r_min": posterior.r_min, "r_max": posterior.r_max, "saturation": cube.saturation},
        "roi": None if roi is None else {"pixels": int(roi.sum()), "bbox_rows_cols": _bbox(roi)},
        "cube_warnings": list(cube.metadata.get("warnings", [])),
        "model_card": _slim_card(posterior.card),
        "maps_on_disk_while_computing": store.on_disk,
    }
    live = MapResult(maps=store, mask=mask, mask_reasons=reasons, attrs=attrs, units=units,
                     parameter_names=tuple(names), stats=stats, complete=False, rows_done=0)
    preview_mask = np.zeros((h, w), dtype=bool) if (preview and kind == KIND_EXACT) else None
    live.preview_mask = preview_mask

    def finish(complete: bool, rows_done: int) -> MapResult:
        if preview_mask is not None and preview_mask.any():
            store.clear_outside(mask)
            preview_mask[:] = False
        seconds = time.monotonic() - t_start
        n_est = int(mask.sum())
        t_net = timing["network"] - timing["predictive"]
        attrs.update(
            mask_reasons=dict(reasons), pixels_total=total, pixels_estimated=n_est, rows_done=rows_done,
            complete=complete, seconds=round(seconds, 3), seconds_network_and_reduce=round(t_net, 3),
            seconds_predictive=round(timing["predictive"], 3),
            posterior_samples=n_est * n_draws if kind == KIND_EXACT else 0,
            samples_per_second=(n_est * n_draws / t_net) if (t_net > 0 and kind == KIND_EXACT) else None,
        )
        if gate is not None:
            expl = np.asarray(store["misfit/explained"])
            attrs["misfit_gate"] = dict(attrs["misfit_gate"], pixels_not_explained=int(np.sum(expl == 0)))
        if cube.source_path is not None:
            try:
                attrs["source_sha256"] = cube.source_sha256
            except TissueInnError:
                attrs["source_sha256"] = None
        live.complete, live.rows_done, live.mask_reasons = complete, rows_done, dict(reasons)
        return live

    def report(done: int, rows_done: int, pass_name: str, rows: tuple[int, int]) -> Progress:
        r = rate.rate(done)
        eta = rate.eta_s(done)
        note = {"preview": "preview", "amortised": "amortised maps"}.get(pass_name, "")
        msg = f"{r:,.0f} px/s, ETA {_fmt_eta(eta)}" + (f" ({note})" if note else "")
        return Progress("infer", done, total, msg, {"eta_s": eta, "rows_done": rows_done, "pixels_per_s": r,
                                                    "pass": pass_name, "rows": rows, "result": live})

    def cancel(rows_done: int) -> Cancelled:
        exc = Cancelled(f"image inference stopped after {rows_done} of {h} rows; the finished pixels are kept")
        exc.partial = finish(False, rows_done)
        return exc

    def snr_for(r0: int, r1: int):
        return None if snr_map is None else snr_map[r0:r1]

    yield report(0, 0, "start", (0, 0))
    if kind == KIND_AMORTISED or preview_mask is not None:
        amortised = posterior.has_amortised
        for r0 in range(0, h, tile_rows):
            r1 = min(h, r0 + tile_rows)
            if should_stop is not None and should_stop():
                raise cancel(0)
            tile, valid, tile_reasons = read_tile(cube, r0, r1, w, band_idx, roi, posterior)
            if kind == KIND_AMORTISED:
                for k, v in tile_reasons.items():
                    reasons[k] += v
            block = store.row_block(r0, r1)
            t0 = time.monotonic()
            if amortised:
                amortised_block(posterior, tile, valid, snr_for(r0, r1), snr_value, block, stats, n_par)
            else:
                sparse_preview_block(posterior, tile, valid, snr_for(r0, r1), snr_value, block, stats, n_par,
                                      seed, r0, pv, should_stop)
            store.commit(r0, r1, block)
            timing["network"] += time.monotonic() - t0
            if kind == KIND_AMORTISED:
                mask[r0:r1] = valid
                live.rows_done = r1
                yield report(r1 * w, r1, "amortised", (r0, r1))
            else:
                preview_mask[r0:r1] = valid
                yield report(0, 0, "preview", (r0, r1))
        if kind == KIND_AMORTISED:
            return finish(True, h)

    done = 0
    last_report = time.monotonic()
    units_per_call = max(1, BATCH_ROWS // max(1, up * n_draws))
    for r0 in range(0, h, tile_rows):
        r1 = min(h, r0 + tile_rows)
        tile, valid, tile_reasons = read_tile(cube, r0, r1, w, band_idx, roi, posterior)
        for k, v in tile_reasons.items():
            reasons[k] += v
        tile_t = torch.as_tensor(tile, dtype=torch.float64, device=dev)
        valid_t = torch.as_tensor(valid, device=dev)
        snr_t = None if snr_map is None else torch.as_tensor(snr_map[r0:r1], dtype=torch.float64, device=dev)
        block = store.row_block(r0, r1)
        stat_view = block[:n_stat_keys].reshape(len(stats), n_par, r1 - r0, w)
        jobs = []  # seed units with something to estimate: (tile row, image row, unit, first column, columns)
        for i in range(r1 - r0):
            if valid[i].any():
                for u in range(n_units):
                    c0, c1 = u * up, min(w, (u + 1) * up)
                    cols = np.nonzero(valid[i, c0:c1])[0]
                    if cols.size:
                        jobs.append((i, r0 + i, u, c0, c1, cols))
        row_start = r0
        for b0 in range(0, len(jobs), units_per_call):
            if should_stop is not None and should_stop():
                store.commit(r0, r1, block)
                raise cancel(jobs[b0][1])
            batch = jobs[b0 : b0 + units_per_call]
            t0 = time.monotonic()
            y_b = torch.cat([torch.where(valid_t[i, c0:c1, None], tile_t[i, c0:c1], placeholder)
                             for i, _, _, c0, c1, _ in batch])
            snr_b = None
            if snr is not None:
                snr_b = snr_value if snr_t is None else torch.cat([snr_t[i, c0:c1] for i, _, _, c0, c1, _ in batch])
            samples = posterior.sample_units(y_b, n_draws, [unit_generator(seed, rr, u) for _, rr, u, _, _, _ in batch],
                                             [c1 - c0 for _, _, _, c0, c1, _ in batch], snr_b)
            offsets = np.cumsum([0] + [c1 - c0 for _, _, _, c0, c1, _ in batch[:-1]])
            sel = np.concatenate([off + cols for off, (*_, cols) in zip(offsets, batch)])
            ii = np.concatenate([np.full(cols.size, i) for i, *_, cols in batch])
            cc = np.concatenate([c0 + cols for _, _, _, c0, _, cols in batch])
            sel_t = torch.as_tensor(sel, device=dev)
            samples = samples[sel_t]  # the valid pixels only (placeholders dropped)
            red = summarize(samples, pv, red_stats)
            vals = torch.stack([red[s] for s in stats]).to(torch.float32).cpu().numpy()  # [S, M, D]
            stat_view[:, :, ii, cc] = vals.transpose(0, 2, 1)
            if do_pred:
                t1 = time.monotonic()
                med = red["median"]
                y_sel = tile_t[torch.as_tensor(ii, device=dev), torch.as_tensor(cc, device=dev)]
                if gate is not None:  # surrogate residual + prior-edge mass, calibrated verdict
                    g_snr = snr_value if snr_t is None else snr_t[torch.as_tensor(ii, device=dev),
                                                                  torch.as_tensor(cc, device=dev)]
                    g = gate.score_tensor(y_sel, samples, g_snr, med)
                    res = g["residual"]
                    block[k_score, ii, cc] = g["score"].to(torch.float32).cpu().numpy()
                    block[k_score + 1, ii, cc] = g["explained"].to(torch.float32).cpu().numpy()
                else:
                    with torch.inference_mode():
                        y_sim = posterior.forward_model().bands(med)
                    res = relative_residual(y_sim, y_sel, posterior.scale_free)
                block[k_res, ii, cc] = res.to(torch.float32).cpu().numpy()
                timing["predictive"] += time.monotonic() - t1
            mask[r0 + ii, cc] = True
            if preview_mask is not None:
                preview_mask[r0 + ii, cc] = False
            timing["network"] += time.monotonic() - t0
            last_row = batch[-1][1]
            finished = last_row + 1 if b0 + units_per_call >= len(jobs) or jobs[b0 + units_per_call][1] > last_row \
                else last_row
            live.rows_done = finished
            if time.monotonic() - last_report > _PROGRESS_EVERY_S and finished > row_start:
                last_report = time.monotonic()
                yield report(done + (finished - r0) * w, finished, "exact", (row_start, finished))
                row_start = finished
        live.rows_done = r1
        store.commit(r0, r1, block)
        done += (r1 - r0) * w
        last_report = time.monotonic()
        yield report(done, r1, "exact", (row_start, r1))
    return finish(True, h)
