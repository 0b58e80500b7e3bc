"""The speed benchmark: rows side by side, a user's own scan, and no Open3D."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from pointnormals.demo import demo_scan

SCRIPT = REPO / "scripts" / "bench_predict.py"


def _run(*args: str, env_extra: dict | None = None) -> str:
    cmd = [sys.executable, str(SCRIPT), "--threads", "1", "--repeats", "1", *args]
    env = os.environ | {"OMP_NUM_THREADS": "1"} | (env_extra or {})
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _rows(stdout: str) -> dict[str, list[str]]:
    """Method name -> the columns after it."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith(("Open3D PCA", "TF-PointNet++")):
            name, rest = line[:28].strip(), line[28:].split()
            rows[name] = rest
    return rows


@pytest.mark.slow
def test_own_scan_with_normals_is_scored_against_them(tmp_path):
    """A text cloud with normals: errors against the file's normals, the model ahead of
    PCA on this noisy scan, times as ratios to PCA (1.00 for PCA itself)."""
    points, normals = demo_scan(6000, 0.004)
    scan = tmp_path / "scan.xyzn"
    np.savetxt(scan, np.hstack([points, normals]))
    rows = _rows(_run("--scan", str(scan)))
    assert set(rows) == {
        "Open3D PCA k=30 (cpu)",
        "TF-PointNet++ (cpu)",
        "TF-PointNet++, no fit (cpu)",
    }
    assert rows["Open3D PCA k=30 (cpu)"][-1] == "1.00"
    assert float(rows["TF-PointNet++ (cpu)"][0]) < float(rows["Open3D PCA k=30 (cpu)"][0])


@pytest.mark.slow
def test_without_open3d_the_first_model_run_is_the_base(tmp_path):
    """A bare GPU image has no Open3D: no PCA row, the model's first run is the base; a
    scan without normals shows no errors. ``--cli`` (it runs ``--method pca``) refuses."""
    points, _ = demo_scan(3000, 0.0)
    scan = tmp_path / "scan.xyz"
    np.savetxt(scan, points)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "open3d.py").write_text("raise ImportError('no Open3D here')\n")
    hidden = {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}
    stdout = _run("--scan", str(scan), env_extra=hidden)
    rows = _rows(stdout)
    assert set(rows) == {"TF-PointNet++ (cpu)", "TF-PointNet++, no fit (cpu)"}
    assert rows["TF-PointNet++ (cpu)"] == ["-", "-", "-", "1.00"]
    assert "base = TF-PointNet++ (cpu)" in stdout
    cmd = [sys.executable, str(SCRIPT), "--scan", str(scan), "--cli"]
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                             env=os.environ | hidden)  # fmt: skip
    assert refused.returncode == 2 and "needs Open3D" in refused.stderr


@pytest.mark.slow
def test_cli_rows_time_and_memory_against_pca(tmp_path):
    """``--cli`` runs predict.py itself: every row has a time and a peak-memory ratio to
    ``--method pca`` (1.00 for it); the 100-point start-up takes longer than importing
    torch alone, and ``--help`` (no torch) less memory."""
    points, normals = demo_scan(4000, 0.003)
    scan = tmp_path / "scan.xyzn"
    np.savetxt(scan, np.hstack([points, normals]))
    stdout = _run("--scan", str(scan), "--cli")
    rows = {}
    for line in stdout.split("command line")[1].splitlines()[1:]:
        if line and not line.startswith("("):
            rows[line[:28].strip()] = [float(value) for value in line[28:].split()]
    assert set(rows) == {
        "start-up (--help)",
        "python -c 'import torch'",
        "start-up (100 points, model)",
        "predict.py --method pca",
        "predict.py (model)",
    }
    assert rows["predict.py --method pca"] == [1.0, 1.0]
    assert rows["python -c 'import torch'"][0] < rows["start-up (100 points, model)"][0]
    assert rows["start-up (--help)"][1] < rows["python -c 'import torch'"][1]
    assert all(memory > 0 for _, memory in rows.values())
    assert "peak memory" in stdout
