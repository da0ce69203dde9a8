"""Work-arounds for known defects of the Qt binding.

PySide6 6.12.0 on CPython 3.11: every ``Signal.emit()`` called from Python drops one reference to
``True`` that it never took (measured: 200 emits → ``sys.getrefcount(True)`` 200 lower; 6.11.3 is
clean). pyqtgraph emits signals from Python on every pan, zoom and repaint, so after a few thousand
emits the interpreter aborts with "bool_dealloc: deallocating True or False" (or ``none_dealloc``).
CPython ≥ 3.12 makes these singletons immortal, so the defect is harmless there. On 3.11 we give
``True``, ``False`` and ``None`` the same protection: a reference count so large that it cannot reach
zero. The singletons are statically allocated and never freed, so nothing else changes.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["protect_singletons", "BAD_PYSIDE_VERSIONS"]

#: PySide6 releases with the emit() reference defect (checked: 6.11.3 is clean).
BAD_PYSIDE_VERSIONS = ("6.12.0",)
_EXTRA_REFS = 1 << 40
_done = False


def protect_singletons(force: bool = False) -> bool:
    """Make ``True``/``False``/``None`` effectively immortal on CPython < 3.12 with an affected PySide6.

    Returns:
        True when the protection was applied (now or before).
    """
    global _done
    if _done:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if not force:
        try:
            import PySide6
        except ImportError:
            return False
        if PySide6.__version__ not in BAD_PYSIDE_VERSIONS:
            return False
    for obj in (True, False, None):
        ctypes.c_ssize_t.from_address(id(obj)).value += _EXTRA_REFS
    _done = True
    return True
