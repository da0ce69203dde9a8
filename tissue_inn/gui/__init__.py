"""The desktop application: PySide6 + pyqtgraph widgets over :mod:`tissue_inn.workspace`.

The only package that imports Qt. Start it with ``tissue-inn gui [IMAGE] [--model M]``
(:func:`tissue_inn.gui.app.main`).
"""

from tissue_inn.gui._compat import protect_singletons

protect_singletons()  # PySide6 6.12.0 + CPython 3.11 reference defect; see _compat
