"""Invertible networks (pure torch; knows nothing of tissue).

- :mod:`~tissue_inn.inn.coupling`: blocks with ``forward(x, c=None, rev=False) -> (out, log_jac)``.
- :mod:`~tissue_inn.inn.network`: :class:`InvertibleSequence`, rebuildable from a JSON config.
- :mod:`~tissue_inn.inn.losses`: multi-scale inverse-multiquadratic MMD and the paper's kernel sets.
- :mod:`~tissue_inn.inn.bidirectional`: :class:`BidirectionalINN` (Ardizzone et al. 2019) and
  :mod:`~tissue_inn.inn.conditional`: :class:`ConditionalINN` (maximum likelihood), both in standardised units.
- :mod:`~tissue_inn.inn.noise_latent`: :class:`~tissue_inn.inn.noise_latent.NoiseLatentINN` (``inn_noise``: the
  paper's INN with the measurement noise on its input side).
- :mod:`~tissue_inn.inn.registry`: the :class:`NetworkFamily` contract and :data:`FAMILIES`, the one list
  of families (add a family: one module + one line there).
"""

from tissue_inn.inn.coupling import (
    MLP,
    ActNorm,
    FixedPermutation,
    GLOWCoupling,
    RealNVPCoupling,
    mlp_constructor,
    soft_clamp,
)
from tissue_inn.inn.families import DEFAULT_LOSS_WEIGHTS, BidirectionalINN, ConditionalINN
from tissue_inn.inn.losses import (
    BACKWARD_KERNELS,
    FORWARD_KERNELS,
    gaussian_pair_weights,
    mmd_multiscale,
)
from tissue_inn.inn.network import BLOCK_TYPES, InvertibleSequence
from tissue_inn.inn.registry import FAMILIES, NetworkFamily, family_names, get_family

__all__ = [
    "BACKWARD_KERNELS",
    "BLOCK_TYPES",
    "DEFAULT_LOSS_WEIGHTS",
    "FAMILIES",
    "FORWARD_KERNELS",
    "MLP",
    "ActNorm",
    "BidirectionalINN",
    "ConditionalINN",
    "FixedPermutation",
    "GLOWCoupling",
    "InvertibleSequence",
    "NetworkFamily",
    "RealNVPCoupling",
    "family_names",
    "gaussian_pair_weights",
    "get_family",
    "mlp_constructor",
    "mmd_multiscale",
    "soft_clamp",
]
