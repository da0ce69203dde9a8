"""Invertible networks (pure torch; knows nothing of tissue).

- :mod:`~tissue_inn.inn.coupling`: blocks with ``forward(x, c=None, rev=False) -> (out, log_jac)``.
- :mod:`~tissue_inn.inn.network`: :class:`InvertibleSequence`, rebuildable from a JSON config.
- :mod:`~tissue_inn.inn.losses`: multi-scale inverse-multiquadratic MMD and the paper's kernel sets.
- :mod:`~tissue_inn.inn.families`: :class:`BidirectionalINN` (Ardizzone et al. 2019) and
  :class:`ConditionalINN` (maximum likelihood), both in standardised units.
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

__all__ = [
    "BACKWARD_KERNELS",
    "BLOCK_TYPES",
    "DEFAULT_LOSS_WEIGHTS",
    "FORWARD_KERNELS",
    "MLP",
    "ActNorm",
    "BidirectionalINN",
    "ConditionalINN",
    "FixedPermutation",
    "GLOWCoupling",
    "InvertibleSequence",
    "RealNVPCoupling",
    "gaussian_pair_weights",
    "mlp_constructor",
    "mmd_multiscale",
    "soft_clamp",
]
