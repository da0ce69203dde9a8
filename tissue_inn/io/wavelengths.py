"""Band centres as files spell them (attributes, sidecars, headers; nm or µm) → nm.

Readers find the raw values and their units; :func:`wavelengths_to_nm` turns them into nm (or says
why it cannot), and :func:`read_sidecar_wavelengths` reads a ``<name>.wavelengths.txt/json`` beside
a file that cannot carry wavelengths itself (NumPy, CSV).

>>> wavelengths_to_nm("[0.5, 0.56]", "µm", "x.h5", [])
(array([500., 560.]), None)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.errors import DataFileError

__all__ = [
    "WAVELENGTH_KEYS",
    "parse_wavelength_values",
    "units_from_key",
    "unit_scale_to_nm",
    "wavelengths_to_nm",
    "read_sidecar_wavelengths",
    "jsonable",
]

WAVELENGTH_KEYS = (
    "wavelengths_nm",
    "wavelength_nm",
    "wavelengths",
    "wavelength",
    "band_centers_nm",
    "wavelengths_um",
)
_NM_UNITS = {"nm", "nanometer", "nanometers", "nanometre", "nanometres"}
_UM_UNITS = {"um", "µm", "μm", "micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns"}
_UNKNOWN_UNITS = {"", "unknown", "none"}
# Wavelengths below this value without explicit units are taken to be micrometres (visible/NIR
# imaging spans roughly 0.35–2.5 µm, i.e. 350–2500 nm; no band centre in nm is below 30).
_UM_HEURISTIC_MAX = 30.0


def jsonable(value: Any) -> Any:
    """Attribute values as plain Python (for ``Cube.metadata``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()] if value.size <= 4096 else f"<array {value.shape}>"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def parse_wavelength_values(raw: Any, where: str) -> np.ndarray:
    """Numbers from an array, a JSON list or a comma/space-separated text (ENVI ``{…}`` braces allowed)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = raw.replace(",", " ").replace("{", " ").replace("}", " ").split()
    try:
        arr = np.asarray(raw, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataFileError(f"{where}: wavelengths are not numbers ({exc}); give the band centres with --wavelengths") from exc
    if not np.all(np.isfinite(arr)):
        raise DataFileError(f"{where}: wavelengths contain NaN/inf; give the band centres with --wavelengths")
    return arr


def units_from_key(key: str, explicit: Any) -> str | None:
    """Units named explicitly (an attribute) or by the key's suffix (``_nm``/``_um``), else None."""
    if explicit is not None:
        return explicit.decode() if isinstance(explicit, bytes) else str(explicit)
    if key.endswith("_nm"):
        return "nm"
    if key.endswith("_um"):
        return "um"
    return None


def unit_scale_to_nm(units: str | None, values: np.ndarray, where: str, warnings_out: list[str]) -> float:
    """Factor converting ``values`` in ``units`` to nm (unknown units: µm when all values < 30)."""
    u = (units or "").strip().lower()
    if u in _NM_UNITS:
        return 1.0
    if u in _UM_UNITS:
        return 1000.0
    if u not in _UNKNOWN_UNITS:
        raise DataFileError(f"{where}: unrecognised wavelength units {units!r}; give the band centres with --wavelengths")
    if values.size and np.nanmax(values) < _UM_HEURISTIC_MAX:
        warnings_out.append(f"{where}: wavelengths without units and all < {_UM_HEURISTIC_MAX:g}; taken as µm")
        return 1000.0
    return 1.0


def wavelengths_to_nm(
    raw: Any, units: str | None, where: str, warnings_out: list[str]
) -> tuple[np.ndarray | None, str | None]:
    """``(wavelengths in nm, None)``, ``(None, None)`` when ``raw`` is None, or ``(None, problem)``.

    A problem (unreadable values or units) is returned, not raised, so that wavelengths given by the
    user can take over; :func:`tissue_inn.io.cube.read_cube` raises it when they do not.
    """
    if raw is None:
        return None, None
    try:
        vals = parse_wavelength_values(raw, where)
        return vals * unit_scale_to_nm(units, vals, where, warnings_out), None
    except DataFileError as exc:
        return None, str(exc)


def read_sidecar_wavelengths(path: Path) -> tuple[Any, str | None, Path] | None:
    """``<stem>.wavelengths.txt/json`` (or ``<name>.wavelengths.*``) beside ``path``: (values, units, file)."""
    for base in (path.with_suffix(""), path):
        for ext in (".json", ".txt"):
            cand = base.with_name(base.name + ".wavelengths" + ext)
            if not cand.is_file():
                continue
            text = cand.read_text(encoding="utf-8")
            if ext == ".txt":
                lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
                return " ".join(lines), None, cand
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataFileError(f"{cand}: invalid JSON ({exc.msg}, line {exc.lineno})") from exc
            if not isinstance(obj, dict):
                return obj, None, cand
            units = obj.get("units") or obj.get("wavelength_units")
            for key in WAVELENGTH_KEYS:
                if key in obj:
                    return obj[key], units_from_key(key, None) or units, cand
            raise DataFileError(f"{cand}: no 'wavelengths_nm' entry")
    return None
