"""The calibrated "not explained by this model" gate.

A model answers every spectrum with a posterior, including spectra of tissue it was never meant for
(skin, fat, a vessel through a colon model): misspecified amortised posteriors look *certain*. Two
tell-tales give such pixels away, and both are calibrated here on held-out simulations of the model's
own prior, so a verdict has a known false-alarm rate.

Statistics (the one place they are defined):
    residual    the posterior predictive residual: the pixel's posterior median re-simulated with
                the forward model (the bundle's surrogate when it has one, else the solver), compared
                with the measurement by :func:`~tissue_inn.inference.posterior.relative_residual`
                (RMS over bands of ``log(y_sim / y)``, mean removed for scale-free models). With
                camera noise at SNR s an explained pixel scores ≈ 0.7 / s.
    edge        posterior mass piled against a bound of the prior: for every parameter bounded on both
                sides, the fraction of draws within ``EDGE_BAND`` (1 %) of the interval's width from
                either bound; the statistic is the largest such fraction over those parameters.
                In-distribution it is ≈ 0.03 (2 % for a parameter left at its prior), 0.3–0.4 at the
                99th percentile; a posterior squeezed against sO2 = 1 scores ≈ 1.
    score       ``max(residual / residual_threshold(snr), edge / edge_threshold(snr))``; the thresholds
                are the calibrated levels at which held-out in-distribution pixels are flagged by either
                test with probability ``alpha`` (1 %), interpolated in log SNR between the calibrated
                SNRs (outside the range: the nearest end). ``explained = score <= 1``.

Calibration (:func:`calibrate`): for each SNR of a grid spread over the model's trained range, the
noise-free held-out spectra get the model's multiplicative noise at that SNR, the posterior is drawn
(``n_draws`` per spectrum, at that SNR), and the two statistics are computed exactly as at inference;
one quantile level ``q`` per SNR is chosen so that the union ``residual > Q_r(q) or edge > Q_e(q)``
flags ``alpha`` of the cases. The result is a small JSON table stored in the model card under
``"misfit_gate"`` (see :func:`gate_section_summary`).

Use: :meth:`MisfitGate.from_posterior` (``None`` when the card has no gate),
:meth:`MisfitGate.score` for pixels (numpy in, :class:`MisfitScore` out),
:meth:`MisfitGate.score_tensor` inside the image loop (device tensors), :func:`summary_line` for the CLI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tissue_inn.config import NoiseModel
from tissue_inn.errors import Cancelled, TissueInnError
from tissue_inn.inference.posterior import Posterior, relative_residual
from tissue_inn.progress import Progress

__all__ = [
    "GATE_KEY",
    "GATE_VERSION",
    "DEFAULT_ALPHA",
    "EDGE_BAND",
    "MisfitGate",
    "MisfitScore",
    "edge_statistic",
    "residual_statistic",
    "calibrate",
    "union_thresholds",
    "summary_line",
    "gate_section_summary",
]

GATE_KEY = "misfit_gate"
GATE_VERSION = 1
DEFAULT_ALPHA = 0.01
EDGE_BAND = 0.01  # a draw is "at the edge" within 1 % of the prior interval's width from a bound
REPORT_QUANTILES = (0.5, 0.9, 0.99)


# ---------------------------------------------------------------------------------------- statistics
def residual_statistic(y_sim: torch.Tensor, y: torch.Tensor, scale_free: bool) -> torch.Tensor:
    """``[N]`` predictive residual of re-simulated ``y_sim [N, B]`` vs measured ``y [N, B]`` (module docstring)."""
    return relative_residual(y_sim, y, scale_free)


def edge_statistic(samples: torch.Tensor, prior_bounds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``[N]`` largest fraction of draws within ``EDGE_BAND`` of a prior bound (module docstring).

    Args:
        samples: ``[N, S, D]`` posterior draws (physical units).
        prior_bounds: ``[D, 2]`` (low, high); parameters with an infinite bound are ignored.
    """
    b = torch.as_tensor(np.asarray(prior_bounds, dtype=np.float64) if not isinstance(prior_bounds, torch.Tensor)
                        else prior_bounds, dtype=torch.float64, device=samples.device)
    bounded = torch.isfinite(b[:, 0]) & torch.isfinite(b[:, 1])
    if not bool(bounded.any()):
        return torch.zeros(samples.shape[0], dtype=torch.float64, device=samples.device)
    low, high = b[bounded, 0], b[bounded, 1]
    band = EDGE_BAND * (high - low)
    s = samples[..., bounded].to(torch.float64)
    near = (s - low < band) | (high - s < band)
    return near.to(torch.float64).mean(dim=1).max(dim=1).values


