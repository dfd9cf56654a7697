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


class TinyResNet(torch.nn.Module):
    """stem conv -> ReLU -> MaxPool(3, stride 2, pad 1) -> residual block -> linear (1x8x8 -> 3)."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.pool = torch.nn.MaxPool2d(3, stride=2, padding=1)
        self.c1, self.c2 = torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Conv2d(3, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        h = self.pool(torch.relu(self.stem(x)))
        h = torch.relu(h + self.c2(torch.relu(self.c1(h))))
        return self.fc(torch.flatten(h, 1))


class LeakyResMLP(torch.nn.Module):
    """``y = W3 leaky(x - W2 leaky(W1 x))``: the input (any sign) is carried past an activation."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2, self.l3 = torch.nn.Linear(4, 6), torch.nn.Linear(6, 4), torch.nn.Linear(4, 2)
        self.act = torch.nn.LeakyReLU(0.125)

    def forward(self, x):
        return self.l3(self.act(x - self.l2(self.act(self.l1(x)))))
