"""The README's code examples run as they are."""

from __future__ import annotations

import sys
import types

from conftest import readme_example


def test_tensorial_gcn_example_runs_and_is_equivariant(capsys, monkeypatch):
    # PyG inspects the layer's module through sys.modules: give the example a real one
    module = types.ModuleType("readme_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(readme_example("tensorial-gcn"), "README.md", "exec"), module.__dict__)
    error = float(capsys.readouterr().out.split("max error:")[1])
    assert error < 1e-4
    assert issubclass(module.TFGCNConv, module.MessagePassing)
