"""Neural tangent kernels (Jacot et al. 2018): analytic NNGP/NTK of fully connected networks,
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
from theorytools.ntk._predict import (
    GaussianPrediction,
    MSEPrediction,
    gradient_descent_mse,
    gradient_descent_mse_ensemble,
    max_learning_rate,
    nngp_posterior,
)
from theorytools.ntk._stax import (
    ABRelu,
    Abs,
    Dense,
    Elementwise,
    Erf,
    Identity,
    Kernel,
    Layer,
    LeakyRelu,
    Relu,
    Serial,
    serial,
)

from theorytools.ntk import _deep, _empirical, _predict, _stax

# the public names are those the submodules export
__all__ = [*_stax.__all__, *_empirical.__all__, *_predict.__all__, *_deep.__all__]
