"""What a network family is, and the one list of families.

A *family* is a class of invertible network that turns standardised spectra ``c`` into posterior
samples of standardised parameters. Everything outside :mod:`tissue_inn.inn` (the estimator, the
trainer, the workspace, the CLI) talks to a family only through :class:`NetworkFamily` and finds it
by name in :data:`FAMILIES`; nobody branches on the family's name.

Adding a family: write ``tissue_inn/inn/my_family.py`` with a class that satisfies
:class:`NetworkFamily` (:mod:`tissue_inn.inn.bidirectional` and :mod:`tissue_inn.inn.conditional` are
the two examples), then import it below and add one line to :data:`FAMILIES`.
Its name is accepted by ``TrainSettings(family=...)``, ``tissue-inn train --family`` and model cards.

Example:
    >>> sorted(FAMILIES)
    ['cinn', 'inn', 'inn_noise']
    >>> cls = get_family("cinn")
    >>> cfg = cls.network_config(dim_x=3, dim_y=2, snr_conditioning=True, options={"n_blocks": 2, "hidden": 8})
    >>> cfg["dim_x"], cfg["dim_cond"]
    (3, 3)
    >>> net = cls.from_config(cfg)
    >>> net.latent_dim
    3
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from tissue_inn.errors import ConfigError
from tissue_inn.inn.bidirectional import BidirectionalINN
from tissue_inn.inn.conditional import ConditionalINN
from tissue_inn.inn.noise_latent import NoiseLatentINN

__all__ = ["NetworkFamily", "FAMILIES", "get_family", "family_names"]


@runtime_checkable
class NetworkFamily(Protocol):
    """The contract of a network family (all tensors in standardised units).

    Class attributes:
        family_name: the name in model cards and on the command line.
        supports_snr_conditioning: whether the condition may carry log(SNR) as one extra column.

    Construction (so that a model card rebuilds the network exactly):
        ``network_config(dim_x, dim_y, snr_conditioning, options)`` → the JSON config stored in the
        card's ``estimator.network`` (dimensions filled in); ``from_config(config)`` builds the network;
        ``config()`` returns the config back. ``training_options(settings)`` picks the family's own
        entries from a training-settings mapping: ``(network options, loss keyword arguments)``.

    Use:
        ``latent_dim`` — width of the latent code z that ``decode`` takes;
        ``sample(c, n_draws, generator)`` → ``[N, n_draws, dim_x]``;
        ``decode(c, z)`` → ``[N, dim_x]`` for one condition row per latent row;
        ``latent_draws(n_rows, like, generator)`` → the latent codes ``sample`` would draw, so that
        ``decode(c.repeat_interleave(n_draws, 0), latent_draws(N · n_draws, c, g))`` equals
        ``sample(c, n_draws, g)`` (lets callers merge several seeded draws into one network call);
        ``loss(x, c, generator=None, **loss_options)`` → dict of scalar terms, ``"total"`` minimised.
    """

    family_name: ClassVar[str]
    supports_snr_conditioning: ClassVar[bool]

    @classmethod
    def network_config(
        cls, dim_x: int, dim_y: int, snr_conditioning: bool, options: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NetworkFamily: ...

    @classmethod
    def training_options(cls, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]: ...

    def config(self) -> dict[str, Any]: ...

    @property
    def latent_dim(self) -> int: ...

    def sample(self, c: Tensor, n_draws: int, generator: torch.Generator | None = None) -> Tensor: ...

    def decode(self, c: Tensor, z: Tensor) -> Tensor: ...

    def latent_draws(self, n_rows: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor: ...

    def loss(self, x: Tensor, c: Tensor, generator: torch.Generator | None = None, **options: Any) -> dict: ...


FAMILIES: dict[str, type[NetworkFamily]] = {
    "inn": BidirectionalINN,
    "cinn": ConditionalINN,
    "inn_noise": NoiseLatentINN,
}
"""Every network family by its name (one line per family)."""


def family_names() -> list[str]:
    """The registered family names, sorted (for ``--help`` and error messages)."""
    return sorted(FAMILIES)


def get_family(name: str) -> type[NetworkFamily]:
    """The family class registered as ``name``; a :class:`ConfigError` naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"model family {name!r} unknown; use one of {family_names()}") from None
