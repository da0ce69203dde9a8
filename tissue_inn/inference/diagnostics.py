"""How good is a posterior? Accuracy, calibration, SBC, coverage, contraction and predictive checks.

Everything works on posterior samples ``samples [N, S, D]`` (N test cases, S draws, D parameters)
and the true parameters ``truth [N, D]`` (numpy arrays or torch tensors, physical units).

Large evaluations (2000 cases × 4096 draws × 13 parameters is ~850 MB in float64) are streamed:
:func:`case_statistics` reduces one chunk of cases to small per-case statistics (median, MAP,
variance, 68 % width, rank of the truth, and whether the truth lies inside each central interval),
:func:`concat_statistics` joins chunks and the ``*_from_stats`` / aggregate functions compute the
figures from them. The direct functions (:func:`calibration_error`, :func:`sbc_ranks`, ...) do the
same on arrays held in memory.

Calibration error (Ardizzone et al., ICLR 2019, "Analyzing inverse problems with invertible neural
networks", Sec. 4.2 / SCIENCE.md §6): for q in {1/101, …, 100/101}, ``e_cal(q)`` is the fraction of
test cases whose true value lies inside the central q-interval of its posterior samples minus q;
reported are the median of ``|e_cal|`` over q and ``e_cal`` at q = 0.68. Negative values mean
over-confident (intervals too narrow), positive under-confident.

SBC: Talts et al. 2018, "Validating Bayesian inference algorithms with simulation-based
calibration" — the rank of the truth among the posterior draws is uniform on {0, …, S} for a
correct posterior (truths drawn from the prior); ranks are thinned to L bins and tested with χ².
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = [
    "CALIBRATION_LEVELS",
    "EXTRA_LEVELS",
    "as_tensor",
    "quantiles",
    "map_estimate",
    "point_estimates",
    "mae",
    "median_abs_error",
    "r2_score",
    "central_interval_inside",
    "calibration_curve",
    "calibration_error",
    "calibration_summary",
    "interval_width",
    "sbc_ranks",
    "sbc_histogram",
    "sbc_histogram_from_ranks",
    "coverage_curve",
    "posterior_contraction",
    "posterior_predictive_residual",
    "case_statistics",
    "concat_statistics",
]

#: The paper's calibration levels q = 1/101, …, 100/101.
CALIBRATION_LEVELS = np.arange(1, 101, dtype=np.float64) / 101.0
#: Extra central-interval levels reported on their own (q = 0.68 as in the paper, and 0.95).
EXTRA_LEVELS = np.array([0.68, 0.95], dtype=np.float64)


def as_tensor(a: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A CPU/GPU tensor view of ``a`` (no copy where possible)."""
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype)


def _check_pair(samples: torch.Tensor, truth: torch.Tensor) -> None:
    if samples.ndim != 3:
        raise ValueError(f"samples must have shape [N, S, D], got {tuple(samples.shape)}")
    if truth.shape != (samples.shape[0], samples.shape[2]):
        raise ValueError(
            f"truth must have shape [N, D] = [{samples.shape[0]}, {samples.shape[2]}], got {tuple(truth.shape)}"
        )


