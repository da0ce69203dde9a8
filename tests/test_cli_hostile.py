"""A hostile corpus for the CLI (issue 10): inputs as outputs, unwritable targets, half-written output sets,
empty shards, a test set from another prior, percent-scaled cubes, pipes. Each case: a clear one-line
error (exit 2) or the documented fix, and nothing lost or left half written."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from tissue_inn.cli import main

BANDS = [470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0]

pytestmark = pytest.mark.usefixtures("one_thread")


def _cube(path, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    data = (np.linspace(0.05, 0.5, 8) * rng.uniform(0.7, 1.3, size=(3, 4, 1)) * scale).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("reflectance", data=data).attrs["wavelengths_nm"] = np.asarray(BANDS)
    return path


def _infer(image, bundle, out, *extra):
    return ["-q", "infer", str(image), "--model", str(bundle), "--draws", "8", "--predictive", "none",
            "--stats", "median,iqr", "-o", str(out), *extra]


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture()
def work(tmp_path):
    (tmp_path / "sub").mkdir()
    cube = _cube(tmp_path / "cube.h5")
    return tmp_path, cube, cube.read_bytes()


@pytest.mark.parametrize("flag", ["-o", "--tiff", "--csv"])
@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_an_input_is_never_an_output_even_with_force(work, tiny_bundle, capsys, flag, spelling):
    tmp, cube, before = work
    target = {"same": cube, "dotdot": tmp / "sub" / ".." / "cube.h5", "symlink": tmp / "link.h5",
              "hardlink": tmp / "hard.h5"}[spelling]
    if spelling == "symlink":
        os.symlink(cube, target)
    if spelling == "hardlink":
        os.link(cube, target)
    out = tmp / "maps.h5" if flag != "-o" else target
    extra = [flag, str(target)] if flag != "-o" else []
    assert main(_infer(cube, tiny_bundle, out, *extra, "--force")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "never overwritten" in err and len(err.strip().splitlines()) == 1
    assert cube.read_bytes() == before and not (tmp / "maps.h5").exists()


def test_white_reference_is_not_an_output_either(work, tiny_bundle, capsys):
    tmp, cube, _ = work
    white = _cube(tmp / "white.h5")
    assert main(_infer(cube, tiny_bundle, tmp / "m.h5", "--white", str(white), "--tiff", str(white), "--force")) == 2
    assert "--white" in capsys.readouterr().err


def test_unwritable_outputs_fail_before_the_inference(work, tiny_bundle, capsys, monkeypatch):
    import tissue_inn.inference.image as image

    tmp, cube, _ = work
    ran = []
    real = image.infer_image
    monkeypatch.setattr(image, "infer_image", lambda *a, **k: (ran.append(1), (yield from real(*a, **k)))[1])
    (tmp / "afile").write_text("x")
    for extra in (["--tiff", str(tmp / "afile" / "maps.tif")], ["--png", str(tmp / "afile" / "png")],
                  ["--csv", str(tmp / "afile" / "s.csv")]):
        assert main(_infer(cube, tiny_bundle, tmp / "out" / "maps.h5", *extra)) == 2
        err = capsys.readouterr().err
        assert "afile" in err and ("not a folder" in err or "Not a directory" in err)
    assert not ran and not (tmp / "out" / "maps.h5").exists()


def test_all_outputs_or_none(work, tiny_bundle, capsys, monkeypatch):
    """A writer failing after the maps were computed leaves no output at all (and no temporaries)."""
    import tissue_inn.io.maps as maps

    tmp, cube, _ = work
    out = tmp / "out"

    def broken_png(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(maps, "write_map_png", broken_png)
    rc = main(_infer(cube, tiny_bundle, out / "maps.h5", "--tiff", str(out / "maps.tif"), "--png", str(out / "png"),
                     "--csv", str(out / "s.csv")))
    assert rc == 2 and "No space left" in capsys.readouterr().err
    assert _files(out) == []


def test_existing_outputs_survive_a_failed_rewrite(work, tiny_bundle, monkeypatch):
    import tissue_inn.io.maps as maps

    tmp, cube, _ = work
    out = tmp / "out"
    assert main(_infer(cube, tiny_bundle, out / "maps.h5", "--tiff", str(out / "maps.tif"))) == 0
    before = {p: (out / p).read_bytes() for p in _files(out)}

    def broken_tiff(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(maps, "write_maps_tiff", broken_tiff)
    assert main(_infer(cube, tiny_bundle, out / "maps.h5", "--tiff", str(out / "maps.tif"), "--force",
                       "--seed", "3")) == 2
    assert {p: (out / p).read_bytes() for p in _files(out)} == before


def test_kill_9_litter_of_a_map_write_is_cleaned_by_the_next_run(work, tiny_bundle):
    tmp, cube, _ = work
    out = tmp / "out"
    out.mkdir()
    proc = __import__("subprocess").Popen(["sleep", "0"])
    proc.wait()  # a pid that is certainly dead
    from tissue_inn.atomic import _HOST

    litter = out / f".maps.h5.{_HOST}-{proc.pid}.k9x2.part"
    litter.write_bytes(b"\0" * 1024)
    assert main(_infer(cube, tiny_bundle, out / "maps.h5")) == 0
    assert _files(out) == ["maps.h5"]


def test_percent_cube_needs_scale_and_scale_fixes_it(work, tiny_bundle, capsys):
    tmp, _, _ = work
    pct = _cube(tmp / "pct.h5", scale=100.0)
    assert main(_infer(pct, tiny_bundle, tmp / "a.h5")) == 2
    err = capsys.readouterr().err
    assert "--scale 0.01" in err and not (tmp / "a.h5").exists()
    assert main(_infer(pct, tiny_bundle, tmp / "b.h5", "--scale", "0.01")) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pixels_estimated"] == 12
    with h5py.File(tmp / "b.h5") as f:
        assert f.attrs["scale"] == 0.01
    assert main(_infer(pct, tiny_bundle, tmp / "c.h5", "--scale", "-1")) == 2
    assert "--scale" in capsys.readouterr().err
    assert main(_infer(pct, tiny_bundle, tmp / "c.h5", "--scale", "0.01", "--white", str(pct))) == 2
    assert "either --scale or --white" in capsys.readouterr().err


def test_named_pipe_is_refused_not_waited_on(work, tiny_bundle, capsys):
    tmp, _, _ = work
    fifo = tmp / "pipe.h5"
    os.mkfifo(fifo)
    assert main(_infer(fifo, tiny_bundle, tmp / "m.h5")) == 2
    assert "regular file" in capsys.readouterr().err


def test_empty_shard_is_a_clear_error_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "s0.h5"
    assert main(["-q", "simulate", "-n", "600", "--shard", "0/2", "--n-quad", "4", "--nodes-per-band", "1",
                 "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "shard 0/2 gets no samples" in err and "at most 1 shard" in err
    assert list(tmp_path.iterdir()) == []


def test_merge_refuses_to_write_over_a_shard(tmp_path, capsys):
    shard = tmp_path / "s.h5"
    shard.write_bytes(b"shard bytes")
    assert main(["merge", str(shard), "-o", str(tmp_path / "." / "s.h5"), "--force"]) == 2
    assert "never overwritten" in capsys.readouterr().err and shard.read_bytes() == b"shard bytes"


def test_train_refuses_an_output_folder_holding_its_data(tmp_path, fake_dataset, capsys):
    folder = tmp_path / "models" / "m"
    folder.mkdir(parents=True)
    data = folder / "train.h5"
    shutil.copy(fake_dataset, data)
    assert main(["train", "--data", str(data), "-o", str(folder), "--force", "--epochs", "1"]) == 2
    assert "would delete it" in capsys.readouterr().err and data.exists()


def test_evaluate_warns_when_the_test_prior_differs(tiny_bundle, fake_dataset, tmp_path, capsys):
    other = tmp_path / "other_prior.h5"
    shutil.copy(fake_dataset, other)
    with h5py.File(other, "r+") as f:
        tissue = json.loads(f.attrs["tissue"])
        tissue["layers"][0]["vhb"]["high"] = 0.3
        f.attrs["tissue"] = json.dumps(tissue)
    argv = ["-q", "evaluate", str(tiny_bundle), "--test", str(other), "--n-test", "20", "--draws", "16",
            "--ppc-cases", "0", "--snr", "20", "-o", str(tmp_path / "rep")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "another prior" in err and "vhb_1" in err and "high 0.3" in err
    assert main(argv[:4] + [str(fake_dataset)] + argv[5:-1] + [str(tmp_path / "rep2")]) == 0
    assert "another prior" not in capsys.readouterr().err


def test_an_image_without_usable_pixels_is_refused_not_written(work, tiny_bundle, capsys):
    tmp, _, _ = work
    empty = tmp / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_dataset("reflectance", data=np.full((3, 4, 8), np.nan, np.float32)).attrs["wavelengths_nm"] = BANDS
    assert main(_infer(empty, tiny_bundle, tmp / "m.h5", "--snr", "20")) == 2
    err = capsys.readouterr().err
    assert "no usable pixel among 12" in err and not (tmp / "m.h5").exists()
    cube = _cube(tmp / "partly.h5")
    with h5py.File(cube, "r+") as f:
        data = f["reflectance"][...]
        data[0, :2] = np.nan
        f["reflectance"][...] = data
    assert main(_infer(cube, tiny_bundle, tmp / "m.h5", "--snr", "20", "--roi", "0,0,2,1")) == 2
    assert "--roi 0,0,2,1" in capsys.readouterr().err and not (tmp / "m.h5").exists()


@pytest.mark.parametrize(("kind", "words"), [("lying_header", "header claims"), ("raw_counts", "--white and --dark")])
def test_bad_cubes_end_in_one_line_with_the_fix(work, tiny_bundle, capsys, kind, words):
    tmp, _, _ = work
    path = tmp / f"{kind}.h5"
    with h5py.File(path, "w") as f:
        if kind == "lying_header":  # a few KB on disk claiming 298 GiB
            d = f.create_dataset("reflectance", shape=(100000, 100000, 8), dtype="f4", chunks=(64, 64, 8))
        else:
            d = f.create_dataset("reflectance", data=np.random.default_rng(0).integers(200, 4000, (6, 6, 8)).astype("u2"))
        d.attrs["wavelengths_nm"] = BANDS
    assert main(_infer(path, tiny_bundle, tmp / "m.h5", "--snr", "20")) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in errors[0]
    assert not (tmp / "m.h5").exists()
