"""Launch-to-window time of ``tissue-inn gui`` (offscreen), without the setup step.

Runs the real entry point in fresh processes; ``QApplication.exec`` is replaced by a short event loop
that prints the time since the interpreter started and exits. Prints each run, the median and the load.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_launch.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import time
t0 = time.perf_counter()
import os, sys
from PySide6.QtWidgets import QApplication

def timed_exec(*_args):
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.005)
    print(f"{time.perf_counter() - t0:.3f}", flush=True)
    os._exit(0)

QApplication.exec = timed_exec
from tissue_inn.launcher import main
main(["gui"])
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    env.setdefault("TISSUE_INN_SETTINGS", os.path.join(tempfile.mkdtemp(), "bench_launch.ini"))  # not the user's
    times = []
    for i in range(args.runs):
        r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300)
        lines = [ln for ln in r.stdout.split() if ln.replace(".", "", 1).isdigit()]
        if not lines:
            print(f"run {i}: failed\n{r.stderr[-2000:]}", file=sys.stderr)
            return 1
        times.append(float(lines[-1]))
        print(f"run {i}: window shown after {times[-1]:.2f} s")
    print(f"median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
