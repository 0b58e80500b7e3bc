"""Split precision: MLPs in their own dtype whatever the input's (pointnormals.nn.precision)."""

from __future__ import annotations

import threading

import torch
from torch import nn
from torch_geometric.nn import MLP

from pointnormals.nn.precision import float32_mlps


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = MLP([3, 8, 4])
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mlp(x))


def test_mlps_compute_in_their_dtype_and_answer_in_the_inputs():
    net = Net().eval()
    x = torch.randn(5, 3, dtype=torch.float64)
    seen = []
    net.mlp.lins[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].dtype))
    handles = float32_mlps(net)
    out = net(x)
    assert out.dtype == torch.float64 and seen == [torch.float32]
    torch.testing.assert_close(out, net(x.float()).double())
    for handle in handles:
        handle.remove()
    assert net(x.float()).dtype == torch.float32  # undone


def test_concurrent_calls_with_different_dtypes_each_get_their_own_back():
    net = Net().eval()
    float32_mlps(net)
    inside, go = threading.Event(), threading.Event()
    forward = net.mlp.forward

    def slow_forward(x, *args, **kwargs):  # the float64 call waits inside the MLP
        if threading.current_thread() is not threading.main_thread():
            inside.set()
            go.wait(5)
        return forward(x, *args, **kwargs)

    net.mlp.forward = slow_forward
    out = {}
    worker = threading.Thread(target=lambda: out.update(a=net(torch.randn(4, 3).double())))
    worker.start()
    assert inside.wait(5)
    out["b"] = net(torch.randn(4, 3, dtype=torch.float16))  # meanwhile on this thread
    go.set()
    worker.join(5)
    assert out["a"].dtype == torch.float64 and out["b"].dtype == torch.float16
