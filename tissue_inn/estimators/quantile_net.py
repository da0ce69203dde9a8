"""The amortised summary network: a spectrum (and its SNR) in, posterior quantiles of every parameter out.

One forward pass of a small MLP replaces thousands of posterior draws when only a map of medians
and intervals is wanted. It sees exactly what the posterior estimator sees (the estimator's own
spectrum features and log-SNR standardisation, :meth:`PosteriorEstimator.y_to_net`) and predicts the
5/25/50/75/95 % quantiles of each parameter in the estimator's standardised parameter space,
monotone by construction (a median plus soft-plus increments). Quantiles commute with monotone
maps, so :meth:`PosteriorEstimator.net_to_x` (per-parameter monotone) turns them into quantiles in
physical units, inside the prior support.

It is trained by quantile (pinball) regression on simulated spectra (:mod:`tissue_inn.training.amortised`)
and ships inside a model bundle as a second safetensors file listed in the card's ``amortised``
section (file name, sha256, tensor shapes, config, training facts, held-out checks). The INN's
draws remain the reference: clicked pixels, regions and "exact" maps use them.

Example:
    >>> from tissue_inn.estimators import PosteriorEstimator, make_spec
    >>> est = PosteriorEstimator(make_spec("cinn", ["a", "b"], ["1", "1"], [0.0, 0.0], [1.0, 1.0],
    ...                                    [500.0, 600.0, 700.0], {"n_blocks": 2, "hidden": 8}))
    >>> qnet = QuantileNet(dim_in=3, dim_x=2, hidden=16, seed=0)
    >>> q = amortised_quantiles(est, qnet, torch.full((4, 3), 0.3, dtype=torch.float64))
    >>> tuple(q.shape), bool((q.diff(dim=-1) >= 0).all())
    ((4, 2, 5), True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from tissue_inn.errors import ModelBundleError
from tissue_inn.hashing import file_sha256

__all__ = [
    "QUANTILES",
    "QuantileNet",
    "amortised_quantiles",
    "pinball_loss",
    "save_quantile_net",
    "load_quantile_net",
    "CARD_SECTION",
]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
"""The quantile levels the network predicts (in this order)."""
CARD_SECTION = "amortised"
"""The model card key that lists the network's file, sha256, config and checks."""
_MEDIAN = QUANTILES.index(0.5)


