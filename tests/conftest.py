"""Fixtures shared by all tests: the reference data in ../shared (beside the repository in CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (expected ../shared beside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def acasxu_dir() -> Path:
    return _require(SHARED / "benchmarks" / "acasxu")


@pytest.fixture(scope="session")
def lipsdp_dir() -> Path:
    return _require(SHARED / "benchmarks" / "lipsdp")


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return REPO / "examples"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
