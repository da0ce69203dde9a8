"""Hostile model bundles: files outside the bundle, and cards that do not describe their network."""

from __future__ import annotations

import copy
import json
import os
import shutil

import pytest

from tissue_inn.errors import ModelBundleError
from tissue_inn.io.bundle import CARD, WEIGHTS, load_bundle


@pytest.fixture()
def bundle(tiny_bundle, tmp_path):
    folder = tmp_path / "b"
    shutil.copytree(tiny_bundle, folder)
    return folder


def _edit(folder, fn):
    card = json.loads((folder / CARD).read_text())
    fn(card)
    (folder / CARD).write_text(json.dumps(card))


def test_copy_loads(bundle):
    est, card = load_bundle(bundle)
    assert list(est.parameter_names) == [p["name"] for p in card["parameters"]]


@pytest.mark.parametrize("where", ["parent", "absolute", "nested"])
def test_weights_named_outside_the_bundle_are_refused(bundle, tmp_path, where):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(bundle / WEIGHTS, elsewhere / WEIGHTS)  # same bytes: the sha256 in the card matches
    name = {"parent": f"../elsewhere/{WEIGHTS}", "absolute": str(elsewhere / WEIGHTS),
            "nested": f"sub/{WEIGHTS}"}[where]
    if where == "nested":
        (bundle / "sub").mkdir()
        shutil.copy(bundle / WEIGHTS, bundle / "sub" / WEIGHTS)
    (bundle / WEIGHTS).unlink()
    _edit(bundle, lambda c: c["weights"].__setitem__("file", name))
    with pytest.raises(ModelBundleError, match="plain file name"):
        load_bundle(bundle)


def test_weights_linked_from_outside_are_refused(bundle, tmp_path):
    outside = tmp_path / "outside.safetensors"
    shutil.move(bundle / WEIGHTS, outside)
    os.symlink(outside, bundle / WEIGHTS)
    with pytest.raises(ModelBundleError, match="outside the bundle"):
        load_bundle(bundle)


def _more_layers(card):
    layers = card["tissue"]["layers"]
    layers.append(copy.deepcopy(layers[-1]))  # 4 layers: 17 parameters for a 13-parameter network


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_more_layers, "17 parameters"),
        (lambda c: c["parameters"].pop(), "12 entries"),
        (lambda c: c.__setitem__("band_centers_nm", c["band_centers_nm"][:7]), "lists bands"),
        (lambda c: c["camera"].__setitem__("band_centers_nm", [500.0] * 9), "9 bands"),
        (lambda c: c["weights"].__setitem__("n_parameters", 12), "counts 12 weights"),
    ],
)
def test_card_that_does_not_match_the_network_is_refused(bundle, edit, words):
    _edit(bundle, edit)
    with pytest.raises(ModelBundleError) as exc:
        load_bundle(bundle)
    msg = str(exc.value)
    assert words in msg and "13 parameters" in msg and "does not match" in msg


def test_malformed_tissue_section_is_a_bundle_error(bundle):
    _edit(bundle, lambda c: c["tissue"].__setitem__("layers", "three"))
    with pytest.raises(ModelBundleError, match="tissue section"):
        load_bundle(bundle)


def test_cli_reports_the_mismatch_in_one_line(bundle, capsys):
    from tissue_inn.cli import main

    _edit(bundle, _more_layers)
    assert main(["info", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "17 parameters" in err and "Traceback" not in err


def test_update_card_is_atomic_and_leaves_no_temporaries(bundle):
    from tissue_inn.io.bundle import read_card, update_card

    update_card(bundle, {"note": "checked"})
    assert read_card(bundle)["note"] == "checked"
    assert sorted(p.name for p in bundle.iterdir()) == sorted([CARD, WEIGHTS])
    load_bundle(bundle)
