"""The tissue posterior estimator: preprocessing + invertible network, one module, one state_dict.

:class:`PosteriorEstimator` is built from a JSON-able *spec* (stored in the model card) and holds
every statistic it needs as buffers, so ``safetensors`` weights + the card rebuild it exactly.

The network is any family of :data:`tissue_inn.inn.registry.FAMILIES` (``inn``: the paper's
bidirectional INN, x ↔ [y, z]; ``cinn``: the conditional INN, x ↔ z | y), reached only through the
:class:`~tissue_inn.inn.registry.NetworkFamily` contract.

Example:
    >>> spec = make_spec("cinn", ["a", "b"], ["1", "1"], [0.0, 0.0], [1.0, 1.0], [500.0, 600.0, 700.0],
    ...                  {"n_blocks": 2, "hidden": 8})
    >>> est = PosteriorEstimator(spec)
    >>> y = torch.tensor([[0.2, 0.3, 0.4]], dtype=torch.float64)
    >>> samples = est.sample(y, 5, generator=torch.Generator().manual_seed(0))
    >>> tuple(samples.shape), bool(((samples >= 0) & (samples <= 1)).all())
    ((1, 5, 2), True)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tissue_inn.data.preprocess import BoundedTransform, ParameterSpectrumCoding, bounds_from_json, bounds_to_json
from tissue_inn.errors import ConfigError, ModelBundleError
from tissue_inn.inn.registry import FAMILIES, family_names

__all__ = ["PosteriorEstimator", "make_spec"]


def make_spec(
    family: str,
    parameter_names: list[str],
    parameter_units: list[str],
    prior_low: list[float],
    prior_high: list[float],
    band_centers_nm: list[float],
    network: dict[str, Any],
    normalization: str = "geometric_mean",
    snr_range: tuple[float, float] | None = None,
    nominal_snr: float | None = None,
    bounded_map: str = "logit",
) -> dict[str, Any]:
    """Build an estimator spec. ``network`` holds the family's constructor arguments except dimensions.

    With ``snr_range`` (families that support it, e.g. cinn) the network is also conditioned on log(SNR)
    of the measurement, so one model stays calibrated across the noise range it was trained for;
    ``nominal_snr`` is used when a caller does not say which SNR its camera has. ``bounded_map``: how
    parameters bounded on both sides enter the network (:class:`~tissue_inn.data.preprocess.BoundedTransform`).
    """
    if bounded_map not in BoundedTransform.MAPS:
        raise ValueError(f"bounded_map {bounded_map!r}: use one of {', '.join(BoundedTransform.MAPS)}")
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} unknown; use one of {family_names()}")
    family_cls = FAMILIES[family]
    if snr_range is not None and not family_cls.supports_snr_conditioning:
        supported = [n for n in family_names() if FAMILIES[n].supports_snr_conditioning]
        raise ValueError(f"SNR conditioning is available for the {', '.join(supported)} family only")
    net = family_cls.network_config(len(parameter_names), len(band_centers_nm), snr_range is not None, network)
    return {
        "family": family,
        "parameter_names": list(parameter_names),
        "parameter_units": list(parameter_units),
        "prior_low": bounds_to_json(prior_low),
        "prior_high": bounds_to_json(prior_high),
        "band_centers_nm": [float(v) for v in band_centers_nm],
        "normalization": normalization,
        "bounded_map": bounded_map,
        "snr_range": list(snr_range) if snr_range is not None else None,
        "nominal_snr": float(nominal_snr) if nominal_snr is not None else None,
        "network": net,
    }


class PosteriorEstimator(ParameterSpectrumCoding, nn.Module):
    """Spectra in, posterior samples of tissue parameters out (physical units, inside the prior support)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        try:
            self.spec = spec
            self.family = spec["family"]
            self.parameter_names = tuple(spec["parameter_names"])
            self.parameter_units = tuple(spec["parameter_units"])
            self.band_centers_nm = tuple(float(v) for v in spec["band_centers_nm"])
            low = bounds_from_json(spec["prior_low"], -math.inf)
            high = bounds_from_json(spec["prior_high"], math.inf)
            net_cfg = dict(spec["network"])
        except (KeyError, TypeError) as exc:
            raise ModelBundleError(f"model spec is malformed (missing or wrong {exc}); re-export the model") from None
        if self.family not in FAMILIES:
            raise ModelBundleError(
                f"model family {self.family!r} is unknown to this tissue_inn (known: {family_names()}); "
                "upgrade tissue_inn or use another model"
            )
        family_cls = FAMILIES[self.family]
        d, b = len(self.parameter_names), len(self.band_centers_nm)
        if len(low) != d or len(high) != d or len(self.parameter_units) != d:
            raise ModelBundleError("model spec: parameter names, units and prior bounds differ in length")
        bounded_map = spec.get("bounded_map", "logit")  # cards written before the setting existed: logit
        if bounded_map not in BoundedTransform.MAPS:
            raise ModelBundleError(
                f"model spec: bounded_map {bounded_map!r} is unknown to this tissue_inn (known: "
                f"{', '.join(BoundedTransform.MAPS)}); upgrade tissue_inn or use another model"
            )
        self._init_coding(low, high, b, spec.get("normalization", "geometric_mean"), bounded_map)
        snr_range = spec.get("snr_range")
        self.snr_conditioning = snr_range is not None
        if self.snr_conditioning:
            lo, hi = math.log(float(snr_range[0])), math.log(float(snr_range[1]))
            self.snr_range = (float(snr_range[0]), float(snr_range[1]))
            self.nominal_snr = float(spec.get("nominal_snr") or math.exp(0.5 * (lo + hi)))
            # log-SNR is log-uniform in training: standardise with that distribution's mean and std
            self._log_snr_mean = 0.5 * (lo + hi)
            self._log_snr_std = max((hi - lo) / math.sqrt(12.0), 1e-3)
        else:
            self.snr_range = None
            self.nominal_snr = spec.get("nominal_snr")
        try:
            self.net = family_cls.from_config(net_cfg)
        except (TypeError, ValueError, ConfigError) as exc:
            raise ModelBundleError(f"model spec: network configuration rejected ({exc})") from None

    @property
    def latent_dim(self) -> int:
        """Width of the network's latent code (what :meth:`decode` takes)."""
        return int(self.net.latent_dim)

    # ------------------------------------------------------------------ preprocessing
    def y_to_net(self, y_reflectance: torch.Tensor, snr: torch.Tensor | float | None = None) -> torch.Tensor:
        """Spectra → the network's standardised input (features, plus log-SNR when conditioned on it)."""
        feats = super().y_to_net(y_reflectance)
        if not self.snr_conditioning:
            return feats
        if snr is None:
            snr = self.nominal_snr
        snr_t = torch.as_tensor(snr, dtype=torch.float64, device=feats.device)
        if snr_t.ndim == 0:
            snr_t = snr_t.expand(feats.shape[0])
        if torch.any(snr_t <= 0):
            raise ValueError("SNR must be positive")
        s = ((torch.log(snr_t) - self._log_snr_mean) / self._log_snr_std).float()
        return torch.cat([feats, s[:, None]], dim=1)

    # ------------------------------------------------------------------ use
    def loss(self, x_phys: torch.Tensor, y_noisy: torch.Tensor, snr: torch.Tensor | None = None,
             y_clean: torch.Tensor | None = None, **kwargs) -> dict[str, torch.Tensor]:
        """The family's loss terms for one batch (``total`` is what to minimise).

        ``y_clean``: the noise-free spectra behind ``y_noisy``; families that model the noise
        (``uses_noise_realisation``) get the difference of the log features as ``noise``.
        """
        if getattr(self.net, "uses_noise_realisation", False) and y_clean is not None:
            kwargs["noise"] = (self.features(y_noisy.double()) - self.features(y_clean.double())).float()
            if getattr(self.net, "unit_noise", False) and snr is not None:
                kwargs["snr"] = torch.as_tensor(snr, dtype=torch.float32, device=kwargs["noise"].device)
        return self.net.loss(self.x_to_net(x_phys), self.y_to_net(y_noisy, snr), **kwargs)

    @torch.no_grad()
    def sample(self, y_reflectance: torch.Tensor, n_draws: int, generator: torch.Generator | None = None,
               snr: float | torch.Tensor | None = None):
        """``[N, n_draws, D]`` posterior samples (float64, physical units) for spectra ``[N, B]``.

        ``snr``: the measurement's signal-to-noise ratio (models conditioned on SNR; default: the
        model's nominal SNR from its card). Ignored by models without SNR conditioning.
        """
        if y_reflectance.ndim != 2 or y_reflectance.shape[1] != self.n_bands:
            raise ValueError(
                f"spectra must have shape [N, {self.n_bands}] (bands {list(self.band_centers_nm)} nm), "
                f"got {tuple(y_reflectance.shape)}"
            )
        c = self.y_to_net(y_reflectance, snr)
        u = self.net.sample(c, n_draws, generator=generator)
        return self.net_to_x(u)

    @torch.no_grad()
    def sample_units(self, y_reflectance: torch.Tensor, n_draws: int, generators: list[torch.Generator],
                     sizes: list[int], snr: float | torch.Tensor | None = None) -> torch.Tensor:
        """Like :meth:`sample` for consecutive groups of spectra (``sizes``), each with its own generator, in one
        network call: the result equals concatenating ``sample(group, n_draws, generator)`` over the groups."""
        if sum(sizes) != y_reflectance.shape[0] or len(sizes) != len(generators):
            raise ValueError("sizes must add up to the number of spectra, one generator per group")
        c = self.y_to_net(y_reflectance, snr)
        z = torch.cat([self.net.latent_draws(p * n_draws, c, g) for p, g in zip(sizes, generators)])
        if getattr(self.net, "decodes_repeated", False):
            u = self.net.decode(c, z, repeats=n_draws)
        else:
            u = self.net.decode(c.repeat_interleave(n_draws, dim=0), z)
        return self.net_to_x(u.reshape(y_reflectance.shape[0], n_draws, -1))

    @torch.no_grad()
    def decode(self, y_reflectance: torch.Tensor, z: torch.Tensor, snr: float | torch.Tensor | None = None):
        """Parameters (physical units) for chosen latent codes ``z [M, latent_dim]`` of one spectrum ``[1, B]``
        (or one spectrum per row of z): the latent explorer's view of the network."""
        c = self.y_to_net(y_reflectance, snr)
        if c.shape[0] == 1 and z.shape[0] != 1:
            c = c.expand(z.shape[0], -1)
        return self.net_to_x(self.net.decode(c, z.to(c.dtype)))
