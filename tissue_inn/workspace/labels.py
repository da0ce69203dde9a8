"""Clinical names, display units and scales of model parameters (what a clinician reads).

The network works in the card's units (sO2 as a fraction 0–1, blood volume fraction 0–1, reduced
scattering in 1/cm, thickness in µm). The application shows them as a clinician reads them: StO2 in
% on 0–100, blood volume fraction in %, μs′ at 500 nm in cm⁻¹, thickness in µm; the code name goes
into the tooltip. The tissue definition (``[display]`` in its TOML, carried by the card's
``parameters`` entries and its tissue) gives the long clinical name (``label``), ``display_unit`` and
``display_scale``; they win over the table below, which also gives the short names of plot titles.

>>> lab = label_for("sao2", "1")
>>> lab.short, lab.unit, lab.scale
('StO2', '%', 100.0)
>>> lab.format_interval(0.38, 0.30, 0.46)
'StO2 38 % [30–46 %]'
>>> label_for("a_mie_2", "1/cm").short
'μs′500 L2'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ParameterLabel", "label_for", "labels_from_card", "pretty_unit", "LAYER_NAMES"]

#: Display form of card units.
_UNIT_DISPLAY = {"um": "µm", "1/cm": "cm⁻¹", "cm-1": "cm⁻¹", "1/mm": "mm⁻¹", "nm": "nm", "1": "", "": ""}

#: property → (short name, long clinical name, display unit, scale from card unit, decimals, explanation).
#: The scale applies to the card unit in the key's second element.
_PROPERTIES: dict[str, tuple[str, str, str, float, int, str]] = {
    "sao2": ("StO2", "oxygen saturation StO2", "%", 100.0, 0, "fraction of haemoglobin carrying oxygen"),
    "sto2": ("StO2", "oxygen saturation StO2", "%", 100.0, 0, "fraction of haemoglobin carrying oxygen"),
    "vhb": ("BVF", "blood volume fraction", "%", 100.0, 1, "volume fraction of blood in the layer"),
    "a_mie": ("μs′500", "reduced scattering μs′ at 500 nm", "cm⁻¹", 1.0, 0, "μs′(λ) = a_mie·(λ/500 nm)^−b_mie"),
    "b_mie": ("b", "scattering power b", "", 1.0, 2, "wavelength exponent of the reduced scattering"),
    "g": ("g", "scattering anisotropy g", "", 1.0, 2, "mean cosine of the scattering angle"),
    "d": ("thickness", "layer thickness", "µm", 1.0, 0, "thickness of the layer"),
    "mel": ("melanin", "melanin volume fraction", "%", 100.0, 2, "volume fraction of melanosomes"),
    "eumelanin": ("eumelanin", "eumelanin concentration", "mg/mL", 1.0, 2, ""),
    "pheomelanin": ("pheomelanin", "pheomelanin concentration", "mg/mL", 1.0, 2, ""),
    "bilirubin": ("bilirubin", "bilirubin concentration", "µmol/L", 1.0, 1, ""),
    "baseline": ("baseline", "bloodless-tissue absorber fraction", "%", 100.0, 1, ""),
    "f_ray": ("f_Ray", "Rayleigh fraction of μs′ at 500 nm", "%", 100.0, 0, ""),
    "n": ("n", "refractive index", "", 1.0, 3, ""),
    "f_mel": ("melanin", "melanin volume fraction", "%", 100.0, 2, "volume fraction of melanosomes"),
    "fat": ("fat", "fat volume fraction", "%", 100.0, 1, "volume fraction of fat"),
    "water": ("water", "water volume fraction", "%", 100.0, 1, "volume fraction of water"),
}
#: Card units for which the table's scale holds (a property stored in another unit is shown as stored).
_EXPECTED_UNIT = {"sao2": "1", "sto2": "1", "vhb": "1", "a_mie": "1/cm", "d": "um", "mel": "1", "f_mel": "1",
                  "fat": "1", "water": "1"}
LAYER_NAMES = {1: "top layer", 2: "second layer", 3: "third layer"}


def pretty_unit(unit: str) -> str:
    """Display form of a card unit (``um`` → ``µm``, ``1/cm`` → ``cm⁻¹``; dimensionless ``1`` → ``""``)."""
    return _UNIT_DISPLAY.get(unit, unit)


@dataclass(frozen=True)
class ParameterLabel:
    """How one parameter is shown.

    Attributes:
        code: The card's parameter name (``vhb_1``).
        short: Short clinical name for plot titles (``BVF L1``).
        long: Long clinical name (``blood volume fraction, top layer``).
        unit: Display unit (``%``; empty when dimensionless).
        scale: Display value = card value × scale.
        decimals: Decimals shown for a value.
        card_unit: The card's unit (``1``).
        tooltip: Code name, units and a one-line explanation.
    """

    code: str
    short: str
    long: str
    unit: str
    scale: float
    decimals: int
    card_unit: str
    tooltip: str

    @property
    def axis_label(self) -> str:
        """``"StO2 [%]"`` (without brackets for dimensionless parameters)."""
        return f"{self.short} [{self.unit}]" if self.unit else self.short

    def value(self, v: float) -> float:
        """A card-unit value in display units."""
        return float(v) * self.scale

    def format(self, v: float, with_unit: bool = True) -> str:
        """``"38 %"`` — a card-unit value as text in display units."""
        if v is None or not math.isfinite(float(v)):
            return "n/a"
        text = f"{self.value(v):.{self.decimals}f}"
        return f"{text} {self.unit}" if with_unit and self.unit else text

    def format_interval(self, median: float, low: float, high: float) -> str:
        """``"StO2 38 % [30–46 %]"`` — median and an interval in display units."""
        unit = f" {self.unit}" if self.unit else ""
        return (
            f"{self.short} {self.format(median, with_unit=False)}{unit} "
            f"[{self.format(low, with_unit=False)}–{self.format(high, with_unit=False)}{unit}]"
        )


def _layer_of(code: str) -> tuple[str, int | None]:
    m = re.fullmatch(r"(.+)_(\d+)", code)
    return (m.group(1), int(m.group(2))) if m else (code, None)


def label_for(code: str, card_unit: str = "", overrides: Mapping[str, Any] | None = None) -> ParameterLabel:
    """The display label of a parameter (card overrides first, then the built-in table, then the code)."""
    prop, layer = _layer_of(code)
    entry = _PROPERTIES.get(prop.lower())
    if entry is not None and _EXPECTED_UNIT.get(prop.lower(), card_unit) != card_unit:
        entry = (entry[0], entry[1], pretty_unit(card_unit), 1.0, 3, entry[5])  # stored in another unit
    if entry is None:
        entry = (code if layer is None else prop, code, pretty_unit(card_unit), 1.0, 3, "")
    short, long, unit, scale, decimals, explanation = entry
    if layer is not None:
        short = f"{short} L{layer}"
        long = f"{long}, {LAYER_NAMES.get(layer, f'layer {layer}')}"
    o = dict(overrides or {})
    short = str(o.get("short_label") or short)
    long = str(o.get("label") or o.get("clinical_name") or long)
    unit = str(o.get("display_unit") if o.get("display_unit") is not None else o.get("clinical_unit", unit))
    scale = float(o.get("display_scale", scale))
    explanation = str(o.get("description") or explanation)
    card_shown = pretty_unit(card_unit) or "dimensionless"
    tooltip = f"{long}\ncode name: {code} (model unit: {card_shown})" + (f"\n{explanation}" if explanation else "")
    return ParameterLabel(code, short, long, unit, scale, int(o.get("decimals", decimals)), card_unit, tooltip)


def labels_from_card(
    names: Sequence[str],
    units: Mapping[str, str],
    card: Mapping[str, Any] | None = None,
    tissue_parameters: Sequence[Any] = (),
) -> dict[str, ParameterLabel]:
    """Labels of every parameter: the card's ``parameters`` entries where they carry labels, else the
    tissue definition's parameters (objects with ``name``, ``label``, ``display_unit``, ``display_scale``),
    else the built-in table."""
    per_param: dict[str, Mapping[str, Any]] = {}
    for p in tissue_parameters:
        per_param[str(p.name)] = {"label": p.label, "display_unit": p.display_unit, "display_scale": p.display_scale}
    for entry in (card or {}).get("parameters") or []:
        if isinstance(entry, Mapping) and "name" in entry and ("label" in entry or "display_unit" in entry):
            per_param[str(entry["name"])] = entry
    return {n: label_for(n, units.get(n, ""), per_param.get(n)) for n in names}
