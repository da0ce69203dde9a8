"""Camera definitions (``resources/cameras/*.toml``): bands, optional illumination and sensor response.

A camera file gives its bands in one of three ways:

* ``band_centers_nm`` + ``fwhm_nm`` (one number, or one per band): Gaussian filters;
* ``filter_wavelengths_nm`` + ``filter_transmission`` (one row per band): measured curves inline;
* ``filters_csv``: a CSV table (first column wavelength in nm, one column per band), or a list of
  CSV files, one per band (two columns: wavelength in nm, transmission). Paths are relative to the
  camera file. The curves are read at load time and kept inline, so a model card or dataset holds
  the whole camera. ``band_centers_nm`` may then be left out (the transmission-weighted mean is used).

Optionally ``illumination_csv`` / ``sensor_response_csv`` (two columns: nm, relative value), or
inline ``illumination = { wavelengths_nm = [...], values = [...] }`` (same for ``sensor_response``):
a band value is then ``∫ R f E S dλ / ∫ f E S dλ`` (a white-reference-calibrated reflectance).

Example:
    >>> cam = load_camera("spectrocam8")
    >>> cam.n_bands, cam.fwhm_nm
    (8, 10.0)
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from tissue_inn.config import NoiseModel, _read_toml, _resolve
from tissue_inn.errors import ConfigError

__all__ = ["Camera", "load_camera", "read_curve_csv", "camera_from_bands", "camera_toml"]

_MIN_NM, _MAX_NM = 400.0, 1000.0  # the haemoglobin table covers 250-1000 nm


@dataclass(frozen=True)
class Camera:
    """Band definitions of a multispectral camera (see the module docstring).

    Either ``fwhm_nm`` (Gaussian bands; a number or one per band) or ``filter_wavelengths_nm`` +
    ``filter_transmission`` (``[B, K]`` tabulated curves) is given. ``illumination`` and
    ``sensor_response`` are ``(wavelengths_nm, values)`` or ``None``.
    """

    name: str
    description: str
    band_centers_nm: tuple[float, ...]
    fwhm_nm: float | tuple[float, ...] | None = None
    filter_wavelengths_nm: tuple[float, ...] | None = None
    filter_transmission: tuple[tuple[float, ...], ...] | None = None
    noise: NoiseModel = field(default_factory=NoiseModel)
    source: str = ""
    illumination: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    sensor_response: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def n_bands(self) -> int:
        return len(self.band_centers_nm)

    @property
    def fwhm_per_band(self) -> np.ndarray | None:
        """FWHM of each Gaussian band (nm), ``None`` for tabulated filters."""
        if self.fwhm_nm is None:
            return None
        if isinstance(self.fwhm_nm, tuple):
            return np.asarray(self.fwhm_nm, dtype=np.float64)
        return np.full(self.n_bands, float(self.fwhm_nm))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able content (round-trips through :meth:`from_dict`); unset optional parts are left out."""
        d: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            v = getattr(self, f.name)
            if f.name in ("illumination", "sensor_response"):
                if v is not None:
                    d[f.name] = {"wavelengths_nm": list(v[0]), "values": list(v[1])}
                continue
            if f.name == "noise":
                v = {k.name: getattr(v, k.name) for k in fields(v)}
            elif isinstance(v, tuple):
                v = [list(r) if isinstance(r, tuple) else r for r in v]
            d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<dict>") -> Camera:
        return _parse_camera(raw, source)


