"""Exact learning dynamics of deep linear networks (Saxe, McClelland & Ganguli, ICLR 2014).

Conventions: correlations are sums over examples (Sigma31 = sum_mu y x^T), tau = 1/lambda with
lambda the batch learning rate, t counts full-batch iterations. Equation numbers refer to
arXiv:1312.6120. See docs/deep_linear.md.
"""

from theorytools.deep_linear._closed_form import (
    best_rank_approximation,
    conserved_quantity,
    deep_learning_time,
    deep_mode_rhs,
    deep_mode_strength,
    energy,
    half_learning_time,
    infinite_depth_learning_time,
    learning_time,
    mode_energy,
    mode_flow,
    mode_strength,
)
from theorytools.deep_linear._data import HierarchicalData, hierarchical_dataset
from theorytools.deep_linear._riccati import balanced_flow_solution
from theorytools.deep_linear._random_matrix import (
    JacobianSpectrum,
    fuss_catalan,
    product_eigenvalues,
    product_matrices,
    product_singular_values,
    tanh_jacobian_spectrum,
    tanh_variance_map,
)
from theorytools.deep_linear._simulate import (
    Trajectory,
    decoupled_init,
    growing_mode_strength,
    lambda_balanced_init,
    mode_gd,
    random_init,
    random_orthogonal,
    simulate_linear,
    simulate_network,
)

__all__ = [
    "HierarchicalData",
    "JacobianSpectrum",
    "Trajectory",
    "balanced_flow_solution",
    "best_rank_approximation",
    "conserved_quantity",
    "decoupled_init",
    "deep_learning_time",
    "deep_mode_rhs",
    "deep_mode_strength",
    "energy",
    "fuss_catalan",
    "growing_mode_strength",
    "half_learning_time",
    "hierarchical_dataset",
    "infinite_depth_learning_time",
    "lambda_balanced_init",
    "learning_time",
    "mode_energy",
    "mode_flow",
    "mode_gd",
    "mode_strength",
    "product_eigenvalues",
    "product_matrices",
    "product_singular_values",
    "random_init",
    "random_orthogonal",
    "simulate_linear",
    "simulate_network",
    "tanh_jacobian_spectrum",
    "tanh_variance_map",
]