def union_thresholds(residual: np.ndarray, edge: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    """Thresholds ``(r_thr, e_thr, q, false_alarm)`` flagging ``alpha`` of the cases by either statistic.

    One quantile level ``q`` for both statistics, found by bisection so that the share of cases with
    ``residual > Q_r(q)`` or ``edge > Q_e(q)`` is at most ``alpha`` (as close as the data allow).
    """
    r, e = np.asarray(residual, np.float64), np.asarray(edge, np.float64)
    if r.size < 10 or r.shape != e.shape:
        raise ValueError("need ≥ 10 calibration cases with one residual and one edge value each")

    def rate(q: float) -> tuple[float, float, float]:
        rt, et = float(np.quantile(r, q)), float(np.quantile(e, q))
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


# ---------------------------------------------------------------------------------------- results
@dataclass
class MisfitScore:
    """Per-pixel verdicts (numpy arrays ``[N]``; see the module docstring for the definitions)."""

    residual: np.ndarray
    edge: np.ndarray
    residual_threshold: np.ndarray
    edge_threshold: np.ndarray
    score: np.ndarray
    explained: np.ndarray
    snr: np.ndarray
    alpha: float

    def expected_residual(self, gate: MisfitGate) -> np.ndarray:
        """``[N, 3]`` median, 90 % and 99 % residual of explained pixels at each pixel's SNR."""
        return np.stack([gate.residual_quantile(self.snr, q) for q in REPORT_QUANTILES], axis=1)


class MisfitGate:
    """A calibrated gate: thresholds from the card's ``"misfit_gate"`` table and a re-simulation engine.

    Args:
        section: the card's ``"misfit_gate"`` dict (from :func:`calibrate`).
        forward: ``x [N, D] → y [N, B]`` tensor function (surrogate or solver) used for the residual.
        prior_bounds: ``[D, 2]``; scale_free: as the model's preprocessing.
        fallback: optional exact forward model for rows where ``in_range(x)`` is False.
        in_range: optional ``x → [N] bool`` (the surrogate's training range).
    """

    def __init__(self, section: dict[str, Any], forward: Callable[[torch.Tensor], torch.Tensor],
                 prior_bounds: np.ndarray, scale_free: bool = True,
                 fallback: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 in_range: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        try:
            self.snr_grid = np.asarray(section["snr"], dtype=np.float64)
            self.residual_thresholds = np.asarray(section["residual_threshold"], dtype=np.float64)
            self.edge_thresholds = np.asarray(section["edge_threshold"], dtype=np.float64)
            self.alpha = float(section["alpha"])
            self.residual_q = {float(k): np.asarray(v, np.float64) for k, v in section["residual_quantiles"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise TissueInnError(f"the model card's misfit gate table is malformed ({exc}); recalibrate the model "
                                 "with tissue-inn evaluate --calibrate-gate") from None
        if self.snr_grid.ndim != 1 or self.snr_grid.size < 1 or np.any(np.diff(self.snr_grid) <= 0):
            raise TissueInnError("the model card's misfit gate table needs increasing SNR values; recalibrate it")
        self.section = section
        self.forward = forward
        self.fallback = fallback
        self.in_range = in_range
        self.prior_bounds = np.asarray(prior_bounds, dtype=np.float64)
        self.scale_free = bool(scale_free)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_posterior(cls, posterior: Posterior, engine: str | None = None) -> MisfitGate | None:
        """The gate of a loaded model, or None when its card carries no ``"misfit_gate"`` section.

        ``engine``: ``"surrogate"`` or ``"solver"`` (default: the engine the gate was calibrated with).
        """
        section = posterior.card.get(GATE_KEY)
        if not isinstance(section, dict):
            return None
        engine = engine or section.get("residual_engine", "solver")
        fallback = None
        in_range = None
        if engine == "surrogate":
            from tissue_inn.inference.gate_store import load_surrogate

            sur = load_surrogate(posterior.card, device=posterior.device)
            if sur is None:
                raise TissueInnError("the model's misfit gate needs its forward surrogate, which the bundle lacks; "
                                     "re-attach it (python benchmarks/bench_misfit.py --attach) or re-download the model")
            forward, in_range = sur.bands, sur.in_range
            if posterior.has_forward_model:
                fallback = posterior.forward_model().bands
        elif engine == "solver":
            if not posterior.has_forward_model:
                raise TissueInnError("the model card records no tissue/camera, so the misfit gate cannot re-simulate")
            forward = posterior.forward_model().bands
        else:
            raise TissueInnError(f"residual engine {engine!r} unknown; use 'surrogate' or 'solver'")
        return cls(section, forward, posterior.prior_bounds, posterior.scale_free, fallback, in_range)

    # ------------------------------------------------------------------ thresholds
    def _interp(self, snr: np.ndarray, values: np.ndarray, log_values: bool) -> np.ndarray:
        ls = np.log(np.clip(np.asarray(snr, np.float64), self.snr_grid[0], self.snr_grid[-1]))
        grid = np.log(self.snr_grid)
        if log_values:
            return np.exp(np.interp(ls, grid, np.log(np.maximum(values, 1e-12))))
        return np.interp(ls, grid, values)

    def thresholds(self, snr: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residual and edge thresholds at ``snr`` (log-SNR interpolation; clamped to the calibrated range)."""
        return self._interp(snr, self.residual_thresholds, True), self._interp(snr, self.edge_thresholds, False)

    def residual_quantile(self, snr: float | np.ndarray, q: float) -> np.ndarray:
        """The ``q`` quantile (one of 0.5, 0.9, 0.99) of explained pixels' residual at ``snr``."""
        return self._interp(snr, self.residual_q[float(q)], True)

    @property
    def snr_range(self) -> tuple[float, float]:
        return float(self.snr_grid[0]), float(self.snr_grid[-1])

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def resimulate(self, x: torch.Tensor) -> torch.Tensor:
        """Band reflectances of parameters ``x [N, D]`` (surrogate; the solver for rows outside its range)."""
        y = self.forward(x).to(torch.float64)
        if self.fallback is not None and self.in_range is not None and x.shape[0]:
            out = ~self.in_range(x)
            if bool(out.any()):
                y = y.clone()
                y[out] = self.fallback(x[out]).to(y)
        return y

    @torch.no_grad()
    def statistics(self, y: torch.Tensor, samples: torch.Tensor,
                   median: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(residual [N], edge [N])`` of spectra ``y [N, B]`` from their draws ``samples [N, S, D]``."""
        if median is None:
            median = samples.median(dim=1).values if samples.shape[1] % 2 else samples.quantile(0.5, dim=1)
        y_sim = self.resimulate(median.to(torch.float64))
        res = residual_statistic(y_sim, y.to(y_sim), self.scale_free)
        edge = edge_statistic(samples, self.prior_bounds).to(res.device)
        return res, edge

    def verdict(self, residual: np.ndarray, edge: np.ndarray, snr: float | np.ndarray) -> MisfitScore:
        """Score and ``explained`` flag from the two statistics at each pixel's SNR."""
        residual = np.asarray(residual, np.float64)
        edge = np.asarray(edge, np.float64)
        snr_a = np.broadcast_to(np.asarray(snr, np.float64), residual.shape).copy()
        rt, et = self.thresholds(snr_a)
        score = np.maximum(residual / rt, edge / np.maximum(et, 1e-12))
        return MisfitScore(residual, edge, rt, et, score, score <= 1.0, snr_a, self.alpha)

    def score(self, y: np.ndarray, snr: float | np.ndarray, samples: np.ndarray,
              median: np.ndarray | None = None) -> MisfitScore:
        """Verdicts for spectra ``y [N, B]`` (or one ``[B]``) with draws ``samples [N, S, D]`` (or ``[S, D]``)."""
        y_a = np.asarray(y, np.float64)
        s_a = np.asarray(samples, np.float64)
        if y_a.ndim == 1:
            y_a, s_a = y_a[None], s_a[None]
            median = None if median is None else np.asarray(median)[None]
        dev = torch.device("cpu")
        res, edge = self.statistics(torch.as_tensor(y_a, device=dev), torch.as_tensor(s_a, device=dev),
                                    None if median is None else torch.as_tensor(np.asarray(median, np.float64)))
        return self.verdict(res.cpu().numpy(), edge.cpu().numpy(), snr)

    @torch.no_grad()
    def score_tensor(self, y: torch.Tensor, samples: torch.Tensor, snr: float | torch.Tensor,
                     median: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Image-loop form: device tensors in, ``{"residual", "edge", "score", "explained"} → [N]`` out."""
        res, edge = self.statistics(y, samples, median)
        snr_np = snr.detach().cpu().numpy() if isinstance(snr, torch.Tensor) else snr
        rt, et = self.thresholds(np.broadcast_to(np.asarray(snr_np, np.float64), tuple(res.shape)))
        rt_t = torch.as_tensor(rt, dtype=torch.float64, device=res.device)
        et_t = torch.as_tensor(np.maximum(et, 1e-12), dtype=torch.float64, device=res.device)
        score = torch.maximum(res / rt_t, edge / et_t)
        return {"residual": res, "edge": edge, "score": score, "explained": score <= 1.0}


# ---------------------------------------------------------------------------------------- calibration
def default_snr_grid(snr_min: float, snr_max: float, n: int = 7) -> list[float]:
    """``n`` log-spaced SNRs spanning the trained range (rounded to 3 significant digits)."""
    return [float(f"{v:.3g}") for v in np.geomspace(snr_min, snr_max, n)]


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
    noise_card = posterior.card.get("noise_model") or {}
    noise = NoiseModel(**{k: float(noise_card[k]) for k in ("snr_min", "snr_max", "clip_min", "clip_max")
                          if k in noise_card})
    grid = sorted(snr_grid) if snr_grid else default_snr_grid(noise.snr_min, noise.snr_max)
    dev = torch.device(posterior.device)
    y0 = torch.as_tensor(np.asarray(y_clean, np.float64))
    n = y0.shape[0]
    gate = MisfitGate({"snr": [1.0], "residual_threshold": [1.0], "edge_threshold": [1.0], "alpha": alpha,
                       "residual_quantiles": {}}, gate_forward, posterior.prior_bounds, posterior.scale_free)
    rows: dict[str, list] = {k: [] for k in ("residual_threshold", "edge_threshold", "level", "false_alarm")}
    rq: dict[str, list] = {str(q): [] for q in REPORT_QUANTILES}
    eq: dict[str, list] = {str(q): [] for q in REPORT_QUANTILES}
    total = len(grid) * n
    for k, snr in enumerate(grid):
        gen = torch.Generator().manual_seed(int(seed) * 1000 + k)
        y_noisy = noise.apply(y0, generator=gen, snr=float(snr)).to(dev)
        res_all, edge_all = [], []
        for s in range(0, n, chunk):
            if should_stop is not None and should_stop():
                raise Cancelled("gate calibration stopped")
            yc = y_noisy[s:s + chunk]
            with torch.inference_mode():
                draws = posterior.estimator.sample(yc, n_draws, generator=gen, snr=float(snr))
            r, e = gate.statistics(yc, draws)
            res_all.append(r.cpu().numpy())
            edge_all.append(e.cpu().numpy())
            yield Progress("calibrate", k * n + min(n, s + chunk), total, f"SNR {snr:g}")
        r_np, e_np = np.concatenate(res_all), np.concatenate(edge_all)
        rt, et, q, fa = union_thresholds(r_np, e_np, alpha)
        rows["residual_threshold"].append(rt)
        rows["edge_threshold"].append(et)
        rows["level"].append(q)
        rows["false_alarm"].append(fa)
        for p in REPORT_QUANTILES:
            rq[str(p)].append(float(np.quantile(r_np, p)))
            eq[str(p)].append(float(np.quantile(e_np, p)))
    return {
        "version": GATE_VERSION,
        "alpha": float(alpha),
        "edge_band": EDGE_BAND,
        "statistics": "residual: RMS over bands of log(y_sim/y), mean removed (scale-free models), y_sim = "
        "re-simulated posterior median; edge: max over parameters bounded on both sides of the fraction of "
        f"draws within {EDGE_BAND:g} of the interval width from a bound; score = max(residual/residual_threshold, "
        "edge/edge_threshold), explained = score <= 1 (tissue_inn.inference.misfit)",
        "snr": [float(v) for v in grid],
        "residual_threshold": rows["residual_threshold"],
        "edge_threshold": rows["edge_threshold"],
        "quantile_level": rows["level"],
        "false_alarm_calibration": rows["false_alarm"],
        "residual_quantiles": rq,
        "edge_quantiles": eq,
        "residual_engine": residual_engine,
        "n_cases": int(n),
        "n_draws": int(n_draws),
        "seed": int(seed),
        "noise": "multiplicative Gaussian sigma = R/SNR, clipped as the model's noise model",
        "test_set": dict(test_set or {}),
        "seconds": round(time.monotonic() - t0, 1),
    }


# ---------------------------------------------------------------------------------------- text
def summary_line(explained: np.ndarray, model_name: str, snr: float | np.ndarray | None,
                 alpha: float = DEFAULT_ALPHA, valid: np.ndarray | None = None) -> str:
    """``"38 % of pixels are not explained by colon_default at SNR 20 (1 % false-alarm level)"``.

    ``explained``: bool (or 0/1/NaN float) per pixel; ``valid`` limits the count (default: non-NaN).
    ``snr``: one value, or per-pixel values (then their median and range are named).
    """
    e = np.asarray(explained)
    ok = ~np.isnan(e) if e.dtype.kind == "f" else np.ones(e.shape, bool)
    if valid is not None:
        ok &= np.asarray(valid, bool)
    n = int(ok.sum())
    if n == 0:
        return f"no pixels were scored by the {model_name} misfit gate"
    bad = int((e[ok] == 0).sum())
    pct = 100.0 * bad / n
    pct_txt = f"{pct:.0f}" if pct >= 10 or pct == 0 else f"{pct:.1f}"
    a = f"{100 * alpha:g} % false-alarm level"
    tail = f" ({a})"
    if snr is not None:
        s = np.asarray(snr, np.float64)
        s = s[ok] if s.shape == ok.shape else s.ravel()
        s = s[np.isfinite(s)]
        if s.size and np.ptp(s) <= 0.05 * np.median(s):
            tail = f" at SNR {np.median(s):.3g} ({a})"
        elif s.size:
            tail = f" at SNR {s.min():.3g}–{s.max():.3g} (median {np.median(s):.3g}; {a})"
    return f"{pct_txt} % of pixels ({bad:,} of {n:,}) are not explained by {model_name}{tail}"


def gate_section_summary(section: dict[str, Any]) -> str:
    """A few lines describing a card's gate table (for ``tissue-inn info`` and reports)."""
    lines = [f"misfit gate  : {100 * section.get('alpha', math.nan):g} % false-alarm level, residual by "
             f"{section.get('residual_engine')}, {section.get('n_cases')} held-out cases × "
             f"{len(section.get('snr', []))} SNRs, {section.get('n_draws')} draws"]
    for s, rt, et in zip(section.get("snr", []), section.get("residual_threshold", []),
                         section.get("edge_threshold", [])):
        lines.append(f"  SNR {s:>5g}: residual > {rt:.4f} or edge mass > {et:.3f} → not explained")
    return "\n".join(lines)
