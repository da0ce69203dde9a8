"""The misfit gate's parts on hand-made inputs: statistics, thresholds, verdicts, text, surrogate, storage."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tissue_inn.errors import ModelBundleError, TissueInnError
from tissue_inn.estimators.surrogate import ForwardSurrogate, fit_surrogate, make_surrogate_spec, surrogate_errors
from tissue_inn.hashing import file_sha256
from tissue_inn.inference.gate_store import SURROGATE_FILE, attach_to_bundle, load_surrogate
from tissue_inn.inference.misfit import MisfitGate, edge_statistic, summary_line
from tissue_inn.inference.misfit_calibrate import union_thresholds
from tissue_inn.inference.posterior import Posterior
from tissue_inn.io.bundle import read_card
from tissue_inn.progress import run_to_completion

BOUNDS = np.array([[0.0, 1.0], [0.0, 0.1], [0.0, np.inf]])
TABLE = {"snr": [10.0, 40.0], "residual_threshold": [0.14, 0.035], "edge_threshold": [0.3, 0.5], "alpha": 0.01,
         "residual_quantiles": {"0.5": [0.07, 0.0175], "0.9": [0.1, 0.025], "0.99": [0.13, 0.033]}}


def test_edge_statistic_counts_draws_within_one_percent_of_a_bound():
    s = np.zeros((3, 100, 3))
    s[:, :, 0], s[:, :, 1] = 0.5, 0.05
    s[0, :30, 0] = 0.995  # 30 draws 0.005 below the upper bound of a [0, 1] prior (band 0.01)
    s[1, :50, 1] = 0.0005  # 50 draws 0.0005 above 0 of a [0, 0.1] prior (band 0.001)
    s[1, :20, 0] = 0.02  # 0.02 from the bound: outside the band, not counted
    s[2, :, 2] = 0.0  # a parameter without an upper bound is never counted
    e = edge_statistic(torch.as_tensor(s), BOUNDS).numpy()
    np.testing.assert_allclose(e, [0.30, 0.50, 0.0])


def test_residual_is_the_predictive_median_spectrum_against_the_measurement_shape():
    k = torch.arange(4, dtype=torch.float64)
    gate = MisfitGate(TABLE, lambda x: torch.exp(x[:, :1] * k), np.array([[0.0, 1.0]]))
    draws = torch.full((1, 64, 1), 0.1, dtype=torch.float64)
    draws[0, 40:] = 0.9  # draws beyond the first 32 are not re-simulated
    y = 3.0 * torch.exp(0.1 * k + torch.tensor([0.02, -0.02, 0.02, -0.02], dtype=torch.float64))[None]
    res, edge = gate.statistics(y, draws)
    assert float(res[0]) == pytest.approx(0.02, rel=1e-9)  # the factor 3 (illumination) does not count
    assert float(edge[0]) == 0.0
    draws[0, :20] = 0.5  # now the band-wise median of the 32 re-simulated draws is the x = 0.5 spectrum
    res2, _ = gate.statistics(torch.exp(0.5 * k)[None] * 2.0, draws)
    assert float(res2[0]) == pytest.approx(0.0, abs=1e-12)


def test_union_thresholds_hold_the_false_alarm_level():
    rng = np.random.default_rng(0)
    r, e = rng.uniform(size=20000), rng.uniform(size=20000)
    rt, et, q, fa = union_thresholds(r, e, 0.01)
    assert 0.009 <= fa <= 0.01
    assert np.mean((r > rt) | (e > et)) == pytest.approx(fa)
    assert 0.994 < q < 0.996  # independent statistics: each flags about half of the 1 %
    rt2, et2, q2, fa2 = union_thresholds(r, r.copy(), 0.01)  # identical statistics: no union penalty
    assert q2 == pytest.approx(0.99, abs=1e-3) and fa2 <= 0.01


def test_thresholds_interpolate_in_log_snr_and_clamp_outside():
    gate = MisfitGate(TABLE, lambda x: x, BOUNDS)
    rt, et = gate.thresholds(np.array([20.0, 5.0, 100.0]))
    np.testing.assert_allclose(rt, [np.sqrt(0.14 * 0.035), 0.14, 0.035])  # geometric midpoint
    np.testing.assert_allclose(et, [0.4, 0.3, 0.5])
    assert gate.residual_quantile(20.0, 0.99) == pytest.approx(np.sqrt(0.13 * 0.033))


def test_verdict_flags_either_tell_tale():
    gate = MisfitGate(TABLE, lambda x: x, BOUNDS)
    v = gate.verdict(np.array([0.05, 0.08, 0.05]), np.array([0.1, 0.1, 0.6]), 20.0)
    np.testing.assert_array_equal(v.explained, [True, False, False])
    np.testing.assert_allclose(v.score, [0.05 / 0.07, 0.08 / 0.07, 0.6 / 0.4])


def test_gate_table_errors_are_clear():
    with pytest.raises(TissueInnError, match="malformed.*rebuild the gate"):
        MisfitGate({"snr": [10.0]}, lambda x: x, BOUNDS)
    with pytest.raises(TissueInnError, match="increasing SNR"):
        MisfitGate({**TABLE, "snr": [40.0, 10.0]}, lambda x: x, BOUNDS)


def test_summary_line():
    explained = np.ones(100, bool)
    explained[:38] = False
    assert summary_line(explained, "colon_default", 20.0) == (
        "38 % of pixels (38 of 100) are not explained by colon_default at SNR 20 (1 % false-alarm level)")
    img = np.full((2, 3), np.nan)
    img[0] = [1.0, 0.0, 1.0]  # NaN pixels (masked) are not counted
    assert summary_line(img, "m", np.full((2, 3), 12.0)).startswith("33 % of pixels (1 of 3) ")
    line = summary_line(np.array([True, False]), "m", np.array([10.0, 30.0]))
    assert line.endswith("by m at SNR 10–30 (median 20; 1 % false-alarm level)")
    assert summary_line(np.array([], bool), "m", 20.0) == "no pixels were scored by the m misfit gate"


# --------------------------------------------------------------------------------------------- surrogate
def _toy_pairs(n: int, seed: int):
    """A smooth positive function of 3 bounded parameters (not the tissue model: a known target)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.1, 40.0])
    k = torch.linspace(0, 1, 4, dtype=torch.float64)
    y = 0.3 * torch.exp(-x[:, 1:2] * (5 + 10 * x[:, 0:1] * k)) * (x[:, 2:3] / (x[:, 2:3] + 10)) + 0.01
    return x, y


