"""The paper's bidirectional INN family (standardised units; the caller normalises x and y).

``BidirectionalINN`` — Ardizzone et al., ICLR 2019: a bijection ``[x, pad] ↔ [y, z, pad]`` trained
with a supervised forward fit (L_y), a latent MMD (L_z), a backward MMD (L_x) and a reconstruction
term. Posterior samples: run it backwards on ``[y, z ~ N(0, I), 0]``.

Layout of the bidirectional network's two ends (``T = total_dim``)::

    input  side: [x (dim_x), x-pad (T − dim_x)]
    output side: [y (dim_y), z (dim_z), yz-pad (T − dim_y − dim_z)]

Pads are filled with ``pad_noise · N(0, 1)`` in training (as in the authors' code) and with zeros at
inference; pad outputs are pushed to zero by the pad losses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from tissue_inn.errors import ConfigError
from tissue_inn.inn.family_common import NETWORK_KEYS, GeneratorMixin, normal
from tissue_inn.inn.losses import BACKWARD_KERNELS, FORWARD_KERNELS, gaussian_pair_weights, mmd_multiscale
from tissue_inn.inn.network import InvertibleSequence, _checked_kwargs

__all__ = ["DEFAULT_LOSS_WEIGHTS", "BidirectionalINN"]

DEFAULT_LOSS_WEIGHTS: dict[str, float] = {"y": 1.0, "z": 50.0, "x": 500.0, "rec": 1.0, "pad": 1.0}
"""Loss weights of the paper's medical run: L_y 1, L_z 50, L_x 500, reconstruction 1 (pads: ours, 1)."""


def _kernels_to_json(kernels: Sequence[Sequence[float]]) -> list[list[float]]:
    out = [[float(c_width), float(a_exponent)] for c_width, a_exponent in kernels]
    if not out:
        raise ConfigError("an MMD kernel list must not be empty")
    return out


