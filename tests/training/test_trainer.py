import json

import pytest
import torch

from tissue_inn.errors import ModelBundleError, OutputExistsError
from tissue_inn.io.bundle import load_bundle, save_bundle
from tissue_inn.progress import run_to_completion
from tissue_inn.training.trainer import TrainSettings, train

SMALL = dict(epochs=3, iterations_per_epoch=10, batch_size=200, n_blocks=2, hidden=32, n_hidden_layers=2,
             val_fraction=0.1, seed=0)


@pytest.mark.parametrize("family", ["cinn", "inn"])
def test_train_reduces_loss_and_bundle_round_trips(fake_dataset, tmp_path, family):
    s = TrainSettings(family=family, **SMALL)
    reports = []
    res = run_to_completion(train(fake_dataset, s), reports.append)
    assert len(res.history) == 3 and len(reports) == 3
    assert res.history[-1].losses["total"] < res.history[0].losses["total"]
    est = res.estimator
    y = torch.rand(4, 8, dtype=torch.float64) * 0.3 + 0.05
    samples = est.sample(y, 256, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (4, 256, 13)
    bounds = est.prior_bounds()
    assert torch.all(samples >= bounds[:, 0]) and torch.all(samples <= bounds[:, 1])
    card = {"name": "t"}
    card.update(res.card_sections())
    folder = save_bundle(est, card, tmp_path / "m")
    est2, card2 = load_bundle(folder)
    s2 = est2.sample(y, 256, generator=torch.Generator().manual_seed(1))
    assert torch.equal(samples, s2)
    assert card2["training"]["settings"]["family"] == family
    assert card2["dataset"]["sha256"] and card2["estimator"]["parameter_names"][0] == "sao2"
    with pytest.raises(OutputExistsError):
        save_bundle(est, card, folder)


def test_training_is_reproducible(fake_dataset):
    s = TrainSettings(family="cinn", **{**SMALL, "epochs": 1})
    a = run_to_completion(train(fake_dataset, s))
    b = run_to_completion(train(fake_dataset, s))
    for (k, va), vb in zip(a.estimator.state_dict().items(), b.estimator.state_dict().values()):
        assert torch.equal(va, vb), k


def test_checkpoint_resume_matches_uninterrupted(fake_dataset, tmp_path):
    s = TrainSettings(family="cinn", **SMALL)
    full = run_to_completion(train(fake_dataset, s))
    ckpt = tmp_path / "ck"
    gen = train(fake_dataset, s, checkpoint_dir=ckpt)
    next(gen)  # epoch 1 done and checkpointed
    gen.close()
    resumed = run_to_completion(train(fake_dataset, s, checkpoint_dir=ckpt))
    assert [round(h.val_loss, 6) for h in resumed.history] == [round(h.val_loss, 6) for h in full.history]


def _bundle(fake_dataset, tmp_path):
    res = run_to_completion(train(fake_dataset, TrainSettings(family="cinn", **{**SMALL, "epochs": 1})))
    card = {"name": "t"}
    card.update(res.card_sections())
    return save_bundle(res.estimator, card, tmp_path / "b")


def test_corrupt_bundles_are_refused_with_clear_errors(fake_dataset, tmp_path):
    folder = _bundle(fake_dataset, tmp_path)
    card_path = folder / "model_card.json"
    card = json.loads(card_path.read_text())
    # weights changed after the card was written
    w = folder / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ModelBundleError, match="sha256"):
        load_bundle(folder)
    # newer schema
    folder2 = _bundle(fake_dataset, tmp_path / "2")
    c2 = json.loads((folder2 / "model_card.json").read_text())
    c2["schema_version"] = 99
    (folder2 / "model_card.json").write_text(json.dumps(c2))
    with pytest.raises(ModelBundleError, match="newer"):
        load_bundle(folder2)
    # card architecture that does not match the weights
    folder3 = _bundle(fake_dataset, tmp_path / "3")
    c3 = json.loads((folder3 / "model_card.json").read_text())
    c3["estimator"]["network"]["hidden"] = 64
    (folder3 / "model_card.json").write_text(json.dumps(c3))
    with pytest.raises(ModelBundleError, match="architecture|do not match"):
        load_bundle(folder3)
    # malformed JSON and missing files
    (folder3 / "model_card.json").write_text("{not json")
    with pytest.raises(ModelBundleError, match="not valid JSON"):
        load_bundle(folder3)
    with pytest.raises(ModelBundleError, match="not found|not a model bundle"):
        load_bundle(tmp_path / "nothing")
    assert card["schema_version"] == 1


def test_snr_conditioned_cinn_changes_posterior_width_with_snr(fake_dataset):
    s = TrainSettings(family="cinn", snr_conditioning=True, snr_min=5, snr_max=100,
                      **{**SMALL, "epochs": 6, "iterations_per_epoch": 20})
    est = run_to_completion(train(fake_dataset, s)).estimator
    assert est.snr_conditioning and est.net.dim_cond == 9
    y = torch.full((1, 8), 0.2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    wide = est.sample(y, 2000, generator=g, snr=5)[0, :, 0].std()
    narrow = est.sample(y, 2000, generator=torch.Generator().manual_seed(0), snr=100)[0, :, 0].std()
    assert narrow < wide
    with pytest.raises(Exception, match="cinn"):
        run_to_completion(train(fake_dataset, TrainSettings(family="inn", snr_conditioning=True, **SMALL)))


def test_one_snr_per_batch_is_seeded_and_in_range() -> None:
    """``snr_per_batch``: one log-uniform SNR per batch from the batch generator (None when off)."""
    from tissue_inn.config import NoiseModel
    from tissue_inn.training.trainer import _batch_snr

    noise = NoiseModel(snr_min=10.0, snr_max=50.0)
    assert _batch_snr(noise, torch.Generator().manual_seed(0), per_batch=False) is None
    draws = [_batch_snr(noise, torch.Generator().manual_seed(s), per_batch=True) for s in range(400)]
    assert all(10.0 <= d <= 50.0 for d in draws)
    again = [_batch_snr(noise, torch.Generator().manual_seed(s), per_batch=True) for s in range(400)]
    assert draws == again
    # log-uniform: the geometric middle sqrt(10 * 50) splits the draws in half
    below = sum(d < (10.0 * 50.0) ** 0.5 for d in draws) / len(draws)
    assert 0.42 < below < 0.58, below
