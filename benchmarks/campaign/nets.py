"""Random networks and our own independent forward passes (float64, exact Fractions, 60-digit Decimals,
torch float64 for autograd).  Nothing here imports the toolkit."""

from __future__ import annotations

import json
from decimal import Context, Decimal, MAX_EMAX, MIN_EMIN, localcontext
from fractions import Fraction

import numpy as np

PWL = {"relu", "leaky", "identity", "groupsort"}
SLOPES = [-2.0, -1.0, -0.5, 0.0, 0.01, 0.5, 1.0, 2.0]
SCALES = [1e-8, 1.0, 1e2, 1e4, "mixed"]
DEC_CTX = Context(prec=60, Emax=MAX_EMAX, Emin=MIN_EMIN)


def act_name(a: tuple) -> str:
    k = a[0]
    if k == "leaky":
        return f"leaky_relu({a[1]!r})"
    if k == "groupsort":
        return "maxmin" if a[1] == 2 else f"groupsort({a[1]})"
    return k


def act_spec(a: tuple, variant: int = 0) -> dict:
    k = a[0]
    if k == "leaky":
        return {"type": "leaky_relu", "negative_slope": a[1]}
    if k == "groupsort":
        if a[1] == 2 and variant % 2:
            return {"type": "maxmin"}
        return {"type": "groupsort", "group_size": a[1]}
    return {"type": k}


