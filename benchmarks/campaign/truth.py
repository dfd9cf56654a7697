"""Independent ground truth: our own exact Z3 encoding, exact 1-D piecewise-linear analysis, sampled
Lipschitz lower bounds by torch autograd, and simple independent upper bounds.  Does not import the toolkit."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np

from nets import Net, exact_act


# =========================================================================== exact interval bounds
def exact_preact_bounds(net: Net, lo: list, hi: list):
    """Exact-rational interval bounds of every hidden pre-activation on the box (used only to drop case
    splits of stable neurons in our Z3 encoding)."""
    Wq, bq, aq = net.q()
    l, u = [Fraction(v) for v in lo], [Fraction(v) for v in hi]
    out = []
    for k in range(len(Wq) - 1):
        nl, nu = [], []
        for row, bi in zip(Wq[k], bq[k]):
            s_l = bi + sum((w * (l[j] if w > 0 else u[j]) for j, w in enumerate(row)), Fraction(0))
            s_u = bi + sum((w * (u[j] if w > 0 else l[j]) for j, w in enumerate(row)), Fraction(0))
            nl.append(s_l)
            nu.append(s_u)
        out.append((nl, nu))
        a = aq[k]
        if a[0] == "relu":
            l, u = [max(v, 0) for v in nl], [max(v, 0) for v in nu]
        elif a[0] == "leaky":
            s = a[1]
            cand = [(x, y) for x, y in zip(nl, nu)]
            l, u = [], []
            for x, y in cand:
                vals = [x if x > 0 else s * x, y if y > 0 else s * y]
                if x < 0 < y:
                    vals.append(Fraction(0))
                l.append(min(vals))
                u.append(max(vals))
        elif a[0] == "identity":
            l, u = nl, nu
        elif a[0] == "groupsort":
            g = a[1]
            l, u = [], []
            for i in range(0, len(nl), g):
                lo_g, hi_g = min(nl[i:i + g]), max(nu[i:i + g])
                l.extend([lo_g] * g)
                u.extend([hi_g] * g)
        else:
            raise ValueError(a)
    return out


# =========================================================================== Z3
def _rv(z3, f: Fraction):
    return z3.Q(f.numerator, f.denominator) if f.denominator != 1 else z3.RealVal(f.numerator)


def z3_network(z3, net: Net, xs: list, solver, lo=None, hi=None) -> list:
    """Add the exact encoding of ``net`` on inputs ``xs`` (Z3 reals) to ``solver``; return output terms.
    Weights are the exact rationals of the float64 values."""
    Wq, bq, aq = net.q()
    bounds = exact_preact_bounds(net, lo, hi) if lo is not None else None
    h = list(xs)
    for k in range(len(Wq)):
        z = []
        for i, (row, bi) in enumerate(zip(Wq[k], bq[k])):
            terms = [_rv(z3, w) * hj for w, hj in zip(row, h) if w != 0]
            e = z3.Sum(terms) + _rv(z3, bi) if terms else _rv(z3, bi)
            if k < len(aq):
                v = z3.Real(f"z_{k}_{i}")
                solver.add(v == e)
                z.append(v)
            else:
                z.append(e)
        if k < len(aq):
            a = aq[k]
            bl, bu = bounds[k] if bounds else (None, None)
            if a[0] in ("relu", "leaky"):
                s = Fraction(0) if a[0] == "relu" else a[1]
                hn = []
                for i, t in enumerate(z):
                    if bl is not None and bl[i] >= 0:
                        hn.append(t)
                    elif bl is not None and bu[i] <= 0:
                        hn.append(_rv(z3, s) * t)
                    else:
                        hn.append(z3.If(t > 0, t, _rv(z3, s) * t))
                h = hn
            elif a[0] == "identity":
                h = z
            elif a[0] == "groupsort":
                g = a[1]
                hn = []
                for i0 in range(0, len(z), g):
                    grp = list(z[i0:i0 + g])
                    # our own encoding: output j = the j-th largest, via auxiliary reals and an explicit
                    # permutation choice (different from a compare-exchange network)
                    outs = [z3.Real(f"s_{k}_{i0}_{j}") for j in range(g)]
                    perms = list(itertools.permutations(range(g)))
                    solver.add(z3.Or([z3.And([outs[j] == grp[p[j]] for j in range(g)] +
                                             [grp[p[j]] >= grp[p[j + 1]] for j in range(g - 1)]) for p in perms]))
                    hn.extend(outs)
                h = hn
            else:
                raise ValueError(f"no exact encoding for {a[0]}")
        else:
            h = z
    return h


def z3_decide(net: Net, prop, timeout: float):
    """Ground truth of a property on a piecewise-linear net: ('sat', x as Fractions) | ('unsat', None) |
    ('unknown', reason)."""
    import z3

    s = z3.Solver()
    s.set("timeout", int(timeout * 1000))
    xs = [z3.Real(f"X_{i}") for i in range(net.in_dim)]
    lo, hi = prop.hull()
    ys = z3_network(z3, net, xs, s, lo, hi)
    s.add(prop.z3(z3, xs, ys))
    r = s.check()
    if r == z3.sat:
        m = s.model()
        x = []
        for v in xs:
            val = m.eval(v, model_completion=True)
            x.append(Fraction(val.numerator_as_long(), val.denominator_as_long()))
        return "sat", x
    if r == z3.unsat:
        return "unsat", None
    return "unknown", s.reason_unknown()


def z3_range(net: Net, lo: list, hi: list, k: int, timeout: float):
    """Exact ``(min, max)`` of output ``k`` over the box (Fractions), or None on timeout."""
    import z3

    res = []
    for sense in ("min", "max"):
        o = z3.Optimize()
        o.set("timeout", int(timeout * 1000))
        xs = [z3.Real(f"X_{i}") for i in range(net.in_dim)]
        for x, l, u in zip(xs, lo, hi):
            o.add(x >= _rv(z3, Fraction(l)), x <= _rv(z3, Fraction(u)))
        ys = z3_network(z3, net, xs, o, lo, hi)
        y = z3.Real("obj")
        o.add(y == ys[k])
        h = o.minimize(y) if sense == "min" else o.maximize(y)
        if o.check() != z3.sat:
            return None
        v = (o.lower(h) if sense == "min" else o.upper(h))
        if not z3.is_rational_value(v):
            return None
        val = Fraction(v.numerator_as_long(), v.denominator_as_long())
        # confirm the optimum is attained: the model's value equals it
        mv = o.model().eval(y, model_completion=True)
        if not z3.is_rational_value(mv) or Fraction(mv.numerator_as_long(), mv.denominator_as_long()) != val:
            return None
        res.append(val)
    return tuple(res)


# =========================================================================== exact 1-D analysis
class Pieces1D:
    """All hidden and output neurons of a 1-input piecewise-linear net as exact piecewise-affine functions
    of x: breakpoints ``p_1 < ... < p_k`` and, on each of the k+1 intervals, slopes and intercepts."""

    def __init__(self, net: Net):
        assert net.in_dim == 1 and net.pwl
        Wq, bq, aq = net.q()
        pts: list[Fraction] = []
        # per interval: list of (slope, intercept) per neuron
        funcs = [[(Fraction(1), Fraction(0))]]
        for k in range(len(Wq)):
            new = []
            for fs in funcs:
                new.append([(sum((w * s for w, (s, c) in zip(row, fs)), Fraction(0)),
                             sum((w * c for w, (s, c) in zip(row, fs)), Fraction(0)) + bi)
                            for row, bi in zip(Wq[k], bq[k])])
            funcs = new
            if k == len(Wq) - 1:
                break
            a = aq[k]
            # refine: zero crossings (relu/leaky) or pairwise equalities (groupsort) inside each interval
            new_pts: list[Fraction] = []
            for j, fs in enumerate(funcs):
                left = pts[j - 1] if j > 0 else None
                right = pts[j] if j < len(pts) else None
                cands = []
                if a[0] in ("relu", "leaky"):
                    cands = [-c / s for s, c in fs if s != 0]
                elif a[0] == "groupsort":
                    g = a[1]
                    for i0 in range(0, len(fs), g):
                        for p, q in itertools.combinations(fs[i0:i0 + g], 2):
                            if p[0] != q[0]:
                                cands.append((q[1] - p[1]) / (p[0] - q[0]))
                for t in cands:
                    if (left is None or t > left) and (right is None or t < right):
                        new_pts.append(t)
            pts = sorted(set(pts) | set(new_pts))
            # re-evaluate the pre-activations on the refined partition, then apply the activation
            funcs = self._eval_layers(net, pts, k)
        self.points = pts
        self.out = funcs  # per interval: output (slope, intercept)

    @staticmethod
    def _eval_layers(net: Net, pts: list, upto: int):
        """Post-activation affine pieces of layer ``upto`` on each interval of the partition ``pts``."""
        Wq, bq, aq = net.q()
        reps = Pieces1D._representatives(pts)
        out = []
        for x in reps:
            # track (slope, intercept) through the layers with the pieces active at x
            fs = [(Fraction(1), Fraction(0))]
            val = [x]
            for k in range(upto + 1):
                fs = [(sum((w * s for w, (s, c) in zip(row, fs)), Fraction(0)),
                       sum((w * c for w, (s, c) in zip(row, fs)), Fraction(0)) + bi)
                      for row, bi in zip(Wq[k], bq[k])]
                val = [s * x + c for s, c in fs]
                a = aq[k]
                if a[0] == "relu":
                    fs = [f if v > 0 else (Fraction(0), Fraction(0)) for f, v in zip(fs, val)]
                elif a[0] == "leaky":
                    fs = [f if v > 0 else (a[1] * f[0], a[1] * f[1]) for f, v in zip(fs, val)]
                elif a[0] == "groupsort":
                    g = a[1]
                    nf = []
                    for i0 in range(0, len(fs), g):
                        grp = list(zip(val[i0:i0 + g], fs[i0:i0 + g]))
                        grp.sort(key=lambda t: t[0], reverse=True)
                        nf.extend(f for _, f in grp)
                    fs = nf
            out.append(fs)
        return out

    @staticmethod
    def _representatives(pts: list) -> list:
        if not pts:
            return [Fraction(0)]
        reps = [pts[0] - 1]
        for a, b in zip(pts[:-1], pts[1:]):
            reps.append((a + b) / 2)
        reps.append(pts[-1] + 1)
        return reps

    def lipschitz_sq(self, norm, c=None, lo=None, hi=None):
        """Exact Lipschitz constant (squared for l2) of x -> f(x) (or cᵀ f) on R or on [lo, hi]."""
        best = Fraction(0)
        reps = self._representatives(self.points)
        bounds = [None] + list(self.points) + [None]
        for j, fs in enumerate(self.out):
            a, b = bounds[j], bounds[j + 1]
            if lo is not None:
                if (b is not None and b < lo) or (a is not None and a > hi):
                    continue  # the piece does not meet the box
            slopes = [s for s, _ in fs]
            if c is not None:
                slopes = [sum((Fraction(ci) * s for ci, s in zip(c, slopes)), Fraction(0))]
            if norm == 2:
                v = sum((s * s for s in slopes), Fraction(0))
            else:
                v = max(abs(s) for s in slopes)
            best = max(best, v)
        del reps
        return best

    def range_on(self, net: Net, lo: Fraction, hi: Fraction, k: int):
        """Exact min and max of output k on [lo, hi] (at the end points and breakpoints inside)."""
        cand = [lo, hi] + [p for p in self.points if lo < p < hi]
        vals = [net.exact([t])[k] for t in cand]
        return min(vals), max(vals)


# =========================================================================== sampled lower bounds
U = 2.0 ** -53


def _act_deriv(a, z):
    k = a[0]
    if k == "relu":
        return (z > 0).astype(np.float64)
    if k == "leaky":
        return np.where(z > 0, 1.0, a[1])
    if k == "tanh":
        return 1.0 - np.tanh(z) ** 2
    if k == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(0.5 * z))
        return s * (1.0 - s)
    if k == "identity":
        return np.ones_like(z)
    raise ValueError(k)


def jacobians(net: Net, X: np.ndarray):
    """Our own Jacobians ``J (N, m, n)`` in float64 and a rigorous bound ``E`` on their error
    (``|fl(J) - J_true(x)| <= E`` entrywise).  We track, layer by layer: ``A`` >= |J| path magnitudes,
    ``B`` >= the error of J, ``Mh`` >= the error of the hidden values.  A product adds at most
    ``gamma_k |A||B|``; a tanh/sigmoid derivative value has an absolute error of a few ulps (1 - t^2 is
    computed with absolute, not relative, accuracy) plus |phi''| times the error of its argument.  For
    ReLU-like activations the derivative is exact given the sign of z (a sign flipped by rounding selects
    an adjacent piece, whose Jacobian is also in the Clarke Jacobian at x)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    N, n = X.shape
    h = X
    Mh = np.zeros_like(X)
    J = np.broadcast_to(np.eye(n), (N, n, n)).copy()
    A = J.copy()
    B = np.zeros_like(J)
    for k, (w, b) in enumerate(zip(net.Ws, net.bs)):
        aw = np.abs(w)
        g = (w.shape[1] + 2) * U * (1 + 1e-6)
        z = h @ w.T + b
        Mz = Mh @ aw.T + g * (np.abs(h) @ aw.T + np.abs(b)) + U * np.abs(z)
        J = np.einsum("ij,njk->nik", w, J)
        AW = np.einsum("ij,njk->nik", aw, A)
        B = np.einsum("ij,njk->nik", aw, B) + g * AW
        A = AW
        if k < len(net.acts):
            a = net.acts[k]
            if a[0] == "groupsort":
                gs = a[1]
                order = np.argsort(-z.reshape(N, -1, gs), axis=-1, kind="stable")
                idx = (order + (np.arange(z.shape[1] // gs) * gs)[None, :, None]).reshape(N, -1)
                J = np.take_along_axis(J, idx[:, :, None], axis=1)
                A = np.take_along_axis(A, idx[:, :, None], axis=1)
                B = np.take_along_axis(B, idx[:, :, None], axis=1)
                Mh = np.take_along_axis(Mz, idx, axis=1) + 0.0
                h = np.take_along_axis(z, idx, axis=1)
                # a sort is 1-Lipschitz per output in l-inf: errors of the group bound each output's error
                Mh = np.repeat(Mz.reshape(N, -1, gs).max(-1), gs, axis=1)
                continue
            d = _act_deriv(a, z)
            if a[0] in ("tanh", "sigmoid"):
                curv = 0.77 if a[0] == "tanh" else 0.1
                delta = 8 * U + curv * Mz
                hnew = Net._act_np(a, z)
                Mh = Mz * (1.0 if a[0] == "tanh" else 0.25) + 4 * U * (np.abs(hnew) + 1.0)
                h = hnew
            else:
                delta = np.zeros_like(z)
                hnew = Net._act_np(a, z)
                Mh = Mz * max(1.0, abs(a[1]) if a[0] == "leaky" else 1.0) + U * np.abs(hnew)
                h = hnew
            J = d[:, :, None] * J
            B = np.abs(d)[:, :, None] * B + delta[:, :, None] * A + U * np.abs(d)[:, :, None] * A
            A = (np.abs(d) + delta)[:, :, None] * A
    E = B * (1 + 1e-6)
    return J, E


def _torch_jacobians(f, X):
    import torch

    x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    y = f(x)
    rows = []
    for j in range(y.shape[1]):
        (g,) = torch.autograd.grad(y[:, j].sum(), x, retain_graph=j < y.shape[1] - 1)
        rows.append(g.detach().numpy())
    return np.stack(rows, axis=1)  # (N, m, n)


def op_norms(J: np.ndarray, norm, c=None) -> np.ndarray:
    """Operator norms ``||J||_{p->p}``; with ``c``: dual norm of ``Jᵀc``."""
    if c is not None:
        g = np.einsum("m,nmi->ni", c, J)
        return np.sqrt((g ** 2).sum(1)) if norm == 2 else np.abs(g).sum(1)
    if norm == 2:
        return np.linalg.norm(J, ord=2, axis=(1, 2))
    return np.abs(J).sum(2).max(1)


def _err_norms(E: np.ndarray, norm, c=None) -> np.ndarray:
    """Upper bound on the norm of an error matrix with entries bounded by E."""
    if c is not None:
        g = np.einsum("m,nmi->ni", np.abs(c), E)
        return np.sqrt((g ** 2).sum(1)) if norm == 2 else g.sum(1)
    if norm == 2:
        return np.sqrt((E ** 2).sum(axis=(1, 2)))  # Frobenius >= spectral
    return E.sum(2).max(1)


def certain_norms(net: Net, X, norm, c=None, check_torch=None) -> np.ndarray:
    """Rigorous lower bounds of ``||J(x)||`` at the points X (float rounding subtracted)."""
    J, E = jacobians(net, X)
    if check_torch is not None:
        Jt = _torch_jacobians(check_torch, X)
        if np.any(np.abs(Jt - J) > 4 * E + 1e-300):
            raise AssertionError("our Jacobian disagrees with torch autograd beyond rounding")
    return op_norms(J, norm, c) * (1 - 1e-13) - _err_norms(E, norm, c)


def _magnitude(net: Net, X: np.ndarray) -> np.ndarray:
    """Per point, a bound on |intermediate values| driving the rounding error of f(x) (per output)."""
    h = np.abs(X)
    terms = 0
    for k, (w, b) in enumerate(zip(net.Ws, net.bs)):
        h = h @ np.abs(w).T + np.abs(b)
        terms += w.shape[1] + 2
        if k < len(net.acts):
            a = net.acts[k]
            if a[0] == "leaky":
                h = h * max(1.0, abs(a[1]))
            elif a[0] in ("tanh",):
                h = np.minimum(h, 1.0)
                terms += 8
            elif a[0] == "sigmoid":
                h = np.minimum(h, 1.0)
                terms += 8
            elif a[0] == "groupsort":
                h = np.repeat(h.reshape(h.shape[0], -1, a[1]).max(-1), a[1], axis=1)
    return 2.0 * terms * U * h * (1 + 1e-6) + 1e-320


def sampled_lipschitz(net: Net, norm, c=None, rng=None, n=3000, box=None, climb=True) -> float:
    """Max of ``||J(x)||`` at many points (Gaussians at several scales, or uniform in ``box``) + a random hill
    climb + difference quotients of random pairs: a lower bound on the (local) Lipschitz constant.  Every
    value has its float64 rounding error subtracted (rigorous bounds), so the result is a true lower bound."""
    rng = rng or np.random.default_rng(0)
    d = net.in_dim
    if box is None:
        scales = np.array([1e-3, 0.1, 1.0, 10.0, 1e3])
        X = rng.normal(size=(n, d)) * scales[rng.integers(len(scales), size=n)][:, None]
    else:
        lo, hi = box
        X = lo + (hi - lo) * rng.random((n, d))
        corners = lo + (hi - lo) * rng.integers(0, 2, size=(min(64, 2 ** d), d))
        X = np.vstack([X, corners])
    vals = certain_norms(net, X, norm, c, check_torch=net.torch_fn() if rng.random() < 0.3 else None)
    best = float(vals.max())
    if climb:
        idx = np.argsort(vals)[-16:]
        P = X[idx]
        pv = vals[idx]
        step = (np.abs(P).mean(1, keepdims=True) + 1e-3) * 0.3 if box is None else (box[1] - box[0]) * 0.2
        for _ in range(15):
            Q = P + rng.normal(size=P.shape) * step
            if box is not None:
                Q = np.clip(Q, box[0], box[1])
            qv = certain_norms(net, Q, norm, c)
            better = qv > pv
            P[better], pv[better] = Q[better], qv[better]
            step = step * 0.8
        best = max(best, float(pv.max()))
    # difference quotients, minus the rounding error of both evaluations
    k = min(n, 1000)
    A, B = X[:k], X[rng.permutation(X.shape[0])[:k]]
    dy = net(A) - net(B)
    err = _magnitude(net, A) + _magnitude(net, B) + 2 * U * np.abs(dy)
    if c is not None:
        num = np.abs(dy @ c) - np.abs(c) @ err.T
    elif norm == 2:
        num = np.linalg.norm(dy, axis=1) - np.linalg.norm(err, axis=1)
    else:
        num = np.abs(dy).max(1) - err.max(1)
    dx = A - B
    den = (np.linalg.norm(dx, axis=1) if norm == 2 else np.abs(dx).max(1)) * (1 + 1e-14)
    ok = den > 0
    if ok.any():
        best = max(best, float((num[ok] / den[ok]).max()) * (1 - 1e-14))
    return best


def _opnorm(M: np.ndarray, norm) -> float:
    if norm == 2:
        return float(np.linalg.norm(M, 2))
    return float(np.abs(M).sum(1).max())


def act_lip(a, norm) -> float:
    if a[0] == "leaky":
        return max(1.0, abs(a[1]))
    if a[0] == "sigmoid":
        return 0.25
    return 1.0


def independent_upper(net: Net, norm, c=None, max_patterns: int = 4096) -> tuple[float, str]:
    """A valid upper bound on the global Lipschitz constant (our own): the product of layer norms, or, for
    one hidden layer, the maximum of ``||W1 D W0||`` over all diagonal / permutation patterns ``D`` the
    activation can produce (every a.e. Jacobian is one of them; for tanh / sigmoid the vertices of the
    derivative box, by convexity of the norm).  Returns ``(value, how)``; exact-looking values get a
    relative safety margin of 1e-9 for float64 rounding."""
    Ws = list(net.Ws)
    if c is not None:
        Ws[-1] = (np.asarray(c, dtype=np.float64) @ Ws[-1])[None, :]
    prod = 1.0
    for k, w in enumerate(Ws):
        prod *= _opnorm(w, norm) if not (c is not None and k == len(Ws) - 1) else \
            (float(np.linalg.norm(w, 2)) if norm == 2 else float(np.abs(w).sum()))
        if k < len(net.acts):
            prod *= act_lip(net.acts[k], norm)
    best, how = prod, "product of norms"
    if len(net.acts) == 1:
        a = net.acts[0]
        h = net.widths[0]
        W0, W1 = Ws
        mats = None
        if a[0] in ("relu", "leaky", "tanh", "sigmoid", "identity") and 2 ** h <= max_patterns:
            vals = {"relu": (0.0, 1.0), "tanh": (0.0, 1.0), "sigmoid": (0.0, 0.25), "identity": (1.0, 1.0)}.get(a[0])
            if vals is None:
                vals = (a[1], 1.0)
            mats = (W1 @ (np.array(d)[:, None] * W0) for d in itertools.product(*[vals] * h))
        elif a[0] == "groupsort":
            g = a[1]
            perms = list(itertools.permutations(range(g)))
            if len(perms) ** (h // g) <= max_patterns:
                def gen():
                    for choice in itertools.product(perms, repeat=h // g):
                        idx = np.concatenate([np.array(p) + g * i for i, p in enumerate(choice)])
                        yield W1 @ W0[idx]
                mats = gen()
        if mats is not None:
            v = 0.0
            for M in mats:
                v = max(v, float(np.linalg.norm(M, 2)) if (norm == 2) else float(np.abs(M).sum(1).max()))
            if v < best:
                best, how = v, "max over activation patterns"
    return best * (1 + 1e-9), how


def all_patterns_realised(net: Net) -> bool:
    """One hidden ReLU/leaky layer with a full-row-rank first weight (every pattern occurs): the max over
    patterns is then the exact constant."""
    if len(net.acts) != 1 or net.acts[0][0] not in ("relu", "leaky"):
        return False
    W0 = net.Ws[0]
    return W0.shape[0] <= W0.shape[1] and np.linalg.matrix_rank(W0) == W0.shape[0]


def local_sampled(net: Net, lo: np.ndarray, hi: np.ndarray, output=None, rng=None, n=2000) -> float:
    """Sampled lower bound of ``max_{x in box} max_j ||J_j(x)||_1`` (l-inf local constant), rounding
    error subtracted."""
    rng = rng or np.random.default_rng(0)
    d = net.in_dim
    X = lo + (hi - lo) * rng.random((n, d))
    X = np.vstack([X, lo + (hi - lo) * rng.integers(0, 2, size=(min(64, 2 ** d), d))])

    def score(X):
        J, E = jacobians(net, X)
        rows = np.abs(J).sum(2) * (1 - 1e-14) - E.sum(2)  # (N, m)
        return rows[:, output] if output is not None else rows.max(1)

    v = score(X)
    idx = np.argsort(v)[-16:]
    P, pv = X[idx], v[idx]
    step = (hi - lo) * 0.2
    for _ in range(12):
        Q = np.clip(P + rng.normal(size=P.shape) * step, lo, hi)
        qv = score(Q)
        better = qv > pv
        P[better], pv[better] = Q[better], qv[better]
        step = step * 0.7
    return float(max(v.max(), pv.max()))


def frac_le(a: float, b) -> bool:
    return Fraction(a) <= Fraction(b)


def is_finite_decimal(f: Fraction) -> bool:
    d = f.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def decimal_str(f: Fraction) -> str:
    """Exact decimal text of a Fraction whose denominator has only factors 2 and 5."""
    assert is_finite_decimal(f)
    sign = "-" if f < 0 else ""
    f = abs(f)
    d, k2, k5 = f.denominator, 0, 0
    while d % 2 == 0:
        d //= 2
        k2 += 1
    while d % 5 == 0:
        d //= 5
        k5 += 1
    k = max(k2, k5)
    n = f.numerator * 10 ** k // f.denominator
    s = str(n).rjust(k + 1, "0")
    if k:
        s = s[:-k] + "." + s[-k:]
    return sign + s
