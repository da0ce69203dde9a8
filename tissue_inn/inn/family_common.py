"""Pieces shared by the network families: the block-config keys, seeded normal draws, a noise generator."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["NETWORK_KEYS", "GeneratorMixin", "normal"]

NETWORK_KEYS = ("n_blocks", "block_type", "hidden", "n_hidden_layers", "clamp", "actnorm", "seed", "permute")


def normal(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)


class GeneratorMixin:
    """A module-owned noise generator (seeded from the config) used when the caller passes none."""

    _noise_seed: int
    _noise_generator: torch.Generator | None = None

    def _generator(self, generator: torch.Generator | None) -> torch.Generator:
        if generator is not None:
            return generator
        if self._noise_generator is None:
            self._noise_generator = torch.Generator().manual_seed(self._noise_seed + 1_000_003)
        return self._noise_generator

    def latent_draws(self, n_rows: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``[n_rows, latent_dim]`` standard-normal latent codes: exactly what ``sample`` draws from ``generator``,
        so ``decode(c.repeat_interleave(n, 0), latent_draws(N·n, c, g))`` reproduces ``sample(c, n, g)``."""
        return normal((n_rows, self.latent_dim), like, self._generator(generator))
