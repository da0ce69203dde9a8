"""``tissue-inn gui``: open the desktop application (the GUI and Qt are imported only when it runs).

This is the one place the CLI reaches up into :mod:`tissue_inn.gui`; the import sits inside :func:`run`
(named as the single exception in the import contract, and checked by a test that ``import tissue_inn.cli``
loads neither the GUI nor Qt).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tissue_inn.cli.common import Command

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", nargs="?", help="multispectral image (default, or 'sample': the shipped sample image)")
    p.add_argument("--model", "-m", default=None, help="model bundle folder or shipped name (default: colon_default)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def run(args: argparse.Namespace) -> int:
    from tissue_inn.gui.app import main as gui_main

    image = args.image
    if image == "sample" and not Path(image).exists():  # the shipped sample, which the app opens by default
        image = None
    argv = [] if image is None else [str(image)]
    if args.model is not None:
        argv += ["--model", str(args.model)]
    if args.device is not None:
        argv += ["--device", str(args.device)]
    return gui_main(argv)


COMMAND = Command("gui", "open the desktop application (click a pixel, see its posterior)", add_arguments, run)
