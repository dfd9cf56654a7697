"""Monte-Carlo NNGP and NTK of torch models (averages over random initialisations), and a torch CNN whose
infinite-width kernels are those of ``serial(Conv, act, ..., Flatten | GlobalAvgPool, Dense)``.

torch is imported lazily (through :mod:`theorytools.ntk._empirical`), as for the empirical NTK.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from theorytools.errors import TheoryError
from theorytools.ntk._empirical import _torch, empirical_ntk

__all__ = ["MonteCarloKernel", "monte_carlo_kernels", "torch_cnn"]


@dataclass(frozen=True)
class MonteCarloKernel:
    """Kernels averaged over ``n_models`` independently initialised models.

    Attributes:
        nngp: mean over models of f(x1)·f(x2)ᵀ/k (k outputs: each output unit is one sample), or ``None``.
        ntk: mean over models of the empirical NTK averaged over outputs (``outputs="mean"``), or ``None``.
        nngp_se, ntk_se: standard errors of those means, std over models (ddof 1)/√n_models.
        n_models: number of models.
    """

    nngp: np.ndarray | None
    ntk: np.ndarray | None
    nngp_se: np.ndarray | None
    ntk_se: np.ndarray | None
    n_models: int


def monte_carlo_kernels(
    make_model: Callable[[int], Any],
    x1: np.ndarray,
    x2: np.ndarray | None = None,
    *,
    n_models: int = 8,
    get: str | Sequence[str] = ("nngp", "ntk"),
    seed: int = 0,
    batch_size: int | None = None,
) -> MonteCarloKernel:
    """Monte-Carlo estimate of the infinite-width kernels of a family of torch models.

    Args:
        make_model: ``make_model(seed)`` returns a freshly initialised ``torch.nn.Module`` mapping an
            (n, ...) tensor to (n, k) outputs (the seeds are ``seed, seed + 1, ...``).
        x1, x2: inputs, (n1, ...) and (n2, ...) arrays (``x2=None``: x1).
        n_models: number of initialisations (>= 2, for the standard errors).
        get: ``"nngp"``, ``"ntk"`` or both.
        batch_size: passed to :func:`empirical_ntk`.

    Returns:
        :class:`MonteCarloKernel`.  The NNGP estimate is unbiased for the finite-width output covariance;
        both converge to the analytic kernels as the widths grow (fluctuations ~ width^(−1/2) per model).
    """
    torch = _torch()
    gets = (get,) if isinstance(get, str) else tuple(get)
    if not gets or any(g not in ("nngp", "ntk") for g in gets):
        raise TheoryError(f"The 'get' parameter of monte_carlo_kernels must be 'nngp', 'ntk' or both. Got {get!r} instead.")
    if not isinstance(n_models, (int, np.integer)) or isinstance(n_models, bool) or n_models < 2:
        raise TheoryError(f"The 'n_models' parameter of monte_carlo_kernels must be an int >= 2. Got {n_models!r} instead.")
    if not callable(make_model):
        raise TheoryError("The 'make_model' parameter of monte_carlo_kernels must be a callable seed -> torch.nn.Module.")
    nngps, ntks = [], []
    for r in range(int(n_models)):
        model = make_model(int(seed) + r)
        if not isinstance(model, torch.nn.Module):
            raise TheoryError(f"make_model must return a torch.nn.Module. Got {type(model).__name__} instead.")
        if "nngp" in gets:
            p = next(model.parameters())
            with torch.no_grad():
                f1 = model(torch.as_tensor(np.asarray(x1, dtype=np.float64), dtype=p.dtype)).reshape(len(x1), -1)
                f2 = f1 if x2 is None else model(torch.as_tensor(np.asarray(x2, dtype=np.float64), dtype=p.dtype)).reshape(len(x2), -1)
            f1 = f1.double().numpy()
            f2 = f2.double().numpy()
            nngps.append(f1 @ f2.T / f1.shape[1])
        if "ntk" in gets:
            ntks.append(empirical_ntk(model, x1, x2, outputs="mean", batch_size=batch_size))

    def stats(samples: list) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not samples:
            return None, None
        s = np.asarray(samples)
        return s.mean(axis=0), s.std(axis=0, ddof=1) / math.sqrt(s.shape[0])

    nngp, nngp_se = stats(nngps)
    ntk, ntk_se = stats(ntks)
    return MonteCarloKernel(nngp, ntk, nngp_se, ntk_se, int(n_models))


def torch_cnn(
    in_shape: Sequence[int],
    channels: Sequence[int],
    out_dim: int = 1,
    *,
    filter_size: int = 3,
    padding: str = "SAME",
    readout: str = "flatten",
    activation: str = "relu",
    W_std: float = 1.0,
    b_std: float | None = 0.0,
    seed: int = 0,
    dtype: str = "float64",
) -> Any:
    """A torch CNN in NTK parameterisation matching
    ``serial(*[Conv(filter_shape=filter_size, padding=padding, W_std, b_std), act] * len(channels),
    Flatten() | GlobalAvgPool(), Dense(W_std=W_std, b_std=b_std))``.

    Convolutions have stride 1 and an odd ``filter_size``; ``padding`` is ``"SAME"`` (zeros) or
    ``"CIRCULAR"``.  z = (W_std/√(C_in·k))·W ⋆ a + b_std·b with W, b ~ N(0, 1); activations relu, erf or gelu (x·Φ(x));
    ``b_std=None`` removes biases.  Inputs are (n, C, H, W) with (C, H, W) = ``in_shape``.
    """
    torch = _torch()
    nn, fn = torch.nn, torch.nn.functional
    acts = {"relu": torch.relu, "erf": torch.erf, "gelu": lambda z: fn.gelu(z, approximate="none")}
    if activation not in acts:
        raise TheoryError(f"The 'activation' parameter of torch_cnn must be one of {tuple(acts)}. Got {activation!r} instead.")
    if padding not in ("SAME", "CIRCULAR"):
        raise TheoryError(f"The 'padding' parameter of torch_cnn must be 'SAME' or 'CIRCULAR'. Got {padding!r} instead.")
    if readout not in ("flatten", "gap"):
        raise TheoryError(f"The 'readout' parameter of torch_cnn must be 'flatten' or 'gap'. Got {readout!r} instead.")
    if not isinstance(filter_size, int) or filter_size < 1 or filter_size % 2 == 0:
        raise TheoryError(f"The 'filter_size' parameter of torch_cnn must be an odd int >= 1. Got {filter_size!r} instead.")
    shape = tuple(in_shape)
    dims = [*shape, *channels, out_dim]
    if len(shape) != 3 or any(not isinstance(d, (int, np.integer)) or d < 1 for d in dims):
        raise TheoryError(f"torch_cnn needs in_shape (C, H, W) and channels of positive ints. Got {in_shape!r}, {channels!r}.")
    tdtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(int(seed))
    pad = filter_size // 2
    act = acts[activation]
    chans = [shape[0], *channels]

    class _CNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            k = filter_size
            self.weights = nn.ParameterList(
                [nn.Parameter(torch.randn(o, i, k, k, generator=gen, dtype=tdtype)) for i, o in zip(chans, chans[1:])])
            self.biases = None if b_std is None else nn.ParameterList(
                [nn.Parameter(torch.randn(o, generator=gen, dtype=tdtype)) for o in chans[1:]])
            fan_in = chans[-1] * (shape[1] * shape[2] if readout == "flatten" else 1)
            self.w_out = nn.Parameter(torch.randn(out_dim, fan_in, generator=gen, dtype=tdtype))
            self.b_out = None if b_std is None else nn.Parameter(torch.randn(out_dim, generator=gen, dtype=tdtype))

        def forward(self, x):
            for layer, w in enumerate(self.weights):
                x = fn.pad(x, (pad, pad, pad, pad), mode="circular" if padding == "CIRCULAR" else "constant")
                x = fn.conv2d(x, w) * (W_std / math.sqrt(w.shape[1] * filter_size**2))
                if self.biases is not None:
                    x = x + b_std * self.biases[layer][None, :, None, None]
                x = act(x)
            x = x.flatten(1) if readout == "flatten" else x.mean((2, 3))
            z = x @ self.w_out.T * (W_std / math.sqrt(self.w_out.shape[1]))
            return z if self.b_out is None else z + b_std * self.b_out

    return _CNN()
