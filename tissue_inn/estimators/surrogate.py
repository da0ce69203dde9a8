"""A learned stand-in for the forward model: tissue parameters → band reflectances in microseconds.

The posterior predictive residual ("does the model explain this pixel?") re-simulates the posterior
median of every pixel. With the adding-doubling solver that is one radiative-transfer solve per
pixel (≈ 1–2 ms on a CPU core, more than the posterior itself). :class:`ForwardSurrogate` is a small
MLP trained on the model's own simulated training data that reproduces the solver's band
reflectances to a small fraction of the camera noise (its held-out error is recorded in the model
card and checked by the tests), ≈ 10³× faster than batched solves.

Coordinates. Parameters bounded on both sides enter as their position inside the prior interval
(``(x − low) / (high − low)``, then standardised); all others linearly, and those bounded below
only (scattering amplitudes) also as ``log(x − low + ε)`` — reflectance varies steeply as a
non-scattering layer's amplitude approaches 0 (standardised). Unlike the
posterior network's logit coding this keeps the prior *edges* at finite, well-sampled inputs, which
matters here: misfit posteriors pile up against an edge, and an MLP fed logits of 0.9999 would be
extrapolating. The output is ``log`` reflectance (standardised), so the training loss is a relative
error, the quantity the residual measures.

``ForwardSurrogate.in_range(x)`` says which rows lie inside the coded range seen in training (with a
small margin); callers re-simulate the others with the solver.

Everything (weights, standardisation, training range) is a buffer or parameter of the module, so
``safetensors`` weights + :attr:`ForwardSurrogate.spec` (JSON) rebuild it exactly; no pickle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch
from torch import nn

from tissue_inn.data.preprocess import Standardizer, bounds_from_json, bounds_to_json
from tissue_inn.progress import Progress

__all__ = ["ForwardSurrogate", "make_surrogate_spec", "fit_surrogate", "surrogate_errors", "SURROGATE_KIND"]

SURROGATE_KIND = "mlp-log-reflectance"
_RANGE_MARGIN = 0.05  # fraction of the training range a coded input may exceed and still count as in range


def make_surrogate_spec(
    parameter_names: list[str],
    prior_low: list[float],
    prior_high: list[float],
    band_centers_nm: list[float],
    hidden: int = 256,
    n_hidden_layers: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """JSON-able description that rebuilds a :class:`ForwardSurrogate` (weights travel separately)."""
    if len(prior_low) != len(parameter_names) or len(prior_high) != len(parameter_names):
        raise ValueError("parameter names and prior bounds differ in length")
    return {
        "kind": SURROGATE_KIND,
        "parameter_names": list(parameter_names),
        "prior_low": bounds_to_json(prior_low),
        "prior_high": bounds_to_json(prior_high),
        "band_centers_nm": [float(v) for v in band_centers_nm],
        "hidden": int(hidden),
        "n_hidden_layers": int(n_hidden_layers),
        "seed": int(seed),
    }


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """A linear layer initialised from ``generator`` (PyTorch's default uniform bound, 1/√fan_in)."""
    layer = nn.Linear(n_in, n_out)
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(n_out, generator=generator) * 2 - 1) * bound)
    return layer