# --------------------------------------------------------------------------------------- point estimates
def quantiles(sorted_samples: torch.Tensor, probs: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Quantiles of samples already sorted along dim 1 (linear interpolation, as numpy's default).

    Args:
        sorted_samples: ``[N, S, D]`` sorted along ``S``.
        probs: ``[P]`` levels in [0, 1].

    Returns:
        ``[N, P, D]``.
    """
    s = sorted_samples.shape[1]
    p = as_tensor(probs).to(sorted_samples.device)
    pos = p.clamp(0, 1) * (s - 1)
    lo = pos.floor().long().clamp(0, s - 1)
    hi = (lo + 1).clamp(max=s - 1)
    frac = (pos - lo.to(pos.dtype)).to(sorted_samples.dtype)[None, :, None]
    a = sorted_samples[:, lo, :]
    b = sorted_samples[:, hi, :]
    return a + (b - a) * frac


def _gauss_kernel(sigma_bins: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    half = int(math.ceil(3 * sigma_bins))
    t = torch.arange(-half, half + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (t / sigma_bins) ** 2)
    return (k / k.sum()).view(1, 1, -1)


def map_estimate(samples: np.ndarray | torch.Tensor, max_bins: int = 512) -> torch.Tensor:
    """Per-parameter mode of the samples (the paper's MAP): a binned Gaussian KDE.

    The bandwidth per case and parameter is Silverman's rule ``h = 0.9 · min(σ, IQR/1.34) · S^(-1/5)``;
    samples are histogrammed on bins of width ``h/2`` (over the central 99 % when the full range would
    need more than ``max_bins`` bins), smoothed with a Gaussian of two bins (= h) and the maximum is
    refined by a parabola through the three bins around it.

    Args:
        samples: ``[N, S, D]``.
        max_bins: most bins per case and parameter.

    Returns:
        ``[N, D]`` float64.
    """
    x = as_tensor(samples)
    if x.ndim != 3:
        raise ValueError(f"samples must have shape [N, S, D], got {tuple(x.shape)}")
    n, s, d = x.shape
    if s == 1:
        return x[:, 0, :].clone()
    rows = x.permute(0, 2, 1).reshape(n * d, s)
    srt = rows.sort(dim=1).values
    q = quantiles(srt[:, :, None], np.array([0.005, 0.25, 0.75, 0.995]))[:, :, 0]
    std = rows.std(dim=1)
    iqr = q[:, 2] - q[:, 1]
    spread = torch.minimum(std, iqr / 1.34)
    spread = torch.where(spread > 0, spread, std)
    h = 0.9 * spread * s ** (-0.2)
    lo, hi = srt[:, 0], srt[:, -1]
    width = (hi - lo).clamp_min(1e-300)
    w = h / 2
    too_many = width / w.clamp_min(1e-300) > max_bins
    lo = torch.where(too_many, q[:, 0], lo)
    hi = torch.where(too_many, q[:, 3], hi)
    w = torch.maximum(w, (hi - lo) / max_bins).clamp_min(1e-300)
    nb = max_bins + 1
    idx = ((rows - lo[:, None]) / w[:, None]).floor()
    valid = (idx >= 0) & (idx < nb)
    counts = torch.zeros(n * d, nb, dtype=x.dtype, device=x.device)
    counts.scatter_add_(1, idx.clamp(0, nb - 1).long(), valid.to(x.dtype))
    dens = torch.nn.functional.conv1d(counts[:, None, :], _gauss_kernel(2.0, x.dtype, x.device), padding="same")[
        :, 0, :
    ]
    k = dens.argmax(dim=1)
    km, kp = (k - 1).clamp_min(0), (k + 1).clamp(max=nb - 1)
    c0 = dens.gather(1, k[:, None])[:, 0]
    cm = dens.gather(1, km[:, None])[:, 0]
    cp = dens.gather(1, kp[:, None])[:, 0]
    denom = cm - 2 * c0 + cp
    offset = torch.where(denom < 0, 0.5 * (cm - cp) / denom.clamp(max=-1e-300), torch.zeros_like(c0))
    offset = offset.clamp(-0.5, 0.5)
    mode = lo + (k.to(x.dtype) + 0.5 + offset) * w
    degenerate = ~(h > 0)  # all samples equal (or nearly): the value itself
    mode = torch.where(degenerate, rows[:, 0], mode)
    mode = torch.minimum(torch.maximum(mode, srt[:, 0]), srt[:, -1])
    return mode.reshape(n, d)


def point_estimates(samples: np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"median", "mean", "map"}`` each ``[N, D]`` float64."""
    x = as_tensor(samples)
    return {
        "median": quantiles(x.sort(dim=1).values, np.array([0.5]))[:, 0],
        "mean": x.mean(dim=1),
        "map": map_estimate(x),
    }


def mae(estimate: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> np.ndarray:
    """Mean absolute error per parameter ``[D]``."""
    return (as_tensor(estimate) - as_tensor(truth)).abs().mean(dim=0).cpu().numpy()


def median_abs_error(estimate: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> np.ndarray:
    """Median absolute error per parameter ``[D]``."""
    return (as_tensor(estimate) - as_tensor(truth)).abs().quantile(0.5, dim=0).cpu().numpy()


def r2_score(estimate: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> np.ndarray:
    """Coefficient of determination ``1 − Σ(t − e)² / Σ(t − mean t)²`` per parameter ``[D]``."""
    e, t = as_tensor(estimate), as_tensor(truth)
    ss_res = ((t - e) ** 2).sum(dim=0)
    ss_tot = ((t - t.mean(dim=0)) ** 2).sum(dim=0)
    r2 = 1 - ss_res / ss_tot
    return torch.where(ss_tot > 0, r2, torch.full_like(r2, float("nan"))).cpu().numpy()


# --------------------------------------------------------------------------------------- calibration
def central_interval_inside(
    sorted_samples: torch.Tensor, truth: torch.Tensor, levels: np.ndarray = CALIBRATION_LEVELS
) -> torch.Tensor:
    """Whether the truth lies inside the central q-interval, for each level: ``[N, Q, D]`` bool."""
    lv = as_tensor(levels)
    probs = torch.cat([(1 - lv) / 2, (1 + lv) / 2])
    qs = quantiles(sorted_samples, probs)
    nq = lv.numel()
    t = truth[:, None, :]
    return (qs[:, :nq, :] <= t) & (t <= qs[:, nq:, :])


def calibration_curve(inside: np.ndarray | torch.Tensor, levels: np.ndarray = CALIBRATION_LEVELS) -> np.ndarray:
    """``e_cal(q)`` ``[Q, D]`` from inside indicators ``[N, Q, D]``: fraction inside minus q."""
    frac = as_tensor(inside).mean(dim=0).cpu().numpy()
    return frac - np.asarray(levels, dtype=np.float64)[:, None]


def calibration_error(
    samples: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor, levels: np.ndarray = CALIBRATION_LEVELS
) -> np.ndarray:
    """The paper's calibration error ``e_cal(q)`` ``[Q, D]`` for samples held in memory."""
    x, t = as_tensor(samples), as_tensor(truth)
    _check_pair(x, t)
    return calibration_curve(central_interval_inside(x.sort(dim=1).values, t, levels), levels)


def calibration_summary(
    samples_or_inside: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """``{"median_abs": [D], "at_68": [D]}`` — the paper's two calibration figures.

    Pass ``(samples, truth)``, or inside indicators ``[N, Q + 2, D]`` of
    ``concat(CALIBRATION_LEVELS, EXTRA_LEVELS)`` alone.
    """
    levels = np.concatenate([CALIBRATION_LEVELS, EXTRA_LEVELS])
    if truth is not None:
        e = calibration_error(samples_or_inside, truth, levels)
    else:
        e = calibration_curve(samples_or_inside, levels)
    nq = CALIBRATION_LEVELS.size
    return {"median_abs": np.median(np.abs(e[:nq]), axis=0), "at_68": e[nq]}


def interval_width(samples: np.ndarray | torch.Tensor, level: float = 0.68) -> np.ndarray:
    """Width of the central ``level`` interval per case ``[N, D]``."""
    x = as_tensor(samples).sort(dim=1).values
    q = quantiles(x, np.array([(1 - level) / 2, (1 + level) / 2]))
    return (q[:, 1] - q[:, 0]).cpu().numpy()


def coverage_curve(inside: np.ndarray | torch.Tensor, levels: np.ndarray = CALIBRATION_LEVELS) -> dict[str, np.ndarray]:
    """Expected coverage of the central intervals: ``{"nominal": [Q], "empirical": [Q, D]}``."""
    return {"nominal": np.asarray(levels, dtype=np.float64), "empirical": as_tensor(inside).mean(dim=0).cpu().numpy()}


# --------------------------------------------------------------------------------------- SBC
def sbc_ranks(
    samples: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor, generator: torch.Generator | None = None
) -> np.ndarray:
    """Rank of the truth among the S draws, ``[N, D]`` integers in ``0..S``.

    Ties (discrete samples, e.g. ABC from a bank) are broken uniformly at random with ``generator``
    (seed 0 when not given).
    """
    x, t = as_tensor(samples), as_tensor(truth)
    _check_pair(x, t)
    less = (x < t[:, None, :]).sum(dim=1)
    equal = (x == t[:, None, :]).sum(dim=1)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    u = torch.rand(less.shape, generator=gen, dtype=torch.float64, device="cpu").to(x.device)
    return (less + (u * (equal + 1)).floor().long()).cpu().numpy()


def sbc_histogram_from_ranks(ranks: np.ndarray, n_draws: int, n_bins: int = 20) -> dict[str, Any]:
    """Thin ranks ``0..S`` to ``L`` bins; χ² test of uniformity per parameter.

    Returns ``{"counts": [L, D], "expected": [L], "p_value": [D], "n_bins": L}``; the expected counts
    account for ``S + 1`` not being a multiple of ``L``.
    """
    from scipy.stats import chisquare

    ranks = np.asarray(ranks, dtype=np.int64)
    n_bins = int(max(1, min(n_bins, n_draws + 1)))
    bins = ranks * n_bins // (n_draws + 1)
    d = ranks.shape[1]
    counts = np.stack([np.bincount(bins[:, j], minlength=n_bins)[:n_bins] for j in range(d)], axis=1)
    per_bin = np.bincount(np.arange(n_draws + 1) * n_bins // (n_draws + 1), minlength=n_bins)
    expected = ranks.shape[0] * per_bin / (n_draws + 1)
    if n_bins > 1:
        p = np.array([chisquare(counts[:, j], expected).pvalue for j in range(d)])
    else:
        p = np.ones(d)
    return {"counts": counts, "expected": expected, "p_value": p, "n_bins": n_bins}


def sbc_histogram(
    samples: np.ndarray | torch.Tensor,
    truth: np.ndarray | torch.Tensor,
    n_bins: int = 20,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """SBC rank histogram and χ² p-value per parameter (see :func:`sbc_histogram_from_ranks`)."""
    ranks = sbc_ranks(samples, truth, generator)
    return sbc_histogram_from_ranks(ranks, int(as_tensor(samples).shape[1]), n_bins)


# --------------------------------------------------------------------------------------- contraction, PPC
def posterior_contraction(posterior_variance: np.ndarray | torch.Tensor, prior_variance: np.ndarray) -> np.ndarray:
    """``1 − mean_n(posterior variance) / prior variance`` per parameter ``[D]`` (0: nothing learnt, 1: exact).

    Args:
        posterior_variance: ``[N, D]`` per-case sample variances.
        prior_variance: ``[D]``.
    """
    pv = as_tensor(posterior_variance).mean(dim=0).cpu().numpy()
    prior = np.asarray(prior_variance, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prior > 0, 1.0 - pv / prior, np.nan)


def posterior_predictive_residual(
    samples: np.ndarray | torch.Tensor,
    y_observed: np.ndarray | torch.Tensor,
    forward: Callable[[torch.Tensor], torch.Tensor],
    n_resim: int = 8,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Re-simulate ``n_resim`` random posterior draws per case and compare with the measured spectrum.

    The residual of one draw is ``‖y_sim − y_obs‖₂ / ‖y_obs‖₂``. For multiplicative noise of a given
    SNR the measured spectrum itself is ~``1/SNR`` away from the noise-free one, so a good posterior
    gives residuals of that order.

    Args:
        samples: ``[N, S, D]`` posterior draws (physical units).
        y_observed: ``[N, B]`` the (noisy) spectra the posteriors were computed from.
        forward: ``x [M, D] → y [M, B]`` (e.g. ``ForwardModel.bands``).
        n_resim: draws re-simulated per case.
        generator: picks the draws (seed 0 when not given).

    Returns:
        ``{"per_case": [N] median residual, "per_band": [B] median relative |error|, "median": float,
        "p90": float, "n_resim": int}``.
    """
    x, y = as_tensor(samples), as_tensor(y_observed)
    n, s, d = x.shape
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    k = min(n_resim, s)
    idx = torch.stack([torch.randperm(s, generator=gen)[:k] for _ in range(n)]).to(x.device)
    chosen = x.gather(1, idx[:, :, None].expand(n, k, d)).reshape(n * k, d)
    y_sim = as_tensor(forward(chosen)).to(y.device).reshape(n, k, -1)
    diff = y_sim - y[:, None, :]
    rel = diff.norm(dim=2) / y.norm(dim=1, keepdim=True).clamp_min(1e-12)
    per_case = rel.quantile(0.5, dim=1)
    per_band = (diff.abs() / y[:, None, :].abs().clamp_min(1e-12)).reshape(n * k, -1).quantile(0.5, dim=0)
    return {
        "per_case": per_case.cpu().numpy(),
        "per_band": per_band.cpu().numpy(),
        "median": float(rel.quantile(0.5)),
        "p90": float(rel.flatten().quantile(0.9)),
        "n_resim": k,
    }


# --------------------------------------------------------------------------------------- streaming
def case_statistics(
    samples: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor, generator: torch.Generator | None = None
) -> dict[str, np.ndarray]:
    """Reduce one chunk of cases to everything the report needs (small per-case arrays).

    Returns a dict of numpy arrays: ``median``, ``mean``, ``map``, ``var``, ``width68`` (``[n, D]``),
    ``rank`` (``[n, D]`` int), ``inside`` (``[n, Q + 2, D]`` bool, levels
    ``concat(CALIBRATION_LEVELS, EXTRA_LEVELS)``) and ``n_draws`` (``[n]``).
    """
    x, t = as_tensor(samples), as_tensor(truth)
    _check_pair(x, t)
    s = x.shape[1]
    srt = x.sort(dim=1).values
    levels = np.concatenate([CALIBRATION_LEVELS, EXTRA_LEVELS])
    q = quantiles(srt, np.array([0.5, 0.16, 0.84]))
    return {
        "median": q[:, 0].cpu().numpy(),
        "mean": x.mean(dim=1).cpu().numpy(),
        "map": map_estimate(x).cpu().numpy(),
        "var": (x.var(dim=1) if s > 1 else torch.zeros_like(t)).cpu().numpy(),
        "width68": (q[:, 2] - q[:, 1]).cpu().numpy(),
        "rank": sbc_ranks(x, t, generator),
        "inside": central_interval_inside(srt, t, levels).cpu().numpy(),
        "n_draws": np.full(x.shape[0], s, dtype=np.int64),
    }


def concat_statistics(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Join the per-chunk outputs of :func:`case_statistics`."""
    if not chunks:
        raise ValueError("no statistics to join")
    return {k: np.concatenate([c[k] for c in chunks], axis=0) for k in chunks[0]}
