"""The loaded model: reading a bundle into a posterior, its parameters, priors and card summary.

Everything the GUI needs to know about bundles goes through here (the GUI never imports
:mod:`tissue_inn.io`): whether a folder is a bundle, the card's text summary, prior draws.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tissue_inn.inference.posterior import Posterior

__all__ = ["LoadedModel", "load_model", "is_bundle", "bundle_folder_of", "card_summary", "prior_samples", "CARD_FILE"]

#: The card file of a bundle folder (kept equal to :data:`tissue_inn.io.bundle.CARD`; a test checks it).
CARD_FILE = "model_card.json"


@dataclass
class LoadedModel:
    """A bundle read into a :class:`~tissue_inn.inference.posterior.Posterior`.

    Attributes:
        posterior: Samples and summarises spectra.
        card: The bundle's card (a copy).
        path: The bundle folder.
    """

    posterior: Posterior
    card: dict[str, Any]
    path: Path
    _prior_cache: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)
    _prior_hist_cache: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return str(self.card.get("name") or self.path.name)

    @property
    def parameter_names(self) -> list[str]:
        return list(self.posterior.parameter_names)

    @property
    def units(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.posterior.units.items()}

    @property
    def prior_bounds(self) -> dict[str, tuple[float, float]]:
        arr = np.asarray(self.posterior.prior_bounds, dtype=float).reshape(-1, 2)
        return {n: (float(lo), float(hi)) for n, (lo, hi) in zip(self.parameter_names, arr)}

    @property
    def band_centers_nm(self) -> np.ndarray:
        return np.asarray(self.posterior.band_centers_nm, dtype=float)

    @property
    def has_amortised(self) -> bool:
        """The bundle carries an amortised quantile network (instant maps)."""
        return bool(self.posterior.has_amortised)

    @property
    def snr_range(self) -> tuple[float, float] | None:
        """The SNR range the model was trained on (from its noise model), or None."""
        noise = self.card.get("noise_model") or (self.card.get("camera") or {}).get("noise") or {}
        lo, hi = noise.get("snr_min"), noise.get("snr_max")
        if lo is None or hi is None:
            return None
        return float(lo), float(hi)

    def prior_samples(self, n: int = 100_000, seed: int = 0) -> np.ndarray:
        """``[n, D]`` prior draws, cached per ``(n, seed)`` (see :func:`prior_samples`)."""
        key = (int(n), int(seed))
        if key not in self._prior_cache:
            self._prior_cache[key] = prior_samples(self.posterior, self.prior_bounds, n, seed)
        return self._prior_cache[key]


    def prior_density(self, j: int, low: float, high: float, bins: int, seed: int = 0) -> np.ndarray:
        """The prior's density histogram of parameter ``j`` on [low, high] (cached: every click shows it)."""
        from tissue_inn.workspace.display import histogram

        key = (j, float(low), float(high), int(bins), int(seed))
        if key not in self._prior_hist_cache:
            self._prior_hist_cache[key] = histogram(self.prior_samples(seed=seed)[:, j], low, high, bins)[1]
        return self._prior_hist_cache[key]


def load_model(name_or_path: str | os.PathLike | None = None, device: str | None = None) -> LoadedModel:
    """Read a bundle (folder or shipped name; None = the default model).

    Raises:
        ModelBundleError: The bundle is missing, unreadable or inconsistent.
    """
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.io.bundle import resolve_model

    path = Path(resolve_model(name_or_path))
    posterior = Posterior.from_bundle(path, device=device)
    return LoadedModel(posterior, dict(posterior.card), path)


def is_bundle(path: str | os.PathLike) -> bool:
    """A folder holding a model card."""
    p = Path(path)
    return p.is_dir() and (p / CARD_FILE).is_file()


def bundle_folder_of(path: str | os.PathLike) -> Path | None:
    """The bundle folder for a dropped path (the folder itself, or the folder of its card), or None."""
    p = Path(path)
    if is_bundle(p):
        return p
    if p.is_file() and p.name == CARD_FILE:
        return p.parent
    return None


def card_summary(card: Mapping[str, Any]) -> str:
    """The card as the CLI's ``info`` prints it (falls back to a note when the card is incomplete)."""
    from tissue_inn.io.bundle import format_card

    try:
        return format_card(dict(card))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"(card summary unavailable: {exc})"


def prior_samples(
    posterior: Posterior, bounds: Mapping[str, tuple[float, float]], n: int = 100_000, seed: int = 0
) -> np.ndarray:
    """``[n, D]`` draws from the model's prior: the posterior's tissue definition when it has one whose
    parameters are the model's; else uniform over finite prior bounds (NaN for an unbounded parameter)."""
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    names = list(posterior.parameter_names)
    tissue = posterior.tissue
    if tissue is not None and list(tissue.parameter_names) == names:
        return tissue.sample_prior(int(n), gen).double().numpy()
    samples = np.full((int(n), len(names)), np.nan)
    u = torch.rand(int(n), len(names), generator=gen, dtype=torch.float64).numpy()
    for j, name in enumerate(names):
        lo, hi = bounds[name]
        if math.isfinite(lo) and math.isfinite(hi):
            samples[:, j] = lo + (hi - lo) * u[:, j]
    return samples
