"""Summaries of posterior samples: location, spread, quantiles, mode, contraction, multimodality.

Everything here is batched torch and works on any device, so an image can be reduced chunk by chunk
where the samples were drawn. Input layout is ``samples [P, n, D]`` (P spectra, n draws, D
parameters); every statistic comes back as ``[P, D]``.

Definitions (documented because users read the maps):
    mean, std       sample mean and standard deviation (n − 1 denominator).
    median, qXX     sample quantiles with linear interpolation between order statistics
                    (NumPy's default ``method="linear"``: position ``q · (n − 1)``).
    iqr             q75 − q25.
    map             mode of the posterior (the paper's MAP estimate): argmax of a histogram of the
                    samples over their central 99 % range with ``clamp(round(2 n^(1/3)), 8, 64)`` bins
                    (Rice rule), smoothed with the binomial kernel [1, 4, 6, 4, 1] / 16, refined by a
                    parabola through the peak bin and its neighbours.
    contraction     1 − var_post / var_prior (Betancourt's posterior contraction; 0 = the data taught
                    nothing, 1 = the parameter is pinned down). Can be slightly negative by noise.
    multimodality   in [0, 1): prominence of the strongest secondary peak of the smoothed histogram
                    relative to the main peak, after subtracting a 3σ counting-noise allowance
                    (σ² ≈ 0.27 · (h_peak + h_valley), 0.27 = Σ k² of the smoothing kernel). A peak's
                    prominence is its height minus the lowest point on the way to the main peak.
                    0 = unimodal (a flat or skewed posterior also scores ≈ 0); ≥ 0.3 = a clear
                    second mode (two equal, well separated modes score ≈ 0.8–1).
    n_peaks         (single pixel only) 1 + number of secondary peaks whose noise-corrected
                    prominence exceeds 10 % of the main peak.
    bimodality_coefficient  (single pixel only) Sarle's b = (skew² + 1) / (kurt_excess + 3 (n−1)² /
                    ((n−2)(n−3))); b > 5/9 hints at bimodality, but a uniform posterior also gives
                    5/9, so the maps use ``multimodality`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "VALUE_STATS",
    "SPREAD_STATS",
    "SCORE_STATS",
    "LOCATION_STATS",
    "ALL_MAP_STATS",
    "PIXEL_STATS",
    "stat_unit",
    "quantiles_sorted",
    "histogram_mode_multimodality",
    "summarize",
    "summarize_pixel",
    "bimodality_coefficient",
    "count_peaks",
]

# The one list of statistic names (the CLI, the maps, the workspace and the GUI read these).
VALUE_STATS = ("mean", "median", "map", "q05", "q16", "q25", "q75", "q84", "q95")
"""Statistics that are values of the parameter (its unit, inside its prior range)."""
SPREAD_STATS = ("std", "iqr")
"""Statistics that measure spread (the parameter's unit, from 0)."""
SCORE_STATS = ("contraction", "multimodality")
"""Unitless scores."""
LOCATION_STATS = tuple(s for s in VALUE_STATS if s not in ("q16", "q84"))
ALL_MAP_STATS = ("mean", "median", "map", "std", "q05", "q25", "q75", "q95", "iqr", "contraction", "multimodality")
"""Statistics an image map can hold (the default of ``infer_image`` and ``tissue-inn infer``)."""
PIXEL_STATS = (
    "mean", "median", "map", "std", "q05", "q16", "q25", "q75", "q84", "q95", "iqr", "contraction",
    "multimodality", "n_peaks",
)
"""Statistics of one clicked pixel (:func:`summarize_pixel` adds ``bimodality_coefficient``)."""
_QUANTILE_STATS = {"q05": 0.05, "q16": 0.16, "q25": 0.25, "median": 0.5, "q75": 0.75, "q84": 0.84, "q95": 0.95}
_EXTRA_STATS = ["q16", "q84", "n_peaks"]
_KERNEL = (1.0, 4.0, 6.0, 4.0, 1.0)
_KERNEL_SQ_SUM = sum(k * k for k in _KERNEL) / sum(_KERNEL) ** 2  # 70/256 ≈ 0.27
_NOISE_SIGMAS = 3.0


def stat_unit(stat: str, parameter_unit: str) -> str:
    """Unit of a statistic's value: ``"1"`` for the scores, the parameter's unit otherwise.

    >>> stat_unit("iqr", "mm"), stat_unit("contraction", "mm")
    ('mm', '1')
    """
    return "1" if stat in SCORE_STATS else parameter_unit


def quantiles_sorted(sorted_x: torch.Tensor, qs: Sequence[float]) -> torch.Tensor:
    """Quantiles along the last axis of an already sorted tensor → ``[len(qs), ...]`` (linear method)."""
    n = sorted_x.shape[-1]
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        out.append(sorted_x[..., lo] * (1.0 - frac) + sorted_x[..., hi] * frac)
    return torch.stack(out)


def _sort_last(x: torch.Tensor) -> torch.Tensor:
    """Sort along the last axis (NumPy on CPU: several times faster than torch's CPU sort for these shapes)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.detach().numpy(), axis=-1))
    return x.sort(dim=-1).values


def _n_bins(n: int) -> int:
    return int(min(64, max(8, round(2.0 * n ** (1.0 / 3.0)))))


def _smoothed_histogram(sorted_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smoothed histogram of each row of ``sorted_x [..., n]`` → (hist [..., nb], lo [...], width [...])."""
    n = sorted_x.shape[-1]
    nb = _n_bins(n)
    lo, hi = quantiles_sorted(sorted_x, (0.005, 0.995))
    width = hi - lo
    safe = torch.where(width > 0, width, torch.ones_like(width))
    t = (sorted_x - lo[..., None]) / safe[..., None] * nb
    inside = (t >= 0) & (t <= nb)
    idx = t.floor().clamp(0, nb - 1).long()
    hist = torch.zeros((*sorted_x.shape[:-1], nb), dtype=sorted_x.dtype, device=sorted_x.device)
    hist.scatter_add_(-1, idx, inside.to(sorted_x.dtype))
    flat = hist.reshape(-1, 1, nb)
    padded = torch.nn.functional.pad(flat, (2, 2), mode="replicate")
    kernel = torch.tensor(_KERNEL, dtype=hist.dtype, device=hist.device).reshape(1, 1, 5) / sum(_KERNEL)
    smooth = torch.nn.functional.conv1d(padded, kernel).reshape(hist.shape)
    return smooth, lo, width


def _prominence(smooth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise-corrected prominence of each bin w.r.t. the main peak → (prom [..., nb], peak index, hmax)."""
    nb = smooth.shape[-1]
    hmax, imax = smooth.max(dim=-1)
    k = torch.arange(nb, device=smooth.device)
    inf = torch.full_like(smooth, math.inf)
    right = torch.where(k >= imax[..., None], smooth, inf).cummin(dim=-1).values
    left = torch.where(k <= imax[..., None], smooth, inf).flip(-1).cummin(dim=-1).values.flip(-1)
    valley = torch.minimum(left, right)
    sigma = torch.sqrt(_KERNEL_SQ_SUM * (smooth + valley))
    prom = (smooth - valley - _NOISE_SIGMAS * sigma).clamp_min(0.0)
    return prom, imax, hmax


def _histogram_features(sorted_x: torch.Tensor, min_relative: float = 0.1):
    """Mode, multimodality score and number of significant peaks of each row of ``sorted_x [..., n]``."""
    smooth, lo, width = _smoothed_histogram(sorted_x)
    nb = smooth.shape[-1]
    prom, imax, hmax = _prominence(smooth)
    # parabolic refinement of the peak position
    left = smooth.gather(-1, (imax - 1).clamp(0, nb - 1)[..., None])[..., 0]
    right = smooth.gather(-1, (imax + 1).clamp(0, nb - 1)[..., None])[..., 0]
    denom = left - 2 * hmax + right
    safe = torch.where(denom < 0, denom, -torch.ones_like(denom))
    offset = torch.where(denom < 0, 0.5 * (left - right) / safe, torch.zeros_like(denom)).clamp(-0.5, 0.5)
    mode = lo + (imax.to(sorted_x.dtype) + 0.5 + offset) * width / nb
    degenerate = ~(width > 0)
    median = quantiles_sorted(sorted_x, (0.5,))[0]
    mode = torch.where(degenerate, median, mode)
    score = prom.max(dim=-1).values / hmax.clamp_min(1e-12)
    score = torch.where(degenerate, torch.zeros_like(score), score)
    neg = torch.full_like(smooth[..., :1], -math.inf)
    left_n = torch.cat([neg, smooth[..., :-1]], dim=-1)
    right_n = torch.cat([smooth[..., 1:], neg], dim=-1)
    is_peak = (smooth > left_n) & (smooth >= right_n) & (prom > min_relative * hmax[..., None])
    n_peaks = 1 + is_peak.sum(dim=-1)
    n_peaks = torch.where(degenerate, torch.ones_like(n_peaks), n_peaks)
    return mode, score, n_peaks


def histogram_mode_multimodality(sorted_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mode and multimodality score of each row of ``sorted_x [..., n]`` (see module docstring)."""
    mode, score, _ = _histogram_features(sorted_x)
    return mode, score


def summarize(
    samples: torch.Tensor,
    prior_variance: torch.Tensor | None = None,
    stats: Sequence[str] = ALL_MAP_STATS,
) -> dict[str, torch.Tensor]:
    """Statistics of ``samples [P, n, D]`` → ``stat → [P, D]`` (names in the module docstring).

    Args:
        samples: Posterior samples.
        prior_variance: ``[D]`` prior variances for ``contraction`` (NaN entries give NaN).
        stats: Which statistics to compute; any of ``ALL_MAP_STATS`` plus ``q16``, ``q84``, ``n_peaks``.
    """
    unknown = set(stats) - set(ALL_MAP_STATS) - set(_EXTRA_STATS)
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)}; choose from {list(ALL_MAP_STATS) + _EXTRA_STATS}")
    x = samples.transpose(1, 2)  # [P, D, n]
    out: dict[str, torch.Tensor] = {}
    need_sort = any(s in _QUANTILE_STATS or s in ("iqr", "map", "multimodality", "n_peaks") for s in stats)
    sorted_x = _sort_last(x) if need_sort else None
    if "mean" in stats:
        out["mean"] = x.mean(dim=-1)
    if "std" in stats or "contraction" in stats:
        var = x.var(dim=-1) if x.shape[-1] > 1 else torch.zeros_like(x[..., 0])
        if "std" in stats:
            out["std"] = var.sqrt()
        if "contraction" in stats:
            if prior_variance is None:
                out["contraction"] = torch.full_like(var, math.nan)
            else:
                pv = prior_variance.to(device=var.device, dtype=var.dtype)
                out["contraction"] = 1.0 - var / pv
    qnames = [s for s in _QUANTILE_STATS if s in stats or (s in ("q25", "q75") and "iqr" in stats)]
    if qnames:
        qv = quantiles_sorted(sorted_x, [_QUANTILE_STATS[s] for s in qnames])
        qd = dict(zip(qnames, qv))
        for s in qnames:
            if s in stats:
                out[s] = qd[s]
        if "iqr" in stats:
            out["iqr"] = qd["q75"] - qd["q25"]
    if "map" in stats or "multimodality" in stats or "n_peaks" in stats:
        mode, score, n_peaks = _histogram_features(sorted_x)
        out["map"], out["multimodality"], out["n_peaks"] = mode, score, n_peaks
    return {s: out[s] for s in stats}


