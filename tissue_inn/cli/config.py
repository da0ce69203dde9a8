"""``tissue-inn config [NAME] [-o FILE]``: the shipped training settings (``configs/*.toml``) as templates.

Without NAME it lists them; with NAME it prints one (or writes it to ``-o FILE``), so that the README's
``train --config configs/NAME.toml`` commands work after ``pip install``, where no checkout exists.
``train --config NAME`` also finds a shipped one by name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tissue_inn
from tissue_inn.cli.common import Command
from tissue_inn.errors import ConfigError

__all__ = ["COMMAND", "configs_dir", "shipped_config"]


def configs_dir() -> Path | None:
    """``tissue_inn/configs`` in a wheel, ``configs/`` in a checkout (None if neither exists)."""
    root = Path(tissue_inn.__file__).resolve().parent
    for candidate in (root / "configs", root.parent / "configs"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    return None


def _names() -> list[str]:
    folder = configs_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder else []


def shipped_config(name: str) -> Path:
    """The shipped config called ``name`` (with or without ``.toml``, or ``configs/NAME.toml``)."""
    stem = Path(name).name.removesuffix(".toml")
    folder = configs_dir()
    if folder is not None and (folder / f"{stem}.toml").is_file():
        return folder / f"{stem}.toml"
    raise ConfigError(f"no shipped config {name!r}; choose one of {_names()} (tissue-inn config lists them)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, help="config name, e.g. train_cinn (omit to list them)")
    p.add_argument("-o", "--output", type=Path, default=None, help="write the template to this file")
    p.add_argument("--force", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        folder = configs_dir()
        for n in _names():
            print(f"{n}\t{folder / (n + '.toml')}")
        return 0
    text = shipped_config(args.name).read_text()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    from tissue_inn.atomic import atomic_path

    with atomic_path(args.output, force=args.force) as tmp:
        tmp.write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


COMMAND = Command("config", "list or print the shipped training settings (templates for train --config)",
                  add_arguments, run)
