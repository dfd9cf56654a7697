# Two entry points, both self-contained on a fresh machine:
#   make demo   create .venv if needed, install, bound the Lipschitz constant of the bundled example
#   make test   create .venv if needed, install, run the test suite (unit tests + notebooks)
# torch is pinned to the local CPU wheel in constraints.txt (any other spec pulls a multi-GB CUDA build).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE := examples/classifier.onnx
PYTEST_WORKERS ?= 2
# one BLAS/OpenMP thread per pytest worker: threads fighting over 2 cores made small matmuls ~10x slower
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: demo test test-fast notebooks benchmarks clean install

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

test-fast: $(STAMP)
	$(TEST_ENV) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q tests

benchmarks: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
