"""Shared fixtures. Qt tests run offscreen."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tissue_inn.config import load_camera, load_tissue  # noqa: E402


def fake_bands(x: torch.Tensor, n_bands: int = 8) -> torch.Tensor:
    """A cheap smooth stand-in for the forward model (for tests of training/IO, not physics).

    Depends on sao2 and top-layer vhb/a_mie only, like the real problem's informed parameters.
    """
    sao2, vhb, a_mie = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    k = torch.linspace(0, 1, n_bands, dtype=x.dtype)[None, :]
    absorb = vhb * (3 + 4 * torch.sin(3 * k + 1) * sao2 + 2 * (1 - sao2) * torch.cos(5 * k))
    return (0.5 * a_mie / (a_mie + 20) + 0.05) * torch.exp(-4 * absorb)


def load_repo_script(relative: str):
    """Import a script of the repository that is not part of the package (``benchmarks/NAME.py``) as a module."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / relative
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


def write_fake_dataset(path, n: int = 3000, seed: int = 0) -> None:
    tissue = load_tissue("colon")
    camera = load_camera("spectrocam8")
    x = tissue.sample_prior(n, torch.Generator().manual_seed(seed))
    y = fake_bands(x)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=x.numpy())
        f.create_dataset("y", data=y.numpy().astype(np.float32))
        f.attrs["parameter_names"] = json.dumps(list(tissue.parameter_names))
        f.attrs["parameter_units"] = json.dumps(list(tissue.parameter_units))
        f.attrs["band_centers_nm"] = np.asarray(camera.band_centers_nm)
        f.attrs["tissue"] = json.dumps(tissue.to_dict())
        f.attrs["camera"] = json.dumps(camera.to_dict())
        f.attrs["solver"] = json.dumps({"fake": True})
        f.attrs["seed"] = seed


@pytest.fixture(scope="session")
def fake_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "fake.h5"
    write_fake_dataset(path)
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, fake_dataset):
    """A small cinn bundle trained briefly on the fake dataset (fast; not physically meaningful)."""
    from tissue_inn.io.bundle import save_bundle
    from tissue_inn.progress import run_to_completion
    from tissue_inn.training.trainer import TrainSettings, train

    s = TrainSettings(family="cinn", epochs=2, iterations_per_epoch=10, batch_size=200, n_blocks=2, hidden=32,
                      n_hidden_layers=2, val_fraction=0.1, seed=0, threads=1)
    res = run_to_completion(train(fake_dataset, s))
    card = {"name": "tiny"}
    card.update(res.card_sections())
    return save_bundle(res.estimator, card, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (small kernels; torch's thread pool thrashes on shared cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# One layer of blood and melanin with fixed scattering: small enough for make-model to simulate, train and
# evaluate in seconds (the make-model core and GUI tests).
SLAB_TISSUE_TOML = """name = "slab"
[constants]
c_hb_g_per_l = 120.0
hb_molar_mass_g_per_mol = 64500.0
n_above = 1.0
n_below = 1.0
[shared]
sao2 = { prior = "uniform", low = 0.0, high = 1.0 }
[[layers]]
vhb = { prior = "uniform", low = 0.01, high = 0.1 }
mel = 0.02
baseline = "rest"
a_mie = 30.0
b_mie = 1.2
g = 0.8
d = 400.0
n = 1.4
"""


@pytest.fixture
def slab_tissue(tmp_path):
    """``tmp_path/slab.toml``: the tiny tissue above."""
    path = tmp_path / "slab.toml"
    path.write_text(SLAB_TISSUE_TOML)
    return path


BANDS_NM = (470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0)


def write_cube(path, h=12, w=16, wavelengths=BANDS_NM, seed=0):
    """A small smooth synthetic reflectance cube with the sample image's layout (+ ground truth)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.08 + 0.25 * np.linspace(0, 1, len(wavelengths))[None, None, :] * (0.5 + xx[..., None] / (2 * w))
    cube = (base * (1 + 0.03 * rng.standard_normal((h, w, len(wavelengths))))).astype(np.float32)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("reflectance", data=cube)
        ds.attrs["wavelengths_nm"] = np.asarray(wavelengths)
        gt = f.create_group("ground_truth")
        gt.create_dataset("sao2", data=(0.3 + 0.6 * xx / w).astype(np.float32))
        gt.create_dataset("vhb_1", data=np.full((h, w), 0.03, np.float32))
    return path


@pytest.fixture()
def ws(tiny_bundle, tmp_path):
    """A Qt-free workspace with the tiny bundle and a synthetic cube loaded (the workspace tests)."""
    from tissue_inn.workspace import Workspace

    w = Workspace(n_draws_pixel=256, n_draws_map=16, seed=3)
    w.load_model(tiny_bundle)
    w.load_image(write_cube(tmp_path / "cube.h5"))
    return w
