"""Region masks, names and the compact comparison table."""

from __future__ import annotations

import numpy as np
import pytest

from tissue_inn.workspace import region_mask
from tissue_inn.workspace.regions import comparison_rows


def test_region_masks_have_the_right_area():
    shape = (100, 120)
    rect = region_mask("rect", {"x": 10, "y": 20, "w": 30, "h": 15}, shape)
    assert rect.sum() == 30 * 15 and rect[20, 10] and not rect[19, 10] and not rect[20, 40]
    ell = region_mask("ellipse", {"x": 10, "y": 10, "w": 60, "h": 40}, shape)
    assert abs(ell.sum() - np.pi * 30 * 20) / (np.pi * 30 * 20) < 0.02
    tri = region_mask("polygon", {"points": [(0, 0), (80, 0), (0, 80)]}, shape)
    assert abs(tri.sum() - 80 * 80 / 2) / (80 * 80 / 2) < 0.03
    assert region_mask("rect", {"x": -5, "y": -5, "w": 10, "h": 10}, shape).sum() == 25  # clipped to the image
    with pytest.raises(ValueError):
        region_mask("star", {}, shape)


def test_comparison_rows_one_row_per_region():
    stats = [
        {"region": "ischemic", "parameter": "sao2", "n_valid": 12, "pooled_median": 0.3},
        {"region": "ischemic", "parameter": "vhb_1", "n_valid": 12, "pooled_median": 0.05},
        {"region": "control", "parameter": "sao2", "n_valid": 20, "pooled_median": 0.7},
    ]
    headers, rows = comparison_rows(stats, ["sao2", "vhb_1"], lambda p, r: f"{p}={r['pooled_median']}")
    assert headers == ["region", "pixels", "sao2", "vhb_1"]
    assert rows == [["ischemic", "12", "sao2=0.3", "vhb_1=0.05"], ["control", "20", "sao2=0.7", ""]]


def test_display_rows_use_clinical_names_and_units():
    from tissue_inn.workspace.labels import label_for
    from tissue_inn.workspace.regions import display_rows

    rows = [{"region": "R1", "parameter": "vhb_1", "unit": "1", "pooled_median": 0.03, "pooled_std": 0.01,
             "median_map_mean": None, "n_valid": 12},
            {"region": "R1", "parameter": "other", "unit": "1", "pooled_median": 0.5}]
    out = display_rows(rows, {"vhb_1": label_for("vhb_1", "1")})
    assert out[0]["parameter"] == "BVF L1" and out[0]["unit"] == "%" and out[0]["code"] == "vhb_1"
    assert out[0]["pooled_median"] == pytest.approx(3.0) and out[0]["pooled_std"] == pytest.approx(1.0)
    assert out[0]["median_map_mean"] is None and out[0]["n_valid"] == 12  # counts are not scaled
    assert out[1] == rows[1]  # a parameter without a label is shown as it is
    assert rows[0]["pooled_median"] == 0.03  # the workspace's own rows are not changed

