"""Where a retried model stage goes on, as a pure function of what its predecessor delivered.

The rule: a token a client may have seen is never generated again under another index. A retried attempt reads
back the stage's delivered prefix (the gap-free tokens its predecessors published) and, as the stage declares,
asks the model to continue the input followed by them (`continue`: a model that conditions on text), or to
start over and regenerate them first (`restart`: a model that only reproduces its own samples), in which case
each regenerated token must equal the delivered one: a model that does not reproduce fails the stage as
`ModelNotReproducible` (non-retryable) rather than publish a sequence that contradicts what clients saw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from jobstream.pipelines import Resume
from jobstream.workflow_io import StageProgress

NOT_REPRODUCIBLE = "ModelNotReproducible"


def resumed_progress(heartbeat_details: Sequence[Any]) -> StageProgress:
    """The progress the previous attempt heartbeated; none on a first attempt (or unreadable details)."""
    try:
        return StageProgress.model_validate(heartbeat_details[0]) if heartbeat_details else StageProgress()
    except ValidationError:
        return StageProgress()


@dataclass(frozen=True)
class ResumePlan:
    """What an attempt asks the model for, given the delivered prefix."""

    delivered: tuple[str, ...]  # the stage's tokens clients may have seen, in order
    text: str  # what the model continues
    budget: int  # how many tokens to ask for (0: nothing left to generate)
    regenerate: int  # how many of the model's first tokens are the delivered ones again (verified, not published)

    @classmethod
    def of(cls, text: str, delivered: Sequence[str], mode: Resume, max_tokens: int) -> ResumePlan:
        prefix = tuple(delivered)
        if mode == "continue":
            return cls(prefix, text + "".join(prefix), max(0, max_tokens - len(prefix)), 0)
        return cls(prefix, text, max_tokens if len(prefix) < max_tokens else 0, len(prefix))

    def verify(self, model: str, position: int, text: str) -> None:
        """The model's `position`-th token of a restart, which must be the delivered one."""
        if text != self.delivered[position]:
            raise ApplicationError(
                f"model {model} declares resume: restart but regenerated {text!r} where it had delivered "
                f"{self.delivered[position]!r}",
                type=NOT_REPRODUCIBLE,
                non_retryable=True,
            )
