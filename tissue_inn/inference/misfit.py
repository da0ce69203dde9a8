"""The calibrated "not explained by this model" gate.

A model answers every spectrum with a posterior, including spectra of tissue it was never meant for
(skin, fat, a vessel through a colon model): misspecified amortised posteriors look *certain*. Two
tell-tales give such pixels away, and both are calibrated here on held-out simulations of the model's
own prior, so a verdict has a known false-alarm rate.

Statistics (the one place they are defined):
    residual    the posterior predictive residual: the first ``PREDICTIVE_DRAWS`` (32) posterior draws of
                the pixel are re-simulated with the forward model (the bundle's surrogate when it has
                one, else the solver), each scaled to the measurement's geometric mean when the model
                is scale-free; their band-wise median (the posterior predictive median spectrum) is
                compared with the measurement by :func:`~tissue_inn.inference.sampling.relative_residual`
                (RMS over bands of ``log(y_sim / y)``, mean removed for scale-free models). With
                camera noise at SNR s an explained pixel scores ≈ 0.7 / s. (Chosen over the
                re-simulated posterior *median*, a coordinate-wise median that need not be a coherent
                tissue state: at equal false alarms it caught 85 % instead of 76 % of blood-filled top
                layers at SNR 20, ``benchmarks/bench_misfit.py``.)
    edge        posterior mass piled against a bound of the prior: for every parameter bounded on both
                sides, the fraction of draws within ``EDGE_BAND`` (1 %) of the interval's width from
                either bound; the statistic is the largest such fraction over those parameters.
                In-distribution it is ≈ 0.03 (2 % for a parameter left at its prior), 0.3–0.4 at the
                99th percentile; a posterior squeezed against sO2 = 1 scores ≈ 1.
    score       ``max(residual / residual_threshold(snr), edge / edge_threshold(snr))``; the thresholds
                are the calibrated levels at which held-out in-distribution pixels are flagged by either
                test with probability ``alpha`` (1 %), interpolated in log SNR between the calibrated
                SNRs (outside the range: the nearest end). ``explained = score <= 1``.

Calibration (:func:`tissue_inn.inference.misfit_calibrate.calibrate`): for each SNR of a grid spread
over the model's trained range, the noise-free held-out spectra get the model's multiplicative noise at that SNR, the posterior is drawn
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
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tissue_inn.errors import TissueInnError
from tissue_inn.inference.sampling import relative_residual

if TYPE_CHECKING:  # the posterior and the image loop call this module, never the other way round
    from tissue_inn.inference.posterior import Posterior

__all__ = [
    "GATE_KEY",
    "GATE_VERSION",
    "DEFAULT_ALPHA",
    "EDGE_BAND",
    "PREDICTIVE_DRAWS",
    "MisfitGate",
    "MisfitScore",
    "edge_statistic",
    "edge_fractions",
    "gate_for",
    "PixelVerdict",
    "summary_line",
    "map_summary_line",
    "gate_section_summary",
    "residual_statistic",
]

GATE_KEY = "misfit_gate"
GATE_VERSION = 1
DEFAULT_ALPHA = 0.01
PREDICTIVE_DRAWS = 32  # posterior draws re-simulated per pixel for the residual
EDGE_BAND = 0.01  # a draw is "at the edge" within 1 % of the prior interval's width from a bound
REPORT_QUANTILES = (0.5, 0.9, 0.99)


# ---------------------------------------------------------------------------------------- statistics
def residual_statistic(y_sim: torch.Tensor, y: torch.Tensor, scale_free: bool) -> torch.Tensor:
    """``[N]`` predictive residual of re-simulated ``y_sim [N, B]`` vs measured ``y [N, B]`` (module docstring)."""
    return relative_residual(y_sim, y, scale_free)


def edge_fractions(samples: torch.Tensor, prior_bounds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``[N, D]`` fraction of draws within ``EDGE_BAND`` of a bound, per parameter (0 where a bound is infinite).

    Args:
        samples: ``[N, S, D]`` posterior draws (physical units).
        prior_bounds: ``[D, 2]`` (low, high).
    """
    b = torch.as_tensor(np.asarray(prior_bounds, dtype=np.float64) if not isinstance(prior_bounds, torch.Tensor)
                        else prior_bounds, dtype=torch.float64, device=samples.device)
    bounded = torch.isfinite(b[:, 0]) & torch.isfinite(b[:, 1])
    low = torch.where(bounded, b[:, 0], torch.zeros_like(b[:, 0]))
    high = torch.where(bounded, b[:, 1], torch.ones_like(b[:, 1]))
    band = EDGE_BAND * (high - low)
    s = samples.to(torch.float64)
    near = ((s - low < band) | (high - s < band)) & bounded
    return near.to(torch.float64).mean(dim=1)


