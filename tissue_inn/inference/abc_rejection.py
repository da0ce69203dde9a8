"""ABC rejection, the sampling baseline the posterior networks are compared with (Ardizzone et al., ICLR 2019, Sec. 4.2).

:class:`ABCRejection` — approximate Bayesian computation by rejection: a reference bank of
simulated, *noisy* spectra (≥ 1 M in production, noise drawn like the model's training noise);
for a measured spectrum the parameters of its k nearest bank spectra (Euclidean distance in the
preprocessed, standardised feature space) are the posterior samples. Exact kNN, batched with
bounded memory (:func:`knn_search`), CPU or GPU. SCIENCE.md §6b: k = 32 of 200 k was well
calibrated, k = 256 too wide. The other baseline, the regression MLP, is in
:mod:`tissue_inn.inference.regression`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from tissue_inn.config import NoiseModel
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.data.preprocess import SpectrumFeatures, Standardizer
from tissue_inn.errors import ConfigError

__all__ = ["knn_search", "FeatureFn", "estimator_features", "FittedFeatures", "ABCRejection"]

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def _sq_dist(q: torch.Tensor, q_norm: torch.Tensor, b: torch.Tensor, b_norm: torch.Tensor) -> torch.Tensor:
    # ‖q − b‖² = ‖q‖² + ‖b‖² − 2 q·b, clamped at 0 against rounding
    return torch.addmm(q_norm[:, None] + b_norm[None, :], q, b.T, alpha=-2.0).clamp_min_(0.0)


@torch.no_grad()
def knn_search(
    query: torch.Tensor, bank: torch.Tensor, k: int, query_chunk: int = 512, bank_chunk: int = 1 << 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours (Euclidean) of each query row among the bank rows.

    Memory is bounded by ``query_chunk × bank_chunk`` distances at a time; the bank is scanned in
    chunks and a running top-k is merged, so the result does not depend on the chunk sizes.

    Args:
        query: ``[N, F]``.
        bank: ``[M, F]`` on the device to compute on (the query is moved there).
        k: neighbours per query (``≤ M``).
        query_chunk: queries per block.
        bank_chunk: bank rows per block.

    Returns:
        ``(squared_distances [N, k], indices [N, k])``, nearest first.
    """
    if query.ndim != 2 or bank.ndim != 2 or query.shape[1] != bank.shape[1]:
        raise ValueError(f"query [N, F] and bank [M, F] must agree in F, got {tuple(query.shape)}, {tuple(bank.shape)}")
    m = bank.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k must lie in 1..{m} (bank size), got {k}")
    query = query.to(device=bank.device, dtype=bank.dtype)
    bank_norm = (bank * bank).sum(dim=1)
    out_d, out_i = [], []
    for qs in range(0, query.shape[0], query_chunk):
        q = query[qs : qs + query_chunk]
        q_norm = (q * q).sum(dim=1)
        best_d = torch.full((q.shape[0], 0), math.inf, dtype=bank.dtype, device=bank.device)
        best_i = torch.zeros((q.shape[0], 0), dtype=torch.long, device=bank.device)
        for bs in range(0, m, bank_chunk):
            d2 = _sq_dist(q, q_norm, bank[bs : bs + bank_chunk], bank_norm[bs : bs + bank_chunk])
            kk = min(k, d2.shape[1])
            td, ti = torch.topk(d2, kk, dim=1, largest=False, sorted=False)
            cand_d = torch.cat([best_d, td], dim=1)
            cand_i = torch.cat([best_i, ti + bs], dim=1)
            kk = min(k, cand_d.shape[1])
            sel_d, sel = torch.topk(cand_d, kk, dim=1, largest=False, sorted=False)
            best_d, best_i = sel_d, cand_i.gather(1, sel)
        order = torch.argsort(best_d, dim=1, stable=True)
        out_d.append(best_d.gather(1, order))
        out_i.append(best_i.gather(1, order))
    return torch.cat(out_d), torch.cat(out_i)


def estimator_features(estimator: nn.Module) -> FeatureFn:
    """The standardised spectrum features of a trained posterior estimator (``estimator.y_to_net``)."""

    def fn(y: torch.Tensor) -> torch.Tensor:
        device = next(iter(estimator.buffers())).device
        return estimator.y_to_net(y.detach().to(device).double())

    return fn


class FittedFeatures(nn.Module):
    """Own preprocessing for ABC: :class:`SpectrumFeatures` then a :class:`Standardizer` fitted on a bank."""

    def __init__(self, n_bands: int, normalization: str = "geometric_mean") -> None:
        super().__init__()
        self.features = SpectrumFeatures(n_bands, normalization)
        self.scaler = Standardizer(n_bands)

    def fit(self, y: torch.Tensor) -> FittedFeatures:
        self.scaler.fit(self.features(y.double()))
        return self

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.scaler(self.features(y.double())).float()


