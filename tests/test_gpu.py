"""CUDA path: the same code on the GPU gives the CPU's answers (run with -m gpu on a machine with CUDA)."""

import pytest
import torch

from tissue_inn.config import load_camera, load_tissue
from tissue_inn.optics.forward import ForwardModel, SolverSettings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_forward_model_on_cuda_matches_cpu():
    tissue, camera = load_tissue("colon"), load_camera("spectrocam8")
    x = tissue.sample_prior(64, torch.Generator().manual_seed(0))
    s = SolverSettings(n_quad=16)
    cpu = ForwardModel(tissue, camera, s).bands(x)
    gpu = ForwardModel(tissue, camera, s, device="cuda").bands(x).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-9, atol=1e-12)


def test_default_model_samples_on_cuda_within_support():
    from tissue_inn.inference.posterior import Posterior

    post = Posterior.from_bundle("colon_default", device="cuda")
    assert post.device.startswith("cuda")
    y = [0.1, 0.12, 0.13, 0.06, 0.05, 0.2, 0.35, 0.37]
    samples = post.sample(y, 4096, seed=0)
    bounds = post.prior_bounds
    assert (samples >= bounds[:, 0]).all() and (samples <= bounds[:, 1]).all()


def test_maps_on_cuda_match_cpu_exact_preview_and_amortised():
    """Exact maps (same seeds → same draws up to float rounding), preview and amortised maps on the GPU."""
    import numpy as np

    from tissue_inn.inference.image import infer_image
    from tissue_inn.inference.posterior import Posterior
    from tissue_inn.progress import run_to_completion

    rng = np.random.default_rng(0)
    cube = (np.linspace(0.05, 0.5, 8) * rng.uniform(0.6, 1.4, (6, 40, 1))).astype(np.float32)
    cpu = Posterior.from_bundle("colon_default", device="cpu")
    gpu = Posterior.from_bundle("colon_default", device="cuda")
    for kw in ({"n_draws": 64, "predictive": None, "preview": True}, {"kind": "amortised"}):
        a = run_to_completion(infer_image(cpu, cube, **kw))
        b = run_to_completion(infer_image(gpu, cube, **kw))
        assert b.attrs["device"].startswith("cuda") and np.array_equal(a.mask, b.mask)
        for key in ("sao2/median", "sao2/iqr"):
            np.testing.assert_allclose(np.asarray(b.maps[key]), np.asarray(a.maps[key]), rtol=1e-3, atol=1e-3)
    px = gpu.pixel(cube[0, 0].astype(np.float64), n_draws=4096, predictive_draws=0)
    assert px.samples.shape == (4096, 13)
