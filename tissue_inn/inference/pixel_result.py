"""What a clicked pixel gets back: :class:`PixelPosterior` (draws, summaries, verdict) and its
:class:`PredictiveCheck` (re-simulated spectra). Built by :meth:`tissue_inn.inference.posterior.Posterior.pixel`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["PixelPosterior", "PredictiveCheck"]


@dataclass
class PredictiveCheck:
    """Posterior predictive check of one spectrum.

    Attributes:
        band_q05, band_q50, band_q95: ``[B]`` quantiles of the re-simulated band reflectances
            (after rescaling each to the measurement's scale when the model is scale-free).
        spectra: ``[n, B]`` re-simulated spectra (same scaling).
        relative_residual: of the median predictive spectrum vs the measurement (module docstring).
        n_draws: number of re-simulated samples.
    """

    band_q05: np.ndarray
    band_q50: np.ndarray
    band_q95: np.ndarray
    spectra: np.ndarray
    relative_residual: float
    n_draws: int


@dataclass
class PixelPosterior:
    """The posterior of one spectrum (what the GUI shows on a click).

    Attributes:
        y: ``[B]`` the measured band reflectances.
        samples: ``[n_draws, D]`` posterior samples (physical units).
        summaries: parameter name → {mean, median, map, std, q05, q16, q25, q75, q84, q95, iqr,
            contraction, multimodality, n_peaks, bimodality_coefficient}.
        parameter_names, units, prior_bounds, band_centers_nm: as on :class:`Posterior`.
        predictive: :class:`PredictiveCheck` or None (``predictive_draws = 0`` or no forward model).
        seed, n_draws, seconds: provenance and timing.
        snr: the SNR the posterior was drawn at (None: the model's nominal one).
        verdict: the misfit gate's :class:`~tissue_inn.inference.misfit.PixelVerdict` (``explained``,
            ``misfit_score`` read it), or None.
    """

    y: np.ndarray
    samples: np.ndarray
    summaries: dict[str, dict[str, float]]
    parameter_names: tuple[str, ...]
    units: dict[str, str]
    prior_bounds: np.ndarray
    band_centers_nm: np.ndarray
    predictive: PredictiveCheck | None = None
    seed: int = 0
    n_draws: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    snr: float | None = None
    verdict: Any = None  # tissue_inn.inference.misfit.PixelVerdict when the model has a calibrated gate

    @property
    def explained(self) -> bool | None:
        """The misfit gate's verdict (None when the model has no gate or it was not asked for)."""
        return None if self.verdict is None else bool(self.verdict.explained)

    @property
    def misfit_score(self) -> float | None:
        """The gate's score (> 1: not explained at its false-alarm level), or None."""
        return None if self.verdict is None else float(self.verdict.score)

    def column(self, name: str) -> np.ndarray:
        """Samples of one parameter ``[n_draws]``."""
        return self.samples[:, self.parameter_names.index(name)]
