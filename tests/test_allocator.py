"""Freed memory kept for reuse (glibc), checked through page faults in fresh processes."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from pointnormals.allocator import ENV_VAR

glibc = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")

# a forward pass in miniature, ten times: large temporaries, some alive together; prints
# whether the settings took and the median page faults of the last six passes (a median:
# now and then small allocations between the large ones fragment the heap and one pass
# faults in a fresh 48 MB, measured in 2 of 8 processes)
PROBE = """
import resource, torch
from pointnormals.allocator import keep_freed_memory
kept = keep_freed_memory()
def call():
    a = torch.ones(12 * 2**20)  # 48 MB
    b = torch.ones(6 * 2**20)
    del a
    c = torch.ones(12 * 2**20)
    d = torch.ones(3 * 2**20)
    del b, c, d
for _ in range(4):
    call()
faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    call()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, keep_freed_memory(), sorted(faults)[len(faults) // 2])
"""
TOUCHED = (48 + 24 + 48 + 12) * 2**20 // 4096  # pages written by one pass


def probe(env_value: str | None) -> tuple[bool, bool, int]:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if env_value is not None:
        env[ENV_VAR] = env_value
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", out[1] == "True", int(out[2])


@pytest.mark.skipif(not glibc, reason="glibc only")
def test_kept_memory_is_reused_where_glibcs_defaults_fault_in_fresh_pages():
    kept, again, faults = probe(None)
    assert kept and again
    kept, again, default_faults = probe("0")  # opted out: glibc's defaults
    assert not kept and not again
    # with 4 kB pages (transparent huge pages off or on madvise, as here), measured: 0
    # kept, 0.73-0.91 * TOUCHED with the defaults (median pass of 6, 8 processes each);
    # huge pages would shrink both counts
    assert default_faults > 0 and faults <= 0.1 * default_faults, (faults, default_faults)
    assert faults < 0.1 * TOUCHED


def test_api_keeps_memory_for_the_model_on_cpu(monkeypatch):
    import torch

    from pointnormals import allocator, api

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    points = torch.randn(300, 3, dtype=torch.float64)
    api.estimate(points, method="pca", k=10)
    assert calls == []  # PCA: Open3D's own allocations, nothing to change
    api.estimate(points, model=api.load_model(None, "cpu"))
    assert calls == [1]
