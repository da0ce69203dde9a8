"""Launch time of the desktop application as felt (issue 14, "speed as felt"), offscreen.

Starts the real entry point (``tissue_inn.launcher``, i.e. ``tissue-inn gui``; the shipped default model
and sample image unless given) in a fresh Python process ``--runs`` times and prints, per run, the
seconds from process start (taken in this process, so the interpreter's start-up counts) to

- **first paint**: the main window's first paint event (the window is drawn before the model, torch and
  the image are read), and
- **loaded**: the end of the background loading (model, then image: ``MainWindow.loadingEnded``),

then their median and spread. With ``--clicks N`` (default 8) it then opens one window in this process
and times N clicks from the click to its histograms on screen (posterior draws in the worker and the
drawing). Ends with the machine's load (``uptime``): absolute figures on a shared machine mean little
without it. The child creates the ``QApplication`` itself (to watch its paint events) before calling the
launcher; the application reuses it.

    python benchmarks/bench_launch.py [--runs 5] [--clicks 8] [--model M] [IMAGE]
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
from tissue_inn.launcher import main
main(["gui", *sys.argv[1:]])
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
    import numpy as np
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


def _spread(vals: list[float], digits: int = 2) -> str:
    return (f"median {statistics.median(vals):.{digits}f} s, min {min(vals):.{digits}f}, "
            f"max {max(vals):.{digits}f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", nargs="?", default=None, help="image (default: the shipped sample)")
    p.add_argument("--model", default=None, help="bundle folder or shipped name (default: colon_default)")
    p.add_argument("--runs", "--repeats", type=int, default=5, help="launches to time")
    p.add_argument("--clicks", type=int, default=8, help="then time this many clicks (click → histograms; 0: none)")
    a = p.parse_args(argv)
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    env["TISSUE_INN_SETTINGS"] = str(Path(tempfile.mkdtemp()) / "bench_launch.ini")  # not the user's settings
    args = ([a.image] if a.image else []) + (["--model", a.model] if a.model else [])
    print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    runs = [one_run(args, env) for _ in range(a.runs)]
    for i, r in enumerate(runs):
        print(f"run {i + 1}: first paint {r['paint_s']:.2f} s, model + image loaded {r['loaded_s']:.2f} s (ok={r['ok']})")
    for key, what in (("paint_s", "first paint"), ("loaded_s", "loaded")):
        print(f"{what}: {_spread([r[key] for r in runs])} over {len(runs)} launches")
    if a.clicks:
        lat = click_latency(a.image, a.model, a.clicks)
        print(f"click → histograms: {_spread(lat, 3)} over {len(lat)} clicks ({' '.join(f'{t:.3f}' for t in lat)})")
    print("uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
          f"({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
