"""The posterior engine: spectra in, posterior samples and per-pixel summaries out.

Public API (used by the CLI and the GUI; keep stable):

``Posterior(estimator, card, device=None, max_batch_elements=131072)``
    Wraps a :class:`~tissue_inn.estimators.PosteriorEstimator` and its model card. ``device`` is
    ``"cpu"``, ``"cuda"``, ``"cuda:1"`` … or None/``"auto"`` (CUDA when available, else CPU). The
    network runs in ``torch.inference_mode``; one network call handles at most
    ``max_batch_elements`` (spectrum × draw) rows, which bounds memory.

``Posterior.from_bundle(name_or_path=None, device=None, **kwargs)``
    Load a bundle folder or shipped model name (default: the shipped default model).

``Posterior.sample(y, n_draws, seed=0, snr=None) -> np.ndarray [N, n_draws, D]``
    ``y``: one spectrum ``[B]`` or ``[N, B]`` band reflectances. float64 physical units, always
    inside the prior support. Deterministic for ``(seed, n_draws, max_batch_elements)``: spectra
    are drawn in fixed *seed units* of ``unit_pixels(n_draws)`` consecutive spectra, each with its
    own ``torch.Generator`` seeded from ``(seed, row, unit)`` (see :func:`unit_generator`), so a
    spectrum's draws do not depend on how many other spectra are in the call beyond its unit.

``Posterior.infer_image(cube, n_draws=1000, seed=0, roi_mask=None, should_stop=None, **kw)``
    Same as :func:`tissue_inn.inference.image.infer_image` with this posterior.

``Posterior.pixel(y, n_draws=4096, seed=0, predictive_draws=64, snr=None, misfit=True) -> PixelPosterior``
    Samples, per-parameter summaries (:func:`tissue_inn.inference.summaries.summarize_pixel`),
    with ``misfit`` and a calibrated gate in the card the gate's verdict (``PixelPosterior.verdict``,
    ``.explained``, ``.misfit_score``; :mod:`tissue_inn.inference.misfit`)
    and, with ``predictive_draws > 0``, a posterior predictive check: that many samples are
    re-simulated with the forward model of the card's tissue and camera → band quantiles
    (5/50/95 %) and the relative residual of the median predictive spectrum vs ``y``. The check
    costs ``predictive_draws`` forward simulations (solver-bound; pass 0 for a fast click and call
    :meth:`Posterior.predictive` later).

``snr``: the measurement's signal-to-noise ratio (a number, or one per spectrum); models conditioned on
SNR use it, others ignore it; None = the model's nominal SNR.

``Posterior.quantiles(y, snr=None) -> np.ndarray [N, D, 5]``
    The bundle's amortised summary network (5/25/50/75/95 % quantiles in one pass; ``has_amortised``);
    instant maps use it, clicked pixels and "exact" maps use the draws.

``Posterior.summaries(samples [n, D]) -> dict``; ``Posterior.predictive(y, samples, n=64) -> PredictiveCheck``; ``Posterior.resimulate(x [N, D]) -> [N, B]``.

``Posterior.validate(y) -> np.ndarray [N, B]``
    Raises :class:`MeasurementError` (a ``TissueInnError`` and ``ValueError``) for NaN/inf,
    values ≤ ``r_min`` (1e-5), above ``r_max`` (1.0: specular highlight or saturation), or the
    wrong number of bands.

Properties: ``parameter_names``, ``units`` (name → unit), ``parameter_units``, ``prior_bounds``
``[D, 2]`` (may hold ±inf), ``prior_variance`` ``[D]``, ``band_centers_nm``, ``device`` (str),
``model_name``, ``model_sha256``, ``tissue``, ``camera`` (None when the card has none).

Relative residual (here and in image maps): RMS over bands of ``log(y_sim / y)``, after removing
the mean log ratio when the model's preprocessing discards the illumination scale
(``normalization = "geometric_mean"``). It approximates the typical fractional misfit per band
(0.03 = 3 %); with camera noise at SNR s, a well-explained pixel scores about 1/s.

One concept, the :class:`Posterior` (≈ 410 lines, kept whole; this docstring is its API reference):
its seeding and batching rules are :mod:`~tissue_inn.inference.sampling` and its pixel results
:mod:`~tissue_inn.inference.pixel_result`; what remains are the methods of one object.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tissue_inn.config import Camera, TissueModel
from tissue_inn.errors import MeasurementError, TissueInnError
from tissue_inn.inference.pixel_result import PixelPosterior, PredictiveCheck
from tissue_inn.inference.sampling import (
    DEFAULT_MAX_BATCH_ELEMENTS,
    MAX_UNIT_PIXELS,
    PREDICTIVE_N_QUAD,
    relative_residual,
    unit_generator,
)
from tissue_inn.inference.summaries import summarize_pixel
from tissue_inn.io.pixels import spectra_problem

__all__ = [
    "Posterior",
    "PixelPosterior",
    "PredictiveCheck",
    "select_device",
    "unit_generator",
    "relative_residual",
    "DEFAULT_MAX_BATCH_ELEMENTS",
    "MAX_UNIT_PIXELS",
]

def select_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"`` → CUDA if available else CPU; otherwise the named device (checked)."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise TissueInnError(f"device {device!r} not understood; use 'cpu', 'cuda' or 'auto'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TissueInnError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return dev


class Posterior:
    """Posterior sampling and summaries for one trained model (see the module docstring)."""

    def __init__(
        self,
        estimator,
        card: dict[str, Any],
        device: str | torch.device | None = None,
        max_batch_elements: int = DEFAULT_MAX_BATCH_ELEMENTS,
        r_min: float = 1e-5,
        r_max: float | None = 1.0,
        amortised: Any = None,
    ) -> None:
        if max_batch_elements < 1:
            raise ValueError("max_batch_elements must be ≥ 1")
        self._device = select_device(device)
        self.estimator = estimator.to(self._device).eval()
        self.card = card
        self.max_batch_elements = int(max_batch_elements)
        self.r_min = r_min
        self.r_max = r_max
        self.tissue: TissueModel | None = None
        self.camera: Camera | None = None
        if isinstance(card.get("tissue"), dict) and card["tissue"]:
            self.tissue = TissueModel.from_dict(card["tissue"], source="model card")
        if isinstance(card.get("camera"), dict) and card["camera"]:
            self.camera = Camera.from_dict(card["camera"], source="model card")
        self._prior_variance = self._compute_prior_variance()
        self._forward = None
        self.scale_free = getattr(estimator, "spec", {}).get("normalization", "geometric_mean") == "geometric_mean"
        self.amortised = None if amortised is None else amortised.to(self._device).eval()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bundle(cls, name_or_path: Any = None, device: str | torch.device | None = None, **kwargs) -> Posterior:
        """Load a model bundle (folder or shipped name; None = shipped default) into a Posterior."""
        from tissue_inn.estimators.quantile_net import load_quantile_net
        from tissue_inn.io.bundle import load_bundle, resolve_model

        estimator, card = load_bundle(name_or_path)
        card = dict(card)
        folder = resolve_model(name_or_path)
        card.setdefault("_bundle_path", str(folder))
        kwargs.setdefault("amortised", load_quantile_net(folder, card))
        return cls(estimator, card, device=device, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(self.estimator.parameter_names)

    @property
    def parameter_units(self) -> tuple[str, ...]:
        return tuple(self.estimator.parameter_units)

    @property
    def units(self) -> dict[str, str]:
        return dict(zip(self.parameter_names, self.parameter_units))

    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    @property
    def prior_bounds(self) -> np.ndarray:
        """``[D, 2]`` (low, high) of the prior support; may hold ±inf."""
        return self.estimator.prior_bounds().detach().cpu().numpy().astype(np.float64)

    @property
    def prior_variance(self) -> np.ndarray:
        """``[D]`` prior variance per parameter (NaN when unknown)."""
        return self._prior_variance.copy()

    @property
    def band_centers_nm(self) -> np.ndarray:
        return np.asarray(self.estimator.band_centers_nm, dtype=np.float64)

    @property
    def n_bands(self) -> int:
        return len(self.estimator.band_centers_nm)

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def model_name(self) -> str:
        return str(self.card.get("name", "unnamed"))

    @property
    def model_sha256(self) -> str | None:
        w = self.card.get("weights", {})
        return w.get("sha256") if isinstance(w, dict) else None

    def provenance(self) -> dict[str, Any]:
        """Model facts recorded with every result."""
        return {
            "model_name": self.model_name,
            "model_sha256": self.model_sha256,
            "model_path": self.card.get("_bundle_path"),
            "model_family": self.card.get("family"),
            "device": self.device,
            "max_batch_elements": self.max_batch_elements,
        }

    def _compute_prior_variance(self) -> np.ndarray:
        var = np.full(self.n_parameters, np.nan)
        by_name = {p.name: p.prior for p in self.tissue.parameters} if self.tissue is not None else {}
        bounds = self.prior_bounds
        for i, name in enumerate(self.parameter_names):
            if name in by_name:
                var[i] = by_name[name].variance()
            elif np.all(np.isfinite(bounds[i])):
                var[i] = (bounds[i, 1] - bounds[i, 0]) ** 2 / 12.0  # uniform over the support
        return var

    # ------------------------------------------------------------------ validation
    def validate(self, y: Any) -> np.ndarray:
        """Spectra as float64 ``[N, B]``; raises :class:`MeasurementError` (see module docstring)."""
        try:
            arr = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MeasurementError(f"measurement is not numeric ({exc})") from None
        if arr.ndim == 1:
            arr = arr[None, :]
        bands = [float(f"{b:g}") for b in self.band_centers_nm]
        if arr.ndim != 2 or arr.shape[1] != self.n_bands:
            raise MeasurementError(
                f"measurement has shape {tuple(np.shape(y))}; the model needs {self.n_bands} band values "
                f"{bands} nm per spectrum"
            )
        problem = spectra_problem(arr, r_min=self.r_min, r_max=self.r_max)  # the one usable-pixel rule
        if problem is not None:
            raise MeasurementError(problem)
        return arr

    # ------------------------------------------------------------------ sampling
    def unit_pixels(self, n_draws: int) -> int:
        """Spectra per seed unit for ``n_draws`` draws: ``clamp(max_batch_elements // n_draws, 1, 64)``."""
        return int(min(MAX_UNIT_PIXELS, max(1, self.max_batch_elements // max(1, n_draws))))

    def sample_unit(self, y_t: torch.Tensor, n_draws: int, generator: torch.Generator,
                    snr: float | torch.Tensor | None = None) -> torch.Tensor:
        """One network call: ``y_t [P, B]`` on the device → samples ``[P, n_draws, D]`` float64 on the device."""
        with torch.inference_mode():
            if snr is None:  # the model's nominal SNR (estimators without SNR conditioning take no snr)
                return self.estimator.sample(y_t, n_draws, generator=generator)
            return self.estimator.sample(y_t, n_draws, generator=generator, snr=snr)

    def sample_units(self, y_t: torch.Tensor, n_draws: int, generators: list[torch.Generator], sizes: list[int],
                     snr: float | torch.Tensor | None = None) -> torch.Tensor:
        """Several seed units in one network call (``sizes`` consecutive spectra each, one generator each):
        the same samples as one :meth:`sample_unit` call per unit, with less overhead for small units."""
        est = self.estimator
        with torch.inference_mode():
            if hasattr(est, "sample_units"):
                if snr is None:
                    return est.sample_units(y_t, n_draws, generators, sizes)
                return est.sample_units(y_t, n_draws, generators, sizes, snr=snr)
        out, s = [], 0
        per_row = isinstance(snr, torch.Tensor) and snr.ndim > 0
        for g, p in zip(generators, sizes):
            out.append(self.sample_unit(y_t[s : s + p], n_draws, g, snr[s : s + p] if per_row else snr))
            s += p
        return torch.cat(out)

    def sample_tensor(self, y_t: torch.Tensor, n_draws: int, seed: int = 0, row: int = 0, start_unit: int = 0,
                      snr: float | torch.Tensor | None = None):
        """Samples of already validated spectra ``y_t [N, B]`` (device tensor) → ``[N, n_draws, D]`` on the device.

        Spectrum ``i`` belongs to seed unit ``start_unit + i // unit_pixels(n_draws)`` of row ``row``.
        """
        if n_draws < 1:
            raise ValueError("n_draws must be ≥ 1")
        up = self.unit_pixels(n_draws)
        per_row = isinstance(snr, torch.Tensor) and snr.ndim > 0
        out = []
        for k, s in enumerate(range(0, y_t.shape[0], up)):
            snr_k = snr[s : s + up] if per_row else snr
            out.append(self.sample_unit(y_t[s : s + up], n_draws, unit_generator(seed, row, start_unit + k), snr_k))
        if not out:
            return torch.zeros((0, n_draws, self.n_parameters), dtype=torch.float64, device=self._device)
        return torch.cat(out)

    def _snr_tensor(self, snr: Any, n: int) -> float | torch.Tensor | None:
        if snr is None or np.ndim(snr) == 0:
            if snr is not None and not (np.isfinite(float(snr)) and float(snr) > 0):
                raise MeasurementError(f"SNR {snr!r} must be a positive number")
            return None if snr is None else float(snr)
        arr = np.asarray(snr, dtype=np.float64).reshape(-1)
        if arr.shape[0] != n or not np.all(np.isfinite(arr) & (arr > 0)):
            raise MeasurementError(f"give one positive SNR per spectrum ({n}), got {arr.shape[0]} values")
        return torch.as_tensor(arr, device=self._device)

    def sample(self, y: Any, n_draws: int, seed: int = 0, snr: Any = None) -> np.ndarray:
        """Posterior samples ``[N, n_draws, D]`` (float64, physical units) for spectra ``[B]`` or ``[N, B]``."""
        arr = self.validate(y)
        y_t = torch.as_tensor(arr, dtype=torch.float64, device=self._device)
        return self.sample_tensor(y_t, int(n_draws), seed, snr=self._snr_tensor(snr, arr.shape[0])).cpu().numpy()

    @property
    def has_amortised(self) -> bool:
        """Whether the bundle ships an amortised summary network (instant quantile maps)."""
        return self.amortised is not None

    def quantiles(self, y: Any, snr: Any = None) -> np.ndarray:
        """Amortised 5/25/50/75/95 % quantiles ``[N, D, 5]`` (float64, physical units) of spectra ``[B]``/``[N, B]``."""
        from tissue_inn.estimators.quantile_net import amortised_quantiles

        if self.amortised is None:
            raise TissueInnError(f"model {self.model_name} has no amortised summary network; use exact maps")
        arr = self.validate(y)
        y_t = torch.as_tensor(arr, dtype=torch.float64, device=self._device)
        snr_t = self._snr_tensor(snr, arr.shape[0])
        with torch.inference_mode():
            return amortised_quantiles(self.estimator, self.amortised, y_t, snr_t).cpu().numpy()

    # ------------------------------------------------------------------ forward model
    @property
    def has_forward_model(self) -> bool:
        return self.tissue is not None and self.camera is not None

    def forward_model(self):
        """The card's tissue/camera forward model (built on first use; ``n_quad = PREDICTIVE_N_QUAD``)."""
        if self._forward is None:
            if not self.has_forward_model:
                raise TissueInnError("the model card records no tissue/camera; posterior predictive checks need them")
            from tissue_inn.optics.forward import ForwardModel, SolverSettings

            self._forward = ForwardModel(
                self.tissue, self.camera, SolverSettings(n_quad=PREDICTIVE_N_QUAD), device=self._device
            )
        return self._forward

    def resimulate(self, x: Any) -> np.ndarray:
        """Noise-free band reflectances ``[N, B]`` of parameter vectors ``x [N, D]`` (model's bands)."""
        fm = self.forward_model()
        x_t = torch.as_tensor(np.asarray(x, dtype=np.float64), device=self._device)
        with torch.inference_mode():
            return fm.bands(x_t).cpu().numpy()

    def predictive(self, y: Any, samples: np.ndarray, n: int = 64) -> PredictiveCheck:
        """Posterior predictive check of one spectrum from its samples ``[n_draws, D]`` (first ``n`` used)."""
        y1 = self.validate(y)[0]
        xs = np.asarray(samples)[: max(1, int(n))]
        sims = self.resimulate(xs)
        if self.scale_free:  # the model ignores the absolute scale: compare shapes at the measurement's scale
            sims = sims * np.exp(np.mean(np.log(y1)) - np.mean(np.log(np.maximum(sims, 1e-12)), axis=1))[:, None]
        q05, q50, q95 = np.quantile(sims, [0.05, 0.5, 0.95], axis=0)
        res = float(relative_residual(q50, y1, self.scale_free))
        return PredictiveCheck(q05, q50, q95, sims, res, int(len(xs)))

    def summaries(self, samples: np.ndarray) -> dict[str, dict[str, float]]:
        """Per-parameter summaries of one spectrum's samples ``[n_draws, D]`` (see :func:`summarize_pixel`)."""
        return summarize_pixel(np.asarray(samples), self.parameter_names, self._prior_variance)

    # ------------------------------------------------------------------ one pixel
    @property
    def nominal_snr(self) -> float | None:
        """The SNR assumed when none is given (the card's nominal SNR), or None."""
        v = getattr(self.estimator, "nominal_snr", None)
        return None if v is None else float(v)

    def pixel(self, y: Any, n_draws: int = 4096, seed: int = 0, predictive_draws: int = 64, snr: float | None = None,
              misfit: bool = True) -> PixelPosterior:
        """Posterior of one spectrum ``[B]`` with summaries, the misfit verdict and an optional predictive check."""
        import time

        t0 = time.perf_counter()
        arr = self.validate(y)
        if arr.shape[0] != 1:
            raise MeasurementError(f"pixel() takes one spectrum of {self.n_bands} bands, got {arr.shape[0]}")
        samples = self.sample(arr, n_draws, seed, snr=snr)[0]
        summaries = summarize_pixel(samples, self.parameter_names, self._prior_variance)
        verdict = None
        if misfit:
            from tissue_inn.inference.misfit import gate_for  # lazy: the gate builds on this module

            gate = gate_for(self)
            if gate is not None:
                at = float(snr) if snr is not None else (self.nominal_snr or 20.0)
                verdict = gate.explain_pixel(arr[0], samples, at, self.parameter_names, self.model_name)
        pred = None
        if predictive_draws and self.has_forward_model:
            pred = self.predictive(arr[0], samples, predictive_draws)
        return PixelPosterior(
            y=arr[0],
            samples=samples,
            summaries=summaries,
            parameter_names=self.parameter_names,
            units=self.units,
            prior_bounds=self.prior_bounds,
            band_centers_nm=self.band_centers_nm,
            predictive=pred,
            seed=int(seed),
            n_draws=int(n_draws),
            seconds=time.perf_counter() - t0,
            snr=None if snr is None else float(snr),
            verdict=verdict,
        )

    # ------------------------------------------------------------------ images
    def infer_image(self, cube, n_draws: int = 1000, seed: int = 0, roi_mask=None, should_stop=None, **kwargs):
        """Generator mapping a cube; see :func:`tissue_inn.inference.image.infer_image`."""
        from tissue_inn.inference.image import infer_image

        return infer_image(self, cube, n_draws=n_draws, seed=seed, roi_mask=roi_mask, should_stop=should_stop, **kwargs)

    def __repr__(self) -> str:
        return (
            f"Posterior(model={self.model_name!r}, family={self.card.get('family')!r}, device={self.device!r}, "
            f"parameters={len(self.parameter_names)}, bands={self.n_bands})"
        )
