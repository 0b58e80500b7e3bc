"""train.py end to end: fast dev runs of every variant, a real smoke run, checkpoints that
load with ``weights_only=True``, wandb offline, resume after SIGKILL, DDP with 2 processes.

Runs write only below pytest's temporary directories (``paths.*`` are redirected).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO
from omegaconf import DictConfig, open_dict

from pointnormals.training import load_model, save_model
from pointnormals.training import utils as train_utils
from pointnormals.training.losses import LOSSES
from pointnormals.training.metrics import METRICS, cloud_errors, normal_errors
from pointnormals.training.module import NormalErrors, NormalEstimationModule

TRAIN_PY = REPO / "train.py"
SMOKE_STEPS = 8  # experiment=smoke: 32 shapes / batch 8 x 2 epochs
PLAIN = (str, int, float, bool, type(None))


# ---- helpers ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One synthetic-data cache for every run of the session."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def train_fn():
    """``train(cfg)`` of the repository's train.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("pointnormals_train_script", TRAIN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.train


@pytest.fixture
def compose_smoke(compose_train, data_dir, monkeypatch):
    """``compose_smoke(*overrides)`` → experiment=smoke config writing into ``tmp_path``."""
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):  # set by seed_everything
        monkeypatch.delenv(name, raising=False)

    def _compose(*overrides: str) -> DictConfig:
        smoke = ("experiment=smoke", "callbacks/progress_bar=tqdm", *overrides)
        return compose_train(*smoke, data_dir=data_dir, hydra=True)

    return _compose


def cli_args(tmp_path: Path, data_dir: Path, *overrides: str) -> list[str]:
    flags = [o for o in overrides if o.startswith("-")]  # e.g. -m: before the overrides
    overrides = tuple(o for o in overrides if not o.startswith("-"))
    return [
        sys.executable,
        str(TRAIN_PY),
        *flags,
        "experiment=smoke",
        "callbacks/progress_bar=tqdm",
        f"paths.log_dir={tmp_path / 'logs'}",
        f"paths.data_dir={data_dir}",
        *overrides,
    ]


def cli_env() -> dict[str, str]:
    env = dict(os.environ, WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    env.pop("PL_GLOBAL_SEED", None)
    return env


def run_cli(tmp_path: Path, data_dir: Path, *overrides: str, timeout: float = 300) -> str:
    """Run train.py in a subprocess (cwd = tmp_path); returns its output, fails loudly."""
    result = subprocess.run(
        cli_args(tmp_path, data_dir, *overrides),
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def read_metrics(run_dir: Path) -> dict[str, float]:
    """Last logged value of every column of the run's metrics.csv."""
    (path,) = run_dir.glob("csv/version_*/metrics.csv")
    values: dict[str, float] = {}
    for row in csv.DictReader(path.open()):
        values.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return values


def assert_plain(value, where: str = "hparams") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{where}: key {k!r}"
            assert_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            assert_plain(v, f"{where}[{i}]")
    else:
        assert isinstance(value, PLAIN), f"{where} is a {type(value).__name__}"


# ---- losses, metrics, helpers (fast) ---------------------------------------------
def test_losses_and_metrics_are_unoriented():
    pred = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    target = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1)
    signs = torch.where(torch.rand(64, 1) < 0.5, -1.0, 1.0)
    for name, loss in LOSSES.items():
        assert torch.allclose(loss(pred, target), loss(signs * pred, target), atol=1e-6), name
        assert loss(target, target) < 1e-6 and loss(-target, target) < 1e-6, name
    a, b = normal_errors(pred, target), normal_errors(signs * pred, -target)
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in METRICS)
    assert 0 < a["angle"] < a["rmse"] <= 90


def test_normal_errors_metric_averages_clouds():
    pred, target = torch.randn(30, 3), torch.randn(30, 3)
    batch = torch.tensor([0] * 10 + [1] * 20)
    metric = NormalErrors()
    metric.update(pred[:10], target[:10], batch[:10], 1)
    metric.update(pred[10:], target[10:], batch[10:] - 1, 1)
    expected = {k: v.mean() for k, v in cloud_errors(pred, target, batch).items()}
    result = metric.compute()
    for key in METRICS:
        assert torch.allclose(result[key], expected[key].float(), atol=1e-4), key
    # per cloud, not per point: the larger cloud does not dominate
    pointwise = normal_errors(pred, target, torch.zeros(30, dtype=torch.long))["angle"]
    assert not torch.allclose(result["angle"], pointwise.float(), atol=1e-3)


def test_module_rejects_bad_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        NormalEstimationModule()
    config = {"stages": [{"reps": "4x0n+1x1n", "hidden": [8], "up_hidden": [8]}]}
    with pytest.raises(ValueError, match="unknown loss"):
        NormalEstimationModule(model_config=config, loss="l1")


