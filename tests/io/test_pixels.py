"""Tests for tissue_inn.io.pixels: the one definition of a usable pixel."""

from __future__ import annotations

import numpy as np

from tissue_inn.io.pixels import valid_mask


def test_valid_mask_reason_counts():
    tile = np.full((4, 5, 3), 0.5, np.float32)
    tile[0, 0, 1] = np.nan
    tile[0, 1, 2] = np.inf
    tile[1, 0, 0] = 0.0
    tile[1, 1, 0] = -0.2
    tile[1, 2, 1] = np.nan  # NaN and negative in one pixel: counted once, as NaN
    tile[1, 2, 0] = -1.0
    tile[2, 0, 2] = 1.3
    raw = np.full((4, 5, 3), 100.0)
    raw[3, 3, 0] = 255.0
    raw[3, 4, 1] = 300.0
    mask, reasons = valid_mask(tile, saturation=255, raw=raw)
    assert reasons == {"nan": 3, "non_positive": 2, "saturated": 2, "above_max": 1}
    assert mask.sum() == 20 - 8
    assert not mask[0, 0] and not mask[2, 0] and not mask[3, 4] and mask[2, 1]
    _, reasons = valid_mask(tile, r_max=None)
    assert reasons["above_max"] == 0 and reasons["saturated"] == 0
