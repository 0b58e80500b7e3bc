"""The CUDA path: torch_cluster's kernels, the model on the GPU, mixed precision.

Marked ``cuda``: skipped without a GPU (see conftest.py); run them where one is present
with ``pytest -m cuda``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import two_clouds, variant_model

from pointnormals import graph
from pointnormals.frames import LearnedFrames
from pointnormals.geometry import symmetric_eigh
from pointnormals.refine import THICK, refine_normals
from pointnormals.testing import assert_equivariant

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def test_torch_cluster_kernels_match_the_cpu():
    pos = torch.rand(2000, 3, dtype=torch.float64)
    batch = torch.arange(2).repeat_interleave(1000)
    on_gpu = pos.to(CUDA), batch.to(CUDA)
    idx_cpu = graph.farthest_point_sample(pos, 0.25, batch)
    idx_gpu = graph.farthest_point_sample(*on_gpu[:1], 0.25, on_gpu[1]).cpu()
    assert set(idx_cpu.tolist()) == set(idx_gpu.tolist())
    for build in (
        lambda p, b: graph.knn_graph(p, 8, b),
        lambda p, b: graph.radius(p, p, 0.2, b, b, max_num_neighbors=16),
    ):
        e_cpu, e_gpu = build(pos, batch), build(*on_gpu).cpu()
        assert set(map(tuple, e_cpu.T.tolist())) == set(map(tuple, e_gpu.T.tolist()))


def test_tie_rule_of_the_float64_knn_and_radius_matches_the_cpu():
    """On a lattice (ties at every rank, groups wider than k + 1): the CUDA queries,
    torch_cluster's kernel and the dense one beyond k = 100, widen the same rows."""
    g = torch.Generator().manual_seed(5)
    pos = torch.randint(-6, 7, (900, 3), generator=g).double().mul(0.125).unique(dim=0)
    batch = (torch.arange(len(pos)) >= 400).long()
    gpu = pos.to(CUDA)
    for k in (3, 16, 40):  # widened to 82 at most: below the batched CUDA kNN's 100
        want = graph.knn(pos, pos[::5], k, batch, batch[::5])
        assert torch.equal(
            graph.knn(gpu, gpu[::5], k, batch.to(CUDA), batch[::5].to(CUDA)).cpu(), want
        )
    assert torch.equal(graph.knn(gpu, gpu[::5], 150).cpu(), graph.knn(pos, pos[::5], 150))
    want = graph.radius(pos, pos[::7], 0.3, batch, batch[::7], max_num_neighbors=12)
    got = graph.radius(
        gpu, gpu[::7], 0.3, batch.to(CUDA), batch[::7].to(CUDA), max_num_neighbors=12
    )
    assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("frames", ["pca", "learned", "learned_update"])
def test_model_on_gpu_matches_cpu_and_is_equivariant(frames):
    model = variant_model(frames, "tensor")
    pos, batch = two_clouds()
    expected = model(pos, batch)
    gpu_model = model.to(CUDA)
    got = gpu_model(pos.to(CUDA), batch.to(CUDA)).cpu()
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=0)
    assert_equivariant(
        gpu_model, [pos.to(CUDA), batch.to(CUDA)], ["pos", "batch"], "normal", trials=2
    )


def test_bf16_autocast_on_gpu_keeps_frames_float32():
    model = variant_model("learned", "tensor").to(CUDA)
    pos, batch = (t.to(CUDA) for t in two_clouds())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        normals = model(pos, batch)
        frames = LearnedFrames().to(CUDA)(pos, batch)
    assert normals.dtype == torch.float32 and frames.matrices.dtype == torch.float32
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(len(pos), device=CUDA))


def test_predict_on_gpu_matches_cpu_with_patches_beyond_the_cuda_knn_limit():
    """Patches of 512 points (k > torch_cluster's CUDA limit of 100; the KD-tree's
    neighbours moved to the GPU), far from the origin: the CPU's normals."""
    from pointnormals.inference import predict_normals

    model = variant_model("learned", "tensor").double().eval()
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(4000, 3, generator=g, dtype=torch.float64) * 300.0 + 1e4  # mm, far away
    cpu = predict_normals(model, pos, patch_points=512)
    gpu = predict_normals(model.to(CUDA), pos.to(CUDA), patch_points=512).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-6, rtol=0)


def test_plane_fit_on_gpu_matches_the_cpu():
    """:func:`~pointnormals.refine.refine_normals` on CUDA (the KD-tree's neighbours
    moved to the GPU, batched ``eigh``) gives the CPU's normals, also with the narrow
    refit of thick fits (:data:`~pointnormals.refine.THICK`)."""
    g = torch.Generator().manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(4000, 3, generator=g).double(), dim=1)
    pos = normals + 0.02 * torch.randn(4000, 3, generator=g).double()
    guide = torch.nn.functional.normalize(normals + 0.2 * torch.randn(4000, 3).double(), dim=1)
    for k, thick in ((48, None), (16, THICK)):
        cpu = refine_normals(pos, guide, k, thick=thick)
        gpu = refine_normals(pos.to(CUDA), guide.to(CUDA), k, thick=thick).cpu()
        torch.testing.assert_close(gpu, cpu, atol=1e-9, rtol=0)


def test_eigh_of_a_stack_beyond_the_cusolver_batch_limit():
    """cuSOLVER's batched eigensolver refuses ~32k+ matrices per call (seen on an H200:
    ``predict.py --device cuda`` on a 200k-point scan); :func:`symmetric_eigh` splits."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300_000, 3, 3, generator=g, dtype=torch.float64)
    matrices = a @ a.transpose(1, 2)
    values, vectors = symmetric_eigh(matrices)
    got_values, got_vectors = symmetric_eigh(matrices.to(CUDA))
    torch.testing.assert_close(got_values.cpu(), values, atol=1e-9, rtol=1e-9)
    # eigenvectors up to sign
    dots = (got_vectors.cpu() * vectors).sum(1).abs()
    torch.testing.assert_close(dots, torch.ones_like(dots), atol=1e-6, rtol=0)


def test_plane_fit_of_a_dense_scan_on_gpu():
    """The plane fit's CUDA chunks hold up to 2^22 / k points: far beyond the solver's
    batch limit on a dense scan."""
    g = torch.Generator().manual_seed(1)
    normals = torch.nn.functional.normalize(torch.randn(300_000, 3, generator=g).double(), dim=1)
    pos = normals + 0.002 * torch.randn(300_000, 3, generator=g).double()
    cpu = refine_normals(pos, normals, 16)
    gpu = refine_normals(pos.to(CUDA), normals.to(CUDA), 16).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-9, rtol=0)
