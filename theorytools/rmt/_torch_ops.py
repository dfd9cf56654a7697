"""Hessian- and Gauss--Newton-vector products of a torch model's loss on a batch.

torch is imported lazily inside the functions.  Conventions: ``loss_fn(outputs, targets)`` must
return the *mean* loss over the batch (as ``torch.nn.MSELoss()`` / ``CrossEntropyLoss()`` do by default),
so the operator is ``H_batch = (1/B) sum_i d^2 l_i / d theta^2`` -- the object of Granziol et al. (2022).
Parameters are flattened in ``model.parameters()`` order (only those with ``requires_grad``).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from theorytools.errors import TheoryError


class TorchCurvatureOperator:
    """Symmetric ``(P, P)`` operator ``v -> H v`` (or ``G v``) of a torch model's batch loss.

    Attributes: ``shape``, ``dim`` (P), ``kind`` ('hessian' or 'ggn'), ``dtype`` (torch dtype of the
    parameters), ``n_matvecs`` (counter).  ``matvec`` takes and returns float64 numpy vectors; the product
    itself is computed in the model's dtype (use ``model.double()`` for round-off-level agreement).

    The autograd graph of the batch loss is built once, at construction, at the model's current
    parameters; every product reuses it (``retain_graph``), so do not modify the parameters in place
    while the operator is in use.

    * Hessian: double backward, ``H v = d/d theta (grad L . v)`` (Pearlmutter 1994).
    * GGN: ``G = J^T H_out J`` with J the Jacobian of the batch outputs and ``H_out`` the Hessian of the
      loss w.r.t. the outputs: ``J v`` by the double-vjp trick, ``H_out`` by double backward in output
      space, ``J^T`` by a vjp.  G is positive semi-definite for losses convex in the outputs.
    """

    def __init__(self, model, loss_fn: Callable, inputs, targets, kind: str = "hessian"):
        import torch

        if kind not in ("hessian", "ggn"):
            raise TheoryError(
                "The 'kind' parameter of torch_curvature_operator must be 'hessian' or 'ggn'. Got "
                f"{kind!r} instead.")
        if not isinstance(model, torch.nn.Module):
            raise TheoryError(
                "The 'model' parameter of torch_curvature_operator must be a torch.nn.Module. Got "
                f"{type(model).__name__} instead.")
        self._torch = torch
        self.kind = kind
        self._params = [p for p in model.parameters() if p.requires_grad]
        if not self._params:
            raise TheoryError("torch_curvature_operator: the model has no trainable parameters.")
        self._shapes = [p.shape for p in self._params]
        self._sizes = [int(p.numel()) for p in self._params]
        self.dim = int(sum(self._sizes))
        self.shape = (self.dim, self.dim)
        self.dtype = self._params[0].dtype
        self.device = self._params[0].device
        self.n_matvecs = 0
        with torch.enable_grad():
            out = model(inputs)
            if kind == "hessian":
                loss = loss_fn(out, targets)
                self._loss = float(loss.detach())
                self._grad = torch.autograd.grad(loss, self._params, create_graph=True)
            else:
                self._out = out
                o = out.detach().requires_grad_(True)
                loss = loss_fn(o, targets)
                self._loss = float(loss.detach())
                self._o = o
                (self._grad_out,) = torch.autograd.grad(loss, o, create_graph=True)
                self._u = torch.zeros_like(out, requires_grad=True)
                self._jtu = torch.autograd.grad(out, self._params, grad_outputs=self._u,
                                                create_graph=True)

    # -- flat <-> list
    def _unflatten(self, v: np.ndarray) -> list:
        torch = self._torch
        t = torch.as_tensor(np.ascontiguousarray(v), dtype=self.dtype, device=self.device)
        out, i = [], 0
        for shp, sz in zip(self._shapes, self._sizes):
            out.append(t[i: i + sz].reshape(shp))
            i += sz
        return out

    def _flatten(self, ts) -> np.ndarray:
        torch = self._torch
        flat = torch.cat([t.reshape(-1) for t in ts])
        return flat.detach().cpu().to(torch.float64).numpy()

    def parameters_flat(self) -> np.ndarray:
        """Parameter vector at which the operator is taken (float64 numpy)."""
        return self._flatten(self._params)

    def loss(self) -> float:
        """Batch loss at those parameters."""
        return self._loss

    def matvec(self, v: np.ndarray) -> np.ndarray:
        torch = self._torch
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.size != self.dim:
            raise TheoryError(f"TorchCurvatureOperator.matvec expects a vector of length {self.dim}; "
                              f"got {v.size}.")
        tangent = self._unflatten(v)
        self.n_matvecs += 1
        with torch.enable_grad():
            if self.kind == "hessian":
                hv = torch.autograd.grad(self._grad, self._params, grad_outputs=tangent,
                                         retain_graph=True)
                return self._flatten(hv)
            (jv,) = torch.autograd.grad(self._jtu, self._u, grad_outputs=tangent, retain_graph=True)
            (hjv,) = torch.autograd.grad(self._grad_out, self._o, grad_outputs=jv, retain_graph=True)
            gv = torch.autograd.grad(self._out, self._params, grad_outputs=hjv, retain_graph=True)
        return self._flatten(gv)

    def __call__(self, v: np.ndarray) -> np.ndarray:
        return self.matvec(v)

    def to_dense(self) -> np.ndarray:
        """Dense matrix by P matvecs with unit vectors, symmetrised (small models only)."""
        eye = np.eye(self.dim)
        H = np.stack([self.matvec(eye[i]) for i in range(self.dim)], axis=1)
        return 0.5 * (H + H.T)


def torch_curvature_operator(model, loss_fn: Callable, inputs, targets, *,
                             kind: str = "hessian") -> TorchCurvatureOperator:
    """Hessian (``kind='hessian'``) or generalised Gauss--Newton (``kind='ggn'``) operator of
    ``loss_fn(model(inputs), targets)`` at the model's current parameters.

    The result plugs into :func:`lanczos`, :func:`slq_density`, :func:`top_eigenvalue` and
    :func:`hutchinson_trace`.  ``loss_fn`` must average over the batch (see module docstring).
    """
    return TorchCurvatureOperator(model, loss_fn, inputs, targets, kind=kind)
