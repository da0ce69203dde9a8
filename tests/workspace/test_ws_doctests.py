"""The examples in the workspace modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["browse", "display", "export", "generation", "images", "labels", "new_model", "pixel", "regions", "state",
           "trust"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"tissue_inn.workspace.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0 or name in ("images",), f"{name} has no examples"
