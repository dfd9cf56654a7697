"""Analytic NNGP and NTK of fully connected networks, composed layer by layer.

Conventions (the same as neural-tangents, Novak et al. 2020):

* Input covariance Σ⁽⁰⁾(x, x') = x·x'/d (divided by the input dimension d).
* NTK parameterisation (Jacot et al. 2018, eq. (1)): z = (W_std/√N_in)·W·a + b_std·b with W, b ~ N(0, 1).
  A Dense layer maps the post-activation covariance E and the incoming NTK Θ to
  Σ_out = W_std²·E + b_std²,  Θ_out = W_std²·Θ + Σ_out            (Jacot Thm 1, recursion (4)).
* Standard parameterisation (Sohl-Dickstein et al. 2020): W ~ N(0, W_std²/N_in), b ~ N(0, b_std²),
  z = W·a + b.  Same NNGP; Θ_out = N_in·E + W_std²·Θ (+1 if the layer has a bias), so the NTK grows with
  the (finite) widths N_in, which must therefore be given.
* An activation maps Σ to E_{(u,v)~N(0,Σ)}[σ(u)σ(v)] and Θ to Θ·E[σ'(u)σ'(v)] (Jacot Thm 1).
* ``b_std=None`` means no bias parameter; ``b_std=0.0`` a bias initialised at zero (it still
  contributes to the standard-parameterisation NTK).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from theorytools._threads import dense_work, numba_threads
from theorytools.errors import TheoryError
from theorytools.ntk import _kernels

__all__ = [
    "Kernel",
    "Layer",
    "Dense",
    "Relu",
    "LeakyRelu",
    "ABRelu",
    "Abs",
    "Erf",
    "Gelu",
    "Identity",
    "Elementwise",
    "Serial",
    "serial",
]


@dataclass(frozen=True)
class Kernel:
    """Infinite-width kernels of a network on a pair of input batches.

    Attributes:
        nngp: (n1, n2) NNGP covariance Σ(x1_i, x2_j) of the network output (per output unit).
        ntk: (n1, n2) neural tangent kernel Θ(x1_i, x2_j) per output unit, or ``None`` if not requested.
        var1: (n1,) NNGP variances Σ(x1_i, x1_i).
        var2: (n2,) NNGP variances Σ(x2_j, x2_j).
    """

    nngp: np.ndarray | None
    ntk: np.ndarray | None
    var1: np.ndarray
    var2: np.ndarray


@dataclass
class _State:
    """Mutable working state of the recursion (private)."""

    nngp: np.ndarray  # (n1, n2), C-contiguous float64
    ntk: np.ndarray  # (n1, n2); zeros before the first Dense layer
    var1: np.ndarray  # (n1,)
    var2: np.ndarray  # (n2,)
    width: int | None  # width of the current representation (input dim, then Dense widths)
    symmetric: bool  # x2 is x1: compute the upper triangle only
    do_ntk: bool


class Layer:
    """Base class: a layer transforms the kernel state (pre-/post-activation covariance and NTK)."""

    def _apply(self, state: _State) -> _State:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x1: np.ndarray, x2: np.ndarray | None = None, **kwargs) -> Kernel:
        return serial(self).kernel_fn(x1, x2, **kwargs)


def _check_float(name: str, owner: str, value, *, positive: bool = False, nonneg: bool = False) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (not positive or value > 0) and (not nonneg or value >= 0)
    if not ok:
        cond = " > 0" if positive else (" >= 0" if nonneg else "")
        raise TheoryError(
            f"The '{name}' parameter of {owner} must be a finite float{cond}. Got {value!r} instead."
        )
    return value


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer.

    Args:
        width: number of output units. Not needed for the infinite-width kernels in NTK
            parameterisation; required when the *next* Dense layer uses standard parameterisation
            (its NTK is ∝ this width).
        W_std: weight standard deviation σ_w.
        b_std: bias standard deviation σ_b, or ``None`` for no bias.
        parameterization: ``"ntk"`` or ``"standard"`` (see module docstring).
    """

    width: int | None = None
    W_std: float = 1.0
    b_std: float | None = 0.0
    parameterization: str = "ntk"

    def __post_init__(self) -> None:
        _check_float("W_std", "Dense", self.W_std, nonneg=True)
        if self.b_std is not None:
            _check_float("b_std", "Dense", self.b_std, nonneg=True)
        if self.parameterization not in ("ntk", "standard"):
            raise TheoryError(
                "The 'parameterization' parameter of Dense must be 'ntk' or 'standard'. "
                f"Got {self.parameterization!r} instead."
            )
        if self.width is not None and (
            not isinstance(self.width, (int, np.integer)) or isinstance(self.width, bool) or self.width < 1
        ):
            raise TheoryError(f"The 'width' parameter of Dense must be an int >= 1 or None. Got {self.width!r} instead.")

    def _apply(self, st: _State) -> _State:
        w2 = self.W_std**2
        b2 = 0.0 if self.b_std is None else self.b_std**2
        if self.parameterization == "ntk":
            c_e, c_0 = w2, b2  # Θ_out = W²Θ + Σ_out,  Σ_out = W²E + b²
        else:
            if st.width is None:
                raise TheoryError(
                    "A Dense layer with parameterization='standard' needs the width of its input: give "
                    "the preceding Dense layer a 'width'."
                )
            c_e, c_0 = float(st.width), (0.0 if self.b_std is None else 1.0)  # Θ_out = N_in·E + W²Θ (+1)
        _kernels.affine_inplace(st.nngp, st.ntk, w2, b2, c_e, c_0, st.do_ntk, st.symmetric)
        st.var1 = _kernels.affine_diag(st.var1, w2, b2)  # same expression as the cross terms
        st.var2 = st.var1 if st.symmetric else _kernels.affine_diag(st.var2, w2, b2)
        st.width = self.width
        return st


