"""Streaming posterior maps of whole images.

Public API (used by the CLI and the GUI; keep stable):

``infer_image(posterior, cube, n_draws=1000, seed=0, roi_mask=None, tile_pixels=65536,
predictive="median", should_stop=None, stats=ALL_MAP_STATS, band_tol_nm=2.0, snr=None,
kind="exact", preview=False, gate="auto", on_disk=None)``
    A generator: yields :class:`~tissue_inn.progress.Progress` (``stage="infer"``, ``done``/``total``
    in pixels, ``message`` with rate and ETA, ``extra`` with ``eta_s``, ``rows_done``, ``pass``
    (``"preview"``, ``"exact"`` or ``"amortised"``), ``rows`` (the row block just written) and
    ``result``, the live :class:`MapResult` filling in place) and returns the :class:`MapResult`.
    ``kind="amortised"`` maps medians and 5/25/75/95 % quantiles (and IQR) with the bundle's
    amortised quantile network in one pass (``attrs["map_kind"]`` says which kind a map is);
    ``preview=True`` (exact maps) shows a whole-image first look within seconds, then refines
    (:mod:`tissue_inn.inference.map_engine`). ``snr``: the measurement's SNR (a number or an H × W
    map; None = the model's nominal SNR). Maps whose total size exceeds 512 MiB are streamed to a
    scratch file while computed (``on_disk``; :mod:`tissue_inn.io.maps_store`). ``cube`` is a :class:`~tissue_inn.io.cube.Cube` or an H × W × B array
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

    Cancelling: ``should_stop()`` is polled before every seed unit (≤ 64 pixels); when it returns
    True the generator raises :class:`tissue_inn.errors.Cancelled` whose ``partial`` attribute holds
    the :class:`MapResult` of the pixels finished so far (``complete=False``, ``mask`` = done pixels,
    NaN elsewhere). Closing the generator (``GeneratorExit``) just stops.

``MapResult`` (:mod:`~tissue_inn.inference.map_result`): ``maps`` (key → H × W float32, NaN where not
estimated), ``mask`` (H × W bool, True = estimated), ``kind``, ``explained`` (the gate's verdict or None), ``mask_reasons`` (reason → count), ``attrs`` (provenance: model name/sha256, source
file/sha256, draws, seed, device, timing …), ``units`` (key → unit), ``parameter_names``,
``stats``, ``complete``, ``rows_done``; ``save_hdf5(path, force=False)``.

Regions (:mod:`~tissue_inn.inference.regions`):

``pooled_region(posterior, cube, mask, n_draws_per_pixel=64, seed=0, max_pixels=20000) -> [M, D]``
    Samples of all valid pixels in ``mask`` pooled together (the distribution of the parameter over
    the region *including* per-pixel uncertainty). Regions with more than ``max_pixels`` valid
    pixels are subsampled (deterministically from ``seed``).

``region_statistics(posterior, cube, regions, n_draws_per_pixel=64, seed=0, result=None) -> list[dict]``
    CSV rows (one per region and parameter): pooled mean/std/quantiles plus, with a
    :class:`MapResult`, the spatial mean and std of the pixel medians.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from tissue_inn.inference.map_engine import as_cube, run_map
from tissue_inn.inference.map_result import KIND_AMORTISED, KIND_EXACT, REASONS, MapResult, map_units
from tissue_inn.inference.regions import pooled_region, region_statistics
from tissue_inn.inference.summaries import ALL_MAP_STATS
from tissue_inn.progress import Progress

__all__ = ["MapResult", "infer_image", "pooled_region", "region_statistics", "map_units", "REASONS",
           "KIND_EXACT", "KIND_AMORTISED", "as_cube"]


def infer_image(
    posterior,
    cube: Any,
    n_draws: int = 1000,
    seed: int = 0,
    roi_mask: np.ndarray | None = None,
    tile_pixels: int = 65536,
    predictive: str | None = "median",
    should_stop: Callable[[], bool] | None = None,
    stats: tuple[str, ...] | list[str] = ALL_MAP_STATS,
    band_tol_nm: float = 2.0,
    snr: Any = None,
    kind: str = KIND_EXACT,
    preview: bool = False,
    gate: Any = "auto",
    on_disk: bool | None = None,
) -> Generator[Progress, None, MapResult]:
    """Map posterior statistics over an image (generator; see the module docstring).

    ``posterior`` is a :class:`~tissue_inn.inference.posterior.Posterior`; ``gate`` a
    :class:`~tissue_inn.inference.misfit.MisfitGate`, None (no verdicts) or ``"auto"`` (the card's).
    """
    return (yield from run_map(
        posterior, cube, n_draws=n_draws, seed=seed, roi_mask=roi_mask, tile_pixels=tile_pixels,
        predictive=predictive, should_stop=should_stop, stats=tuple(stats), band_tol_nm=band_tol_nm, snr=snr,
        kind=kind, preview=preview, gate=gate, on_disk=on_disk,
    ))
