"""Preprocessing that travels with a model: bounded-parameter transforms, spectrum features, standardisation.

Parameters: a parameter with a prior bounded on both sides is mapped to the logit of its position
inside the prior interval, one bounded below only to ``log(x - low)``; the network works in that
unbounded space, standardised, so every posterior sample mapped back lies inside the prior's support
(SCIENCE.md §6b lesson 2).

Spectra: ``features(y) = log(y) - mean_b log(y)`` (``normalization="geometric_mean"``: the log of
each band over the geometric mean of the bands, invariant to an unknown illumination scale) or
``log(y)`` (``"none"``), then standardised. All statistics are registered buffers, saved in the
model's safetensors file.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BoundedTransform", "SpectrumFeatures", "Standardizer", "ParameterSpectrumCoding", "bounds_to_json",
           "bounds_from_json"]

_EPS = 1e-6


class BoundedTransform(nn.Module):
    """Physical parameters ↔ unbounded coordinates, per column.

    Args:
        low, high: ``[D]`` prior bounds (``-inf``/``inf`` where unbounded).
        bounded_map: how a parameter bounded on both sides is opened up, after scaling to p in (0, 1):
            ``"logit"`` (log p − log(1 − p)) or ``"probit"`` (Φ⁻¹(p), the standard normal quantile). A uniform
            prior becomes a logistic distribution under the logit and exactly N(0, 1) under the probit, so
            under the probit a parameter the spectrum does not inform needs only the identity from a
            network with a Gaussian latent. The bidirectional INN, trained by MMD, renders a logistic as a
            near-Gaussian of the same variance, and its intervals of such parameters came out ≈ 4 % too
            wide under the logit (docs/inn_study/README.md, round 4).
    """

    MAPS = ("logit", "probit")

    def __init__(self, low: list[float], high: list[float], bounded_map: str = "logit") -> None:
        super().__init__()
        if bounded_map not in self.MAPS:
            raise ValueError(f"bounded_map {bounded_map!r}: use one of {', '.join(self.MAPS)}")
        self.bounded_map = bounded_map
        low_t = torch.tensor(low, dtype=torch.float64)
        high_t = torch.tensor(high, dtype=torch.float64)
        if low_t.shape != high_t.shape or low_t.ndim != 1:
            raise ValueError("low and high must be 1-D of equal length")
        self.register_buffer("low", low_t)
        self.register_buffer("high", high_t)
        self.register_buffer("both", torch.isfinite(low_t) & torch.isfinite(high_t))
        self.register_buffer("lower_only", torch.isfinite(low_t) & ~torch.isfinite(high_t))

    def _finite(self, t: torch.Tensor, fill: float, like: torch.Tensor) -> torch.Tensor:
        return torch.where(torch.isfinite(t), t, torch.full_like(t, fill)).to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical → unbounded."""
        low = self._finite(self.low, 0.0, x)
        high = self._finite(self.high, 1.0, x)
        span = high - low
        p = ((x - low) / span).clamp(_EPS, 1 - _EPS)
        opened = torch.special.ndtri(p) if self.bounded_map == "probit" else torch.log(p) - torch.log1p(-p)
        logx = torch.log((x - low).clamp_min(_EPS))
        return torch.where(self.both, opened, torch.where(self.lower_only, logx, x))

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        """Unbounded → physical (always inside the bounds)."""
        low = self._finite(self.low, 0.0, u)
        high = self._finite(self.high, 1.0, u)
        span = high - low
        # Each column gets only its own function (sigmoid, exp or none), the operations and their order as
        # low + span · sigmoid(u) (or Φ(u)) and low + exp(min(u, 60)) (same numbers): a map's millions of
        # draws pass here. The clamp in unbounded space keeps exp from overflowing to the bound itself.
        squash = torch.special.ndtr(u) if self.bounded_map == "probit" else torch.sigmoid(u)
        out = squash.mul_(span).add_(low)
        lower = self.lower_only.nonzero()[:, 0]
        if lower.numel():
            out[..., lower] = low[lower] + torch.exp(u[..., lower].clamp(max=60.0))
        free = (~(self.both | self.lower_only)).nonzero()[:, 0]
        if free.numel():
            out[..., free] = u[..., free]
        return out


class SpectrumFeatures(nn.Module):
    """Band reflectances ``[N, B]`` → scale-free log features ``[N, B]``."""

    def __init__(self, n_bands: int, normalization: str = "geometric_mean") -> None:
        super().__init__()
        if normalization not in ("geometric_mean", "none"):
            raise ValueError(f"normalization {normalization!r}: use 'geometric_mean' or 'none'")
        self.n_bands = n_bands
        self.normalization = normalization

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] != self.n_bands:
            raise ValueError(f"spectrum has {y.shape[-1]} bands, the model expects {self.n_bands}")
        log_y = torch.log(y.clamp_min(1e-6))
        if self.normalization == "geometric_mean":
            log_y = log_y - log_y.mean(dim=-1, keepdim=True)
        return log_y


class Standardizer(nn.Module):
    """``(v - mean) / std`` with statistics fitted once and stored as buffers."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("std", torch.ones(dim, dtype=torch.float64))

    @torch.no_grad()
    def fit(self, v: torch.Tensor) -> Standardizer:
        self.mean.copy_(v.mean(0).to(self.mean))
        self.std.copy_(v.std(0).clamp_min(1e-6).to(self.std))
        return self

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return (v - self.mean.to(v.dtype)) / self.std.to(v.dtype)

    def inverse(self, s: torch.Tensor) -> torch.Tensor:
        return s * self.std.to(s.dtype) + self.mean.to(s.dtype)


def bounds_to_json(values) -> list[float | None]:
    """Prior bounds → JSON (``None`` for ±inf)."""
    return [float(v) if math.isfinite(v) else None for v in values]


def bounds_from_json(values, infinity: float) -> list[float]:
    """JSON bounds → floats; ``None`` becomes ``infinity`` (``-math.inf`` for lows, ``math.inf`` for highs)."""
    return [infinity if v is None else float(v) for v in values]


class ParameterSpectrumCoding:
    """Mixin for the networks of this package (posterior estimators, regression baselines).

    Holds the bounded-parameter transform, the spectrum features and both standardisations as
    submodules named ``x_transform``, ``features``, ``x_scaler``, ``y_scaler`` (their buffers travel in
    the state dict) and maps physical parameters / reflectances to the network's standardised space.
    """

    parameter_names: tuple[str, ...]
    band_centers_nm: tuple[float, ...]

    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    @property
    def n_bands(self) -> int:
        return len(self.band_centers_nm)

    def _init_coding(self, low: list[float], high: list[float], n_bands: int, normalization: str,
                     bounded_map: str = "logit") -> None:
        self.x_transform = BoundedTransform(low, high, bounded_map)
        self.features = SpectrumFeatures(n_bands, normalization)
        self.x_scaler = Standardizer(len(low))
        self.y_scaler = Standardizer(n_bands)

    def prior_bounds(self) -> torch.Tensor:
        """``[D, 2]`` (low, high), ±inf where unbounded."""
        return torch.stack([self.x_transform.low, self.x_transform.high], dim=1)

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
        """Reflectances ``[N, B]`` → standardised spectrum features (float32)."""
        return self.y_scaler(self.features(y_reflectance.double())).float()
