"""sse_bridge/openai_api/create_request.py: what POST /v1/responses and /v1/chat/completions take, what they refuse
(naming the parameter), and the prompt a model's chat template makes of the messages."""

from __future__ import annotations

import pytest

from jobstream.pipelines import ChatTemplate, load_pipelines
from sse_bridge.openai_api.create_request import (
    BadParam,
    ChatRequest,
    Message,
    ResponseRequest,
    parsed,
    pipeline_of,
    prompt_of,
    submit_request,
)

TEMPLATE = ChatTemplate(
    system="S: {content}\n", user="U: {content}\n", assistant="A: {content}\n", generation_prompt="A:"
)


def refusal(kind: type[ResponseRequest] | type[ChatRequest], body: object) -> BadParam:
    with pytest.raises(BadParam) as refused:
        parsed(kind, body)
    return refused.value


def test_a_string_input_with_instructions_is_a_system_and_a_user_message() -> None:
    request = parsed(ResponseRequest, {"model": "generate", "input": "Hi", "instructions": "Be brief"})
    assert prompt_of(request.messages(), TEMPLATE) == "S: Be brief\nU: Hi\nA:"


def test_message_lists_take_strings_and_text_parts() -> None:
    body = {
        "model": "generate",
        "input": [
            {"role": "developer", "content": "Rules"},
            {"role": "user", "content": [{"type": "input_text", "text": "Hello"}, {"type": "input_text", "text": "!"}]},
            {"type": "message", "role": "assistant", "content": "Hi"},
        ],
    }
    assert prompt_of(parsed(ResponseRequest, body).messages(), TEMPLATE) == "S: Rules\nU: Hello!\nA: Hi\nA:"


@pytest.mark.parametrize("field", ["tools", "reasoning", "previous_response_id", "frequency_penalty"])
def test_a_parameter_this_server_does_not_take_is_refused_by_name(field: str) -> None:
    refused = refusal(ResponseRequest, {"model": "generate", "input": "x", field: []})
    assert (refused.param, refused.code) == (field, "unsupported_parameter")
    assert field in str(refused)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "generate", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "generate", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "generate", "input": [{"role": "robot", "content": "x"}]}, "input.0.role"),
    ],
)
def test_a_bad_value_is_refused_naming_its_parameter(body: dict[str, object], param: str) -> None:
    refused = refusal(ResponseRequest, body)
    assert (refused.param, refused.code) == (param, "invalid_value")


def test_chat_takes_one_choice_only() -> None:
    refused = refusal(ChatRequest, {"model": "generate", "messages": [{"role": "user", "content": "x"}], "n": 2})
    assert refused.param == "n"


def test_the_model_is_a_served_pipeline_with_one_model_stage() -> None:
    pipelines = load_pipelines()
    assert pipeline_of("generate", pipelines, set()) == "generate"
    for model, served in [("nope", set()), ("generate-keywords", set()), ("generate", {"keywords"})]:
        with pytest.raises(BadParam) as refused:
            pipeline_of(model, pipelines, served)
        assert (refused.value.param, refused.value.code) == ("model", "model_not_found")


def test_the_job_request_carries_the_sampling_the_budget_and_the_idempotency_key() -> None:
    request = parsed(
        ChatRequest, {"model": "generate", "messages": [{"role": "user", "content": "x"}], "seed": 7, "stop": "."}
    )
    submit = submit_request("generate", request.messages, TEMPLATE, request, 12, "key-1")
    assert (submit.pipeline, submit.prompt, submit.idempotency_key) == ("generate", "U: x\nA:", "key-1")
    assert (submit.params.max_tokens, submit.params.seed, list(submit.params.stop)) == (12, 7, ["."])
    assert not submit.params.HasField("temperature")


def test_store_false_is_refused_every_response_is_stored() -> None:
    request = parsed(ResponseRequest, {"model": "generate", "input": "x", "store": False})
    with pytest.raises(BadParam) as refused:
        submit_request("generate", request.messages(), TEMPLATE, request, None, "")
    assert refused.value.param == "store"


def test_a_message_text_joins_its_parts() -> None:
    assert Message(role="user", content="plain").text() == "plain"