class ABCRejection:
    """ABC rejection sampling with a simulated reference bank (k nearest neighbours).

    Args:
        bank_x: ``[M, D]`` parameters of the bank (physical units).
        bank_features: ``[M, F]`` features of the *noisy* bank spectra (``feature_fn`` applied).
        feature_fn: spectra ``[N, B]`` → features ``[N, F]`` (same as used for the bank).
        k: accepted neighbours = posterior samples per spectrum.
        device: where the search runs (``"cpu"`` or ``"cuda"``).
        query_chunk, bank_chunk: block sizes of :func:`knn_search` (memory ≈ their product × 4 bytes).
    """

    def __init__(
        self,
        bank_x: torch.Tensor,
        bank_features: torch.Tensor,
        feature_fn: FeatureFn,
        k: int = 32,
        device: str | torch.device = "cpu",
        query_chunk: int = 512,
        bank_chunk: int = 1 << 16,
    ) -> None:
        if bank_x.shape[0] != bank_features.shape[0]:
            raise ValueError("bank_x and bank_features need the same number of rows")
        if not 1 <= k <= bank_x.shape[0]:
            raise ConfigError(f"ABC k must lie in 1..{bank_x.shape[0]} (the bank size), got {k}")
        self.device = torch.device(device)
        self.bank_x = bank_x.double().cpu()
        self.bank_features = bank_features.float().to(self.device).contiguous()
        self.feature_fn = feature_fn
        self.k = int(k)
        self.query_chunk = query_chunk
        self.bank_chunk = bank_chunk
        self.meta: dict[str, Any] = {}

    @property
    def bank_size(self) -> int:
        return int(self.bank_x.shape[0])

    @classmethod
    def from_spectra(
        cls,
        x: torch.Tensor,
        y_noisy: torch.Tensor,
        feature_fn: FeatureFn | None = None,
        k: int = 32,
        normalization: str = "geometric_mean",
        **kwargs,
    ) -> ABCRejection:
        """A bank from noisy spectra; without ``feature_fn`` a :class:`FittedFeatures` is fitted on them."""
        if feature_fn is None:
            feature_fn = FittedFeatures(y_noisy.shape[1], normalization).fit(y_noisy)
        feats = torch.cat([feature_fn(y_noisy[s : s + 65536]) for s in range(0, y_noisy.shape[0], 65536)])
        return cls(x, feats, feature_fn, k=k, **kwargs)

    @classmethod
    def from_dataset(
        cls,
        path: str | os.PathLike,
        noise: NoiseModel,
        seed: int = 0,
        feature_fn: FeatureFn | None = None,
        k: int = 32,
        limit: int | None = None,
        snr: float | None = None,
        **kwargs,
    ) -> ABCRejection:
        """A bank from a simulated dataset; noise is applied once with ``noise`` (seeded).

        Args:
            path: HDF5 dataset from ``tissue-inn simulate`` (noise-free y).
            noise: the noise model of the compared model (its training range).
            seed: seed of the bank noise.
            feature_fn: features (e.g. :func:`estimator_features`); default: fitted on the bank.
            k: neighbours.
            limit: use only the first ``limit`` spectra.
            snr: a fixed SNR for the bank noise instead of the range.
        """
        data = SpectraDataset(path, limit=limit)
        y_noisy = noise.apply(data.y, torch.Generator().manual_seed(seed), snr=snr)
        abc = cls.from_spectra(data.x, y_noisy, feature_fn, k=k, **kwargs)
        abc.meta = {
            "bank": str(path),
            "bank_size": len(data),
            "bank_seed": seed,
            "k": k,
            "bank_noise": {**asdict(noise), "snr": snr},
            "parameter_names": list(data.info.parameter_names),
            "band_centers_nm": list(data.info.band_centers_nm),
        }
        return abc

    @torch.no_grad()
    def neighbours(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(squared distances [N, k], bank indices [N, k])`` of spectra ``[N, B]``."""
        feats = self.feature_fn(torch.as_tensor(y)).float()
        return knn_search(feats, self.bank_features, self.k, self.query_chunk, self.bank_chunk)

    @torch.no_grad()
    def sample(
        self, y: torch.Tensor, n_draws: int | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[N, k, D]`` accepted bank parameters (``n_draws`` and ``generator`` are ignored: k is fixed)."""
        _, idx = self.neighbours(y)
        return self.bank_x[idx.cpu()]