@dataclass(frozen=True)
class ABRelu(Layer):
    """σ(x) = a·min(x, 0) + b·max(x, 0); closed form of Cho & Saul (2009) with cos θ = Σ/√(q1q2) and
    θ via arctan2, exact at θ = 0 and θ = π (variances and cross terms by the same formula)."""

    a: float = 0.0
    b: float = 1.0

    def __post_init__(self) -> None:
        _check_float("a", type(self).__name__, self.a)
        _check_float("b", type(self).__name__, self.b)

    def _apply(self, st: _State) -> _State:
        a, b = float(self.a), float(self.b)
        _kernels.abrelu_inplace(st.nngp, st.ntk, st.var1, st.var2, a, b, st.do_ntk, st.symmetric)
        st.var1 = _kernels.abrelu_diag(st.var1, a, b)  # = (a² + b²)/2·q, by the cross-term formula
        st.var2 = st.var1 if st.symmetric else _kernels.abrelu_diag(st.var2, a, b)
        return st


@dataclass(frozen=True)
class Relu(ABRelu):
    """σ(x) = max(x, 0): E[σσ] = √(q1q2)(sin θ + (π − θ)cos θ)/(2π), E[σ'σ'] = (π − θ)/(2π)."""

    a: float = field(default=0.0, init=False)
    b: float = field(default=1.0, init=False)


@dataclass(frozen=True, init=False)
class LeakyRelu(ABRelu):
    """σ(x) = max(x, 0) + alpha·min(x, 0)."""

    def __init__(self, alpha: float = 0.01) -> None:
        object.__setattr__(self, "a", _check_float("alpha", "LeakyRelu", alpha))
        object.__setattr__(self, "b", 1.0)


@dataclass(frozen=True)
class Abs(ABRelu):
    """σ(x) = |x| (ABRelu with a = −1, b = 1)."""

    a: float = field(default=-1.0, init=False)
    b: float = field(default=1.0, init=False)


