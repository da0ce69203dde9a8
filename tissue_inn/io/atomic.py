"""Atomic file writes (re-exported from :mod:`tissue_inn.atomic`, which every layer may use)."""

from tissue_inn.atomic import atomic_path, check_writable

__all__ = ["atomic_path", "check_writable"]
