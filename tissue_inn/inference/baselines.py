"""Baselines the posterior networks are compared with (as in Ardizzone et al., ICLR 2019, Sec. 4.2).

* :class:`ABCRejection` — approximate Bayesian computation by rejection: a reference bank of
  simulated, *noisy* spectra (≥ 1 M in production, noise drawn like the model's training noise);
  for a measured spectrum the parameters of its k nearest bank spectra (Euclidean distance in the
  preprocessed, standardised feature space) are the posterior samples. Exact kNN, batched with
  bounded memory (:func:`knn_search`), CPU or GPU. SCIENCE.md §6b: k = 32 of 200 k was well
  calibrated, k = 256 too wide.
* :class:`RegressionMLP` — a direct regression network y → x (in the standardised unbounded
  parameter space, so predictions stay inside the prior support). Point estimate with dropout off;
  with MC dropout (Gal & Ghahramani 2016) its T stochastic passes are the "posterior" samples.
  Dropout masks are drawn from an explicit ``torch.Generator`` (never the global RNG).

Trained baselines are saved without pickle: ``model.safetensors`` + ``baseline.json`` in a folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from tissue_inn.atomic import atomic_dir
from tissue_inn.config import Camera, NoiseModel, TissueModel
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.data.preprocess import (
    ParameterSpectrumCoding,
    SpectrumFeatures,
    Standardizer,
    bounds_from_json,
    bounds_to_json,
)
from tissue_inn.errors import Cancelled, ConfigError, ModelBundleError, TissueInnError
from tissue_inn.hashing import file_sha256
from tissue_inn.progress import Progress, ShouldStop

__all__ = [
    "knn_search",
    "FeatureFn",
    "estimator_features",
    "FittedFeatures",
    "ABCRejection",
    "RegressionMLP",
    "RegressionSettings",
    "RegressionResult",
    "train_regression",
    "save_regression",
    "load_regression",
]

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
BASELINE_CARD = "baseline.json"
BASELINE_WEIGHTS = "model.safetensors"


# ============================================================================================ kNN / ABC
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


# ============================================================================================ regression
def _dropout(h: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    if p <= 0:
        return h
    u = torch.rand(h.shape, generator=generator, dtype=h.dtype, device="cpu").to(h.device)
    return h * (u >= p).to(h.dtype) / (1.0 - p)


def _seeded_linear(n_in: int, n_out: int) -> nn.Linear:
    # built on the meta device so the global RNG is not consumed; weights are set from a seeded generator
    return nn.Linear(n_in, n_out, device="meta").to_empty(device="cpu")


class RegressionMLP(ParameterSpectrumCoding, nn.Module):
    """Direct regression y → x with optional MC dropout; preprocessing buffers travel in its state dict.

    Args:
        spec: ``parameter_names``, ``parameter_units``, ``prior_low``/``prior_high`` (None = unbounded),
            ``band_centers_nm``, ``hidden``, ``n_hidden_layers``, ``dropout``, ``normalization``, ``seed``.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        try:
            self.spec = dict(spec)
            self.parameter_names = tuple(spec["parameter_names"])
            self.parameter_units = tuple(spec["parameter_units"])
            self.band_centers_nm = tuple(float(v) for v in spec["band_centers_nm"])
            low = bounds_from_json(spec["prior_low"], -math.inf)
            high = bounds_from_json(spec["prior_high"], math.inf)
            hidden = int(spec.get("hidden", 256))
            n_layers = int(spec.get("n_hidden_layers", 3))
            self.dropout = float(spec.get("dropout", 0.1))
            normalization = spec.get("normalization", "geometric_mean")
            seed = int(spec.get("seed", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelBundleError(f"regression baseline spec is malformed ({exc}); retrain it") from None
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        d, b = len(self.parameter_names), len(self.band_centers_nm)
        self._init_coding(low, high, b, normalization)
        dims = [b] + [hidden] * n_layers
        self.hidden_layers = nn.ModuleList(_seeded_linear(i, o) for i, o in zip(dims[:-1], dims[1:]))
        self.head = _seeded_linear(dims[-1], d)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for layer in [*self.hidden_layers, self.head]:
                bound = 1.0 / math.sqrt(layer.in_features)  # PyTorch's default Linear init range
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound)
                layer.bias.copy_((torch.rand(layer.bias.shape, generator=gen) * 2 - 1) * bound)

    def net(self, c: torch.Tensor, generator: torch.Generator | None = None, stochastic: bool = False) -> torch.Tensor:
        """Standardised features → standardised unbounded parameters; dropout only when ``stochastic``."""
        h = c
        for layer in self.hidden_layers:
            h = torch.relu(layer(h))
            if stochastic:
                h = _dropout(h, self.dropout, generator)
        return self.head(h)

    def _check(self, y: torch.Tensor) -> None:
        if y.ndim != 2 or y.shape[1] != self.n_bands:
            raise ValueError(f"spectra must have shape [N, {self.n_bands}], got {tuple(y.shape)}")

    @torch.no_grad()
    def predict(self, y_reflectance: torch.Tensor) -> torch.Tensor:
        """Point estimates ``[N, D]`` (float64, physical units), dropout off."""
        self._check(y_reflectance)
        return self.net_to_x(self.net(self.y_to_net(y_reflectance)))

    @torch.no_grad()
    def point_samples(self, y_reflectance: torch.Tensor) -> torch.Tensor:
        """The point estimate as one "sample": ``[N, 1, D]``."""
        return self.predict(y_reflectance)[:, None, :]

    @torch.no_grad()
    def sample(
        self,
        y_reflectance: torch.Tensor,
        n_draws: int,
        generator: torch.Generator | None = None,
        chunk_rows: int = 1 << 16,
    ) -> torch.Tensor:
        """MC-dropout samples ``[N, n_draws, D]``: ``n_draws`` stochastic passes per spectrum."""
        self._check(y_reflectance)
        if self.dropout <= 0:
            raise ConfigError("this regression baseline was trained without dropout; MC dropout needs --dropout > 0")
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        c = self.y_to_net(y_reflectance)
        n = c.shape[0]
        rep = c.repeat_interleave(n_draws, dim=0)
        out = torch.cat(
            [self.net(rep[s : s + chunk_rows], gen, stochastic=True) for s in range(0, rep.shape[0], chunk_rows)]
        )
        return self.net_to_x(out).reshape(n, n_draws, -1)


@dataclass(frozen=True)
class RegressionSettings:
    """Training settings of the regression / MC-dropout baseline (stored in ``baseline.json``)."""

    hidden: int = 256
    n_hidden_layers: int = 3
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 512
    iterations_per_epoch: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.05
    val_max: int = 4000
    seed: int = 0
    normalization: str = "geometric_mean"
    snr_min: float | None = None
    snr_max: float | None = None
    limit_samples: int | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("hidden", "n_hidden_layers", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"regression setting '{name}' must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must lie in [0, 1), got {self.dropout}")
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError("val_fraction must lie in (0, 0.5)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegressionSettings:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown regression setting(s) {sorted(unknown)}")
        return cls(**d)


@dataclass
class RegressionResult:
    model: RegressionMLP
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    seconds: float
    info: dict[str, Any]


def train_regression(
    data_path: str | os.PathLike, settings: RegressionSettings, should_stop: ShouldStop = None
) -> Generator[Progress, None, RegressionResult]:
    """Train the regression MLP by MSE in the standardised unbounded parameter space.

    Noise of the dataset camera (or ``snr_min``/``snr_max``) is applied to every batch, seeded;
    the weights with the lowest validation loss are kept. Yields one Progress per epoch.
    """
    t0 = time.monotonic()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    data = SpectraDataset(data_path, limit=settings.limit_samples)
    info = data.info
    tissue = TissueModel.from_dict(info.tissue, source=f"{data_path}:tissue")
    camera = Camera.from_dict(info.camera, source=f"{data_path}:camera")
    noise = camera.noise.with_snr_range(settings.snr_min, settings.snr_max)
    bounds = tissue.prior_bounds()
    spec = {
        "parameter_names": list(info.parameter_names),
        "parameter_units": list(info.parameter_units),
        "prior_low": bounds_to_json(bounds[:, 0]),
        "prior_high": bounds_to_json(bounds[:, 1]),
        "band_centers_nm": list(info.band_centers_nm),
        "hidden": settings.hidden,
        "n_hidden_layers": settings.n_hidden_layers,
        "dropout": settings.dropout,
        "normalization": settings.normalization,
        "seed": settings.seed,
    }
    model = RegressionMLP(spec)
    gen = torch.Generator().manual_seed(settings.seed)
    perm = torch.randperm(len(data), generator=gen)
    n_val = min(max(int(len(data) * settings.val_fraction), 1), settings.val_max)
    if len(data) - n_val < settings.batch_size:
        raise TissueInnError(f"{data_path}: {len(data)} samples are too few for batch size {settings.batch_size}")
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    x_tr, y_tr = data.x[train_idx], data.y[train_idx]
    model.fit_scalers(x_tr, y_tr)
    u_tr = model.x_to_net(x_tr)
    u_val = model.x_to_net(data.x[val_idx])
    c_val = model.y_to_net(noise.apply(data.y[val_idx], torch.Generator().manual_seed(settings.seed + 1)))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    n_train = x_tr.shape[0]
    n_iter = n_train // settings.batch_size
    if settings.iterations_per_epoch:
        n_iter = min(n_iter, settings.iterations_per_epoch)
    best = (0, math.inf)
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    for epoch in range(settings.epochs):
        te = time.monotonic()
        lr = settings.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch / max(settings.epochs - 1, 1))))
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        order = torch.randperm(n_train, generator=gen)
        total = 0.0
        for it in range(n_iter):
            if should_stop is not None and should_stop():
                raise Cancelled("regression training stopped")
            idx = order[it * settings.batch_size : (it + 1) * settings.batch_size]
            c = model.y_to_net(noise.apply(y_tr[idx], gen))
            pred = model.net(c, gen, stochastic=True)
            loss = ((pred - u_tr[idx]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        model.eval()
        with torch.no_grad():
            val = float(((model.net(c_val) - u_val) ** 2).mean())
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(n_iter, 1),
                "val_loss": val,
                "lr": lr,
                "seconds": time.monotonic() - te,
            }
        )
        if val < best[1]:
            best = (epoch + 1, val)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        line = f"epoch {epoch + 1:3d}/{settings.epochs} train={total / max(n_iter, 1):.4f} val={val:.4f}"
        yield Progress("baseline", epoch + 1, settings.epochs, f"val={val:.4f}", {"log_line": line})
    model.load_state_dict(best_state)
    model.eval()
    meta = {
        "dataset": {
            "path": str(data_path),
            "n_samples": info.n_samples,
            "sha256": file_sha256(data_path),
            "seed": info.seed,
        },
        "noise_model": asdict(noise),
        "settings": asdict(settings),
    }
    return RegressionResult(model, history, best[0], best[1], time.monotonic() - t0, meta)


