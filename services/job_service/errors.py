"""What the JobService's operations refuse, in the domain's words. Nothing here knows gRPC: interceptors.py maps
each refusal to its status code, in one place, so an operation raises and never aborts a call itself."""

from __future__ import annotations


class Refused(Exception):
    """A refusal the caller can act on; its message is what the caller reads."""


class FieldError(Refused):
    """A request field the operation cannot take; the message names it first."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidField(FieldError):
    """The field is malformed or not allowed: fix the request."""


class TooLarge(FieldError):
    """The field's input is over a size limit."""


class ChangedUnderfoot(FieldError):
    """What the field names changed while it was checked: submit again."""


class OverLimit(Refused):
    """The tenant holds its limit of something (running jobs, uploads) or reads too slowly: wait, then retry."""


class JobNotFound(Refused):
    """No such job for this caller: a job of another tenant does not exist for them."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} not found")


class KeyReused(Refused):
    """The idempotency key was used before for a different request."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"idempotency_key: already used for job {job_id} with a different request")


class NotAuthenticated(Refused):
    """The call reached an operation without an established caller."""


class LimitsUnreadable(Refused):
    """The tenants' limits cannot be read right now: retry shortly."""

    def __init__(self) -> None:
        super().__init__("the tenants' limits cannot be read; retry shortly")
