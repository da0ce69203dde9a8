"""Trust in view: the calibration badge of a model, its card in plain language, and the card's
technical sections as tables (never raw JSON).

The badge is the core's verdict (:func:`tissue_inn.inference.trust.calibration_verdict`, the one rule
that ``info``, ``infer`` and the GUI share) in a few words with its figure: calibration error e_cal
(Ardizzone et al., ICLR 2019, §4.2) is the fraction of held-out truths inside the q-interval minus
q; negative e_cal means intervals that hold the truth less often than they claim (over-confident).

>>> card = {"evaluation": {"summary": {"snr20": {"sao2_median_abs_ecal": 0.36, "sao2_ecal68": -0.47,
...     "worst_median_abs_ecal": 0.46, "worst_parameter": "vhb_3"}}}}
>>> b = calibration_badge(card)
>>> b.status, b.text, b.warn
('over-confident', 'over-confident · sO2 |e_cal| 36 % (SNR 20)', True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tissue_inn.workspace.labels import labels_from_card, pretty_unit

__all__ = [
    "CalibrationBadge",
    "calibration_badge",
    "plain_language",
    "card_tables",
    "Table",
]

@dataclass(frozen=True)
class CalibrationBadge:
    """``status``: ``calibrated``, ``over-confident``, ``under-confident`` or ``unknown``;
    ``text``: a short badge; ``detail``: one or two sentences; ``warn``: show a warning before use."""

    status: str
    text: str
    detail: str
    warn: bool


def _summaries(card: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    ev = card.get("evaluation")
    summary = ev.get("summary") if isinstance(ev, Mapping) else None
    return {str(k): dict(v) for k, v in (summary or {}).items() if isinstance(v, Mapping)}


def _condition_label(cond: str) -> str:
    return cond.replace("snr", "SNR ") if cond.lower().startswith("snr") else cond


def calibration_badge(card: Mapping[str, Any]) -> CalibrationBadge:
    """The calibration badge of a model card: the core's verdict, its direction and its figure."""
    from tissue_inn.inference.trust import calibration_verdict

    verdict = calibration_verdict(card)
    rows = []
    for cond, s in _summaries(card).items():
        sao2 = s.get("sao2_median_abs_ecal")
        if isinstance(sao2, (int, float)) and math.isfinite(sao2):
            rows.append((float(sao2), cond, s.get("sao2_ecal68")))
    if verdict.level == "unknown" or not rows:
        return CalibrationBadge("unknown", "calibration unknown", verdict.message, False)
    sao2, cond, ecal68 = max(rows, key=lambda r: r[0])
    figure = f"sO2 |e_cal| {100 * sao2:.1f} %" if sao2 < 0.1 else f"sO2 |e_cal| {100 * sao2:.0f} %"
    if verdict.level == "ok":
        status = "calibrated"
    elif isinstance(ecal68, (int, float)) and ecal68 < 0:
        status = "over-confident"
    elif isinstance(ecal68, (int, float)) and ecal68 > 0:
        status = "under-confident"
    else:
        status = "poorly calibrated"
    if verdict.level == "warning":
        status = "roughly calibrated" + (f", {status}" if status.endswith("-confident") else "")
    return CalibrationBadge(status, f"{status} · {figure} ({_condition_label(cond)})", verdict.message,
                            verdict.level != "ok")


