"""PyG is imported without ``torch._dynamo`` (:mod:`pointnormals.pyg`), and nothing
that needs ``torch._dynamo`` loses it.

Each check runs in a fresh interpreter: this process has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_prediction_never_loads_dynamo_nor_onnx():
    """Neither ``torch._dynamo`` (2.2 s) nor ``torch.onnx`` (0.3 s, which PyG's
    ``scatter(reduce="max")`` asks whether it is exporting) on the path of ``predict.py``."""
    out = _run(
        """
        import sys
        import torch
        from pointnormals import api
        model = api.load_model(device="cpu")
        normals = api.estimate(torch.randn(1500, 3, dtype=torch.float64), model=model)
        names = ("torch_geometric", "torch._dynamo", "torch.onnx")
        loaded = [name in sys.modules for name in names]
        print(*loaded, normals.shape)
        """
    )
    assert out == "True False False torch.Size([1500, 3])"


def test_dynamo_still_loads_on_demand():
    """``torch.compile`` works afterwards, and PyG's ``is_torch_instance`` (the one place
    that imports ``torch._dynamo`` eagerly) unwraps compiled models again."""
    out = _run(
        """
        import sys
        import torch
        import pointnormals.pyg as pyg
        import torch_geometric
        before = "torch._dynamo" in sys.modules
        compiled = torch.compile(pyg.MLP([3, 8, 3]))
        print(before, type(compiled).__name__, torch_geometric.is_torch_instance(compiled, pyg.MLP))
        """
    )
    assert out == "False OptimizedModule True"


def test_loaded_dynamo_is_left_alone():
    """Where ``torch._dynamo`` is loaded first (Lightning, in training), PyG imports as usual."""
    out = _run(
        """
        import torch._dynamo
        real = torch._dynamo
        import pointnormals.pyg
        import sys
        print(sys.modules["torch._dynamo"] is real, hasattr(torch._dynamo, "OptimizedModule"))
        """
    )
    assert out == "True True"


def test_placeholder_imports_the_real_module_when_read():
    """Should PyG read ``torch._dynamo`` while it imports, the placeholder hands over."""
    out = _run(
        """
        import sys
        import torch
        from pointnormals.pyg import _Deferred
        sys.modules.pop("torch._dynamo", None)
        placeholder = _Deferred("torch._dynamo")
        sys.modules["torch._dynamo"] = placeholder
        compiled = placeholder.OptimizedModule
        real = sys.modules["torch._dynamo"]
        print(compiled.__name__, real is not placeholder, real.OptimizedModule is compiled)
        """
    )
    assert out == "OptimizedModule True True"
