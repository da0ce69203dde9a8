"""Make the README's screenshots with the application itself (offscreen, ``QWidget.grab``).

Three pictures, each of the real main window on the sample image (or a given one) with the default
model (or a given bundle):

- ``screenshot.png`` — the pixel view: a clicked pixel's posteriors with their values as text
  ("StO2 38 % [30–46 %]"), an StO2 map over the image, two labelled regions;
- ``screenshot_pinned.png`` — a pinned comparison: two pinned pixels and the clicked one overlaid,
  plus a second model (``--compare``, default ``colon_inn``) answering the same click;
- ``screenshot_folder.png`` — the folder browser on a study folder of three images (copies of the
  sample at three brightness levels), showing the second image with the previous/next controls;
- ``screenshot_flagged.png`` — only when the model's card holds a calibrated misfit gate: a pixel the
  model does not explain, with its banner. The sample holds only colon spectra the model explains, so
  a copy of it gets a patch of skin (simulated with the shipped skin tissue, SNR 30 noise;
  :mod:`tissue_inn.inference.misfit_cases`) around ``--flagged ROW COL``; its ground truth is dropped.

PNGs are stored with a 256-colour palette when Pillow is there (each ≤ ~300 kB).

    python scripts/screenshot.py [--image IMG] [--model BUNDLE] [--compare BUNDLE] [--out-dir docs]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
ERRORS: list[str] = []


def wait_for(app, condition, timeout_s: float, what: str) -> None:
    t0 = time.monotonic()
    while not condition():
        if ERRORS:
            raise SystemExit(f"error: {ERRORS[0]}")
        if time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"error: timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)


def settle(app, n: int = 30) -> None:
    for _ in range(n):
        app.processEvents()
        time.sleep(0.02)


def save(win, app, path: Path) -> None:
    settle(app)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not win.grab().save(str(path), "PNG"):
        raise SystemExit(f"error: cannot write {path}")
    try:  # a 256-colour palette: a third of the size, no visible change on a UI picture
        from PIL import Image

        with Image.open(path) as img:
            small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(path, optimize=True)
    except ImportError:
        pass
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


def flagged_image(image: Path, row: int, col: int, half: int = 16, seed: int = 5) -> Path:
    """A copy of ``image`` with a disc of skin spectra (radius ``half``) at (row, col), and no ground truth."""
    import h5py
    import numpy as np

    from tissue_inn.config import load_camera, load_tissue
    from tissue_inn.inference.misfit_cases import simulate_case

    target = Path(tempfile.mkdtemp()) / f"{image.stem}_skin_patch.h5"
    shutil.copyfile(image, target)
    with h5py.File(target, "r+") as f:
        ds = f["reflectance"]
        cube = ds[...]
        h, w = cube.shape[:2]
        rr, cc = np.mgrid[0:h, 0:w]
        disc = (rr - row) ** 2 + (cc - col) ** 2 <= half ** 2
        n = int(disc.sum())
        _, noisy = simulate_case(load_tissue("colon"), load_camera("spectrocam8"), "skin", 48, seed=seed,
                                 snr=30.0)
        pick = np.random.default_rng(seed).integers(0, noisy.shape[0], n)
        cube[disc] = noisy[pick].astype(cube.dtype)
        ds[...] = cube
        if "ground_truth" in f:  # the sample's truth does not hold inside the patch
            del f["ground_truth"]
    return target


def click(app, win, row: int, col: int, timeout: float) -> None:
    win.select_pixel(row, col)
    wait_for(app, lambda: win.ws.pixel_result is not None and win.ws.pixel_result.request.row == row
             and win.ws.pixel_result.request.col == col, timeout, f"pixel ({row}, {col})")
    wait_for(app, lambda: win.workers.n_running == 0, timeout, "the workers")
    win._on_hover(row, col)


def study_folder(image: Path) -> list[Path]:
    """Three images of one 'study': the sample at three brightness levels."""
    import h5py

    folder = Path(tempfile.mkdtemp()) / "study_2026-11-29"
    folder.mkdir()
    out = []
    for i, gain in enumerate((0.92, 1.0, 1.06), start=1):
        target = folder / f"patient07_t{i}.h5"
        shutil.copyfile(image, target)
        with h5py.File(target, "r+") as f:
            name = "reflectance" if "reflectance" in f else next(k for k in f if getattr(f[k], "ndim", 0) == 3)
            f[name][...] = f[name][...] * gain
        out.append(target)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=None, help="image (default: resources/samples/colon_sample.h5)")
    p.add_argument("--model", default=None, help="bundle folder or shipped name (default: colon_default)")
    p.add_argument("--compare", default="colon_inn", help="second model for the pinned comparison ('' = none)")
    p.add_argument("--out-dir", default=str(REPO / "docs"))
    p.add_argument("--pixel", type=int, nargs=2, default=(170, 80), metavar=("ROW", "COL"),
                   help="the clicked pixel (default: in the sample's ischemic patch)")
    p.add_argument("--pins", type=int, nargs=4, default=(120, 100, 60, 200), metavar=("R1", "C1", "R2", "C2"))
    p.add_argument("--map-draws", type=int, default=64, help="posterior draws per pixel for an exact map")
    p.add_argument("--map-kind", choices=("auto", "exact", "amortised"), default="auto",
                   help="auto: the instant (amortised) map when the bundle has one, else exact")
    p.add_argument("--flagged", type=int, nargs=2, default=(30, 230), metavar=("ROW", "COL"),
                   help="a pixel the model should not explain (only with a misfit gate in the card)")
    p.add_argument("--size", default="1600x960", help="window size WxH")
    p.add_argument("--timeout", type=float, default=1800.0)
    args = p.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication, QMessageBox

    from tissue_inn.gui.main_window import MainWindow
    from tissue_inn.workspace import Workspace

    image = Path(args.image) if args.image else REPO / "resources" / "samples" / "colon_sample.h5"
    if not image.is_file():
        raise SystemExit(f"error: image {image} not found; pass --image")
    out_dir = Path(args.out_dir)
    app = QApplication.instance() or QApplication(["tissue-inn"])

    def record(parent, title, text, *rest, **kw):  # a modal dialog would block an offscreen run forever
        ERRORS.append(f"{title}: {text}")
        return QMessageBox.StandardButton.Ok

    QMessageBox.critical = record
    QMessageBox.question = lambda *a, **k: QMessageBox.StandardButton.Yes
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "screenshot.ini"), QSettings.Format.IniFormat)
    win = MainWindow(Workspace(n_draws_pixel=4096, n_draws_map=args.map_draws), settings=settings)
    w, h = (int(v) for v in args.size.lower().split("x"))
    win.resize(w, h)
    win.show()
    if not win.load_model(args.model) or not win.open_image(image):
        print(f"error: {ERRORS}", file=sys.stderr)
        return 2
    rows, cols = win.ws.shape

    # 1. the pixel view: regions, an StO2 map, a clicked pixel with its values as text
    win.add_region("rect", {"x": cols * 0.08, "y": rows * 0.1, "w": cols * 0.2, "h": rows * 0.18})
    win.add_region("ellipse", {"x": cols * 0.16, "y": rows * 0.56, "w": cols * 0.2, "h": rows * 0.18})
    win.rename_region("R1", "control")
    win.rename_region("R2", "ischemic")  # inside the sample's ischemic patch
    win.maps_panel.predictive.setChecked(False)  # one forward solve per pixel is slow on a CPU
    kind = args.map_kind if args.map_kind != "auto" else ("amortised" if win.ws.model.has_amortised else "exact")
    win.maps_panel.kind_choice.setCurrentIndex(win.maps_panel.kind_choice.findData(kind))
    t0 = time.monotonic()
    win.compute_maps("image")
    wait_for(app, lambda: win.ws.maps is not None and not win.workers.n_running, args.timeout, "the maps")
    print(f"maps ({kind}): {rows}x{cols} px in {time.monotonic() - t0:.1f} s")
    win.maps_panel.select("sao2", "median")
    win.maps_panel.opacity.setValue(55)
    click(app, win, *args.pixel, args.timeout)
    save(win, app, out_dir / "screenshot.png")

    # 2. a pinned comparison (and a second model on the same click)
    win.maps_panel.btn_hide.setChecked(True)
    r1, c1, r2, c2 = args.pins
    for r, c in ((r1, c1), (r2, c2)):
        click(app, win, r, c, args.timeout)
        win.pin_pixel()
    if args.compare:
        win.compare_with_model(args.compare)
    click(app, win, *args.pixel, args.timeout)
    save(win, app, out_dir / "screenshot_pinned.png")
    win.clear_pins()
    if args.compare:
        win.compare_with_model(None)

    # 2b. a pixel the model does not explain (needs a calibrated gate in the card)
    if win.ws.card.get("misfit_gate"):
        win.ws.maps_saved = True  # nothing to ask about here
        win.open_image(flagged_image(image, *args.flagged))
        click(app, win, *args.flagged, args.timeout)
        if win.ws.pixel_result.explained is not False:
            print(f"warning: pixel {tuple(args.flagged)} is explained; pick another with --flagged", file=sys.stderr)
        win.statusBar().showMessage("A patch of skin (not covered by the colon model) pasted into the sample: flagged, histograms faded", 60000)
        save(win, app, out_dir / "screenshot_flagged.png")
    else:
        print("no misfit gate in the card: screenshot_flagged.png not made")

    # 3. the folder browser
    win.ws.maps_saved = True  # nothing to ask about here
    study = study_folder(image)
    win.open_image(study[0])
    win.next_image()
    win.tabs.setCurrentIndex(1)
    win.regions_panel.draws.setValue(16)
    win.compute_regions()
    wait_for(app, lambda: not win.workers.n_running and win.ws.region_stats, args.timeout, "the regions")
    win._show_regions()
    win.file_menu_hint = None
    win.statusBar().showMessage("Page Down / ▶: next image in the folder · Page Up / ◀: previous", 60000)
    save(win, app, out_dir / "screenshot_folder.png")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
