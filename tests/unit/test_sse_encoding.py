"""The bridge's wire encoding: Server-Sent Events frames, rendered once per delivery."""

from __future__ import annotations

from jobstream import cursors
from jobstream.delivery import Delivery
from jobstream.event_log import event_json
from jobstream.v1.event_pb2 import JobEvent, TokenEvent
from sse_bridge.sse_encoding import frame_of, frames_of, sse_frame

JOB = "job_" + "a" * 26


def test_the_sse_frame_is_what_sse_starlette_wrote() -> None:
    event = JobEvent(id=cursors.token(0, 0), job_id=JOB, type="token", token=TokenEvent(index=0, text=" t0"))
    frame = sse_frame(event)
    assert frame == f"id: {cursors.token(0, 0)}\r\nevent: token\r\ndata: {event_json(event)}\r\n\r\n".encode()
    # A type with a line break must not end the field (or forge another): it is dropped, as before.
    odd = JobEvent(id=cursors.job_started(), job_id=JOB, type="job.\nstarted\r")
    assert sse_frame(odd).startswith(b"id: 000.0.0000000\r\nevent: job.started\r\ndata: {")


def test_a_delivery_is_encoded_once_and_batches_are_joined() -> None:
    deliveries = [
        Delivery(JobEvent(id=cursors.token(0, i), job_id=JOB, type="token", token=TokenEvent(index=i)))
        for i in range(2)
    ]
    first = frame_of(deliveries[0])
    assert frame_of(deliveries[0]) is first
    assert frames_of(deliveries) == first + sse_frame(deliveries[1].event)