def save_regression(
    model: RegressionMLP, folder: str | os.PathLike, force: bool = False, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``model.safetensors`` + ``baseline.json`` into ``folder`` (atomically, a temp folder renamed)."""
    with atomic_dir(folder, force=force) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / BASELINE_WEIGHTS))
        card = {
            "kind": "regression_mlp",
            "schema_version": 1,
            "spec": model.spec,
            "sha256": file_sha256(tmp / BASELINE_WEIGHTS),
            "tensors": {k: list(v.shape) for k, v in state.items()},
            **(extra or {}),
        }
        (tmp / BASELINE_CARD).write_text(json.dumps(card, indent=2, allow_nan=False))
    return Path(folder)


def load_regression(folder: str | os.PathLike) -> tuple[RegressionMLP, dict[str, Any]]:
    """Load a baseline saved by :func:`save_regression` → ``(model in eval mode, card)``."""
    folder = Path(folder)
    card_path, wpath = folder / BASELINE_CARD, folder / BASELINE_WEIGHTS
    if not card_path.is_file() or not wpath.is_file():
        raise ModelBundleError(
            f"{folder}: not a regression baseline (needs {BASELINE_CARD} and {BASELINE_WEIGHTS});"
            " make one with 'tissue-inn baseline regression'"
        )
    try:
        card = json.loads(card_path.read_text())
        if card.get("kind") != "regression_mlp":
            raise ModelBundleError(f"{card_path}: kind {card.get('kind')!r} is not 'regression_mlp'")
        if card.get("sha256") != file_sha256(wpath):
            raise ModelBundleError(f"{wpath}: sha256 does not match {BASELINE_CARD}; the weights were changed")
        state = load_file(str(wpath))
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as exc:
        raise ModelBundleError(f"{folder}: unreadable regression baseline ({exc})") from None
    model = RegressionMLP(card["spec"])
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelBundleError(f"{wpath}: weights do not fit the spec ({str(exc)[:200]})") from None
    model.eval()
    return model, card
