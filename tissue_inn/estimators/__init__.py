"""The tissue posterior estimator: preprocessing + invertible network, one module, one state_dict.

:class:`PosteriorEstimator` is built from a JSON-able *spec* (stored in the model card) and holds
every statistic it needs as buffers, so ``safetensors`` weights + the card rebuild it exactly.

Families:
    ``inn``  — the paper's bidirectional INN, x ↔ [y, z] (Ardizzone et al., ICLR 2019).
    ``cinn`` — the conditional INN, x ↔ z | y, trained by maximum likelihood.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tissue_inn.data.preprocess import BoundedTransform, SpectrumFeatures, Standardizer
from tissue_inn.errors import ModelBundleError
from tissue_inn.inn.families import BidirectionalINN, ConditionalINN

__all__ = ["PosteriorEstimator", "FAMILIES", "make_spec"]

FAMILIES = {"inn": BidirectionalINN, "cinn": ConditionalINN}


def _json_bound(v: float) -> float | None:
    return None if not math.isfinite(v) else float(v)


def make_spec(
    family: str,
    parameter_names: list[str],
    parameter_units: list[str],
    prior_low: list[float],
    prior_high: list[float],
    band_centers_nm: list[float],
    network: dict[str, Any],
    normalization: str = "geometric_mean",
) -> dict[str, Any]:
    """Build an estimator spec. ``network`` holds the family's constructor arguments except dimensions."""
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} unknown; use one of {sorted(FAMILIES)}")
    d, b = len(parameter_names), len(band_centers_nm)
    net = dict(network)
    if family == "inn":
        net.setdefault("dim_z", max(d - b, 1))
        net.update(dim_x=d, dim_y=b)
    else:
        net.update(dim_x=d, dim_cond=b)
    return {
        "family": family,
        "parameter_names": list(parameter_names),
        "parameter_units": list(parameter_units),
        "prior_low": [_json_bound(v) for v in prior_low],
        "prior_high": [_json_bound(v) for v in prior_high],
        "band_centers_nm": [float(v) for v in band_centers_nm],
        "normalization": normalization,
        "network": net,
    }


class PosteriorEstimator(nn.Module):
    """Spectra in, posterior samples of tissue parameters out (physical units, inside the prior support)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        try:
            self.spec = spec
            self.family = spec["family"]
            self.parameter_names = tuple(spec["parameter_names"])
            self.parameter_units = tuple(spec["parameter_units"])
            self.band_centers_nm = tuple(float(v) for v in spec["band_centers_nm"])
            low = [-math.inf if v is None else float(v) for v in spec["prior_low"]]
            high = [math.inf if v is None else float(v) for v in spec["prior_high"]]
            family_cls = FAMILIES[self.family]
            net_cfg = dict(spec["network"])
        except (KeyError, TypeError) as exc:
            raise ModelBundleError(f"model spec is malformed (missing or wrong {exc}); re-export the model") from None
        d, b = len(self.parameter_names), len(self.band_centers_nm)
        if len(low) != d or len(high) != d or len(self.parameter_units) != d:
            raise ModelBundleError("model spec: parameter names, units and prior bounds differ in length")
        self.x_transform = BoundedTransform(low, high)
        self.features = SpectrumFeatures(b, spec.get("normalization", "geometric_mean"))
        self.x_scaler = Standardizer(d)
        self.y_scaler = Standardizer(b)
        try:
            self.net = family_cls.from_config(net_cfg)
        except (TypeError, ValueError) as exc:
            raise ModelBundleError(f"model spec: network configuration rejected ({exc})") from None

    # ------------------------------------------------------------------ dimensions
    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    @property
    def n_bands(self) -> int:
        return len(self.band_centers_nm)

    def prior_bounds(self) -> torch.Tensor:
        return torch.stack([self.x_transform.low, self.x_transform.high], dim=1)

    # ------------------------------------------------------------------ preprocessing
    def fit_scalers(self, x_phys: torch.Tensor, y_reflectance: torch.Tensor) -> None:
        """Fit the standardisation of parameters (unbounded space) and spectrum features."""
        with torch.no_grad():
            self.x_scaler.fit(self.x_transform(x_phys.double()))
            self.y_scaler.fit(self.features(y_reflectance.double()))

    def x_to_net(self, x_phys: torch.Tensor) -> torch.Tensor:
        return self.x_scaler(self.x_transform(x_phys.double())).float()

    def net_to_x(self, u: torch.Tensor) -> torch.Tensor:
        return self.x_transform.inverse(self.x_scaler.inverse(u.double()))

    def y_to_net(self, y_reflectance: torch.Tensor) -> torch.Tensor:
        return self.y_scaler(self.features(y_reflectance.double())).float()

    # ------------------------------------------------------------------ use
    def loss(self, x_phys: torch.Tensor, y_noisy: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
        """The family's loss terms for one batch (``total`` is what to minimise)."""
        return self.net.loss(self.x_to_net(x_phys), self.y_to_net(y_noisy), **kwargs)

    @torch.no_grad()
    def sample(self, y_reflectance: torch.Tensor, n_draws: int, generator: torch.Generator | None = None):
        """``[N, n_draws, D]`` posterior samples (float64, physical units) for spectra ``[N, B]``."""
        if y_reflectance.ndim != 2 or y_reflectance.shape[1] != self.n_bands:
            raise ValueError(
                f"spectra must have shape [N, {self.n_bands}] (bands {list(self.band_centers_nm)} nm), "
                f"got {tuple(y_reflectance.shape)}"
            )
        c = self.y_to_net(y_reflectance)
        u = self.net.sample(c, n_draws, generator=generator)
        return self.net_to_x(u)