class ForwardSurrogate(nn.Module):
    """``bands(x [N, D]) → [N, B]`` noise-free band reflectance, learned (see the module docstring)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        if spec.get("kind") != SURROGATE_KIND:
            raise ValueError(f"surrogate kind {spec.get('kind')!r} unknown; expected {SURROGATE_KIND!r}")
        self.spec = dict(spec)
        self.parameter_names = tuple(spec["parameter_names"])
        self.band_centers_nm = tuple(float(v) for v in spec["band_centers_nm"])
        d, b = len(self.parameter_names), len(self.band_centers_nm)
        low = torch.tensor(bounds_from_json(spec["prior_low"], -math.inf), dtype=torch.float64)
        high = torch.tensor(bounds_from_json(spec["prior_high"], math.inf), dtype=torch.float64)
        both = torch.isfinite(low) & torch.isfinite(high)
        self.register_buffer("low", torch.where(both, low, torch.zeros_like(low)))
        self.register_buffer("span", torch.where(both, high - low, torch.ones_like(low)))
        lower_only = torch.isfinite(low) & ~torch.isfinite(high)
        self.register_buffer("log_index", torch.nonzero(lower_only).flatten())
        self.register_buffer("log_low", low[lower_only])
        self.register_buffer("log_eps", torch.ones(int(lower_only.sum()), dtype=torch.float64))
        n_in = d + int(lower_only.sum())
        self.x_scaler = Standardizer(n_in)
        self.y_scaler = Standardizer(b)
        self.register_buffer("coded_min", torch.full((d,), -math.inf, dtype=torch.float64))
        self.register_buffer("coded_max", torch.full((d,), math.inf, dtype=torch.float64))
        gen = torch.Generator().manual_seed(int(spec.get("seed", 0)))
        width, layers = int(spec["hidden"]), []
        for _ in range(int(spec["n_hidden_layers"])):
            layers += [_linear(n_in, width, gen), nn.SiLU()]
            n_in = width
        layers.append(_linear(n_in, b, gen))
        self.net = nn.Sequential(*layers)

    @property
    def n_parameters(self) -> int:
        return len(self.parameter_names)

    @property
    def n_bands(self) -> int:
        return len(self.band_centers_nm)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """Physical parameters ``[N, D]`` → coded inputs (position in the prior interval, or linear), float64."""
        if x.ndim != 2 or x.shape[1] != self.n_parameters:
            raise ValueError(f"parameters must have shape [N, {self.n_parameters}], got {tuple(x.shape)}")
        return (x.to(torch.float64) - self.low) / self.span

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Coded inputs plus ``log(x − low + ε)`` of the parameters bounded below only (unstandardised)."""
        c = self.code(x)
        if self.log_index.numel() == 0:
            return c
        extra = torch.log((x.to(torch.float64)[:, self.log_index] - self.log_low).clamp_min(0) + self.log_eps)
        return torch.cat([c, extra], dim=1)

    def in_range(self, x: torch.Tensor) -> torch.Tensor:
        """``[N]`` bool: every coded input inside the training range (± 5 % of its width)."""
        c = self.code(x)
        pad = _RANGE_MARGIN * (self.coded_max - self.coded_min)
        pad = torch.where(torch.isfinite(pad), pad, torch.zeros_like(pad))
        return ((c >= self.coded_min - pad) & (c <= self.coded_max + pad)).all(dim=1)

    def log_bands(self, x: torch.Tensor) -> torch.Tensor:
        """``log`` of the band reflectances ``[N, B]`` (float32 network, float64 result)."""
        first = self.net[0]
        u = self.x_scaler(self.features(x)).to(first.weight.dtype)
        return self.y_scaler.inverse(self.net(u).to(torch.float64))

    def bands(self, x: torch.Tensor) -> torch.Tensor:
        """Noise-free band reflectances ``[N, B]`` (float64) of parameters ``x [N, D]`` (physical units)."""
        return torch.exp(self.log_bands(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bands(x)


def fit_surrogate(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    spec: dict[str, Any],
    epochs: int = 60,
    batch_size: int = 512,
    lr: float = 2e-3,
    val_fraction: float = 0.05,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, tuple[ForwardSurrogate, dict[str, Any]]]:
    """Train a surrogate on simulated pairs (generator of per-epoch :class:`Progress`; returns ``(model, report)``).

    Args:
        x: ``[N, D]`` parameters (physical units); y: ``[N, B]`` noise-free band reflectances.
        spec: from :func:`make_surrogate_spec`.
        epochs, batch_size, lr: Adam with a cosine schedule down to ``lr / 100``.
        val_fraction: held-out share (the last rows of a seeded permutation) reported as validation error.
        seed: shuffling and the split (the initialisation uses ``spec["seed"]``); recorded in the report.

    The report holds the settings, seconds, per-epoch losses and the held-out errors
    (:func:`surrogate_errors`).
    """
    t0 = time.monotonic()
    x_t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    if x_t.ndim != 2 or y_t.ndim != 2 or x_t.shape[0] != y_t.shape[0]:
        raise ValueError(f"x [N, D] and y [N, B] needed, got {tuple(x_t.shape)} and {tuple(y_t.shape)}")
    if not torch.all(y_t > 0):
        raise ValueError("band reflectances must be positive to learn their logarithm")
    gen = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(x_t.shape[0], generator=gen)
    n_val = max(1, int(round(val_fraction * x_t.shape[0])))
    tr, va = perm[:-n_val], perm[-n_val:]
    model = ForwardSurrogate(spec)
    coded = model.code(x_t)
    with torch.no_grad():
        if model.log_index.numel():  # ε: 1 % of the median distance from the bound
            dist = x_t[tr][:, model.log_index] - model.log_low
            model.log_eps.copy_((0.01 * dist.median(dim=0).values).clamp_min(1e-12))
        feats = model.features(x_t)
        model.x_scaler.fit(feats[tr])
        model.y_scaler.fit(torch.log(y_t[tr]))
        model.coded_min.copy_(coded[tr].min(dim=0).values)
        model.coded_max.copy_(coded[tr].max(dim=0).values)
    u = model.x_scaler(feats).float()
    v = model.y_scaler(torch.log(y_t)).float()
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    steps_per_epoch = max(1, math.ceil(len(tr) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=lr / 100)
    history = []
    for epoch in range(epochs):
        if should_stop is not None and should_stop():
            break
        model.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        total = 0.0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            loss = torch.mean((model.net(u[idx]) - v[idx]) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            val = float(torch.mean((model.net(u[va]) - v[va]) ** 2))
        history.append({"epoch": epoch + 1, "train_mse": total / len(tr), "val_mse": val})
        yield Progress("surrogate", epoch + 1, epochs, f"train {total / len(tr):.2e}, val {val:.2e} (standardised)",
                       {"train_mse": total / len(tr), "val_mse": val})
    model.eval()
    report = {
        "n_train": int(len(tr)),
        "n_val": int(n_val),
        "epochs": int(len(history)),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "seed": int(seed),
        "seconds": round(time.monotonic() - t0, 1),
        "history": history,
        "validation": surrogate_errors(model, x_t[va], y_t[va]),
    }
    return model, report


@torch.no_grad()
def surrogate_errors(surrogate: ForwardSurrogate, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                     scale_free: bool = True) -> dict[str, Any]:
    """Held-out error of the surrogate against solver reflectances ``y [N, B]`` of parameters ``x [N, D]``.

    Returns ``band_rel_error`` (``|y_s / y − 1|`` over all band values: median, p90, p99, max) and
    ``residual`` (the RMS log ratio per spectrum, mean removed when ``scale_free``, as in the predictive
    residual: median, p99, max), plus ``n``.
    """
    x_t = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    lr = surrogate.log_bands(x_t) - torch.log(y_t)
    rel = torch.expm1(lr).abs().flatten()
    if scale_free:
        lr = lr - lr.mean(dim=1, keepdim=True)
    res = lr.pow(2).mean(dim=1).sqrt()

    def q(t: torch.Tensor, p: float) -> float:
        return float(torch.quantile(t, p)) if t.numel() <= 16_000_000 else float(np.quantile(t.numpy(), p))

    return {
        "n": int(x_t.shape[0]),
        "band_rel_error": {"median": q(rel, 0.5), "p90": q(rel, 0.9), "p99": q(rel, 0.99), "max": float(rel.max())},
        "residual": {"median": q(res, 0.5), "p99": q(res, 0.99), "max": float(res.max())},
    }
