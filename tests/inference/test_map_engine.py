"""The map generator: preview then exact passes, cancel keeping finished pixels, maps on disk, amortised maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tissue_inn.errors import Cancelled, ModelBundleError, TissueInnError
from tissue_inn.estimators.quantile_net import QUANTILES, QuantileNet, load_quantile_net, save_quantile_net
from tissue_inn.inference.image import infer_image
from tissue_inn.inference.posterior import Posterior
from tissue_inn.io.maps import read_maps_hdf5
from tissue_inn.progress import run_to_completion

pytestmark = pytest.mark.usefixtures("one_thread")
STATS = ("median", "iqr", "q05", "q95", "mean")


@pytest.fixture(scope="module")
def post(tiny_bundle):
    return Posterior.from_bundle(tiny_bundle, device="cpu")


@pytest.fixture(scope="module")
def cube():
    rng = np.random.default_rng(3)
    base = np.linspace(0.05, 0.5, 8)
    arr = (base * rng.uniform(0.6, 1.4, size=(20, 24, 1)) * rng.uniform(0.95, 1.05, size=(20, 24, 8)))
    arr = arr.astype(np.float32)
    arr[3, 5, :] = np.nan
    return arr


def _maps_equal(a, b, keys) -> bool:
    return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=True) for k in keys)


def test_preview_comes_first_and_the_exact_pass_replaces_it(post, cube):
    passes, previews = [], []
    gen = infer_image(post, cube, n_draws=16, predictive=None, stats=STATS, preview=True, tile_pixels=24 * 5)
    try:
        while True:
            p = next(gen)
            passes.append(p.extra["pass"])
            if p.extra["pass"] == "preview":
                previews.append(int(p.extra["result"].preview_mask.sum()))
    except StopIteration as stop:
        res = stop.value
    first_real = next(x for x in passes if x != "start")
    assert first_real == "preview" and passes[-1] == "exact"
    assert previews[-1] == 20 * 24 - 1  # every usable pixel has a preview value before any exact row
    plain = run_to_completion(infer_image(post, cube, n_draws=16, predictive=None, stats=STATS))
    assert res.complete and not res.preview_mask.any()
    assert _maps_equal(res.maps, plain.maps, plain.maps.keys())


def test_cancel_keeps_finished_pixels_marked_incomplete(post, cube):
    full = run_to_completion(infer_image(post, cube, n_draws=16, predictive=None, stats=STATS))
    flag = {"stop": False}
    gen = infer_image(post, cube, n_draws=16, predictive=None, stats=STATS, should_stop=lambda: flag["stop"],
                      preview=True, tile_pixels=24 * 3)
    with pytest.raises(Cancelled) as err:
        for p in gen:
            if p.extra["pass"] == "exact" and p.extra["rows_done"] > 0:
                flag["stop"] = True  # the user presses Cancel after the first exact rows arrived
    part = err.value.partial
    assert not part.complete and 0 < part.mask.sum() < full.mask.sum()
    assert not part.preview_mask.any()
    for key in ("sao2/median", "vhb_1/iqr"):
        got = np.asarray(part.maps[key])
        assert np.all(np.isnan(got[~part.mask]))  # preview values are dropped where not final
        assert np.array_equal(got[part.mask], np.asarray(full.maps[key])[part.mask])


def test_maps_streamed_to_disk_equal_the_in_memory_ones(post, cube, tmp_path):
    mem = run_to_completion(infer_image(post, cube, n_draws=16, predictive=None, stats=STATS, on_disk=False))
    disk = run_to_completion(infer_image(post, cube, n_draws=16, predictive=None, stats=STATS, on_disk=True))
    assert disk.attrs["maps_on_disk_while_computing"] and not mem.attrs["maps_on_disk_while_computing"]
    assert _maps_equal(mem.maps, disk.maps, mem.maps.keys())
    maps, attrs, mask = read_maps_hdf5(disk.save_hdf5(tmp_path / "d.h5"))
    assert _maps_equal(maps, mem.maps, mem.maps.keys()) and np.array_equal(mask, mem.mask)


def test_per_pixel_snr_map_is_used_and_checked(post, cube):
    h, w, _ = cube.shape
    with pytest.raises(TissueInnError, match="SNR map has shape"):
        run_to_completion(infer_image(post, cube, n_draws=8, predictive=None, stats=STATS, snr=np.ones((2, 2))))
    res = run_to_completion(infer_image(post, cube, n_draws=8, predictive=None, stats=STATS,
                                        snr=np.full((h, w), 30.0)))
    assert res.attrs["snr"] == "per-pixel map" and res.mask.sum() == h * w - 1


def _quick_qnet(post, seed=0) -> QuantileNet:
    est = post.estimator
    c = est.y_to_net(torch.full((1, 8), 0.2, dtype=torch.float64))
    return QuantileNet(c.shape[1], est.n_parameters, hidden=16, seed=seed).eval()


def test_amortised_maps_say_their_kind_and_are_monotone(post, cube, tiny_bundle):
    with pytest.raises(TissueInnError, match="no amortised"):
        run_to_completion(infer_image(post, cube, kind="amortised"))
    post_a = Posterior(post.estimator, post.card, device="cpu", amortised=_quick_qnet(post))
    res = run_to_completion(infer_image(post_a, cube, kind="amortised", stats=("median", "q05", "q95", "iqr", "map")))
    assert res.kind == "amortised" and res.attrs["stats_not_in_amortised_maps"] == ["map"]
    assert "sao2/map" not in res.maps and res.mask.sum() == 20 * 24 - 1
    lo, med, hi = (np.asarray(res.maps[f"sao2/{s}"])[res.mask] for s in ("q05", "median", "q95"))
    assert np.all(lo <= med) and np.all(med <= hi) and np.all(np.asarray(res.maps["sao2/iqr"])[res.mask] >= 0)
    y = cube[0, :4].astype(np.float64)
    q = post_a.quantiles(y)
    assert q.shape == (4, 13, len(QUANTILES))
    assert np.allclose(q[:, 0, 2], np.asarray(res.maps["sao2/median"])[0, :4], atol=1e-6)


def test_amortised_network_round_trips_through_the_bundle_and_refuses_tampering(post, tmp_path):
    qnet = _quick_qnet(post, seed=4)
    section = save_quantile_net(qnet, tmp_path)
    back = load_quantile_net(tmp_path, {"amortised": section})
    c = torch.randn(5, qnet.dim_in, generator=torch.Generator().manual_seed(0))
    assert torch.equal(back(c), qnet(c))
    assert load_quantile_net(tmp_path, {}) is None
    with pytest.raises(ModelBundleError, match="plain file name"):
        load_quantile_net(tmp_path, {"amortised": dict(section, file="../amortised.safetensors")})
    (tmp_path / section["file"]).write_bytes(b"tampered")
    with pytest.raises(ModelBundleError, match="sha256"):
        load_quantile_net(tmp_path, {"amortised": section})
