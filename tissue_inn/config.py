"""Tissue and camera definitions: frozen dataclasses read from TOML files, with validation.

(One module for the tissue format: priors, parameters, layers, absorbers and display labels are
parsed and validated together, which reads better whole than split; cameras are in
:mod:`tissue_inn.camera_config` and re-exported here.)

A tissue definition (``resources/tissues/*.toml``) lists the layers (top first) and, per
property, either a fixed number or a prior. Every property with a prior becomes a free
parameter, named ``sao2`` / ``n`` (shared) or ``<property>_<k>`` for layer ``k = 1`` (top)...
A layer names its absorbers and their amounts (``vhb`` blood volume fraction with the shared
``sao2``; ``mel`` melanosome volume fraction; ``eumelanin``/``pheomelanin`` mg/mL; ``fat``/``water``
volume fraction; ``bilirubin`` µmol/L; ``baseline`` bloodless-tissue fraction or ``"rest"``), each a
number or a prior; scattering is ``a_mie`` (μs′ at 500 nm), ``b_mie`` and optionally ``f_ray``
(Rayleigh fraction); 1 to 4 layers. An optional ``[display]`` table overrides clinical labels,
display units and scale factors per parameter (:attr:`TissueModel.parameter_labels`,
:attr:`TissueModel.display_units`, :attr:`TissueModel.display_scales`).
A camera definition (``resources/cameras/*.toml``, :mod:`tissue_inn.camera_config`) lists band
centres and a Gaussian FWHM, or measured filter curves, optionally illumination and sensor response.

Example:
    >>> tissue = load_tissue("colon")
    >>> tissue.parameter_names[:5]
    ('sao2', 'vhb_1', 'a_mie_1', 'g_1', 'd_1')
    >>> len(tissue.parameter_names)
    13
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tissue_inn.errors import ConfigError

__all__ = [
    "Prior",
    "Parameter",
    "LayerSpec",
    "TissueModel",
    "NoiseModel",
    "Camera",
    "load_tissue",
    "load_camera",
    "resources_dir",
    "models_dir",
    "LAYER_PROPERTIES",
    "SHARED_PROPERTIES",
    "ABSORBERS",
    "UNITS",
    "DISPLAY",
]

#: Absorbers a layer may name (amount per layer; ``vhb`` is blood and uses the shared ``sao2``).
ABSORBERS = ("vhb", "mel", "eumelanin", "pheomelanin", "fat", "water", "bilirubin", "baseline")
#: Per-layer properties, in the order they appear in the parameter vector (absorbers first).
LAYER_PROPERTIES = ABSORBERS + ("a_mie", "b_mie", "f_ray", "g", "d", "n")
#: Layer properties that may be left out (absorbers: amount 0; ``f_ray``: pure Mie power law).
OPTIONAL_LAYER_PROPERTIES = ABSORBERS + ("f_ray",)
#: Properties that may be shared by all layers (``n`` only when not given per layer).
SHARED_PROPERTIES = ("sao2", "n")
MAX_LAYERS = 4
UNITS = {"sao2": "1", "vhb": "1", "mel": "1", "eumelanin": "mg/mL", "pheomelanin": "mg/mL", "fat": "1",
         "water": "1", "bilirubin": "umol/L", "baseline": "1", "a_mie": "1/cm", "b_mie": "1", "f_ray": "1",
         "g": "1", "d": "um", "n": "1"}
#: Clinical label, display unit and factor (value shown = factor × value in the unit of ``UNITS``).
DISPLAY = {
    "sao2": ("oxygen saturation StO2", "%", 100.0),
    "vhb": ("blood volume fraction", "%", 100.0),
    "mel": ("melanin volume fraction", "%", 100.0),
    "eumelanin": ("eumelanin concentration", "mg/mL", 1.0),
    "pheomelanin": ("pheomelanin concentration", "mg/mL", 1.0),
    "fat": ("fat volume fraction", "%", 100.0),
    "water": ("water volume fraction", "%", 100.0),
    "bilirubin": ("bilirubin concentration", "µmol/L", 1.0),
    "baseline": ("bloodless-tissue absorber fraction", "%", 100.0),
    "a_mie": ("reduced scattering μs′ at 500 nm", "cm⁻¹", 1.0),
    "b_mie": ("scattering power b", "", 1.0),
    "f_ray": ("Rayleigh fraction of μs′ at 500 nm", "%", 100.0),
    "g": ("anisotropy g", "", 1.0),
    "d": ("thickness", "µm", 1.0),
    "n": ("refractive index", "", 1.0),
}
LABELS = {k: v[0] for k, v in DISPLAY.items()}
_VALID_RANGES = {
    "sao2": (0.0, 1.0),
    "vhb": (0.0, 1.0),
    "mel": (0.0, 1.0),
    "eumelanin": (0.0, math.inf),
    "pheomelanin": (0.0, math.inf),
    "fat": (0.0, 1.0),
    "water": (0.0, 1.0),
    "bilirubin": (0.0, math.inf),
    "baseline": (0.0, 1.0),
    "a_mie": (0.0, math.inf),
    "b_mie": (0.0, 10.0),
    "f_ray": (0.0, 1.0),
    "g": (0.0, 0.99),
    "d": (0.0, math.inf),
    "n": (1.0, 3.0),
}
#: ``baseline = "rest"``: the baseline fills what blood and melanosomes leave, 1 - vhb - mel (Jacques 2013).
REST = "rest"


def _package_root() -> Path:
    return Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The shipped data folder: ``tissue_inn/resources`` in a wheel, ``resources/`` in a checkout."""
    for candidate in (_package_root() / "resources", _package_root().parent / "resources"):
        if (candidate / "tissues").is_dir():
            return candidate
    raise ConfigError("cannot find the resources folder; reinstall tissue_inn (pip install .)")


