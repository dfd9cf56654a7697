"""Learning rate vs batch size from random matrix theory, with Hessian spectral tools.

Granziol, Zohren & Roberts, "Learning rates as a function of batch size: a random matrix theory
approach to neural network training", JMLR 23(173), 2022 (arXiv:2006.09092).

* Outlier laws: :func:`spiked_wigner_outlier` (batch Hessian), :func:`spiked_wishart_outlier`
  (batch Gauss--Newton), bulk edges and BBP thresholds.
* Learning-rate rules: :func:`sgd_max_lr`, :func:`sgd_max_lr_linear`, :func:`adaptive_max_lr`,
  :func:`critical_batch_size`, :func:`lr_ratio`.
* Spectral estimation on matrix-vector products: :func:`lanczos`, :func:`slq_density`,
  :func:`top_eigenvalue`, :func:`hutchinson_trace`.
* torch models (torch imported lazily): :func:`torch_curvature_operator` (Hessian / GGN) of one
  batch or, with ``dataloader=``, of the mean loss over a data loader.
* Experiments: :func:`batch_extreme_eigenvalues`, :func:`estimate_noise_scale`, :func:`fit_batch_curve`, :func:`max_stable_lr`,
  :func:`gd_diverges`, :func:`torch_training_diverges`, :func:`stable_lr_sweep`, :func:`fit_lr_scaling`.
"""

from theorytools.rmt._experiment import (
    BatchCurveFit,
    BatchSpectrum,
    LRScalingFit,
    LRSweep,
    NoiseScale,
    StableLR,
    batch_extreme_eigenvalues,
    estimate_noise_scale,
    fit_batch_curve,
    fit_lr_scaling,
    gd_diverges,
    max_stable_lr,
    stable_lr_sweep,
    torch_training_diverges,
)
from theorytools.rmt._laws import (
    adaptive_max_lr,
    critical_batch_size,
    lr_ratio,
    sample_spiked_wigner,
    sample_spiked_wishart_data,
    sgd_max_lr,
    sgd_max_lr_linear,
    spiked_wigner_outlier,
    spiked_wishart_outlier,
    wigner_bulk_edge,
    wigner_threshold,
    wishart_bulk_edges,
    wishart_threshold,
)
from theorytools.rmt._spectral import (
    LanczosResult,
    PowerIterationResult,
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    lanczos,
    slq_density,
    top_eigenvalue,
)
from theorytools.rmt._torch_ops import (
    TorchCurvatureOperator,
    TorchLoaderCurvatureOperator,
    torch_curvature_operator,
)

__all__ = [
    "BatchCurveFit", "BatchSpectrum", "LRScalingFit", "LRSweep", "LanczosResult", "NoiseScale",
    "PowerIterationResult", "SpectralDensity", "StableLR", "TorchCurvatureOperator",
    "TorchLoaderCurvatureOperator", "TraceEstimate",
    "adaptive_max_lr", "batch_extreme_eigenvalues", "critical_batch_size", "estimate_noise_scale",
    "fit_batch_curve",
    "fit_lr_scaling", "gd_diverges", "hutchinson_trace", "lanczos", "lr_ratio", "max_stable_lr",
    "sample_spiked_wigner", "sample_spiked_wishart_data", "sgd_max_lr", "sgd_max_lr_linear",
    "slq_density", "spiked_wigner_outlier", "spiked_wishart_outlier", "stable_lr_sweep",
    "top_eigenvalue", "torch_curvature_operator", "torch_training_diverges", "wigner_bulk_edge",
    "wigner_threshold", "wishart_bulk_edges", "wishart_threshold",
]
