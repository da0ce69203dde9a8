"""Clicking through a study: the images of a folder in order, recent files and folders, and the
white/dark references remembered per folder. Plain data in and out; the GUI stores the lists in its
settings.

>>> push_recent(["/a", "/b"], "/b", max_items=5)[:2] == [str(Path("/b").resolve()), "/a"]
True
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "push_recent",
    "folder_images",
    "step_image",
    "References",
    "references_for",
    "remember_references",
    "RECENT_MAX",
]

RECENT_MAX = 10
#: Files that sit next to images but are not images to browse (sidecars, references, exports).
_SKIP = re.compile(r"(white|dark|_maps|\.maps|_reference)", re.IGNORECASE)


def push_recent(recent: Sequence[str], path: str | os.PathLike, max_items: int = RECENT_MAX) -> list[str]:
    """The recent list with ``path`` first, no duplicates, at most ``max_items`` entries."""
    p = str(Path(path).resolve())
    out = [p] + [str(r) for r in recent if str(r) != p]
    return out[:max_items]


def _natural_key(p: Path) -> list[object]:
    """``img2`` before ``img10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def folder_images(folder: str | os.PathLike, suffixes: Iterable[str]) -> list[Path]:
    """The images of a folder (files with a reader's suffix, not references or exported maps), in
    natural order. ENVI data files are represented by their ``.hdr``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = {s.lower() for s in suffixes}
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in wanted and not _SKIP.search(p.stem) and not p.name.startswith(".")
    ]
    return sorted(files, key=_natural_key)


def step_image(current: str | os.PathLike, step: int, suffixes: Iterable[str]) -> Path | None:
    """The image ``step`` places after (negative: before) ``current`` in its folder, or None at either end."""
    current = Path(current)
    files = folder_images(current.parent, suffixes)
    resolved = [f.resolve() for f in files]
    try:
        i = resolved.index(current.resolve())
    except ValueError:
        return files[0] if files and step > 0 else None
    j = i + int(step)
    return files[j] if 0 <= j < len(files) else None


@dataclass(frozen=True)
class References:
    """White and dark reference files of a folder (either may be None)."""

    white: Path | None = None
    dark: Path | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in (("white", self.white), ("dark", self.dark)) if v is not None}

    @property
    def empty(self) -> bool:
        return self.white is None and self.dark is None


def references_for(memory: Mapping[str, Mapping[str, str]], image: str | os.PathLike) -> References:
    """The references remembered for the image's folder (files that no longer exist are dropped)."""
    entry = memory.get(str(Path(image).resolve().parent), {}) or {}
    paths = {k: Path(v) for k, v in entry.items() if k in ("white", "dark") and v and Path(v).is_file()}
    return References(paths.get("white"), paths.get("dark"))


def remember_references(
    memory: Mapping[str, Mapping[str, str]], image: str | os.PathLike, refs: References
) -> dict[str, dict[str, str]]:
    """A copy of ``memory`` with the image folder's references set (removed when ``refs`` is empty)."""
    out = {str(k): dict(v) for k, v in memory.items()}
    key = str(Path(image).resolve().parent)
    if refs.empty:
        out.pop(key, None)
    else:
        out[key] = refs.to_dict()
    return out