def bimodality_coefficient(x: np.ndarray) -> np.ndarray:
    """Sarle's bimodality coefficient along axis 0 of ``x [n, ...]`` (NaN for n < 4 or zero variance)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 4:
        return np.full(x.shape[1:], np.nan)
    d = x - x.mean(axis=0)
    d2 = d * d
    m2 = d2.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        g1 = (d2 * d).mean(axis=0) / (m2 * np.sqrt(m2))
        g2 = (d2 * d2).mean(axis=0) / (m2 * m2) - 3.0
        # bias-corrected sample skewness and excess kurtosis (as in SAS / Pfister et al. 2013)
        skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
        kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6)
        return (skew**2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def count_peaks(x: np.ndarray, min_relative: float = 0.1) -> int:
    """Significant peaks of the smoothed histogram of 1-D samples ``x`` (see module docstring)."""
    t = torch.as_tensor(np.sort(np.asarray(x, dtype=np.float64)))[None, :]
    return int(_histogram_features(t, min_relative)[2][0])


def summarize_pixel(
    samples: np.ndarray, parameter_names: Sequence[str], prior_variance: np.ndarray | None = None
) -> dict[str, dict[str, float]]:
    """Per-parameter summaries of one spectrum's samples ``[n, D]`` → ``name → {stat: value}``.

    Stats: mean, median, map, std, q05, q16, q25, q75, q84, q95, iqr, contraction, multimodality,
    n_peaks, bimodality_coefficient (definitions in the module docstring).
    """
    s = torch.as_tensor(np.asarray(samples, dtype=np.float64))[None]
    pv = None if prior_variance is None else torch.as_tensor(np.asarray(prior_variance, dtype=np.float64))
    res = {k: v[0].tolist() for k, v in summarize(s, pv, PIXEL_STATS).items()}
    bc = bimodality_coefficient(samples)
    out: dict[str, dict[str, float]] = {}
    for d, name in enumerate(parameter_names):
        row = {k: float(v[d]) for k, v in res.items()}
        row["n_peaks"] = int(row["n_peaks"])
        row["bimodality_coefficient"] = float(bc[d])
        out[name] = row
    return out
