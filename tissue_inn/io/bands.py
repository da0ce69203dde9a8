"""Band matching: which of a measurement's bands give a model's (or a reference's) bands, by wavelength.

>>> match_bands([470.0, 480.0, 511.0, 560.0], [560.0, 470.0]).tolist()
[3, 0]
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tissue_inn.errors import BandMismatchError

__all__ = ["match_bands", "fmt_nm"]


def fmt_nm(values: Any) -> str:
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(values, dtype=np.float64).reshape(-1)) + "] nm"


def match_bands(
    cube_wavelengths_nm: Any,
    model_wavelengths_nm: Any,
    tol_nm: float = 2.0,
    *,
    n_cube_bands: int | None = None,
    warnings_out: list[str] | None = None,
) -> np.ndarray:
    """Indices into the cube's bands that give the model's bands, in the model's order.

    Each model band takes the nearest cube band within ``tol_nm``; a cube with more bands than the
    model is fine (its extra bands are dropped).

    Args:
        cube_wavelengths_nm: The cube's band centres (nm), None when unknown, or a
            :class:`~tissue_inn.io.cube.Cube`
            (then its wavelengths and band count are used and a warning lands in its metadata).
        model_wavelengths_nm: The model's band centres (nm).
        tol_nm: Largest accepted |cube − model| difference.
        n_cube_bands: Band count of a cube without wavelengths.
        warnings_out: List that receives a warning text when the match is by count only.

    Raises:
        BandMismatchError: Some model band has no cube band within ``tol_nm`` (names both lists
            and the missing bands), or the cube has no wavelengths and the band counts differ.
    """
    cube_meta = None
    if hasattr(cube_wavelengths_nm, "wavelengths_nm") and hasattr(cube_wavelengths_nm, "shape"):
        cube_meta = cube_wavelengths_nm.metadata
        n_cube_bands = cube_wavelengths_nm.shape[2]
        cube_wavelengths_nm = cube_wavelengths_nm.wavelengths_nm
    model = np.asarray(model_wavelengths_nm, dtype=np.float64).reshape(-1)
    if cube_wavelengths_nm is None:
        if n_cube_bands is None or n_cube_bands != model.size:
            have = "an unknown number of" if n_cube_bands is None else str(n_cube_bands)
            raise BandMismatchError(
                f"the cube carries no wavelengths and has {have} bands, the model needs {model.size} bands "
                f"{fmt_nm(model)}; pass the cube's wavelengths (--wavelengths)"
            )
        msg = (
            f"the cube carries no wavelengths; assuming its {n_cube_bands} bands are the model's "
            f"{fmt_nm(model)} in order (pass --wavelengths to check)"
        )
        if warnings_out is not None:
            warnings_out.append(msg)
        if cube_meta is not None:
            cube_meta.setdefault("warnings", []).append(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
        return np.arange(model.size, dtype=np.int64)
    cube = np.asarray(cube_wavelengths_nm, dtype=np.float64).reshape(-1)
    if cube.size == 0:
        raise BandMismatchError("the cube has no bands")
    diff = np.abs(cube[None, :] - model[:, None])
    nearest = np.argmin(diff, axis=1)
    ok = diff[np.arange(model.size), nearest] <= tol_nm
    missing = model[~ok]
    if missing.size:
        raise BandMismatchError(
            f"cube bands {fmt_nm(cube)} do not provide model bands {fmt_nm(model)}: missing {fmt_nm(missing)} "
            f"(tolerance ±{tol_nm:g} nm); use a model trained for this camera"
        )
    uniq, counts = np.unique(nearest, return_counts=True)
    if np.any(counts > 1):
        dup = cube[uniq[counts > 1]]
        raise BandMismatchError(
            f"model bands {fmt_nm(model)} are closer together than the tolerance ±{tol_nm:g} nm: cube band(s) "
            f"{fmt_nm(dup)} would serve several model bands (cube bands {fmt_nm(cube)})"
        )
    return nearest.astype(np.int64)
