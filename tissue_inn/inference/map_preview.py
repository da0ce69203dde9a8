"""Row blocks of instant values: the amortised quantile network's, or a sparse grid of few draws.

Used by :mod:`tissue_inn.inference.map_engine` for amortised maps and for the preview pass of
progressive exact maps. Both write into a :class:`~tissue_inn.io.maps_store.MapStore` row block
``[K, rows, W]`` whose first ``len(stats) × D`` rows are the statistic maps (statistic-major).
"""

from __future__ import annotations

import numpy as np
import torch

from tissue_inn.inference.sampling import unit_generator
from tissue_inn.inference.summaries import summarize

__all__ = ["amortised_block", "sparse_preview_block", "PREVIEW_BLOCK", "PREVIEW_DRAWS"]

PREVIEW_BLOCK = 8  # sparse preview: one pixel per 8 × 8 block
PREVIEW_DRAWS = 32
_PREVIEW_SALT = 0x5EED_0F_B10C


_LEVEL = {"q05": 0, "q25": 1, "median": 2, "q75": 3, "q95": 4}


def _levels(stats: tuple[str, ...]) -> tuple[int, ...]:
    need = {_LEVEL[s] for s in stats if s in _LEVEL}
    if "iqr" in stats:
        need |= {1, 3}
    return tuple(sorted(need))


def _fill_quantiles(block: np.ndarray, stats: tuple[str, ...], n_par: int, q: np.ndarray, levels, rows, cols) -> None:
    """Write amortised quantiles ``q [n, D, len(levels)]`` of pixels ``(rows, cols)`` into a row block."""
    at = {lv: k for k, lv in enumerate(levels)}
    for si, s in enumerate(stats):
        if s in _LEVEL:
            vals = q[:, :, at[_LEVEL[s]]]
        elif s == "iqr":
            vals = q[:, :, at[3]] - q[:, :, at[1]]
        else:
            continue
        block[si * n_par : (si + 1) * n_par, rows, cols] = vals.T


def amortised_block(posterior, tile, valid, snr_tile, snr_value, block, stats, n_par) -> None:
    from tissue_inn.estimators.quantile_net import amortised_quantiles

    levels = _levels(stats)
    rows, cols = np.nonzero(valid)
    if rows.size == 0 or not levels:
        return
    dev = torch.device(posterior.device)
    y = torch.as_tensor(tile[rows, cols], dtype=torch.float64, device=dev)
    snr = snr_value if snr_tile is None else torch.as_tensor(snr_tile[rows, cols], dtype=torch.float64, device=dev)
    with torch.inference_mode():
        q = amortised_quantiles(posterior.estimator, posterior.amortised, y, snr, levels=levels, fast=True)
    _fill_quantiles(block, stats, n_par, q.cpu().numpy(), levels, rows, cols)


def sparse_preview_block(posterior, tile, valid, snr_tile, snr_value, block, stats, n_par, seed, r0, pv,
                          should_stop) -> None:
    """One pixel per PREVIEW_BLOCK² block (its first valid pixel), PREVIEW_DRAWS draws, painted over the block."""
    dev = torch.device(posterior.device)
    rows_n, w = valid.shape
    b = PREVIEW_BLOCK
    for br in range(0, rows_n, b):
        if should_stop is not None and should_stop():
            return
        picks, spans = [], []
        for bc in range(0, w, b):
            sub = valid[br : br + b, bc : bc + b]
            if not sub.any():
                continue
            rr, cc = np.argwhere(sub)[0]
            picks.append((br + rr, bc + cc))
            spans.append((br, bc))
        if not picks:
            continue
        pr, pc = np.array(picks).T
        y = torch.as_tensor(tile[pr, pc], dtype=torch.float64, device=dev)
        snr = None if snr_tile is None else torch.as_tensor(snr_tile[pr, pc], dtype=torch.float64, device=dev)
        gen = unit_generator(seed ^ _PREVIEW_SALT, r0 + br, 0)
        samples = posterior.sample_unit(y, PREVIEW_DRAWS, gen, snr=snr if snr is not None else snr_value)
        red = summarize(samples, pv, stats)
        vals = torch.stack([red[s] for s in stats]).to(torch.float32).cpu().numpy()  # [S, n, D]
        for k, (sr, sc) in enumerate(spans):
            sub_valid = valid[sr : sr + b, sc : sc + b]
            for si in range(len(stats)):
                for d in range(n_par):
                    view = block[si * n_par + d, sr : sr + b, sc : sc + b]
                    view[sub_valid] = vals[si, k, d]
