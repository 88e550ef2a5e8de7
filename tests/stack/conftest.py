"""Everything under tests/stack runs against the real local stack."""

from __future__ import annotations

import pytest

from jobstream.settings import Settings


@pytest.fixture(autouse=True)
def _needs_stack(stack: Settings) -> None:
    """Every test here starts (or reuses) the real stack."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/stack/" in str(item.fspath):
            item.add_marker(pytest.mark.stack)
