"""Everything under tests/stack runs against the real local stack."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator

import pytest

from devstack import reliability as report
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    # Keep the call phase's outcome on the item, for the `reliability` fixture's teardown.
    outcome = yield
    if call.when == "call":
        item.stash[_CALL_OUTCOME] = "passed" if call.excinfo is None else "failed"
    return outcome


_CALL_OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[report.Record]:
    """The test's line in the reliability report (`jobstream reliability`): the test fills in what it did."""
    record = report.Record(fault=request.node.name, test=request.node.nodeid)
    started = time.monotonic()
    yield record
    record.outcome = request.node.stash.get(_CALL_OUTCOME, "error")
    record.seconds = round(time.monotonic() - started, 1)
    report.append(record)
