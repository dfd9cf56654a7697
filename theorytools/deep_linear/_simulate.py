"""Full-matrix simulations of deep linear (and tanh) networks, eq 1 / eq 2 / eq 13 of Saxe et al.

Conventions: sums over examples (Sigma31 = Y X^T, Sigma11 = X X^T), learning rate lr = lambda =
1/tau, time in iterations. ``method="gd"`` is the batch rule eq 1 (one Euler step of size 1 per
iteration); ``method="flow"`` integrates the gradient flow eq 2/13 with classical RK4 and step dt
(in iterations). Mode strengths are diag(U^T Sigma31hat V) with U, V the singular vectors of
Sigma31 and Sigma31hat = W_tot Sigma11 (= W_tot for whitened inputs, as in the paper) or, for
data-driven runs, Sigma31hat = sum_mu yhat^mu x^mu^T.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from theorytools.errors import TheoryError
from theorytools.deep_linear import _blas_path, _kernels
from theorytools.deep_linear import _validation as val

_BLAS_PATH_MACS = 5_000_000  # per-iteration multiply-adds above which NumPy's BLAS loop is used

__all__ = [
    "Trajectory",
    "decoupled_init",
    "random_init",
    "lambda_balanced_init",
    "random_orthogonal",
    "simulate_linear",
    "simulate_network",
    "mode_gd",
    "growing_mode_strength",
]


@dataclass(frozen=True)
class Trajectory:
    """Recorded training run of a deep network."""

    iterations: np.ndarray
    """Times of the records, in iterations (t of the paper), shape (n_records,)."""
    mode_strengths: np.ndarray
    """diag(U^T Sigma31hat V), shape (n_records, r), r = min(N_out, N_in); column a is mode a."""
    off_diagonal: np.ndarray
    """Frobenius norm of the off-diagonal part of U^T Sigma31hat V (0 <=> decoupled)."""
    loss: np.ndarray
    """Batch squared error sum_mu ||y^mu - yhat^mu||^2 (no 1/2) at each record."""
    singular_values: np.ndarray
    """Singular values s_a of Sigma31 (descending), shape (r,)."""
    weights: tuple[np.ndarray, ...]
    """Final weights (W_1, ..., W_K), W_k of shape (n_{k+1}, n_k)."""
    lr: float
    """Learning rate lambda = 1/tau."""
    method: str
    """'gd' (batch rule eq 1) or 'flow' (RK4 on eq 2/13)."""
    seconds: float
    """Wall-clock time of the simulation (including a first-call compile, if any)."""


def random_orthogonal(n: int, m: int | None = None, rng: object = None) -> np.ndarray:
    """Haar-random n x m matrix with orthonormal columns (n >= m) or rows (n < m)."""
    m = n if m is None else m
    g = val.rng_of(rng)
    big, small = max(n, m), min(n, m)
    q, r = np.linalg.qr(g.standard_normal((big, small)))
    q = q * np.sign(np.diag(r))
    return q if n >= m else q.T.copy()


def _widths(n_in: int, n_hidden: int | Sequence[int], n_out: int, func: str) -> list[int]:
    hidden = [n_hidden] if np.isscalar(n_hidden) else list(n_hidden)  # type: ignore[list-item]
    for h in hidden:
        val.positive_int(h, "n_hidden", func)
    return [n_in, *[int(h) for h in hidden], n_out]


def decoupled_init(sigma31: np.ndarray, n_hidden: int | Sequence[int], u0: float | np.ndarray,
                   rng: object = None) -> list[np.ndarray]:
    """Decoupled, balanced initial weights (eq 8 / eq 13): R_{k+1}^T W_k R_k = D_k with R_1 = V,
    R_{K+1} = U (full singular bases of Sigma31), Haar-random orthogonal R_k in between, and every
    diagonal entry of D_k equal to u0_a^{1/K} so that mode a starts with strength u0_a.

    ``u0`` is a scalar or an array with one value per mode (length >= min of all widths).
    """
    f = "decoupled_init"
    sigma31 = val.matrix(sigma31, "sigma31", f)
    dims = _widths(sigma31.shape[1], n_hidden, sigma31.shape[0], f)
    g = val.rng_of(rng)
    k = len(dims) - 1
    n_modes = min(dims)
    u0 = val.positive_array(u0, "u0", f)
    u0 = np.broadcast_to(u0, (n_modes,)) if u0.ndim == 0 else u0[:n_modes]
    if u0.size < n_modes:
        raise TheoryError(f"The 'u0' parameter of {f} must have at least {n_modes} entries. "
                          f"Got {u0.size} instead.")
    uu, _, vt = np.linalg.svd(sigma31, full_matrices=True)
    bases = [vt.T] + [random_orthogonal(d, rng=g) for d in dims[1:-1]] + [uu]
    amp = u0 ** (1.0 / k)
    weights = []
    for i in range(k):
        d = np.zeros((dims[i + 1], dims[i]))
        d[np.arange(n_modes), np.arange(n_modes)] = amp
        weights.append(np.ascontiguousarray(bases[i + 1] @ d @ bases[i].T))
    return weights


def random_init(dims: Sequence[int], kind: str = "gaussian", scale: float = 1.0,
                rng: object = None) -> list[np.ndarray]:
    """Random weights for widths dims = (n_1, ..., n_{K+1}).

    kind='gaussian': iid N(0, scale^2 / n_k) entries (the 'scaled Gaussian' of the paper, which
    preserves norms on average for scale = 1); kind='orthogonal': scale times a Haar-random
    matrix with orthonormal rows or columns (the paper's random orthogonal init).
    """
    f = "random_init"
    kind = val.choice(kind, "kind", f, ("gaussian", "orthogonal"))
    scale = val.positive_float(scale, "scale", f)
    dims = [val.positive_int(d, "dims", f) for d in dims]
    if len(dims) < 2:
        raise TheoryError(f"The 'dims' parameter of {f} must list at least 2 widths. Got {dims}.")
    g = val.rng_of(rng)
    out = []
    for n_in, n_out in zip(dims[:-1], dims[1:]):
        if kind == "gaussian":
            out.append(scale * g.standard_normal((n_out, n_in)) / np.sqrt(n_in))
        else:
            out.append(scale * random_orthogonal(n_out, n_in, rng=g))
    return out


def lambda_balanced_init(n_in: int, n_hidden: int, n_out: int, balance: float,
                         scale: float = 1.0, rng: object = None) -> list[np.ndarray]:
    """Random three-layer weights with W32^T W32 - W21 W21^T = balance * I (lambda-balanced,
    Dominé et al. 2024); requires n_hidden <= n_out, and balance > -smallest eig(W21 W21^T)."""
    f = "lambda_balanced_init"
    n_in, n_hidden, n_out = (val.positive_int(v, nm, f) for v, nm in
                             ((n_in, "n_in"), (n_hidden, "n_hidden"), (n_out, "n_out")))
    if n_hidden > n_out:
        raise TheoryError(f"The 'n_hidden' parameter of {f} must be <= n_out. Got {n_hidden}.")
    g = val.rng_of(rng)
    w21 = scale * g.standard_normal((n_hidden, n_in)) / np.sqrt(n_in)
    m = w21 @ w21.T + balance * np.eye(n_hidden)
    ev, evec = np.linalg.eigh(m)
    if ev.min() <= 0:
        raise TheoryError(f"The 'balance' parameter of {f} makes W21 W21^T + balance I singular "
                          f"(smallest eigenvalue {ev.min():.3g}); use a larger balance.")
    root = (evec * np.sqrt(ev)) @ evec.T
    w32 = random_orthogonal(n_out, n_hidden, rng=g) @ root
    return [w21, np.ascontiguousarray(w32)]


def _pack(weights: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dims = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    offsets = np.cumsum([0] + [w.size for w in weights[:-1]]).astype(np.int64)
    buf = np.concatenate([np.ascontiguousarray(w, dtype=np.float64).ravel() for w in weights])
    return buf, offsets, np.asarray(dims, dtype=np.int64)


def _unpack(buf: np.ndarray, offsets: np.ndarray, dims: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(buf[o:o + dims[k + 1] * dims[k]].reshape(dims[k + 1], dims[k]).copy()
                 for k, o in enumerate(offsets))


def _init_weights(init: object, target: np.ndarray, dims: list[int], u0: float | np.ndarray,
                  scale: float, rng: np.random.Generator, func: str) -> list[np.ndarray]:
    if isinstance(init, str):
        init = val.choice(init, "init", func, ("decoupled", "gaussian", "orthogonal"))
        if init == "decoupled":
            return decoupled_init(target, dims[1:-1], u0, rng)
        return random_init(dims, init, scale, rng)
    weights = [val.matrix(w, "init", func) for w in init]  # type: ignore[union-attr]
    got = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    if got != dims or any(w.shape[1] != d for w, d in zip(weights, dims[:-1])):
        raise TheoryError(f"The 'init' weights of {func} have widths {got}; expected {dims}.")
    return weights


def _reduce_output(target: np.ndarray, w_out: np.ndarray) -> np.ndarray | None:
    """Orthonormal basis of span(target cols, W_out cols) if smaller than the output space.

    The output layer's update (target - prediction) a^T stays in this span, so the dynamics
    restricted to it are exact (up to round-off)."""
    n_out = target.shape[0]
    if target.shape[1] + w_out.shape[1] >= 0.75 * n_out:
        return None
    q, _ = np.linalg.qr(np.hstack([target, w_out]))
    return q


def _run(weights, sigma31, sigma11, whitened, x, y, act_code, use_data, lr, n_steps, method,
         dt, record_every, c33, u, v, s, func):
    lr = val.positive_float(lr, "lr", func)
    n_steps = val.positive_int(n_steps, "n_steps", func, minimum=0)
    record_every = val.positive_int(record_every, "record_every", func)
    method = val.choice(method, "method", func, ("gd", "flow"))
    dt = val.positive_float(dt, "dt", func)
    if method == "gd" and dt != 1.0:
        raise TheoryError(f"The 'dt' parameter of {func} must be 1.0 for method='gd' (eq 1). "
                          f"Got {dt!r} instead.")
    target = y if use_data else sigma31
    q = _reduce_output(target, weights[-1])
    if q is not None:
        weights = list(weights[:-1]) + [q.T @ weights[-1]]
        u = q.T @ u
        if use_data:
            y = np.ascontiguousarray(q.T @ y)
        else:
            sigma31 = np.ascontiguousarray(q.T @ sigma31)
    buf, offsets, dims = _pack(weights)
    n_rec = n_steps // record_every + 1
    diag = np.zeros((n_rec, u.shape[1]))
    off = np.zeros(n_rec)
    loss = np.zeros(n_rec)
    t0 = time.perf_counter()
    if use_data:
        buf = _kernels.run_data(buf, offsets, dims, np.ascontiguousarray(x),
                                np.ascontiguousarray(x.T),
                                np.ascontiguousarray(y), int(act_code), lr, n_steps,
                                method == "flow", dt, record_every, np.ascontiguousarray(u.T),
                                np.ascontiguousarray(v), diag, off, loss)
    else:
        # large nets: BLAS-bound, NumPy twin of the kernel is faster; small nets: compiled loop
        macs = int(sum(dims[k + 1] * dims[k] for k in range(dims.size - 1))) * int(dims[0])
        runner = _blas_path.run_sigma if macs > _BLAS_PATH_MACS else _kernels.run_sigma
        buf = runner(buf, offsets, dims, np.ascontiguousarray(sigma31),
                                 np.ascontiguousarray(sigma11), bool(whitened), lr, n_steps,
                                 method == "flow", dt, record_every, np.ascontiguousarray(u.T),
                                 np.ascontiguousarray(v), float(c33), diag, off, loss)
    seconds = time.perf_counter() - t0
    final = list(_unpack(buf, offsets, dims))
    if q is not None:
        final[-1] = q @ final[-1]
    its = np.arange(n_rec) * record_every * dt
    return Trajectory(its, diag, off, loss, s, tuple(final), lr, method, seconds)


def simulate_linear(sigma31: np.ndarray, n_hidden: int | Sequence[int], *, lr: float,
                    n_steps: int, init: str | Sequence[np.ndarray] = "decoupled",
                    u0: float | np.ndarray = 1e-3, scale: float = 1.0,
                    sigma11: np.ndarray | None = None, sigma33_trace: float | None = None,
                    method: str = "gd", dt: float = 1.0, record_every: int = 1,
                    rng: object = None) -> Trajectory:
    """Train a deep linear net W_K ... W_1 on correlations (eq 1 for one hidden layer, eq 13 for
    more) with full matrices, from a decoupled or random initialisation.

    sigma31: (N_out, N_in) input-output correlation (a sum over examples). n_hidden: one width
    (three-layer net, eq 1) or a list of hidden widths (N_l = len + 2 layers). sigma11 defaults
    to I (whitened). init: 'decoupled' (balanced, mode strength u0), 'gaussian' (entries
    N(0, scale^2/fan_in)), 'orthogonal' (scale x Haar), or explicit weights [W_1, ..., W_K].
    sigma33_trace: sum_mu ||y^mu||^2 for the recorded loss; default ||sigma31||_F^2, which is exact
    for whitened inputs with targets in the span of the inputs. Cost per iteration is a few
    N^3 matrix products (BLAS); when the output width is large the output layer is simulated
    exactly in span(sigma31, W_out(0)).
    """
    f = "simulate_linear"
    sigma31 = val.matrix(sigma31, "sigma31", f)
    n_out, n_in = sigma31.shape
    dims = _widths(n_in, n_hidden, n_out, f)
    g = val.rng_of(rng)
    whitened = sigma11 is None
    s11 = np.zeros((1, 1)) if whitened else val.matrix(sigma11, "sigma11", f)
    if not whitened and s11.shape != (n_in, n_in):
        raise TheoryError(f"The 'sigma11' parameter of {f} must have shape {(n_in, n_in)}. "
                          f"Got {s11.shape} instead.")
    weights = _init_weights(init, sigma31, dims, u0, scale, g, f)
    uu, s, vt = np.linalg.svd(sigma31, full_matrices=False)
    c33 = float(np.sum(sigma31**2)) if sigma33_trace is None else float(sigma33_trace)
    dummy = np.zeros((1, 1))
    return _run(weights, sigma31, s11, whitened, dummy, dummy, 0, False, lr, n_steps, method, dt,
                record_every, c33, uu, vt.T, s, f)


def simulate_network(x: np.ndarray, y: np.ndarray, n_hidden: int | Sequence[int], *, lr: float,
                     n_steps: int, activation: str = "linear",
                     init: str | Sequence[np.ndarray] = "gaussian", u0: float | np.ndarray = 1e-3,
                     scale: float = 1.0, method: str = "gd", dt: float = 1.0,
                     record_every: int = 1, rng: object = None) -> Trajectory:
    """Train y = W_K phi(... phi(W_1 x)) on examples by full-batch GD on (1/2) sum_mu ||y - yhat||^2.

    x: (N_in, P) inputs as columns; y: (N_out, P) targets. activation: 'linear' or 'tanh' (hidden
    layers; the output layer is linear). Mode strengths are diag(U^T (sum_mu yhat x^T) V) with
    U, V from the SVD of Sigma31 = y x^T, the quantity plotted for tanh nets in Fig 3.
    """
    f = "simulate_network"
    x = val.matrix(x, "x", f)
    y = val.matrix(y, "y", f)
    if x.shape[1] != y.shape[1]:
        raise TheoryError(f"The 'x' and 'y' parameters of {f} must have the same number of "
                          f"columns (examples). Got {x.shape[1]} and {y.shape[1]} instead.")
    activation = val.choice(activation, "activation", f, ("linear", "tanh"))
    dims = _widths(x.shape[0], n_hidden, y.shape[0], f)
    g = val.rng_of(rng)
    sigma31 = y @ x.T
    weights = _init_weights(init, sigma31, dims, u0, scale, g, f)
    uu, s, vt = np.linalg.svd(sigma31, full_matrices=False)
    dummy = np.zeros((1, 1))
    return _run(weights, dummy, dummy, True, x, y, 1 if activation == "tanh" else 0, True, lr,
                n_steps, method, dt, record_every, 0.0, uu, vt.T, s, f)


def mode_gd(a0: float, b0: float, s: float, lr: float, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Discrete batch gradient descent on one decoupled mode (eq 8/9 with tau = 1/lr):
    a <- a + lr b (s - ab), b <- b + lr a (s - ab). Returns (a, b), each of length n_steps + 1."""
    f = "mode_gd"
    lr = val.positive_float(lr, "lr", f)
    n_steps = val.positive_int(n_steps, "n_steps", f, minimum=0)
    return _kernels.mode_gd(float(a0), float(b0), float(s), lr, n_steps)


def growing_mode_strength(w21: np.ndarray, w32: np.ndarray, sigma31: np.ndarray) -> np.ndarray:
    """Initial strength of the growing part of each mode of a three-layer net: |a_a + b_a|^2 / 4.

    a_a = W21 v_a and b_a = W32^T u_a are the mode's hidden-layer vectors (eq 4, u_a, v_a the singular
    vectors of Sigma31). While u = a.b << s, eq 8 is linear: a + b grows like e^{s t/tau} and a - b
    decays like e^{-s t/tau}, so u(t) ~ (|a+b|^2/4) e^{2 s t/tau}, the small-u limit of eq 12 with
    u0 = |a+b|^2/4. This is the u0 to put in eq 11/12 for a random initialisation (for the balanced,
    decoupled init a_a = b_a it is a_a.b_a). Returns one value per mode, length min(N1, N3).
    """
    f = "growing_mode_strength"
    w21, w32, sigma31 = val.chained(w21, w32, sigma31, f)
    uu, _, vt = np.linalg.svd(sigma31, full_matrices=False)
    grow = w21 @ vt.T + w32.T @ uu
    return np.sum(grow * grow, axis=0) / 4.0

