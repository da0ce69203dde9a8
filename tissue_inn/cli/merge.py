"""``tissue-inn merge``: join the shards of one simulation into one dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tissue_inn.cli.common import Command

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", nargs="+", type=Path, help="shard files made with simulate --shard k/n")
    p.add_argument("-o", "--output", required=True, type=Path)
    p.add_argument("--force", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tissue_inn.atomic import check_not_inputs
    from tissue_inn.simulation.simulate import merge_shards

    check_not_inputs({"-o": args.output}, {f"the shard {p}": p for p in args.shards})
    out = merge_shards(args.shards, args.output, force=args.force)
    print(json.dumps({"output": str(out)}))
    return 0


COMMAND = Command("merge", "merge simulation shards into one dataset", add_arguments, run)
