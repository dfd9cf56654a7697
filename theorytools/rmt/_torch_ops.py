"""Hessian- and Gauss--Newton-vector products of a torch model's loss on a batch.

torch is imported lazily inside the functions.  Conventions: ``loss_fn(outputs, targets)`` must
return the *mean* loss over the batch (as ``torch.nn.MSELoss()`` / ``CrossEntropyLoss()`` do by default),
so the operator is ``H_batch = (1/B) sum_i d^2 l_i / d theta^2`` -- the object of Granziol et al. (2022).
Parameters are flattened in ``model.parameters()`` order (only those with ``requires_grad``).

Over a data loader (``dataloader=``, as PyHessian's ``hessian(..., dataloader=)``) the operator is the
batch-size-weighted average ``sum_b (B_b / N) H_b`` of the per-batch operators, N = sum_b B_b: the
curvature of the mean loss over all N samples, whatever the batch sizes (an unequal last batch counts
with its own weight B_b / N).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from theorytools.errors import TheoryError



def _check_model_and_kind(torch, model, kind: str) -> None:
    """The argument checks shared by the batch and the data-loader operators."""
    if kind not in ("hessian", "ggn"):
        raise TheoryError(
            "The 'kind' parameter of torch_curvature_operator must be 'hessian' or 'ggn'. Got "
            f"{kind!r} instead.")
    if not isinstance(model, torch.nn.Module):
        raise TheoryError(
            "The 'model' parameter of torch_curvature_operator must be a torch.nn.Module. Got "
            f"{type(model).__name__} instead.")



class _SymmetricOperator:
    """``op(v)`` and ``to_dense()`` for operators with ``dim`` and ``matvec``."""

    dim: int

    def matvec(self, v: np.ndarray) -> np.ndarray:  # pragma: no cover - subclasses
        raise NotImplementedError

    def __call__(self, v: np.ndarray) -> np.ndarray:
        return self.matvec(v)

    def to_dense(self) -> np.ndarray:
        """Dense matrix by P matvecs with unit vectors, symmetrised (small models only)."""
        eye = np.eye(self.dim)
        H = np.stack([self.matvec(eye[i]) for i in range(self.dim)], axis=1)
        return 0.5 * (H + H.T)


class TorchCurvatureOperator(_SymmetricOperator):
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

        _check_model_and_kind(torch, model, kind)
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



class TorchLoaderCurvatureOperator(_SymmetricOperator):
    """Hessian / GGN operator of the mean loss over all samples of a data loader.

    ``H v = sum_b (B_b / N) H_b v`` with ``H_b`` the operator of the mean loss on batch b (size B_b, the
    length of the batch's inputs along axis 0) and N = sum_b B_b.  Every product makes one pass over the
    loader (forward, backward with graph, double backward per batch), so memory is that of one batch.
    The loader is any re-iterable of ``(inputs, targets)`` pairs (a ``torch.utils.data.DataLoader``, a
    list of tuples): it must yield the same samples on every pass (shuffling is fine, random
    augmentation or ``drop_last`` with shuffling is not).  Same attributes and methods as
    :class:`TorchCurvatureOperator`, plus ``n_samples`` (N) and ``n_batches``.
    """

    def __init__(self, model, loss_fn: Callable, dataloader, kind: str = "hessian"):
        import torch

        _check_model_and_kind(torch, model, kind)
        if iter(dataloader) is dataloader:
            raise TheoryError(
                "The 'dataloader' parameter of torch_curvature_operator must be re-iterable (a "
                "DataLoader or a list of (inputs, targets)); got a one-shot iterator.")
        self._torch = torch
        self._model = model
        self._loss_fn = loss_fn
        self._loader = dataloader
        self.kind = kind
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise TheoryError("torch_curvature_operator: the model has no trainable parameters.")
        self.dim = int(sum(int(p.numel()) for p in params))
        self.shape = (self.dim, self.dim)
        self.dtype = params[0].dtype
        self.device = params[0].device
        self.n_matvecs = 0
        self._params = params
        total, n, nb = 0.0, 0, 0
        with torch.no_grad():
            for inputs, targets in self._batches():
                b = int(inputs.shape[0])
                total += b * float(loss_fn(model(inputs), targets))
                n += b
                nb += 1
        if n == 0:
            raise TheoryError("torch_curvature_operator: the 'dataloader' yielded no samples.")
        self.n_samples = n
        self.n_batches = nb
        self._loss = total / n

    def _batches(self):
        for item in self._loader:
            try:
                inputs, targets = item
            except (TypeError, ValueError):
                raise TheoryError(
                    "The 'dataloader' of torch_curvature_operator must yield (inputs, targets) pairs."
                ) from None
            yield inputs, targets

    def parameters_flat(self) -> np.ndarray:
        """Parameter vector at which the operator is taken (float64 numpy)."""
        flat = self._torch.cat([p.detach().reshape(-1) for p in self._params])
        return flat.cpu().to(self._torch.float64).numpy()

    def loss(self) -> float:
        """Mean loss over the N samples (batch losses weighted by B_b / N)."""
        return self._loss

    def matvec(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.size != self.dim:
            raise TheoryError(f"TorchLoaderCurvatureOperator.matvec expects a vector of length "
                              f"{self.dim}; got {v.size}.")
        out = np.zeros(self.dim)
        for inputs, targets in self._batches():
            op = TorchCurvatureOperator(self._model, self._loss_fn, inputs, targets, kind=self.kind)
            out += (int(inputs.shape[0]) / self.n_samples) * op.matvec(v)
        self.n_matvecs += 1
        return out



def torch_curvature_operator(model, loss_fn: Callable, inputs=None, targets=None, *,
                             kind: str = "hessian", dataloader=None
                             ) -> TorchCurvatureOperator | TorchLoaderCurvatureOperator:
    """Hessian (``kind='hessian'``) or generalised Gauss--Newton (``kind='ggn'``) operator of
    ``loss_fn(model(inputs), targets)`` at the model's current parameters, or, with
    ``dataloader=`` instead of inputs/targets, of the mean loss over all the loader's samples
    (batches weighted by their size, see :class:`TorchLoaderCurvatureOperator`).

    The result plugs into :func:`lanczos`, :func:`slq_density`, :func:`top_eigenvalue` and
    :func:`hutchinson_trace`.  ``loss_fn`` must average over the batch (see module docstring).
    """
    if dataloader is not None:
        if inputs is not None or targets is not None:
            raise TheoryError("torch_curvature_operator takes either inputs and targets or "
                              "dataloader=, not both.")
        return TorchLoaderCurvatureOperator(model, loss_fn, dataloader, kind=kind)
    if inputs is None or targets is None:
        raise TheoryError("torch_curvature_operator needs inputs and targets (or dataloader=).")
    return TorchCurvatureOperator(model, loss_fn, inputs, targets, kind=kind)
