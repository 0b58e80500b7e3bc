"""The accuracy benchmark: every method row, a sound PCA oracle and the CSV's columns."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "bench_accuracy.py"
GROUPS = ("clean", "noise 0.6%", "strays 1%", "scan lines")
COLUMNS = "cloud group points surface_points method k rmse one_minus_cos pgp5 pgp10 seconds"


def _run(tmp_path, *args: str) -> tuple[str, str]:
    """Run the script with one thread; its stdout and markdown report."""
    out = tmp_path / "bench.md"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out), *args]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout, out.read_text()


def _group_rmse(markdown: str, group: str) -> dict[str, float]:
    """RMSE column of every method row in ``group``'s table."""
    table = markdown.split(f"## {group} (")[1].split("\n## ")[0]
    rows = re.findall(r"^\| ([^|]+?) \| ([0-9.]+) \|", table, flags=re.M)
    return {method.split(" (")[0]: float(rmse) for method, rmse in rows}


@pytest.mark.slow
def test_synthetic_quick(tmp_path):
    table = tmp_path / "bench.csv"
    args = ("--sources", "synthetic", "--groups", ",".join(GROUPS), "--csv", str(table))
    args += ("--variant", "model", "--variant", "o1:overlap=1")
    stdout, markdown = _run(tmp_path, *args)
    assert "## All groups" in stdout and "command: `python scripts/bench_accuracy.py" in markdown
    methods = ("model", "o1", "PCA k=30", "PCA oracle")
    for group in GROUPS:
        rmse = _group_rmse(markdown, group)
        assert set(rmse) == set(methods), rmse
        assert rmse["PCA oracle"] <= rmse["PCA k=30"]  # the oracle's k set includes 30
    assert "modelnet40" not in markdown and "mesh/" not in stdout
    with table.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS.split()
    assert len(rows) == len(GROUPS) * len(methods)  # one synthetic cloud per group
    assert {r["method"] for r in rows} == set(methods)
    assert all(float(r["surface_points"]) >= 16 for r in rows)
    sizes = {r["group"]: int(r["points"]) for r in rows}
    assert 18_000 < sizes.pop("scan lines") < 22_000  # a 5 % band of 400k samples
    assert sizes == {"clean": 20_000, "noise 0.6%": 20_000, "strays 1%": 20_200}  # 1 % strays


@pytest.mark.slow
def test_shared_sources_quick(tmp_path):
    """Held-out meshes (range scans, merged scans) and the ModelNet40 test split, when
    ``../shared`` is present."""
    shared = REPO.parent / "shared" / "data"
    if not (shared / "meshes").is_dir() or not (shared / "modelnet40_mini").is_dir():
        pytest.skip(f"{shared} not present")
    groups = ("clean", "range scan", "modelnet40 10k", "merged scans")
    stdout, markdown = _run(
        tmp_path, "--sources", "meshes,modelnet40", "--groups", ",".join(groups)
    )
    for group in groups:
        rmse = _group_rmse(markdown, group)
        assert rmse["PCA oracle"] <= rmse["PCA k=30"]
    assert re.search(r"^scan/\S+-0 \[range scan\] 2\d,\d{3} pts", stdout, flags=re.M), stdout
    # two scans of half the size each
    assert re.search(r"^merged/\S+ \[merged scans\] [12]\d,\d{3} pts", stdout, flags=re.M)


def test_unknown_group_is_a_usage_error():
    cmd = [sys.executable, str(SCRIPT), "--groups", "noisy"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 2 and "unknown ['noisy']" in result.stderr


def test_variants_parse_numbers_none_and_booleans():
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_accuracy import parse_variant

    name, options = parse_variant("network:refine=false,scale=4,overlap=1.5,batch_points=None")
    assert name == "network"
    assert options == {"refine": False, "scale": 4, "overlap": 1.5, "batch_points": None}
    assert parse_variant("fit:refine=True")[1] == {"refine": True}
    assert parse_variant("model") == ("model", {})
