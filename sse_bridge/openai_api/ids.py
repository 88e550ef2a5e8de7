"""A response's and a chat completion's id are their job's, under OpenAI's prefixes: nothing maps ids to jobs, so
any replica answers for any response."""

from __future__ import annotations

import re

JOB_PREFIX = "job_"
RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"
CHAT_PREFIX = "chatcmpl-"
_SUFFIX = re.compile(r"^[a-z2-7]{26}$")


def response_id(job_id: str) -> str:
    return RESPONSE_PREFIX + job_id.removeprefix(JOB_PREFIX)


def message_id(job_id: str) -> str:
    return MESSAGE_PREFIX + job_id.removeprefix(JOB_PREFIX)


def chat_id(job_id: str) -> str:
    return CHAT_PREFIX + job_id.removeprefix(JOB_PREFIX)


def job_of(ident: str, prefix: str) -> str | None:
    """The job behind a response or chat completion id; None for an id that is not one of ours."""
    suffix = ident.removeprefix(prefix)
    return JOB_PREFIX + suffix if ident.startswith(prefix) and _SUFFIX.fullmatch(suffix) else None
