"""Fixtures shared by all tests.  Reference data the tests need is copied into ``tests/data`` (provenance in
``tests/data/README.md``): tests read nothing outside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"

# The per-user cache of cross-checked networks (verification/io/cache.py) is off in tests, so that every
# test loads (and cross-checks) its files; tests/verification/test_io_cache.py turns it on in a temp dir.
os.environ["VERIFICATION_CACHE_DIR"] = "off"


@pytest.fixture(scope="session")
def acasxu_dir() -> Path:
    """Two ACAS Xu networks (1_1, 2_3) as ``.onnx`` and ``.nnet``."""
    return DATA / "acasxu"


@pytest.fixture(scope="session")
def lipsdp_dir() -> Path:
    """LipSDP's example weights ``random_weights.mat`` and ``mnist_weights.mat``."""
    return DATA / "lipsdp"


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return REPO / "examples"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
