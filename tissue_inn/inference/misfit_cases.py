"""Tissue a model does not cover: simulated spectra to check that its misfit gate flags them.

Each case changes the model's own tissue definition (its card's tissue) in one physiological way the
model's prior cannot express, or swaps it for another tissue, and is simulated with the same solver
and camera. Used by the gate's tests and by ``benchmarks/bench_misfit.py``.

Cases (for a layered tissue like ``colon``; layer 1 = top):
    blood_layer   a blood-filled top layer (a vessel at the surface): vhb_1 uniform 0.3–1
                  (large vessels are nearly pure blood; the colon prior stops at 0.1).
    blood_layer_2 the same in layer 2 (a vessel under the mucosa).
    melanin_top   melanosomes in the top layer, volume fraction uniform 2–20 % (Jacques 2013: 1–3 %
                  light, up to 43 % dark skin), absorption 519 (λ/500 nm)^−3.5 cm⁻¹ (Jacques 2013).
    fat_layer     a fat-like top layer: fat volume fraction 0.7–0.95 (adipose tissue is mostly lipid,
                  van Veen et al. 2005), little blood (vhb 0–0.5 %), reduced scattering at 500 nm
                  10–30 cm⁻¹ with power b 0.5–1.0 (A. N. Bashkatov et al., J. Phys. D 38 (2005) 2543),
                  1–3 mm thick.
    skin          the shipped ``skin`` tissue (epidermis with melanin, dermis, subcutis) as it is.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from tissue_inn.config import Camera, NoiseModel, TissueModel, load_tissue
from tissue_inn.optics.forward import ForwardModel, SolverSettings

__all__ = ["CASES", "case_tissue", "simulate_case"]

CASES = ("blood_layer", "blood_layer_2", "melanin_top", "fat_layer", "skin")


def _uniform(low: float, high: float) -> dict[str, Any]:
    return {"prior": "uniform", "low": low, "high": high}


def case_tissue(base: TissueModel, case: str) -> TissueModel:
    """The tissue of ``case`` derived from ``base`` (see the module docstring)."""
    if case == "skin":
        return load_tissue("skin")
    if case not in CASES:
        raise ValueError(f"misfit case {case!r} unknown; use one of {list(CASES)}")
    raw = copy.deepcopy(base.to_dict())
    layers = raw.get("layers", [])
    need = 2 if case == "blood_layer_2" else 1
    if len(layers) < need:
        raise ValueError(f"case {case!r} needs a tissue with at least {need} layers")
    top = layers[0]
    if case == "blood_layer":
        top["vhb"] = _uniform(0.3, 1.0)
    elif case == "blood_layer_2":
        layers[1]["vhb"] = _uniform(0.3, 1.0)
    elif case == "melanin_top":
        top["mel"] = _uniform(0.02, 0.2)
    elif case == "fat_layer":
        top.update(fat=_uniform(0.7, 0.95), vhb=_uniform(0.0, 0.005), a_mie=_uniform(10.0, 30.0),
                   b_mie=_uniform(0.5, 1.0), d=_uniform(1000.0, 3000.0))
    raw["name"] = f"{raw.get('name', 'tissue')}+{case}"
    return TissueModel.from_dict(raw, source=f"misfit case {case}")


def simulate_case(base: TissueModel, camera: Camera, case: str, n: int, seed: int,
                  snr: float | None = None, settings: SolverSettings | None = None,
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """``(y_clean [n, B], y_noisy [n, B] or None)`` of ``n`` spectra of ``case`` (seeded; noise at ``snr``)."""
    tissue = case_tissue(base, case)
    gen = torch.Generator().manual_seed(int(seed))
    x = tissue.sample_prior(int(n), gen)
    y = ForwardModel(tissue, camera, settings or SolverSettings()).bands(x)
    noisy = None
    if snr is not None:
        noisy = camera.noise.apply(y, generator=gen, snr=float(snr)).numpy() if camera.noise else \
            NoiseModel().apply(y, generator=gen, snr=float(snr)).numpy()
    return y.numpy(), noisy
