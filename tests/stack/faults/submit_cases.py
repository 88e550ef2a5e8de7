"""SubmitJob as messages, for the fuzzer: the cases Hypothesis draws (every field, and who calls), and the
answer the service documents for each."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import strategies as st

from devstack.stack import local_models
from jobstream.pipelines import load_pipelines
from jobstream.settings import get_settings
from jobstream.v1 import job_service_pb2 as api
from jobstream.v1.job_pb2 import GenerationParams
from services.job_service.validation import IDEMPOTENCY_KEY, MAX_TOKENS_LIMIT
from tests.stack.faults.fuzz_tenant import Tenant
from tests.stack.job_service_client import Metadata, auth

SUBMIT = "/jobstream.v1.JobService/SubmitJob"
# Those the local stack can run; the others (the GPU model's) are refused like unknown ones.
SERVED = set(local_models(get_settings()))
PIPELINES = [name for name in load_pipelines().names() if load_pipelines().models(name) <= SERVED]
# The codes SubmitJob documents: accepted, a bad field, too large, no valid key, key reused differently.
SUBMIT_CODES = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "ALREADY_EXISTS"}
FIELDS = {"pipeline", "prompt", "input_ref", "params.max_tokens", "params.temperature", "idempotency_key"}


def metadata_for(tenant: Tenant, who: str) -> Metadata:
    return {
        "own": auth(tenant.key),
        "none": (),
        "garbage": (("authorization", "Bearer js_not_a_key"),),
        "scheme": (("authorization", f"Basic {tenant.key}"),),
        "lower": (("authorization", f"bearer {tenant.key}"),),  # the scheme is case-insensitive
        "removed": auth(tenant.removed_key),
    }[who]


@dataclass(frozen=True)
class SubmitCase:
    who: str
    pipeline: str
    input: tuple[str, str] | None  # ("prompt" | "input_ref", value)
    max_tokens: int
    temperature: float | None
    seed: int | None
    idempotency_key: str

    def request(self) -> api.SubmitJobRequest:
        params = GenerationParams(max_tokens=self.max_tokens)
        if self.temperature is not None:
            params.temperature = self.temperature
        if self.seed is not None:
            params.seed = self.seed
        request = api.SubmitJobRequest(pipeline=self.pipeline, params=params, idempotency_key=self.idempotency_key)
        if self.input is not None:
            setattr(request, self.input[0], self.input[1])
        return request


def submit_cases(tenant: Tenant) -> st.SearchStrategy[SubmitCase]:
    text = st.text(max_size=80)
    refs = st.sampled_from(
        [tenant.upload_ref, tenant.empty_ref, tenant.foreign_ref, "", "minio://jobstream/", "s3://x/y", "../../etc"]
    )
    return st.builds(
        SubmitCase,
        who=st.sampled_from(["own"] * 6 + ["none", "garbage", "scheme", "lower", "removed"]),
        pipeline=st.one_of(st.sampled_from(["", *load_pipelines().names(), "GENERATE", "generate\n", "nope"]), text),
        input=st.one_of(
            st.none(),
            st.tuples(st.just("prompt"), st.one_of(text, st.sampled_from(["", " ", "\t\n", "\u3000", "\u200b"]))),
            st.tuples(st.just("input_ref"), st.one_of(refs, text)),
        ),
        max_tokens=st.one_of(
            st.sampled_from([0, 1, 2, 8, MAX_TOKENS_LIMIT, MAX_TOKENS_LIMIT + 1, -1, 2**31 - 1, -(2**31)]),
            st.integers(-(2**31), 2**31 - 1),
        ),
        temperature=st.one_of(
            st.none(), st.sampled_from([0.0, -0.0, 2.0, math.nextafter(2.0, 3.0), -1e-300]), st.floats()
        ),
        seed=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
        idempotency_key=st.one_of(st.just(""), st.sampled_from(["k", "a b", "x" * 128, "x" * 129, "é"]), text),
    )


def expected(case: SubmitCase, tenant: Tenant) -> tuple[set[str], str]:
    """The documented answer: the allowed codes and, for INVALID_ARGUMENT, the field named first."""
    if case.who not in ("own", "lower"):
        return {"UNAUTHENTICATED"}, ""
    if (case.pipeline or "generate") not in PIPELINES:
        return {"INVALID_ARGUMENT"}, "pipeline"
    if case.input is None:
        return {"INVALID_ARGUMENT"}, "prompt"
    kind, value = case.input
    if kind == "prompt" and not value.strip():
        return {"INVALID_ARGUMENT"}, "prompt"
    if kind == "input_ref" and not value:
        return {"INVALID_ARGUMENT"}, "input_ref"
    if not 0 <= case.max_tokens <= MAX_TOKENS_LIMIT:
        return {"INVALID_ARGUMENT"}, "params.max_tokens"
    if case.temperature is not None and not 0.0 <= case.temperature <= 2.0:
        return {"INVALID_ARGUMENT"}, "params.temperature"
    if case.idempotency_key and not IDEMPOTENCY_KEY.fullmatch(case.idempotency_key):
        return {"INVALID_ARGUMENT"}, "idempotency_key"
    if kind == "input_ref" and value != tenant.upload_ref:
        return {"INVALID_ARGUMENT"}, "input_ref"  # foreign, malformed or never uploaded: looked up last
    # A key this run already used for another request is refused; otherwise the job is (or already was) there.
    return ({"OK", "ALREADY_EXISTS"} if case.idempotency_key else {"OK"}), ""
