#!/usr/bin/env python
"""Download and unpack ModelNet40 into ``data/`` (needs internet access).

Two archives exist:

* ``--layout off`` (default): the official Princeton mesh archive ``ModelNet40.zip``
  (about 2 GB) that unpacks to ``ModelNet40/<class>/{train,test}/*.off``;
* ``--layout resampled``: PointNet++'s ``modelnet40_normal_resampled.zip`` (about
  1.6 GB, 10 000 points with normals per shape). Its Stanford host is often down: pass
  a mirror with ``--url``.

The download goes to ``<dest>/<archive>.part`` and resumes from there (HTTP Range) when
interrupted; re-run the same command. The SHA-256 of the archive is always printed and
checked when ``--sha256`` is given. Failures print one line and exit with status 1.

Example::

    python scripts/download_modelnet40.py --layout resampled --url https://mirror/x.zip
    python train.py data=modelnet40 paths.modelnet40=data/modelnet40_normal_resampled
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

URLS = {
    "off": "http://modelnet.cs.princeton.edu/ModelNet40.zip",
    "resampled": "https://shapenet.cs.stanford.edu/media/modelnet40_normal_resampled.zip",
}
FOLDERS = {"off": "ModelNet40", "resampled": "modelnet40_normal_resampled"}
CHUNK = 1 << 20


class DownloadError(Exception):
    """A failure reported to the user as one line."""


def fetch(url: str, part: Path, timeout: float) -> None:
    """Download ``url`` into ``part``, resuming from its current size when possible."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "pointnormals-download/1.0"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the .part is complete
            return
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    with response:
        if have and response.status != 206:  # the server ignored Range: start over
            have = 0
        size = response.headers.get("Content-Length")
        total = have + int(size) if size is not None else None
        columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
        with part.open("ab" if have else "wb") as out, Progress(*columns) as progress:
            task = progress.add_task(part.name, total=total, completed=have)
            while chunk := response.read(CHUNK):
                out.write(chunk)
                progress.advance(task, len(chunk))
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"{url}: connection closed early; re-run to resume")


def sha256sum(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def run(args: argparse.Namespace) -> Path:
    """Download, verify and unpack; returns the unpacked dataset directory."""
    dest = Path(args.dest)
    target = dest / FOLDERS[args.layout]
    if target.is_dir() and any(target.iterdir()) and not args.force:
        print(f"{target} already exists (use --force to download again)")
        return target
    url = args.url or URLS[args.layout]
    archive = dest / (Path(urllib.parse.urlparse(url).path).name or f"{target.name}.zip")
    part = archive.with_name(archive.name + ".part")
    dest.mkdir(parents=True, exist_ok=True)
    if not archive.exists():
        print(f"downloading {url} -> {archive}")
        fetch(url, part, args.timeout)
        part.replace(archive)
    digest = sha256sum(archive)
    print(f"sha256 {digest}  {archive.name}")
    if args.sha256 and digest != args.sha256.lower():
        archive.unlink()
        raise DownloadError(f"{archive}: sha256 mismatch (expected {args.sha256}), file removed")
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    except zipfile.BadZipFile:
        raise DownloadError(f"{archive}: not a valid zip archive") from None
    if not args.keep_archive:
        archive.unlink()
    if not target.is_dir():
        found = ", ".join(sorted(p.name for p in dest.iterdir() if p.is_dir()))
        raise DownloadError(f"unpacked into {dest} but found no {target.name}/ (found: {found})")
    print(f"ready: {target}  (train with data=modelnet40 paths.modelnet40={target})")
    return target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", choices=sorted(URLS), default="off", help="which archive")
    parser.add_argument("--url", help="download from this URL instead (e.g. a mirror)")
    parser.add_argument("--sha256", help="expected SHA-256 of the archive (checked if given)")
    parser.add_argument("--dest", default="data", help="directory to unpack into")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout (s)")
    parser.add_argument("--keep-archive", action="store_true", help="keep the .zip")
    parser.add_argument("--force", action="store_true", help="download even if present")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 failure, 130 interrupted)."""
    args = parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:
        print("\ninterrupted: re-run the same command to resume", file=sys.stderr)
        return 130
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except urllib.error.URLError as err:
        print(f"error: {args.url or URLS[args.layout]}: {err.reason}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:  # timeouts, disk full, malformed URL ...
        print(
            f"error: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