def test_ckpt_path_resolution(tmp_path, caplog):
    assert train_utils.resolve_ckpt_path(None, str(tmp_path)) is None
    assert train_utils.resolve_ckpt_path("last", str(tmp_path)) is None  # first run of a job
    assert "training from scratch" in caplog.text
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(b"")
    assert train_utils.resolve_ckpt_path("last", str(tmp_path)) == str(last)
    with pytest.raises(FileNotFoundError):
        train_utils.resolve_ckpt_path(str(tmp_path / "missing.ckpt"), str(tmp_path))


@pytest.fixture
def no_wandb_credentials(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc


def test_wandb_mode_fallback(no_wandb_credentials, tmp_path, monkeypatch):
    assert train_utils.ensure_wandb_mode() == "offline"  # no key, no netrc
    assert os.environ["WANDB_MODE"] == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # an explicit mode is kept
    assert train_utils.ensure_wandb_mode() == "disabled"

    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login user password x\n")
    (tmp_path / ".netrc").chmod(0o600)
    with socket.socket() as server:  # a listening "wandb host": online
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert train_utils.wandb_has_credentials()
        assert train_utils.ensure_wandb_mode() == "online"
        assert "WANDB_MODE" not in os.environ
        port = server.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")  # closed: no connection
    start = time.monotonic()
    assert train_utils.ensure_wandb_mode(timeout=2.0) == "offline"
    assert time.monotonic() - start < 5


# ---- in-process runs ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("reps", ["scalar", "tensor", "irreps"])
@pytest.mark.parametrize("frames", ["identity", "pca", "learned"])
def test_fast_dev_run(compose_smoke, train_fn, frames, reps):
    cfg = compose_smoke(f"frames={frames}", f"reps={reps}", "trainer.fast_dev_run=true")
    metrics = train_fn(cfg)
    for stage in ("val", "test"):
        for protocol in ("aligned", "o3"):
            assert 0.0 < metrics[f"{stage}/{protocol}/angle"] < 90.0
    assert metrics["train/loss"] > 0
    if frames != "identity":  # exactly equivariant: rotations and reflections change nothing
        assert abs(metrics["val/aligned/angle"] - metrics["val/o3/angle"]) < 0.05


@pytest.mark.slow
def test_seeded_runs_are_reproducible(compose_smoke, train_fn, tmp_path):
    short = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "test=false"]
    results = []
    for i, seed in enumerate([7, 7, 8]):
        cfg = compose_smoke(*short, f"seed={seed}")
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"run{i}")
        results.append(train_fn(cfg))
    keys = ("train/loss", "val/aligned/angle", "val/o3/angle")
    assert [results[0][k] for k in keys] == [results[1][k] for k in keys]
    assert results[0]["train/loss"] != results[2]["train/loss"]


@pytest.mark.slow
def test_wandb_offline_run(compose_smoke, train_fn, no_wandb_credentials, tmp_path):
    import wandb

    cfg = compose_smoke(
        "logger=wandb",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "test=false",
    )
    try:
        metrics = train_fn(cfg)
    finally:
        wandb.finish()
    assert os.environ["WANDB_MODE"] == "offline"  # chosen automatically: no credentials
    assert "val/o3/angle" in metrics
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert runs and any(runs[0].glob("*.wandb"))


@pytest.mark.slow
def test_multirun_sweep(tmp_path, data_dir):
    output = run_cli(
        tmp_path,
        data_dir,
        "-m",
        "frames=identity,learned",
        "reps=scalar,tensor",
        "trainer.fast_dev_run=true",
        "run_name=sweep",
    )
    jobs = sorted((tmp_path / "logs" / "smoke" / "multiruns" / "sweep").glob("[0-9]*"))
    assert len(jobs) == 4, output[-3000:]
    overrides = {(job / ".hydra" / "overrides.yaml").read_text() for job in jobs}
    assert len(overrides) == 4


# ---- a real smoke run, its checkpoints, and resuming it after SIGKILL ----------------
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir) -> tuple[Path, str]:
    tmp_path = tmp_path_factory.mktemp("smoke")
    output = run_cli(tmp_path, data_dir, "run_name=smoke")
    return tmp_path / "logs" / "smoke" / "runs" / "smoke", output


@pytest.mark.slow
def test_smoke_run(smoke_run):
    run_dir, output = smoke_run
    last = run_dir / "checkpoints" / "last.ckpt"
    best = [p for p in (run_dir / "checkpoints").glob("epoch_*.ckpt")]
    assert last.is_file() and len(best) == 1
    assert f"Best checkpoint: {best[0]}" in output and f"Last checkpoint: {last}" in output
    assert "metrics.csv" in output
    metrics = read_metrics(run_dir)
    for stage in ("val", "test"):
        for protocol in ("aligned", "o3"):
            for key in METRICS:
                assert f"{stage}/{protocol}/{key}" in metrics
    assert torch.load(last, weights_only=True)["global_step"] == SMOKE_STEPS
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "smoke.log").is_file()