class Net:
    """Dense layers ``W (out, in)``, ``b`` and one activation per hidden layer: ``("relu",)``,
    ``("leaky", a)``, ``("tanh",)``, ``("sigmoid",)``, ``("identity",)``, ``("groupsort", g)``."""

    def __init__(self, Ws, bs, acts, label: str = ""):
        self.Ws = [np.ascontiguousarray(np.asarray(w, dtype=np.float64)) for w in Ws]
        self.bs = [np.ascontiguousarray(np.asarray(b, dtype=np.float64).reshape(-1)) for b in bs]
        self.acts = [tuple(a) for a in acts]
        assert len(self.acts) == len(self.Ws) - 1
        self.label = label
        self._q = None

    # ---------------------------------------------------------------- shape
    @property
    def in_dim(self) -> int:
        return self.Ws[0].shape[1]

    @property
    def out_dim(self) -> int:
        return self.Ws[-1].shape[0]

    @property
    def widths(self) -> list[int]:
        return [w.shape[0] for w in self.Ws[:-1]]

    @property
    def pwl(self) -> bool:
        return all(a[0] in PWL for a in self.acts)

    @property
    def elementwise(self) -> bool:
        return all(a[0] != "groupsort" for a in self.acts)

    def describe(self) -> str:
        parts = [str(self.in_dim)]
        for w, a in zip(self.widths, self.acts):
            parts.append(f"{w}{act_name(a)}")
        parts.append(str(self.out_dim))
        return "-".join(parts) + (f" [{self.label}]" if self.label else "")

    def arch(self) -> str:
        return ",".join(act_name(a) for a in self.acts) if self.acts else "relu"

    def rounded(self, dtype) -> "Net":
        """The network whose weights and biases are the ``dtype`` roundings (what a float32 file stores)."""
        acts = list(self.acts)  # activation parameters are not weights (ONNX rounds its alpha itself)
        return Net([w.astype(dtype).astype(np.float64) for w in self.Ws],
                   [b.astype(dtype).astype(np.float64) for b in self.bs], acts, self.label)

    def to_dict(self) -> dict:
        return {"Ws": [w.tolist() for w in self.Ws], "bs": [b.tolist() for b in self.bs],
                "acts": [list(a) for a in self.acts], "label": self.label}

    @staticmethod
    def from_dict(d: dict) -> "Net":
        return Net([np.array(w) for w in d["Ws"]], [np.array(b) for b in d["bs"]], [tuple(a) for a in d["acts"]],
                   d.get("label", ""))

    # ---------------------------------------------------------------- float64 forward
    @staticmethod
    def _act_np(a, z):
        k = a[0]
        if k == "relu":
            return np.maximum(z, 0.0)
        if k == "leaky":
            return np.where(z > 0, z, a[1] * z)
        if k == "tanh":
            return np.tanh(z)
        if k == "sigmoid":
            return 0.5 * (1.0 + np.tanh(0.5 * z))
        if k == "identity":
            return z
        if k == "groupsort":
            g = a[1]
            n, w = z.shape
            return -np.sort(-z.reshape(n, w // g, g), axis=-1).reshape(n, w)
        raise ValueError(k)

    def __call__(self, X) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        h = X
        for k, (w, b) in enumerate(zip(self.Ws, self.bs)):
            h = h @ w.T + b
            if k < len(self.acts):
                h = self._act_np(self.acts[k], h)
        return h

    # ---------------------------------------------------------------- exact forward (piecewise linear)
    def q(self):
        if self._q is None:
            self._q = ([[[Fraction(float(v)) for v in row] for row in w] for w in self.Ws],
                       [[Fraction(float(v)) for v in b] for b in self.bs],
                       [(a[0], Fraction(a[1])) if a[0] == "leaky" else a for a in self.acts])
        return self._q

    def exact(self, x) -> list[Fraction]:
        """``f(x)`` in exact rational arithmetic (``x``: floats or Fractions); piecewise-linear nets only."""
        Wq, bq, aq = self.q()
        h = [Fraction(v) for v in x]
        for k in range(len(Wq)):
            h = [sum((wij * hj for wij, hj in zip(row, h)), Fraction(0)) + bi for row, bi in zip(Wq[k], bq[k])]
            if k < len(aq):
                h = exact_act(aq[k], h)
        return h

    def decimal(self, x) -> list[Decimal]:
        """``f(x)`` with 60 significant digits (any activation); weights converted exactly."""
        with localcontext(DEC_CTX):
            h = [Decimal(float(v)) if not isinstance(v, Fraction) else Decimal(v.numerator) / Decimal(v.denominator)
                 for v in x]
            for k, (w, b) in enumerate(zip(self.Ws, self.bs)):
                h = [sum((Decimal(float(wij)) * hj for wij, hj in zip(row, h)), Decimal(0)) + Decimal(float(bi))
                     for row, bi in zip(w, b)]
                if k < len(self.acts):
                    h = decimal_act(self.acts[k], h)
            return h

    # ---------------------------------------------------------------- torch (autograd)
    def torch_fn(self):
        import torch

        Ws = [torch.tensor(w, dtype=torch.float64) for w in self.Ws]
        bs = [torch.tensor(b, dtype=torch.float64) for b in self.bs]
        acts = self.acts

        def f(x):
            h = x
            for k in range(len(Ws)):
                h = h @ Ws[k].T + bs[k]
                if k < len(acts):
                    a = acts[k]
                    if a[0] == "relu":
                        h = torch.relu(h)
                    elif a[0] == "leaky":
                        h = torch.where(h > 0, h, a[1] * h)
                    elif a[0] == "tanh":
                        h = torch.tanh(h)
                    elif a[0] == "sigmoid":
                        h = torch.sigmoid(h)
                    elif a[0] == "groupsort":
                        g = a[1]
                        n, w = h.shape
                        h = torch.sort(h.reshape(n, w // g, g), dim=-1, descending=True).values.reshape(n, w)
            return h
        return f


def exact_act(a, h: list) -> list:
    k = a[0]
    if k == "relu":
        return [v if v > 0 else Fraction(0) for v in h]
    if k == "leaky":
        return [v if v > 0 else a[1] * v for v in h]
    if k == "identity":
        return list(h)
    if k == "groupsort":
        g = a[1]
        out = []
        for i in range(0, len(h), g):
            out.extend(sorted(h[i:i + g], reverse=True))
        return out
    raise ValueError(f"{k} is not piecewise linear")


def decimal_act(a, h: list) -> list:
    k = a[0]
    if k == "tanh":
        out = []
        for v in h:
            if v > 0:
                e = (-2 * v).exp()
                out.append((1 - e) / (1 + e))
            else:
                e = (2 * v).exp()
                out.append((e - 1) / (e + 1))
        return out
    if k == "sigmoid":
        out = []
        for v in h:
            if v >= 0:
                out.append(1 / (1 + (-v).exp()))
            else:
                e = v.exp()
                out.append(e / (1 + e))
        return out
    if k == "leaky":
        s = Decimal(float(a[1]))
        return [v if v > 0 else s * v for v in h]
    return exact_act(a, h) if k != "relu" else [v if v > 0 else Decimal(0) for v in h]


# -------------------------------------------------------------------------------------------- generation
def _scale_for(scale, rng, n_layers) -> list[float]:
    if scale == "mixed":
        return [float(rng.choice([1e-8, 1e-3, 1.0, 1e2, 1e4])) for _ in range(n_layers)]
    return [float(scale)] * n_layers


def random_act(rng, kinds=None) -> tuple:
    kinds = kinds or ["relu", "leaky", "tanh", "sigmoid", "identity", "maxmin", "groupsort3"]
    k = str(rng.choice(kinds))
    if k == "leaky":
        return ("leaky", float(rng.choice(SLOPES)))
    if k == "maxmin":
        return ("groupsort", 2)
    if k == "groupsort3":
        return ("groupsort", 3)
    return (k,)


def _width_for(act, rng) -> int:
    if act[0] == "groupsort":
        g = act[1]
        return int(g * rng.integers(1, 8 // g + 1))
    return int(rng.integers(2, 9))


def random_net(rng, n_in=None, n_hidden=None, n_out=None, act=None, mixed=None, scale=None, kinds=None,
               dyadic=False, label="") -> Net:
    """Random chain: 1-6 inputs, 1-3 hidden layers of width 2-8, 1-4 outputs.  ``act`` fixes one hidden
    activation; ``mixed=True`` draws one per layer; ``scale`` in :data:`SCALES`; ``dyadic`` draws weights
    in {-2, -1.75, ..., 2} (exact optima are then short decimals, for boundary properties)."""
    n_in = int(n_in if n_in is not None else rng.integers(1, 7))
    n_hidden = int(n_hidden if n_hidden is not None else rng.integers(1, 4))
    n_out = int(n_out if n_out is not None else rng.integers(1, 5))
    if mixed is None:
        mixed = rng.random() < 0.25
    first = act or random_act(rng, kinds)
    acts = [first if (not mixed or k == 0) else random_act(rng, kinds) for k in range(n_hidden)]
    widths = [_width_for(a, rng) for a in acts]
    if scale is None:
        scale = SCALES[int(rng.integers(len(SCALES)))]
    scales = _scale_for(scale, rng, n_hidden + 1)
    dims = [n_in, *widths, n_out]
    Ws, bs = [], []
    for k in range(n_hidden + 1):
        if dyadic:
            w = rng.integers(-8, 9, size=(dims[k + 1], dims[k])) / 4.0
            b = rng.integers(-8, 9, size=dims[k + 1]) / 4.0
        else:
            w = rng.normal(size=(dims[k + 1], dims[k])) * scales[k]
            b = rng.normal(size=dims[k + 1]) * scales[k] * 0.5
        Ws.append(w)
        bs.append(b)
    lab = label or (f"scale={scale}" if not dyadic else "dyadic")
    return Net(Ws, bs, acts, lab)


def npz_activation_json(net: Net, variant: int = 0) -> str:
    return json.dumps([act_spec(a, variant) for a in net.acts])
