"""Normal orientation on closed shapes: ours (``--orient mst``) against Open3D's MST.

Every closed mesh is sampled with exact outward face normals (winding checked and made
outward by the signed volume), clean and with Gaussian noise of ``--noise`` times the
box diagonal. Both methods get the same unoriented input normals, with the same ``--k``:
the PCA normals of the (noisy) points (Open3D, k=30), or the exact normals with random
signs. The table gives the share of oriented normals that agree with the outward truth
(n · n_true > 0) and the times; Open3D's global sign is arbitrary, so it is credited with
the better of ± (ours chooses its own). ``--sizes`` adds timing rows at other sizes.

    python scripts/bench_orient.py                       # ~15 min on 2 cores (mostly Open3D)
    python scripts/bench_orient.py --sizes 100000,1000000 --shapes spot,torus
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pointnormals import o3d
from pointnormals.data.mesh import Mesh, sample_mesh
from pointnormals.data.synthetic import generate_shape
from pointnormals.geometry import angle_deg
from pointnormals.orient import orient_consistent

REPO = Path(__file__).resolve().parents[1]
MESHES = REPO.parent / "shared" / "data" / "meshes"
Sampler = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
SYNTHETIC = {"union-capsule-octahedron": 100, "displaced-cone": 109, "union-sharp-thin": 101}


def closed_outward(path: Path) -> Mesh:
    """The mesh with coincident vertices merged and its faces wound outward.

    Raises:
        ValueError: when some edge is not shared by exactly two faces with opposite
            directions (open, non-manifold or inconsistently wound).
    """
    mesh = o3d.read_triangle_mesh(path)
    vertices, index = np.unique(mesh.vertices, axis=0, return_inverse=True)
    triangles = index.reshape(-1)[mesh.triangles]
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    directed = np.unique(edges, axis=0, return_counts=True)
    reverse = np.unique(np.concatenate([edges, edges[:, ::-1]]), axis=0, return_counts=True)
    if directed[1].max() > 1 or reverse[1].min() != 2:
        raise ValueError(f"{path}: not closed with consistent winding")
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
    return Mesh(vertices, triangles if volume > 0 else triangles[:, ::-1])


def samplers(names: list[str]) -> dict[str, Sampler]:
    """A sampler per shape: meshes of ``../shared/data/meshes`` or procedural shapes."""
    out: dict[str, Sampler] = {}
    for name in names:
        if name == "torus":
            mesh = o3d.primitive_mesh("torus", torus_radius=1.0, tube_radius=0.3)
            out[name] = lambda rng, n, mesh=mesh: sample_mesh(mesh, n, rng)
        elif name in SYNTHETIC:
            seed = SYNTHETIC[name]
            out[name] = lambda rng, n, seed=seed: generate_shape(np.random.default_rng(seed), n)[:2]
        elif (MESHES / f"{name}.obj").is_file():
            try:
                mesh = closed_outward(MESHES / f"{name}.obj")
            except ValueError as err:
                print(f"skipped: {err}")
                continue
            out[name] = lambda rng, n, mesh=mesh: sample_mesh(mesh, n, rng)
        else:
            print(f"skipped: {name} (no such mesh in {MESHES})")
    return out


def open3d_mst(points: np.ndarray, normals: np.ndarray, k: int) -> np.ndarray:
    """Open3D's ``orient_normals_consistent_tangent_plane`` (Hoppe's MST)."""
    import open3d

    cloud = open3d.geometry.PointCloud(open3d.utility.Vector3dVector(points))
    cloud.normals = open3d.utility.Vector3dVector(normals)
    cloud.orient_normals_consistent_tangent_plane(k)
    return np.asarray(cloud.normals)


def run_case(points, truth, normals, k: int, with_open3d: bool) -> list[str]:
    """Table cells: input error, agreement and time of ours and Open3D, time ratio."""
    error = angle_deg(normals, truth).mean()  # unoriented
    start = time.perf_counter()
    ours = orient_consistent(torch.from_numpy(points), torch.from_numpy(normals), k=k).numpy()
    ours_s = time.perf_counter() - start
    ours_pct = ((ours * truth).sum(1) > 0).mean() * 100
    cells = [f"{error:.1f}°", f"{ours_pct:.2f}"]
    if not with_open3d:
        return [*cells, "–", f"{ours_s:.2f}", "–", "–"]
    start = time.perf_counter()
    theirs = open3d_mst(points, normals, k)
    theirs_s = time.perf_counter() - start
    agree = ((theirs * truth).sum(1) > 0).mean() * 100
    ratio = f"{ours_s / theirs_s:.3f}"
    return [*cells, f"{max(agree, 100 - agree):.2f}", f"{ours_s:.2f}", f"{theirs_s:.2f}", ratio]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "spot,homer,rocker-arm,cheburashka,nefertiti,torus," + ",".join(SYNTHETIC)
    parser.add_argument("--shapes", default=default, help="mesh names or procedural shapes")
    parser.add_argument("--points", type=int, default=100_000, help="points per shape")
    parser.add_argument("--noise", type=float, default=0.006, help="fraction of the diagonal")
    parser.add_argument("--k", type=int, default=16, help="graph neighbours (both methods)")
    parser.add_argument("--sizes", default="1000000", help="timing rows (clean, PCA normals)")
    parser.add_argument("--timing-shape", default="spot")
    parser.add_argument("--no-open3d", action="store_true", help="ours only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shapes = samplers(args.shapes.split(","))
    head = "| shape | points | noise | input normals | input err | ours % | Open3D % "
    print(f"threads={torch.get_num_threads()} k={args.k}\n")
    print(head + "| ours s | Open3D s | time ours/Open3D |")
    print("|" + " --- |" * 10)
    rows = [(name, args.points, noise) for name in shapes for noise in (0.0, args.noise)]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    timing = args.timing_shape if args.timing_shape in shapes else next(iter(shapes))
    rows += [(timing, size, 0.0) for size in sizes]
    for i, (name, num_points, noise) in enumerate(rows):
        rng = np.random.default_rng(args.seed)
        points, truth = shapes[name](rng, num_points)
        diagonal = np.linalg.norm(points.max(0) - points.min(0))
        points = points + rng.normal(scale=noise * diagonal, size=points.shape)
        inputs = {"PCA k=30": o3d.estimate_normals_pca(points, 30)}
        if i < len(rows) - len(sizes):  # accuracy rows: also the exact normals
            inputs["exact, random signs"] = truth * rng.choice([-1.0, 1.0], (len(truth), 1))
        for label, normals in inputs.items():
            cells = run_case(points, truth, normals, args.k, not args.no_open3d)
            row = [name, f"{num_points:,}", f"{noise * 100:.1f} %", label, *cells]
            print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
