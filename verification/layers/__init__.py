"""Layers of the network IR other than activations: affine maps sharing one protocol.

Methods talk to an affine layer only through :class:`AffineLayer` (forward, transposed product, products with
``|W|``, rows, certified norm bounds, ``as_matrix()`` where a small dense matrix is truly needed), so a new
affine layer (a convolution kept as a convolution, a folded batch-norm scale) works with every method that
uses the protocol without being densified.
"""

from verification.layers.affine import AffineLayer, Dense
from verification.layers.conv import Conv2d, avg_pool2d, channel_affine, check_dense, global_avg_pool
from verification.layers.sparse import SparseAffine

__all__ = ["AffineLayer", "Dense", "Conv2d", "avg_pool2d", "channel_affine", "check_dense", "global_avg_pool", "SparseAffine"]
