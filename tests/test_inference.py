"""Patch-based inference on clouds of any size: cover, exactness, equivariance."""

from __future__ import annotations

import pytest
import torch
from conftest import small_model
from torch import nn

from pointnormals import inference
from pointnormals.geometry import normalize_cloud
from pointnormals.graph import PatchSearch
from pointnormals.inference import (
    PRECISIONS,
    choose_scale,
    load_pretrained,
    orient_outward,
    predict_normals,
    resolve_device,
)
from pointnormals.nn import save_model
from pointnormals.patching import CLEAN_SURFACE, even_samples, plan_patches
from pointnormals.refine import CLEAN_NEIGHBOURS, refine_neighbours
from pointnormals.testing import angle_deg, assert_equivariant, equivariance_errors


def ellipsoid(n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=dtype)
    x = x / x.norm(dim=-1, keepdim=True) * torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
    return x + 0.01 * torch.randn(n, 3, generator=g, dtype=dtype)


class Predict(nn.Module):
    """``predict_normals`` as a module (cast to each dtype by the equivariance helper)."""

    def __init__(self, model: nn.Module, patch_points: int = 256, scale: int = 1) -> None:
        super().__init__()
        self.model, self.patch_points, self.scale = model, patch_points, scale

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return predict_normals(
            self.model, pos, self.patch_points, scale=self.scale, batch_points=1024
        )


@pytest.mark.parametrize("scale", [1, 2])
def test_batching_and_patch_count_do_not_change_a_points_prediction(scale):
    model = small_model().double()
    pos = ellipsoid(1500)
    a = predict_normals(model, pos, 300, scale, batch_points=300)  # one per call
    b = predict_normals(model, pos, 300, scale, batch_points=100_000)  # all at once
    assert torch.equal(a, b)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(1500, dtype=torch.float64))
    # a cloud that fits one patch is the model itself
    whole = predict_normals(model, pos, patch_points=2000, refine=False)
    with torch.no_grad():
        direct = model(pos - pos.mean(0))
    torch.testing.assert_close(whole, direct, atol=1e-12, rtol=0)


def test_threads_do_not_change_the_normals():
    model = small_model().double()
    pos = ellipsoid(3000)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # one model call after the other
        alone = predict_normals(model, pos, 256, batch_points=512)
        torch.set_num_threads(2)  # two calls (and two fit chunks) side by side
        side_by_side = predict_normals(model, pos, 256, batch_points=512)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(alone, side_by_side)


class CountPatches(nn.Module):
    """A model that records how many patches every call gets."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(batch[-1]) + 1)
        return self.model(pos, batch)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_model_calls_share_the_patches_evenly_over_the_threads(threads):
    """As many calls as batches of at most ``batch_points`` take, rounded up to a
    multiple of the threads (none left alone at the end), patches shared out evenly."""
    pos = ellipsoid(3000)
    unit = normalize_cloud(pos)[0]  # as predict_normals plans them
    total = plan_patches(unit, 256, 1.5, search=PatchSearch(unit)).num_patches
    model = CountPatches(small_model().double())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        predict_normals(model, pos, 256, scale=1, batch_points=4 * 256, refine=False)
    finally:
        torch.set_num_threads(before)
    fewest = -(-total // 4)
    assert sum(model.calls) == total and max(model.calls) <= 4
    assert len(model.calls) == min(total, -(-fewest // threads) * threads)
    assert max(model.calls) - min(model.calls) <= 1


def test_prediction_is_o3_equivariant_with_patches():
    """Rotations, reflections, translations and permutations; float64 and float32 (the
    model and the cloud cast to each)."""
    assert_equivariant(Predict(small_model()), [ellipsoid(1200)], ["pos"], "normal")


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_every_context_scale_is_exact_in_the_default_precision(scale):
    """A float32 model on a float64 cloud (what predict.py runs): the geometry in float64
    makes every discrete decision commute with the transformation; what is left is float32
    rounding of continuous values (1e-5°), not a flipped neighbourhood (degrees)."""
    model = small_model()

    def predict(pos):
        return predict_normals(model, pos, 128, scale=scale, batch_points=1024)

    assert_equivariant(
        predict, [ellipsoid(1500)], ["pos"], "normal", trials=2, dtypes=(torch.float64,),
        tolerances={torch.float64: {"angle": 1e-3, "feature": 1e-9}},
    )  # fmt: skip


def test_default_precision_is_exact_where_float32_is_not():
    """``mixed`` (float64 geometry, float32 MLPs) is exact; all-float32 is not. Measured
    on the network's own normals: the plane fit after it (float64 in ``mixed``) would
    smooth part of float32's gap on this small, clean cloud."""
    model = small_model()
    gaps = {}
    for precision in PRECISIONS:

        def predict(pos, precision=precision):
            return predict_normals(model, pos, 256, scale=2, precision=precision, refine=False)

        trials = equivariance_errors(
            predict, [ellipsoid(3000)], ["pos"], "normal", trials=3, dtypes=(torch.float64,)
        )
        gaps[precision] = max(t.error for t in trials)
    assert gaps["mixed"] < 1e-3 and gaps["float64"] < 1e-3  # measured 9e-6°
    assert gaps["float32"] > 100 * gaps["mixed"]  # measured 0.03°
    with pytest.raises(ValueError, match="precision must be one of"):
        predict_normals(model, ellipsoid(300), precision="half")
    with pytest.raises(ValueError, match="fit_neighbours must be at least 1"):
        predict_normals(model, ellipsoid(300), fit_neighbours=0)


