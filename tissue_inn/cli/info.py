"""``tissue-inn info``: print a model bundle's card."""

from __future__ import annotations

import argparse
import json
import sys

from tissue_inn.cli.common import Command

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None, help="bundle folder or shipped model name (default model)")
    p.add_argument("--json", action="store_true", help="print the raw card JSON")


def run(args: argparse.Namespace) -> int:
    from tissue_inn.io.bundle import format_card, load_bundle

    _, card = load_bundle(args.model)
    if args.json:
        json.dump(card, sys.stdout, indent=2)
        print()
    else:
        print(format_card(card))
    return 0


COMMAND = Command("info", "print a model bundle's card", add_arguments, run)
