"""A synthetic multispectral measurement with known ground truth (the shipped sample image).

:func:`make_sample_image` builds 13 parameter maps of the colon tissue model with spatial
structure — a well-perfused background (high sO2), a low-sO2 "ischemic" patch, vessel-like lines
of high blood volume, smooth gradients of scattering, anisotropy and thickness — simulates them
with the project's :class:`~tissue_inn.optics.forward.ForwardModel` (colon tissue, SpectroCam
camera), applies the camera's multiplicative noise at a fixed SNR, then adds a specular highlight
(reflectance above 1 in all bands → flagged ``above_max``) and a few dead (0), NaN and saturated
(1.5) pixels.

**Interpolation, not direct simulation.** The adding-doubling solver runs at roughly 15–80 spectra/s
on one CPU core (measured while writing this module), so simulating 65 536 pixels directly would
take many minutes. Every pixel's parameter vector is ``x(r, c, i, v)``: smooth fields of the image
position (r, c) mixed with an ischemia weight ``i`` and a vessel weight ``v`` (both 0 or 1 except at
anti-aliased edges). We simulate the vectors at the nodes of a coarse spatial grid (every
``grid_step`` pixels) for the four corner states (i, v) ∈ {0, 1}² and interpolate the noise-free
reflectance multilinearly in (r, c, i, v). Linear mixing in (i, v) is the partial-volume model of a
camera pixel straddling an edge; the ground-truth parameters of such pixels are the same linear
mix of the corner parameter vectors. The spatial interpolation error is measured against direct
simulation on a random subset of pixels and stored in the file attributes
(``interpolation_rel_error_median`` / ``_max``).

File layout written by :func:`write_sample_image` (HDF5, gzip):
    ``reflectance``           H × W × 8 float32, attrs ``wavelengths_nm``, ``units``
    ``ground_truth/<name>``   H × W float32 per tissue parameter (13 maps)
    ``annotations/regions``   H × W uint8: 0 background, 1 ischemic, 2 vessel, 3 specular, 4 defect
    root attrs                seed, snr, size, generator_version, tissue, camera, solver, notes
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissue_inn.atomic import atomic_path
from tissue_inn.config import Camera, TissueModel, load_camera, load_tissue
from tissue_inn.optics.forward import ForwardModel, SolverSettings

__all__ = ["SampleImage", "make_sample_image", "write_sample_image", "GENERATOR_VERSION", "REGION_LABELS"]

GENERATOR_VERSION = "sample_image/1"
REGION_LABELS = {"background": 0, "ischemic": 1, "vessel": 2, "specular": 3, "defect": 4}


@dataclass
class SampleImage:
    """A simulated measurement: reflectance cube, ground truth and annotations."""

    reflectance: np.ndarray  # H × W × B float32
    wavelengths_nm: np.ndarray
    ground_truth: dict[str, np.ndarray]  # name → H × W float32
    regions: np.ndarray  # H × W uint8 (REGION_LABELS)
    attrs: dict[str, Any] = field(default_factory=dict)


def _smooth_field(u: np.ndarray, v: np.ndarray, rng: np.random.Generator, n_terms: int = 3) -> np.ndarray:
    """A smooth random field in [-1, 1] (low-frequency sinusoids, wavelength ≥ half the image)."""
    out = np.zeros(np.broadcast(u, v).shape)
    for _ in range(n_terms):
        fu, fv = rng.uniform(0.3, 1.2, size=2)
        phase = rng.uniform(0, 2 * math.pi)
        out += np.sin(2 * math.pi * (fu * u + fv * v) + phase)
    return out / n_terms


def _parameter_fields(tissue: TissueModel, rng_seed: int):
    """Return ``fields(u, v, i, w) -> [..., D]`` (parameter vectors) and the region geometry."""
    names = tissue.parameter_names
    rng = np.random.default_rng(rng_seed)
    smooth = {
        n: (lambda s: lambda u, v: _smooth_field(u, v, np.random.default_rng(s)))(int(rng.integers(2**31)))
        for n in names
    }

    def base(u, v):
        f = {n: smooth[n](u, v) for n in names}
        vals = {
            "sao2": 0.82 + 0.08 * f["sao2"],  # well perfused: 0.74–0.90
            # smooth gradients of scattering, anisotropy and thickness across the image
            "a_mie_1": 12.0 + 14.0 * u + 3.0 * f["a_mie_1"],
            "g_1": 0.84 + 0.08 * v + 0.01 * f["g_1"],
            "d_1": 700.0 + 220.0 * (0.5 * u + 0.5 * v) + 30.0 * f["d_1"],
            "vhb_1": 0.025 + 0.01 * f["vhb_1"],
        }
        for k in (2, 3):
            vals[f"vhb_{k}"] = 0.04 + 0.015 * f[f"vhb_{k}"]
            vals[f"a_mie_{k}"] = 20.0 + 6.0 * (1.0 - u) + 4.0 * f[f"a_mie_{k}"]
            vals[f"g_{k}"] = 0.875 + 0.05 * f[f"g_{k}"]
        vals["d_2"] = 630.0 + 150.0 * u + 30.0 * f["d_2"]
        vals["d_3"] = 500.0 + 60.0 * v + 20.0 * f["d_3"]
        return vals

    def fields(u, v, ischemic, vessel):
        vals = base(u, v)
        # ischemic patch: low sO2 (0.25–0.35), slightly less blood
        vals["sao2"] = (1 - ischemic) * vals["sao2"] + ischemic * (0.30 + 0.05 * smooth["sao2"](v, u))
        vals["vhb_1"] = (1 - ischemic) * vals["vhb_1"] + ischemic * 0.8 * vals["vhb_1"]
        # vessels: high blood volume in the top two layers, oxygenated
        vals["vhb_1"] = (1 - vessel) * vals["vhb_1"] + vessel * 0.085
        vals["vhb_2"] = (1 - vessel) * vals["vhb_2"] + vessel * 0.08
        vals["sao2"] = (1 - vessel) * vals["sao2"] + vessel * np.maximum(vals["sao2"], 0.9)
        missing = [n for n in names if n not in vals]
        if missing:
            raise ValueError(f"sample image: no field for parameters {missing} (colon tissue expected)")
        return np.stack([np.broadcast_to(np.asarray(vals[n], dtype=np.float64), np.shape(u)) for n in names], -1)

    return fields


def _masks(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased ischemia and vessel weights in [0, 1] (H × W)."""
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = cc / max(w - 1, 1), rr / max(h - 1, 1)
    # ischemic patch: an ellipse in the lower-left quadrant, 2-pixel soft edge
    cu, cv, au, av = 0.3, 0.68, 0.16, 0.12
    dist = np.sqrt(((u - cu) / au) ** 2 + ((v - cv) / av) ** 2)
    ischemic = np.clip((1.0 - dist) * (min(au * w, av * h) / 2.0) + 0.5, 0.0, 1.0)
    # vessels: three meandering lines of 2–4 px width
    vessel = np.zeros((h, w))
    for k in range(3):
        amp, freq, phase = rng.uniform(0.03, 0.08), rng.uniform(1.0, 2.5), rng.uniform(0, 2 * math.pi)
        centre = 0.2 + 0.3 * k + amp * np.sin(2 * math.pi * freq * u + phase)
        half_width_px = 1.0 + 0.5 * k * (h / 256.0)
        d_px = np.abs(v - centre) * h
        vessel = np.maximum(vessel, np.clip(half_width_px + 0.5 - d_px, 0.0, 1.0))
    return ischemic, vessel


