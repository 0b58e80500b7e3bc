"""scripts/benchmark.py: every run's overrides compose, and the variants are comparable."""

from __future__ import annotations

import sys

import hydra
import pytest
import torch
from conftest import REPO, small_model

from pointnormals.nn import save_model

sys.path.insert(0, str(REPO / "scripts"))
import benchmark


def test_every_run_composes_with_equal_widths_and_budget(compose_train):
    """A renamed config key would fail a run an hour into the benchmark: compose them all
    here. Parameter counts within 10 % (the issue's "equal widths"), same steps."""
    args = benchmark.parse_args(["--steps", "96", "--curve", "48"])
    names = [benchmark.slug(n, s) for n, s in benchmark.runs(args)]
    assert len(set(names)) == len(names) == len(benchmark.MODELS) + 2
    params = {}
    for name, shapes in benchmark.runs(args):
        cfg = compose_train(*benchmark.train_overrides(args, name, shapes))
        assert cfg.trainer.max_steps == 96 and cfg.data.sources.synthetic.sizes[0] == shapes
        assert cfg.trainer.max_epochs * cfg.data.batch_size >= 96 * 8 / shapes
        model = hydra.utils.instantiate(cfg.model, _convert_="all")
        params[name] = sum(p.numel() for p in model.parameters())
    assert max(params.values()) <= 1.1 * min(params.values()), params
    aug = compose_train(*benchmark.MODELS["identity + O(3) aug"])
    assert aug.data.train_rotation == "o3" and aug.frames._target_.endswith("IdentityFrames")


def test_given_checkpoints_replace_training(tmp_path, capsys):
    """``--checkpoint MODEL=PATH``: that run counts as done, is loaded from PATH and is
    never trained; unknown models and missing files are refused."""
    path = tmp_path / "given.ckpt"
    model = small_model()
    save_model(model, path)
    name = next(iter(benchmark.MODELS))
    args = benchmark.parse_args(["--checkpoint", f"{name}={path}", "--task", "given_test"])
    assert benchmark.is_done(args, name, benchmark.TRAIN_SHAPES)
    assert not benchmark.is_done(args, name, 48)  # the learning curve's runs are not given
    loaded = benchmark.load_run(args, name, benchmark.TRAIN_SHAPES)
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for bad in (f"no such model={path}", f"{name}={tmp_path / 'missing.ckpt'}", name):
        with pytest.raises(SystemExit):
            benchmark.parse_args(["--checkpoint", bad])
    assert "expected MODEL=PATH" in capsys.readouterr().err
