"""Earlier H-consistency / calibration bound families as psi-transforms T (bound: Gamma = T^{-1}).

Each entry: T(t) for conditional 0-1 regret t in [0, 1], with its source. Provenance labels follow
theory.md: 'textbook' results were re-derived and are checked numerically in the tests; '[RECALL]'
entries come from recollection of the cited papers and were not checked against the PDFs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from theorytools.errors import TheoryError


@dataclass(frozen=True)
class PsiTransform:
    """One bound family: the surrogate regret is >= T(0-1 regret) over the stated hypothesis set."""

    name: str
    setting: str
    """'binary' or 'multi-class'."""
    hypothesis_set: str
    formula: str
    T: Callable[[np.ndarray], np.ndarray] | None
    """None where no non-trivial bound exists."""
    source: str
    provenance: str


def _log2_entropy_gap(t):
    t = np.asarray(t, float)
    with np.errstate(all="ignore"):
        a = np.where(t < 1, (1 - t) / 2 * np.log2(np.where(t < 1, 1 - t, 1.0)), 0.0)
    return (1 + t) / 2 * np.log2(1 + t) + a


_BJM = "Zhang (2004) Ann. Stat.; Bartlett, Jordan, McAuliffe (2006) JASA; H-consistency form: Awasthi, Mao, Mohri, Zhong (ICML 2022)"
_AMMZ_MC = "Awasthi, Mao, Mohri, Zhong (NeurIPS 2022), multi-class H-consistency bounds"
_MMZ_23 = "Mao, Mohri, Zhong (NeurIPS 2023), characterisation of H-consistency bounds"

PSI_TRANSFORMS: tuple[PsiTransform, ...] = (
    PsiTransform("hinge", "binary", "all measurable", "t", lambda t: np.asarray(t, float), _BJM, "textbook"),
    PsiTransform("exponential", "binary", "all measurable", "1 - sqrt(1 - t^2)",
                 lambda t: 1 - np.sqrt(1 - np.asarray(t, float) ** 2), _BJM, "textbook"),
    PsiTransform("logistic (log2)", "binary", "all measurable",
                 "(1+t)/2 log2(1+t) + (1-t)/2 log2(1-t)", _log2_entropy_gap, _BJM, "textbook"),
    PsiTransform("quadratic", "binary", "all measurable", "t^2", lambda t: np.asarray(t, float) ** 2, _BJM, "textbook"),
    PsiTransform("squared hinge", "binary", "all measurable", "t^2", lambda t: np.asarray(t, float) ** 2, _BJM, "textbook"),
    PsiTransform("sigmoid", "binary", "all measurable", "t", lambda t: np.asarray(t, float),
                 "Awasthi, Mao, Mohri, Zhong (ICML 2022)", "[RECALL]"),
    PsiTransform("rho-margin", "binary", "all measurable", "t", lambda t: np.asarray(t, float),
                 "Awasthi, Mao, Mohri, Zhong (ICML 2022)", "[RECALL]"),
    PsiTransform("hinge", "binary", "linear, |bias| <= B", "min(B, 1) t", None,
                 "Awasthi, Mao, Mohri, Zhong (ICML 2022)", "[RECALL] parametric in B; use formula"),
    PsiTransform("rho-margin", "binary", "linear, |bias| <= B", "min(B, rho) t / rho", None,
                 "Awasthi, Mao, Mohri, Zhong (ICML 2022)", "[RECALL] parametric in B, rho; use formula"),
    PsiTransform("max losses (Crammer-Singer), convex Phi", "multi-class", "symmetric complete", "none for n > 2",
                 None, _AMMZ_MC, "[RECALL]"),
    PsiTransform("sum-hinge", "multi-class", "symmetric complete", "none (floor 1/6)", None, _AMMZ_MC, "[RECALL]"),
    PsiTransform("sum-exponential", "multi-class", "symmetric complete", "t^2/2",
                 lambda t: np.asarray(t, float) ** 2 / 2, _AMMZ_MC, "[RECALL]; comp-sum tau = 0 improves it to 1 - sqrt(1 - t^2)"),
    PsiTransform("constrained exponential", "multi-class", "symmetric complete", "t^2/2",
                 lambda t: np.asarray(t, float) ** 2 / 2, _AMMZ_MC, "[RECALL]"),
    PsiTransform("constrained exponential (tight)", "multi-class", "symmetric complete", "2 - sqrt(4 - t^2)",
                 lambda t: 2 - np.sqrt(4 - np.asarray(t, float) ** 2), _MMZ_23, "[RECALL]"),
    PsiTransform("squared hinge", "multi-class", "symmetric complete", "t^2",
                 lambda t: np.asarray(t, float) ** 2, _AMMZ_MC, "[RECALL]"),
    PsiTransform("rho-margin", "multi-class", "symmetric complete", "t",
                 lambda t: np.asarray(t, float), _AMMZ_MC, "[RECALL]"),
    PsiTransform("constrained hinge", "multi-class", "symmetric complete", "t",
                 lambda t: np.asarray(t, float), _MMZ_23, "[RECALL]"),
    PsiTransform("comp-sum l^tau", "multi-class", "symmetric complete", "T_tau (see error_transform)", None,
                 "Mao, Mohri, Zhong (ICML 2023), arXiv:2304.07288", "derived + verified here"),
)


def psi_transform(name: str, setting: str = "binary", hypothesis_set: str = "all measurable") -> PsiTransform:
    """Look up one entry of PSI_TRANSFORMS by name, setting and hypothesis set."""
    for entry in PSI_TRANSFORMS:
        if entry.name == name and entry.setting == setting and entry.hypothesis_set == hypothesis_set:
            return entry
    names = sorted({(e.name, e.setting, e.hypothesis_set) for e in PSI_TRANSFORMS})
    raise TheoryError(f"The 'name' parameter of psi_transform must be one of {names}. Got {(name, setting, hypothesis_set)!r} instead.")
