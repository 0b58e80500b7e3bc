"""The equivariance command researchers run: exit codes and its last line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "check_equivariance.py"


def _run(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "num_points=400", "trials=2", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)


def _max_angle(out: str) -> float:
    last = out.strip().splitlines()[-1]
    assert last.startswith("max_angle_deg="), out
    return float(last.split("=")[1])


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ("model=tf_pointnet", "frames=learned", "reps=tensor"),
        ("frames=pca", "reps=irreps", "dtype=float32"),
        ("frames=learned", "frame_update=true", "reps=scalar"),
    ],
)
def test_equivariant_variants_pass(overrides):
    result = _run(*overrides)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _max_angle(result.stdout) <= (1e-2 if "dtype=float32" in overrides else 1e-6)


@pytest.mark.slow
def test_identity_frames_fail_with_exit_1():
    result = _run("frames=identity")
    assert result.returncode == 1, result.stdout + result.stderr
    assert _max_angle(result.stdout) > 1.0


def test_missing_input_is_a_one_line_error(tmp_path):
    result = _run(f"+input={tmp_path / 'nope.ply'}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "nope.ply" in result.stderr
