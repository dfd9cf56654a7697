"""Numerical deep-learning theory: deep linear dynamics, neural tangent kernels, random-matrix
learning-rate rules and H-consistency bounds.

Subpackages are imported on demand (``import theorytools.ntk``) so that importing
:mod:`theorytools` stays cheap.
"""

from theorytools.errors import TheoryError

__all__ = ["TheoryError"]
__version__ = "0.1.0"
