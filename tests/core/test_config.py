import math

import pytest
import torch

from tissue_inn.config import Camera, load_camera, load_tissue
from tissue_inn.errors import ConfigError


def test_colon_has_13_parameters_in_convention_order():
    t = load_tissue("colon")
    assert t.parameter_names == (
        "sao2", "vhb_1", "a_mie_1", "g_1", "d_1", "vhb_2", "a_mie_2", "g_2", "d_2", "vhb_3", "a_mie_3", "g_3", "d_3"
    )
    assert t.parameter_units[:5] == ("1", "1", "1/cm", "1", "um")
    # SCIENCE.md §2: b_mie fixed 1.286, n = 1.36/1.36/1.38
    v = t.layer_values(t.sample_prior(3, torch.Generator().manual_seed(1)))
    assert torch.allclose(v["b_mie"], torch.full((3, 3), 1.286, dtype=torch.float64))
    assert torch.allclose(v["n_layers"][0], torch.tensor([1.36, 1.36, 1.38], dtype=torch.float64))


def test_prior_samples_respect_bounds_and_truncation():
    t = load_tissue("colon")
    x = t.sample_prior(20000, torch.Generator().manual_seed(0))
    b = t.prior_bounds()
    for j in range(x.shape[1]):
        assert x[:, j].min() >= b[j, 0] and x[:, j].max() <= b[j, 1]
    d1 = x[:, t.parameter_names.index("d_1")]
    assert abs(d1.mean().item() - 805) < 5  # U(600, 1010)
    a = x[:, t.parameter_names.index("a_mie_1")]
    assert a.min() > 0
    # N(18.9, 10.2) truncated at 0 has mean 18.9 + 10.2 * phi(a)/(1-Phi(a)), a = -1.853
    phi = math.exp(-0.5 * 1.853**2) / math.sqrt(2 * math.pi)
    big_phi = 0.5 * (1 + math.erf(-1.853 / math.sqrt(2)))
    assert abs(a.mean().item() - (18.9 + 10.2 * phi / (1 - big_phi))) < 0.3


def test_prior_sampling_is_seeded():
    t = load_tissue("generic")
    a = t.sample_prior(5, torch.Generator().manual_seed(3))
    b = t.sample_prior(5, torch.Generator().manual_seed(3))
    c = t.sample_prior(5, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert "n" in t.parameter_names and "b_mie_3" in t.parameter_names


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name='x'\n[constants]\nc_hb_g_per_l=120\nhb_molar_mass_g_per_mol=64500\nn_above=1\nn_below=1\n"
         "[shared]\nsao2={prior='uniform',low=0,high=1}\n", "'layers'"),
        ("name='x'\n[constants]\nc_hb_g_per_l=120\nhb_molar_mass_g_per_mol=64500\nn_above=1\nn_below=1\n"
         "[shared]\nsao2={prior='uniform',low=0,high=1}\n[[layers]]\nvhb=0.1\na_mie=10\nb_mie=1\ng=0.9\nd=100\n"
         "n=1.4\ncolour=3\n", "colour"),
        ("name='x'\n[constants]\nc_hb_g_per_l=120\nhb_molar_mass_g_per_mol=64500\nn_above=1\nn_below=1\n"
         "[shared]\nsao2={prior='uniform',low=0,high=1}\n[[layers]]\nvhb={prior='uniform',low=0.2,high=0.1}\n"
         "a_mie=10\nb_mie=1\ng=0.9\nd=100\nn=1.4\n", "low < high"),
        ("name='x'\n[constants]\nc_hb_g_per_l=120\nhb_molar_mass_g_per_mol=64500\nn_above=1\nn_below=1\n"
         "[shared]\nsao2={prior='uniform',low=0,high=1}\n[[layers]]\nvhb=0.1\na_mie=10\nb_mie=1\ng=1.2\nd=100\n"
         "n=1.4\n", "'g'"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_malformed_tissue_names_file_key_and_problem(tmp_path, text, fragment):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_tissue(p)
    assert str(p) in str(exc.value) and fragment in str(exc.value)


def test_unknown_tissue_lists_shipped():
    with pytest.raises(ConfigError, match="colon"):
        load_tissue("kidney")


def test_camera_round_trip_and_validation(tmp_path):
    c = load_camera("spectrocam8")
    assert c.band_centers_nm == (470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0)
    assert c.fwhm_nm == 10.0
    assert Camera.from_dict(c.to_dict()) == Camera.from_dict(c.to_dict())
    p = tmp_path / "cam.toml"
    p.write_text("name='c'\nband_centers_nm=[500, 600]\n")
    with pytest.raises(ConfigError, match="fwhm_nm"):
        load_camera(p)


def test_noise_model_is_multiplicative_and_clipped():
    c = load_camera("spectrocam8")
    y = torch.full((20000, 8), 0.2, dtype=torch.float64)
    yn = c.noise.apply(y, torch.Generator().manual_seed(0), snr=10)
    assert abs((yn / y - 1).std().item() - 0.1) < 0.005
    assert yn.min() >= 1e-5 and yn.max() <= 1.0
