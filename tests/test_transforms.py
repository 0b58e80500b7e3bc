"""Transforms and protocols: exact maths, stated statistics, determinism."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from pointnormals.data import transforms as T
from pointnormals.data.protocols import (
    STANDARD_PROTOCOLS,
    Protocol,
    ProtocolDataset,
    get_protocol,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def sphere_cloud(n: int = 4000, seed: int = 0, center=(0.3, -2.0, 1.0), radius=3.0) -> Data:
    """Points on a sphere with their exact (outward) normals."""
    normal = torch.randn(n, 3, generator=gen(seed))
    normal = normal / normal.norm(dim=-1, keepdim=True)
    return Data(pos=torch.tensor(center) + radius * normal, normal=normal)


def plane_cloud(n: int = 20_000, seed: int = 0) -> Data:
    """Points on the square ``[-1, 1]^2 x {0}`` with normal ``+z``."""
    xy = 2 * torch.rand(n, 2, generator=gen(seed)) - 1
    pos = torch.cat([xy, torch.zeros(n, 1)], 1)
    return Data(pos=pos, normal=torch.tensor([[0.0, 0.0, 1.0]]).expand(n, 3).clone())


def test_normalize_is_invertible_and_commutes_with_o3():
    data = sphere_cloud()
    out = T.normalize(data)
    torch.testing.assert_close(out.pos.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    assert out.pos.norm(dim=-1).max() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(T.denormalize(out.pos, out.center, out.scale), data.pos)
    torch.testing.assert_close(out.normal, data.normal)
    q = T.random_orthogonal("o3", gen(3)).float()
    rotated = T.normalize(Data(pos=data.pos @ q.T, normal=data.normal @ q.T))
    torch.testing.assert_close(rotated.pos, out.pos @ q.T, atol=1e-5, rtol=0)
    assert data.pos.abs().max() > 2  # the input was not modified in place


def test_denormalize_a_batch():
    clouds = [sphere_cloud(100, seed=1), sphere_cloud(50, seed=2, center=(5.0, 0, 0), radius=0.5)]
    batch = Batch.from_data_list([T.normalize(c) for c in clouds])
    restored = T.denormalize(batch.pos, batch.center[batch.batch], batch.scale[batch.batch])
    torch.testing.assert_close(restored, torch.cat([c.pos for c in clouds]))


@pytest.mark.parametrize("mode", ["none", "z", "so3", "o3"])
def test_random_orthogonal_is_orthogonal(mode):
    for seed in range(20):
        q = T.random_orthogonal(mode, gen(seed))
        torch.testing.assert_close(q @ q.T, torch.eye(3, dtype=torch.float64))
        if mode != "o3":
            assert torch.det(q) == pytest.approx(1.0)
        if mode == "z":
            torch.testing.assert_close(q[:, 2], torch.tensor([0.0, 0, 1], dtype=torch.float64))


@pytest.mark.parametrize("mode", ["so3", "o3"])
def test_random_orthogonal_is_haar(mode):
    """Haar measure: E[Q] = 0 and, for the character, E[tr Q] = 0 and E[tr² Q] = 1."""
    qs = torch.stack([T.random_orthogonal(mode, gen(seed)) for seed in range(4000)])
    trace = qs.diagonal(dim1=1, dim2=2).sum(-1)
    assert qs.mean(0).abs().max() < 0.05
    assert trace.mean().abs() < 0.06 and trace.pow(2).mean() == pytest.approx(1.0, abs=0.08)
    det = torch.det(qs)
    reflected = (det < 0).double().mean()
    assert reflected == pytest.approx(0.5, abs=0.04) if mode == "o3" else reflected == 0


def test_z_rotations_only_fix_the_up_axis():
    qs = torch.stack([T.random_orthogonal("z", gen(seed)) for seed in range(2000)])
    torch.testing.assert_close(
        qs.mean(0), torch.diag(torch.tensor([0.0, 0, 1])).double(), atol=0.05, rtol=0
    )
    qy = T.random_orthogonal("z", gen(1), axis=1)
    torch.testing.assert_close(qy[:, 1], torch.tensor([0.0, 1, 0], dtype=torch.float64))


def test_rotate_maps_points_and_normals_alike_including_reflections():
    data = sphere_cloud(center=(0.0, 0.0, 0.0), radius=1.0)
    seen_reflection = False
    for seed in range(8):
        out = T.rotate(data, "o3", gen(seed))
        q = out.rotation[0]
        seen_reflection |= bool(torch.det(q) < 0)
        # on the unit sphere the outward normal is the position, before and after Q
        torch.testing.assert_close(out.normal, out.pos, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.pos @ q, data.pos, atol=1e-5, rtol=0)
    assert seen_reflection
    with pytest.raises(ValueError, match="unknown rotation"):
        T.rotate(data, "so2", gen())


def test_subsample():
    data = sphere_cloud(1000)
    out = T.subsample(data, 300, gen())
    assert out.pos.shape == (300, 3) and out.normal.shape == (300, 3)
    # the same rows of pos and normal are kept
    torch.testing.assert_close((out.pos - torch.tensor([0.3, -2.0, 1.0])) / 3, out.normal)
    assert len({tuple(p) for p in out.pos.tolist()}) == 300  # without replacement
    assert T.subsample(data, 5000, gen()).pos.shape == (1000, 3)
    torch.testing.assert_close(
        T.subsample(data, 300, gen(7)).pos, T.subsample(data, 300, gen(7)).pos
    )


@pytest.mark.parametrize("level", list(T.PCPNET_NOISE.values()))
def test_noise_has_the_stated_sigma(level):
    data = plane_cloud()
    out = T.add_noise(data, level, gen())
    sigma = level * (data.pos.max(0).values - data.pos.min(0).values).norm().item()
    assert sigma == pytest.approx(level * 8**0.5, rel=1e-3)  # the square's diagonal
    assert out.noise_sigma.item() == pytest.approx(sigma)
    displacement = out.pos - data.pos
    assert displacement.std(0).numpy() == pytest.approx([sigma] * 3, rel=0.03)
    assert displacement.mean(0).abs().max() < 3 * sigma / len(displacement) ** 0.5 * 2
    torch.testing.assert_close(out.normal, data.normal)
    torch.testing.assert_close(T.add_noise(data, 0.0, gen()).pos, data.pos)


def test_density_gradient_falls_off_linearly():
    data = Data(pos=torch.rand(200_000, 3, generator=gen()), normal=torch.randn(200_000, 3))
    out = T.vary_density(data, "gradient", gen(), min_keep=0.1, direction=torch.tensor([1.0, 0, 0]))
    kept = torch.histc(out.pos[:, 0], bins=10, min=0, max=1)
    total = torch.histc(data.pos[:, 0], bins=10, min=0, max=1)
    expected = 1 - 0.9 * (torch.arange(10) + 0.5) / 10
    torch.testing.assert_close(kept / total, expected, atol=0.02, rtol=0)
    # kept points keep their own normals
    index = torch.cdist(out.pos[:50], data.pos).argmin(1)
    torch.testing.assert_close(out.normal[:50], data.normal[index])


def test_density_stripes_alternate():
    data = Data(pos=torch.rand(200_000, 3, generator=gen()), normal=torch.randn(200_000, 3))
    out = T.vary_density(
        data, "stripes", gen(), min_keep=0.1, num_stripes=4, direction=torch.tensor([0, 0, 1.0])
    )
    kept = torch.histc(out.pos[:, 2], bins=8, min=0, max=1) / torch.histc(
        data.pos[:, 2], bins=8, min=0, max=1
    )
    torch.testing.assert_close(kept, torch.tensor([1, 0.1] * 4), atol=0.02, rtol=0)
    random_dir = T.vary_density(data, "gradient", gen(1))
    assert len(random_dir.pos) / len(data.pos) == pytest.approx(0.55, abs=0.05)


def test_get_protocol_parses_names():
    p = get_protocol("o3+noise_high+gradient", num_points=512)
    assert (p.rotation, p.noise, p.density, p.num_points) == ("o3", (0.012,), ("gradient",), 512)
    assert get_protocol("aligned") == Protocol("aligned", "none", (0.0,), ("none",), 2048)
    assert get_protocol("z+noise=0.02").noise == (0.02,)
    with pytest.raises(ValueError, match="bad protocol token"):
        get_protocol("o3+noisy")
    with pytest.raises(ValueError, match="density"):
        Protocol("x", density=("waves",))


def test_standard_protocols():
    protocols = [get_protocol(name) for name in STANDARD_PROTOCOLS]
    assert len(protocols) == 12 and {p.rotation for p in protocols} == {"none", "o3"}
    assert sorted({p.noise[0] for p in protocols}) == [0.0, 0.00125, 0.0065, 0.012]
    assert {p.density[0] for p in protocols} == {"none", "gradient", "stripes"}


def test_protocols_are_seeded_and_differ_only_in_rotation():
    base = [sphere_cloud(3000, seed=i) for i in range(3)]
    aligned = ProtocolDataset(base, get_protocol("aligned+noise_med+stripes", 1000), seed=5)
    rotated = ProtocolDataset(base, get_protocol("o3+noise_med+stripes", 1000), seed=5)
    for i in range(3):
        a, a2, r = aligned[i], aligned[i], rotated[i]
        torch.testing.assert_close(a.pos, a2.pos)  # deterministic
        torch.testing.assert_close(r.pos, a.pos @ r.rotation[0].T)  # same cloud, rotated
        torch.testing.assert_close(r.normal, a.normal @ r.rotation[0].T)
        assert a.pos.shape == (1000, 3)
        torch.testing.assert_close(a.rotation[0], torch.eye(3))
    other_seed = ProtocolDataset(base, aligned.protocol, seed=6)[0]
    assert not torch.allclose(other_seed.pos, aligned[0].pos)
    assert base[0].pos.abs().max() > 2  # the raw clouds are untouched


def test_training_augmentation_is_fresh_but_reproducible_from_the_torch_seed():
    train = ProtocolDataset([sphere_cloud()], Protocol("train", "so3", (0.0, 0.012)), seed=None)
    torch.manual_seed(1)
    first, second = train[0], train[0]
    assert not torch.allclose(first.pos, second.pos)
    torch.manual_seed(1)
    torch.testing.assert_close(train[0].pos, first.pos)


def test_protocol_noise_statistics_after_normalisation():
    """``noise_high`` on a normalised plane: σ = 1.2 % of its box diagonal, along z."""
    plane = plane_cloud(20_000)
    out = get_protocol("noise_high", num_points=None)(plane, gen())
    clean = T.normalize(plane).pos
    diagonal = (clean.max(0).values - clean.min(0).values).norm().item()
    assert diagonal == pytest.approx(2, rel=1e-2)  # a square inscribed in the unit disc
    assert out.noise_sigma.item() == pytest.approx(0.012 * diagonal, rel=1e-5)
    assert out.pos[:, 2].std().item() == pytest.approx(out.noise_sigma.item(), rel=0.03)


def test_crop_patch_keeps_the_points_nearest_a_cloud_point():
    data = sphere_cloud(2000)
    out = T.crop_patch(data, 0.1, gen(3))
    assert out.pos.size(0) == 200 and out.normal.size(0) == 200
    # the kept points are a ball around one of them: every kept point is nearer to the
    # centre than every dropped one, for some centre among the kept points
    dist = torch.cdist(out.pos, data.pos)  # (200, 2000)
    kept = torch.zeros(2000, dtype=torch.bool)
    kept[dist.argmin(1)] = True
    assert kept.sum() == 200
    radius_in = dist[:, kept].max(1).values
    radius_out = dist[:, ~kept].min(1).values
    assert (radius_in <= radius_out).any()
    torch.testing.assert_close(T.crop_patch(data, 0.1, gen(3)).pos, out.pos)  # seeded
    assert torch.equal(T.crop_patch(data, 1.0, gen(3)).pos, data.pos)  # whole cloud


def test_crop_patch_commutes_with_rotations_and_rejects_bad_fractions():
    data = sphere_cloud(1000)
    q = T.random_orthogonal("o3", gen(1)).float()
    rotated = Data(pos=data.pos @ q.T, normal=data.normal @ q.T)
    a, b = T.crop_patch(data, 0.2, gen(5)), T.crop_patch(rotated, 0.2, gen(5))
    torch.testing.assert_close(b.pos, a.pos @ q.T, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="patch fraction"):
        T.crop_patch(data, 0.0, gen(0))
    with pytest.raises(ValueError, match="patch fractions"):
        Protocol("bad", patch=(1.5,))


def test_protocol_with_patches_mixes_whole_clouds_and_patches():
    protocol = Protocol("train", patch=(1.0, 0.1), num_points=None)
    sizes = {protocol(sphere_cloud(1000), gen(s)).pos.size(0) for s in range(20)}
    assert sizes == {1000, 100}