def models_dir() -> Path:
    """The shipped model bundles: ``tissue_inn/models`` in a wheel, ``models/`` in a checkout."""
    for candidate in (_package_root() / "models", _package_root().parent / "models"):
        if candidate.is_dir():
            return candidate
    return _package_root().parent / "models"


@dataclass(frozen=True)
class Prior:
    """A one-dimensional prior: ``uniform(low, high)`` or ``truncnorm(mean, std, low, high)``."""

    kind: str
    low: float = -math.inf
    high: float = math.inf
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "truncnorm"):
            raise ConfigError(f"prior kind {self.kind!r} unknown; use 'uniform' or 'truncnorm'")
        if self.kind == "uniform" and not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ConfigError("a uniform prior needs finite 'low' and 'high'")
        if not self.low < self.high:
            raise ConfigError(f"prior needs low < high, got low={self.low}, high={self.high}")
        if self.kind == "truncnorm" and not self.std > 0:
            raise ConfigError(f"truncnorm prior needs std > 0, got {self.std}")

    @property
    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` values (float64) with the given generator."""
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        if self.kind == "uniform":
            return self.low + (self.high - self.low) * u
        # inverse-CDF sampling of the truncated normal
        normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
        a = normal.cdf(torch.tensor((self.low - self.mean) / self.std, dtype=torch.float64))
        b = normal.cdf(torch.tensor((self.high - self.mean) / self.std, dtype=torch.float64))
        p = (a + (b - a) * u).clamp(1e-15, 1 - 1e-15)
        x = self.mean + self.std * torch.special.ndtri(p)
        return x.clamp(min=self.low, max=self.high)

    def variance(self) -> float:
        """Variance of the prior (used for posterior contraction)."""
        if self.kind == "uniform":
            return (self.high - self.low) ** 2 / 12.0
        from scipy.stats import truncnorm

        a, b = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
        return float(truncnorm.var(a, b, loc=self.mean, scale=self.std))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"prior": self.kind}
        if self.kind == "truncnorm":
            d.update(mean=self.mean, std=self.std)
        if math.isfinite(self.low):
            d["low"] = self.low
        if math.isfinite(self.high):
            d["high"] = self.high
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "") -> Prior:
        if not isinstance(d, dict) or "prior" not in d:
            raise ConfigError(f"{where}: expected a number or a table with 'prior', got {d!r}")
        unknown = set(d) - {"prior", "low", "high", "mean", "std"}
        if unknown:
            raise ConfigError(f"{where}: unknown prior keys {sorted(unknown)}")
        try:
            kind = str(d["prior"])
            low = float(d.get("low", -math.inf))
            high = float(d.get("high", math.inf))
            if kind == "truncnorm" and ("mean" not in d or "std" not in d):
                raise ConfigError(f"{where}: truncnorm prior needs 'mean' and 'std'")
            return cls(kind=kind, low=low, high=high, mean=float(d.get("mean", 0.0)), std=float(d.get("std", 1.0)))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Parameter:
    """A free parameter: name, unit, clinical label, layer (0 = shared) and prior.

    ``display_unit`` and ``display_scale`` say how to show a value: ``display_scale × value``
    in ``display_unit`` (e.g. sO2 0.63 → 63 %).
    """

    name: str
    unit: str
    label: str
    layer: int
    prior: Prior
    display_unit: str = ""
    display_scale: float = 1.0

    def to_card(self) -> dict[str, Any]:
        """The entry of this parameter in a model card."""
        return {"name": self.name, "unit": self.unit, "label": self.label, "display_unit": self.display_unit,
                "display_scale": self.display_scale, "layer": self.layer, "prior": self.prior.to_dict()}


@dataclass(frozen=True)
class LayerSpec:
    """One layer: each property is a fixed float or the name of a free parameter."""

    properties: dict[str, float | str]


@dataclass(frozen=True)
class TissueModel:
    """A layered tissue definition (see module docstring)."""

    name: str
    description: str
    reference: str
    c_hb_g_per_l: float
    hb_molar_mass_g_per_mol: float
    n_above: float
    n_below: float
    shared: dict[str, float | str]
    layers: tuple[LayerSpec, ...]
    parameters: tuple[Parameter, ...]
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def parameter_units(self) -> tuple[str, ...]:
        return tuple(p.unit for p in self.parameters)

    @property
    def parameter_labels(self) -> tuple[str, ...]:
        """Clinical labels, e.g. "oxygen saturation StO2" (for axes, tables and the card)."""
        return tuple(p.label for p in self.parameters)

    @property
    def display_units(self) -> tuple[str, ...]:
        """Units to show values in, e.g. "%" for sO2 (see :attr:`display_scales`)."""
        return tuple(p.display_unit for p in self.parameters)

    @property
    def display_scales(self) -> tuple[float, ...]:
        """Factors from the parameter's own unit to its display unit (sO2: 100, value 0.63 → 63 %)."""
        return tuple(p.display_scale for p in self.parameters)

    def parameter_card(self) -> list[dict[str, Any]]:
        """One dict per parameter (name, unit, label, display unit and scale, layer, prior) for a model card."""
        return [p.to_card() for p in self.parameters]

    @property
    def absorbers(self) -> tuple[str, ...]:
        """Absorbers named in at least one layer (``vhb`` = blood), in :data:`ABSORBERS` order."""
        return tuple(a for a in ABSORBERS if any(a in layer.properties for layer in self.layers))

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def prior_bounds(self) -> np.ndarray:
        """``[D, 2]`` array of (low, high) per parameter (may hold ±inf)."""
        return np.array([p.prior.bounds for p in self.parameters], dtype=np.float64)

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``[n, D]`` float64 draws from the prior, parameter by parameter in order."""
        return torch.stack([p.prior.sample(n, generator) for p in self.parameters], dim=1)

    def layer_values(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Map a parameter batch ``x [N, D]`` to per-layer properties ``[N, L]`` (``sao2``: ``[N]``).

        Thickness is returned as ``d_um``; refractive index per layer as ``n_layers``; the amounts of
        absorbers other than blood as ``absorbers`` (a dict name → ``[N, L]``, absent = 0); the
        Rayleigh fraction as ``f_ray`` only when some layer gives it.
        """
        index = {name: i for i, name in enumerate(self.parameter_names)}
        n_batch = x.shape[0]

        def value(spec: float | str) -> torch.Tensor:
            if isinstance(spec, str):
                return x[:, index[spec]]
            return torch.full((n_batch,), float(spec), dtype=x.dtype, device=x.device)

        def per_layer(prop: str, default: float) -> torch.Tensor:
            return torch.stack([value(layer.properties.get(prop, default)) for layer in self.layers], 1)

        out: dict[str, torch.Tensor] = {"sao2": value(self.shared.get("sao2", 0.0))}
        for prop in ("vhb", "a_mie", "b_mie", "g", "d"):
            out[prop if prop != "d" else "d_um"] = per_layer(prop, 0.0)
        if any("f_ray" in layer.properties for layer in self.layers):
            out["f_ray"] = per_layer("f_ray", 0.0)
        absorbers: dict[str, torch.Tensor] = {}
        for name in self.absorbers:
            if name in ("vhb", "baseline"):
                continue
            absorbers[name] = per_layer(name, 0.0)
        if "baseline" in self.absorbers:
            cols = []
            for k, layer in enumerate(self.layers):
                spec = layer.properties.get("baseline", 0.0)
                if spec == REST:
                    rest = 1.0 - out["vhb"][:, k] - (absorbers["mel"][:, k] if "mel" in absorbers else 0.0)
                    cols.append(rest.clamp(min=0.0))
                else:
                    cols.append(value(spec))
            absorbers["baseline"] = torch.stack(cols, 1)
        out["absorbers"] = absorbers  # type: ignore[assignment]
        if "n" in self.shared:
            out["n_layers"] = value(self.shared["n"])[:, None].expand(n_batch, self.n_layers)
        else:
            out["n_layers"] = torch.stack([value(layer.properties["n"]) for layer in self.layers], 1)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The TOML content as a JSON-able dict (round-trips through :meth:`from_dict`)."""
        return json.loads(json.dumps(self.raw))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<dict>") -> TissueModel:
        return _parse_tissue(raw, source)


def _parse_value(value: Any, name: str, where: str) -> float | Prior:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: '{name}' must be a number or a prior table, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    return Prior.from_dict(value, f"{where}: '{name}'")


def _check_range(prop: str, val: float | Prior, where: str) -> None:
    lo, hi = _VALID_RANGES[prop]
    if isinstance(val, float):
        if not (lo <= val <= hi):
            raise ConfigError(f"{where}: '{prop}' = {val} is outside the physical range [{lo}, {hi}]")
    else:
        if val.low < lo or val.high > hi:
            raise ConfigError(
                f"{where}: prior of '{prop}' [{val.low}, {val.high}] leaves the physical range [{lo}, {hi}]"
            )


def _parameter(name: str, prop: str, layer: int, prior: Prior, n_layers: int) -> Parameter:
    label, unit, scale = DISPLAY[prop]
    if layer and n_layers > 1:
        label = f"{label} (layer {layer})"
    return Parameter(name, UNITS[prop], label, layer, prior, unit, scale)


def _apply_display(parameters: list[Parameter], display: Any, where: str) -> list[Parameter]:
    """Overrides of labels and display units from the optional ``[display]`` table."""
    if not isinstance(display, dict):
        raise ConfigError(f"{where}: [display] must be a table of parameter name = {{ label, unit, scale }}")
    names = [p.name for p in parameters]
    unknown = set(display) - set(names)
    if unknown:
        raise ConfigError(f"{where}: [display] names unknown parameter(s) {sorted(unknown)}; parameters: {names}")
    out = []
    for p in parameters:
        d = display.get(p.name)
        if d is None:
            out.append(p)
            continue
        if not isinstance(d, dict) or set(d) - {"label", "unit", "scale"}:
            raise ConfigError(f"{where}: [display] {p.name} must be a table with 'label', 'unit' and/or 'scale'")
        scale = d.get("scale", p.display_scale)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
            raise ConfigError(f"{where}: [display] {p.name}: 'scale' must be a positive number")
        out.append(dataclasses.replace(p, label=str(d.get("label", p.label)),
                                       display_unit=str(d.get("unit", p.display_unit)), display_scale=float(scale)))
    return out


def _parse_tissue(raw: dict[str, Any], source: str) -> TissueModel:
    where = source
    known_top = {"name", "description", "reference", "constants", "shared", "layers", "display"}
    unknown = set(raw) - known_top
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(known_top)}")
    for key in ("name", "constants", "layers"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key '{key}'")
    consts = raw["constants"]
    needed = ("c_hb_g_per_l", "hb_molar_mass_g_per_mol", "n_above", "n_below")
    for key in needed:
        if key not in consts:
            raise ConfigError(f"{where}: [constants] is missing '{key}'")
        if not isinstance(consts[key], int | float) or consts[key] <= 0:
            raise ConfigError(f"{where}: [constants] '{key}' must be a positive number, got {consts[key]!r}")
    shared_raw = raw.get("shared", {})
    unknown = set(shared_raw) - set(SHARED_PROPERTIES)
    if unknown:
        raise ConfigError(f"{where}: [shared] unknown key(s) {sorted(unknown)}; allowed: {list(SHARED_PROPERTIES)}")
    layers_raw = raw["layers"]
    if not isinstance(layers_raw, list) or not layers_raw:
        raise ConfigError(f"{where}: 'layers' must be a non-empty array of tables ([[layers]])")
    if len(layers_raw) > MAX_LAYERS:
        raise ConfigError(f"{where}: {len(layers_raw)} layers; a tissue has 1 to {MAX_LAYERS} layers")
    if "sao2" not in shared_raw and any("vhb" in layer for layer in layers_raw if isinstance(layer, dict)):
        raise ConfigError(f"{where}: [shared] needs 'sao2' (a number or a prior) when a layer has blood (vhb)")
    n_layers = len(layers_raw)

    parameters: list[Parameter] = []
    shared: dict[str, float | str] = {}
    for prop in SHARED_PROPERTIES:
        if prop not in shared_raw:
            continue
        val = _parse_value(shared_raw[prop], prop, f"{where} [shared]")
        _check_range(prop, val, f"{where} [shared]")
        if isinstance(val, Prior):
            shared[prop] = prop
            parameters.append(_parameter(prop, prop, 0, val, n_layers))
        else:
            shared[prop] = val
    layers: list[LayerSpec] = []
    for k, layer_raw in enumerate(layers_raw, start=1):
        lw = f"{where} layer {k}"
        if not isinstance(layer_raw, dict):
            raise ConfigError(f"{lw}: expected a table")
        unknown = set(layer_raw) - set(LAYER_PROPERTIES)
        if unknown:
            raise ConfigError(f"{lw}: unknown key(s) {sorted(unknown)}; allowed: {list(LAYER_PROPERTIES)}")
        props: dict[str, float | str] = {}
        for prop in LAYER_PROPERTIES:
            if prop == "n" and "n" in shared:
                if prop in layer_raw:
                    raise ConfigError(f"{lw}: 'n' is given in [shared]; do not repeat it per layer")
                continue
            if prop not in layer_raw:
                if prop in OPTIONAL_LAYER_PROPERTIES:
                    continue
                raise ConfigError(f"{lw}: missing '{prop}'")
            if prop == "baseline" and layer_raw[prop] == REST:
                props[prop] = REST
                continue
            val = _parse_value(layer_raw[prop], prop, lw)
            _check_range(prop, val, lw)
            if isinstance(val, Prior):
                pname = f"{prop}_{k}"
                props[prop] = pname
                parameters.append(_parameter(pname, prop, k, val, n_layers))
            else:
                props[prop] = val
        layers.append(LayerSpec(props))
    # canonical order: shared first, then per layer in LAYER_PROPERTIES order
    if not parameters:
        raise ConfigError(f"{where}: no free parameters (give at least one prior)")
    if "display" in raw:
        parameters = _apply_display(parameters, raw["display"], where)
    return TissueModel(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        reference=str(raw.get("reference", "")),
        c_hb_g_per_l=float(consts["c_hb_g_per_l"]),
        hb_molar_mass_g_per_mol=float(consts["hb_molar_mass_g_per_mol"]),
        n_above=float(consts["n_above"]),
        n_below=float(consts["n_below"]),
        shared=shared,
        layers=tuple(layers),
        parameters=tuple(parameters),
        source=source,
        raw=raw,
    )


def _resolve(kind: str, name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise ConfigError(f"{kind} definition {p} not found")
        return p
    candidate = resources_dir() / f"{kind}s" / f"{name_or_path}.toml"
    if not candidate.is_file():
        shipped = sorted(f.stem for f in (resources_dir() / f"{kind}s").glob("*.toml"))
        raise ConfigError(f"unknown {kind} {str(name_or_path)!r}; shipped: {shipped}, or give a path to a .toml file")
    return candidate


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def load_tissue(name_or_path: str | Path) -> TissueModel:
    """Load a shipped tissue by name (``colon``, ``generic``) or a TOML file by path."""
    path = _resolve("tissue", name_or_path)
    return _parse_tissue(_read_toml(path), str(path))


@dataclass(frozen=True)
class NoiseModel:
    """Camera noise: multiplicative Gaussian, sigma = R / SNR, SNR log-uniform in [snr_min, snr_max]."""

    snr_min: float = 10.0
    snr_max: float = 50.0
    clip_min: float = 1e-5
    clip_max: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.snr_min <= self.snr_max):
            raise ConfigError(f"noise: need 0 < snr_min <= snr_max, got {self.snr_min}, {self.snr_max}")

    def with_snr_range(self, snr_min: float | None = None, snr_max: float | None = None) -> NoiseModel:
        """A copy with the SNR range overridden where a value is given (``None`` keeps this one's)."""
        return dataclasses.replace(
            self,
            snr_min=self.snr_min if snr_min is None else snr_min,
            snr_max=self.snr_max if snr_max is None else snr_max,
        )

    def apply(self, y: torch.Tensor, generator: torch.Generator | None = None, snr: float | None = None,
              return_snr: bool = False):
        """Noisy copy of band reflectances ``y [N, B]``; a fixed ``snr`` overrides the range.

        With ``return_snr`` the per-spectrum SNR ``[N]`` is returned too: ``(y_noisy, snr)``.
        """
        n = y.shape[0]
        if snr is None:
            u = torch.rand(n, 1, generator=generator, dtype=y.dtype, device="cpu").to(y.device)
            log_snr = math.log(self.snr_min) + u * (math.log(self.snr_max) - math.log(self.snr_min))
            snr_t = torch.exp(log_snr)
        else:
            snr_t = torch.full((n, 1), float(snr), dtype=y.dtype, device=y.device)
        eps = torch.randn(y.shape, generator=generator, dtype=y.dtype, device="cpu").to(y.device)
        noisy = (y * (1.0 + eps / snr_t)).clamp(self.clip_min, self.clip_max)
        return (noisy, snr_t[:, 0]) if return_snr else noisy


# Cameras live in their own module (camera files grew filter tables, illumination and sensor
# response); they import the helpers above, so this import comes last.
from tissue_inn.camera_config import Camera, load_camera  # noqa: E402
