"""Every Hydra config group of train.py composes and instantiates; every yaml key is commented."""

from __future__ import annotations

import importlib.util
import re

import hydra
import lightning as L
import pytest
import torch
from conftest import CONF
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from pointnormals.data.datamodule import NormalsDataModule
from pointnormals.data.scan_datamodule import ScanDataModule
from pointnormals.frames import target_of
from pointnormals.nn import TFPointNet
from pointnormals.reps import as_reps
from pointnormals.training import utils
from pointnormals.training.module import NormalEstimationModule

FRAMES = ("identity", "pca", "learned", "three_nn")
REPS = ("scalar", "tensor", "irreps")
# groups owned by the training pipeline (data/model/frames/reps are tested beside their code)
TRAINING_GROUPS = (
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "experiment",
    "debug",
    "module",
)


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_exist():
    for group in ("model", "frames", "reps", "data", *TRAINING_GROUPS):
        assert options(group), f"conf/{group}/ has no options"
    assert {"cpu", "gpu", "ddp"} <= set(options("trainer"))
    assert {"csv", "wandb", "tensorboard"} <= set(options("logger"))
    assert {"smoke", "pretrained_cpu", "modelnet40_paper"} <= set(options("experiment"))
    assert {"default", "fdr"} <= set(options("debug"))


def test_default_config(compose_train):
    cfg = compose_train()
    assert cfg.frames._target_ == "pointnormals.frames.LearnedFrames"
    assert cfg.model.reps_kind == "tensor"
    assert list(cfg.model.stages) == ["embed", "level1", "level2"]
    assert list(cfg.data.sources) == ["synthetic"] and cfg.trainer.accelerator == "auto"
    assert cfg.ckpt_path is None and cfg.train and cfg.test and cfg.seed is not None
    assert cfg.module.optimizer._partial_ and cfg.module.scheduler._partial_
    assert list(cfg.logger) == ["csv"]
    assert cfg.callbacks.model_checkpoint.monitor == "val/angle"
    # `_self_` sits before experiment/debug: the default sizing yields to experiments
    smoke = compose_train("experiment=smoke").data.sources.synthetic
    assert cfg.data.sources.synthetic.sizes[0] > smoke.sizes[0]


@pytest.mark.parametrize("frames", FRAMES)
@pytest.mark.parametrize("reps", REPS)
def test_model_instantiates(compose_train, frames, reps):
    cfg = compose_train(f"frames={frames}", f"reps={reps}")
    module = hydra.utils.instantiate(cfg.module, _convert_="all")
    assert isinstance(module, NormalEstimationModule) and isinstance(module.model, TFPointNet)
    config = module.hparams["model_config"]
    assert config["frames"]["_target_"] == target_of(frames)
    assert config["reps_kind"] == ("irreps" if reps == "irreps" else "tensor")
    stages = config["stages"]
    assert [s["reps"] for s in stages] == [s.reps for s in cfg.model.stages.values()]
    # a reps option changes the features only: widths equal, geometry from the model yaml
    dims = [as_reps(s["reps"], config["reps_kind"]).dim for s in stages]
    assert dims == ([80, 160, 320] if reps == "irreps" else [92, 184, 368])
    assert all(as_reps(s["reps"], config["reps_kind"]).is_scalar for s in stages) == (
        reps == "scalar"
    )
    default = compose_train().model.stages  # the one source of every stage's geometry
    for stage, written in zip(stages, default.values(), strict=True):
        for key, value in OmegaConf.to_container(written).items():
            if key not in ("reps", "_target_"):
                assert stage[key] == (tuple(value) if isinstance(value, list) else value), key
    assert TFPointNet(**config).config == config  # plain and round-tripping


@pytest.mark.parametrize("option", options("data"))
def test_data_instantiates(compose_train, option):
    cfg = compose_train(f"data={option}")
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    if option == "scans":  # patches of simulated scans: one protocol of their own
        assert isinstance(datamodule, ScanDataModule)
        assert datamodule.val_protocol_names == ("scans",)
    else:
        assert isinstance(datamodule, NormalsDataModule)
        assert datamodule.val_protocol_names == ("aligned", "o3")


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_instantiates(compose_train, option):
    cfg = compose_train(f"trainer={option}")
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        with open_dict(cfg):
            cfg.trainer.accelerator = "cpu"  # the rest of the config must still be valid
    if option == "ddp":
        assert cfg.trainer.strategy == "ddp"
        with open_dict(cfg):
            cfg.trainer.devices = 2
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert isinstance(trainer, L.Trainer)