def test_default_precision_is_exact_on_quantised_coordinates():
    """A file on a grid (a scanner's 1 mm, ModelNet40's 4 decimals) has many exactly
    equal distances; rotating it breaks them by rounding. The tie rule of the float64
    neighbour search and sampling (graph.tie_key) keeps every decision; without it this
    check failed in both trials, by up to 180° (oriented normals flipped)."""
    model = small_model()
    cloud = ellipsoid(3000).mul(50).round().div(50)  # a 0.02 grid: ties at every rank

    def predict(pos):
        return predict_normals(model, pos, 256, scale=2, batch_points=1024)

    assert_equivariant(
        predict, [cloud], ["pos"], "normal", trials=2, dtypes=(torch.float64,),
        tolerances={torch.float64: {"angle": 1e-3, "feature": 1e-9}},
    )  # fmt: skip


def cylinder_with_flat_ends(n: int, seed: int = 0) -> torch.Tensor:
    """A closed cylinder: curved side, two exactly flat discs (CAD-like, noise-free)."""
    g = torch.Generator().manual_seed(seed)
    t, u = torch.rand(2, n, generator=g, dtype=torch.float64)
    angle = 2 * torch.pi * t
    side = torch.stack([angle.cos(), angle.sin(), 4 * u - 2], -1)
    disc = torch.stack([u.sqrt() * angle.cos(), u.sqrt() * angle.sin(), u.sign() * 2], -1)
    disc[n // 2 :, 2] = -2
    pick = torch.rand(n, generator=g) < 0.6
    return torch.where(pick.unsqueeze(-1), side, disc)


def test_flat_patches_get_the_planes_normal():
    pos = torch.randn(2, 100, 3, dtype=torch.float64)
    pos[0, :, 2] = 0.0  # patch 0 is flat
    pred = torch.nn.functional.normalize(torch.randn(2, 100, 3), dim=-1)
    out = inference.flat_patch_normals(pos, pred)
    assert torch.allclose(out[0].abs(), torch.tensor([0.0, 0.0, 1.0]).expand(100, 3))
    assert torch.equal(out[1], pred[1])


def test_flat_ends_are_exact_under_reflections():
    """Patches that lie entirely on a flat end are their own mirror image: no frame can
    orient them, so they take the plane's normal (a line: no equivariant sign exists);
    with overlapping patches blended, the prediction stays exact in float64 and in the
    default precision."""
    pos = cylinder_with_flat_ends(3000)
    for model in (small_model().double(), small_model()):  # float64, mixed

        def predict(pos, model=model):
            return predict_normals(model, pos, 128, scale=1, overlap=2.0)

        assert_equivariant(
            predict, [pos], ["pos"], "axis", trials=4, dtypes=(torch.float64,),
            tolerances={torch.float64: {"angle": 1e-3, "feature": 1e-9}},
        )  # fmt: skip


def test_scale_choice_grows_with_noise():
    factor = inference.SURFACE_FACTOR
    assert [choose_scale(16, 1024), choose_scale(16384, 1024)] == [1, 8]
    assert choose_scale(1024.0 / factor, 1024) == 1
    assert choose_scale(1025.0 / factor, 1024) == 2
    model = small_model()
    clean = ellipsoid(2000)
    # a noisy cloud gets a larger context: its prediction changes with the scale chosen
    noisy = clean + 0.2 * torch.randn(2000, 3, generator=torch.Generator().manual_seed(1))
    auto = predict_normals(model, noisy, 128)
    fixed = predict_normals(model, noisy, 128, scale=1)
    assert not torch.equal(auto, fixed)


@pytest.mark.parametrize("planes_noise", [True, False])
@pytest.mark.parametrize("model_noise", [True, False])
def test_context_follows_pca_planes_and_fit_the_models(monkeypatch, planes_noise, model_noise):
    """The noise estimate reads 4096 points (thin parts and close sheets can do that).
    The context is chosen before the network runs: the estimate's (scale 8) if the
    heights across PCA planes look like noise, else a clean surface's; the network runs
    once. The fit follows the heights across the model's normals: the estimate's
    neighbours and two passes if they look like noise, else 16 neighbours and one. The
    heights across PCA planes are measured once, for both verdicts."""
    contexts, fits, verdicts, planes = [], [], [], []
    plan, fit = inference.plan_patches, inference.refine_normals

    def planned(pos, context_points, *args, **kwargs):
        contexts.append(context_points)
        return plan(pos, context_points, *args, **kwargs)

    def fitted(pos, normals, neighbours, **kwargs):
        fits.append((neighbours, kwargs["passes"]))
        return fit(pos, normals, neighbours, **kwargs)

    def verdict(pos, normals, **kwargs):
        verdicts.append(normals is None)
        planes.append(kwargs.get("planes"))
        return planes_noise if normals is None else model_noise

    monkeypatch.setattr(inference, "surface_points", lambda *args, **kwargs: 4096.0)
    monkeypatch.setattr(inference, "roughness_is_noise", verdict)
    monkeypatch.setattr(inference, "plan_patches", planned)
    monkeypatch.setattr(inference, "refine_normals", fitted)
    predict_normals(small_model(), ellipsoid(3000), 256)
    assert verdicts == [True, False]  # PCA planes first, then the model's normals
    assert planes[0] is not None and planes[1] is planes[0]  # measured once
    assert contexts == [8 * 256 if planes_noise else choose_scale(CLEAN_SURFACE, 256) * 256]
    if model_noise:
        assert fits == [(refine_neighbours(4096), 2)]
    else:
        assert fits == [(CLEAN_NEIGHBOURS, 1)] == [(16, 1)]
    contexts.clear()
    verdicts.clear()
    planes.clear()
    predict_normals(small_model(), ellipsoid(3000), 256, scale=2)  # the user's scale stays
    assert contexts == [2 * 256] and verdicts == [False] and planes == [None]


def test_prediction_is_scale_invariant():
    model = small_model().double()
    pos = ellipsoid(1200)
    a = predict_normals(model, pos, 256)
    b = predict_normals(model, 1000.0 * pos, 256)
    assert angle_deg(a, b).max() < 1e-6


def test_identity_frames_fail_the_same_check():
    trials = equivariance_errors(
        Predict(small_model("identity")), [ellipsoid(1200)], ["pos"], "normal", trials=2
    )
    assert max(t.error for t in trials) > 1.0  # degrees


def test_far_away_coordinates_keep_float32_precision():
    """Scans in global coordinates (e.g. UTM): centring happens in float64 first."""
    model = small_model()  # float32
    pos = ellipsoid(1200)
    near = predict_normals(model, pos, 256)
    far = predict_normals(model, pos + torch.tensor([4.5e5, 5.2e6, 310.0], dtype=pos.dtype), 256)
    assert angle_deg(near, far, oriented=True).max() < 1e-2


def test_bad_clouds_are_refused_with_a_message():
    model = small_model()
    with pytest.raises(ValueError, match="at least 8 points"):
        predict_normals(model, torch.randn(5, 3))
    pos = torch.randn(100, 3)
    pos[7, 1] = float("nan")
    with pytest.raises(ValueError, match="1 of 100 points have non-finite"):
        predict_normals(model, pos)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        predict_normals(model, torch.randn(100, 2))


def test_orient_outward_points_away_from_the_centroid_on_a_sphere():
    pos = torch.nn.functional.normalize(torch.randn(500, 3, dtype=torch.float64), dim=-1)
    flips = torch.where(torch.rand(500) < 0.5, -1.0, 1.0).to(pos.dtype).unsqueeze(-1)
    oriented = orient_outward(pos + 5.0, pos * flips)
    torch.testing.assert_close(oriented, pos)


def test_device_and_checkpoint_errors(tmp_path):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="checkpoint not found"):
        load_pretrained(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a pointnormals checkpoint"):
        load_pretrained(junk)
    save_model(small_model(), tmp_path / "small.ckpt")
    loaded = load_pretrained(tmp_path / "small.ckpt")
    pos = ellipsoid(300).float()
    torch.testing.assert_close(predict_normals(loaded, pos), predict_normals(small_model(), pos))


def test_more_coincident_points_than_a_patch_still_get_normals():
    """600 copies of one point with patches of 256: some copies fit in no patch."""
    pos = torch.cat([ellipsoid(1000), ellipsoid(1)[:1].expand(600, 3)])
    normals = predict_normals(small_model(), pos, 256, scale=1)
    assert torch.isfinite(normals).all()
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(1600, dtype=pos.dtype))


def test_scan_lines_are_seen_as_even_samples_of_larger_patches_and_stay_exact(monkeypatch):
    """An ellipsoid cut into 20 lines (4k points: neighbourhoods span two directions at 32
    points): scale 32 / 4 = 8 and the patches' farthest point samples, exact in the
    default precision under rotations, reflections, translations and permutations, for
    float64 and float32 clouds."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1_000_000, 3, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=-1, keepdim=True) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    z = x[:, 2] / (6.0 / 20)
    pos = x[(z - z.round()).abs() < 0.002]
    contexts = []

    def spy(local, patch_points):
        contexts.append(local.size(1))
        return even_samples(local, patch_points)

    monkeypatch.setattr(inference, "even_samples", spy)
    model = small_model()

    def predict(pos):
        return predict_normals(model, pos, 256, batch_points=2048)

    assert_equivariant(
        predict, [pos], ["pos"], "normal", trials=2,
        tolerances={torch.float64: {"angle": 1e-3, "feature": 1e-9},
                    torch.float32: {"angle": 1e-2, "feature": 1e-4}},
    )  # fmt: skip
    assert contexts and set(contexts) == {8 * 256}
