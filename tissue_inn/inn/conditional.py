"""The conditional INN family (standardised units; the caller normalises x and c).

``ConditionalINN`` — the later conditional form (Ardizzone et al. 2019, "Guided image generation with
conditional INNs"; as in BayesFlow / sbi NPE): ``x ↔ z`` conditioned on ``c`` (= y), trained by maximum
likelihood ``½‖z‖² − log|det J|``. Posterior samples: run it backwards on ``z ~ N(0, I)`` given c.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tissue_inn.errors import ConfigError
from tissue_inn.inn.coupling import MLP
from tissue_inn.inn.family_common import NETWORK_KEYS, GeneratorMixin
from tissue_inn.inn.network import InvertibleSequence, _checked_kwargs

__all__ = ["ConditionalINN"]


class ConditionalINN(GeneratorMixin, nn.Module):
    """Conditional INN ``x ↔ z | c`` trained by maximum likelihood.

    Args:
        dim_x: width of x (≥ 2; pad the data if it has one dimension).
        dim_cond: width of the condition c (e.g. the standardised observation y).
        cond_net_hidden: if an int, c first passes a small MLP (2 hidden ReLU layers of this width,
            output ``cond_features``) that is trained with the flow; ``None`` feeds c directly.
        cond_features: output width of the conditioning MLP (default ``cond_net_hidden``).
        n_blocks, block_type, hidden, n_hidden_layers, clamp, actnorm, seed, permute: passed to
            :class:`~tissue_inn.inn.network.InvertibleSequence`.

    Example:
        >>> model = ConditionalINN(dim_x=2, dim_cond=3, n_blocks=2, hidden=16)
        >>> c = torch.zeros(4, 3)
        >>> tuple(model.sample(c, n_draws=6, generator=torch.Generator().manual_seed(0)).shape)
        (4, 6, 2)
    """

    family_name: ClassVar[str] = "cinn"
    supports_snr_conditioning: ClassVar[bool] = True
    decodes_repeated: ClassVar[bool] = True
    """:meth:`decode` takes ``repeats`` (one condition row for that many latent rows)."""

    def __init__(
        self,
        dim_x: int,
        dim_cond: int,
        cond_net_hidden: int | None = None,
        cond_features: int | None = None,
        n_blocks: int = 4,
        block_type: str = "realnvp",
        hidden: int = 128,
        n_hidden_layers: int = 3,
        clamp: float = 2.0,
        actnorm: bool = False,
        seed: int = 0,
        permute: bool = True,
    ) -> None:
        super().__init__()
        if dim_cond < 1:
            raise ConfigError(f"dim_cond must be >= 1, got {dim_cond}")
        self.dim_x, self.dim_cond = int(dim_x), int(dim_cond)
        self.cond_net_hidden = None if cond_net_hidden is None else int(cond_net_hidden)
        self._noise_seed = int(seed)
        if self.cond_net_hidden is None:
            if cond_features is not None:
                raise ConfigError("cond_features needs cond_net_hidden (the conditioning MLP)")
            self.cond_features = None
            self.cond_net: nn.Module | None = None
            net_cond_dim = self.dim_cond
        else:
            self.cond_features = int(cond_features) if cond_features is not None else self.cond_net_hidden
            self.cond_net = MLP(
                self.dim_cond,
                self.cond_features,
                hidden=self.cond_net_hidden,
                n_hidden_layers=2,
                generator=torch.Generator().manual_seed(int(seed) + 7919),
                zero_last=False,
            )
            net_cond_dim = self.cond_features
        self.network = InvertibleSequence(
            self.dim_x,
            n_blocks=n_blocks,
            block_type=block_type,
            hidden=hidden,
            n_hidden_layers=n_hidden_layers,
            clamp=clamp,
            cond_dim=net_cond_dim,
            actnorm=actnorm,
            seed=seed,
            permute=permute,
        )

    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict."""
        net = self.network.config()
        return {
            "dim_x": self.dim_x,
            "dim_cond": self.dim_cond,
            "cond_net_hidden": self.cond_net_hidden,
            "cond_features": self.cond_features,
            **{key: net[key] for key in NETWORK_KEYS},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConditionalINN:
        """Rebuild from :meth:`config` output (weights then come from ``load_state_dict``)."""
        return cls(**_checked_kwargs(cls, config, required=("dim_x", "dim_cond")))

    # ------------------------------------------------------------------ family protocol
    @classmethod
    def network_config(
        cls, dim_x: int, dim_y: int, snr_conditioning: bool, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Card config: ``options`` plus ``dim_x`` and ``dim_cond`` (= dim_y, + 1 for log-SNR)."""
        net = dict(options)
        net.update(dim_x=dim_x, dim_cond=dim_y + (1 if snr_conditioning else 0))
        return net

    @classmethod
    def training_options(cls, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(network options, loss options)`` from training settings: ``cond_net_hidden`` only."""
        network: dict[str, Any] = {}
        if settings.get("cond_net_hidden") is not None:
            network["cond_net_hidden"] = settings["cond_net_hidden"]
        return network, {}

    @property
    def latent_dim(self) -> int:
        """Width of z (= dim_x: the flow maps x to z one to one)."""
        return self.dim_x

    def decode(self, c: Tensor, z: Tensor, repeats: int = 1) -> Tensor:
        """x for one ``(c, z)`` pair per row: the network run backwards (no log-determinant).

        ``repeats``: ``c`` holds one row per ``repeats`` consecutive rows of z (the draws of one spectrum);
        the same x as ``decode(c.repeat_interleave(repeats, 0), z)`` without building that array, and
        the condition's share of the subnets is computed once per spectrum.
        """
        if repeats < 1 or z.shape[0] % repeats:
            raise ValueError(f"z has {z.shape[0]} rows, not a multiple of repeats={repeats}")
        return self.network.transform(z, c=self._condition(c, z.shape[0] // repeats), rev=True, repeats=repeats)

    def _condition(self, c: Tensor, batch: int) -> Tensor:
        if c.ndim != 2 or c.shape[1] != self.dim_cond:
            raise ValueError(f"c must have shape [batch, {self.dim_cond}], got {tuple(c.shape)}")
        if c.shape[0] != batch:
            raise ValueError(f"c has {c.shape[0]} rows but x has {batch}; give one condition per row")
        return self.cond_net(c) if self.cond_net is not None else c

    def forward(self, x: Tensor, c: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        """x → z (or z → x with ``rev=True``) given c; returns ``(out, log_jac [batch])``."""
        return self.network(x, c=self._condition(c, x.shape[0]), rev=rev)

    def log_prob(self, x: Tensor, c: Tensor) -> Tensor:
        """log p(x | c) = log N(z; 0, I) + log|det ∂z/∂x|, shape ``[batch]``."""
        z, log_jac = self.forward(x, c)
        return -0.5 * (z**2).sum(dim=1) - 0.5 * self.dim_x * math.log(2.0 * math.pi) + log_jac

    def loss(self, x: Tensor, c: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Negative log-likelihood per dimension (without the constant): ``mean(½‖z‖² − log|det J|) / dim_x``.

        ``generator`` is accepted for the family protocol and unused (the likelihood draws no noise).

        Returns:
            ``{'nll': ..., 'total': ...}`` (the same tensor; ``total`` for symmetry with the other family).
        """
        z, log_jac = self.forward(x, c)
        nll = (0.5 * (z**2).sum(dim=1) - log_jac).mean() / self.dim_x
        return {"nll": nll, "total": nll}

    @torch.no_grad()
    def sample(self, c: Tensor, n_draws: int, generator: torch.Generator | None = None) -> Tensor:
        """Posterior samples given c: ``[N, n_draws, dim_x]``."""
        gen = self._generator(generator)
        n_obs = c.shape[0]
        z = self.latent_draws(n_obs * n_draws, c, gen)
        return self.decode(c, z, repeats=n_draws).reshape(n_obs, n_draws, self.dim_x)
