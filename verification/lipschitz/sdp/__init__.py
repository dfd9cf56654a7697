"""The SDP layer below the SDP Lipschitz methods: model, certificate, solvers.

Bottom to top (each module imports only those above it in this list):

* :mod:`.certificate`: float64 certification of an LMI answer; numpy/scipy only (the trust base);
* :mod:`.quadratic_constraints`: the quadratic constraint of each activation, from its facts;
* :mod:`.chain`: the chain LMI of a network (:class:`~.chain.ChainSDP`) and its certification;
* :mod:`.cvxpy_problem`: solving a cvxpy problem with the project's error contract;
* :mod:`.eclipse_recursion`: the ECLipsE multipliers, layer by layer;
* :mod:`._newton_kernels`, :mod:`.block_tridiagonal`: structured linear algebra of the solvers;
* :mod:`.starts`: strictly feasible starting points of the interior-point method;
* :mod:`.backends`: one file per backend, one signature ``solve(sdp, *, progress, label, **options)``;
* :mod:`.solve`: the backend table, the ``auto`` choice and fallbacks, then the certificate.
* :mod:`.conv_frequency`: the per-frequency LMIs of convolution chains, their barrier solver and certificate.
"""
