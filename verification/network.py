"""The network intermediate representation (IR) used by every method of the toolkit.

A :class:`Network` is a feed-forward chain of :class:`Dense` affine layers and activations
(:mod:`verification.activations`).  Every loader produces one, every method consumes one.  All arrays are
float64 and C-contiguous; weights are stored ``(out_features, in_features)`` so that a dense layer maps
``x -> W x + b``.

Most methods want the *canonical form* ``f(x) = D_L(σ_L(... σ_1(D_0 x)))``: dense and activation layers
strictly alternating, starting and ending with a dense layer.  :meth:`Network.canonical` returns that form
(consecutive dense layers are multiplied out in float64, the rounding recorded on the product as a
:class:`~verification.layers.deviation.Deviation`; missing dense layers are identities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, Union

import numpy as np

from verification.activations import Activation, Identity
from verification.layers import AffineLayer, Dense
from verification.layers.deviation import fold, output_deviation
from verification.errors import InvalidParameterError, InvalidWeightsError, ShapeMismatchError

__all__ = ["AffineLayer", "Dense", "Layer", "Network"]


def _as_f64(a: Any) -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    arr.setflags(write=False)
    return arr


Layer = Union[AffineLayer, Activation]


@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network: a chain of :class:`Dense` layers and activations.

    Parameters
    ----------
    layers:
        The chain, applied left to right.  Must contain at least one dense layer (the input width is
        taken from the first dense layer).
    input_lower, input_upper:
        Optional input domain stored with the model (e.g. the ``.nnet`` header), in the network's own
        input units.  Methods may use it as the default region; it never changes ``net(x)``.
    metadata:
        Free-form provenance: ``source`` path, ``format``, normalisation constants, ...
    """

    layers: tuple[Layer, ...]
    input_lower: np.ndarray | None = None
    input_upper: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not any(isinstance(l, AffineLayer) for l in layers):
            raise ShapeMismatchError("a network needs at least one dense layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (AffineLayer, Activation)):
                raise InvalidParameterError(f"layer {i} is a {type(layer).__name__}, not an affine layer or Activation")
        width = None
        for i, layer in enumerate(layers):
            if isinstance(layer, AffineLayer):
                bad = layer.check_finite()
                if bad:
                    raise InvalidWeightsError(f"layer {i} ({layer.describe()}) has a NaN or infinite {bad} entry")
                if width is not None and layer.in_features != width:
                    raise ShapeMismatchError(
                        f"layer {i} ({layer.describe()}) expects {layer.in_features} inputs "
                        f"but the previous layer gives {width}"
                    )
                width = layer.out_features
            elif width is not None:
                layer.check_width(width)
        n_in = self.in_dim
        for name in ("input_lower", "input_upper"):
            val = getattr(self, name)
            if val is not None:
                arr = _as_f64(val).reshape(-1)
                if arr.shape[0] != n_in:
                    raise ShapeMismatchError(f"{name} has {arr.shape[0]} entries, the network has {n_in} inputs")
                object.__setattr__(self, name, arr)
        if self.input_lower is not None and self.input_upper is not None:
            if np.any(self.input_lower > self.input_upper):
                raise InvalidParameterError("input_lower exceeds input_upper in some coordinate")

    # ------------------------------------------------------------------ structure
    @property
    def in_dim(self) -> int:
        return next(l for l in self.layers if isinstance(l, AffineLayer)).in_features

    @property
    def out_dim(self) -> int:
        return self.widths[-1]

    @property
    def widths(self) -> list[int]:
        """Width after each layer, preceded by the input width."""
        out = [self.in_dim]
        for layer in self.layers:
            out.append(layer.out_features if isinstance(layer, AffineLayer) else out[-1])
        return out

    @property
    def affine_layers(self) -> list[AffineLayer]:
        """The affine layers, in order (each implements :class:`~verification.layers.AffineLayer`)."""
        return [l for l in self.layers if isinstance(l, AffineLayer)]

    @property
    def dense_layers(self) -> list[AffineLayer]:
        """Alias of :attr:`affine_layers` (kept for existing callers)."""
        return self.affine_layers

    @property
    def activations(self) -> list[Activation]:
        return [l for l in self.layers if isinstance(l, Activation)]

    @property
    def weights(self) -> list[np.ndarray]:
        """Dense weight matrices of the affine layers, ``(out, in)`` each (``as_matrix()``; for small nets)."""
        return [l.as_matrix() for l in self.affine_layers]

    @property
    def biases(self) -> list[np.ndarray]:
        return [l.bias for l in self.affine_layers]

    @property
    def is_canonical(self) -> bool:
        """True if layers alternate dense / activation, starting and ending with dense."""
        ls = self.layers
        return (
            len(ls) % 2 == 1
            and all(isinstance(l, AffineLayer) for l in ls[0::2])
            and all(isinstance(l, Activation) for l in ls[1::2])
        )

    @property
    def hidden_widths(self) -> list[int]:
        """Widths of the activation layers of the canonical form."""
        net = self.canonical()
        return [d.out_features for d in net.affine_layers[:-1]]

    def slope_bounds(self) -> list[tuple[float, float] | None]:
        """Slope bounds ``(alpha, beta)`` of each activation (``None`` if not elementwise slope-restricted)."""
        return [a.slope_bounds() for a in self.activations]

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    # ------------------------------------------------------------------ transformations
    def canonical(self) -> "Network":
        """Equivalent network in canonical form (dense, act, dense, ..., act, dense)."""
        if self.is_canonical:
            return self
        out: list[Layer] = []
        width = self.in_dim
        for layer in self.layers:
            if isinstance(layer, AffineLayer):
                if out and isinstance(out[-1], AffineLayer):
                    layer = fold(layer, out.pop())  # rounding recorded (verification.layers.deviation)
                out.append(layer)
                width = layer.out_features
            else:
                if isinstance(layer, Identity):
                    continue
                if not out or isinstance(out[-1], Activation):
                    out.append(Dense.identity(width))
                out.append(layer)
        if isinstance(out[-1], Activation):
            out.append(Dense.identity(width))
        return Network(tuple(out), self.input_lower, self.input_upper, dict(self.metadata))

    def with_output(self, c: np.ndarray | int) -> "Network":
        """Network computing the scalar ``cᵀ f(x)`` (``c`` an output index or a vector of length out_dim)."""
        net = self.canonical()
        vec = output_vector(c, net.out_dim)
        last = net.layers[-1]
        new_last = fold(Dense(vec[None, :]), last)
        return Network(net.layers[:-1] + (new_last,), net.input_lower, net.input_upper, dict(net.metadata))

    def rounded(self, dtype: type = np.float32) -> "Network":
        """Same network with every weight and bias rounded to ``dtype`` (stored back as float64).

        E.g. an ``.nnet`` file (decimal text) and its ONNX export (float32 tensors) define the same function
        only after rounding the ``.nnet`` weights to float32."""
        layers = tuple(
            l.rounded(dtype) if isinstance(l, AffineLayer) else l for l in self.layers
        )
        return Network(layers, self.input_lower, self.input_upper, dict(self.metadata))

    def deviation(self, lower: np.ndarray, upper: np.ndarray | None = None) -> np.ndarray | None:
        """A bound per output on how far the file's function may be from this network's float weights over the
        box ``[lower, upper]`` (a point if ``upper`` is None), or ``None`` if every weight is an exact copy
        (:func:`verification.layers.deviation.output_deviation`: folded or rescaled layers)."""
        return output_deviation(self, lower, upper)

    # ------------------------------------------------------------------ evaluation
    def _batch(self, x: np.ndarray) -> tuple[np.ndarray, bool]:
        arr = np.asarray(x, dtype=np.float64)
        single = arr.ndim == 1
        arr = arr.reshape(1, -1) if single else arr.reshape(arr.shape[0], -1)
        if arr.shape[1] != self.in_dim:
            raise ShapeMismatchError(f"input has {arr.shape[1]} features, the network expects {self.in_dim}")
        return arr, single

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Evaluate in float64 on one input ``(n,)`` or a batch ``(N, n)``."""
        h, single = self._batch(x)
        for layer in self.layers:
            h = layer(h)
        return h[0] if single else h

    def forward_trace(self, x: np.ndarray) -> list[np.ndarray]:
        """Values after every layer (batched), preceded by the input: ``len(layers) + 1`` arrays."""
        h, _ = self._batch(x)
        trace = [h]
        for layer in self.layers:
            h = layer(h)
            trace.append(h)
        return trace

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Jacobian ``∂f/∂x`` at each input: shape ``(N, out_dim, in_dim)`` (``(out, in)`` for one input).

        At kinks of piecewise-linear activations one element of the Clarke Jacobian is returned
        (ReLU'(0) = 0, ties in GroupSort broken by position).  Reverse mode (products started from the
        output rows) when the output is narrower than the input, forward mode otherwise."""
        h, single = self._batch(x)
        if self.out_dim <= self.in_dim:
            jac = self.vector_jacobian(h, np.eye(self.out_dim))
        else:
            inputs = self._layer_inputs(h)
            jac = np.broadcast_to(np.eye(self.in_dim), (h.shape[0], self.in_dim, self.in_dim)).copy()
            for layer, z in zip(self.layers, inputs):
                if isinstance(layer, AffineLayer):
                    jac = layer.linear(jac.swapaxes(1, 2)).swapaxes(1, 2)
                elif layer.elementwise:
                    jac = layer.derivative(z)[:, :, None] * jac
                else:
                    jac = layer.jacobian(z) @ jac
        return jac[0] if single else jac

    def vector_jacobian(self, x: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Row gradients ``c_k ᵀ ∂f/∂x`` by one reverse pass: ``seeds`` of shape ``(K, out_dim)`` (the same rows
        at every input) or ``(N, K, out_dim)`` (per input); returns ``(N, K, in_dim)``.  Cheaper than the full
        Jacobian when ``K`` is small (e.g. one logit difference per sample in an attack)."""
        h, _ = self._batch(x)
        seeds = np.asarray(seeds, dtype=np.float64)
        if seeds.ndim == 2:
            seeds = np.broadcast_to(seeds, (h.shape[0],) + seeds.shape)
        if seeds.ndim != 3 or seeds.shape[0] != h.shape[0] or seeds.shape[2] != self.out_dim:
            raise ShapeMismatchError(
                f"seeds must have shape (K, {self.out_dim}) or ({h.shape[0]}, K, {self.out_dim}); got {seeds.shape}"
            )
        g = seeds.copy()
        for layer, z in zip(reversed(self.layers), reversed(self._layer_inputs(h))):
            if isinstance(layer, AffineLayer):
                g = layer.transpose(g)
            elif layer.elementwise:
                g = g * layer.derivative(z)[:, None, :]
            else:
                g = g @ layer.jacobian(z)
        return g

    def _layer_inputs(self, h: np.ndarray) -> list[np.ndarray]:
        """Input of every layer for the batch ``h``."""
        inputs = []
        for layer in self.layers:
            inputs.append(h)
            h = layer(h)
        return inputs

    # ------------------------------------------------------------------ display
    def describe(self) -> str:
        """One-line architecture summary, e.g. ``5 -> dense(5->50) relu ... -> 5``."""
        parts = [l.describe() for l in self.layers]
        return f"{self.in_dim} -> " + " ".join(parts) + f" -> {self.out_dim}"

    def __repr__(self) -> str:
        src = self.metadata.get("source")
        return f"Network({self.describe()}" + (f", source={src!r})" if src else ")")


def output_vector(c: np.ndarray | int | Sequence[float], out_dim: int) -> np.ndarray:
    """Turn an output selector into a vector ``c`` of length ``out_dim`` (an index gives ``e_c``)."""
    if isinstance(c, (int, np.integer)):
        if not 0 <= int(c) < out_dim:
            raise InvalidParameterError(
                f"The 'output' parameter must be an index in [0, {out_dim - 1}]. Got {c} instead."
            )
        vec = np.zeros(out_dim)
        vec[int(c)] = 1.0
        return vec
    vec = np.asarray(c, dtype=np.float64).reshape(-1)
    if vec.shape[0] != out_dim or not np.all(np.isfinite(vec)):
        raise InvalidParameterError(
            f"The 'output' parameter must be an index or a finite vector of length {out_dim}. Got shape {vec.shape}."
        )
    return vec
