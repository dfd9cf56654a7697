"""Empirical (finite-width) NTK of PyTorch models, Θ̂(x, x') = Σ_p ∂f(x)/∂p · ∂f(x')/∂p ᵀ.

torch is imported lazily inside the functions (it is an optional dependency of theorytools).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from theorytools.errors import TheoryError

__all__ = ["empirical_ntk", "torch_mlp"]

_OUTPUTS = ("trace", "mean", "full")
_IMPLS = ("jacobian", "ntk_vp")


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the environment
        raise TheoryError("The empirical NTK needs PyTorch: pip install 'theorytools-verification[torch]'.") from None
    return torch


def empirical_ntk(
    model: Any,
    x1: np.ndarray,
    x2: np.ndarray | None = None,
    *,
    outputs: str = "mean",
    implementation: str = "jacobian",
    batch_size: int | None = None,
) -> np.ndarray:
    """Empirical NTK of a torch model at its current parameters (all parameters with ``requires_grad``).

    Args:
        model: ``torch.nn.Module`` mapping an (n, d) tensor to (n,) or (n, k) outputs (samples must not
            interact, e.g. no batch norm in training mode).
        x1, x2: (n1, d) and (n2, d) inputs (``x2=None``: x1); cast to the model's parameter dtype.
        outputs: ``"full"`` → (n1, n2, k, k) blocks Θ̂[i, j, a, b] = ⟨∇f_a(x1_i), ∇f_b(x2_j)⟩;
            ``"trace"`` → (n1, n2) Σ_a Θ̂[i, j, a, a]; ``"mean"`` → (n1, n2) trace / k, the quantity that
            converges to the analytic per-output NTK Θ_∞ (the limit is Θ_∞ ⊗ I_k, Jacot Thm 1).
        implementation: ``"jacobian"`` (per-sample Jacobians, contracted over parameters; memory
            O(n·k·P)) or ``"ntk_vp"`` (NTK-vector products: a VJP per output cotangent of f(x2) followed
            by a JVP through f(x1); memory O(P + n1·n2·k²)).
        batch_size: process x1 and x2 in blocks of this many rows (bounds the Jacobian memory).

    Returns:
        float64 numpy array.
    """
    torch = _torch()
    from torch.func import functional_call, jacrev, jvp, vjp, vmap

    if not isinstance(model, torch.nn.Module):
        raise TheoryError(f"The 'model' parameter of empirical_ntk must be a torch.nn.Module. Got {type(model).__name__} instead.")
    if outputs not in _OUTPUTS:
        raise TheoryError(f"The 'outputs' parameter of empirical_ntk must be one of {_OUTPUTS}. Got {outputs!r} instead.")
    if implementation not in _IMPLS:
        raise TheoryError(f"The 'implementation' parameter of empirical_ntk must be one of {_IMPLS}. Got {implementation!r} instead.")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1):
        raise TheoryError(f"The 'batch_size' parameter of empirical_ntk must be an int >= 1 or None. Got {batch_size!r} instead.")
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise TheoryError("The model passed to empirical_ntk has no trainable parameters.")
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    dtype = next(iter(params.values())).dtype
    device = next(iter(params.values())).device

    def as_tensor(name: str, x) -> Any:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim < 2 or arr.shape[0] == 0 or not np.all(np.isfinite(arr)):
            raise TheoryError(f"The '{name}' parameter of empirical_ntk must be a finite (n, ...) array. Got shape {arr.shape} instead.")
        return torch.as_tensor(arr, dtype=dtype, device=device)

    t1 = as_tensor("x1", x1)
    t2 = t1 if x2 is None else as_tensor("x2", x2)

    def f(p, x):
        out = functional_call(model, (p, buffers), (x,))
        return out.reshape(x.shape[0], -1)

    with torch.no_grad():
        k = f(params, t1[:1]).shape[1]
    n1, n2 = t1.shape[0], t2.shape[0]
    bs1 = n1 if batch_size is None else batch_size
    bs2 = n2 if batch_size is None else batch_size
    full = np.empty((n1, n2, k, k)) if outputs == "full" else None
    red = None if outputs == "full" else np.empty((n1, n2))

    def jac(x):
        j = jacrev(f)(params, x)  # dict of (n, k, *p.shape)
        return torch.cat([v.reshape(x.shape[0], k, -1) for v in j.values()], dim=2)

    def block_jacobian(xa, xb, ja=None):
        ja = jac(xa) if ja is None else ja
        jb = jac(xb)
        if outputs == "full":
            return torch.einsum("iap,jbp->ijab", ja, jb)
        return torch.einsum("iap,jap->ij", ja, jb)

    def block_vp(xa, xb):
        _, vjp_fn = vjp(lambda p: f(p, xb), params)
        nb = xb.shape[0]
        basis = torch.eye(nb * k, dtype=dtype, device=device).reshape(nb * k, nb, k)

        def column(ct):
            (tangent,) = vjp_fn(ct)
            return jvp(lambda p: f(p, xa), (params,), (tangent,))[1]  # (na, k)

        cols = vmap(column)(basis)  # (nb*k, na, k): [j*k + b, i, a]
        blk = cols.reshape(nb, k, xa.shape[0], k).permute(2, 0, 3, 1)  # [i, j, a, b]
        if outputs == "full":
            return blk
        return torch.diagonal(blk, dim1=2, dim2=3).sum(-1)

    for i0 in range(0, n1, bs1):
        xa = t1[i0 : i0 + bs1]
        ja = jac(xa) if implementation == "jacobian" else None
        for j0 in range(0, n2, bs2):
            xb = t2[j0 : j0 + bs2]
            blk = block_jacobian(xa, xb, ja) if implementation == "jacobian" else block_vp(xa, xb)
            blk = blk.detach().cpu().numpy().astype(np.float64)
            if outputs == "full":
                full[i0 : i0 + bs1, j0 : j0 + bs2] = blk
            else:
                red[i0 : i0 + bs1, j0 : j0 + bs2] = blk / (k if outputs == "mean" else 1)
    return full if outputs == "full" else red


def torch_mlp(
    in_dim: int,
    widths: Sequence[int],
    out_dim: int = 1,
    *,
    activation: str = "relu",
    W_std: float = 1.0,
    b_std: float | None = 0.0,
    parameterization: str = "ntk",
    seed: int = 0,
    dtype: str = "float64",
) -> Any:
    """A torch MLP matching ``serial(Dense(W_std, b_std), act, ..., Dense(W_std, b_std))`` of this package.

    NTK parameterisation: z = (W_std/√n_in)·W·a + b_std·b, W, b ~ N(0, 1); standard: W ~ N(0, W_std²/n_in),
    b ~ N(0, b_std²), z = W·a + b.  ``b_std=None`` removes biases.  Activations: relu, erf, tanh, abs,
    identity.  Its empirical NTK (``outputs="mean"``) converges to the analytic one as widths → ∞.
    """
    torch = _torch()
    nn = torch.nn
    acts = {
        "relu": torch.relu,
        "erf": torch.erf,
        "tanh": torch.tanh,
        "abs": torch.abs,
        "identity": lambda x: x,
    }
    if activation not in acts:
        raise TheoryError(f"The 'activation' parameter of torch_mlp must be one of {tuple(acts)}. Got {activation!r} instead.")
    if parameterization not in ("ntk", "standard"):
        raise TheoryError(f"The 'parameterization' parameter of torch_mlp must be 'ntk' or 'standard'. Got {parameterization!r} instead.")
    dims = [in_dim, *widths, out_dim]
    if any(not isinstance(d, (int, np.integer)) or d < 1 for d in dims):
        raise TheoryError(f"torch_mlp needs positive integer dimensions. Got in_dim={in_dim!r}, widths={widths!r}, out_dim={out_dim!r}.")
    tdtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(int(seed))
    ntk = parameterization == "ntk"

    class _Dense(nn.Module):
        def __init__(self, n_in: int, n_out: int) -> None:
            super().__init__()
            w = torch.randn(n_out, n_in, generator=gen, dtype=tdtype)
            self.w_scale = W_std / math.sqrt(n_in) if ntk else 1.0
            self.weight = nn.Parameter(w if ntk else w * (W_std / math.sqrt(n_in)))
            if b_std is None:
                self.bias = None
            else:
                b = torch.randn(n_out, generator=gen, dtype=tdtype)
                self.b_scale = b_std if ntk else 1.0
                self.bias = nn.Parameter(b if ntk else b * b_std)

        def forward(self, x):
            z = (x @ self.weight.T) * self.w_scale
            if self.bias is not None:
                z = z + self.b_scale * self.bias
            return z

    class _MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([_Dense(a, b) for a, b in zip(dims[:-1], dims[1:])])
            self.act = acts[activation]

        def forward(self, x):
            for layer in self.layers[:-1]:
                x = self.act(layer(x))
            return self.layers[-1](x)

    return _MLP()
