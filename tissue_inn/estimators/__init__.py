"""Estimators: spectra in, posterior samples of tissue parameters out (re-exports only).

- :mod:`~tissue_inn.estimators.posterior_estimator`: :class:`PosteriorEstimator` (preprocessing + a
  network family, one state_dict) and :func:`make_spec` (its JSON spec, stored in the model card).
- :mod:`~tissue_inn.estimators.quantile_net`: :class:`QuantileNet`, the amortised quantile network of
  instant maps (an optional second file of a bundle).
- :mod:`~tissue_inn.estimators.surrogate`: :class:`ForwardSurrogate`, the learned forward model behind
  the misfit gate (an optional third file of a bundle).
"""

from tissue_inn.estimators.posterior_estimator import PosteriorEstimator, make_spec
from tissue_inn.inn.registry import FAMILIES

__all__ = ["FAMILIES", "PosteriorEstimator", "make_spec"]
