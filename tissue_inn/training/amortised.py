"""Training of the amortised summary network by quantile (pinball) regression on simulated spectra.

``train_amortised(data_path, estimator, noise, settings)`` is a generator of per-epoch
:class:`~tissue_inn.progress.Progress` that returns ``(QuantileNet, facts)``. The network sees
exactly what the model's posterior estimator sees: each batch's noise-free simulated spectra get the
model's own noise model (``noise.apply``, SNR log-uniform over the model's range, per spectrum), then
the estimator's preprocessing (features, standardisation, log-SNR); targets are the true parameters
in the estimator's standardised space. Everything random comes from generators seeded by
``settings.seed`` (recorded in ``facts``); the data split, batch order and noise are reproducible.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tissue_inn.config import NoiseModel
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.errors import Cancelled, ConfigError, TissueInnError
from tissue_inn.estimators.quantile_net import QuantileNet, pinball_loss
from tissue_inn.hashing import file_sha256
from tissue_inn.progress import Progress, ShouldStop

__all__ = ["AmortisedSettings", "train_amortised"]


@dataclass(frozen=True)
class AmortisedSettings:
    """Everything that defines a training run of the amortised network (stored in the card)."""

    hidden: int = 128
    n_hidden_layers: int = 2
    epochs: int = 40
    batch_size: int = 1024
    lr: float = 2e-3
    lr_min_factor: float = 0.02
    weight_decay: float = 1e-6
    val_fraction: float = 0.05
    seed: int = 0
    threads: int | None = None
    limit_samples: int | None = None

    def __post_init__(self) -> None:
        for name in ("hidden", "n_hidden_layers", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"amortised setting '{name}' must be ≥ 1")
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError("amortised setting 'val_fraction' must lie in (0, 0.5)")


def train_amortised(
    data_path: str | os.PathLike,
    estimator,
    noise: NoiseModel,
    settings: AmortisedSettings = AmortisedSettings(),
    should_stop: ShouldStop = None,
) -> Generator[Progress, None, tuple[QuantileNet, dict[str, Any]]]:
    """Train a :class:`QuantileNet` for ``estimator`` (see the module docstring)."""
    previous = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        result = yield from _train(data_path, estimator, noise, settings, should_stop)
    finally:
        torch.set_num_threads(previous)
    return result


def _train(data_path, estimator, noise: NoiseModel, settings: AmortisedSettings, should_stop: ShouldStop):
    t0 = time.monotonic()
    data = SpectraDataset(data_path, limit=settings.limit_samples)
    if tuple(data.info.parameter_names) != tuple(estimator.parameter_names):
        raise TissueInnError(f"{data_path}: its parameters {list(data.info.parameter_names)} are not the model's "
                             f"{list(estimator.parameter_names)}; simulate with the model's tissue")
    if [round(float(b), 3) for b in data.info.band_centers_nm] != [round(b, 3) for b in estimator.band_centers_nm]:
        raise TissueInnError(f"{data_path}: its bands are not the model's; simulate with the model's camera")
    estimator = estimator.cpu().eval()
    val_idx, train_idx = data.split(settings.val_fraction, settings.batch_size,
                                    torch.Generator().manual_seed(settings.seed))
    with torch.no_grad():
        t_val = estimator.x_to_net(data.x[val_idx])
        y_val, snr_val = noise.apply(data.y[val_idx], torch.Generator().manual_seed(settings.seed + 1), return_snr=True)
        c_val = estimator.y_to_net(y_val, snr_val)
    x_train, y_train = data.x[train_idx], data.y[train_idx]
    t_train = estimator.x_to_net(x_train).detach()
    probe = estimator.y_to_net(y_train[:2], torch.full((2,), 20.0, dtype=torch.float64))
    qnet = QuantileNet(probe.shape[1], estimator.n_parameters, settings.hidden, settings.n_hidden_layers,
                       settings.seed)
    opt = torch.optim.Adam(qnet.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(settings.seed + 2)
    n_train = x_train.shape[0]
    n_iter = n_train // settings.batch_size
    best = (math.inf, 0, {k: v.clone() for k, v in qnet.state_dict().items()})
    history = []
    for epoch in range(settings.epochs):
        frac = epoch / max(settings.epochs - 1, 1)
        lr = settings.lr * (settings.lr_min_factor + (1 - settings.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        qnet.train()
        order = torch.randperm(n_train, generator=gen)
        total = 0.0
        for it in range(n_iter):
            if should_stop is not None and should_stop():
                raise Cancelled("amortised training stopped")
            idx = order[it * settings.batch_size : (it + 1) * settings.batch_size]
            with torch.no_grad():
                yb, snr_b = noise.apply(y_train[idx], gen, return_snr=True)
                cb = estimator.y_to_net(yb, snr_b)
            loss = pinball_loss(qnet(cb), t_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        qnet.eval()
        with torch.no_grad():
            val = float(pinball_loss(qnet(c_val), t_val))
        history.append({"epoch": epoch + 1, "train_pinball": total / max(n_iter, 1), "val_pinball": val, "lr": lr})
        if val < best[0]:
            best = (val, epoch + 1, {k: v.clone() for k, v in qnet.state_dict().items()})
        yield Progress("train", epoch + 1, settings.epochs, f"val pinball {val:.4f}",
                       {"log_line": f"epoch {epoch + 1:3d}/{settings.epochs} pinball train "
                                    f"{total / max(n_iter, 1):.4f} val {val:.4f} lr {lr:.2e}"})
    qnet.load_state_dict(best[2])
    qnet.eval()
    facts = {
        "method": "quantile (pinball) regression on simulated spectra with the model's noise model and "
        "preprocessing",
        "settings": asdict(settings),
        "seed": settings.seed,
        "dataset": {"path": str(data_path), "sha256": file_sha256(data_path), "n_samples": len(data),
                    "n_train": int(n_train), "n_val": len(val_idx), "seed": data.info.seed},
        "noise_model": asdict(noise),
        "best_epoch": best[1],
        "best_val_pinball": round(best[0], 6),
        "seconds": round(time.monotonic() - t0, 1),
        "history": history,
    }
    return qnet, facts
