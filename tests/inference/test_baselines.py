"""ABC (kNN) and regression / MC-dropout baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tissue_inn.inference.abc_rejection import ABCRejection, knn_search
from tissue_inn.inference.diagnostics import r2_score
from tissue_inn.inference.regression import (
    RegressionSettings,
    load_regression,
    save_regression,
    train_regression,
)
from tissue_inn.progress import run_to_completion


def test_knn_chunking_matches_unchunked_and_brute_force():
    gen = torch.Generator().manual_seed(0)
    bank = torch.randn(5000, 8, generator=gen)
    query = torch.randn(50, 8, generator=gen)
    d_small, i_small = knn_search(query, bank, 7, query_chunk=7, bank_chunk=333)
    d_big, i_big = knn_search(query, bank, 7, query_chunk=1000, bank_chunk=100000)
    assert torch.equal(i_small, i_big)
    torch.testing.assert_close(d_small, d_big, rtol=1e-5, atol=1e-5)
    brute = torch.cdist(query.double(), bank.double()).argsort(dim=1)[:, :7]
    assert torch.equal(i_small, brute)
    assert torch.all(d_small[:, 1:] >= d_small[:, :-1])


def test_knn_rejects_bad_k():
    with pytest.raises(ValueError):
        knn_search(torch.zeros(2, 3), torch.zeros(4, 3), 5)


def test_abc_recovers_gaussian_conjugate_posterior():
    # x ~ N(0, 1), y = x + N(0, s²): posterior N(y / (1 + s²), s² / (1 + s²))
    s = 0.5
    gen = torch.Generator().manual_seed(1)
    m = 200_000
    x = torch.randn(m, 1, generator=gen, dtype=torch.float64)
    y = x + s * torch.randn(m, 1, generator=gen, dtype=torch.float64)
    abc = ABCRejection.from_spectra(x, y, feature_fn=lambda v: v.float(), k=400, bank_chunk=30_000)
    y_obs = torch.tensor([[-1.0], [0.0], [1.5]], dtype=torch.float64)
    post = abc.sample(y_obs)
    assert post.shape == (3, 400, 1)
    mean_exact = y_obs[:, 0] / (1 + s**2)
    std_exact = (s**2 / (1 + s**2)) ** 0.5
    np.testing.assert_allclose(post[:, :, 0].mean(dim=1), mean_exact, atol=0.08)
    np.testing.assert_allclose(post[:, :, 0].std(dim=1), std_exact, atol=0.05)


def test_abc_from_dataset_uses_fitted_features(fake_dataset):
    from tissue_inn.config import NoiseModel

    abc = ABCRejection.from_dataset(fake_dataset, NoiseModel(20, 20), seed=0, k=16, limit=2500)
    assert abc.bank_size == 2500
    import h5py

    with h5py.File(fake_dataset) as f:
        x_test = torch.as_tensor(f["x"][2500:2700])
        y_test = torch.as_tensor(f["y"][2500:2700], dtype=torch.float64)
    post = abc.sample(y_test)
    assert post.shape == (200, 16, x_test.shape[1])
    # sO2 is informed by the fake forward model: the ABC posterior mean tracks it
    assert r2_score(post[:, :, 0].mean(dim=1, keepdim=True), x_test[:, :1])[0] > 0.5


@pytest.fixture(scope="module")
def trained_regression(fake_dataset):
    settings = RegressionSettings(
        hidden=64,
        n_hidden_layers=2,
        dropout=0.1,
        epochs=15,
        batch_size=128,
        lr=3e-3,
        seed=0,
        limit_samples=2500,
        threads=1,
    )  # one thread: 2 cores are shared
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    try:
        res = run_to_completion(train_regression(fake_dataset, settings))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(state, torch.get_rng_state()), "training touched the global RNG"
    return res


pytestmark = pytest.mark.usefixtures("one_thread")


def test_regression_learns_informed_parameter(trained_regression, fake_dataset):
    import h5py

    model = trained_regression.model
    with h5py.File(fake_dataset) as f:
        x_test = torch.as_tensor(f["x"][2500:3000])
        y_test = torch.as_tensor(f["y"][2500:3000], dtype=torch.float64)
    pred = model.predict(y_test)
    r2 = r2_score(pred, x_test)
    names = list(model.parameter_names)
    assert r2[names.index("sao2")] > 0.6
    assert r2[names.index("g_1")] < 0.2  # the fake forward model ignores g: nothing to learn
    low, high = model.prior_bounds()[:, 0], model.prior_bounds()[:, 1]
    assert torch.all(pred >= low) and torch.all(pred <= high)


def test_mc_dropout_samples_and_roundtrip(trained_regression, tmp_path, fake_dataset):
    import h5py

    model = trained_regression.model
    with h5py.File(fake_dataset) as f:
        y_test = torch.as_tensor(f["y"][2500:2520], dtype=torch.float64)
    s1 = model.sample(y_test, 50, generator=torch.Generator().manual_seed(3))
    s2 = model.sample(y_test, 50, generator=torch.Generator().manual_seed(3))
    assert s1.shape == (20, 50, model.n_parameters)
    assert torch.equal(s1, s2)
    assert torch.all(s1.std(dim=1) > 0)
    folder = save_regression(model, tmp_path / "reg", extra={"note": "test"})
    with pytest.raises(FileExistsError):
        save_regression(model, tmp_path / "reg")
    loaded, card = load_regression(folder)
    assert card["note"] == "test"
    assert torch.equal(loaded.predict(y_test), model.predict(y_test))
    assert torch.equal(loaded.sample(y_test, 50, generator=torch.Generator().manual_seed(3)), s1)
    assert not list(folder.glob("*.pt")) and not list(folder.glob("*.pkl"))
