"""``tissue-inn gui [IMAGE] [--model M]``: start the desktop application."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main", "build_parser", "default_sample_image"]


def default_sample_image() -> Path | None:
    """The shipped sample image (resources/samples/colon_sample.h5), if present."""
    from tissue_inn.config import resources_dir

    p = resources_dir() / "samples" / "colon_sample.h5"
    return p if p.is_file() else None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tissue-inn gui", description="Click a pixel, see its posterior.")
    p.add_argument("image", nargs="?", help="multispectral image (default: the shipped sample image)")
    p.add_argument("--model", "-m", default=None, help="model bundle folder or shipped name (default: colon_default)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the application; returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if (
        not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and sys.platform.startswith("linux")
        and not os.environ.get("QT_QPA_PLATFORM")
    ):
        print(
            "error: no display found (DISPLAY unset); run on a desktop, under Xvfb, or set QT_QPA_PLATFORM=offscreen",
            file=sys.stderr,
        )
        return 2
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from tissue_inn.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(["tissue-inn"])
    app.setApplicationName("tissue_inn")
    app.setOrganizationName("tissue_inn")
    ini = os.environ.get("TISSUE_INN_SETTINGS")  # an INI file instead of the user's settings (tests, kiosks)
    settings = QSettings(ini, QSettings.Format.IniFormat) if ini else None
    window = MainWindow(settings=settings)
    window.show()
    app.processEvents()  # the first paint comes before the model, torch and the image are read
    window.load_in_background(args.model, args.image or default_sample_image(), device=args.device)
    return int(app.exec())
