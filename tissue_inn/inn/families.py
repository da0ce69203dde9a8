"""The two model families, one module each (re-exported here).

- :class:`~tissue_inn.inn.bidirectional.BidirectionalINN` — the paper's INN (Ardizzone et al., ICLR 2019).
- :class:`~tissue_inn.inn.conditional.ConditionalINN` — the conditional INN trained by maximum likelihood.

The family contract and the one list of families: :mod:`tissue_inn.inn.registry`.
"""

from tissue_inn.inn.bidirectional import DEFAULT_LOSS_WEIGHTS, BidirectionalINN
from tissue_inn.inn.conditional import ConditionalINN

__all__ = ["DEFAULT_LOSS_WEIGHTS", "BidirectionalINN", "ConditionalINN"]
