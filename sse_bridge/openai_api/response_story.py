"""A job's story as the Responses API's stream: each job event becomes the documented events, numbered as a pure
function of the story, so that every replay, from any replica and after any disconnect, numbers them the same.

  job.started      -> response.created 0, response.queued 1, response.in_progress 2,
                      response.output_item.added 3, response.content_part.added 4
  token i          -> response.output_text.delta 5 + i
  job.completed    -> response.output_text.done 5 + n, response.content_part.done 6 + n,
                      response.output_item.done 7 + n, then response.completed (or response.incomplete when the
                      token budget cut it) 8 + n
  job.failed       -> response.failed 5 + n
  job.cancelled    -> response.incomplete 5 + n, its response's status "cancelled" (the SDKs know no
                      response.cancelled stream event; this is one they all end on)

n is the number of tokens; stage events say nothing to this surface. Tokens arrive exactly once and in order
(the fan-out's guarantee), so token i is always the (i+1)-th delta."""

from __future__ import annotations

from typing import Any

from jobstream.event_types import EventType
from jobstream.v1.event_pb2 import JobEvent
from jobstream.v1.job_pb2 import Usage
from sse_bridge.openai_api import ids
from sse_bridge.openai_api.response_object import message, response, status_of_end, text_part

FIRST_DELTA = 5
Event = dict[str, Any]


class ResponseStory:
    """One job's story as a response's: `created_at` and `metadata` are the job's own (they never change)."""

    def __init__(self, job_id: str, model: str, created_at: int, metadata: dict[str, str]) -> None:
        self.response_id = ids.response_id(job_id)
        self.item_id = ids.message_id(job_id)
        self.model = model
        self.created_at = created_at
        self.metadata = metadata
        self.text: list[str] = []
        self.ended = False

    def events(self, event: JobEvent) -> list[Event]:
        """The Responses events that `event` of the job's story stands for (none for a stage event)."""
        match event.type:
            case EventType.JOB_STARTED:
                return self._opening()
            case EventType.TOKEN:
                return [self._delta(event.token.index, event.token.text)]
            case EventType.JOB_COMPLETED:
                done = event.job_completed
                return self._closing(status_of_end(done.finish_reason), done.usage)
            case EventType.JOB_FAILED:
                failure = {"code": "server_error", "message": event.job_failed.error.message}
                return [self._end("response.failed", "failed", event.job_failed.usage, error=failure)]
            case EventType.JOB_CANCELLED:
                return [self._end("response.incomplete", "cancelled", event.job_cancelled.usage)]
        return []

    def queued(self) -> Event:
        """The response as created in the background, before its job has started."""
        return self._response("queued", [])

    def _response(self, status: str, output: list[Event], used: Usage | None = None, **extra: Any) -> Event:
        return response(
            self.response_id, self.created_at, self.model, status, output, used, metadata=self.metadata, **extra
        )

    def _opening(self) -> list[Event]:
        queued, running = self._response("queued", []), self._response("in_progress", [])
        return [
            {"type": "response.created", "sequence_number": 0, "response": queued},
            {"type": "response.queued", "sequence_number": 1, "response": queued},
            {"type": "response.in_progress", "sequence_number": 2, "response": running},
            {
                "type": "response.output_item.added",
                "sequence_number": 3,
                "output_index": 0,
                "item": message(self.item_id, None, "in_progress"),
            },
            {**self._part_event("response.content_part.added", ""), "sequence_number": 4},
        ]

    def _part_event(self, kind: str, text: str) -> Event:
        return {"type": kind, "item_id": self.item_id, "output_index": 0, "content_index": 0, "part": text_part(text)}

    def _delta(self, index: int, text: str) -> Event:
        self.text.append(text)
        return {
            "type": "response.output_text.delta",
            "sequence_number": FIRST_DELTA + index,
            "item_id": self.item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": text,
            "logprobs": [],
        }

    def _closing(self, status: str, used: Usage) -> list[Event]:
        n, text = len(self.text), "".join(self.text)
        item_status = "completed" if status == "completed" else "incomplete"
        return [
            {
                "type": "response.output_text.done",
                "sequence_number": FIRST_DELTA + n,
                "item_id": self.item_id,
                "output_index": 0,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            },
            {**self._part_event("response.content_part.done", text), "sequence_number": FIRST_DELTA + n + 1},
            {
                "type": "response.output_item.done",
                "sequence_number": FIRST_DELTA + n + 2,
                "output_index": 0,
                "item": message(self.item_id, text, item_status),
            },
            self._end(f"response.{status}", status, used, offset=3),
        ]

    def _end(self, kind: str, status: str, used: Usage, offset: int = 0, **extra: Any) -> Event:
        self.ended = True
        text = "".join(self.text)
        output = [message(self.item_id, text, "completed" if status == "completed" else "incomplete")]
        body = self._response(status, output, used, **extra)
        return {"type": kind, "sequence_number": FIRST_DELTA + len(self.text) + offset, "response": body}