def edge_statistic(samples: torch.Tensor, prior_bounds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``[N]`` largest fraction of draws within ``EDGE_BAND`` of a prior bound (module docstring)."""
    if samples.shape[-1] == 0:
        return torch.zeros(samples.shape[0], dtype=torch.float64, device=samples.device)
    return edge_fractions(samples, prior_bounds).max(dim=1).values


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


@dataclass
class PixelVerdict:
    """The gate's answer for one clicked pixel (what the GUI's banner shows).

    Attributes:
        explained: False when either tell-tale exceeds its 1 % false-alarm level.
        score: ``max(residual / threshold, edge / threshold)`` (> 1: not explained).
        residual, residual_threshold: the pixel's predictive residual and the level it is held to.
        residual_expected: median and 99th percentile of explained pixels' residual at this SNR.
        edge, edge_threshold, edge_parameter: the largest edge fraction, its level, the parameter.
        snr: the SNR the verdict was taken at; message: one readable sentence.
    """

    explained: bool
    score: float
    residual: float
    residual_threshold: float
    residual_expected: tuple[float, float]
    edge: float
    edge_threshold: float
    edge_parameter: str | None
    snr: float
    message: str


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
            raise TissueInnError(f"the model card's misfit gate table is malformed ({exc}); rebuild the gate "
                                 "(python benchmarks/bench_misfit.py --attach)") from None
        if self.snr_grid.ndim != 1 or self.snr_grid.size < 1 or np.any(np.diff(self.snr_grid) <= 0):
            raise TissueInnError("the model card's misfit gate table needs increasing SNR values; rebuild the gate "
                                 "(python benchmarks/bench_misfit.py --attach)")
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
        """``(residual [N], edge [N])`` of spectra ``y [N, B]`` from their draws ``samples [N, S, D]``.

        ``median`` is accepted for callers that have it and not used (the residual needs the draws).
        """
        n, s, d = samples.shape
        k = min(PREDICTIVE_DRAWS, s)
        y_sim = self.resimulate(samples[:, :k].reshape(n * k, d).to(torch.float64)).reshape(n, k, -1)
        y = y.to(y_sim)
        log_sim = torch.log(y_sim.clamp_min(1e-12))
        if self.scale_free:  # each draw at the measurement's scale: the model ignores the absolute level
            log_sim = log_sim - log_sim.mean(dim=2, keepdim=True) + torch.log(y).mean(dim=1)[:, None, None]
        predictive_median = torch.exp(log_sim.quantile(0.5, dim=1) if k > 1 else log_sim[:, 0])
        res = residual_statistic(predictive_median, y, self.scale_free)
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

    def explain_pixel(self, y: np.ndarray, samples: np.ndarray, snr: float,
                      parameter_names: tuple[str, ...] | list[str], model_name: str = "the model") -> PixelVerdict:
        """Verdict and a sentence for one spectrum ``y [B]`` with its draws ``samples [S, D]``."""
        v = self.score(y, snr, samples)
        frac = edge_fractions(torch.as_tensor(np.asarray(samples, np.float64))[None], self.prior_bounds)[0].numpy()
        k = int(np.argmax(frac)) if frac.size else -1
        par = str(parameter_names[k]) if k >= 0 and frac[k] > 0 else None
        r, rt, e, et = float(v.residual[0]), float(v.residual_threshold[0]), float(v.edge[0]), float(v.edge_threshold[0])
        q50, q99 = (float(self.residual_quantile(snr, q)) for q in (0.5, 0.99))
        a = f"{100 * self.alpha:g} %"
        if bool(v.explained[0]):
            msg = (f"explained by {model_name}: spectral residual {100 * r:.1f} % (explained pixels at SNR {snr:.3g}: "
                   f"median {100 * q50:.1f} %, 99 % below {100 * q99:.1f} %)")
        else:
            why = []
            if r > rt:
                why.append(f"the re-simulated spectrum misses the measurement by {100 * r:.1f} % "
                           f"(explained pixels at SNR {snr:.3g}: median {100 * q50:.1f} %, {a} false-alarm level "
                           f"{100 * rt:.1f} %)")
            if e > et:
                why.append(f"{100 * e:.0f} % of the posterior is piled against a prior bound of {par} "
                           f"({a} false-alarm level {100 * et:.0f} %)")
            msg = f"NOT explained by {model_name}: " + "; ".join(why) + ". The numbers below are not trustworthy."
        return PixelVerdict(bool(v.explained[0]), float(v.score[0]), r, rt, (q50, q99), e, et, par, float(snr), msg)

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


_GATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def gate_for(posterior: Posterior) -> MisfitGate | None:
    """The gate of a loaded model, built once per :class:`Posterior` (None when its card has none)."""
    if posterior not in _GATES:
        _GATES[posterior] = MisfitGate.from_posterior(posterior)
    return _GATES[posterior]


# ---------------------------------------------------------------------------------------- calibration
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


def map_summary_line(maps: dict[str, np.ndarray], attrs: dict[str, Any]) -> str | None:
    """The CLI's one line for a finished map (``MapResult.maps`` / ``.attrs``); None without a gate."""
    gate = attrs.get("misfit_gate")
    if "misfit/explained" not in maps or not isinstance(gate, dict):
        return None
    return summary_line(maps["misfit/explained"], str(attrs.get("model_name", "the model")), gate.get("snr"),
                        float(gate.get("alpha", DEFAULT_ALPHA)))


def gate_section_summary(section: dict[str, Any]) -> str:
    """A few lines describing a card's gate table (for ``tissue-inn info`` and reports)."""
    lines = [f"misfit gate  : {100 * section.get('alpha', math.nan):g} % false-alarm level, residual by "
             f"{section.get('residual_engine')}, {section.get('n_cases')} held-out cases × "
             f"{len(section.get('snr', []))} SNRs, {section.get('n_draws')} draws"]
    for s, rt, et in zip(section.get("snr", []), section.get("residual_threshold", []),
                         section.get("edge_threshold", [])):
        lines.append(f"  SNR {s:>5g}: residual > {rt:.4f} or edge mass > {et:.3f} → not explained")
    return "\n".join(lines)
