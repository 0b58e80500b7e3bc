"""The LightningDataModule and its Hydra configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import CONF
from hydra.utils import instantiate

from pointnormals.data.datamodule import NormalsDataModule
from pointnormals.data.sources import ModelNetSource, SyntheticSource


def synthetic(tmp_path: Path, sizes=(6, 4, 4)) -> SyntheticSource:
    return SyntheticSource(sizes=sizes, points=600, cache_dir=str(tmp_path))


def small_module(tmp_path: Path, sources=None, **overrides) -> NormalsDataModule:
    kwargs = {"batch_size": 4, "num_points": 256, "eval_num_points": 256, **overrides}
    kwargs.setdefault("num_workers", 0)  # no loader processes in tests
    module = NormalsDataModule(sources or {"synthetic": synthetic(tmp_path)}, **kwargs)
    module.prepare_data()
    module.setup("fit")
    return module


def test_train_batches_are_pyg_batches(tmp_path):
    module = small_module(tmp_path, train_rotation="so3")
    batch = next(iter(module.train_dataloader()))
    assert batch.num_graphs == 4 and batch.pos.shape == (4 * 256, 3)
    assert batch.batch.shape == (4 * 256,) and batch.ptr.tolist() == [0, 256, 512, 768, 1024]
    assert batch.pos.dtype == torch.float32 and batch.normal.dtype == torch.float32
    torch.testing.assert_close(batch.normal.norm(dim=-1), torch.ones(1024))
    assert batch.rotation.shape == (4, 3, 3) and len(batch.name) == 4
    assert batch.pos.norm(dim=-1).max() < 1.2  # normalised (plus a little noise)


def test_val_and_test_loaders_are_aligned_and_o3_side_by_side(tmp_path):
    module = small_module(tmp_path)
    assert module.val_protocol_names == ("aligned", "o3") == module.test_protocol_names
    for loaders in (module.val_dataloader(), module.test_dataloader()):
        assert len(loaders) == 2
        for aligned, rotated in zip(*loaders, strict=True):
            rot = rotated.rotation[rotated.batch]  # (N, 3, 3)
            torch.testing.assert_close(rotated.pos, torch.einsum("nij,nj->ni", rot, aligned.pos))
            torch.testing.assert_close(
                rotated.normal, torch.einsum("nij,nj->ni", rot, aligned.normal)
            )
            torch.testing.assert_close(
                aligned.rotation, torch.eye(3).expand(aligned.num_graphs, 3, 3)
            )
    first = [b.pos for b in module.val_dataloader()[1]]  # seeded: identical on every call
    for a, b in zip(first, [b.pos for b in module.val_dataloader()[1]], strict=True):
        torch.testing.assert_close(a, b)


def test_o3_protocol_reflects_some_clouds_and_so3_none(tmp_path):
    sources = {"synthetic": synthetic(tmp_path, sizes=(6, 16, 4))}
    module = small_module(tmp_path, sources, val_protocols=("o3", "so3"))
    o3, so3 = (
        torch.cat([torch.linalg.det(b.rotation) for b in loader])
        for loader in module.val_dataloader()
    )
    assert len(o3) == len(so3) == 16
    torch.testing.assert_close(torch.cat([o3, so3]).abs(), torch.ones(32))  # det ±1
    assert set(o3.sign().tolist()) == {-1.0, 1.0}  # Haar on O(3): 4 of these 16 reflect
    assert set(so3.sign().tolist()) == {1.0}


def test_clouds_of_different_sizes_batch_together(tmp_path):
    module = small_module(tmp_path, train_density=("gradient", "stripes"), num_points=None)
    batch = next(iter(module.train_dataloader()))
    sizes = torch.bincount(batch.batch).tolist()
    assert len(set(sizes)) > 1 and all(s < 600 for s in sizes)
    assert batch.ptr.tolist()[-1] == len(batch.pos)


def test_more_protocols(tmp_path):
    names = ("aligned", "o3+noise_high", "z+gradient")
    module = small_module(tmp_path, val_protocols=names)
    loaders = module.val_dataloader()
    assert module.val_protocol_names == names and len(loaders) == 3
    noisy = next(iter(loaders[1]))
    assert noisy.noise_sigma.gt(0.012).all()  # 1.2 % of a diagonal of about 2


def test_workers_give_the_same_evaluation_data(tmp_path):
    single = small_module(tmp_path)
    workers = small_module(tmp_path, num_workers=2)
    for a, b in zip(single.val_dataloader()[1], workers.val_dataloader()[1], strict=True):
        torch.testing.assert_close(a.pos, b.pos)
    assert next(iter(workers.train_dataloader())).num_graphs == 4


def test_modelnet_and_mixed(modelnet_mini, tmp_path):
    modelnet = ModelNetSource(str(modelnet_mini), cache_dir=str(tmp_path))
    module = small_module(tmp_path, {"modelnet40": modelnet})
    sizes = [len(module.base_dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [99, 11, 17]
    batch = next(iter(module.val_dataloader()[1]))
    assert batch.y.ge(0).all() and batch.pos.shape == (4 * 256, 3)
    mixed = small_module(tmp_path, {"synthetic": synthetic(tmp_path), "modelnet40": modelnet})
    assert [len(mixed.base_dataset(s)) for s in ("train", "val", "test")] == [105, 15, 21]
    labels = torch.cat([b.y for b in mixed.train_dataloader()])
    assert labels.eq(-1).sum() == 6 and labels.ge(0).sum() == 99


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="no data source"):
        NormalsDataModule({"synthetic": None})
    with pytest.raises(ValueError, match="needs root"):
        ModelNetSource("")
    with pytest.raises(ValueError, match="train, val, test"):
        SyntheticSource(sizes=(6, 4))
    module = NormalsDataModule({"modelnet40": ModelNetSource(str(tmp_path / "missing"))})
    with pytest.raises(ValueError, match="does not exist: expected"):
        module.prepare_data()
    with pytest.raises(ValueError, match="unknown rotation"):
        NormalsDataModule(train_rotation="so2")


@pytest.mark.parametrize("name", ["synthetic", "modelnet40", "mixed"])
def test_configs_instantiate_and_comment_every_key(
    name, tmp_path, modelnet_mini, monkeypatch, compose_train
):
    path = CONF / "data" / f"{name}.yaml"
    for line in path.read_text().splitlines():
        if re.match(r"^\s*[\w.]+:", line):
            assert "#" in line, f"{path.name}: key without a comment: {line}"
    monkeypatch.setenv("MODELNET40_ROOT", str(modelnet_mini))
    sizes = [] if name == "modelnet40" else ["data.sources.synthetic.sizes=[6,4,4]"]
    cfg = compose_train(f"data={name}", *sizes, data_dir=tmp_path)
    module = instantiate(cfg.data)
    expected_sources = {"synthetic": ["synthetic"], "modelnet40": ["modelnet40"]}
    assert list(module.sources) == expected_sources.get(name, ["synthetic", "modelnet40"])
    assert all(source.cache_dir == tmp_path for source in module.sources.values())
    assert isinstance(module, NormalsDataModule) and module.val_protocol_names == ("aligned", "o3")
    module.prepare_data()
    expected = min(module.eval_batch_size, len(module.base_dataset("val")))
    assert next(iter(module.val_dataloader()[0])).num_graphs == expected
