"""The shipped default model: it loads, matches the shipped camera, and recovers the sample image's sO2."""

import h5py
import numpy as np
import torch

from tissue_inn.config import load_camera, models_dir, resources_dir
from tissue_inn.io.bundle import load_bundle


def test_default_model_loads_and_matches_the_shipped_camera():
    est, card = load_bundle("colon_default")
    assert est.family == card["family"]
    assert list(est.band_centers_nm) == list(load_camera("spectrocam8").band_centers_nm)
    assert est.parameter_names[0] == "sao2" and len(est.parameter_names) == 13
    assert (models_dir() / "colon_default" / "model.safetensors").stat().st_size < 20e6
    assert "evaluation" in card and card["training"]["seconds"] > 0


def test_default_model_recovers_sample_image_oxygenation():
    """Posterior medians of 300 valid sample-image pixels against the image's ground truth."""
    est, _ = load_bundle("colon_default")
    with h5py.File(resources_dir() / "samples" / "colon_sample.h5") as f:
        cube = f["reflectance"][:]
        truth = f["ground_truth/sao2"][:]
        snr = float(f.attrs["snr"])
    flat = cube.reshape(-1, cube.shape[-1])
    ok = np.all(np.isfinite(flat), 1) & np.all(flat > 1e-5, 1) & np.all(flat < 1, 1)
    idx = np.flatnonzero(ok)[:: max(1, ok.sum() // 300)][:300]
    y = torch.from_numpy(flat[idx].astype(np.float64))
    with torch.inference_mode():
        samples = est.sample(y, 256, generator=torch.Generator().manual_seed(0), snr=snr)
    med = samples[..., 0].median(dim=1).values.numpy()
    mae = np.abs(med - truth.reshape(-1)[idx]).mean()
    no_skill = np.abs(0.5 - truth.reshape(-1)[idx]).mean()
    assert mae < 0.08, mae
    assert mae < 0.4 * no_skill
