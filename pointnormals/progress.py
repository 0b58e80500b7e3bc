"""One progress display for a ``predict.py`` run: files, stages, patches, ETA.

A run goes through stages per file (reading, planning, predicting, orienting, writing,
rendering); :class:`RunProgress` shows them as one live display on stderr with a bar and
an ETA while patches are predicted, and an overall file counter for several inputs. It
is active only on an interactive terminal and never with ``--quiet``; otherwise every
call is a no-op, so pipes and logs get nothing but the result lines. ``rich`` is
imported only when the display is active (CLI start-up stays fast).

>>> with RunProgress(enabled=False) as progress:
...     progress("predicting", 3, 10)  # does nothing
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["RunProgress", "interactive"]


def interactive(quiet: bool = False) -> bool:
    """Whether a progress display belongs on stderr: a terminal, and not ``--quiet``."""
    return not quiet and sys.stderr.isatty()


class RunProgress:
    """A live display of the stage of the current file (and of the file count).

    Use as a context manager; call it as ``progress(stage, done, total)`` — the
    callback protocol of :func:`pointnormals.api.estimate` — with ``total == 0`` for a
    stage of unknown length (a spinner), ``done/total`` for counted work (bar + ETA).

    Args:
        enabled: show the display (see :func:`interactive`); ``False`` makes every
            call a no-op and imports nothing.
        files: number of files of the run; above 1 a file counter is shown too.
    """

    def __init__(self, enabled: bool, files: int = 1) -> None:
        self.enabled, self.files = enabled, files
        self._progress: Any = None
        self._stage: Any = None
        self._files: Any = None
        self._name = ""
        self._shown: tuple[str, int | None] = ("", None)

    def __enter__(self) -> RunProgress:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
            redirect_stdout=sys.stdout.isatty(),  # result lines above the bar
            redirect_stderr=True,
        )
        self._progress.start()
        if self.files > 1:
            self._files = self._progress.add_task("files", total=self.files)
        self._stage = self._progress.add_task("starting", total=None)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def file(self, index: int, name: str) -> None:
        """Start file number ``index`` (0-based) named ``name``."""
        self._name = name
        if self._files is not None:
            self._progress.update(self._files, completed=index, description=f"file {name}")

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        """Show ``stage`` of the current file; ``done/total`` for counted work."""
        if self._progress is None:
            return
        shown = (f"{stage} {self._name}".strip(), total or None)
        if shown != self._shown:  # a new stage: restart the bar and its ETA
            self._progress.reset(self._stage, total=shown[1], description=shown[0])
            self._shown = shown
        if total:
            self._progress.update(self._stage, completed=done)
