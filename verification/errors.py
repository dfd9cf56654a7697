"""Exception hierarchy of :mod:`verification`.

Every error the toolkit raises on purpose derives from :class:`VerificationError`; the CLI turns it into
a one-line message on stderr and exit code 2.  Messages name what was wrong and, where possible, what to do.
"""

from __future__ import annotations

__all__ = [
    "VerificationError",
    "ModelFormatError",
    "UnsupportedLayerError",
    "ShapeMismatchError",
    "InvalidWeightsError",
    "UntrustedModelError",
    "PropertyFormatError",
    "InvalidParameterError",
    "PreconditionError",
    "SolverError",
    "InternalCheckError",
]


class VerificationError(Exception):
    """Base class of all errors raised by :mod:`verification`."""


class ModelFormatError(VerificationError):
    """A model file is missing, corrupt, truncated or of an unknown format."""


class UnsupportedLayerError(VerificationError):
    """A model uses an operator / layer / activation the network IR cannot represent exactly."""


class ShapeMismatchError(VerificationError):
    """Consecutive layers (or inputs and layers) disagree on dimensions."""


class InvalidWeightsError(VerificationError):
    """Weights contain NaN/inf or are otherwise unusable."""


class UntrustedModelError(VerificationError):
    """A file needs unpickling of arbitrary Python objects and ``trust=True`` was not given."""


class PropertyFormatError(VerificationError):
    """A property (VNN-LIB file, box, ball) is malformed or unsupported."""


class InvalidParameterError(VerificationError, ValueError):
    """A parameter of a public function has an invalid value."""


class PreconditionError(VerificationError):
    """A method cannot be applied to this network (e.g. exact enumeration on a deep net)."""


class SolverError(VerificationError):
    """A numerical solver failed or returned an answer that could not be certified."""


class InternalCheckError(VerificationError):
    """A self-check failed: e.g. a value attained by the network exceeds a bound we computed as certified.
    This is a bug of ours, never bad input; the CLI reports it with exit code 4 and prints no result."""
