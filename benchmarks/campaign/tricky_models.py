"""Module classes for the load-fidelity cases (importable, so that a whole pickled module can be loaded
with ``--trust``: run with ``PYTHONPATH=benchmarks/campaign``)."""

from __future__ import annotations

import torch


class TwiceLinear(torch.nn.Module):
    """forward = 2 * linear(x): one child, but not the function of that child."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.linear = torch.nn.Linear(n_in, n_out)

    def forward(self, x):
        return 2 * self.linear(x)


class ResidualSequential(torch.nn.Sequential):
    """An ``nn.Sequential`` subclass whose forward adds a skip connection: x + body(x)."""

    def forward(self, x):
        h = x
        for m in self:
            h = m(h)
        return x + h


class ReorderedSequential(torch.nn.Sequential):
    """Children registered in one order, applied in the reverse order."""

    def forward(self, x):
        for m in reversed(list(self)):
            x = m(x)
        return x


class ScaledTanh(torch.nn.Module):
    def forward(self, x):
        return 3.0 * torch.tanh(x)
