"""The forward model: tissue parameters x → camera band reflectances y.

``x`` (physical units, columns in the tissue's parameter order) → per-layer optical
properties (μa from haemoglobin and the layer's other absorbers, μs from the Mie power law with an
optional Rayleigh part, g, thickness) at the camera's
integration wavelengths → adding-doubling total diffuse reflectance → band integration.

Example:
    >>> import torch
    >>> from tissue_inn.config import load_tissue, load_camera
    >>> fm = ForwardModel(load_tissue("colon"), load_camera("spectrocam8"))
    >>> x = load_tissue("colon").sample_prior(4, torch.Generator().manual_seed(0))
    >>> fm.bands(x).shape
    torch.Size([4, 8])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tissue_inn.config import Camera, TissueModel
from tissue_inn.optics.absorbers import unit_mu_a_per_cm
from tissue_inn.optics.adding_doubling import stack_reflectance
from tissue_inn.optics.camera import BandIntegrator, band_integrator
from tissue_inn.optics.chromophores import hemoglobin_extinction, mu_a_blood_per_cm, reduced_scattering_per_cm

__all__ = ["SolverSettings", "ForwardModel", "optical_properties"]


@dataclass(frozen=True)
class SolverSettings:
    """Accuracy settings of the forward model (recorded with every dataset and model)."""

    n_quad: int = 16
    band_mode: str = "gauss-hermite"
    nodes_per_band: int = 4
    dtype: str = "float64"
    chunk_size: int = 2048

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def optical_properties(
    tissue: TissueModel, x: torch.Tensor, wavelengths_nm: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-layer optical properties at the given wavelengths.

    Returns ``mu_a_per_cm``, ``mu_s_per_cm`` (``[N, W, L]``), ``g``, ``thickness_cm``, ``n_layers``
    (``[N, L]``).
    """
    v = tissue.layer_values(x)
    eps_o, eps_d = hemoglobin_extinction(wavelengths_nm.detach().cpu().numpy())
    eps_o_t = torch.as_tensor(eps_o, dtype=x.dtype, device=x.device)[None, :, None]
    eps_d_t = torch.as_tensor(eps_d, dtype=x.dtype, device=x.device)[None, :, None]
    wl = wavelengths_nm.to(dtype=x.dtype, device=x.device)[None, :, None]
    mu_a = mu_a_blood_per_cm(
        v["sao2"][:, None, None],
        v["vhb"][:, None, :],
        eps_o_t,
        eps_d_t,
        tissue.c_hb_g_per_l,
        tissue.hb_molar_mass_g_per_mol,
    )
    wl_np = wavelengths_nm.detach().cpu().numpy()
    for name, amount in v["absorbers"].items():  # type: ignore[union-attr]
        unit = torch.as_tensor(unit_mu_a_per_cm(name, wl_np), dtype=x.dtype, device=x.device)
        mu_a = mu_a + amount[:, None, :] * unit[None, :, None]
    if "f_ray" in v:
        mu_s_reduced = reduced_scattering_per_cm(v["a_mie"][:, None, :], v["b_mie"][:, None, :], wl,
                                                 v["f_ray"][:, None, :])
    else:
        mu_s_reduced = reduced_scattering_per_cm(v["a_mie"][:, None, :], v["b_mie"][:, None, :], wl)
    mu_s = mu_s_reduced / (1.0 - v["g"][:, None, :])
    return {
        "mu_a_per_cm": mu_a,
        "mu_s_per_cm": mu_s,
        "g": v["g"],
        "thickness_cm": v["d_um"] * 1e-4,
        "n_layers": v["n_layers"],
    }


class ForwardModel:
    """Batched forward model for one tissue definition and one camera.

    The stack uses one refractive index, that of the top layer (the one at the air boundary);
    the error this makes for the shipped tissues is measured in the Monte Carlo validation
    (README, "Validation").
    """

    def __init__(
        self,
        tissue: TissueModel,
        camera: Camera,
        settings: SolverSettings | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.tissue = tissue
        self.camera = camera
        self.settings = settings or SolverSettings()
        self.device = torch.device(device)
        self.dtype = getattr(torch, self.settings.dtype)
        self.integrator: BandIntegrator = band_integrator(
            camera, self.settings.band_mode, self.settings.nodes_per_band
        )

    @property
    def n_bands(self) -> int:
        return self.camera.n_bands

    def spectrum(self, x: torch.Tensor | np.ndarray, wavelengths_nm: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Total diffuse reflectance ``[N, W]`` at arbitrary wavelengths (no band integration)."""
        x_t = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        wl = torch.as_tensor(np.asarray(wavelengths_nm, dtype=np.float64), dtype=self.dtype, device=self.device)
        out = []
        for start in range(0, x_t.shape[0], self.settings.chunk_size):
            xc = x_t[start:start + self.settings.chunk_size]
            props = optical_properties(self.tissue, xc, wl)
            out.append(
                stack_reflectance(
                    props["mu_a_per_cm"],
                    props["mu_s_per_cm"],
                    props["g"],
                    props["thickness_cm"],
                    props["n_layers"][:, 0],
                    n_above=self.tissue.n_above,
                    n_below=self.tissue.n_below,
                    n_quad=self.settings.n_quad,
                )
            )
        if not out:
            return torch.zeros((0, wl.numel()), dtype=self.dtype, device=self.device)
        return torch.cat(out)

    def bands(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Band reflectances ``[N, B]`` (noise-free)."""
        r = self.spectrum(x, self.integrator.wavelengths_nm)
        return self.integrator.integrate(r)
