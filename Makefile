# Two entry points, both self-contained on a fresh machine:
#   make demo   create .venv if needed, install, bound the Lipschitz constant of the bundled example
#   make test   create .venv if needed, install, run the test suite (unit tests + notebooks), then
#               smoke-wheel: build the wheel, install it (core dependencies only) in a clean venv, run the CLIs
# torch is pinned to the local CPU wheel in constraints.txt (any other spec pulls a multi-GB CUDA build).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE := examples/classifier.onnx
PYTEST_WORKERS ?= 2
# one BLAS/OpenMP thread per pytest worker: threads fighting over 2 cores made small matmuls ~10x slower
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

SMOKE  := build/smoke

.PHONY: demo test test-fast test-other-cpu notebooks benchmarks clean install smoke-wheel

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/verification info $(EXAMPLE)
	$(BIN)/verification lipschitz $(EXAMPLE)
	$(BIN)/verification lipschitz $(EXAMPLE) --method sampled
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q tests notebooks --nbmake --nbmake-timeout=300
	$(MAKE) --no-print-directory smoke-wheel

# What `pip install theorytools-verification` gives a user: the wheel with its core dependencies only (no torch,
# no CVXOPT, no matplotlib), in a venv that does not see the checkout; the CLIs run from outside the tree.
smoke-wheel:
	rm -rf $(SMOKE) && mkdir -p $(SMOKE)
	$(PYTHON) -m pip wheel --quiet --disable-pip-version-check --no-deps . -w $(SMOKE)/dist
	$(PYTHON) -m venv $(SMOKE)/venv
	$(SMOKE)/venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt $(SMOKE)/dist/*.whl
	cd $(SMOKE) && ./venv/bin/python -c "import verification, theorytools; assert 'site-packages' in verification.__file__"
	cd $(SMOKE) && ./venv/bin/verification --help > /dev/null
	cd $(SMOKE) && ./venv/bin/theorytools --help > /dev/null
	cd $(SMOKE) && $(TEST_ENV) ./venv/bin/verification info $(CURDIR)/$(EXAMPLE)
	cd $(SMOKE) && $(TEST_ENV) ./venv/bin/verification lipschitz $(CURDIR)/$(EXAMPLE)
	rm -rf $(SMOKE)

test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q tests

# The unit tests with the arithmetic of an older x86-64 CPU: OpenBLAS's generic (Prescott) kernels, numpy without
# its AVX2/AVX-512 loops, numba compiled for a generic CPU (other rounding in every BLAS call, ufunc and kernel).
# About 15 minutes on 2 shared cores (numba recompiles); not part of `make test`.
test-other-cpu: $(STAMP)
	$(TEST_ENV) OPENBLAS_CORETYPE=Prescott NPY_DISABLE_CPU_FEATURES="X86_V4 X86_V3" NUMBA_CPU_NAME=generic \
		NUMBA_CACHE_DIR=$(CURDIR)/build/numba-generic $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -p no:cacheprovider tests

benchmarks: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
