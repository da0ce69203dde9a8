"""Make docs/screenshot.png with the application itself (offscreen, ``QWidget.grab``).

Opens the main window on the sample image (or a given one) with the default model (or a given
bundle), clicks a pixel, computes a map overlay and draws two regions, then saves the window.

    python scripts/screenshot.py [--image IMG] [--model BUNDLE] [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import os
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default=None, help="image (default: resources/samples/colon_sample.h5)")
    p.add_argument("--model", default=None, help="bundle folder or shipped name (default: colon_default)")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshot.png"))
    p.add_argument("--pixel", type=int, nargs=2, default=None, metavar=("ROW", "COL"))
    p.add_argument("--map-draws", type=int, default=100, help="posterior draws per pixel for the map")
    p.add_argument("--size", default="1680x1000", help="window size WxH")
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication, QMessageBox

    from tissue_inn.gui.main_window import MainWindow
    from tissue_inn.workspace import Workspace

    image = Path(args.image) if args.image else REPO / "resources" / "samples" / "colon_sample.h5"
    if not image.is_file():
        raise SystemExit(f"error: image {image} not found; pass --image")
    app = QApplication.instance() or QApplication(["tissue-inn"])

    def record(parent, title, text, *rest, **kw):  # a modal dialog would block an offscreen run forever
        ERRORS.append(f"{title}: {text}")
        return QMessageBox.StandardButton.Ok

    QMessageBox.critical = record
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "screenshot.ini"), QSettings.Format.IniFormat)
    win = MainWindow(Workspace(n_draws_pixel=4096, n_draws_map=args.map_draws), settings=settings)
    w, h = (int(v) for v in args.size.lower().split("x"))
    win.resize(w, h)
    win.show()
    if not win.load_model(args.model) or not win.open_image(image):
        print(f"error: {ERRORS}", file=sys.stderr)
        return 2
    rows, cols = win.ws.shape
    # a pixel: given, or the valid pixel nearest the image centre
    if args.pixel:
        row, col = args.pixel
    else:
        import numpy as np

        rr, cc = np.nonzero(win.ws.valid)
        k = int(np.argmin((rr - rows * 0.45) ** 2 + (cc - cols * 0.4) ** 2))
        row, col = int(rr[k]), int(cc[k])
    # two regions to compare
    win.add_region("rect", {"x": cols * 0.08, "y": rows * 0.1, "w": cols * 0.2, "h": rows * 0.18})
    win.add_region("ellipse", {"x": cols * 0.62, "y": rows * 0.6, "w": cols * 0.25, "h": rows * 0.22})
    # the map (without the predictive residual: one forward solve per pixel is slow on a CPU)
    win.maps_panel.predictive.setChecked(False)
    t0 = time.monotonic()
    win.compute_maps("image")
    wait_for(app, lambda: win.ws.maps is not None, args.timeout, "the maps")
    print(f"maps: {rows}x{cols} px x {args.map_draws} draws in {time.monotonic() - t0:.1f} s")
    win.maps_panel.select("sao2", "median")
    win.maps_panel.opacity.setValue(55)
    shown = []
    win.predictiveShown.connect(shown.append)
    win.select_pixel(row, col)
    wait_for(app, lambda: win.ws.pixel_result is not None, args.timeout, "the pixel posterior")
    if getattr(win.ws.posterior, "has_forward_model", False):
        wait_for(app, lambda: bool(shown), args.timeout, "the predictive check")
    win._on_hover(row, col)
    wait_for(app, lambda: win.workers.n_running == 0, args.timeout, "the workers")
    for _ in range(30):
        app.processEvents()
        time.sleep(0.02)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not win.grab().save(str(out), "PNG"):
        raise SystemExit(f"error: cannot write {out}")
    print(f"wrote {out} (pixel row {row}, col {col})")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
