"""Calibration of the misfit gate on held-out simulations (definitions: :mod:`tissue_inn.inference.misfit`).

:func:`calibrate` draws the posterior of noise-free held-out spectra made noisy at each SNR of a grid over
the model's trained range, computes the gate's two statistics exactly as at inference and picks, per
SNR, one quantile level for both so that their union flags ``alpha`` of the cases
(:func:`union_thresholds`). It returns the model card's ``"misfit_gate"`` section.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch

from tissue_inn.config import NoiseModel
from tissue_inn.errors import Cancelled
from tissue_inn.inference.misfit import (
    DEFAULT_ALPHA,
    EDGE_BAND,
    GATE_VERSION,
    PREDICTIVE_DRAWS,
    REPORT_QUANTILES,
    MisfitGate,
)
from tissue_inn.inference.posterior import Posterior
from tissue_inn.progress import Progress

__all__ = ["calibrate", "union_thresholds", "default_snr_grid", "noisy_statistics", "model_noise"]


def union_thresholds(residual: np.ndarray, edge: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    """Thresholds ``(r_thr, e_thr, q, false_alarm)`` flagging ``alpha`` of the cases by either statistic.

    One quantile level ``q`` for both statistics, found by bisection so that the share of cases with
    ``residual > Q_r(q)`` or ``edge > Q_e(q)`` is at most ``alpha`` (as close as the data allow).
    """
    r, e = np.asarray(residual, np.float64), np.asarray(edge, np.float64)
    if r.size < 10 or r.shape != e.shape:
        raise ValueError("need ≥ 10 calibration cases with one residual and one edge value each")

    def rate(q: float) -> tuple[float, float, float]:  # ("higher": an infinite value never becomes a threshold)
        rt, et = float(np.quantile(r, q, method="higher")), float(np.quantile(e, q, method="higher"))
        return float(np.mean((r > rt) | (e > et))), rt, et

    lo, hi = 1.0 - alpha, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if rate(mid)[0] > alpha:
            lo = mid
        else:
            hi = mid
    fa, rt, et = rate(hi)
    return rt, et, hi, fa


def default_snr_grid(snr_min: float, snr_max: float, n: int = 7) -> list[float]:
    """``n`` log-spaced SNRs spanning the trained range (rounded to 3 significant digits)."""
    return [float(f"{v:.3g}") for v in np.geomspace(snr_min, snr_max, n)]


def model_noise(posterior: Posterior) -> NoiseModel:
    """The card's camera noise model (multiplicative Gaussian, clipped); defaults where the card is silent."""
    card = posterior.card.get("noise_model") or {}
    return NoiseModel(**{k: float(card[k]) for k in ("snr_min", "snr_max", "clip_min", "clip_max") if k in card})