def plain_language(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The model card in plain language: ``[(heading, paragraph), …]``."""
    tissue = card.get("tissue") or {}
    camera = card.get("camera") or {}
    noise = card.get("noise_model") or camera.get("noise") or {}
    bands = card.get("band_centers_nm") or camera.get("band_centers_nm") or []
    names = [p.get("name") for p in card.get("parameters") or [] if isinstance(p, Mapping)]
    units = {p.get("name"): p.get("unit", "") for p in card.get("parameters") or [] if isinstance(p, Mapping)}
    labels = labels_from_card(names, units, card)
    badge = calibration_badge(card)
    intended = card.get("intended_use") or card.get("description") or (
        f"Estimating {', '.join(labels[n].long for n in names[:3])}{' and more' if len(names) > 3 else ''} "
        f"with uncertainty from {len(bands)}-band reflectance images of {tissue.get('name', 'tissue')}, "
        "for research, not for diagnosis."
    )
    snr = (
        f"It was trained on measurements with a signal-to-noise ratio between {noise.get('snr_min'):g} and "
        f"{noise.get('snr_max'):g}; outside this range its answers are extrapolations."
        if noise.get("snr_min") is not None and noise.get("snr_max") is not None
        else "The card records no noise range."
    )
    cannot = card.get("cannot_tell") or (
        f"{len(bands)} bands cannot determine all {len(names)} parameters: for many of them (typically the deeper "
        "layers, anisotropy and thickness) the answer is the prior. The pixel view marks those "
        "“≈ prior — not informed”; read only the informed ones."
    )
    limitations = card.get("limitations") or (
        "Trained on simulated spectra of the tissue model below (multi-layer adding-doubling), not on "
        "measurements. Tissue the model does not describe (other chromophores, large vessels, specular "
        "highlights, probes) gets confident but meaningless answers unless flagged as not explained."
    )
    return [
        ("Intended use", str(intended)),
        ("Tissue", f"{tissue.get('name', '?')}: {tissue.get('description', '')}".strip()),
        ("Camera", f"{camera.get('name', '?')}: {camera.get('description', '')} — bands "
         + ", ".join(f"{b:g}" for b in bands) + " nm"),
        ("Noise", snr),
        ("Calibration", badge.detail),
        ("What it cannot tell", str(cannot)),
        ("Limitations", str(limitations)),
    ]


@dataclass(frozen=True)
class Table:
    """A titled table of strings."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def _fmt(v: Any) -> str:
    """A cell: numbers short, lists and mappings flattened into words (never JSON braces)."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else ("yes" if v else "no")
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        items = [_fmt(x) for x in v[:12]]
        return ", ".join(items) + (f", … ({len(v)} in all)" if len(v) > 12 else "")
    if isinstance(v, Mapping):
        return "; ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    return str(v)


def _prior_text(tissue: Mapping[str, Any], name: str) -> str:
    spec = (tissue.get("shared") or {}).get(name)
    if spec is None and "_" in name:
        prop, _, k = name.rpartition("_")
        layers = tissue.get("layers") or []
        if k.isdigit() and 1 <= int(k) <= len(layers):
            spec = layers[int(k) - 1].get(prop)
    if not isinstance(spec, Mapping):
        return "" if spec is None else f"fixed {spec}"
    args = ", ".join(f"{k} {v}" for k, v in spec.items() if k != "prior")
    return f"{spec.get('prior', '?')} ({args})"


def _kv_table(title: str, section: Any) -> Table:
    rows = tuple((str(k), _fmt(v)) for k, v in (section or {}).items()) if isinstance(section, Mapping) else ()
    return Table(title, ("item", "value"), rows)


def card_tables(card: Mapping[str, Any]) -> list[Table]:
    """The technical sections as tables: parameters & priors, camera bands, training, dataset, evaluation."""
    spec = card.get("estimator") or {}
    names: Sequence[str] = spec.get("parameter_names") or [p.get("name") for p in card.get("parameters") or []]
    units: Sequence[str] = spec.get("parameter_units") or [p.get("unit", "") for p in card.get("parameters") or []]
    lows, highs = spec.get("prior_low") or [], spec.get("prior_high") or []
    labels = labels_from_card(list(names), dict(zip(names, units)), card)
    tissue = card.get("tissue") or {}
    prow = []
    for i, n in enumerate(names):
        lo = lows[i] if i < len(lows) and lows[i] is not None else -math.inf
        hi = highs[i] if i < len(highs) and highs[i] is not None else math.inf
        u = units[i] if i < len(units) else ""
        prow.append((n, labels[n].long, pretty_unit(u) or "—", f"[{lo:g}, {hi:g}]", _prior_text(tissue, n)))
    params = Table("Parameters & priors", ("code", "name", "unit", "prior support", "prior"), tuple(prow))
    camera = card.get("camera") or {}
    bands = card.get("band_centers_nm") or camera.get("band_centers_nm") or []
    fwhm = camera.get("fwhm_nm")
    cam = Table(
        "Camera",
        ("band", "centre [nm]", "FWHM [nm]"),
        tuple((str(i + 1), f"{b:g}", _fmt(fwhm)) for i, b in enumerate(bands)),
    )
    evals = _summaries(card)
    metrics = sorted({k for s in evals.values() for k in s if k != "report"})
    ev = Table(
        "Evaluation",
        ("condition", *metrics),
        tuple((_condition_label(c), *(_fmt(s.get(m)) for m in metrics)) for c, s in evals.items()),
    )
    return [
        params,
        cam,
        _kv_table("Noise model", card.get("noise_model")),
        _kv_table("Training", card.get("training")),
        _kv_table("Dataset", card.get("dataset")),
        ev,
    ]
