"""The paper's bidirectional INN with the measurement noise as a latent input (family ``inn_noise``).

Why (docs/inn_study): the paper's INN maps ``x → [y, z]`` deterministically, so run backwards it returns
the parameters whose *noise-free* spectrum equals the measured one. A measured spectrum is
``y = f(x) + noise``; the share of the posterior that comes from the noise (most of sO2's width at
SNR 20) has nowhere to live, and the intervals come out about 3× too narrow, nearly independent of the
SNR. Here the noise realisation is part of the input side, so the bijection is exact again::

    input  side: [x (dim_x), noise · noise_scale (n_feat), s (snr_columns), pad]
    output side: [y = features + noise (n_feat), s (snr_columns), z (dim_z), pad]

``noise`` is what the simulated camera noise added to the (unstandardised) log spectrum features,
≈ ε / SNR; ``noise_scale`` (20) puts it at unit scale for SNR 20. With SNR conditioning the
standardised log-SNR ``s`` is the last column of y *and* is carried on the input side, so the
forward map can pass it through and the backward map knows how wide the noise is. z gets the
directions the spectrum cannot pin down: ``dim_z = dim_x`` by default (``[x, noise, s]`` has
``dim_x + dim_y`` entries, ``[y, s]`` has ``dim_y``).

With ``snr_condition`` log-SNR also conditions every coupling subnet (as in the conditional INN), so each
block's scales can follow the noise level instead of building the 1/SNR product across blocks.

Everything else is the paper's method and :class:`~tissue_inn.inn.bidirectional.BidirectionalINN`'s
code: forward L_y + L_z (MMD), backward L_x (MMD against samples of the prior of ``[x, noise, s]``),
reconstruction, the same blocks and optimiser. Sampling runs ``[y, s, z ~ N(0, I), 0]`` backwards and
keeps x. Trainers pass ``noise`` to :meth:`NoiseLatentINN.loss` (the estimator computes it from the
clean and the noisy spectrum: :attr:`uses_noise_realisation`); without it the spectra count as
noise-free.

Example:
    >>> cfg = NoiseLatentINN.network_config(4, 3, True, {"n_blocks": 2, "hidden": 8})
    >>> cfg["dim_y"], cfg["dim_z"], cfg["snr_columns"]
    (4, 4, 1)
    >>> net = NoiseLatentINN.from_config(cfg)
    >>> net.total_dim, net.dim_aux
    (8, 4)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from tissue_inn.errors import ConfigError
from tissue_inn.inn.bidirectional import BidirectionalINN
from tissue_inn.inn.network import _checked_kwargs

__all__ = ["NOISE_SCALE", "NoiseLatentINN"]

NOISE_SCALE = 20.0
"""Multiplier of the log-feature noise on the input side: multiplicative noise of SNR S adds ≈ ε/S to
log y, so ×20 gives unit scale at SNR 20, the middle of the usual range (SCIENCE.md §3)."""


class NoiseLatentINN(BidirectionalINN):
    """:class:`BidirectionalINN` whose input side also carries the measurement noise (and log-SNR).

    Args:
        dim_x, dim_y, dim_z: as for :class:`BidirectionalINN`; ``dim_y`` includes the log-SNR column(s).
        noise_scale: multiplier of the noise on the input side (:data:`NOISE_SCALE`).
        snr_columns: how many trailing columns of y are log-SNR (0 or 1), copied to the input side.
        unit_noise: put ``noise × SNR`` (≈ ε, the same distribution at every SNR) on the input side
            instead of ``noise × noise_scale``; the loss then needs the per-spectrum ``snr``. The
            forward map learns y = f(x) + ε / SNR by regression, and the backward map, its inverse,
            widens the posterior at low SNR by construction.
        noise_input: put the noise realisation on the input side (default). ``False``: only the log-SNR
            columns; the noise is then left to the input side's pad dimensions, which the network learns
            to use as anonymous noise sources (needs ``dim_y + dim_z > dim_x + snr_columns``).
        snr_condition: also condition every coupling subnet on log-SNR (the conditional INN's way of
            letting each block's scales follow the noise level; docs/inn_study).
        **kwargs: every other :class:`BidirectionalINN` argument (``dim_aux`` and ``cond_dim`` are set here).
    """

    family_name: ClassVar[str] = "inn_noise"
    supports_snr_conditioning: ClassVar[bool] = True

    def __init__(self, dim_x: int, dim_y: int, dim_z: int, noise_scale: float = NOISE_SCALE,
                 snr_columns: int = 0, noise_input: bool = True, unit_noise: bool = False,
                 snr_condition: bool = False, **kwargs: Any) -> None:
        dim_aux = dim_y if noise_input else int(snr_columns)
        if "dim_aux" in kwargs and kwargs.pop("dim_aux") != dim_aux:
            raise ConfigError("inn_noise: dim_aux follows from noise_input and snr_columns; leave it out")
        cond_dim = int(snr_columns) if snr_condition else 0
        if "cond_dim" in kwargs and kwargs.pop("cond_dim") != cond_dim:
            raise ConfigError("inn_noise: cond_dim follows from snr_condition and snr_columns; leave it out")
        if snr_condition and not snr_columns:
            raise ConfigError("inn_noise: snr_condition needs the log-SNR column (train with snr_conditioning)")
        if not 0 <= int(snr_columns) < dim_y:
            raise ConfigError(f"inn_noise: snr_columns must lie in [0, {dim_y}), got {snr_columns}")
        if not noise_scale > 0:
            raise ConfigError(f"inn_noise: noise_scale must be positive, got {noise_scale}")
        super().__init__(dim_x, dim_y, dim_z, dim_aux=dim_aux, cond_dim=cond_dim, **kwargs)
        self.noise_scale = float(noise_scale)
        self.snr_columns = int(snr_columns)
        self.noise_input = bool(noise_input)
        self.unit_noise = bool(unit_noise)
        self.snr_condition = bool(snr_condition)

    @property
    def uses_noise_realisation(self) -> bool:
        """Whether :meth:`loss` wants the noise that was added to the spectrum features."""
        return self.noise_input

    @property
    def n_features(self) -> int:
        """Spectrum-feature columns of y (without the log-SNR column)."""
        return self.dim_y - self.snr_columns

    def config(self) -> dict[str, Any]:
        config = super().config()
        config.pop("dim_aux", None)
        config.pop("cond_dim", None)
        config.update(noise_scale=self.noise_scale, snr_columns=self.snr_columns)
        if not self.noise_input:
            config["noise_input"] = False
        if self.unit_noise:
            config["unit_noise"] = True
        if self.snr_condition:
            config["snr_condition"] = True
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NoiseLatentINN:
        own = {"noise_scale", "snr_columns", "noise_input", "unit_noise", "snr_condition"}
        rest = {k: v for k, v in config.items() if k not in own} if isinstance(config, dict) else config
        _checked_kwargs(BidirectionalINN, rest, required=("dim_x", "dim_y", "dim_z"))
        return cls(**config)

    @classmethod
    def network_config(
        cls, dim_x: int, dim_y: int, snr_conditioning: bool, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Card config: ``options`` plus dimensions; ``dim_y`` counts the log-SNR column when conditioned,
        ``dim_z`` defaults to ``dim_x``."""
        net = dict(options)
        net.setdefault("dim_z", dim_x if net.get("noise_input", True) else max(dim_x, 1))
        snr_cols = 1 if snr_conditioning else 0
        net.update(dim_x=dim_x, dim_y=dim_y + snr_cols, snr_columns=snr_cols)
        return net

    @classmethod
    def training_options(cls, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """As :meth:`BidirectionalINN.training_options`, but no extra y noise: the real noise is modelled."""
        network, _ = super().training_options(settings)
        if not settings.get("inn_noise_input", True):
            network["noise_input"] = False
        if settings.get("inn_unit_noise"):
            network["unit_noise"] = True
        if settings.get("inn_snr_condition"):
            network["snr_condition"] = True
        for key in ("backward_kernels", "forward_kernels"):
            if settings.get(f"inn_{key}"):
                network[key] = [[float(c), float(a)] for c, a in settings[f"inn_{key}"]]
        return network, {"y_noise": 0.0}

    def loss(self, x: Tensor, y: Tensor, weights: dict[str, float] | None = None, y_noise: float = 0.0,
             pad_noise: float = 0.01, z_rec_noise: float = 0.02, generator: torch.Generator | None = None,
             noise: Tensor | None = None, aux: Tensor | None = None, snr: Tensor | None = None
             ) -> dict[str, Tensor]:
        """The paper's loss terms with ``[x, noise · noise_scale, s]`` as the input side.

        Args:
            noise: ``[N, n_features]`` what the camera noise added to the unstandardised log features
                (``None``: noise-free spectra).
            aux: not accepted (built here from ``noise`` and y's log-SNR column).
            snr: ``[N]`` SNR of each spectrum (``unit_noise`` models; without it ``noise_scale`` is used).
            others: as :meth:`BidirectionalINN.loss`.
        """
        if aux is not None:
            raise ValueError("inn_noise builds its auxiliary inputs itself; pass noise=..., not aux=...")
        self._check(y, self.dim_y, "y")
        n_feat = self.n_features
        if not self.noise_input:
            return super().loss(x, y, weights=weights, y_noise=y_noise, pad_noise=pad_noise,
                                z_rec_noise=z_rec_noise, generator=generator, aux=y[:, n_feat:] if self.dim_aux else None)
        if noise is None:
            noise = y.new_zeros(y.shape[0], n_feat)
        self._check(noise, n_feat, "noise")
        if self.unit_noise and snr is not None:
            scaled = noise.to(y.dtype) * torch.as_tensor(snr, dtype=y.dtype, device=y.device).reshape(-1, 1)
        else:
            scaled = noise.to(y.dtype) * self.noise_scale
        aux = torch.cat([scaled, y[:, n_feat:]], dim=1)
        return super().loss(x, y, weights=weights, y_noise=y_noise, pad_noise=pad_noise, z_rec_noise=z_rec_noise,
                            generator=generator, aux=aux)
