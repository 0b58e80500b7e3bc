"""Keep freed memory in the process, so large temporaries are reused, not faulted in again.

glibc's ``malloc`` serves a large request (over 128 kB, a threshold that adapts up to
32 MB) with fresh pages from the kernel and gives them back on ``free``. A model call
allocates temporaries of up to ~50 MB (an edge MLP's output: 131072 edges × 92 channels
in float32), so on CPU every call asks the kernel for new pages, which it must map and
zero on first touch: in a profile of one model call on 8 patches, a fifth of the time
sits in the first pass over a fresh buffer (the copy of a linear layer's bias).

:func:`keep_freed_memory` sets two ``mallopt`` parameters for the rest of the process:
``M_MMAP_MAX = 0`` (large requests come from the heap like small ones) and a trim
threshold of 2 GB (freed heap memory below that is not returned to the kernel), so the
next call reuses the pages of the last. The process's resident memory then stays at its
peak between calls instead of falling back. :func:`pointnormals.api.estimate` calls it before
the model runs on CPU; set ``POINTNORMALS_KEEP_FREED_MEMORY=0`` to keep glibc's defaults.

Measured (2 cores, 100k-point demo scan at 0.25 % noise, ``predict_normals``, 3 × 4 runs
in fresh processes interleaved): 6.3-8.1 s with glibc's defaults, 5.3-6.7 s with
freed memory kept (about 15 % less); peak resident memory 870-876 MB → 962-1094 MB.

Not glibc (macOS, Windows, musl) or not Linux: nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["ENV_VAR", "keep_freed_memory"]

ENV_VAR = "POINTNORMALS_KEEP_FREED_MEMORY"
"""``0`` keeps glibc's allocator settings (read at every call until they are changed)."""

_M_TRIM_THRESHOLD = -1  # mallopt parameters, glibc's malloc.h
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # bytes; a size_t inside glibc, an int through mallopt

_lock = threading.Lock()
_kept = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse, once per process (thread-safe).

    Returns:
        Whether the settings are in force: ``False`` when :data:`ENV_VAR` is ``0``, off
        Linux, without glibc, or if ``mallopt`` refuses them.
    """
    global _kept
    with _lock:
        if _kept or os.environ.get(ENV_VAR, "1").strip() == "0":
            return _kept
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            return False
        if not hasattr(libc, "gnu_get_libc_version"):  # only glibc has it (musl has not)
            return False
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
        _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
        return _kept
