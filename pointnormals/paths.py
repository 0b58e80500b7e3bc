"""Inputs and outputs of a ``predict.py`` run: which files, where to, written atomically.

:func:`plan_jobs` expands the command line's inputs (files, directories — every point
file in them, not recursive, sorted — and quoted globs) into :class:`Job` s that name
each output; :func:`check_job` refuses an output that would be unsafe to write, and
:func:`atomic` writes a job's files beside their targets and renames them into place
only when all of them are complete, so an error never leaves a partial file.

>>> default_output(Path("scans/a.las")), default_output(Path("scans/b.xyz"))
(PosixPath('scans/a_normals.las'), PosixPath('scans/b_normals.ply'))
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "NORMAL_SUFFIXES",
    "Job",
    "atomic",
    "check_job",
    "default_output",
    "plan_jobs",
]

NORMAL_SUFFIXES = (".ply", ".pcd", ".las", ".laz")
"""Formats that store normals next to every other attribute of the input: a default
output keeps the input's format when it is one of them, else becomes ``.ply``."""


class UsageError(ValueError):
    """Inputs and options that do not fit together (``predict.py`` exit status 2)."""


@dataclass(frozen=True)
class Job:
    """One input file of a run, where its normals go, and its optional picture."""

    source: Path
    output: Path
    picture: Path | None = None


def default_output(path: Path, directory: Path | None = None) -> Path:
    """``scan.laz`` → ``scan_normals.laz``; formats without normals → ``.ply``."""
    suffix = path.suffix if path.suffix.lower() in NORMAL_SUFFIXES else ".ply"
    return (directory or path.parent) / f"{path.stem}_normals{suffix}"


def _expand(item: str) -> list[Path]:
    """A file as is; a directory or a glob: its point files, sorted (itself when none,
    so that reading it reports the problem)."""
    from pointnormals.cloudio import SUFFIXES

    path = Path(item)
    if path.is_dir():
        matches = sorted(path.iterdir())
    elif _is_glob(item):
        matches = sorted(Path(p) for p in glob.glob(item))
    else:
        return [path]
    return [p for p in matches if p.is_file() and p.suffix.lower() in SUFFIXES] or [path]


def plan_jobs(
    inputs: Sequence[str], output: str | None = None, render: str | None = None
) -> list[Job]:
    """Expand ``inputs`` and name every output (``UsageError`` when they do not fit).

    One input file: ``output`` is the file to write, or a directory to write it into.
    A directory, a glob or several inputs: ``output`` (and ``render``) must be
    directories (created when missing); by default every output goes beside its input.
    """
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and not _is_glob(inputs[0])
    sources = [p for item in inputs for p in _expand(item)]
    out = Path(output) if output else None
    pictures = Path(render) if render else None
    if single:
        source = sources[0]
        dst = out if out and not out.is_dir() else default_output(source, out)
        if pictures is not None and not pictures.is_dir():
            if pictures.suffix.lower() != ".png":
                raise UsageError(f"--render {render}: the picture must be a .png file")
            return [Job(source, dst, pictures)]
        return [Job(source, dst, pictures and pictures / f"{dst.stem}.png")]
    for name, path in (("-o", out), ("--render", pictures)):
        if path is not None and path.suffix and not path.is_dir():
            raise UsageError(f"{name} {path} names one file but several inputs are given")
    for path in (out, pictures):
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
    jobs = []
    for source in sources:
        dst = default_output(source, out)
        jobs.append(Job(source, dst, pictures and pictures / f"{dst.stem}.png"))
    return jobs


def _is_glob(item: str) -> bool:
    return not Path(item).exists() and glob.has_magic(item)


def check_job(job: Job, overwrite: bool, taken: set[Path] | None = None) -> None:
    """``ValueError`` unless ``job`` can write its files without harm.

    Refuses an output format that cannot hold the input's attributes and normals, an
    output equal to the input, an existing file without ``overwrite``, a missing or
    read-only directory and (with ``taken``, the outputs of earlier jobs of the run) two
    jobs writing one file.
    """
    from pointnormals.cloudio import check_writable

    check_writable(job.output, job.source.suffix)
    for dst in (job.output, job.picture):
        if dst is None:
            continue
        if dst.exists() and job.source.exists() and dst.resolve() == job.source.resolve():
            raise ValueError(f"{dst}: the output would overwrite the input")
        if taken is not None and dst.resolve() in taken:
            raise ValueError(f"{dst}: also the output of another input of this run")
        if dst.exists() and not overwrite:
            raise ValueError(f"{dst}: exists (pass --overwrite to replace it)")
        if not dst.parent.is_dir():
            raise ValueError(f"{dst.parent}: output directory does not exist")
        if not os.access(dst.parent, os.W_OK):
            raise ValueError(f"{dst.parent}: output directory is not writable")


@contextlib.contextmanager
def atomic(*targets: Path) -> Iterator[list[Path]]:
    """Temporary paths (same suffix, beside each target) renamed onto ``targets`` when
    the block completes; on any error they are removed and the targets stay untouched.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic(target) as (tmp,):
    ...     _ = tmp.write_text("complete")
    >>> target.read_text()
    'complete'
    """
    temps = [t.with_name(f".{t.stem}.partial-{os.getpid()}{t.suffix}") for t in targets]
    try:
        yield temps
        for tmp, dst in zip(temps, targets, strict=True):
            if tmp.exists():
                os.replace(tmp, dst)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