def read_curve_csv(path: Path, where: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A CSV (comma, semicolon or tab separated) with a header row: wavelength (nm), then value column(s).

    Returns (wavelengths ``[K]``, values ``[K, C]``, column names).
    """
    if not path.is_file():
        raise ConfigError(f"{where}: curve file {path} not found (paths are relative to the camera file)")
    text = path.read_text()
    try:
        dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t")
        rows = list(csv.reader(text.splitlines(), dialect))
    except (csv.Error, IndexError):
        raise ConfigError(f"{where}: {path} is not a CSV table (header row, then wavelength, value, ...)") from None
    header, body = rows[0], [r for r in rows[1:] if r and any(c.strip() for c in r)]
    try:
        table = np.array([[float(c) for c in r] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise ConfigError(f"{where}: {path}: a non-numeric entry below the header ({exc})") from None
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < 2 or table.shape[1] != len(header):
        raise ConfigError(f"{where}: {path}: need a header and ≥ 2 rows of wavelength (nm), value(s), "
                          "all rows as long as the header")
    order = np.argsort(table[:, 0])
    table = table[order]
    if np.any(np.diff(table[:, 0]) <= 0):
        raise ConfigError(f"{where}: {path}: wavelengths must be distinct")
    if np.any(table[:, 1:] < 0):
        raise ConfigError(f"{where}: {path}: values must be non-negative")
    return table[:, 0], table[:, 1:], [h.strip() for h in header[1:]]


def _filters_from_csv(spec: Any, folder: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(spec, str):
        wl, values, _ = read_curve_csv(folder / spec, where)
        return wl, values.T
    if not isinstance(spec, list) or not spec or not all(isinstance(s, str) for s in spec):
        raise ConfigError(f"{where}: 'filters_csv' must be a file name or a list of file names (one per band)")
    curves = [read_curve_csv(folder / s, where)[:2] for s in spec]
    grid = np.unique(np.concatenate([c[0] for c in curves]))
    return grid, np.stack([np.interp(grid, c[0], c[1][:, 0], left=0.0, right=0.0) for c in curves])


def _spectrum(raw: dict[str, Any], key: str, folder: Path, where: str):
    inline, file_key = raw.get(key), raw.get(f"{key}_csv")
    if inline is not None and file_key is not None:
        raise ConfigError(f"{where}: give '{key}' or '{key}_csv', not both")
    if file_key is not None:
        wl, values, _ = read_curve_csv(folder / str(file_key), where)
        vals = values[:, 0]
    elif inline is not None:
        if not isinstance(inline, dict) or set(inline) != {"wavelengths_nm", "values"}:
            raise ConfigError(f"{where}: '{key}' must be a table {{ wavelengths_nm = [...], values = [...] }}")
        wl, vals = np.asarray(inline["wavelengths_nm"], float), np.asarray(inline["values"], float)
        if wl.shape != vals.shape or wl.size < 2 or np.any(np.diff(wl) <= 0) or np.any(vals < 0):
            raise ConfigError(f"{where}: '{key}' needs ≥ 2 increasing wavelengths and as many non-negative values")
    else:
        return None
    if not np.any(vals > 0):
        raise ConfigError(f"{where}: '{key}' is zero everywhere")
    return (tuple(float(v) for v in wl), tuple(float(v) for v in vals))


def _parse_camera(raw: dict[str, Any], source: str, folder: Path | None = None) -> Camera:
    where = source
    folder = folder or Path(".")
    allowed = {"name", "description", "band_centers_nm", "fwhm_nm", "filter_wavelengths_nm", "filter_transmission",
               "filters_csv", "noise", "illumination", "illumination_csv", "sensor_response", "sensor_response_csv"}
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if "name" not in raw:
        raise ConfigError(f"{where}: a camera needs a 'name'")
    fwhm, fw, ft = raw.get("fwhm_nm"), raw.get("filter_wavelengths_nm"), raw.get("filter_transmission")
    if raw.get("filters_csv") is not None:
        if fw is not None or ft is not None:
            raise ConfigError(f"{where}: give 'filters_csv' or inline 'filter_transmission', not both")
        wl_arr, tr_arr = _filters_from_csv(raw["filters_csv"], folder, where)
        fw, ft = wl_arr.tolist(), tr_arr.tolist()
    if (fwhm is None) == (fw is None):
        raise ConfigError(f"{where}: give either 'fwhm_nm' (Gaussian bands) or measured filter curves "
                          "('filters_csv', or 'filter_wavelengths_nm' + 'filter_transmission')")
    centers = raw.get("band_centers_nm")
    if centers is None and fw is not None and ft is not None:
        w = np.asarray(fw, float)
        centers = [float((w * np.asarray(r, float)).sum() / max(np.sum(r), 1e-300)) for r in ft]
    if not isinstance(centers, list | tuple) or not centers or not all(isinstance(c, int | float) for c in centers):
        raise ConfigError(f"{where}: 'band_centers_nm' must be a non-empty list of numbers")
    centers_t = tuple(float(c) for c in centers)
    if any(c < _MIN_NM or c > _MAX_NM for c in centers_t):
        raise ConfigError(f"{where}: band centres must lie in 400-1000 nm (haemoglobin table range), got {centers_t}")
    fwhm_v: float | tuple[float, ...] | None = None
    if fwhm is not None:
        values = fwhm if isinstance(fwhm, list | tuple) else [fwhm]
        if (not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values)
                or (isinstance(fwhm, list | tuple) and len(values) != len(centers_t))):
            raise ConfigError(f"{where}: 'fwhm_nm' must be a positive number or one positive number per band "
                              f"({len(centers_t)}), got {fwhm!r}")
        fwhm_v = tuple(float(v) for v in values) if isinstance(fwhm, list | tuple) else float(fwhm)
    if fw is not None:
        if ft is None or len(ft) != len(centers_t) or any(len(row) != len(fw) for row in ft):
            raise ConfigError(f"{where}: 'filter_transmission' needs one row per band, each as long as "
                              "'filter_wavelengths_nm'")
        if any(v < 0 for row in ft for v in row) or any(sum(row) <= 0 for row in ft):
            raise ConfigError(f"{where}: filter transmissions must be non-negative and not all zero")
        if min(fw) < 250.0 or max(fw) > _MAX_NM:
            raise ConfigError(f"{where}: filter curves must lie within 250-1000 nm (haemoglobin table range)")
    noise_raw = raw.get("noise", {})
    try:
        noise = NoiseModel(**{k: float(v) for k, v in noise_raw.items()})
    except TypeError as exc:
        raise ConfigError(f"{where}: [noise] {exc}") from None
    return Camera(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        band_centers_nm=centers_t,
        fwhm_nm=fwhm_v,
        filter_wavelengths_nm=tuple(float(v) for v in fw) if fw is not None else None,
        filter_transmission=tuple(tuple(float(v) for v in row) for row in ft) if ft is not None else None,
        noise=noise,
        source=source,
        illumination=_spectrum(raw, "illumination", folder, where),
        sensor_response=_spectrum(raw, "sensor_response", folder, where),
    )


def camera_from_bands(band_centers_nm, name: str = "cube_camera", fwhm_nm: float | None = None,
                      description: str = "") -> Camera:
    """A Gaussian-band camera for a cube whose band centres are known but not its filters.

    ``fwhm_nm`` defaults to the median spacing of neighbouring bands (10 nm for a single band), the
    usual width of contiguous spectral bands. Used by the GUI's band-mismatch dialog to offer a model
    for the cube's own camera.
    """
    centers = sorted(float(c) for c in band_centers_nm)
    if fwhm_nm is None:
        fwhm_nm = float(np.median(np.diff(centers))) if len(centers) > 1 else 10.0
    raw = {"name": name, "description": description or f"{len(centers)} Gaussian bands of {fwhm_nm:g} nm FWHM "
           "(band centres from an image; FWHM assumed)", "band_centers_nm": centers, "fwhm_nm": fwhm_nm}
    return _parse_camera(raw, f"camera {name!r}")


def camera_toml(camera: Camera) -> str:
    """The camera as the text of a camera file (``resources/cameras/*.toml`` format; curves inline)."""
    def fmt(v: Any) -> str:
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(fmt(e) for e in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {fmt(e)}" for k, e in v.items()) + " }"
        return repr(float(v)) if isinstance(v, float) else str(v)

    d = camera.to_dict()
    noise = d.pop("noise")
    lines = [f"{k} = {fmt(v)}" for k, v in d.items() if v is not None]
    lines += ["", "[noise]"] + [f"{k} = {fmt(v)}" for k, v in noise.items()]
    return "\n".join(lines) + "\n"


def load_camera(name_or_path: str | Path) -> Camera:
    """Load a shipped camera by name (``spectrocam8``) or a TOML file by path."""
    path = _resolve("camera", name_or_path)
    return _parse_camera(_read_toml(path), str(path), path.parent)
