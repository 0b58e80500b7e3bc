"""The work of one ``predict.py`` run: every input file read, estimated, written.

:func:`run` loads the model once, then takes each :class:`~pointnormals.paths.Job` through
reading (:mod:`pointnormals.cloudio`), estimation and orientation
(:func:`pointnormals.api.estimate`), writing every input attribute back with the normals,
and the optional picture (:mod:`pointnormals.render`) — all of a file's outputs renamed
into place together at the end. A failing file is reported on one line and the run goes
on; the exit status says whether any failed. Heavy modules are imported on first use.
"""

from __future__ import annotations

import os
import sys
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pointnormals import paths
from pointnormals.paths import UsageError
from pointnormals.progress import RunProgress, interactive

__all__ = ["PROG", "UsageError", "describe", "predict_options", "run"]

PROG = "predict.py"
Say = Callable[[str], None]
FILE_ERRORS = (ValueError, OSError, RuntimeError, MemoryError)
"""What one bad file, or a file too big for the device, raises; the run goes on."""


def predict_options(args: Namespace) -> dict[str, Any]:
    """The options of :func:`~pointnormals.inference.predict_normals` from the flags."""
    return {
        "patch_points": args.patch_points,
        "batch_points": args.batch_points,
        "scale": args.scale,
        "overlap": args.overlap,
        "precision": args.precision,
        "refine": args.refine,
        "fit_neighbours": args.fit_k,
    }


def run(args: Namespace, say: Say) -> int:
    """Process every input of ``args``; 0 when all were written, else 1.

    Raises:
        UsageError: inputs and options that do not fit (exit status 2).
        ValueError: the checkpoint or the device is unusable (nothing can be done).
    """
    if not args.inputs:
        raise UsageError(f"the input point cloud is required (see {PROG} --help)")
    jobs = paths.plan_jobs(args.inputs, args.output, args.render)
    if args.show and len(jobs) > 1:
        raise UsageError(f"--show takes one input, got {len(jobs)} files")
    if args.show and sys.platform.startswith("linux") and not _has_display():
        raise ValueError("--show needs a display (DISPLAY unset); use --render PNG instead")
    from pointnormals import api

    failed, taken, model = 0, set(), None
    with RunProgress(interactive(args.quiet), files=len(jobs)) as progress:
        for index, job in enumerate(jobs):
            progress.file(index, job.source.name)
            try:
                paths.check_job(job, args.overwrite, taken)
                taken.update(p.resolve() for p in (job.output, job.picture) if p)
            except ValueError as err:
                failed += _report(err, job, args)
                continue
            if args.method == "model" and model is None:  # once for all files
                progress("loading the model")
                model = api.load_model(args.checkpoint, args.device, args.precision)
            try:
                _process(job, args, model, progress, say)
            except FILE_ERRORS as err:
                failed += _report(err, job, args)
    if len(jobs) > 1:
        say(f"{len(jobs) - failed} of {len(jobs)} files written")
    return 1 if failed else 0


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _report(err: BaseException, job: paths.Job, args: Namespace) -> int:
    """Print the one-line error of a failed file (re-raised with ``--debug``); 1."""
    if args.debug:
        raise err
    print(f"{PROG}: error: {describe(err, job.source)}", file=sys.stderr)
    return 1


def _process(job: paths.Job, args: Namespace, model: Any, progress: RunProgress, say: Say) -> None:
    """Read, estimate, orient and write one file (and its picture)."""
    import torch

    from pointnormals import api, cloudio

    progress("reading")
    cloud = cloudio.read_cloud(job.source)
    mode, viewpoint = args.orient
    if mode == "auto":
        viewpoint = cloud.viewpoint
    start = time.perf_counter()
    normals = api.estimate(
        torch.from_numpy(cloud.points),
        method=args.method,
        model=model,
        k=args.k,
        orient=mode,
        viewpoint=viewpoint,
        progress=progress,
        **predict_options(args),
    ).numpy()
    seconds = time.perf_counter() - start
    progress("writing")
    note = ""
    with paths.atomic(job.output, *([job.picture] if job.picture else [])) as temps:
        cloudio.write_cloud(temps[0], cloud, normals)
        if job.picture:
            progress("rendering")
            note = _picture(temps[1], cloud, normals, args)
    say(f"{job.source}: {len(normals):,} points -> {job.output} ({args.method}, {seconds:.1f} s)")
    if job.picture:
        say(f"{job.source}: picture -> {job.picture}{note}")
    if args.show:
        from pointnormals.render import show_normals

        show_normals(cloud.points, normals)


def _picture(path: Path, cloud: Any, normals: Any, args: Namespace) -> str:
    """Render the normals; with normals in the file, their angle error as a second panel
    (unoriented unless ``--orient`` was asked for). Returns a note for the result line."""
    from pointnormals import render

    if cloud.normals is None:
        render.render_normals(path, cloud.points, normals, views=args.views)
        return ""
    from pointnormals.geometry import angle_deg

    oriented = args.orient[0] != "none"
    errors = angle_deg(normals.astype("float64"), cloud.normals.astype("float64"), oriented)
    kind = "oriented" if oriented else "unoriented"
    error = f"{kind} angle error vs the file's normals, mean {errors.mean():.1f}°"
    panels = [("predicted normals", normals, None), (error, normals, errors)]
    render.render_panels(path, cloud.points, panels, views=args.views)
    return f" ({error})"


def describe(err: BaseException, source: Path | None = None) -> str:
    """One line for ``err``, starting with ``source`` unless it names it already."""
    text = str(err).strip()
    text = text.splitlines()[0] if text else type(err).__name__
    if isinstance(err, (RuntimeError, MemoryError)):
        hint = " (try a smaller --batch-points)" if "memory" in text.lower() else ""
        text = f"{type(err).__name__}: {text}{hint}"
    return text if source is None or str(source) in text else f"{source}: {text}"
