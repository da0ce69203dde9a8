"""The regression / MC-dropout baseline the posterior networks are compared with (Ardizzone et al., ICLR 2019, Sec. 4.2).

:class:`RegressionMLP` — a direct regression network y → x (in the standardised unbounded
parameter space, so predictions stay inside the prior support). Point estimate with dropout off;
with MC dropout (Gal & Ghahramani 2016) its T stochastic passes are the "posterior" samples.
Dropout masks are drawn from an explicit ``torch.Generator`` (never the global RNG). The other
baseline, ABC rejection, is in :mod:`tissue_inn.inference.abc_rejection`.

Trained baselines are saved without pickle: ``model.safetensors`` + ``baseline.json`` in a folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from tissue_inn.atomic import atomic_dir
from tissue_inn.config import Camera, TissueModel
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.data.preprocess import ParameterSpectrumCoding, bounds_from_json, bounds_to_json
from tissue_inn.errors import Cancelled, ConfigError, ModelBundleError
from tissue_inn.hashing import file_sha256
from tissue_inn.progress import Progress, ShouldStop

__all__ = [
    "RegressionMLP",
    "RegressionSettings",
    "RegressionResult",
    "train_regression",
    "save_regression",
    "load_regression",
]

BASELINE_CARD = "baseline.json"
BASELINE_WEIGHTS = "model.safetensors"


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
    val_idx, train_idx = data.split(settings.val_fraction, settings.batch_size, gen, settings.val_max)
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
