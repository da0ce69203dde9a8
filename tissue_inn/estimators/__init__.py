"""Estimators: spectra in, posterior samples of tissue parameters out (re-exports only).

- :mod:`~tissue_inn.estimators.posterior_estimator`: :class:`PosteriorEstimator` (preprocessing + a
  network family, one state_dict) and :func:`make_spec` (its JSON spec, stored in the model card).
"""

from tissue_inn.estimators.posterior_estimator import PosteriorEstimator, make_spec
from tissue_inn.inn.registry import FAMILIES

__all__ = ["FAMILIES", "PosteriorEstimator", "make_spec"]