def _toy_spec(**kw):
    return make_surrogate_spec(["a", "b", "c"], [0.0, 0.0, 0.0], [1.0, 0.1, np.inf], [1.0, 2.0, 3.0, 4.0], **kw)


def test_surrogate_learns_a_known_function(one_thread):
    x, y = _toy_pairs(2000, 0)
    model, report = run_to_completion(fit_surrogate(x, y, _toy_spec(hidden=32, n_hidden_layers=2), epochs=25,
                                                    batch_size=128, seed=1))
    x_te, y_te = _toy_pairs(500, 99)
    err = surrogate_errors(model, x_te, y_te)
    spread = float(torch.log(y_te).std(dim=0).mean())  # what predicting a constant would miss
    assert err["band_rel_error"]["median"] < 0.02 < spread
    assert report["seed"] == 1 and report["n_val"] == 100 and len(report["history"]) == 25
    assert report["history"][-1]["val_mse"] < 0.1 * report["history"][0]["val_mse"]
    inside = torch.tensor([[0.5, 0.05, 20.0]])
    outside = torch.tensor([[0.5, 0.05, 400.0]])  # far beyond the training range of the unbounded parameter
    assert model.in_range(torch.cat([inside, outside])).tolist() == [True, False]


def test_surrogate_is_reproducible_from_its_seed():
    a, b = ForwardSurrogate(_toy_spec(seed=3)), ForwardSurrogate(_toy_spec(seed=3))
    c = ForwardSurrogate(_toy_spec(seed=4))
    wa, wb, wc = (m.net[0].weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_attach_and_load_keep_the_model_weights_and_check_the_surrogate(tiny_bundle, tmp_path, one_thread):
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    weights_before = file_sha256(folder / "model.safetensors")
    post = Posterior.from_bundle(folder)
    bounds = post.prior_bounds
    spec = make_surrogate_spec(list(post.parameter_names), list(bounds[:, 0]), list(bounds[:, 1]),
                               list(post.band_centers_nm), hidden=16, n_hidden_layers=1)
    x = post.tissue.sample_prior(200, torch.Generator().manual_seed(0))
    y = torch.rand(200, post.n_bands, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.1
    sur, _ = run_to_completion(fit_surrogate(x, y, spec, epochs=2))
    attach_to_bundle(folder, sur, training={"seed": 0}, gate_section=TABLE)
    card = read_card(folder)
    assert file_sha256(folder / "model.safetensors") == weights_before == card["weights"]["sha256"]
    assert card["surrogate"]["sha256"] == file_sha256(folder / SURROGATE_FILE)
    assert card["misfit_gate"] == TABLE
    loaded = load_surrogate(card, folder)
    torch.testing.assert_close(loaded.bands(x[:5]), sur.bands(x[:5]))
    # a changed surrogate file is refused, naming the file
    raw = bytearray((folder / SURROGATE_FILE).read_bytes())
    raw[-1] ^= 0xFF
    (folder / SURROGATE_FILE).write_bytes(bytes(raw))
    with pytest.raises(ModelBundleError, match="surrogate.safetensors: sha256"):
        load_surrogate(card, folder)
    assert load_surrogate({"name": "no surrogate"}) is None


def test_attach_writes_nothing_when_the_card_entries_are_not_json(tiny_bundle, tmp_path):
    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, folder)
    card_before = (folder / "model_card.json").read_bytes()
    post = Posterior.from_bundle(folder)
    bounds = post.prior_bounds
    spec = make_surrogate_spec(list(post.parameter_names), list(bounds[:, 0]), list(bounds[:, 1]),
                               list(post.band_centers_nm), hidden=8, n_hidden_layers=1)
    with pytest.raises(ModelBundleError, match="not valid JSON.*nothing was written"):
        attach_to_bundle(folder, ForwardSurrogate(spec), gate_section={**TABLE, "residual_threshold": [np.nan, 0.1]})
    assert not (folder / SURROGATE_FILE).exists()
    assert (folder / "model_card.json").read_bytes() == card_before
