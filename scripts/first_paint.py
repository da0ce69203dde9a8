"""Launch-to-first-paint of the desktop application, measured offscreen (issue 14, "speed as felt").

Starts ``tissue-inn gui`` (the shipped default model and sample image unless given) in a fresh Python
process several times and prints, per run, the seconds from process start to the first paint of the
main window and to the end of the background loading (model + image), then the median and spread and
the machine's load (``uptime``): absolute figures on a shared machine mean little without it. With
``--clicks N`` it then clicks N pixels in one window and prints the seconds from each click to its
histograms being drawn (posterior draws in the worker + drawing).

    python scripts/first_paint.py [--repeats 5] [--clicks 8] [--model M] [IMAGE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication
app = QApplication(["tissue-inn"])
marks = {}
class FirstPaint(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and "paint" not in marks and type(obj).__name__ == "MainWindow":
            marks["paint"] = time.time()
            obj.loadingEnded.connect(lambda ok: (marks.update(loaded=time.time(), ok=ok), app.quit()))
        return False
flt = FirstPaint()
app.installEventFilter(flt)
from tissue_inn.gui.app import main
main(sys.argv[1:])
print("MARKS " + json.dumps(marks))
"""


def one_run(args: list[str], env: dict[str, str]) -> dict[str, float]:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, timeout=600)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("MARKS ")), None)
    if line is None:
        raise SystemExit(f"error: the application did not report (exit {out.returncode}): {out.stderr[-800:]}")
    marks = json.loads(line[6:])
    return {"paint_s": marks["paint"] - t0, "loaded_s": marks.get("loaded", float("nan")) - t0, "ok": marks.get("ok")}


def click_latency(image: str | None, model: str | None, n: int) -> list[float]:
    """Seconds from a click to its histograms on screen, for ``n`` pixels (in this process)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from tissue_inn.gui.app import default_sample_image
    from tissue_inn.gui.main_window import MainWindow
    from tissue_inn.workspace import Workspace

    app = QApplication.instance() or QApplication(["tissue-inn"])
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "clicks.ini"), QSettings.Format.IniFormat)
    win = MainWindow(Workspace(), settings=settings)
    win.resize(1400, 900)
    win.show()
    if not win.load_model(model) or not win.open_image(image or default_sample_image()):
        raise SystemExit("error: cannot load the model or the image")
    shown: list[float] = []
    win.pixelShown.connect(lambda _: shown.append(time.perf_counter()))
    import numpy as np

    rows, cols = np.nonzero(win.ws.valid)
    pick = np.random.default_rng(0).choice(rows.size, size=n, replace=False)
    out = []
    for k in pick:
        before = len(shown)
        t0 = time.perf_counter()
        win.select_pixel(int(rows[k]), int(cols[k]))
        while len(shown) == before:
            app.processEvents()
            time.sleep(0.001)
        out.append(shown[-1] - t0)
        while win.workers.n_running:
            app.processEvents()
            time.sleep(0.005)
    win.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", nargs="?", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clicks", type=int, default=0, help="then time this many clicks (click → histograms)")
    a = p.parse_args(argv)
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    env["TISSUE_INN_SETTINGS"] = str(Path(tempfile.mkdtemp()) / "first_paint.ini")
    args = ([a.image] if a.image else []) + (["--model", a.model] if a.model else [])
    runs = [one_run(args, env) for _ in range(a.repeats)]
    for i, r in enumerate(runs):
        print(f"run {i + 1}: first paint {r['paint_s']:.2f} s, model + image loaded {r['loaded_s']:.2f} s (ok={r['ok']})")
    for key, what in (("paint_s", "first paint"), ("loaded_s", "loaded")):
        vals = [r[key] for r in runs]
        print(f"{what}: median {statistics.median(vals):.2f} s, min {min(vals):.2f}, max {max(vals):.2f} "
              f"over {len(vals)} launches")
    if a.clicks:
        lat = click_latency(a.image, a.model, a.clicks)
        print(f"click → histograms: median {statistics.median(lat):.3f} s, min {min(lat):.3f}, max {max(lat):.3f} "
              f"over {len(lat)} clicks ({' '.join(f'{t:.3f}' for t in lat)})")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
