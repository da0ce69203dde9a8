"""Vectorised MCML-style Monte Carlo photon transport in layered media (the slow reference solver).

Physics follows MCML (L. Wang, S. L. Jacques, L. Zheng, "MCML - Monte Carlo modeling of light
transport in multi-layered tissues", Comput. Methods Programs Biomed. 47 (1995) 131-146):

* a pencil beam hits the top surface at normal incidence; the specular part
  ``R_sp = ((n_above - n_1) / (n_above + n_1))**2`` is removed from the launched weight (1 - R_sp);
* photon packets carry a weight; a dimensionless step ``-ln(xi)`` is spent in units of the local
  mean free path ``1/mu_t`` (hop), a fraction ``mu_a/mu_t`` of the weight is deposited at each
  interaction (drop) and the direction is resampled from the Henyey-Greenstein phase function (spin);
* a step that reaches a layer boundary is cut there; the photon is reflected or transmitted with the
  unpolarised Fresnel probability (and refracted by Snell's law), and the unused part of the
  dimensionless step is carried into the next layer (MCML's step splitting), so a single sampled
  step can cross any number of boundaries;
* Russian roulette: a packet below weight 1e-4 survives with chance 1/10 and weight x10;
* weight leaving through the top surface is the diffuse reflectance Rd (specular excluded), weight
  leaving through the bottom is the total transmittance Tt (unscattered light included, as MCML's Tt).

Only the depth ``z`` and the direction cosine ``uz`` are tracked: with laterally infinite layers and
no spatially resolved output, the azimuthal symmetry of the scattering makes ``(z, uz, w, layer)``
a complete state.

All photons of all problems advance in lock-step: every iteration applies exactly one event (an
interaction or a boundary hit) to every live packet. Finished packets are removed from the working
set whenever they make up a quarter of it, so the long tail of the walk is cheap. Several independent
problems (for example the wavelengths of a spectrum) are simulated together by giving the inputs a
leading problem dimension ``[P, L]``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "McResult",
    "mc_reflectance",
    "specular_reflectance",
    "WEIGHT_THRESHOLD",
    "ROULETTE_CHANCE",
]

WEIGHT_THRESHOLD = 1e-4
"""Russian-roulette threshold on the packet weight (MCML's ``WEIGHT``)."""

ROULETTE_CHANCE = 0.1
"""Survival chance in Russian roulette (MCML's ``CHANCE``)."""

_COS_ZERO = 1e-12  # MCML's COSZERO: |uz| above 1 - this is "normal incidence"
_COS_90 = 1e-6  # MCML's COS90D: |uz| below this is "grazing", reflected with certainty
_HG_ISOTROPIC_G = 1e-6  # |g| below this samples the isotropic phase function


@dataclass(frozen=True)
class McResult:
    """Result of :func:`mc_reflectance`.

    Attributes:
        rd: Total diffuse reflectance (specular excluded), shape ``[]`` or ``[P]``.
        rd_std_err: Standard error of ``rd`` from the per-photon contributions.
        tt: Total transmittance through the bottom surface (including unscattered light).
        n_photons: Photons launched per problem.
        seed: Seed of the torch.Generator that drove the simulation.
        tt_std_err: Standard error of ``tt``.
        n_steps: Photon events simulated in total (interactions plus boundary hits), all problems.
    """

    rd: Tensor
    rd_std_err: Tensor
    tt: Tensor
    n_photons: int
    seed: int
    tt_std_err: Tensor
    n_steps: int


def specular_reflectance(n_above: float | Tensor, n_top: float | Tensor) -> Tensor | float:
    """Fresnel reflectance at normal incidence between the ambient medium and the top layer.

    Args:
        n_above: Refractive index above the stack.
        n_top: Refractive index of the top layer.

    Returns:
        ``((n_above - n_top) / (n_above + n_top))**2``.
    """
    return ((n_above - n_top) / (n_above + n_top)) ** 2


def _fresnel(n_i: Tensor, n_t: Tensor, cos_i: Tensor) -> tuple[Tensor, Tensor]:
    """Unpolarised Fresnel reflectance and the cosine of the refracted ray.

    Args:
        n_i: Index of the medium the photon is in.
        n_t: Index of the medium across the boundary.
        cos_i: |cosine| of the angle of incidence, in [0, 1].

    Returns:
        (R, cos_t); R = 1 under total internal reflection or grazing incidence.
    """
    sin_i = torch.sqrt(torch.clamp(1.0 - cos_i * cos_i, min=0.0))
    sin_t = n_i / n_t * sin_i
    tir = sin_t >= 1.0
    cos_t = torch.sqrt(torch.clamp(1.0 - sin_t * sin_t, min=0.0))
    rs = (n_i * cos_i - n_t * cos_t) / (n_i * cos_i + n_t * cos_t)
    rp = (n_i * cos_t - n_t * cos_i) / (n_i * cos_t + n_t * cos_i)
    r = 0.5 * (rs * rs + rp * rp)
    r = torch.where(tir | (cos_i < _COS_90), torch.ones_like(r), r)
    normal = cos_i > 1.0 - _COS_ZERO
    r = torch.where(normal, ((n_i - n_t) / (n_i + n_t)) ** 2, r)
    cos_t = torch.where(normal, cos_i, cos_t)
    return r, cos_t


def _as_table(x: Tensor | float, name: str, shape: tuple[int, int], device, dtype) -> Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device)
    try:
        return torch.broadcast_to(t, shape).contiguous()
    except RuntimeError as exc:
        raise ValueError(f"{name} of shape {tuple(t.shape)} does not broadcast to {shape}") from exc