class QuantileNet(nn.Module):
    """MLP ``c [N, dim_in] → quantiles [N, dim_x, 5]`` (standardised parameter space, non-decreasing).

    Args:
        dim_in: width of the estimator's network input (spectrum features, plus 1 with log-SNR).
        dim_x: number of parameters.
        hidden: hidden width; n_hidden_layers: hidden layers (ReLU).
        seed: seed of the weight initialisation (the global RNG is not used).
    """

    def __init__(self, dim_in: int, dim_x: int, hidden: int = 128, n_hidden_layers: int = 2, seed: int = 0) -> None:
        super().__init__()
        if min(dim_in, dim_x, hidden, n_hidden_layers) < 1:
            raise ValueError("QuantileNet: dim_in, dim_x, hidden and n_hidden_layers must be ≥ 1")
        self.dim_in, self.dim_x, self.hidden, self.n_hidden_layers, self.seed = (
            int(dim_in), int(dim_x), int(hidden), int(n_hidden_layers), int(seed))
        gen = torch.Generator().manual_seed(self.seed)
        widths = [self.dim_in] + [self.hidden] * self.n_hidden_layers + [self.dim_x * len(QUANTILES)]
        layers: list[nn.Module] = []
        for k in range(len(widths) - 1):
            lin = torch.nn.utils.skip_init(nn.Linear, widths[k], widths[k + 1])
            bound = 1.0 / widths[k] ** 0.5  # PyTorch's default U(−1/√fan_in, 1/√fan_in), from our generator
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=gen)
                lin.bias.uniform_(-bound, bound, generator=gen)
            layers.append(lin)
            if k < len(widths) - 2:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def config(self) -> dict[str, Any]:
        return {"dim_in": self.dim_in, "dim_x": self.dim_x, "hidden": self.hidden,
                "n_hidden_layers": self.n_hidden_layers, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QuantileNet:
        try:
            return cls(**{k: config[k] for k in ("dim_in", "dim_x", "hidden", "n_hidden_layers", "seed")})
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelBundleError(f"amortised network config is malformed ({exc}); re-create it") from None

    def forward(self, c: Tensor) -> Tensor:
        raw = self.body(c).reshape(c.shape[0], self.dim_x, len(QUANTILES))
        med = raw[..., _MEDIAN]
        steps = nn.functional.softplus(raw)
        # below the median: subtract cumulative positive steps; above: add them
        lower = med[..., None] - steps[..., :_MEDIAN].flip(-1).cumsum(-1).flip(-1)
        upper = med[..., None] + steps[..., _MEDIAN + 1 :].cumsum(-1)
        return torch.cat([lower, med[..., None], upper], dim=-1)


def pinball_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean quantile (pinball) loss of ``pred [N, D, Q]`` against ``target [N, D]`` at :data:`QUANTILES`.

    >>> q = torch.tensor(QUANTILES)
    >>> float(pinball_loss(torch.zeros(1, 1, 5), torch.ones(1, 1)))  # all below the truth: mean of q
    0.5
    """
    q = torch.tensor(QUANTILES, dtype=pred.dtype, device=pred.device)
    err = target[..., None] - pred
    return torch.maximum(q * err, (q - 1.0) * err).mean()


@torch.no_grad()
def amortised_quantiles(estimator, qnet: QuantileNet, y_reflectance: Tensor, snr: float | Tensor | None = None,
                        chunk: int = 65536, levels: tuple[int, ...] | None = None,
                        fast: bool = False) -> Tensor:
    """Quantiles ``[N, D, Q]`` (physical units, inside the prior support) of spectra ``[N, B]``.

    ``levels``: indices into :data:`QUANTILES` to return (default all five). ``fast``: map back to
    physical units in float32 and per column group (what image maps store; float64 otherwise).
    """
    idx = list(range(len(QUANTILES))) if levels is None else list(levels)
    out = []
    for s in range(0, y_reflectance.shape[0], chunk):
        snr_s = snr[s : s + chunk] if isinstance(snr, Tensor) and snr.ndim > 0 else snr
        c = estimator.y_to_net(y_reflectance[s : s + chunk], snr_s)
        u = qnet(c)[..., idx]  # [n, D, Q]
        if fast:
            out.append(_to_physical_fast(estimator, u))
        else:
            out.append(estimator.net_to_x(u.transpose(1, 2)).transpose(1, 2))
    if not out:
        return torch.zeros((0, qnet.dim_x, len(idx)), dtype=torch.float32 if fast else torch.float64)
    return torch.cat(out)


def _to_physical_fast(estimator, u: Tensor) -> Tensor:
    """``net_to_x`` for ``u [n, D, Q]`` in float32, each parameter column only through its own branch."""
    scaler, bounds = estimator.x_scaler, estimator.x_transform
    v = u * scaler.std.to(u.dtype)[:, None] + scaler.mean.to(u.dtype)[:, None]
    low = torch.where(torch.isfinite(bounds.low), bounds.low, torch.zeros_like(bounds.low)).to(u.dtype)
    high = torch.where(torch.isfinite(bounds.high), bounds.high, torch.ones_like(bounds.high)).to(u.dtype)
    both = torch.nonzero(bounds.both).flatten().tolist()
    lower = torch.nonzero(bounds.lower_only).flatten().tolist()
    if both:
        v[:, both] = low[both, None] + (high - low)[both, None] * torch.sigmoid(v[:, both])
    if lower:
        v[:, lower] = low[lower, None] + torch.exp(v[:, lower].clamp(max=60.0))
    return v


def save_quantile_net(qnet: QuantileNet, folder: str | os.PathLike, file_name: str = "amortised.safetensors",
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the weights next to a bundle's card; return the card section to store under :data:`CARD_SECTION`."""
    path = Path(folder) / file_name
    tmp = path.with_name(path.name + ".part")
    state = {k: v.detach().cpu().contiguous() for k, v in qnet.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": "pt", "tissue_inn": "amortised quantile network"})
    os.chmod(tmp, 0o644)  # a shipped file, readable like the model's weights
    os.replace(tmp, path)
    section = {
        "file": file_name,
        "sha256": file_sha256(path),
        "quantiles": list(QUANTILES),
        "config": qnet.config(),
        "tensors": {k: list(v.shape) for k, v in state.items()},
    }
    section.update(extra or {})
    return section


def load_quantile_net(folder: str | os.PathLike, card: dict[str, Any]) -> QuantileNet | None:
    """The bundle's amortised network (None when the card lists none); checks name, sha256 and shapes."""
    section = card.get(CARD_SECTION)
    if not section:
        return None
    folder = Path(folder)
    name = section.get("file") if isinstance(section, dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ModelBundleError(f"{folder}: the card's amortised file name must be a plain file name in the bundle")
    path = folder / name
    if not path.is_file():
        raise ModelBundleError(f"{folder}: amortised network file {name} is missing; re-create it or remove the "
                               f"card's '{CARD_SECTION}' section")
    if section.get("sha256") != file_sha256(path):
        raise ModelBundleError(f"{path}: sha256 does not match the card; the file was changed or corrupted")
    if list(section.get("quantiles", [])) != list(QUANTILES):
        raise ModelBundleError(f"{path}: the card lists quantiles {section.get('quantiles')}, this tissue_inn "
                               f"predicts {list(QUANTILES)}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelBundleError(f"{path}: not a readable safetensors file ({exc})") from None
    qnet = QuantileNet.from_config(dict(section.get("config", {})))
    expected = {k: list(v.shape) for k, v in qnet.state_dict().items()}
    if {k: list(v.shape) for k, v in state.items()} != expected:
        raise ModelBundleError(f"{path}: tensors do not fit the amortised network in the card")
    qnet.load_state_dict(state, strict=True)
    return qnet.eval()

