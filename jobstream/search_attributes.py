"""Temporal search attributes that make jobs listable per tenant and status, and their inputs countable (registered
by the local stack and by provisioning)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

JOB_TENANT = SearchAttributeKey.for_keyword("JobTenant")
JOB_STATUS = SearchAttributeKey.for_keyword("JobStatus")
JOB_PIPELINE = SearchAttributeKey.for_keyword("JobPipeline")
# Bytes of the job's input: the running-jobs quota sums them over a tenant's running jobs.
JOB_INPUT_BYTES = SearchAttributeKey.for_int("JobInputBytes")

SEARCH_ATTRIBUTE_TYPES = {
    **{key.name: "Keyword" for key in (JOB_TENANT, JOB_STATUS, JOB_PIPELINE)},
    JOB_INPUT_BYTES.name: "Int",
}


def tenant_term(tenant: str) -> str:
    """The visibility-query term for one tenant's jobs (the name quoted as a string literal)."""
    quoted = tenant.replace("\\", "\\\\").replace("'", "\\'")
    return f"{JOB_TENANT.name} = '{quoted}'"
