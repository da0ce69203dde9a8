"""Clicking through a folder: image order, steps, recents, references remembered per folder."""

from __future__ import annotations

from pathlib import Path

from tissue_inn.workspace import push_recent
from tissue_inn.workspace.browse import (
    References,
    folder_images,
    references_for,
    remember_references,
    step_image,
)

SUFFIXES = (".h5", ".npy", ".tif")


def test_push_recent_dedupes_and_limits(tmp_path):
    paths = [str(tmp_path / f"f{i}.h5") for i in range(12)]
    recent: list[str] = []
    for p in paths:
        recent = push_recent(recent, p, max_items=5)
    recent = push_recent(recent, paths[9], max_items=5)
    assert recent[0].endswith("f9.h5")
    assert len(recent) == 5 and len(set(recent)) == 5


def _touch(folder: Path, *names: str) -> None:
    for n in names:
        (folder / n).write_bytes(b"x")


def test_folder_images_natural_order_without_references_and_exports(tmp_path):
    _touch(tmp_path, "img10.h5", "img2.h5", "img1.npy", "white.h5", "dark_ref.npy", "img1_maps.h5", "notes.txt")
    (tmp_path / "sub.h5").mkdir()
    names = [p.name for p in folder_images(tmp_path, SUFFIXES)]
    assert names == ["img1.npy", "img2.h5", "img10.h5"]


def test_step_image_walks_and_stops_at_the_ends(tmp_path):
    _touch(tmp_path, "a.h5", "b.h5", "c.h5")
    assert step_image(tmp_path / "a.h5", 1, SUFFIXES).name == "b.h5"
    assert step_image(tmp_path / "b.h5", 1, SUFFIXES).name == "c.h5"
    assert step_image(tmp_path / "c.h5", 1, SUFFIXES) is None
    assert step_image(tmp_path / "b.h5", -1, SUFFIXES).name == "a.h5"
    assert step_image(tmp_path / "a.h5", -1, SUFFIXES) is None


def test_references_are_remembered_per_folder(tmp_path):
    study, other = tmp_path / "study", tmp_path / "other"
    study.mkdir()
    other.mkdir()
    _touch(study, "img.h5", "white.h5", "dark.h5")
    memory = remember_references({}, study / "img.h5", References(study / "white.h5", study / "dark.h5"))
    refs = references_for(memory, study / "next.h5")
    assert refs.white == study / "white.h5" and refs.dark == study / "dark.h5"
    assert references_for(memory, other / "x.h5").empty
    (study / "dark.h5").unlink()  # a reference that disappeared is not offered
    assert references_for(memory, study / "img.h5") == References(study / "white.h5", None)
    assert remember_references(memory, study / "img.h5", References()) == {}
