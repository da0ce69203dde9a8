"""Clinical names, units and scales."""

from __future__ import annotations

import math

from tissue_inn.workspace.labels import label_for, labels_from_card, pretty_unit


def test_builtin_table_gives_clinical_names_and_units():
    sto2 = label_for("sao2", "1")
    assert (sto2.short, sto2.unit, sto2.scale) == ("StO2", "%", 100.0)
    assert sto2.format(0.383) == "38 %" and sto2.axis_label == "StO2 [%]"
    assert "sao2" in sto2.tooltip and "oxygen saturation" in sto2.tooltip
    bvf = label_for("vhb_1", "1")
    assert bvf.unit == "%" and bvf.format(0.0412) == "4.1 %" and "top layer" in bvf.long
    mus = label_for("a_mie_3", "1/cm")
    assert mus.unit == "cm⁻¹" and mus.scale == 1.0 and "500 nm" in mus.long and mus.short.endswith("L3")
    d = label_for("d_2", "um")
    assert d.unit == "µm" and d.format(612.4) == "612 µm"
    g = label_for("g_1", "1")
    assert g.unit == "" and g.axis_label == "g L1"
    assert label_for("sao2", "1").format(math.nan) == "n/a"


def test_a_unit_the_table_does_not_expect_is_shown_as_stored():
    lab = label_for("sao2", "%")
    assert lab.scale == 1.0 and lab.unit == "%"


def test_unknown_parameters_keep_their_code_and_unit():
    lab = label_for("mystery", "1/mm")
    assert lab.short == "mystery" and lab.unit == "mm⁻¹" and lab.scale == 1.0


def test_card_labels_win():
    card = {"parameters": [{"name": "sao2", "unit": "1", "label": "SpO2", "display_unit": "‰", "display_scale": 1000}]}
    labels = labels_from_card(["sao2", "vhb_1"], {"sao2": "1", "vhb_1": "1"}, card)
    assert labels["sao2"].long == "SpO2" and labels["sao2"].format(0.5) == "500 ‰"
    assert labels["sao2"].short == "StO2" and labels["vhb_1"].short == "BVF L1"


def test_tissue_definition_labels_are_used():
    from tissue_inn.config import load_tissue

    skin = load_tissue("skin")
    units = dict(zip(skin.parameter_names, skin.parameter_units))
    labels = labels_from_card(list(skin.parameter_names), units, {}, skin.parameters)
    mel = labels["mel_1"]
    assert mel.long == "epidermal melanin volume fraction" and mel.unit == "%" and mel.scale == 100.0
    assert mel.short == "melanin L1" and "mel_1" in mel.tooltip


def test_interval_text():
    assert label_for("sao2", "1").format_interval(0.38, 0.30, 0.46) == "StO2 38 % [30–46 %]"
    assert pretty_unit("um") == "µm" and pretty_unit("1") == ""