def _as_vector(x: Tensor | float, name: str, n_problems: int, device, dtype) -> Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device).reshape(-1)
    if t.numel() == 1:
        return t.expand(n_problems).contiguous()
    if t.numel() != n_problems:
        raise ValueError(f"{name} must be a scalar or have one value per problem ({n_problems})")
    return t


def mc_reflectance(
    mu_a_per_cm: Tensor,
    mu_s_per_cm: Tensor,
    g: Tensor,
    thickness_cm: Tensor,
    n_layers: Tensor | float,
    n_above: float | Tensor = 1.0,
    n_below: float | Tensor = 1.0,
    n_photons: int = 200_000,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    *,
    max_active: int = 1 << 20,
    max_iterations: int = 2_000_000,
) -> McResult:
    """Total diffuse reflectance and transmittance of a layered slab by MCML-style Monte Carlo.

    Args:
        mu_a_per_cm: Absorption coefficients, ``[L]`` (top layer first) or ``[P, L]`` for P
            independent problems simulated together.
        mu_s_per_cm: Scattering coefficients, same shape.
        g: Henyey-Greenstein anisotropies, broadcastable to ``[P, L]``.
        thickness_cm: Layer thicknesses, broadcastable to ``[P, L]``; only the bottom layer may be
            ``inf`` (semi-infinite).
        n_layers: Refractive index of every layer, broadcastable to ``[P, L]``.
        n_above: Refractive index above the stack (scalar or ``[P]``).
        n_below: Refractive index below the stack (scalar or ``[P]``).
        n_photons: Photon packets launched per problem.
        seed: Seed of the torch.Generator (results are reproducible for a seed, device and
            ``max_active``).
        device: Device to run on; defaults to the device of ``mu_a_per_cm`` if it is a tensor.
        dtype: Floating point type of the photon state.
        max_active: Upper bound on simultaneously simulated packets (memory bound); photons of all
            problems are launched in rounds of ``max_active // P`` per problem.
        max_iterations: Safety bound on lock-step iterations per round; packets still alive then
            are dropped with a warning (their weight is lost).

    Returns:
        :class:`McResult` with ``rd``, ``tt`` and their standard errors of shape ``[]`` (1-D input)
        or ``[P]``.

    Raises:
        ValueError: On inconsistent shapes or non-physical inputs.
    """
    if device is None:
        device = mu_a_per_cm.device if isinstance(mu_a_per_cm, Tensor) else torch.device("cpu")
    device = torch.device(device)
    mu_a_t = torch.as_tensor(mu_a_per_cm, dtype=dtype, device=device)
    single = mu_a_t.dim() == 1
    if mu_a_t.dim() not in (1, 2):
        raise ValueError(f"mu_a_per_cm must be [L] or [P, L], got shape {tuple(mu_a_t.shape)}")
    if n_photons < 1:
        raise ValueError("n_photons must be at least 1")
    shape = (1, mu_a_t.shape[-1]) if single else tuple(mu_a_t.shape)
    n_prob, n_lay = shape
    mu_a = _as_table(mu_a_t, "mu_a_per_cm", shape, device, dtype)
    mu_s = _as_table(mu_s_per_cm, "mu_s_per_cm", shape, device, dtype)
    gg = _as_table(g, "g", shape, device, dtype)
    thick = _as_table(thickness_cm, "thickness_cm", shape, device, dtype)
    n_lay_t = _as_table(n_layers, "n_layers", shape, device, dtype)
    n_up = _as_vector(n_above, "n_above", n_prob, device, dtype)
    n_dn = _as_vector(n_below, "n_below", n_prob, device, dtype)

    if (mu_a < 0).any() or (mu_s < 0).any() or (thick <= 0).any():
        raise ValueError("mu_a and mu_s must be >= 0 and thicknesses > 0")
    if torch.isinf(thick[:, :-1]).any():
        raise ValueError("only the bottom layer may be semi-infinite (thickness inf)")
    if (torch.isinf(thick[:, -1]) & (mu_a[:, -1] + mu_s[:, -1] <= 0)).any():
        raise ValueError("a semi-infinite bottom layer needs mu_a + mu_s > 0")
    if (gg.abs() >= 1).any() or (n_lay_t < 1).any() or (n_up <= 0).any() or (n_dn <= 0).any():
        raise ValueError("need |g| < 1, n_layers >= 1 and positive ambient indices")

    mu_t = mu_a + mu_s
    # a layer without any interaction: an infinite mean free path, the photon flies to the boundary
    inv_mu_t = torch.where(mu_t > 0, 1.0 / mu_t.clamp_min(1e-30), torch.full_like(mu_t, math.inf))
    absorb_frac = torch.where(mu_t > 0, mu_a / mu_t.clamp_min(1e-30), torch.zeros_like(mu_t))
    # exclusive cumulative sum for the tops: z_bot - thick would be inf - inf for a semi-infinite layer
    z_top = torch.cat([torch.zeros_like(thick[:, :1]), torch.cumsum(thick[:, :-1], dim=1)], dim=1)
    z_bot = z_top + thick
    # indices beyond the stack at either side
    n_prev = torch.cat([n_up[:, None], n_lay_t[:, :-1]], dim=1)
    n_next = torch.cat([n_lay_t[:, 1:], n_dn[:, None]], dim=1)
    flat = {
        "inv_mu_t": inv_mu_t.reshape(-1),
        "absorb": absorb_frac.reshape(-1),
        "g": gg.reshape(-1),
        "z_top": z_top.reshape(-1),
        "z_bot": z_bot.reshape(-1),
        "n": n_lay_t.reshape(-1),
        "n_prev": n_prev.reshape(-1),
        "n_next": n_next.reshape(-1),
    }
    w0 = 1.0 - specular_reflectance(n_up, n_lay_t[:, 0])

    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))

    sums = torch.zeros(4, n_prob, dtype=torch.float64, device=device)  # sum w, w^2 for top, bottom
    per_round = max(1, max_active // n_prob)
    n_steps = 0
    launched = 0
    while launched < n_photons:
        n_now = min(per_round, n_photons - launched)
        n_steps += _run_round(flat, w0, n_prob, n_lay, n_now, gen, sums, device, dtype, max_iterations)
        launched += n_now

    n = float(n_photons)
    means = sums[[0, 2]] / n
    var = torch.clamp(sums[[1, 3]] / n - means**2, min=0.0) * (n / max(n - 1.0, 1.0))
    std_err = torch.sqrt(var / n)
    rd, tt = means[0].to(dtype), means[1].to(dtype)
    rd_se, tt_se = std_err[0].to(dtype), std_err[1].to(dtype)
    if single:
        rd, tt, rd_se, tt_se = rd[0], tt[0], rd_se[0], tt_se[0]
    return McResult(
        rd=rd, rd_std_err=rd_se, tt=tt, n_photons=int(n_photons), seed=int(seed), tt_std_err=tt_se, n_steps=int(n_steps)
    )


def _run_round(
    flat: dict[str, Tensor],
    w0: Tensor,
    n_prob: int,
    n_lay: int,
    n_per_problem: int,
    gen: torch.Generator,
    sums: Tensor,
    device: torch.device,
    dtype: torch.dtype,
    max_iterations: int,
) -> int:
    """Simulate ``n_per_problem`` packets for every problem; add escapes to ``sums`` in place."""
    prob = torch.arange(n_prob, device=device).repeat_interleave(n_per_problem)
    m = prob.numel()
    layer = torch.zeros(m, dtype=torch.long, device=device)
    z = torch.zeros(m, dtype=dtype, device=device)
    uz = torch.ones(m, dtype=dtype, device=device)
    w = w0[prob].clone()
    s_left = torch.zeros(m, dtype=dtype, device=device)  # remaining dimensionless step (MCML sleft)
    alive = torch.ones(m, dtype=torch.bool, device=device)
    n_alive = m
    steps = 0
    big = torch.finfo(dtype).max
    for _ in range(max_iterations):
        if n_alive == 0:
            break
        if n_alive < 0.75 * z.numel():
            keep = alive.nonzero().squeeze(1)
            prob, layer, z, uz, w, s_left = (t[keep] for t in (prob, layer, z, uz, w, s_left))
            alive = torch.ones(keep.numel(), dtype=torch.bool, device=device)
        k = z.numel()
        steps += n_alive
        xi = torch.rand(5, k, generator=gen, device=device, dtype=dtype)
        idx = prob * n_lay + layer

        # hop: a fresh dimensionless step where the previous one is used up
        need = s_left <= 0.0
        s_left = torch.where(need, -torch.log1p(-xi[0]), s_left)  # 1 - xi in (0, 1]
        inv_mu_t = flat["inv_mu_t"][idx]
        finite = torch.isfinite(inv_mu_t)
        step = torch.where(finite, s_left * inv_mu_t.clamp_max(big), torch.full_like(s_left, math.inf))
        down = uz > 0.0
        z_edge = torch.where(down, flat["z_bot"][idx], flat["z_top"][idx])
        dist = torch.where(uz != 0.0, (z_edge - z) / uz, torch.full_like(z, math.inf)).clamp_min(0.0)
        hit = step >= dist  # reaches (or passes) the boundary: cut the step there

        # interaction branch (not hit): move, drop, spin
        z_int = z + step * uz
        w_int = w * (1.0 - flat["absorb"][idx])
        gl = flat["g"][idx]
        iso = gl.abs() < _HG_ISOTROPIC_G
        g_safe = torch.where(iso, torch.ones_like(gl), gl)
        tmp = (1.0 - gl * gl) / (1.0 - gl + 2.0 * gl * xi[1])
        cos_hg = (1.0 + gl * gl - tmp * tmp) / (2.0 * g_safe)
        cos_t = torch.where(iso, 2.0 * xi[1] - 1.0, cos_hg).clamp(-1.0, 1.0)
        sin_t = torch.sqrt(torch.clamp(1.0 - cos_t * cos_t, min=0.0))
        cos_phi = torch.cos(2.0 * math.pi * xi[2])
        sin_uz = torch.sqrt(torch.clamp(1.0 - uz * uz, min=0.0))
        uz_int = (uz * cos_t + sin_uz * sin_t * cos_phi).clamp(-1.0, 1.0)

        # boundary branch: move to the edge, keep the unused dimensionless step, reflect or transmit
        # a layer with mu_t = 0 leaves the dimensionless step untouched
        s_hit = torch.where(finite, (s_left - dist / inv_mu_t.clamp_max(big)).clamp_min(0.0), s_left)
        n_i = flat["n"][idx]
        n_t = torch.where(down, flat["n_next"][idx], flat["n_prev"][idx])
        refl, cos_tr = _fresnel(n_i, n_t, uz.abs())
        reflect = xi[3] <= refl
        transmit = ~reflect
        leave_top = hit & transmit & ~down & (layer == 0)
        leave_bot = hit & transmit & down & (layer == n_lay - 1)
        cross = hit & transmit & ~leave_top & ~leave_bot
        uz_hit = torch.where(reflect, -uz, torch.where(down, cos_tr, -cos_tr))

        # merge the two branches
        z = torch.where(hit, z_edge, z_int)
        uz = torch.where(hit, uz_hit, uz_int)
        s_left = torch.where(hit, s_hit, torch.zeros_like(s_left))
        layer = layer + cross.long() * torch.where(down, 1, -1)
        w = torch.where(hit, w, w_int)

        # score escapes (each packet escapes at most once, so w and w^2 give per-photon moments)
        w64 = w.to(torch.float64)
        for row, mask in ((0, leave_top), (2, leave_bot)):
            if mask.any():
                sel = mask.nonzero().squeeze(1)
                sums[row].index_add_(0, prob[sel], w64[sel])
                sums[row + 1].index_add_(0, prob[sel], w64[sel] ** 2)
        escaped = leave_top | leave_bot

        # Russian roulette on interacting packets that fell below the threshold
        low = ~hit & (w < WEIGHT_THRESHOLD) & alive
        survive = xi[4] < ROULETTE_CHANCE
        w = torch.where(low & survive, w / ROULETTE_CHANCE, w)
        dead_roulette = low & ~survive
        alive = alive & ~escaped & ~dead_roulette
        w = torch.where(alive, w, torch.zeros_like(w))
        n_alive = int(alive.sum())
    else:
        if n_alive > 0:
            warnings.warn(
                f"mc_reflectance: {n_alive} packets still alive after {max_iterations} iterations were dropped "
                "(a non-absorbing, weakly escaping geometry?)",
                RuntimeWarning,
                stacklevel=3,
            )
    return steps
