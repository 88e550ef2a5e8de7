"""The CPU worker's job workflow types: each registered under the name its class declares."""

from __future__ import annotations

from temporalio import workflow

from workers.workflow_types import JOB_WORKFLOW_TYPES, JOB_WORKFLOWS


def test_each_type_is_registered_under_its_own_name() -> None:
    for name, cls in JOB_WORKFLOWS.items():
        definition = workflow._Definition.must_from_class(cls)
        assert definition.name == name
    assert set(JOB_WORKFLOWS) <= set(JOB_WORKFLOW_TYPES)
