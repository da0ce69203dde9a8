"""Training of the amortised quantile network: it learns, it is reproducible, it records its seed and data."""

from __future__ import annotations

import pytest
import torch

from tissue_inn.config import NoiseModel
from tissue_inn.errors import TissueInnError
from tissue_inn.io.bundle import load_bundle
from tissue_inn.progress import run_to_completion
from tissue_inn.training.amortised import AmortisedSettings, train_amortised

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = AmortisedSettings(hidden=32, epochs=3, batch_size=256, seed=5)


def test_pinball_loss_falls_and_the_run_is_reproducible(tiny_bundle, fake_dataset):
    est, _ = load_bundle(tiny_bundle)
    noise = NoiseModel(10.0, 50.0)
    qnet, facts = run_to_completion(train_amortised(fake_dataset, est, noise, FAST))
    hist = facts["history"]
    assert hist[-1]["val_pinball"] < hist[0]["val_pinball"]
    assert facts["seed"] == 5 and len(facts["dataset"]["sha256"]) == 64 and facts["noise_model"]["snr_min"] == 10.0
    qnet2, _ = run_to_completion(train_amortised(fake_dataset, est, noise, FAST))
    for (k, a), b in zip(qnet.state_dict().items(), qnet2.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_dataset_of_other_bands_is_refused(tiny_bundle, fake_dataset):
    est, _ = load_bundle(tiny_bundle)
    est.band_centers_nm = tuple(b + 5 for b in est.band_centers_nm)
    with pytest.raises(TissueInnError, match="bands"):
        run_to_completion(train_amortised(fake_dataset, est, NoiseModel(), FAST))
