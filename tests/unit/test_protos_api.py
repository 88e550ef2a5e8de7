"""The generated jobstream.v1 modules load, and the public contract's names are in them."""

from __future__ import annotations

import grpc
from google.protobuf import json_format

from jobstream.v1 import event_pb2, job_pb2, job_service_pb2, job_service_pb2_grpc

RPCS = ["SubmitJob", "GetJob", "ListJobs", "CancelJob", "WatchJob", "CreateUpload"]


def test_service_methods() -> None:
    service = job_service_pb2.DESCRIPTOR.services_by_name["JobService"]
    assert service.full_name == "jobstream.v1.JobService"
    assert [method.name for method in service.methods] == RPCS
    streaming = {method.name for method in service.methods if method.server_streaming}
    assert streaming == {"WatchJob"}
    with grpc.insecure_channel("127.0.0.1:1") as channel:
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        assert all(callable(getattr(stub, name)) for name in RPCS)
    assert all(callable(getattr(job_service_pb2_grpc.JobServiceServicer, name)) for name in RPCS)


def test_job_statuses() -> None:
    assert job_pb2.JobStatus.keys() == [
        "JOB_STATUS_UNSPECIFIED",
        "JOB_STATUS_QUEUED",
        "JOB_STATUS_RUNNING",
        "JOB_STATUS_SUCCEEDED",
        "JOB_STATUS_FAILED",
        "JOB_STATUS_CANCELLED",
    ]


def test_generation_params_track_presence_of_zero() -> None:
    params = job_pb2.GenerationParams(temperature=0.0, seed=0)
    assert params.HasField("temperature")
    assert params.HasField("seed")
    assert not job_pb2.GenerationParams().HasField("seed")


def test_event_payloads_and_json_shape() -> None:
    payloads = [field.name for field in event_pb2.JobEvent.DESCRIPTOR.oneofs_by_name["payload"].fields]
    assert payloads == ["job_started", "stage", "token", "job_completed", "job_failed", "job_cancelled"]
    event = event_pb2.JobEvent(id="c1", job_id="j1", type="token", token=event_pb2.TokenEvent(index=0, text="Hi"))
    # Proto3 JSON drops zero values (token index 0!) unless told otherwise: SSE `data:` needs this flag.
    data = json_format.MessageToDict(event, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    # 32-bit ints stay JSON numbers (64-bit ones would become strings).
    assert data["token"] == {"index": 0, "text": "Hi", "stage": ""}
    assert data["job_id"] == "j1"
    assert "time" not in data  # message fields have presence: unset ones stay absent