@dataclass(frozen=True)
class Erf(Layer):
    """σ(x) = a·erf(b·x) + c (Williams 1997 closed form).

    Implemented as: Σ, Θ ← b²Σ, b²Θ; apply the erf dual; then NNGP ← a²·E + c², NTK ← a²·Θ·Ė.
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0

    def __post_init__(self) -> None:
        for name in ("a", "b", "c"):
            _check_float(name, "Erf", getattr(self, name))

    def _apply(self, st: _State) -> _State:
        a2, b2, c2 = self.a**2, self.b**2, self.c**2
        if b2 != 1.0:
            st.nngp *= b2
            if st.do_ntk:
                st.ntk *= b2
            st.var1 = b2 * st.var1
            st.var2 = st.var1 if st.symmetric else b2 * st.var2
        _kernels.erf_inplace(st.nngp, st.ntk, st.var1, st.var2, st.do_ntk, st.symmetric)
        if a2 != 1.0:
            st.nngp *= a2
            if st.do_ntk:
                st.ntk *= a2
        st.nngp += c2

        def diag(q: np.ndarray) -> np.ndarray:
            # (2/π)·arcsin(2q/(1+2q)) by the cross-term formula, then the same a², c² operations
            e = _kernels.erf_diag(q)
            if a2 != 1.0:
                e *= a2
            e += c2
            return e

        st.var1 = diag(st.var1)
        st.var2 = st.var1 if st.symmetric else diag(st.var2)
        return st


@dataclass(frozen=True)
class Gelu(Layer):
    """σ(x) = x·Φ(x) (exact GELU, Φ the standard normal CDF; neural-tangents' ``stax.Gelu()``).

    Closed forms derived by Gaussian integration by parts (see ``_kernels._gelu_pair``):
    E[σσ] = Σ/4 + Σ·asin(ρ)/(2π) + (q1q2·det + Σ²)/(2π·D·√det), E[σ'σ'] = ∂E[σσ]/∂Σ, with
    D = (1+q1)(1+q2), det = D − Σ², ρ = Σ/√D.  Variances by the same formula, so identical inputs
    give cross terms equal to the variances bit for bit.  The tanh approximation is not provided.
    """

    def _apply(self, st: _State) -> _State:
        _kernels.gelu_inplace(st.nngp, st.ntk, st.var1, st.var2, st.do_ntk, st.symmetric)
        st.var1 = _kernels.gelu_diag(st.var1)
        st.var2 = st.var1 if st.symmetric else _kernels.gelu_diag(st.var2)
        return st


@dataclass(frozen=True)
class Identity(Layer):
    """σ(x) = x: E[σσ] = Σ, E[σ'σ'] = 1 (the kernel is unchanged)."""

    def _apply(self, st: _State) -> _State:
        return st


@dataclass(frozen=True)
class Elementwise(Layer):
    """Any elementwise activation, by Gauss–Hermite quadrature of the bivariate Gaussian expectations.

    E[φ(u)φ(v)] with u = √q1·z1, v = √q2·(c·z1 + √(1−c²)·z2), z ~ N(0, I₂), c = Σ/√(q1q2), on a
    ``degree``² tensor grid of probabilists' Hermite nodes.  Accurate for smooth φ (exponential
    convergence); for kinks (ReLU-like) prefer the closed forms.

    Args:
        fn: vectorised numpy function φ.
        fn_prime: its derivative; if ``None``, central differences with step 1e−6.
        degree: number of Hermite nodes per dimension.
        batch_rows: rows of x1 processed at once (memory ≈ batch_rows·n2·degree² floats).
    """

    fn: Callable[[np.ndarray], np.ndarray]
    fn_prime: Callable[[np.ndarray], np.ndarray] | None = None
    degree: int = 64
    batch_rows: int = 16

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TheoryError(f"The 'fn' parameter of Elementwise must be callable. Got {self.fn!r} instead.")
        if self.fn_prime is not None and not callable(self.fn_prime):
            raise TheoryError(
                f"The 'fn_prime' parameter of Elementwise must be callable or None. Got {self.fn_prime!r} instead."
            )
        if not isinstance(self.degree, (int, np.integer)) or self.degree < 2:
            raise TheoryError(f"The 'degree' parameter of Elementwise must be an int >= 2. Got {self.degree!r} instead.")

    def _deriv(self, x: np.ndarray) -> np.ndarray:
        if self.fn_prime is not None:
            return np.asarray(self.fn_prime(x), dtype=np.float64)
        h = 1e-6
        return (np.asarray(self.fn(x + h)) - np.asarray(self.fn(x - h))) / (2 * h)

    @staticmethod
    def _correlation(s: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
        """c = Σ/√(q1q2) in [−1, 1] (0 where a variance vanishes); exactly 1 for identical inputs,
        since √(fl(q·q)) = q."""
        den = np.sqrt(np.maximum(q1, 0.0)[:, None] * np.maximum(q2, 0.0)[None, :])
        c = np.divide(s, den, out=np.zeros_like(s), where=den > 0)
        return np.clip(c, -1.0, 1.0)

    def _expect(self, g: Callable, c: np.ndarray, q1: np.ndarray, q2: np.ndarray, z: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.empty_like(c)
        r1 = np.sqrt(np.maximum(q1, 0.0))
        r2 = np.sqrt(np.maximum(q2, 0.0))
        gu = np.ascontiguousarray(g(r1[:, None] * z[None, :]) * w[None, :])  # (n1, m), weights folded in
        for i0 in range(0, c.shape[0], self.batch_rows):
            sl = slice(i0, i0 + self.batch_rows)
            sc = np.sqrt((1.0 - c[sl]) * (1.0 + c[sl]))
            # v[i, j, a, b] = r2_j (c_ij z_a + sc_ij z_b)
            v = r2[None, :, None, None] * (c[sl, :, None, None] * z[None, None, :, None] + sc[:, :, None, None] * z[None, None, None, :])
            gv = np.ascontiguousarray(g(v), dtype=np.float64)
            # Σ_a gu_ia Σ_b gv_ijab w_b, summed in numba (not BLAS) so each entry depends on its values only
            _kernels.quadrature_pairs(gu[sl], gv, w, out[sl])
        return out

    @staticmethod
    def _exact_ends(e: np.ndarray, c: np.ndarray, q1: np.ndarray, q2: np.ndarray, d1: np.ndarray) -> None:
        """Where c = 1 and q1 = q2 (identical inputs, repeated rows) the bivariate expectation is the
        univariate one: use the variance value d1 itself, so cross terms equal variances exactly."""
        same = (c == 1.0) & (q1[:, None] == q2[None, :])
        if np.any(same):
            i, j = np.nonzero(same)
            e[i, j] = d1[i]

    def _apply(self, st: _State) -> _State:
        z, w = np.polynomial.hermite_e.hermegauss(int(self.degree))
        w = w / math.sqrt(2.0 * math.pi)
        fn = lambda x: np.asarray(self.fn(x), dtype=np.float64)  # noqa: E731
        if st.symmetric:
            _mirror_upper(st)
        c = self._correlation(st.nngp, st.var1, st.var2)

        def expect(g: Callable) -> np.ndarray:
            # the tensor rule is not symmetric in (u, v): average both orientations, so that the
            # symmetric, rectangular and blocked evaluations give the same entries bit for bit
            e = self._expect(g, c, st.var1, st.var2, z, w)
            if st.symmetric:  # c is exactly symmetric
                return 0.5 * (e + e.T)
            return 0.5 * (e + self._expect(g, np.ascontiguousarray(c.T), st.var2, st.var1, z, w).T)

        def diag(g: Callable, q: np.ndarray) -> np.ndarray:
            return np.sum(g(np.sqrt(np.maximum(q, 0.0))[:, None] * z[None, :]) ** 2 * w[None, :], axis=1)

        if st.do_ntk:
            ed = expect(self._deriv)
            self._exact_ends(ed, c, st.var1, st.var2, diag(self._deriv, st.var1))
            st.ntk *= ed
        e = expect(fn)
        if st.symmetric:
            var1 = var2 = diag(fn, st.var1)
        else:  # one evaluation for both sides, so equal variances map to equal values
            both = diag(fn, np.concatenate([st.var1, st.var2]))
            var1, var2 = both[: st.var1.size], both[st.var1.size :]
        self._exact_ends(e, c, st.var1, st.var2, var1)
        st.nngp = np.ascontiguousarray(e)
        st.var1, st.var2 = var1, var2
        if st.symmetric:  # keep the exact diagonal
            np.fill_diagonal(st.nngp, st.var1)
        return st


@dataclass(frozen=True)
class Serial(Layer):
    """Composition of layers (applied left to right); itself a layer, so serials nest."""

    layers: tuple[Layer, ...]

    def _apply(self, st: _State) -> _State:
        for layer in self.layers:
            st = layer._apply(st)
        return st

    def kernel_fn(
        self,
        x1: np.ndarray,
        x2: np.ndarray | None = None,
        get: str | Sequence[str] = ("nngp", "ntk"),
        batch_size: int | None = None,
    ) -> Kernel:
        """NNGP and NTK of the network's output between the rows of ``x1`` and ``x2``.

        Args:
            x1: (n1, d) inputs.
            x2: (n2, d) inputs, or ``None`` for ``x1`` (exploits symmetry).
            get: ``"nngp"``, ``"ntk"`` or both; the NTK costs one extra multiply per layer.
            batch_size: if given, compute in blocks of ``batch_size`` rows × columns (memory
                O(batch_size²) for the intermediates; the result is exact, the recursion is entrywise).

        Returns:
            :class:`Kernel` with (n1, n2) matrices (the field not requested is ``None``).
        """
        gets = (get,) if isinstance(get, str) else tuple(get)
        if not gets or any(g not in ("nngp", "ntk") for g in gets):
            raise TheoryError(f"The 'get' parameter of kernel_fn must be 'nngp', 'ntk' or both. Got {get!r} instead.")
        x1 = _as_inputs("x1", x1)
        symmetric = x2 is None
        x2 = x1 if symmetric else _as_inputs("x2", x2)
        if x1.shape[1] != x2.shape[1]:
            raise TheoryError(
                f"The 'x2' parameter of kernel_fn must have the same number of columns as x1 ({x1.shape[1]}). "
                f"Got {x2.shape[1]} instead."
            )
        do_ntk = "ntk" in gets
        if batch_size is not None:
            if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
                raise TheoryError(f"The 'batch_size' parameter of kernel_fn must be an int >= 1. Got {batch_size!r} instead.")
        with numba_threads(dense_work(self.layers, x1, x2)):
            return self._kernel(x1, x2, symmetric, do_ntk, gets, batch_size)

    def _kernel(self, x1, x2, symmetric: bool, do_ntk: bool, gets: tuple, batch_size: int | None) -> Kernel:
        n1, n2 = x1.shape[0], x2.shape[0]
        if batch_size is None or (batch_size >= n1 and batch_size >= n2):
            st = _run(self, _initial_state(x1, x2, symmetric, do_ntk))
            nngp, ntk, var1, var2 = st.nngp, (st.ntk if do_ntk else None), st.var1, st.var2
        else:
            nngp = np.empty((n1, n2))
            ntk = np.empty((n1, n2)) if do_ntk else None
            var1 = np.empty(n1)
            var2 = np.empty(n2)
            for i0 in range(0, n1, batch_size):
                i1 = min(i0 + batch_size, n1)
                for j0 in range(i0 if symmetric else 0, n2, batch_size):
                    j1 = min(j0 + batch_size, n2)
                    sym_block = symmetric and i0 == j0
                    xb2 = None if sym_block else x2[j0:j1]
                    st = _run(self, _initial_state(x1[i0:i1], x1[i0:i1] if sym_block else xb2, sym_block, do_ntk))
                    nngp[i0:i1, j0:j1] = st.nngp
                    if do_ntk:
                        ntk[i0:i1, j0:j1] = st.ntk
                    if symmetric and not sym_block:
                        nngp[j0:j1, i0:i1] = st.nngp.T
                        if do_ntk:
                            ntk[j0:j1, i0:i1] = st.ntk.T
                    var1[i0:i1] = st.var1  # variances depend only on their own input
                    if symmetric:
                        var1[j0:j1] = st.var2
                    else:
                        var2[j0:j1] = st.var2
            if symmetric:
                var2 = var1
        return Kernel(
            nngp=nngp if "nngp" in gets else None,
            ntk=ntk,
            var1=var1,
            var2=var1 if symmetric else var2,
        )

    __call__ = kernel_fn


def _mirror_upper(st: _State) -> None:
    """Copy the upper triangle (the only part the symmetric cores compute) onto the lower one."""
    _kernels.mirror_upper(st.nngp)
    if st.do_ntk:
        _kernels.mirror_upper(st.ntk)


def _run(layer: Layer, st: _State) -> _State:
    st = layer._apply(st)
    if st.symmetric:
        _mirror_upper(st)
    return st


def serial(*layers: Layer) -> Serial:
    """Compose layers, e.g. ``serial(Dense(W_std=1.5, b_std=0.05), Relu(), Dense(W_std=1.5, b_std=0.05))``."""
    for k, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TheoryError(f"The layer #{k} passed to serial must be a Layer (Dense, Relu, ...). Got {layer!r} instead.")
    return Serial(tuple(layers))


def _as_inputs(name: str, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or not np.all(np.isfinite(x)):
        raise TheoryError(
            f"The '{name}' parameter of kernel_fn must be a finite (n, d) array with n, d >= 1. Got shape {x.shape} instead."
        )
    return np.ascontiguousarray(x)


def _initial_state(x1: np.ndarray, x2: np.ndarray | None, symmetric: bool, do_ntk: bool) -> _State:
    d = x1.shape[1]
    if symmetric:
        x2 = x1
    # one routine for cross terms and variances (not BLAS, whose rounding depends on the kernel and
    # on the position of a row): identical rows give Σ(x, x') = Σ(x, x) = Σ(x', x') bit for bit
    nngp, var1, var2 = _kernels.gram(x1, x2, symmetric)
    if symmetric:
        var2 = var1
    ntk = np.zeros(nngp.shape) if do_ntk else np.zeros((1, 1))
    return _State(nngp=nngp, ntk=ntk, var1=var1, var2=var2, width=d, symmetric=symmetric, do_ntk=do_ntk)
