"""Launch-to-first-paint of the desktop application, measured offscreen (issue 14, "speed as felt").

Starts ``tissue-inn gui`` (the shipped default model and sample image unless given) in a fresh Python
process several times and prints, per run, the seconds from process start to the first paint of the
main window and to the end of the background loading (model + image), then the median and spread and
the machine's load (``uptime``): absolute figures on a shared machine mean little without it.

    python scripts/first_paint.py [--repeats 5] [--model M] [IMAGE]
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", nargs="?", default=None)
    p.add_argument("--model", default=None)
    p.add_argument("--repeats", type=int, default=5)
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
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
