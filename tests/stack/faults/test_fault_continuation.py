"""Fault 10: a retried model stage continues the text its clients already saw, even with a model that does
not reproduce its samples (like a batched GPU LLM): `drill-resample` samples differently on every attempt,
and its first attempt fails at token 10. The retry must send the prompt followed by the 10 delivered tokens
and ask for the rest; regenerating would have produced another text than the one already streamed."""

from __future__ import annotations

import hashlib

from devstack.reliability import Record
from jobstream.settings import Settings
from jobstream.v1.job_pb2 import JobStatus, StageState
from jobstream.workflow_io import GenerationParams as StageParams
from tests.stack.faults.scenario import MODEL_SLOT, STAGES
from tests.stack.job_service_client import Stub, submit, wait_terminal
from tests.stack.sse_client import follow_reconnecting, sse_client
from tests.stack.sse_story import add_audit, audit_stream, check_story, expected_ids
from tests.stack.triton_direct import normalise_prompt, triton_responses, triton_stream
from tests.stack.triton_log import triton_log_match
from workers.pipeline.activities.model.triton_vllm import model_inputs

PROMPT = "It is a truth universally acknowledged, that a single man"
TOKENS = 40
FAILS_AT = 10  # drill-resample's fail_at_token
SEED = 21


async def test_a_retry_continues_the_delivered_prefix_of_a_model_that_samples_anew(
    stub: Stub, api_key: str, stack: Settings, reliability: Record
) -> None:
    reliability.fault = "10. model stage retried by a model that does not reproduce its samples"
    reply = await submit(stub, api_key, PROMPT, pipeline="drill-resample", max_tokens=TOKENS, seed=SEED)
    reliability.inputs += 1
    async with sse_client() as client:
        followed = await follow_reconnecting(client, reply.events_url)
    reliability.jobs += 1
    add_audit(reliability, audit_stream(reply.job_id, followed.events, expected_ids(3, MODEL_SLOT, TOKENS)))

    # Every index once, in order, and the streamed text is the result.
    story = check_story(reply.job_id, followed.events, STAGES)
    job = await wait_terminal(stub, api_key, reply.job_id)
    assert job.status == JobStatus.JOB_STATUS_SUCCEEDED, job
    assert story.tokens == TOKENS
    assert story.text == story.result_text == job.result_text
    tokens = [event.json["text"] for event in followed.events if event.event == "token"]

    # From the model's side: attempt 2 was sent the prompt followed by exactly the delivered prefix ...
    prompt = normalise_prompt(PROMPT)
    sampling = StageParams(max_tokens=TOKENS, seed=SEED)
    (first,) = await triton_responses(stack, "tinylm", model_inputs(prompt, sampling, 1))
    prompt_tokens = first["num_input_tokens"]
    retry = await triton_log_match(
        stack, reply.job_id, r"start input_tokens=(\d+) input_sha256=(\w+) max_tokens=(\d+) .* attempt=2"
    )
    prefix = prompt + "".join(tokens[:FAILS_AT])
    assert retry.group(2) == hashlib.sha256(prefix.encode()).hexdigest()[:16]
    # (The model counts the prefix by re-reading it: a word and a glued suffix may read as one token.)
    retry_prompt_tokens = int(retry.group(1))
    assert prompt_tokens + FAILS_AT // 2 <= retry_prompt_tokens <= prompt_tokens + FAILS_AT
    assert int(retry.group(3)) == TOKENS - FAILS_AT
    # ... and what it delivered is that prefix's continuation, as attempt 2 samples it ...
    attempt_2: dict[str, object] = {"resample_per_attempt": 1, "attempt": 2}
    continued = await triton_stream(stack, "tinylm", model_inputs(prefix, sampling, TOKENS - FAILS_AT), attempt_2)
    assert continued == tokens[FAILS_AT:]
    # ... whereas regenerating from the prompt would have streamed another text than the clients saw.
    regenerated = await triton_stream(stack, "tinylm", model_inputs(prompt, sampling, TOKENS), attempt_2)
    assert regenerated[:FAILS_AT] != tokens[:FAILS_AT]
    reliability.note(f"attempt 2 continued {FAILS_AT} delivered tokens (read as {retry_prompt_tokens} input tokens)")

    # Billed as delivered: both attempts' prompts, each output token once; GetJob shows the retry.
    billed = {"prompt_tokens": prompt_tokens + retry_prompt_tokens, "output_tokens": TOKENS}
    assert {"prompt_tokens": job.usage.prompt_tokens, "output_tokens": job.usage.output_tokens} == billed
    assert job.finish_reason == "length"
    (model_stage,) = [stage for stage in job.stages if stage.kind == "model"]
    assert (model_stage.state, model_stage.attempts) == (StageState.STAGE_STATE_SUCCEEDED, 2)
    completed = followed.events[-1].json
    assert completed["usage"] == billed
    assert completed["finish_reason"] == "length"
