"""Independent pieces of CPU work on threads (pointnormals.parallel)."""

from __future__ import annotations

import threading

import pytest
import torch

from pointnormals.parallel import thread_map

CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_results_come_in_order_on_other_threads_with_one_intra_op_thread_each(two_threads):
    caller = threading.get_ident()
    seen = []

    def work(i: int) -> int:
        seen.append((threading.get_ident() != caller, torch.get_num_threads()))
        return i * i

    assert list(thread_map(work, range(20), CPU)) == [i * i for i in range(20)]
    assert seen == [(True, 1)] * 20
    assert torch.get_num_threads() == 2  # restored


def test_the_callers_grad_and_inference_modes_hold_in_the_threads(two_threads):
    def modes(_: int) -> tuple[bool, bool]:
        return torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    with torch.inference_mode():
        assert set(thread_map(modes, range(4), CPU)) == {(False, True)}
    with torch.no_grad():
        assert set(thread_map(modes, range(4), CPU)) == {(False, False)}
    assert set(thread_map(modes, range(4), CPU)) == {(True, False)}
    x = torch.ones(3, requires_grad=True)
    total = sum(thread_map(lambda w: (w * x).sum(), [1.0, 2.0], CPU))
    total.backward()
    assert torch.equal(x.grad, torch.full((3,), 3.0))


def test_thread_count_is_restored_after_an_error_or_an_early_stop(two_threads):
    def fail(i: int) -> int:
        if i == 3:
            raise ValueError("piece 3")
        return i

    with pytest.raises(ValueError, match="piece 3"):
        list(thread_map(fail, range(6), CPU))
    assert torch.get_num_threads() == 2
    results = thread_map(lambda i: i, range(6), CPU)
    assert next(results) == 0
    results.close()
    assert torch.get_num_threads() == 2


def test_one_thread_one_item_or_another_device_is_plain_map(two_threads):
    caller = threading.get_ident()

    def where(_: int) -> bool:
        return threading.get_ident() == caller

    assert list(thread_map(where, [0], CPU)) == [True]
    assert list(thread_map(where, range(3), torch.device("meta"))) == [True] * 3
    torch.set_num_threads(1)
    assert list(thread_map(where, range(3), CPU)) == [True] * 3
