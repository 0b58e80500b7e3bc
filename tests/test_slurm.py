"""scripts/slurm/train.sbatch run outside SLURM: ``srun`` is a stub that logs its argv."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

SBATCH = REPO / "scripts" / "slurm" / "train.sbatch"


def run_sbatch(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script as a 2-node x 4-GPU job; `srun` logs its arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    slurm = {
        "SLURM_SUBMIT_DIR": str(tmp_path),
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "1234",
        "SLURM_JOB_NAME": "pointnormals",
        "SRUN_LOG": str(tmp_path / "srun.log"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        ["bash", str(SBATCH), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **slurm, **env},
        timeout=30,
    )


def test_sbatch_launches_ddp_over_all_nodes(tmp_path):
    (tmp_path / "pointnormals.sif").touch()
    result = run_sbatch(tmp_path, "model=tf_pointnet", "trainer.max_epochs=3")
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "srun.log").read_text().splitlines()
    container = argv[argv.index("apptainer") :]
    assert container[:2] == ["apptainer", "exec"]
    assert "--nv" in container
    assert f"{tmp_path / '.cache' / 'pointnormals'}:/cache" in container
    command = container[container.index("pointnormals.sif") + 1 :]
    assert command == [
        "/opt/venv/bin/python",
        "/app/train.py",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "run_name=pointnormals-1234",
        "model=tf_pointnet",
        "trainer.max_epochs=3",
    ]
    assert "WANDB_MODE=offline" in container


def test_sbatch_links_a_data_dir_elsewhere(tmp_path):
    (tmp_path / "pointnormals.sif").touch()
    shared = tmp_path / "shared-data"
    result = run_sbatch(tmp_path, DATA_DIR=str(shared), WANDB_MODE="online")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data").resolve() == shared.resolve()
    argv = (tmp_path / "srun.log").read_text().splitlines()
    assert str(shared.resolve()) in argv  # bound at the same path
    assert "WANDB_MODE=online" in argv


@pytest.mark.parametrize(
    ("env", "message"),
    [({"SLURM_NTASKS_PER_NODE": "2"}, "--ntasks-per-node"), ({"SIF": "missing.sif"}, "no image")],
)
def test_sbatch_refuses_bad_setups(tmp_path, env, message):
    (tmp_path / "pointnormals.sif").touch()
    result = run_sbatch(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "srun.log").exists()
