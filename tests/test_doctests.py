"""Every example in a docstring of the package (``>>>`` lines) runs and prints what it shows.

One test per module that has examples; the GUI (Qt) is left to its own tests.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tissue_inn"
SKIP_PREFIXES = ("tissue_inn.gui",)


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        if not name.startswith(SKIP_PREFIXES):
            names.append(name)
    return names


MODULES = _modules_with_examples()


def test_the_package_has_examples() -> None:
    # the registry, the estimator and the network show their API by example; losing them is a regression
    for name in ("tissue_inn.inn.registry", "tissue_inn.estimators.posterior_estimator", "tissue_inn.inn.network"):
        assert name in MODULES


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, module_name) if t.examples]
    assert tests, f"{module_name} contains '>>>' but no example was found"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {module_name} failed (see output)"