def _bilinear_weights(pos: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip(np.searchsorted(nodes, pos, side="right") - 1, 0, len(nodes) - 2)
    t = (pos - nodes[idx]) / (nodes[idx + 1] - nodes[idx])
    return idx, t


def make_sample_image(
    size: int = 256,
    seed: int = 0,
    snr: float = 30.0,
    *,
    grid_step: int = 16,
    tissue: TissueModel | None = None,
    camera: Camera | None = None,
    settings: SolverSettings | None = None,
    n_check: int = 64,
) -> SampleImage:
    """Simulate the sample measurement.

    Args:
        size: Image height and width in pixels.
        seed: Seed of the random fields, the noise and the defect positions.
        snr: Signal-to-noise ratio of the multiplicative camera noise (σ = R / SNR).
        grid_step: Spacing (pixels) of the spatial interpolation grid (see module docstring).
        tissue: Tissue model (default: shipped ``colon``).
        camera: Camera (default: shipped ``spectrocam8``).
        settings: Solver settings (default: :class:`SolverSettings` defaults, as for datasets).
        n_check: Pixels simulated directly to measure the interpolation error (0: skip).

    Returns:
        A :class:`SampleImage`.
    """
    if size < 8:
        raise ValueError("size must be ≥ 8 pixels")
    tissue = tissue or load_tissue("colon")
    camera = camera or load_camera("spectrocam8")
    settings = settings or SolverSettings()
    fm = ForwardModel(tissue, camera, settings)
    rng = np.random.default_rng(seed)
    fields = _parameter_fields(tissue, int(rng.integers(2**31)))
    h = w = int(size)
    ischemic, vessel = _masks(h, w, rng)

    # ground truth per pixel
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = cc / (w - 1), rr / (h - 1)
    x_true = fields(u, v, ischemic, vessel)  # H × W × D
    lo_hi = tissue.prior_bounds()
    x_true = np.clip(x_true, lo_hi[:, 0], lo_hi[:, 1])

    # simulate the grid nodes × {0,1}² corner states
    n_nodes = max(2, math.ceil((size - 1) / grid_step) + 1)
    nodes = np.linspace(0.0, size - 1.0, n_nodes)
    nu, nv = np.meshgrid(nodes / (w - 1), nodes / (h - 1), indexing="xy")  # [n_nodes(r), n_nodes(c)]
    corner_x = np.stack(
        [
            np.stack([fields(nu, nv, np.full_like(nu, i), np.full_like(nu, ve)) for ve in (0.0, 1.0)], -2)
            for i in (0.0, 1.0)
        ],
        -3,
    )  # [nr, nc, 2(i), 2(v), D]
    corner_x = np.clip(corner_x, lo_hi[:, 0], lo_hi[:, 1])
    flat = torch.as_tensor(corner_x.reshape(-1, corner_x.shape[-1]))
    with torch.inference_mode():
        y_nodes = fm.bands(flat).cpu().numpy().reshape(*corner_x.shape[:-1], camera.n_bands)

    # multilinear interpolation in (r, c, i, v)
    ir, tr = _bilinear_weights(rr[:, 0], nodes)
    ic, tc = _bilinear_weights(cc[0, :], nodes)
    tr_, tc_ = tr[:, None, None], tc[None, :, None]
    y = np.zeros((h, w, camera.n_bands))
    for di, wi in ((0, 1 - ischemic), (1, ischemic)):
        for dv, wv in ((0, 1 - vessel), (1, vessel)):
            ys = y_nodes[:, :, di, dv, :]
            spatial = (
                (1 - tr_) * (1 - tc_) * ys[ir][:, ic]
                + (1 - tr_) * tc_ * ys[ir][:, ic + 1]
                + tr_ * (1 - tc_) * ys[ir + 1][:, ic]
                + tr_ * tc_ * ys[ir + 1][:, ic + 1]
            )
            y += (wi * wv)[:, :, None] * spatial

    # interpolation error against direct simulation of the ground truth
    attrs: dict[str, Any] = {}
    if n_check:
        pick = rng.choice(h * w, size=min(n_check, h * w), replace=False)
        with torch.inference_mode():
            y_direct = fm.bands(torch.as_tensor(x_true.reshape(-1, x_true.shape[-1])[pick])).cpu().numpy()
        rel = np.abs(y.reshape(-1, camera.n_bands)[pick] - y_direct) / y_direct
        attrs["interpolation_rel_error_median"] = float(np.median(rel))
        attrs["interpolation_rel_error_max"] = float(np.max(rel))
        attrs["interpolation_check_pixels"] = int(len(pick))

    # camera noise at a fixed SNR (multiplicative, clipped to [1e-5, 1] as in training)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    y_noisy = camera.noise.apply(torch.as_tensor(y.reshape(-1, camera.n_bands)), gen, snr=snr).numpy()
    y_noisy = y_noisy.reshape(h, w, camera.n_bands)

    regions = np.zeros((h, w), np.uint8)
    regions[ischemic >= 0.5] = REGION_LABELS["ischemic"]
    regions[vessel >= 0.5] = REGION_LABELS["vessel"]

    # specular highlight: a bright, nearly white glint (added after the noise so it stays above 1)
    hc, hr, hs = round(0.72 * w), round(0.28 * h), max(1.5, 0.025 * size)
    glint = np.exp(-(((cc - hc) ** 2 + (rr - hr) ** 2) / (2 * hs**2)))
    y_noisy = y_noisy + 1.15 * glint[:, :, None]
    regions[1.15 * glint > 0.3] = REGION_LABELS["specular"]

    # defects: dead (0), NaN and saturated (1.5) pixels
    n_def = max(3, (h * w) // 4096)
    allowed = np.flatnonzero(regions.reshape(-1) != REGION_LABELS["specular"])
    pos = rng.choice(allowed, size=3 * n_def, replace=False)
    flat_y = y_noisy.reshape(-1, camera.n_bands)
    flat_y[pos[:n_def]] = 0.0
    flat_y[pos[n_def : 2 * n_def]] = np.nan
    flat_y[pos[2 * n_def :]] = 1.5
    regions.reshape(-1)[pos] = REGION_LABELS["defect"]

    attrs.update(
        seed=int(seed),
        snr=float(snr),
        size=int(size),
        grid_step=int(grid_step),
        generator_version=GENERATOR_VERSION,
        tissue=json.dumps(tissue.to_dict()),
        camera=json.dumps(camera.to_dict()),
        solver=json.dumps(settings.to_dict()),
        region_labels=json.dumps(REGION_LABELS),
        n_dead=int(n_def),
        n_nan=int(n_def),
        n_saturated=int(n_def),
        notes="noise-free reflectance interpolated multilinearly from adding-doubling simulations on a grid of "
        "every grid_step pixels x {ischemic, vessel} corner states; see tissue_inn.simulation.sample_image",
    )
    gt = {n: x_true[:, :, k].astype(np.float32) for k, n in enumerate(tissue.parameter_names)}
    return SampleImage(
        reflectance=y_noisy.astype(np.float32),
        wavelengths_nm=np.asarray(camera.band_centers_nm, dtype=np.float64),
        ground_truth=gt,
        regions=regions,
        attrs=attrs,
    )


def write_sample_image(sample: SampleImage, path: str | os.PathLike, force: bool = False) -> Path:
    """Write a :class:`SampleImage` to HDF5 atomically (layout in the module docstring)."""
    import h5py

    with atomic_path(path, force=force) as tmp:
        with h5py.File(tmp, "w") as fh:
            ds = fh.create_dataset(
                "reflectance",
                data=sample.reflectance,
                compression="gzip",
                compression_opts=6,
                shuffle=True,
                chunks=(
                    min(64, sample.reflectance.shape[0]),
                    min(64, sample.reflectance.shape[1]),
                    sample.reflectance.shape[2],
                ),
            )
            ds.attrs["wavelengths_nm"] = sample.wavelengths_nm
            ds.attrs["units"] = "reflectance (fraction)"
            gt = fh.create_group("ground_truth")
            for name, arr in sample.ground_truth.items():
                gt.create_dataset(name, data=arr, compression="gzip", compression_opts=6, shuffle=True)
            ann = fh.create_group("annotations")
            reg = ann.create_dataset("regions", data=sample.regions, compression="gzip")
            reg.attrs["labels"] = json.dumps(REGION_LABELS)
            for key, value in sample.attrs.items():
                fh.attrs[key] = value
    return Path(path)
