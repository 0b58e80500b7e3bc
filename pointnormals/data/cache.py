"""Small on-disk cache helpers: parameter keys and atomic ``.npz`` files.

>>> params_key(a=1, b="x") == params_key(b="x", a=1)
True
>>> len(params_key(a=1))
12
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_npz", "params_key", "save_npz"]


def params_key(**params: Any) -> str:
    """A short stable hash of keyword parameters (order independent)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` atomically (safe with concurrent loader workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, loaded eagerly."""
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files}
