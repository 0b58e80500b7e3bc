"""Representation laws of TensorReps (d = 2, 3, 4) and Irreps (l <= 6)."""

from __future__ import annotations

import math

import pytest
import torch

from pointnormals.frames import random_orthogonal
from pointnormals.reps import Irreps, TensorReps
from pointnormals.reps.irreps import harmonic_basis

F64 = torch.float64


def rand_o(n: int, d: int) -> torch.Tensor:
    """Random O(d) elements, the first half with det -1, the rest with det +1."""
    R = random_orthogonal(n, d, dtype=F64)
    want = torch.where(torch.arange(n) < n // 2, -1.0, 1.0).to(F64)
    flip = (torch.linalg.det(R).sign() != want).to(F64)
    R[:, 0] *= (1 - 2 * flip).unsqueeze(-1)
    return R


def axis_rotation(axis: int, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    i, j = [k for k in range(3) if k != axis]
    R = torch.eye(3, dtype=F64)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


# -- parsing -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "dim"), [("16x0n+8x1n+2x1p+4x2n", 82), ("0p", 1), ("3x3n", 81), ("", 0)]
)
def test_tensor_reps_parse(spec, dim):
    reps = TensorReps(spec)
    assert reps.dim == dim
    assert TensorReps(str(reps)) == reps
    assert eval(repr(reps)) == reps


@pytest.mark.parametrize("bad", ["16x0q", "x1n", "8x", "1n+", "0x1n", "abc", "2x-1n"])
def test_bad_strings_raise_value_error(bad):
    with pytest.raises(ValueError, match="TensorReps"):
        TensorReps(bad)
    with pytest.raises(ValueError, match="Irreps"):
        Irreps(bad)


def test_irreps_degree_limit_and_immutability():
    with pytest.raises(ValueError, match="l=7"):
        Irreps("1x7n")
    reps = Irreps("4x0n+2x1p+1x2n+1x3p")
    assert reps.dim == 4 + 6 + 5 + 7
    with pytest.raises(AttributeError):
        reps.blocks = ()
    assert hash(reps) == hash(Irreps(str(reps)))
    assert TensorReps("1x1n", dim=2) != TensorReps("1x1n", dim=3)


# -- Cartesian tensor laws in d = 2, 3, 4 -----------------------------------------------
@pytest.mark.parametrize("d", [2, 3, 4])
def test_tensor_reps_homomorphism_and_orthogonality(d):
    reps = TensorReps("2x0n+1x0p+2x1n+1x1p+2x2n+1x2p+1x3n", dim=d)
    A, B = rand_o(6, d), rand_o(6, d).flip(0)
    MA, MB, MAB = reps.matrix(A), reps.matrix(B), reps.matrix(A @ B)
    torch.testing.assert_close(MAB, MA @ MB, atol=1e-12, rtol=0)
    eye = torch.eye(reps.dim, dtype=F64).expand_as(MA)
    torch.testing.assert_close(MA @ MA.transpose(1, 2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(reps.matrix(torch.eye(d, dtype=F64)), eye[:1], atol=0, rtol=0)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_tensor_blocks_are_the_textbook_formulas(d):
    R = rand_o(4, d)
    det = torch.linalg.det(R)
    reps = TensorReps("1x0n+1x0p+1x1n+1x1p+1x2n+1x2p", dim=d)
    x = torch.randn(4, reps.dim, dtype=F64)
    y = reps.transform(x, R)
    s, v, vp = x[:, 0], x[:, 2 : 2 + d], x[:, 2 + d : 2 + 2 * d]
    X = x[:, 2 + 2 * d : 2 + 2 * d + d * d].reshape(4, d, d)
    Xp = x[:, 2 + 2 * d + d * d :].reshape(4, d, d)
    torch.testing.assert_close(y[:, 0], s)
    torch.testing.assert_close(y[:, 1], det * x[:, 1])
    torch.testing.assert_close(y[:, 2 : 2 + d], (R @ v.unsqueeze(-1)).squeeze(-1))
    torch.testing.assert_close(y[:, 2 + d : 2 + 2 * d], det[:, None] * (R @ vp[..., None])[..., 0])
    rank2 = (R @ X @ R.transpose(1, 2)).reshape(4, -1)
    torch.testing.assert_close(y[:, 2 + 2 * d : 2 + 2 * d + d * d], rank2)
    rank2p = det[:, None] * (R @ Xp @ R.transpose(1, 2)).reshape(4, -1)
    torch.testing.assert_close(y[:, 2 + 2 * d + d * d :], rank2p)
    assert (det < 0).any() and (det > 0).any()


def test_transform_checks_width_and_broadcasts_single_matrix():
    reps = TensorReps("2x1n")
    with pytest.raises(ValueError, match="expected 6"):
        reps.transform(torch.zeros(3, 5), torch.eye(3))
    x = torch.randn(5, 6, dtype=F64)
    R = rand_o(1, 3)
    torch.testing.assert_close(reps.transform(x, R[0]), reps.transform(x, R.expand(5, 3, 3)))


# -- irreps ----------------------------------------------------------------------------
IRREPS = Irreps("2x0n+1x0p+1x1n+1x1p+1x2n+1x2p+1x3n+1x3p+1x4n+1x4p+1x5n+1x6p")


def test_irreps_homomorphism_orthogonality_parity():
    A, B = rand_o(6, 3), rand_o(6, 3).flip(0)
    MA, MB, MAB = IRREPS.matrix(A), IRREPS.matrix(B), IRREPS.matrix(A @ B)
    torch.testing.assert_close(MAB, MA @ MB, atol=1e-12, rtol=0)
    eye = torch.eye(IRREPS.dim, dtype=F64).expand_as(MA)
    torch.testing.assert_close(MA @ MA.transpose(1, 2), eye, atol=1e-12, rtol=0)
    # inversion -I acts as (-1)^l on ln and -(-1)^l on lp
    M = IRREPS.matrix(-torch.eye(3, dtype=F64))[0]
    for b, sl in zip(IRREPS.blocks, IRREPS.slices, strict=True):
        sign = (-1) ** b.order * (-1 if b.parity == "p" else 1)
        torch.testing.assert_close(M[sl, sl], sign * torch.eye(sl.stop - sl.start, dtype=F64))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("angle", [0.0, math.pi / 2, math.pi, 1.234, -2.5])
def test_irreps_exact_at_gimbal_lock(axis, angle):
    """Rotations about one coordinate axis: characters and homomorphism are exact."""
    R = axis_rotation(axis, angle)
    other = rand_o(1, 3)[0]
    for l in range(7):
        reps = Irreps(f"1x{l}n")
        D = reps.matrix(R)[0]
        if abs(math.sin(angle / 2)) > 1e-9:
            character = math.sin((l + 0.5) * angle) / math.sin(angle / 2)
        else:
            character = 2 * l + 1
        assert abs(torch.trace(D).item() - character) < 1e-10
        torch.testing.assert_close(
            reps.matrix(R @ other)[0], D @ reps.matrix(other)[0], atol=1e-12, rtol=0
        )
    torch.testing.assert_close(
        IRREPS.matrix(torch.eye(3, dtype=F64))[0], torch.eye(IRREPS.dim, dtype=F64)
    )


def test_low_irreps_agree_with_cartesian():
    R = rand_o(8, 3)
    for name in ["0n", "1n", "0p", "1p", "3x1n+2x0p"]:
        x = torch.randn(8, TensorReps(name).dim, dtype=F64)
        torch.testing.assert_close(Irreps(name).transform(x, R), TensorReps(name).transform(x, R))


def test_irreps_2n_is_the_symmetric_traceless_rank2_tensor():
    R = rand_o(5, 3)
    X = torch.randn(5, 3, 3, dtype=F64)
    X = X + X.transpose(1, 2)
    X = X - torch.diagonal(X, dim1=1, dim2=2).sum(-1)[:, None, None] * torch.eye(3) / 3
    Q2 = harmonic_basis(2, F64, torch.device("cpu"))  # (5, 9)
    coeffs = X.reshape(5, 9) @ Q2.T
    rotated = TensorReps("1x2n").transform(X.reshape(5, 9), R)
    torch.testing.assert_close(Irreps("1x2n").transform(coeffs, R), rotated @ Q2.T)
    torch.testing.assert_close(coeffs @ Q2, X.reshape(5, 9))  # X lies in the span


@pytest.mark.parametrize("reps", [TensorReps("2x0n+1x0p+2x1n+1x2p+1x3n"), IRREPS])
def test_grouped_transform_equals_repeated_matrices(reps):
    """x of shape (N, k, dim): all k features of a row are moved by that row's matrix."""
    R = rand_o(5, 3)
    x = torch.randn(5, 4, reps.dim, dtype=F64)
    grouped = reps.transform(x, R)
    flat = reps.transform(x.reshape(20, reps.dim), R.repeat_interleave(4, dim=0))
    torch.testing.assert_close(grouped, flat.reshape(5, 4, reps.dim))
