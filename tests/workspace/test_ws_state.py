"""Controller-style tests of the workspace's decisions, with a mock posterior and an in-memory image:
no Qt, no network, no files (the idea of ndv's mock-view controller tests)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest.mock import MagicMock

import numpy as np
import pytest

from tissue_inn.errors import DataFileError, TissueInnError
from tissue_inn.inference.posterior import Posterior
from tissue_inn.workspace import Generation, Workspace
from tissue_inn.workspace.images import LoadedImage
from tissue_inn.workspace.models import LoadedModel

NAMES = ("sao2", "vhb_1")


def mock_workspace(h: int = 4, w: int = 5) -> tuple[Workspace, MagicMock]:
    posterior = MagicMock(spec=Posterior)
    posterior.parameter_names = NAMES
    posterior.units = {"sao2": "1", "vhb_1": "1"}
    posterior.prior_bounds = np.array([[0.0, 1.0], [0.0, 0.1]])
    posterior.band_centers_nm = np.array([500.0, 600.0])
    posterior.device = "cpu"
    posterior.tissue = None
    posterior.pixel.side_effect = lambda y, n_draws, seed, predictive_draws, snr, misfit: SimpleNamespace(
        samples=np.tile(y[:2], (n_draws, 1)), summaries={}, predictive=None
    )
    data = np.full((h, w, 2), 0.2, dtype=np.float32)
    data[..., 0] = np.arange(h * w).reshape(h, w) / 100 + 0.01  # band 0 (600 nm in the cube) varies
    reasons = np.zeros((h, w), dtype=np.uint8)
    reasons[1, 1] = 1
    data[1, 1] = np.nan
    cube = SimpleNamespace(wavelengths_nm=np.array([600.0, 500.0]), ground_truth={"sao2": np.full((h, w), 0.5)})
    ws = Workspace(n_draws_pixel=8, seed=4)
    ws.model = LoadedModel(posterior, {"name": "mock", "parameters": []}, Path("mock"))
    ws.loaded_image = LoadedImage(Path("img.h5"), cube, data, reasons)
    ws.band_indices = np.array([1, 0])  # the model wants 500 nm first: cube band 1
    return ws, posterior


def test_generation_counter():
    g = Generation()
    a, b = g.next(), g.next()
    assert b == a + 1 and g.is_current(b) and not g.is_current(a)


def test_click_request_answer_and_stale_drop_without_a_network():
    ws, posterior = mock_workspace()
    first = ws.request_pixel(0, 3)
    second = ws.request_pixel(2, 4)
    np.testing.assert_allclose(second.spectrum, [0.2, (2 * 5 + 4) / 100 + 0.01])  # model band order
    assert second.ground_truth == {"sao2": 0.5} and second.n_draws == 8 and second.seed == 4
    r1, r2 = ws.compute_pixel(first), ws.compute_pixel(second)
    assert posterior.pixel.call_count == 2
    expect = {"n_draws": 8, "seed": 4, "predictive_draws": 0, "snr": None, "misfit": True}
    assert posterior.pixel.call_args.kwargs == expect
    assert not ws.accept_pixel(r1) and ws.accept_pixel(r2) and ws.pixel_result is r2


def test_masked_pixel_is_named_and_never_reaches_the_network():
    ws, posterior = mock_workspace()
    assert "NaN" in ws.mask_reason(1, 1) and ws.mask_reason(0, 0) is None
    assert ws.mask_reason(10, 10) == "outside the image"
    with pytest.raises(DataFileError, match="no usable spectrum"):
        ws.compute_pixel(ws.request_pixel(1, 1))
    posterior.pixel.assert_not_called()


def test_new_model_or_image_makes_map_jobs_stale():
    ws, _ = mock_workspace()
    job = ws.new_map_job()
    ws._invalidate()  # what load_model / load_image do
    assert not ws.accept_maps(job, SimpleNamespace(maps={}))
    job2 = ws.new_map_job()
    assert ws.accept_maps(job2, SimpleNamespace(maps={"sao2/median": np.zeros((4, 5))}, units={}))
    assert ws.has_unsaved_maps and ws.map_keys() == ["sao2/median"]


def test_region_rename_moves_statistics_and_refuses_duplicates():
    ws, _ = mock_workspace()
    ws.add_region("rect", {"x": 0, "y": 0, "w": 2, "h": 2})
    ws.add_region("rect", {"x": 2, "y": 2, "w": 2, "h": 2})
    ws.region_stats = [{"region": "R1", "parameter": "sao2"}, {"region": "R2", "parameter": "sao2"}]
    ws.region_samples = {"R1": np.zeros((3, 2))}
    ws.rename_region("R1", "ischemic")
    assert list(ws.regions) == ["ischemic", "R2"] and ws.regions["ischemic"].name == "ischemic"
    assert ws.region_stats[0]["region"] == "ischemic" and "ischemic" in ws.region_samples
    with pytest.raises(TissueInnError, match="exists"):
        ws.rename_region("R2", "ischemic")
    with pytest.raises(TissueInnError):
        ws.rename_region("R2", "  ")


def test_nothing_loaded_says_what_to_do():
    ws = Workspace()
    assert ws.model_name == "no model" and ws.shape == (0, 0) and not ws.ready
    with pytest.raises(TissueInnError, match="open an image"):
        ws.rgb()
    with pytest.raises(TissueInnError, match="load a model"):
        ws.n_latent()


def test_workspace_counts_unexplained_pixels():
    ws = Workspace()
    explained = np.array([[True, False], [False, True]])
    ws.maps = SimpleNamespace(explained=explained, mask=np.array([[True, True], [True, False]]))
    flagged, legend = ws.unexplained()
    assert flagged.tolist() == [[False, True], [True, False]] and legend.startswith("2 pixels (67 %)")
