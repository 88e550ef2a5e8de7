"""Temporal search attributes that make jobs listable per tenant and status (registered by the local stack)."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

JOB_TENANT = SearchAttributeKey.for_keyword("JobTenant")
JOB_STATUS = SearchAttributeKey.for_keyword("JobStatus")
JOB_PIPELINE = SearchAttributeKey.for_keyword("JobPipeline")

SEARCH_ATTRIBUTE_TYPES = {key.name: "Keyword" for key in (JOB_TENANT, JOB_STATUS, JOB_PIPELINE)}


def tenant_term(tenant: str) -> str:
    """The visibility-query term for one tenant's jobs (the name quoted as a string literal)."""
    quoted = tenant.replace("\\", "\\\\").replace("'", "\\'")
    return f"{JOB_TENANT.name} = '{quoted}'"
