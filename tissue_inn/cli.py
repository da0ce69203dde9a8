"""``tissue-inn``: the command-line interface (a thin layer over the core).

Progress goes to stderr, results to stdout or files. A bad input ends with one line
``error: ...`` naming the problem and exit status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from tissue_inn import __version__
from tissue_inn.errors import TissueInnError
from tissue_inn.progress import Progress

__all__ = ["main", "build_parser"]


def _drive(gen: Generator[Progress, None, Any], desc: str, quiet: bool = False, unit: str = "it") -> Any:
    """Run a progress generator with a tqdm bar on stderr; return its result."""
    from tqdm import tqdm

    bar = None
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if quiet:
                continue
            if bar is None:
                bar = tqdm(total=p.total or None, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                           initial=p.done)
            bar.n = p.done
            if p.total and bar.total != p.total:
                bar.total = p.total
            if p.message:
                bar.set_postfix_str(p.message, refresh=False)
            bar.refresh()
            if p.extra.get("log_line"):
                bar.write(p.extra["log_line"], file=sys.stderr)
    except KeyboardInterrupt:
        gen.close()
        raise
    finally:
        if bar is not None:
            bar.close()


# ----------------------------------------------------------------------------------------- simulate
def _cmd_simulate(args: argparse.Namespace) -> int:
    from tissue_inn.config import load_camera, load_tissue
    from tissue_inn.optics.forward import SolverSettings
    from tissue_inn.simulation.simulate import parse_shard, simulate_dataset

    tissue = load_tissue(args.tissue)
    camera = load_camera(args.camera)
    settings = SolverSettings(n_quad=args.n_quad, nodes_per_band=args.nodes_per_band)
    shard = parse_shard(args.shard)
    res = _drive(
        simulate_dataset(tissue, camera, args.n, args.seed, args.output, shard=shard, settings=settings,
                         force=args.force, device=args.device),
        "simulate", args.quiet, unit="spectra",
    )
    print(json.dumps({"output": str(res.path), "samples": res.n_samples, "seconds": round(res.seconds, 1),
                      "resumed_from_blocks": res.resumed_from}))
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from tissue_inn.simulation.simulate import merge_shards

    out = merge_shards(args.shards, args.output, force=args.force)
    print(json.dumps({"output": str(out)}))
    return 0


# ----------------------------------------------------------------------------------------- parser
#: Modules that register further commands (train, info, evaluate, baseline, infer).
EXTENSION_MODULES = ("tissue_inn.cli_commands", "tissue_inn.cli_infer", "tissue_inn.cli_evaluate")
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], str]] = {}


def _register(name: str, help_text: str, module_func: str):
    def deco(add_args: Callable[[argparse.ArgumentParser], None]):
        COMMANDS[name] = (help_text, add_args, module_func)
        return add_args

    return deco


@_register("simulate", "simulate a training/test dataset from the tissue prior", "_cmd_simulate")
def _args_simulate(p: argparse.ArgumentParser) -> None:
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


@_register("merge", "merge simulation shards into one dataset", "_cmd_merge")
def _args_merge(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", nargs="+", type=Path, help="shard files made with simulate --shard k/n")
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument("--force", action="store_true")


def _load_extensions() -> None:
    """Commands defined in other modules register themselves here (train, info, evaluate, infer, gui)."""
    import importlib

    for mod in EXTENSION_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_extensions()
    parser = argparse.ArgumentParser(
        prog="tissue-inn",
        description="Posterior estimation of tissue parameters from multispectral images with invertible "
        "neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"tissue-inn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_args, func_name) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(_func_name=func_name)
    return parser


def _resolve_func(name: str) -> Callable[[argparse.Namespace], int]:
    if name in globals():
        return globals()[name]
    import importlib

    for mod in EXTENSION_MODULES:
        try:
            ext = importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        if hasattr(ext, name):
            return getattr(ext, name)
    raise TissueInnError(f"command implementation {name} not found")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _resolve_func(args._func_name)(args)
    except TissueInnError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; partial work is kept where the command can resume it", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tissue-inn info | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        if args.debug:
            raise
        print(f"error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from tissue_inn.cli import main as _main  # the registered module, not this __main__ copy

    sys.exit(_main())
