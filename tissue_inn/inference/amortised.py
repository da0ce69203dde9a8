"""Checking the amortised quantile network against the INN's draws on held-out simulations.

``check_amortised(estimator, qnet, x, y, snr, n_draws=1024, seed=0)`` adds the model's own noise at
``snr`` to the noise-free held-out spectra ``y`` (seeded), then compares, per parameter:

- ``median_gap_over_inn_iqr``: median over spectra of |amortised median − INN median| / INN IQR
  (how far the instant map's median sits from the exact one, in units of the posterior's width);
- ``iqr_ratio``, ``w90_ratio``: median over spectra of the amortised 50 % / 90 % interval width
  divided by the INN's;
- ``coverage50``, ``coverage90``: fraction of true parameters inside the amortised 50 % / 90 %
  intervals (calibration; ideal 0.50 / 0.90), next to ``inn_coverage50``/``inn_coverage90``;
- ``mae``: mean |median − truth| of both (point accuracy).

The summary keeps sO2 and the worst parameter. These are the figures stored in the model card's
``amortised.evaluation`` section.

Example:
    >>> from tissue_inn.estimators import PosteriorEstimator, make_spec
    >>> from tissue_inn.estimators.quantile_net import QuantileNet
    >>> est = PosteriorEstimator(make_spec("cinn", ["a", "b"], ["1", "1"], [0.0, 0.0], [1.0, 1.0],
    ...                                    [500.0, 600.0, 700.0], {"n_blocks": 2, "hidden": 8}))
    >>> x = torch.rand(6, 2, generator=torch.Generator().manual_seed(0)).double()
    >>> y = torch.full((6, 3), 0.3, dtype=torch.float64)
    >>> out = check_amortised(est, QuantileNet(3, 2, hidden=8), x, y, snr=20.0, n_draws=16)
    >>> sorted(out["per_parameter"]["a"])[:3]
    ['coverage50', 'coverage90', 'inn_coverage50']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tissue_inn.config import NoiseModel
from tissue_inn.estimators.quantile_net import amortised_quantiles
from tissue_inn.inference.sampling import unit_generator

__all__ = ["check_amortised"]


def _r(v: float) -> float:
    return round(float(v), 4)


@torch.no_grad()
def check_amortised(estimator, qnet, x: torch.Tensor, y: torch.Tensor, snr: float, n_draws: int = 1024,
                    seed: int = 0, noise: NoiseModel | None = None, chunk: int = 64) -> dict[str, Any]:
    """Amortised quantiles vs the INN's draws on held-out ``(x, y)`` at ``snr`` (module docstring)."""
    noise = noise or NoiseModel()
    y_noisy = noise.apply(y.double(), torch.Generator().manual_seed(seed), snr=float(snr))
    q_a = amortised_quantiles(estimator, qnet, y_noisy, float(snr)).numpy()  # [N, D, 5]
    q_i = []
    levels = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
    for k, s in enumerate(range(0, y_noisy.shape[0], chunk)):
        samples = estimator.sample(y_noisy[s : s + chunk], n_draws, generator=unit_generator(seed, 0, k), snr=float(snr))
        q_i.append(torch.quantile(samples, levels, dim=1).permute(1, 2, 0))
    q_i = torch.cat(q_i).numpy()
    truth = x.double().numpy()
    per: dict[str, dict[str, float]] = {}
    for d, name in enumerate(estimator.parameter_names):
        a, i, t = q_a[:, d], q_i[:, d], truth[:, d]
        iqr_i = np.maximum(i[:, 3] - i[:, 1], 1e-12)
        w90_i = np.maximum(i[:, 4] - i[:, 0], 1e-12)
        per[name] = {
            "median_gap_over_inn_iqr": _r(np.median(np.abs(a[:, 2] - i[:, 2]) / iqr_i)),
            "iqr_ratio": _r(np.median((a[:, 3] - a[:, 1]) / iqr_i)),
            "w90_ratio": _r(np.median((a[:, 4] - a[:, 0]) / w90_i)),
            "coverage50": _r(np.mean((t >= a[:, 1]) & (t <= a[:, 3]))),
            "coverage90": _r(np.mean((t >= a[:, 0]) & (t <= a[:, 4]))),
            "inn_coverage50": _r(np.mean((t >= i[:, 1]) & (t <= i[:, 3]))),
            "inn_coverage90": _r(np.mean((t >= i[:, 0]) & (t <= i[:, 4]))),
            "mae": _r(np.mean(np.abs(a[:, 2] - t))),
            "inn_mae": _r(np.mean(np.abs(i[:, 2] - t))),
        }
    worst = max(per, key=lambda n: abs(per[n]["coverage50"] - 0.5))
    first = estimator.parameter_names[0]
    return {
        "snr": float(snr),
        "n_test": int(y.shape[0]),
        "n_draws_inn": int(n_draws),
        "seed": int(seed),
        "summary": {
            f"{first}_median_gap_over_inn_iqr": per[first]["median_gap_over_inn_iqr"],
            f"{first}_iqr_ratio": per[first]["iqr_ratio"],
            f"{first}_coverage50": per[first]["coverage50"],
            f"{first}_coverage90": per[first]["coverage90"],
            f"{first}_mae": per[first]["mae"],
            f"{first}_inn_mae": per[first]["inn_mae"],
            "worst_coverage50_parameter": worst,
            "worst_coverage50": per[worst]["coverage50"],
            "max_median_gap_over_inn_iqr": max(p["median_gap_over_inn_iqr"] for p in per.values()),
        },
        "per_parameter": per,
    }
