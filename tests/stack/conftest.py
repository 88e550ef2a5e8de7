"""Everything under tests/stack runs against the real local stack."""

from __future__ import annotations

import pytest

from jobstream.settings import Settings


def pytest_configure(config: pytest.Config) -> None:
    # Measurements that print figures (run with -s); they run in the normal suite too, kept short.
    config.addinivalue_line("markers", "perf: prints a performance figure; select with -m perf")


@pytest.fixture(autouse=True)
def _needs_stack(stack: Settings) -> None:
    """Every test here starts (or reuses) the real stack."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/stack/" in str(item.fspath):
            item.add_marker(pytest.mark.stack)