def noisy_statistics(
    posterior: Posterior,
    gate: MisfitGate,
    y_clean: np.ndarray,
    snr: float | np.ndarray,
    n_draws: int,
    seed: int,
    chunk: int = 64,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[int, None, tuple[np.ndarray, np.ndarray]]:
    """The gate's statistics of noise-free spectra made noisy at ``snr`` (one value or one per spectrum).

    The model's noise (σ = R / SNR, clipped as its noise model) is drawn from ``seed``, the posterior at
    each spectrum's SNR (``n_draws``, same generator); a generator yielding the spectra done and
    returning ``(residual [N], edge [N])``.
    """
    noise = model_noise(posterior)
    dev = torch.device(posterior.device)
    y0 = torch.as_tensor(np.asarray(y_clean, np.float64))
    n = y0.shape[0]
    snr_t = torch.as_tensor(np.broadcast_to(np.asarray(snr, np.float64), (n,)).copy())
    gen = torch.Generator().manual_seed(int(seed))
    eps = torch.randn(y0.shape, generator=gen, dtype=torch.float64)
    y_noisy = (y0 * (1.0 + eps / snr_t[:, None])).clamp(noise.clip_min, noise.clip_max).to(dev)
    res_all, edge_all = [], []
    for s in range(0, n, chunk):
        if should_stop is not None and should_stop():
            raise Cancelled("gate calibration stopped")
        yc = y_noisy[s:s + chunk]
        with torch.inference_mode():
            draws = posterior.estimator.sample(yc, n_draws, generator=gen, snr=snr_t[s:s + chunk].to(dev))
        r, e = gate.statistics(yc, draws)
        res_all.append(r.cpu().numpy())
        edge_all.append(e.cpu().numpy())
        yield min(n, s + chunk)
    return np.concatenate(res_all), np.concatenate(edge_all)


def calibrate(
    posterior: Posterior,
    gate_forward: Callable[[torch.Tensor], torch.Tensor],
    y_clean: np.ndarray,
    snr_grid: list[float] | None = None,
    n_draws: int = 256,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    residual_engine: str = "surrogate",
    test_set: dict[str, Any] | None = None,
    chunk: int = 64,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, dict[str, Any]]:
    """Calibrate the gate on noise-free held-out spectra (generator; returns the card section).

    Args:
        posterior: the model; its estimator is sampled at each grid SNR.
        gate_forward: the re-simulation used for the residual (same engine as at inference).
        y_clean: ``[N, B]`` noise-free held-out spectra (a test set the model was not trained on).
        snr_grid: SNRs (default: 7 log-spaced over the card's noise range, else 10–50).
        n_draws: posterior draws per spectrum; seed: noise and draws (recorded).
        alpha: false-alarm level; residual_engine: ``"surrogate"`` or ``"solver"`` (recorded).
        test_set: provenance recorded in the section (path, sha256, seed …).
    """
    t0 = time.monotonic()
    if not 0 < alpha < 0.5:
        raise ValueError("alpha must lie in (0, 0.5)")
    noise = model_noise(posterior)
    grid = sorted(snr_grid) if snr_grid else default_snr_grid(noise.snr_min, noise.snr_max)
    n = int(np.asarray(y_clean).shape[0])
    gate = MisfitGate({"snr": [1.0], "residual_threshold": [1.0], "edge_threshold": [1.0], "alpha": alpha,
                       "residual_quantiles": {}}, gate_forward, posterior.prior_bounds, posterior.scale_free)
    rows: dict[str, list] = {k: [] for k in ("residual_threshold", "edge_threshold", "level", "false_alarm",
                                             "nonfinite")}
    rq: dict[str, list] = {str(q): [] for q in REPORT_QUANTILES}
    eq: dict[str, list] = {str(q): [] for q in REPORT_QUANTILES}
    total = len(grid) * n
    for k, snr in enumerate(grid):
        stats = noisy_statistics(posterior, gate, y_clean, float(snr), n_draws, int(seed) * 1000 + k, chunk,
                                 should_stop)
        while True:
            try:
                done = next(stats)
            except StopIteration as stop:
                r_np, e_np = stop.value
                break
            yield Progress("calibrate", k * n + done, total, f"SNR {snr:g}")
        bad = ~(np.isfinite(r_np) & np.isfinite(e_np))  # a failed re-simulation or draw: counted as flagged
        rows["nonfinite"].append(int(bad.sum()))
        r_np = np.where(bad, np.inf, r_np)
        rt, et, q, fa = union_thresholds(r_np, e_np, alpha)
        rows["residual_threshold"].append(rt)
        rows["edge_threshold"].append(et)
        rows["level"].append(q)
        rows["false_alarm"].append(fa)
        for p in REPORT_QUANTILES:  # of the finite cases
            rq[str(p)].append(float(np.quantile(r_np[~bad], p)))
            eq[str(p)].append(float(np.quantile(e_np[~bad], p)))
    return {
        "version": GATE_VERSION,
        "alpha": float(alpha),
        "edge_band": EDGE_BAND,
        "statistics": "residual: RMS over bands of log(y_sim/y), mean removed (scale-free models), y_sim = "
        f"band-wise median of the first {PREDICTIVE_DRAWS} posterior draws re-simulated (each at the measurement's "
        "scale when scale-free); edge: max over parameters bounded on both sides of the fraction of "
        f"draws within {EDGE_BAND:g} of the interval width from a bound; score = max(residual/residual_threshold, "
        "edge/edge_threshold), explained = score <= 1 (tissue_inn.inference.misfit)",
        "snr": [float(v) for v in grid],
        "residual_threshold": rows["residual_threshold"],
        "edge_threshold": rows["edge_threshold"],
        "quantile_level": rows["level"],
        "false_alarm_calibration": rows["false_alarm"],
        "nonfinite_cases": rows["nonfinite"],
        "residual_quantiles": rq,
        "edge_quantiles": eq,
        "residual_engine": residual_engine,
        "predictive_draws": PREDICTIVE_DRAWS,
        "n_cases": int(n),
        "n_draws": int(n_draws),
        "seed": int(seed),
        "noise": "multiplicative Gaussian sigma = R/SNR, clipped as the model's noise model",
        "test_set": dict(test_set or {}),
        "seconds": round(time.monotonic() - t0, 1),
    }
