"""TF-PointNet++: one reusable model-test class, run for every frames × reps variant."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import FRAMES, REPS, two_clouds, variant_model

from pointnormals.frames import random_orthogonal
from pointnormals.nn import TFPointNet
from pointnormals.reps import TensorReps
from pointnormals.testing import angle_deg, assert_equivariant, equivariance_errors


@pytest.mark.parametrize("reps", sorted(REPS))
@pytest.mark.parametrize("frames", sorted(FRAMES))
class TestModel:
    """The contract every variant satisfies (nequip-style shared model tests)."""

    def test_output_shape_and_unit_norm(self, frames, reps):
        pos, batch = two_clouds()
        normals = variant_model(frames, reps)(pos, batch)
        assert normals.shape == (256, 3)
        torch.testing.assert_close(normals.norm(dim=-1), torch.ones(256))

    def test_batch_equals_one_by_one(self, frames, reps):
        model = variant_model(frames, reps)
        pos, batch = two_clouds()
        together = model(pos, batch)
        apart = torch.cat([model(pos[batch == b]) for b in (0, 1)])
        torch.testing.assert_close(together, apart, atol=1e-5, rtol=0)

    def test_o3_equivariance(self, frames, reps):
        """float64 <= 1e-6 deg, float32 <= 1e-2 deg; reflections, translation, permutation."""
        model = variant_model(frames, reps)
        pos, batch = two_clouds()
        args, types = [pos, batch], ["pos", "batch"]
        if model.frames.equivariant:
            assert_equivariant(model, args, types, "normal", trials=4)
        else:  # the identity-frame baseline visibly fails the same check
            errors = equivariance_errors(model, args, types, "normal", trials=4)
            assert min(t.error for t in errors) > 1.0
            with pytest.raises(AssertionError, match="not equivariant"):
                assert_equivariant(model, args, types, "normal", trials=2)

    def test_state_dict_round_trip_and_determinism(self, frames, reps):
        model = variant_model(frames, reps, seed=1)
        pos, batch = two_clouds()
        rebuilt = TFPointNet(**model.config).eval()
        rebuilt.load_state_dict(model.state_dict())
        torch.testing.assert_close(rebuilt(pos, batch), model(pos, batch), atol=0, rtol=0)
        again = variant_model(frames, reps, seed=1)
        torch.testing.assert_close(again(pos, batch), model(pos, batch), atol=0, rtol=0)

    def test_gradient_reaches_every_parameter(self, frames, reps):
        """After one optimisation step (the frame update starts exactly at the identity
        with a zero last layer, so its first layer only receives gradient from then on)."""
        model = variant_model(frames, reps).train()
        pos, batch = two_clouds()
        target = torch.nn.functional.normalize(torch.randn(256, 3), dim=-1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(2):
            optimizer.zero_grad()
            loss = (1 - (model(pos, batch) * target).sum(-1).abs()).mean()
            loss.backward()
            if _ == 0:
                optimizer.step()
        dead = [
            name
            for name, p in model.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0
        ]
        assert not dead, dead


def test_stage_zero_must_keep_every_point():
    with pytest.raises(ValueError, match=r"ratio=1\.0"):
        TFPointNet([{"reps": "8x0n", "ratio": 0.5}])
    with pytest.raises(ValueError, match="unknown frames"):
        TFPointNet([{"reps": "8x0n"}], frames="nope")


def test_stages_by_name_as_the_config_writes_them():
    """A dict of named stages (``None`` skipped, ``_target_`` naming Stage) builds the same
    model as the list, and the checkpoint config stays a plain list."""
    stages = [{"reps": "4x0n+1x1n", "hidden": [8]}, {"reps": "8x0n", "ratio": 0.5, "hidden": [8]}]
    named = {
        "embed": {"_target_": "pointnormals.nn.Stage", **stages[0]},
        "level1": stages[1],
        "level2": None,
    }
    assert (
        TFPointNet(named, frames="identity").config == TFPointNet(stages, frames="identity").config
    )
    with pytest.raises(ValueError, match=r"a stage is a pointnormals\.nn\.Stage"):
        TFPointNet({"embed": {"_target_": "torch.nn.Linear", "reps": "8x0n"}})


def test_sampling_is_invariant_to_pose_and_order():
    """FPS centres and capped ball neighbourhoods select the same points for g·x."""
    from pointnormals import graph

    pos = torch.rand(500, 3, dtype=torch.float64)
    Q = random_orthogonal(1, dtype=torch.float64)[0]
    perm = torch.randperm(500)
    moved = (pos @ Q.T + 3.0)[perm]
    idx, idx_m = graph.farthest_point_sample(pos, 0.2), graph.farthest_point_sample(moved, 0.2)
    assert idx.tolist() == perm[idx_m].tolist()  # same centres, in the same order
    e = graph.radius(pos, pos[idx], 0.3, max_num_neighbors=8)
    e_m = graph.radius(moved, moved[idx_m], 0.3, max_num_neighbors=8)
    assert set(zip(e[0].tolist(), e[1].tolist(), strict=True)) == set(
        zip(perm[e_m[0]].tolist(), e_m[1].tolist(), strict=True)
    )


def test_bf16_autocast_keeps_the_geometry_in_float32():
    """Mixed precision (Lightning's bf16-mixed) only rounds the MLPs: frames, frame
    changes and the output rotation stay float32, so the normals stay within a fraction
    of a degree of float64 (bf16 has ~3 significant digits) and equivariance degrades
    gracefully instead of breaking."""

    class Autocast(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, pos, batch):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.model(pos, batch)

    model = variant_model("learned_update", "tensor")
    pos, batch = two_clouds()
    normals = Autocast(model)(pos, batch)
    assert normals.dtype == torch.float32
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(256))
    reference = copy.deepcopy(model).double()(pos.double(), batch)
    assert angle_deg(normals, reference).max() < 1.0  # degrees; bf16 measured 0.2
    bf16 = {torch.float32: {"angle": 1.0}}  # degrees; float32 alone: 1e-2
    args, types = [pos, batch], ["pos", "batch"]
    assert_equivariant(
        Autocast(model), args, types, "normal", dtypes=[torch.float32], tolerances=bf16
    )

    # the transforms themselves are exact: float32 under autocast (bf16 matmuls: 1e-2)
    reps = TensorReps("1x0n+1x1n+1x2p+1x0p")
    x, R = torch.randn(10, reps.dim), random_orthogonal(10, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_rot, x_bf16_rot = reps.transform(x, R), reps.transform(x.bfloat16(), R)
    assert x_rot.dtype == x_bf16_rot.dtype == torch.float32
    want = reps.transform(x.double(), R.double())
    torch.testing.assert_close(x_rot.double(), want, atol=1e-5, rtol=0)
    want = reps.transform(x.bfloat16().double(), R.double())  # same (rounded) input
    torch.testing.assert_close(x_bf16_rot.double(), want, atol=1e-5, rtol=0)


def test_folded_batch_norms_compute_the_same_function():
    """Folding the batch norms into the linear layers before them (what inference
    does) changes no output beyond rounding; the shipped model keeps no batch norm."""
    from pointnormals.inference import load_pretrained
    from pointnormals.nn.fold_norms import fold_batch_norms

    torch.manual_seed(0)
    stages = [
        {"reps": "8x0n+2x1n+1x2n", "k": 12, "hidden": [16]},
        {"reps": "8x0n+2x1n", "ratio": 0.25, "k": 16, "radius": 0.5, "hidden": [16]},
    ]
    learned = {"_target_": "pointnormals.frames.LearnedFrames"}
    model = TFPointNet(stages, frames=learned, norm="batch_norm").double()
    pos, batch = two_clouds()
    pos = pos.double()
    model.train()(pos, batch)  # the running statistics move away from (0, 1)
    model.eval()
    with torch.no_grad():
        before = model(pos, batch)
        assert fold_batch_norms(model) == 3  # two in the convolutions' MLPs, one going up
        after = model(pos, batch)
    torch.testing.assert_close(after, before, atol=1e-12, rtol=0)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert fold_batch_norms(model) == 0  # nothing left to fold
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model.train())
    shipped = load_pretrained()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in shipped.modules())


def test_radius_stages_in_eval_repeat_edges_to_a_fixed_degree(monkeypatch):
    """In eval mode a max-aggregated radius stage repeats each receiver's last edge up
    to the cap (one frame matrix per receiver, a dense max): the same outputs."""
    from pointnormals import graph

    model = variant_model("learned", "tensor").double()  # stage 1: radius 0.5, cap 16
    pos, batch = two_clouds()
    pos = pos.double()
    calls = []
    repeat_to = graph.Neighbourhood.repeat_to

    def spy(self, k):
        calls.append(k)
        return repeat_to(self, k)

    monkeypatch.setattr(graph.Neighbourhood, "repeat_to", spy)
    with torch.no_grad():
        repeated = model(pos, batch)
        assert calls == [16]
        monkeypatch.setattr(graph.Neighbourhood, "repeat_to", lambda self, k: self)
        plain = model(pos, batch)
    torch.testing.assert_close(repeated, plain, atol=1e-12, rtol=0)
    calls.clear()
    monkeypatch.setattr(graph.Neighbourhood, "repeat_to", spy)
    model.train()(pos, batch)  # training: batch-norm statistics must not see repeats
    assert calls == []


def test_format_1_checkpoints_load_unchanged(tmp_path):
    """Format 1 named frames by a registry key; loading migrates it to a _target_ and
    rebuilds the same model (the shipped checkpoint was migrated this way)."""
    from pointnormals.nn import load_model, save_model

    model = variant_model("pca", "tensor")
    path = tmp_path / "v1.ckpt"
    save_model(model, path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["format_version"] = 1
    checkpoint["model_config"]["frames"] = {"kind": "pca", "k": 12}
    torch.save(checkpoint, path)
    loaded = load_model(path)
    assert loaded.config["frames"] == {"_target_": "pointnormals.frames.PCAFrames", "k": 12}
    pos, batch = two_clouds()
    with torch.no_grad():
        assert torch.equal(loaded(pos, batch), model(pos, batch))
