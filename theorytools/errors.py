"""Exception hierarchy of :mod:`theorytools`."""

from __future__ import annotations

__all__ = ["TheoryError"]


class TheoryError(ValueError):
    """Base class for every error raised by :mod:`theorytools` (bad parameters, failed solves)."""
