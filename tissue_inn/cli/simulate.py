"""``tissue-inn simulate``: draw tissue parameters from the prior, solve the forward model, write HDF5."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tissue_inn.cli.common import Command, drive

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tissue", default="colon", help="shipped tissue name or .toml path (default: colon)")
    p.add_argument("--camera", default="spectrocam8", help="shipped camera name or .toml path")
    p.add_argument("-n", type=int, required=True, help="number of samples (of the whole dataset, all shards)")
    p.add_argument("--seed", type=int, default=0, help="random seed (recorded in the file)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output HDF5 file")
    p.add_argument("--shard", default=None, help="k/n: make only shard k of n (disjoint, reproducible)")
    p.add_argument("--n-quad", type=int, default=16, help="adding-doubling quadrature points (accuracy)")
    p.add_argument("--nodes-per-band", type=int, default=4, help="wavelengths per band (Gauss-Hermite nodes)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--force", action="store_true", help="replace an existing output")


def run(args: argparse.Namespace) -> int:
    from tissue_inn.config import load_camera, load_tissue
    from tissue_inn.optics.forward import SolverSettings
    from tissue_inn.simulation.simulate import parse_shard, simulate_dataset

    tissue = load_tissue(args.tissue)
    camera = load_camera(args.camera)
    settings = SolverSettings(n_quad=args.n_quad, nodes_per_band=args.nodes_per_band)
    shard = parse_shard(args.shard)
    res = drive(
        simulate_dataset(tissue, camera, args.n, args.seed, args.output, shard=shard, settings=settings,
                         force=args.force, device=args.device),
        "simulate", args.quiet, unit="spectra",
    )
    print(json.dumps({"output": str(res.path), "samples": res.n_samples, "seconds": round(res.seconds, 1),
                      "resumed_from_blocks": res.resumed_from}))
    return 0


COMMAND = Command("simulate", "simulate a training/test dataset from the tissue prior", add_arguments, run)
