"""Exactly O(3)-equivariant point-cloud normal estimation with tensor frames.

The one-call API, in Open3D's idiom (see :mod:`pointnormals.api`)::

    import pointnormals
    pointnormals.estimate_normals(pcd)  # an Open3D cloud: normals set in place
    normals = pointnormals.estimate_normals(points)  # (N, 3) array/tensor -> (N, 3)

Importing the package is light: nothing (not even torch) is loaded until an attribute
or submodule is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pointnormals.api import estimate_normals

__all__ = ["estimate_normals"]


def __getattr__(name: str) -> Any:
    if name == "estimate_normals":
        from pointnormals.api import estimate_normals

        return estimate_normals
    raise AttributeError(f"module 'pointnormals' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