class BidirectionalINN(GeneratorMixin, nn.Module):
    """The paper's INN: ``[x, pad] ↔ [y, z, pad]`` with MMD losses.

    Args:
        dim_x: width of x.
        dim_y: width of y.
        dim_z: width of the latent z.
        total_dim: network width; default ``max(dim_x, dim_y + dim_z)``.
        loss_weights: overrides of :data:`DEFAULT_LOSS_WEIGHTS` (keys ``y, z, x, rec, pad``).
        forward_kernels: ``(C, a)`` pairs of L_z (default :data:`FORWARD_KERNELS`).
        backward_kernels: ``(C, a)`` pairs of L_x (default :data:`BACKWARD_KERNELS`).
        y_uncertainty_sigma: σ of the backward-MMD pair weights ``exp(−‖yi−yj‖²/2σ²)`` (0.48 in the
            medical run); ``None`` disables the weighting.
        cond_dim: condition every coupling subnet on the last ``cond_dim`` columns of y (default 0, the
            paper's layout); :class:`~tissue_inn.inn.noise_latent.NoiseLatentINN` uses it for log-SNR.
        dim_aux: width of auxiliary x-side inputs that the caller passes to :meth:`loss` as ``aux``
            (``[x, aux, pad]``; default 0, the paper's layout). They are fitted like x by L_x and the
            reconstruction; sampling drops them. :class:`~tissue_inn.inn.noise_latent.NoiseLatentINN`
            uses them for the measurement noise.
        n_blocks, block_type, hidden, n_hidden_layers, clamp, actnorm, seed, permute: passed to
            :class:`~tissue_inn.inn.network.InvertibleSequence`.

    Example:
        >>> model = BidirectionalINN(dim_x=3, dim_y=2, dim_z=2, n_blocks=2, hidden=16)
        >>> y = torch.zeros(4, 2)
        >>> tuple(model.sample(y, n_draws=5, generator=torch.Generator().manual_seed(0)).shape)
        (4, 5, 3)
    """

    family_name: ClassVar[str] = "inn"
    supports_snr_conditioning: ClassVar[bool] = False

    def __init__(
        self,
        dim_x: int,
        dim_y: int,
        dim_z: int,
        total_dim: int | None = None,
        loss_weights: dict[str, float] | None = None,
        forward_kernels: Sequence[Sequence[float]] = FORWARD_KERNELS,
        backward_kernels: Sequence[Sequence[float]] = BACKWARD_KERNELS,
        y_uncertainty_sigma: float | None = 0.48,
        dim_aux: int = 0,
        cond_dim: int = 0,
        n_blocks: int = 4,
        block_type: str = "realnvp",
        hidden: int = 128,
        n_hidden_layers: int = 3,
        clamp: float = 2.0,
        actnorm: bool = False,
        seed: int = 0,
        permute: bool = True,
    ) -> None:
        super().__init__()
        if min(dim_x, dim_y, dim_z) < 1:
            raise ConfigError(f"dim_x, dim_y, dim_z must be >= 1, got {dim_x}, {dim_y}, {dim_z}")
        if dim_aux < 0:
            raise ConfigError(f"dim_aux must be >= 0, got {dim_aux}")
        needed = max(dim_x + dim_aux, dim_y + dim_z, 2)
        total = needed if total_dim is None else int(total_dim)
        if total < needed:
            raise ConfigError(f"total_dim={total} is smaller than max(dim_x + dim_aux, dim_y + dim_z) = {needed}")
        weights = dict(DEFAULT_LOSS_WEIGHTS)
        for key, value in (loss_weights or {}).items():
            if key not in DEFAULT_LOSS_WEIGHTS:
                raise ConfigError(f"unknown loss weight {key!r}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
            weights[key] = float(value)
        self.dim_x, self.dim_y, self.dim_z, self.total_dim = int(dim_x), int(dim_y), int(dim_z), total
        self.loss_weights = weights
        self.forward_kernels = _kernels_to_json(forward_kernels)
        self.backward_kernels = _kernels_to_json(backward_kernels)
        self.y_uncertainty_sigma = None if y_uncertainty_sigma is None else float(y_uncertainty_sigma)
        self.dim_aux = int(dim_aux)
        if not 0 <= int(cond_dim) <= dim_y:
            raise ConfigError(f"cond_dim must lie in [0, dim_y={dim_y}], got {cond_dim}")
        self.cond_dim = int(cond_dim)
        self._noise_seed = int(seed)
        self.network = InvertibleSequence(
            total,
            n_blocks=n_blocks,
            block_type=block_type,
            hidden=hidden,
            n_hidden_layers=n_hidden_layers,
            clamp=clamp,
            cond_dim=int(cond_dim),
            actnorm=actnorm,
            seed=seed,
            permute=permute,
        )

    # ------------------------------------------------------------------ configuration
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict."""
        net = self.network.config()
        config = {
            "dim_x": self.dim_x,
            "dim_y": self.dim_y,
            "dim_z": self.dim_z,
            "total_dim": self.total_dim,
            "loss_weights": dict(self.loss_weights),
            "forward_kernels": [list(k) for k in self.forward_kernels],
            "backward_kernels": [list(k) for k in self.backward_kernels],
            "y_uncertainty_sigma": self.y_uncertainty_sigma,
            **{key: net[key] for key in NETWORK_KEYS},
        }
        if self.dim_aux:
            config["dim_aux"] = self.dim_aux
        if self.cond_dim:
            config["cond_dim"] = self.cond_dim
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BidirectionalINN:
        """Rebuild from :meth:`config` output (weights then come from ``load_state_dict``)."""
        return cls(**_checked_kwargs(cls, config, required=("dim_x", "dim_y", "dim_z")))

    # ------------------------------------------------------------------ family protocol
    @classmethod
    def network_config(
        cls, dim_x: int, dim_y: int, snr_conditioning: bool, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Card config: ``options`` plus ``dim_x``, ``dim_y`` and (default ``max(dim_x − dim_y, 1)``) ``dim_z``."""
        if snr_conditioning:
            raise ValueError("SNR conditioning is available for the cinn family only")
        net = dict(options)
        net.setdefault("dim_z", max(dim_x - dim_y, 1))
        net.update(dim_x=dim_x, dim_y=dim_y)
        return net

    @classmethod
    def training_options(cls, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(network options, loss options)`` from training settings: ``dim_z``, ``loss_weights``,
        ``inn_pair_sigma`` (falsy = no pair weights) and ``y_noise``."""
        network: dict[str, Any] = {}
        if settings.get("dim_z") is not None:
            network["dim_z"] = settings["dim_z"]
        if settings.get("loss_weights"):
            network["loss_weights"] = dict(settings["loss_weights"])
        sigma = settings.get("inn_pair_sigma", 0.48)
        network["y_uncertainty_sigma"] = sigma if sigma else None
        return network, {"y_noise": settings.get("y_noise", 0.05)}

    @property
    def latent_dim(self) -> int:
        """Width of z (what :meth:`decode` takes with y)."""
        return self.dim_z

    def decode(self, c: Tensor, z: Tensor) -> Tensor:
        """x for one ``(y, z)`` pair per row (zero pad); the same as :meth:`inverse`."""
        return self.inverse(c, z)

    # ------------------------------------------------------------------ maps
    @property
    def pad_x(self) -> int:
        """Width of the x-side pad."""
        return self.total_dim - self.dim_x

    @property
    def pad_yz(self) -> int:
        """Width of the [y, z]-side pad."""
        return self.total_dim - self.dim_y - self.dim_z

    def _pad(self, t: Tensor, width: int, noise: float, generator: torch.Generator) -> Tensor:
        pad = t.new_zeros(t.shape[0], width)
        if noise > 0 and width > 0:
            pad = noise * normal((t.shape[0], width), t, generator)
        return torch.cat([t, pad], dim=1)

    def predict(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Forward map of x (zero pad): ``(y_hat [N, dim_y], z_hat [N, dim_z], pad_hat [N, pad_yz])``."""
        self._check(x, self.dim_x, "x")
        c = x.new_zeros(x.shape[0], self.cond_dim) if self.cond_dim else None  # the standardised mean
        out, _ = self.network(torch.cat([x, x.new_zeros(x.shape[0], self.pad_x)], dim=1), c=c)
        return self._split_out(out)

    def inverse(self, y: Tensor, z: Tensor) -> Tensor:
        """Backward map of ``[y, z, 0]``; returns x ``[N, dim_x]`` (the x-pad output is dropped)."""
        self._check(y, self.dim_y, "y")
        self._check(z, self.dim_z, "z")
        if y.shape[0] != z.shape[0]:
            raise ValueError(f"y and z need the same batch size, got {y.shape[0]} and {z.shape[0]}")
        x_full = self.network.transform(torch.cat([y, z, y.new_zeros(y.shape[0], self.pad_yz)], dim=1),
                                        c=self._condition(y), rev=True)
        return x_full[:, : self.dim_x]

    def _condition(self, y: Tensor) -> Tensor | None:
        """What every coupling subnet is conditioned on: the last ``cond_dim`` columns of y (None without)."""
        return y[:, self.dim_y - self.cond_dim:] if self.cond_dim else None

    def _split_out(self, out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y_end = self.dim_y
        z_end = self.dim_y + self.dim_z
        return out[:, :y_end], out[:, y_end:z_end], out[:, z_end:]

    @staticmethod
    def _check(t: Tensor, width: int, name: str) -> None:
        if t.ndim != 2 or t.shape[1] != width:
            raise ValueError(f"{name} must have shape [batch, {width}], got {tuple(t.shape)}")

    @torch.no_grad()
    def sample(self, y: Tensor, n_draws: int, generator: torch.Generator | None = None) -> Tensor:
        """Posterior samples ``x = g(y, z)``, ``z ~ N(0, I)``.

        Args:
            y: ``[N, dim_y]`` standardised observations.
            n_draws: samples per observation.
            generator: noise source (default: the model's own seeded generator).

        Returns:
            ``[N, n_draws, dim_x]``.
        """
        self._check(y, self.dim_y, "y")
        gen = self._generator(generator)
        n_obs = y.shape[0]
        z = self.latent_draws(n_obs * n_draws, y, gen)
        y_rep = y.repeat_interleave(n_draws, dim=0)
        return self.inverse(y_rep, z).reshape(n_obs, n_draws, self.dim_x)

    # ------------------------------------------------------------------ training loss
    def loss(
        self,
        x: Tensor,
        y: Tensor,
        weights: dict[str, float] | None = None,
        y_noise: float = 0.05,
        pad_noise: float = 0.01,
        z_rec_noise: float = 0.02,
        generator: torch.Generator | None = None,
        aux: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """The paper's loss terms for one batch; call ``.backward()`` on ``['total']`` once.

        Terms (Σ over features, mean over the batch where marked "fit"):

        - ``L_y``: fit of ŷ to ``y + y_noise·ε``;
        - ``L_pad_y``: fit of the [y, z]-side pad output to 0;
        - ``L_z``: forward MMD of ``[ẑ, ŷ.detach()]`` against ``[N(0, I), y + noise]``;
        - ``L_x``: backward MMD of ``g([y + noise, z ~ N(0, I), pad])`` against x (optionally
          pair-weighted by ``exp(−‖yi−yj‖²/2σ²)``);
        - ``L_pad_x``: fit of the x-side pad of those backward samples to 0;
        - ``L_rec``: fit of ``g([y + noise, ẑ.detach() + z_rec_noise·ε, pad])`` to ``[x, pad]``.

        ``total = w_y·L_y + w_pad·(L_pad_y + L_pad_x) + w_z·L_z + w_x·L_x + w_rec·L_rec``.

        Args:
            x: ``[N, dim_x]`` standardised parameters.
            y: ``[N, dim_y]`` standardised observations.
            weights: overrides of the model's loss weights for this call.
            y_noise: σ of the noise added to y.
            pad_noise: σ of the noise filling the pads.
            z_rec_noise: σ of the noise on ẑ in the reconstruction term.
            generator: noise source (default: the model's own seeded generator).
            aux: ``[N, dim_aux]`` auxiliary x-side inputs (models with ``dim_aux > 0``; default zeros).
                Wherever "x" appears above, ``[x, aux]`` is meant.

        Returns:
            Dict of scalar tensors: the terms above and ``total``.
        """
        self._check(x, self.dim_x, "x")
        self._check(y, self.dim_y, "y")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y need the same batch size, got {x.shape[0]} and {y.shape[0]}")
        w = dict(self.loss_weights)
        for key, value in (weights or {}).items():
            if key not in w:
                raise ValueError(f"unknown loss weight {key!r}; known: {sorted(w)}")
            w[key] = float(value)
        gen = self._generator(generator)
        batch = x.shape[0]

        y_noisy = y + y_noise * normal(tuple(y.shape), y, gen)
        if self.dim_aux:
            aux = x.new_zeros(x.shape[0], self.dim_aux) if aux is None else aux
            self._check(aux, self.dim_aux, "aux")
            x = torch.cat([x, aux], dim=1)  # from here on "x" is the whole fitted x side [x, aux]
        x_in = self._pad(x, self.total_dim - x.shape[1], pad_noise, gen)

        # Forward pass: x → [ŷ, ẑ, pad].
        cond = self._condition(y)
        out, _ = self.network(x_in, c=cond)
        y_hat, z_hat, pad_hat = self._split_out(out)
        loss_y = ((y_hat - y_noisy) ** 2).sum() / batch
        loss_pad_y = (pad_hat**2).sum() / batch
        z_prior = normal((batch, self.dim_z), x, gen)
        loss_z = mmd_multiscale(
            torch.cat([z_hat, y_hat.detach()], dim=1),
            torch.cat([z_prior, y_noisy], dim=1),
            self.forward_kernels,
        )

        # Backward pass with fresh latents: [y, z ~ N(0, I), pad] → x.
        z_draw = normal((batch, self.dim_z), x, gen)
        rev_in = self._pad(torch.cat([y_noisy, z_draw], dim=1), self.pad_yz, pad_noise, gen)
        x_gen_full, _ = self.network(rev_in, c=cond, rev=True)
        pair_weights = None
        if self.y_uncertainty_sigma is not None:
            pair_weights = gaussian_pair_weights(y, self.y_uncertainty_sigma)
        width = x.shape[1]
        loss_x = mmd_multiscale(x_gen_full[:, :width], x, self.backward_kernels, weights=pair_weights)
        loss_pad_x = (x_gen_full[:, width:] ** 2).sum() / batch

        # Reconstruction from the (detached, perturbed) latent code of x.
        z_rec = z_hat.detach() + z_rec_noise * normal(tuple(z_hat.shape), x, gen)
        rec_in = self._pad(torch.cat([y_noisy, z_rec], dim=1), self.pad_yz, pad_noise, gen)
        x_rec_full, _ = self.network(rec_in, c=cond, rev=True)
        loss_rec = ((x_rec_full[:, :width] - x) ** 2).sum() / batch

        total = (
            w["y"] * loss_y
            + w["pad"] * (loss_pad_y + loss_pad_x)
            + w["z"] * loss_z
            + w["x"] * loss_x
            + w["rec"] * loss_rec
        )
        return {
            "L_y": loss_y,
            "L_pad_y": loss_pad_y,
            "L_z": loss_z,
            "L_x": loss_x,
            "L_pad_x": loss_pad_x,
            "L_rec": loss_rec,
            "total": total,
        }
