"""The calibration verdict that info, infer and the GUI show before a model's numbers are used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tissue_inn.inference.trust import LEVELS, THRESHOLDS, Verdict, calibration_verdict

MODELS = Path(__file__).resolve().parents[2] / "models"


def _card(**snrs: dict) -> dict:
    return {"name": "m", "evaluation": {"summary": snrs}}


def _entry(sao2: float, worst: float, ecal68: float = 0.0, param: str = "g_1") -> dict:
    return {"sao2_median_abs_ecal": sao2, "worst_median_abs_ecal": worst, "sao2_ecal68": ecal68,
            "worst_parameter": param}


def test_thresholds_are_the_documented_ones():
    assert THRESHOLDS == {"ok": {"sao2": 0.03, "worst": 0.05}, "warning": {"sao2": 0.10, "worst": 0.15}}
    assert LEVELS == ("ok", "warning", "poor", "unknown")


def test_calibrated_model_is_ok():
    v = calibration_verdict(_card(snr20=_entry(0.008, 0.023), snr10=_entry(0.009, 0.025)))
    assert isinstance(v, Verdict)
    level, message = v
    assert level == "ok"
    assert "calibrated" in message and "NOT" not in message


def test_over_confident_model_is_poor_and_says_why():
    level, message = calibration_verdict(_card(snr20=_entry(0.356, 0.456, -0.466, "vhb_3")))
    assert level == "poor"
    assert "too narrow" in message
    assert "vhb_3" in message and "45.6 %" in message
    assert "21 %" in message  # 68 % − 46.6 % of the cases hold the truth


def test_under_confident_model_says_too_wide():
    level, message = calibration_verdict(_card(snr20=_entry(0.06, 0.08, +0.09)))
    assert level == "warning"
    assert "too wide" in message


@pytest.mark.parametrize(
    ("sao2", "worst", "level"),
    [(0.03, 0.05, "ok"), (0.031, 0.01, "warning"), (0.01, 0.051, "warning"), (0.10, 0.15, "warning"),
     (0.101, 0.01, "poor"), (0.01, 0.151, "poor")],
)
def test_limits_are_inclusive(sao2, worst, level):
    assert calibration_verdict(_card(snr20=_entry(sao2, worst))).level == level


def test_worst_snr_decides_and_is_named():
    level, message = calibration_verdict(_card(snr20=_entry(0.01, 0.02), snr10=_entry(0.20, 0.30, -0.25)))
    assert level == "poor"
    assert "SNR 10" in message and "SNR 20" not in message


@pytest.mark.parametrize("card", [{}, {"evaluation": {}}, {"evaluation": {"summary": {}}},
                                  {"evaluation": {"summary": {"snr20": {"sao2_median_abs_ecal": "n/a"}}}},
                                  {"evaluation": "broken"}])
def test_missing_or_malformed_figures_are_unknown(card):
    level, message = calibration_verdict(card)
    assert level == "unknown"
    assert "tissue-inn evaluate" in message


@pytest.mark.parametrize(("model", "level"),
                         [("colon_default", "ok"), ("colon_inn", "poor"), ("colon_inn_calibrated", "ok")])
def test_shipped_cards(model, level):
    card_path = MODELS / model / "model_card.json"
    if not card_path.exists():
        pytest.skip(f"{model} not shipped in this checkout")
    assert calibration_verdict(json.loads(card_path.read_text())).level == level