@pytest.mark.parametrize("option", options("logger"))
def test_logger_instantiates(compose_train, option, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_train(f"logger={option}")
    if "tensorboard" in cfg.logger and importlib.util.find_spec("tensorboard") is None:
        pytest.skip("tensorboard is not installed (pip install tensorboard)")
    loggers = utils.instantiate_loggers(cfg.logger)
    assert len(loggers) == len(cfg.logger) >= 1


def test_logger_list_selection(compose_train):
    cfg = compose_train("logger=[csv,wandb]")
    assert set(cfg.logger) == {"csv", "wandb"}


@pytest.mark.parametrize(
    "overrides",
    [
        ["callbacks=default"],
        ["callbacks=[default,early_stopping]"],
        ["callbacks/progress_bar=tqdm"],
        ["callbacks.last_checkpoint.every_n_train_steps=10"],
        ["callbacks=none"],
    ],
)
def test_callbacks_instantiate(compose_train, overrides):
    cfg = compose_train(*overrides)
    callbacks = utils.instantiate_callbacks(cfg.callbacks)
    names = {type(c).__name__ for c in callbacks}
    if overrides == ["callbacks=none"]:
        assert callbacks == []
        return
    assert {"ModelCheckpoint", "LastCheckpoint"} <= names
    assert ("TQDMProgressBar" if "tqdm" in overrides[0] else "RichProgressBar") in names
    assert ("EarlyStopping" in names) == ("early_stopping" in overrides[0])


@pytest.mark.parametrize("option", options("module"))
@pytest.mark.parametrize("loss", ["abs_cos", "sin2", "unoriented_l2"])
def test_module_instantiates(compose_train, option, loss):
    cfg = compose_train(f"module={option}", f"module.loss={loss}", "experiment=smoke")
    module = hydra.utils.instantiate(cfg.module, _convert_="all")
    optimizer = module.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert optimizer.param_groups[0]["lr"] == cfg.module.optimizer.lr


@pytest.mark.parametrize("option", options("experiment"))
def test_experiment_instantiates(compose_train, option):
    cfg = compose_train(f"experiment={option}")
    assert cfg.task_name == option
    hydra.utils.instantiate(cfg.data, _convert_="all")
    hydra.utils.instantiate(cfg.module, _convert_="all")
    utils.instantiate_callbacks(cfg.callbacks)
    with open_dict(cfg):
        cfg.trainer.accelerator = "cpu"
    hydra.utils.instantiate(cfg.trainer, logger=False)


def test_experiment_recipes(compose_train):
    pretrained = compose_train("experiment=pretrained_cpu")
    sources = pretrained.data.sources
    assert list(sources) == ["synthetic", "modelnet40"] and pretrained.data.train_rotation == "o3"
    assert sources.modelnet40.root.endswith("shared/data/modelnet40_mini")
    assert sources.synthetic._target_.endswith("SyntheticSource")  # overrides kept the target
    paper = compose_train("experiment=modelnet40_paper")
    assert paper.data.sources.synthetic is None and paper.data.train_rotation == "o3"
    assert paper.trainer.strategy == "ddp" and paper.trainer.max_epochs >= 100
    assert "o3" in paper.data.test_protocols
    assert "TQDM" in paper.callbacks.progress_bar._target_


@pytest.mark.parametrize("option", options("debug"))
def test_debug_instantiates(compose_train, option):
    cfg = compose_train(f"debug={option}")
    assert cfg.task_name == "debug" and cfg.logger is None
    hydra.utils.instantiate(
        cfg.trainer, logger=False, callbacks=utils.instantiate_callbacks(cfg.callbacks)
    )


def test_hydra_dirs():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["run_name=abc"], return_hydra_config=True)
    assert cfg.hydra.run.dir.endswith("logs/train/runs/abc")
    assert cfg.hydra.sweep.dir.endswith("logs/train/multiruns/abc")
    assert cfg.hydra.job.chdir is False


_KEY = re.compile(r"^\s*(- )?[A-Za-z_][\w/@.-]*:(\s|$)")


@pytest.mark.parametrize(
    "path",
    [*sorted(p for g in TRAINING_GROUPS for p in (CONF / g).rglob("*.yaml")), CONF / "train.yaml"],
    ids=lambda p: str(p.relative_to(CONF)),
)
def test_every_key_commented(path):
    """House style: every yaml key has a comment (on its line or the line above)."""
    lines = path.read_text().splitlines()
    missing = [
        f"{path.name}:{i + 1}: {line.strip()}"
        for i, line in enumerate(lines)
        if _KEY.match(line) and "#" not in line and not (i and lines[i - 1].strip().startswith("#"))
    ]
    assert not missing, "uncommented keys:\n" + "\n".join(missing)


def _own_targets(node, where: str = ""):
    """``(where, class, values)`` of every ``_target_`` of this project in a yaml tree."""
    from omegaconf import DictConfig, ListConfig

    if isinstance(node, DictConfig):
        target = node.get("_target_")
        if isinstance(target, str) and target.startswith("pointnormals."):
            yield where, hydra.utils.get_class(target), node
        for key in node:
            yield from _own_targets(node._get_node(key), f"{where}.{key}")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from _own_targets(node._get_node(i), f"{where}[{i}]")


@pytest.mark.parametrize(
    "path",
    sorted(p for g in ("data", "module", "frames") for p in (CONF / g).glob("*.yaml")),
    ids=lambda p: str(p.relative_to(CONF)),
)
def test_yaml_values_agree_with_signature_defaults(path):
    """One source per default: a group option's value for a parameter that has a code
    default is that default (a recipe that differs lives in conf/experiment)."""
    import inspect

    from omegaconf import OmegaConf

    node = OmegaConf.load(path)
    disagree = []
    for where, cls, values in _own_targets(node):
        params = inspect.signature(cls).parameters
        for key in values:
            param = params.get(key)
            if param is None or param.default is inspect.Parameter.empty:
                continue
            raw = OmegaConf.to_container(values, resolve=False)[key]
            if isinstance(raw, str) and "${" in raw:
                continue  # an interpolation: the value comes from elsewhere
            if isinstance(raw, dict) and param.default is None:
                continue  # a component (optimiser, patch simulator): checked below
            default = param.default
            default = list(default) if isinstance(default, tuple) else default
            if raw != default:
                disagree.append(f"{where}.{key}: yaml {raw!r}, {cls.__name__} default {default!r}")
    assert not disagree, "\n".join(disagree)


def test_module_optimiser_default_is_the_yaml_one(compose_train):
    """The module's built-in optimiser is conf/module/default.yaml's."""
    yaml = compose_train().module.optimizer
    model = TFPointNet([{"reps": "4x0n", "hidden": [8]}], frames="identity")
    built_in = NormalEstimationModule(model=model).optimizer_factory
    assert built_in.func.__name__ == yaml._target_.rsplit(".", 1)[1]
    assert built_in.keywords == {"lr": yaml.lr, "weight_decay": yaml.weight_decay}