@pytest.mark.slow
def test_checkpoint_round_trip(smoke_run, tmp_path):
    run_dir, _ = smoke_run
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    assert_plain(hparams)
    assert_plain(checkpoint["datamodule_hyper_parameters"], "datamodule_hyper_parameters")
    config = hparams["model_config"]
    assert config["normalize"] is True and all(isinstance(s["reps"], str) for s in config["stages"])

    model = load_model(last)
    assert not model.training
    pos = torch.rand(300, 3)
    batch = torch.tensor([0] * 100 + [1] * 200)
    module = NormalEstimationModule.load_from_checkpoint(last, weights_only=True).eval()
    expected = module(pos, batch)
    assert torch.equal(model(pos, batch), expected)

    save_model(model, tmp_path / "slim.pt", recipe="smoke")
    slim = load_model(tmp_path / "slim.pt")
    assert torch.equal(slim(pos, batch), expected)
    # the untrained model differs: the comparison above can fail
    fresh = type(model)(**config).eval()
    assert not torch.allclose(fresh(pos, batch), expected)


@pytest.mark.slow
def test_load_model_needs_no_lightning_or_hydra(smoke_run):
    run_dir, _ = smoke_run
    code = (
        "import sys; from pointnormals.training import load_model; "
        f"m = load_model({str(run_dir / 'checkpoints' / 'last.ckpt')!r}); "
        "bad = [n for n in ('lightning', 'pytorch_lightning', 'hydra', 'omegaconf', 'wandb') "
        "if n in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_resume_after_sigkill(smoke_run, tmp_path, data_dir):
    """Kill a run mid-epoch; `ckpt_path=last` ends with the uninterrupted step count."""
    reference = torch.load(smoke_run[0] / "checkpoints" / "last.ckpt", weights_only=True)
    overrides = ["run_name=killed", "callbacks.last_checkpoint.every_n_train_steps=1"]
    last = tmp_path / "logs" / "smoke" / "runs" / "killed" / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(
        cli_args(tmp_path, data_dir, *overrides),
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    step, deadline = -1, time.monotonic() + 240
    try:
        while step < SMOKE_STEPS // 2 + 1 and time.monotonic() < deadline:  # mid epoch 2
            assert process.poll() is None, "the run ended before it could be killed"
            if last.is_file():
                step = torch.load(last, weights_only=True)["global_step"]
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    killed = torch.load(last, weights_only=True)
    assert 0 < killed["global_step"] < SMOKE_STEPS
    assert killed["global_step"] % (SMOKE_STEPS // 2) != 0, "killed at an epoch boundary"

    output = run_cli(tmp_path, data_dir, *overrides, "ckpt_path=last")
    assert f"Restored all states from the checkpoint at {last}" in output
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == reference["global_step"] == SMOKE_STEPS
    assert resumed["epoch"] == reference["epoch"]
    opt_steps = {s["step"].item() for s in resumed["optimizer_states"][0]["state"].values()}
    assert opt_steps == {float(SMOKE_STEPS)}  # the optimiser state was restored, not reset
    assert resumed["lr_schedulers"][0]["last_epoch"] == reference["lr_schedulers"][0]["last_epoch"]


# ---- DDP ----------------------------------------------------------------------------
@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path, data_dir, compose_smoke):
    run_cli(
        tmp_path,
        data_dir,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "run_name=ddp",
        timeout=400,
    )
    run_dir = tmp_path / "logs" / "smoke" / "runs" / "ddp"
    logged = read_metrics(run_dir)
    (best,) = (run_dir / "checkpoints").glob("epoch_*.ckpt")
    assert torch.load(best, weights_only=True)["global_step"] == SMOKE_STEPS // 4  # 2 ranks

    # the logged test metrics are those of ALL test clouds, not of rank 0's half
    cfg = compose_smoke()
    import hydra

    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.setup()
    model = load_model(best)
    names = datamodule.test_protocol_names
    for name, loader in zip(names, datamodule.test_dataloader(), strict=True):
        errors = {k: [] for k in METRICS}
        with torch.no_grad():
            for batch in loader:
                pred = model(batch.pos, batch.batch)
                for k, v in cloud_errors(pred, batch.normal, batch.batch).items():
                    errors[k].append(v)
        per_cloud = {k: torch.cat(v) for k, v in errors.items()}
        for key in METRICS:
            assert logged[f"test/{name}/{key}"] == pytest.approx(
                per_cloud[key].mean().item(), abs=2e-3
            ), key
        rank0 = per_cloud["angle"][0::2].mean().item()  # what an unsynced rank 0 would log
        assert abs(rank0 - per_cloud["angle"].mean().item()) > 2e-3
