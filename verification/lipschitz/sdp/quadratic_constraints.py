"""Quadratic constraints (QCs) for activation layers, used by every SDP Lipschitz method.

A QC for an activation layer ``w = phi(v)`` (width ``n``) is a family of symmetric matrices

    Q(y) = [[Q11, Q12], [Q12ᵀ, Q22]]  with  [Δv; Δw]ᵀ Q(y) [Δv; Δw] >= 0  for all increments,

linear in multipliers ``y`` (some constrained ``>= 0``, some free).  We store every family as a list of
*atoms*: an atom is a vector ``u ∈ R^n``, a coefficient triple ``(q11, q12, q22)`` and the index of the
multiplier it belongs to; the layer's QC is ``Σ_atoms y_var(a) · [[q11 uuᵀ, q12 uuᵀ], [q12 uuᵀ, q22 uuᵀ]]``.

Families (``form="neuron"`` one multiplier per neuron / group, ``form="layer"`` one per layer):

* slope-restricted elementwise on ``[alpha, beta]`` (Fazlyab et al. 2019, eq. (8)):
  ``Q = [[-2αβ T, (α+β) T], [(α+β) T, -2 T]]``, ``T = diag(t) ⪰ 0``.
* GroupSort(g) / MaxMin (Pauli et al., ICLR 2024, "sum preservation"): per group ``j``,
  ``T_j = λ_j I_g + γ_j 11ᵀ`` with ``λ_j >= 0`` and ``γ_j`` free, ``Q = [[T, 0], [0, -T]]``.  Valid because
  sorting is 1-Lipschitz (``||Δσ_j|| <= ||Δv_j||``) and preserves the group sum.
* Householder(v): as GroupSort with ``11ᵀ`` replaced by ``u uᵀ`` for an orthonormal basis ``u`` of ``v^⊥``
  (the reflection leaves ``v^⊥`` unchanged), one free ``γ`` per basis vector.

The pairwise ("LipSDP-Network") couplings are deliberately absent: they are not valid for ReLU.

The family is chosen from the activation's facts, never its type: ``slope_bounds()`` of an elementwise map,
else ``qc_basis()`` (the preserved directions of a grouped map) and ``group_size``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verification.activations import Activation
from verification.errors import InvalidParameterError, UnsupportedLayerError

__all__ = ["LayerQC", "layer_qc"]


@dataclass(frozen=True)
class LayerQC:
    """QC family of one activation layer as atoms.

    ``vectors``: (A, n) atom vectors ``u``; ``coef``: (A, 3) ``(q11, q12, q22)``; ``var``: (A,) multiplier
    index of each atom (0..n_vars-1); ``nonneg``: (n_vars,) bool, True if the multiplier must be ``>= 0``;
    ``unit``: True if atom ``i`` is exactly ``e_i`` (lets builders use diagonal formulas); ``kind``: label.
    """

    vectors: np.ndarray
    coef: np.ndarray
    var: np.ndarray
    nonneg: np.ndarray
    unit: bool
    kind: str

    @property
    def n_vars(self) -> int:
        return int(self.nonneg.shape[0])

    @property
    def width(self) -> int:
        return int(self.vectors.shape[1])

    def matrices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(Q11, Q12, Q22)`` at multipliers ``y`` (length ``n_vars``), as dense ``n x n`` arrays."""
        ya = np.asarray(y, dtype=np.float64)[self.var]
        u = self.vectors
        out = []
        for col in range(3):
            out.append((u.T * (ya * self.coef[:, col])) @ u)
        return out[0], out[1], out[2]

    def is_valid(self, y: np.ndarray, tol: float = 0.0) -> bool:
        """True if the nonnegative multipliers are ``>= -tol``."""
        y = np.asarray(y)
        return bool(np.all(y[self.nonneg] >= -tol))


def layer_qc(act: Activation, width: int, form: str = "neuron") -> LayerQC:
    """The QC family of activation ``act`` on a layer of ``width`` neurons (``form`` "neuron" or "layer")."""
    if form not in ("neuron", "layer"):
        raise InvalidParameterError(f"The 'form' parameter must be 'neuron' or 'layer'. Got {form!r} instead.")
    eye = np.eye(width)
    bounds = act.slope_bounds() if act.elementwise else None
    if bounds is not None:
        a, b = float(bounds[0]), float(bounds[1])
        coef = np.tile([-2.0 * a * b, a + b, -2.0], (width, 1))
        var = np.arange(width) if form == "neuron" else np.zeros(width, dtype=int)
        nvar = width if form == "neuron" else 1
        return LayerQC(eye, coef, var, np.ones(nvar, dtype=bool), True, f"slope[{a:g},{b:g}]")
    basis = act.qc_basis()
    if basis is not None:  # grouped l2 Lipschitz map preserving ``basis``
        g = act.group_size
        n_groups = width // g
        # ||phi(x) - phi(y)||^2 <= L^2 ||x - y||^2 with L the activation's (rounded-up) constant: 1 for sorting;
        # for a Householder reflection with a float v whose v·v exceeds 1 slightly above 1 (L^2 rounded up)
        lip = act.lipschitz(2)
        coef_norm = [1.0 if lip <= 1.0 else float(np.nextafter(lip * lip, np.inf)), 0.0, -1.0]
        vecs, coefs, var = [eye], [np.tile(coef_norm, (width, 1))], []
        if form == "layer":
            var.append(np.zeros(width, dtype=int))
            nonneg = [True]
            return LayerQC(eye, coefs[0], var[0], np.array(nonneg), True, f"{act.describe()}-layer")
        # neuron form: lambda_j per group (atoms e_i, i in group j), gamma_{j,t} per basis vector (free)
        var.append(np.repeat(np.arange(n_groups), g))
        nonneg = [np.ones(n_groups, dtype=bool)]
        nb = basis.shape[1]
        gam = np.zeros((n_groups * nb, width))
        for j in range(n_groups):
            gam[j * nb : (j + 1) * nb, j * g : (j + 1) * g] = basis.T
        vecs.append(gam)
        coefs.append(np.tile([1.0, 0.0, -1.0], (n_groups * nb, 1)))  # (w·dx)^2 - (w·dphi)^2 = 0 exactly
        var.append(n_groups + np.arange(n_groups * nb))
        nonneg.append(np.zeros(n_groups * nb, dtype=bool))
        return LayerQC(
            np.vstack(vecs), np.vstack(coefs), np.concatenate(var), np.concatenate(nonneg), False,
            f"{act.describe()}-sum-preserving",
        )
    raise UnsupportedLayerError(
        f"no quadratic constraint is known for the activation {act.describe()}; SDP methods support "
        "slope-restricted elementwise activations, GroupSort/MaxMin and Householder"
    )
