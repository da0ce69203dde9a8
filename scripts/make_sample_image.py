"""Regenerate the shipped sample measurement ``resources/samples/colon_sample.h5``.

Usage:
    python scripts/make_sample_image.py [--size 256] [--seed 0] [--snr 30] [--grid-step 16] [-o PATH] [--force]

See :mod:`tissue_inn.simulation.sample_image` for what is simulated and how (grid + interpolation).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from tissue_inn.config import resources_dir
from tissue_inn.simulation.sample_image import make_sample_image, write_sample_image

__all__: list[str] = []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr", type=float, default=30.0)
    p.add_argument("--grid-step", type=int, default=16)
    p.add_argument("-o", "--output", type=Path, default=resources_dir() / "samples" / "colon_sample.h5")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    sample = make_sample_image(args.size, args.seed, args.snr, grid_step=args.grid_step)
    out = write_sample_image(sample, args.output, force=args.force)
    os.chmod(out, 0o644)  # a shipped resource: world-readable (atomic writes create 0600 temp files)
    info = {k: v for k, v in sample.attrs.items() if k not in ("tissue", "camera", "solver", "notes")}
    info.update(output=str(out), bytes=out.stat().st_size, seconds=round(time.monotonic() - t0, 1))
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
