"""The shipped skin model (models/skin_spectrocam8): card, labels, and melanin that follows pigmentation."""

from __future__ import annotations

import pytest
import torch

from tissue_inn.config import load_camera, load_tissue
from tissue_inn.io.bundle import load_bundle, models_dir
from tissue_inn.optics.forward import ForwardModel

BUNDLE = models_dir() / "skin_spectrocam8"
pytestmark = pytest.mark.skipif(not (BUNDLE / "model_card.json").exists(), reason="skin model bundle not present")


def test_card_carries_clinical_labels_and_its_evaluation():
    est, card = load_bundle(BUNDLE)
    labels = {p["name"]: (p["label"], p["display_unit"]) for p in card["parameters"]}
    assert labels["sao2"] == ("oxygen saturation StO2", "%")
    assert labels["mel_1"] == ("epidermal melanin volume fraction", "%")
    assert card["tissue"] == load_tissue("skin").to_dict()
    assert card["camera"] == load_camera("spectrocam8").to_dict()
    for cond in ("snr20", "snr10"):
        assert card["evaluation"]["summary"][cond]["n_test"] == 2000
    assert sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file()) < 20e6


def test_melanin_estimate_follows_pigmentation(one_thread):
    est, card = load_bundle(BUNDLE)
    tissue = load_tissue("skin")
    names = list(tissue.parameter_names)
    x = torch.tensor([[0.7, 0.02, 80.0, 0.02, 46.0, 1.4, 2000.0]] * 3, dtype=torch.float64)
    x[:, names.index("mel_1")] = torch.tensor([0.02, 0.12, 0.35], dtype=torch.float64)
    y = ForwardModel(tissue, load_camera("spectrocam8")).bands(x)
    s = est.sample(y, 512, generator=torch.Generator().manual_seed(0), snr=30.0)
    mel = s[:, :, names.index("mel_1")].median(dim=1).values
    assert bool(torch.all(mel[1:] > mel[:-1]))
    assert torch.allclose(mel, x[:, names.index("mel_1")], atol=0.05)
