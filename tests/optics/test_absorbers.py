"""Absorbers other than blood, Rayleigh scattering, tissue-file features and backward compatibility.

Expected values are read straight from the shipped tables (resources/chromophores/*.tsv, the
numbers of the cited papers) or computed from the published closed forms by hand, never by the
code under test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tissue_inn.config import TissueModel, load_camera, load_tissue, resources_dir
from tissue_inn.errors import ConfigError
from tissue_inn.optics.absorbers import unit_mu_a_per_cm
from tissue_inn.optics.forward import ForwardModel, optical_properties

CHROMO = resources_dir() / "chromophores"
LN10 = math.log(10.0)


def _row(file: str, wavelength: float) -> list[float]:
    for line in (CHROMO / file).read_text().splitlines()[1:]:
        cols = [float(c) for c in line.split()]
        if abs(cols[0] - wavelength) < 1e-9:
            return cols
    raise AssertionError(f"{wavelength} not in {file}")


@pytest.mark.parametrize(
    ("name", "file", "wavelength", "factor"),
    [
        ("eumelanin", "eumelanin_sarna.tsv", 550.70, LN10),  # decadic extinction, cm^-1 mL/mg
        ("pheomelanin", "pheomelanin_sarna.tsv", None, LN10),
        ("fat", "fat_vanveen.tsv", 560.0, 0.01),  # 1/m -> 1/cm
        ("water", "water_hale_querry.tsv", 750.0, 1.0),
        ("bilirubin", "bilirubin_li.tsv", 460.0, LN10 * 1e-6),  # molar, amount in umol/L
    ],
)
def test_tabulated_mu_a_equals_the_table_at_its_own_wavelengths(name, file, wavelength, factor):
    if wavelength is None:  # pick the pheomelanin row nearest 600 nm
        rows = [[float(c) for c in line.split()] for line in (CHROMO / file).read_text().splitlines()[1:]]
        wavelength = min(rows, key=lambda r: abs(r[0] - 600.0))[0]
    expected = _row(file, wavelength)[1] * factor
    got = unit_mu_a_per_cm(name, np.array([wavelength]))[0]
    assert got == pytest.approx(expected, rel=1e-9)


def test_closed_forms_and_log_interpolation():
    # Jacques 2013: melanosome 519 (lambda/500)^-3.5 /cm; skin baseline 7.84e7 lambda^-3.255 /cm
    assert unit_mu_a_per_cm("mel", np.array([500.0]))[0] == pytest.approx(519.0)
    assert unit_mu_a_per_cm("mel", np.array([700.0]))[0] == pytest.approx(519.0 * 1.4**-3.5)
    assert unit_mu_a_per_cm("baseline", np.array([600.0]))[0] == pytest.approx(7.84e7 * 600.0**-3.255)
    # eumelanin between two tabulated points (550.70: 5.758, 588.87: 4.520) is a geometric mean at the
    # geometric-interpolation midpoint
    mid = 0.5 * (550.70 + 588.87)
    assert unit_mu_a_per_cm("eumelanin", np.array([mid]))[0] == pytest.approx(LN10 * math.sqrt(5.758 * 4.520))
    # bilirubin: none above the table (700 nm), never negative in its noisy tail
    tail = unit_mu_a_per_cm("bilirubin", np.linspace(560.0, 900.0, 200))
    assert tail.min() >= 0.0 and tail[-1] == 0.0


def test_out_of_table_wavelength_is_refused_with_the_absorber_named():
    with pytest.raises(ConfigError, match="eumelanin.*820"):
        unit_mu_a_per_cm("eumelanin", np.array([900.0]))
    with pytest.raises(ConfigError, match="fat"):
        unit_mu_a_per_cm("fat", np.array([410.0]))


_HEAD = ("name='t'\n[constants]\nc_hb_g_per_l=120\nhb_molar_mass_g_per_mol=64500\nn_above=1\nn_below=1\n"
         "[shared]\nsao2=0.7\n")


def _tissue(tmp_path: Path, body: str) -> TissueModel:
    p = tmp_path / "t.toml"
    p.write_text(_HEAD + body)
    return load_tissue(p)


def test_layer_mu_a_is_the_sum_of_its_absorbers(tmp_path):
    t = _tissue(tmp_path, "[[layers]]\nvhb=0.02\nmel={prior='uniform',low=0,high=0.5}\nwater=0.6\nfat=0.1\n"
                          "bilirubin=20.0\neumelanin=0.3\nbaseline='rest'\na_mie=30\nb_mie=1.2\nf_ray=0.25\n"
                          "g=0.85\nd=200\nn=1.4\n")
    assert t.parameter_names == ("mel_1",)
    assert t.parameter_labels == ("melanin volume fraction",) and t.display_scales == (100.0,)
    wl = np.array([500.0, 600.0])
    x = torch.tensor([[0.1]], dtype=torch.float64)
    props = optical_properties(t, x, torch.tensor(wl, dtype=torch.float64))
    hb = np.loadtxt(CHROMO / "hemoglobin_prahl.tsv", skiprows=1)
    eps = 0.7 * np.interp(wl, hb[:, 0], hb[:, 1]) + 0.3 * np.interp(wl, hb[:, 0], hb[:, 2])
    blood = LN10 * 120.0 * 0.02 * eps / 64500.0
    mel = 0.1 * 519.0 * (wl / 500.0) ** -3.5
    base = (1.0 - 0.02 - 0.1) * 7.84e7 * wl**-3.255
    water = 0.6 * np.array([0.00025, 0.0023])  # Hale & Querry at 500 and 600 nm (table rows)
    fat_rows = np.array([_row("fat_vanveen.tsv", w)[1] for w in wl]) / 100.0
    bili = 20e-6 * LN10 * np.array([_row("bilirubin_li.tsv", w)[1] for w in wl]).clip(0)
    eu = 0.3 * LN10 * np.exp(np.interp(wl, [483.36, 523.76, 588.87, 615.82],
                                       np.log([8.9370, 6.9950, 4.5200, 3.9880])))
    expected = blood + mel + base + water + 0.1 * fat_rows + bili + eu
    assert np.allclose(props["mu_a_per_cm"][0, :, 0].numpy(), expected, rtol=1e-9)
    # Jacques 2013 eq. 2: mu_s' = a (f_ray x^-4 + (1 - f_ray) x^-b), x = lambda / 500 nm
    mus_red = 30.0 * (0.25 * (wl / 500) ** -4 + 0.75 * (wl / 500) ** -1.2)
    assert np.allclose(props["mu_s_per_cm"][0, :, 0].numpy() * (1 - 0.85), mus_red, rtol=1e-12)


def test_layer_count_is_free_between_one_and_four(tmp_path):
    layer = "[[layers]]\nvhb={prior='uniform',low=0,high=0.1}\na_mie=20\nb_mie=1\ng=0.9\nd=300\nn=1.4\n"
    for n in (1, 2, 4):
        t = _tissue(tmp_path, layer * n)
        assert t.n_layers == n and len(t.parameter_names) == n
        y = ForwardModel(t, load_camera("spectrocam8")).bands(t.sample_prior(2, torch.Generator().manual_seed(0)))
        assert y.shape == (2, 8) and bool(torch.all((y > 0) & (y < 1)))
    with pytest.raises(ConfigError, match="1 to 4"):
        _tissue(tmp_path, layer * 5)


def test_display_overrides_and_bad_display(tmp_path):
    body = ("[[layers]]\nvhb={prior='uniform',low=0,high=0.1}\na_mie=20\nb_mie=1\ng=0.9\nd=300\nn=1.4\n"
            "[display]\nvhb_1={label='capillary blood', unit='‰', scale=1000}\n")
    t = _tissue(tmp_path, body)
    assert t.parameter_labels == ("capillary blood",) and t.display_units == ("‰",) and t.display_scales == (1000.0,)
    card = t.parameter_card()[0]
    assert card["label"] == "capillary blood" and card["prior"] == {"prior": "uniform", "low": 0.0, "high": 0.1}
    with pytest.raises(ConfigError, match="unknown parameter"):
        _tissue(tmp_path, body.replace("vhb_1=", "vhb_9="))


def test_blood_without_sao2_is_refused(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text(_HEAD.replace("[shared]\nsao2=0.7\n", "")
                 + "[[layers]]\nvhb={prior='uniform',low=0,high=0.1}\na_mie=20\nb_mie=1\ng=0.9\nd=300\nn=1.4\n")
    with pytest.raises(ConfigError, match="sao2"):
        load_tissue(p)


def test_skin_has_clinical_labels_and_its_chromophores():
    t = load_tissue("skin")
    assert t.parameter_names == ("sao2", "mel_1", "d_1", "vhb_2", "a_mie_2", "b_mie_2", "d_2")
    labels = dict(zip(t.parameter_names, zip(t.parameter_labels, t.display_units, t.display_scales)))
    assert labels["sao2"] == ("oxygen saturation StO2", "%", 100.0)
    assert labels["mel_1"] == ("epidermal melanin volume fraction", "%", 100.0)
    assert labels["vhb_2"][1:] == ("%", 100.0) and labels["d_1"][1] == "µm"
    assert set(t.absorbers) == {"vhb", "mel", "fat", "baseline"}


def test_melanin_darkens_skin_most_in_the_blue():
    t, cam = load_tissue("skin"), load_camera("spectrocam8")
    x = t.sample_prior(1, torch.Generator().manual_seed(3)).repeat(3, 1)
    x[:, 1] = torch.tensor([0.02, 0.15, 0.40], dtype=torch.float64)
    y = ForwardModel(t, cam).bands(x)
    assert bool(torch.all(y[1:] < y[:-1]))
    ratio = y[2] / y[0]  # 470 nm band darkens more than the 700 nm band (melanin falls as lambda^-3.5)
    assert float(ratio[0]) < float(ratio[-1])


def test_colon_and_generic_bands_unchanged_since_before_absorbers():
    """The shipped models depend on the colon and generic spectra: same bands as commit fd9d008."""
    ref = json.loads((Path(__file__).parent / "data" / "backcompat_bands_fd9d008.json").read_text())
    cam = load_camera("spectrocam8")
    for name in ("colon", "generic"):
        t = load_tissue(name)
        x = t.sample_prior(16, torch.Generator().manual_seed(12345))
        assert np.array_equal(x.numpy(), np.asarray(ref[f"{name}_x"]))
        y = ForwardModel(t, cam).bands(x).numpy()
        assert np.max(np.abs(y / np.asarray(ref[f"{name}_y"]) - 1.0)) <= 1e-12
