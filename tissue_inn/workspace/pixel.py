"""One click: the request (tagged with its generation), the worker's answer, the predictive band and
the readable summary of each parameter ("StO2 38 % [30–46 %]").

:func:`compute_pixel` touches no workspace state, so a worker thread may run it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tissue_inn.errors import DataFileError
from tissue_inn.workspace.display import histogram
from tissue_inn.workspace.labels import ParameterLabel

if TYPE_CHECKING:
    from tissue_inn.inference.posterior import PixelPosterior, Posterior, PredictiveCheck

__all__ = [
    "CONTRACTION_INFORMED",
    "PixelRequest",
    "PixelResult",
    "compute_pixel",
    "contraction_label",
    "predictive_quantiles",
    "histograms",
    "value_texts",
]

#: Below this contraction (1 − posterior variance / prior variance) a posterior is shown as "≈ prior".
CONTRACTION_INFORMED = 0.1


@dataclass(frozen=True)
class PixelRequest:
    """One click: which pixel, its spectrum (model band order) and how to sample."""

    generation: int
    row: int
    col: int
    spectrum: np.ndarray
    n_draws: int
    seed: int
    posterior: Posterior = field(repr=False, compare=False)
    ground_truth: Mapping[str, float] = field(default_factory=dict, repr=False, compare=False)
    snr: float | None = None


@dataclass
class PixelResult:
    """The answer to a :class:`PixelRequest`.

    Attributes:
        request: The request answered.
        pixel: The core's posterior of the pixel (samples ``[n_draws, D]``, summaries).
        ground_truth: parameter name → true value at this pixel (where the image carries it).
        predictive: the posterior predictive check, once computed.
    """

    request: PixelRequest
    pixel: PixelPosterior
    ground_truth: dict[str, float] = field(default_factory=dict)
    predictive: PredictiveCheck | None = None

    @property
    def samples(self) -> np.ndarray:
        return np.asarray(self.pixel.samples)

    @property
    def summaries(self) -> dict[str, dict[str, float]]:
        return self.pixel.summaries

    @property
    def explained(self) -> bool | None:
        """The misfit gate's verdict (None: the model has no calibrated gate)."""
        return self.pixel.explained

    @property
    def misfit_message(self) -> str | None:
        """The gate's sentence (residual and its expected range) when the pixel is not explained."""
        v = self.pixel.verdict
        if v is None or v.explained:
            return None
        text = str(v.message)  # the GUI's banner names the model already: drop the core's own lead-in
        head = text.split(": ", 1)
        return head[1][:1].upper() + head[1][1:] if len(head) == 2 and head[0].startswith("NOT explained") else text


def compute_pixel(request: PixelRequest) -> PixelResult:
    """The posterior of one pixel (slow; runs in a worker thread)."""
    y = np.asarray(request.spectrum, dtype=np.float64)
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise DataFileError(
            f"pixel ({request.row}, {request.col}) has no usable spectrum "
            "(NaN, zero or negative reflectance); click another pixel"
        )
    pixel = request.posterior.pixel(
        y, n_draws=request.n_draws, seed=request.seed, predictive_draws=0, snr=request.snr, misfit=True
    )
    return PixelResult(request, pixel, dict(request.ground_truth))


def compute_predictive(result: PixelResult, n: int = 64) -> PredictiveCheck | None:
    """Posterior predictive check of a pixel result (forward simulations; slow, runs in a worker)."""
    posterior = result.request.posterior
    if not posterior.has_forward_model:
        return None
    return posterior.predictive(result.request.spectrum, result.samples, n)


def contraction_label(contraction: float) -> tuple[str, bool]:
    """(text, informed) for a contraction value; informed is False below :data:`CONTRACTION_INFORMED`.

    >>> contraction_label(0.6)
    ('60 % contracted', True)
    """
    if not math.isfinite(contraction):
        return "contraction n/a", False
    informed = contraction >= CONTRACTION_INFORMED
    pct = f"{100 * contraction:.0f} % contracted"
    return (pct if informed else f"≈ prior — not informed by this measurement ({pct})"), informed


def predictive_quantiles(result: PixelResult | None) -> dict[str, np.ndarray] | None:
    """Posterior predictive band quantiles ``{"q05", "q16", "q50", "q84", "q95"} → [B]`` (model band order),
    or None when there is no predictive check yet."""
    if result is None:
        return None
    check = result.predictive if result.predictive is not None else result.pixel.predictive
    if check is None:
        return None
    spectra = np.asarray(check.spectra, dtype=float)
    if spectra.ndim == 2 and spectra.shape[0] >= 2:
        q = np.quantile(spectra, [0.05, 0.16, 0.5, 0.84, 0.95], axis=0)
        return dict(zip(("q05", "q16", "q50", "q84", "q95"), q))
    q05, q50, q95 = (np.asarray(v, dtype=float) for v in (check.band_q05, check.band_q50, check.band_q95))
    return {"q05": q05, "q16": q05, "q50": q50, "q84": q95, "q95": q95}


def histograms(
    samples: np.ndarray,
    names: Sequence[str],
    ranges: Mapping[str, tuple[float, float]],
    prior: np.ndarray | Callable[[int, float, float, int], np.ndarray],
    bins: int = 40,
) -> dict[str, dict[str, np.ndarray]]:
    """Per parameter: ``edges``, ``posterior`` density and ``prior`` density on its plot range.

    ``prior``: prior draws ``[n, D]``, or ``(j, low, high, bins) → density`` (a cache).
    """
    samples = np.asarray(samples).reshape(-1, len(names))
    out: dict[str, dict[str, np.ndarray]] = {}
    for j, name in enumerate(names):
        lo, hi = ranges[name]
        edges, post = histogram(samples[:, j], lo, hi, bins)
        pri = prior(j, lo, hi, bins) if callable(prior) else histogram(prior[:, j], lo, hi, bins)[1]
        out[name] = {"edges": edges, "posterior": post, "prior": pri}
    return out


def value_texts(
    summaries: Mapping[str, Mapping[str, float]], labels: Mapping[str, ParameterLabel]
) -> dict[str, str]:
    """``name → "StO2 38 % [30–46 %]"``: the median and the 68 % interval (q16–q84) in display units."""
    out = {}
    for name, lab in labels.items():
        s = summaries.get(name, {})
        if "median" in s and "q16" in s and "q84" in s:
            out[name] = lab.format_interval(s["median"], s["q16"], s["q84"])
    return out
