"""The calibration badge, the plain-language card and the card's tables, on the shipped cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tissue_inn.workspace.models import CARD_FILE, bundle_folder_of, card_summary
from tissue_inn.workspace.trust import calibration_badge, card_tables, plain_language

MODELS = Path(__file__).resolve().parents[2] / "models"


def _card(name: str) -> dict:
    path = MODELS / name / CARD_FILE
    if not path.is_file():
        pytest.skip(f"shipped model {name} not present")
    return json.loads(path.read_text())


def test_badges_of_the_shipped_models():
    good = calibration_badge(_card("colon_default"))
    assert good.status == "calibrated" and not good.warn and "%" in good.text
    bad = calibration_badge(_card("colon_inn"))
    assert bad.status == "over-confident" and bad.warn and "sO2" in bad.text
    unknown = calibration_badge({"name": "x"})
    assert unknown.status == "unknown" and "evaluate" in unknown.detail


def test_plain_language_page_names_use_tissue_camera_snr_and_limits():
    page = dict(plain_language(_card("colon_default")))
    assert set(page) >= {"Intended use", "Tissue", "Camera", "Noise", "Calibration", "What it cannot tell",
                         "Limitations"}
    assert "colon" in page["Tissue"] and "470" in page["Camera"] and "10" in page["Noise"] and "50" in page["Noise"]


def test_card_tables_are_tables_not_json():
    tables = {t.title: t for t in card_tables(_card("colon_default"))}
    params = tables["Parameters & priors"]
    assert len(params.rows) == 13 and params.rows[0][0] == "sao2" and "oxygen saturation" in params.rows[0][1]
    assert len(tables["Camera"].rows) == 8 and tables["Camera"].rows[0][1] == "470"
    ev = tables["Evaluation"]
    assert {r[0] for r in ev.rows} == {"SNR 20", "SNR 10"} and "sao2_mae" in ev.headers
    assert not any("{" in cell for t in tables.values() for row in t.rows for cell in row)


def test_card_file_name_and_dropped_paths(tmp_path):
    from tissue_inn.io.bundle import CARD

    assert CARD_FILE == CARD
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / CARD_FILE).write_text("{}")
    assert bundle_folder_of(tmp_path / "m") == tmp_path / "m"
    assert bundle_folder_of(tmp_path / "m" / CARD_FILE) == tmp_path / "m"
    assert bundle_folder_of(tmp_path) is None
    assert "unavailable" in card_summary({}) or "model family" in card_summary({})
