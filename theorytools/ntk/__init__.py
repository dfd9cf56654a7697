"""Neural tangent kernels (Jacot et al. 2018): analytic NNGP/NTK of fully connected and convolutional networks,
the empirical NTK of PyTorch models, kernel predictions of trained infinitely wide networks, and
infinitely deep NTK classifiers (Radhakrishnan, Belkin & Uhler).  See docs/ntk.md."""

from theorytools.ntk._deep import (
    DualActivation,
    deep_ntk,
    deep_ntk_classify,
    dirichlet_bayes_classify,
    dirichlet_sample,
    dual_activation,
    kernel_interpolation_classify,
    majority_vote_classify,
    nearest_neighbor_classify,
    singular_kernel_classify,
)
from theorytools.ntk._empirical import empirical_ntk, torch_mlp
from theorytools.ntk._monte_carlo import MonteCarloKernel, monte_carlo_kernels, torch_cnn
from theorytools.ntk._predict import (
    GaussianPrediction,
    KernelSolve,
    MSEPrediction,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    kernel_solve,
    max_learning_rate,
    nngp_posterior,
)
from theorytools.ntk._stax import (
    ABRelu,
    Abs,
    Dense,
    Elementwise,
    Erf,
    Gelu,
    Identity,
    Kernel,
    Layer,
    LeakyRelu,
    Relu,
)
from theorytools.ntk._cnn import AvgPool, Conv, Flatten, GlobalAvgPool, LayerNorm, Residual, Serial, serial

__all__ = [
    # analytic kernels
    "Kernel",
    "Layer",
    "Dense",
    "Relu",
    "LeakyRelu",
    "ABRelu",
    "Abs",
    "Erf",
    "Gelu",
    "Identity",
    "Elementwise",
    "Serial",
    "serial",
    # convolutional layers (CNN-GP / CNTK)
    "Conv",
    "AvgPool",
    "GlobalAvgPool",
    "Flatten",
    "LayerNorm",
    "Residual",
    # empirical NTK
    "empirical_ntk",
    "torch_mlp",
    "torch_cnn",
    "MonteCarloKernel",
    "monte_carlo_kernels",
    # predictions
    "MSEPrediction",
    "GaussianPrediction",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
    "nngp_posterior",
    "max_learning_rate",
    "KernelSolve",
    "kernel_solve",
    # infinitely deep NTK classifiers
    "DualActivation",
    "dual_activation",
    "deep_ntk",
    "deep_ntk_classify",
    "kernel_interpolation_classify",
    "majority_vote_classify",
    "nearest_neighbor_classify",
    "singular_kernel_classify",
    "dirichlet_sample",
    "dirichlet_bayes_classify",
]
