"""``tissue-inn infer`` on a study (issue 13 item 4): a folder/glob/list of images → one map file per image,
resumable per image, a summary table, images spread over processes or torchrun ranks."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest

from tissue_inn.cli import main
from tissue_inn.cli.infer_study import SUMMARY_NAME, collect_images, map_paths
from tissue_inn.io.maps import read_maps_hdf5

BANDS = [470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0]

pytestmark = pytest.mark.usefixtures("one_thread")


def _cube(path, h, w, seed, nan_pixels=0):
    rng = np.random.default_rng(seed)
    data = (np.linspace(0.05, 0.5, 8) * rng.uniform(0.7, 1.3, size=(h, w, 1))).astype(np.float32)
    data.reshape(-1, 8)[:nan_pixels] = np.nan
    with h5py.File(path, "w") as f:
        f.create_dataset("reflectance", data=data).attrs["wavelengths_nm"] = np.asarray(BANDS)
    return path


@pytest.fixture()
def study(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    _cube(folder / "a.h5", 2, 3, 0)
    _cube(folder / "b.h5", 3, 3, 1, nan_pixels=2)
    _cube(folder / "c.h5", 2, 2, 2)
    (folder / "notes.txt").write_text("not an image")
    return folder


def _args(images, bundle, out, *extra):
    return ["-q", "infer", *map(str, images), "--model", str(bundle), "--draws", "8", "--predictive", "none",
            "--stats", "median,iqr", "-o", str(out), *extra]


def _summary(out):
    return list(csv.DictReader(open(out / SUMMARY_NAME)))


def test_folder_study_writes_one_map_per_image_and_a_summary(study, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(_args([study], tiny_bundle, out)) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 3 and res["done"] == 3 and res["analysed_now"] == 3 and res["failed"] == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.maps.h5", "b.maps.h5", "c.maps.h5", SUMMARY_NAME]
    rows = _summary(out)
    assert [r["image"].rsplit("/", 1)[-1] for r in rows] == ["a.h5", "b.h5", "c.h5"]
    assert [r["pixels"] for r in rows] == ["6", "9", "4"] and rows[1]["usable_pixels"] == "7"
    assert rows[1]["masked_pixels"] == "2" and all(r["status"] == "done" for r in rows)
    assert all(float(r["snr"]) > 0 and "nominal" in r["snr_source"] for r in rows)  # too small to estimate
    maps, attrs, mask = read_maps_hdf5(out / "b.maps.h5")
    expected = np.quantile(maps["sao2/median"][mask], 0.5)
    assert float(rows[1]["sao2_median_median"]) == pytest.approx(expected)
    assert attrs["n_draws"] == 8 and attrs["source_path"].endswith("b.h5")


def test_rerun_skips_done_images_and_redoes_only_what_changed(study, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(_args([study], tiny_bundle, out)) == 0
    capsys.readouterr()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.maps.h5")}
    assert main(_args([study], tiny_bundle, out)) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["analysed_now"] == 0 and res["done"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.maps.h5")} == stamps
    assert all(r["status"].startswith("skipped") for r in _summary(out))
    _cube(study / "c.h5", 2, 2, 9)  # new bytes: its map is out of date, replaced only with --force
    _cube(study / "d.h5", 1, 2, 3)  # a new image joins
    assert main(_args([study], tiny_bundle, out)) == 2
    assert "c.maps.h5 exists but was made from another image" in capsys.readouterr().err
    assert (out / "d.maps.h5").exists() and (out / "c.maps.h5").stat().st_mtime_ns == stamps["c.maps.h5"]
    assert main(_args([study], tiny_bundle, out, "--force")) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["analysed_now"] == 1 and res["images"] == 4  # --force redoes c only; done images are kept
    assert (out / "a.maps.h5").stat().st_mtime_ns == stamps["a.maps.h5"]


def test_other_settings_need_force(study, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(_args([study], tiny_bundle, out)) == 0
    capsys.readouterr()
    assert main(_args([study], tiny_bundle, out, "--seed", "5")) == 2
    err = capsys.readouterr().err
    assert "3 of 3 images failed" in err and "--force" in err
    assert main(_args([study], tiny_bundle, out, "--seed", "5", "--force")) == 0
    assert read_maps_hdf5(out / "a.maps.h5")[1]["seed"] == 5


def test_glob_and_list_select_images_and_a_bad_image_does_not_stop_the_study(study, tiny_bundle, tmp_path, capsys):
    (study / "broken.h5").write_bytes(b"not hdf5 at all")
    out = tmp_path / "maps"
    assert main(_args([str(study / "[ab]*.h5")], tiny_bundle, out)) == 2
    err = capsys.readouterr().err
    assert "1 of 3 images failed" in err and "broken.h5" in err
    rows = _summary(out)
    assert [r["status"] for r in rows] == ["done", "done", "failed"] and rows[2]["error"]
    assert not (out / "broken.maps.h5").exists()
    out2 = tmp_path / "two"
    assert main(_args([study / "a.h5", study / "c.h5"], tiny_bundle, out2)) == 0
    assert sorted(p.name for p in out2.glob("*.maps.h5")) == ["a.maps.h5", "c.maps.h5"]


def test_study_options_are_checked(study, tiny_bundle, tmp_path, capsys):
    assert main(_args([study], tiny_bundle, tmp_path / "m", "--tiff", str(tmp_path / "x.tif"))) == 2
    assert "--tiff is for one image" in capsys.readouterr().err
    assert main(_args([str(tmp_path / "nothing*.h5")], tiny_bundle, tmp_path / "m")) == 2
    assert "no file matches" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(_args([study], tiny_bundle, tmp_path / "afile")) == 2
    assert "output folder" in capsys.readouterr().err
    assert main(_args([study / "a.h5"], tiny_bundle, tmp_path / "m.h5", "--workers", "2")) == 2
    assert "--workers" in capsys.readouterr().err


def test_outputs_inside_the_input_folder_are_not_taken_as_images(study, tiny_bundle, capsys):
    out = study / "maps"
    assert main(_args([study], tiny_bundle, out)) == 0
    assert main(_args([str(study / "**" / "*.h5")], tiny_bundle, out)) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] == 3


def test_same_stem_in_two_folders_gets_two_map_files(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b = _cube(tmp_path / "x" / "img.h5", 1, 1, 0), _cube(tmp_path / "y" / "img.h5", 1, 1, 1)
    images = collect_images([a, b, a])
    paths = map_paths(images, tmp_path / "out")
    assert len(images) == 2 and len(set(paths)) == 2 and all(p.name.startswith("img_") for p in paths)


def test_torchrun_rank_takes_every_nth_image(study, tiny_bundle, tmp_path, capsys, monkeypatch):
    out = tmp_path / "maps"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(_args([study], tiny_bundle, out)) == 0
    assert sorted(p.name for p in out.glob("*.maps.h5")) == ["b.maps.h5"]
    assert [r["status"] for r in _summary(out)] == ["pending", "done", "pending"]
    monkeypatch.setenv("RANK", "0")
    assert main(_args([study], tiny_bundle, out)) == 0
    assert [r["status"] for r in _summary(out)] == ["done", "done", "done"]


def test_workers_pool_orchestration(study, tiny_bundle, tmp_path, capsys, monkeypatch):
    """The --workers path with threads standing in for processes (fast); the real processes: slow test below."""
    from concurrent.futures import ThreadPoolExecutor

    import tissue_inn.cli.infer_study as infer_study

    used = []
    monkeypatch.setattr(infer_study, "make_pool", lambda w, t, d: used.append((w, t)) or ThreadPoolExecutor(w))
    out = tmp_path / "maps"
    assert main(_args([study], tiny_bundle, out, "--workers", "2", "--threads", "1")) == 0
    res = json.loads(capsys.readouterr().out)
    assert used == [(2, 1)] and res["analysed_now"] == 3 and len(list(out.glob("*.maps.h5"))) == 3
    assert [r["status"] for r in _summary(out)] == ["done", "done", "done"]


@pytest.mark.slow
def test_workers_spread_images_over_processes(study, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(_args([study], tiny_bundle, out, "--workers", "2", "--threads", "1")) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["analysed_now"] == 3 and len(list(out.glob("*.maps.h5"))) == 3
    serial = tmp_path / "serial"
    assert main(_args([study], tiny_bundle, serial)) == 0
    for name in ("a", "b", "c"):  # same seed, same maps, whichever process made them
        m1, _, _ = read_maps_hdf5(out / f"{name}.maps.h5")
        m2, _, _ = read_maps_hdf5(serial / f"{name}.maps.h5")
        np.testing.assert_array_equal(m1["sao2/median"], m2["sao2/median"])


def test_processes_spread_over_gpus():
    from tissue_inn.cli.infer_study import spread_device

    assert [spread_device("auto", 2, worker_index=k) for k in range(3)] == ["cuda:0", "cuda:1", "cuda:0"]
    assert spread_device("cuda", 8, local_rank="5") == "cuda:5" and spread_device("cuda:3", 8, local_rank="5") == "cuda:3"
    assert spread_device("auto", 0, worker_index=1) == "auto"
