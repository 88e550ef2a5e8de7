"""services/job_service/validation.py: every rule refuses with the field it concerns; defaults fill the rest."""

from __future__ import annotations

import math
from pathlib import Path

import grpc
import pytest

from jobstream.pipelines import Pipelines, load_pipelines
from jobstream.settings import Settings
from jobstream.v1.job_pb2 import GenerationParams
from jobstream.v1.job_service_pb2 import SubmitJobRequest
from services.job_service.errors import FieldError
from services.job_service.interceptors import status_of
from services.job_service.validation import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_PIPELINE,
    DEFAULT_TEMPERATURE,
    MAX_TOKENS_LIMIT,
    ValidParams,
    ValidSubmit,
    check_job_id,
    check_page_size,
    check_submit,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def pipelines() -> Pipelines:
    return load_pipelines()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(max_input_bytes=16, state_dir=tmp_path)


def refused(request: SubmitJobRequest, pipelines: Pipelines, settings: Settings) -> FieldError:
    with pytest.raises(FieldError) as caught:
        check_submit(request, pipelines, settings)
    assert str(caught.value).startswith(f"{caught.value.field}: ")
    return caught.value


def test_defaults(pipelines: Pipelines, settings: Settings) -> None:
    valid = check_submit(SubmitJobRequest(prompt="Hello"), pipelines, settings)
    assert valid == ValidSubmit(
        pipeline=DEFAULT_PIPELINE,
        prompt="Hello",
        input_ref=None,
        params=ValidParams(
            max_tokens=DEFAULT_MAX_TOKENS, temperature=DEFAULT_TEMPERATURE, seed=None, top_p=1.0, stop=()
        ),
        idempotency_key="",
    )
    assert DEFAULT_PIPELINE in pipelines.names()


def test_explicit_values_including_zeros_are_kept(pipelines: Pipelines, settings: Settings) -> None:
    request = SubmitJobRequest(
        pipeline="generate-keywords",
        prompt="Hi",
        params=GenerationParams(max_tokens=MAX_TOKENS_LIMIT, temperature=0.0, seed=0),
        idempotency_key="k" * 128,
    )
    valid = check_submit(request, pipelines, settings)
    params = valid.params
    assert (valid.pipeline, params.max_tokens, params.temperature, params.seed) == (
        "generate-keywords",
        4096,
        0.0,
        0,
    )
    assert valid.idempotency_key == "k" * 128


def test_input_ref_instead_of_prompt(pipelines: Pipelines, settings: Settings) -> None:
    valid = check_submit(SubmitJobRequest(input_ref="minio://jobstream/uploads/x"), pipelines, settings)
    assert (valid.prompt, valid.input_ref) == (None, "minio://jobstream/uploads/x")


def test_unknown_pipeline(pipelines: Pipelines, settings: Settings) -> None:
    error = refused(SubmitJobRequest(pipeline="nope", prompt="Hi"), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "pipeline")
    assert "'nope'" in str(error)
    assert "generate" in str(error)  # names the known ones
    long = refused(SubmitJobRequest(pipeline="x" * 10_000, prompt="Hi"), pipelines, settings)
    assert len(str(long)) < 1000  # an attacker's name is not echoed whole


def test_a_pipeline_whose_model_is_not_served_is_refused(pipelines: Pipelines, settings: Settings) -> None:
    local = settings.model_copy(update={"models": "tinylm, keywords"})
    error = refused(SubmitJobRequest(pipeline="generate-vllm", prompt="Hi"), pipelines, local)
    assert (status_of(error), error.field) == (INVALID, "pipeline")
    assert "opt125m" in str(error)
    assert check_submit(SubmitJobRequest(pipeline="generate-keywords", prompt="Hi"), pipelines, local)
    # Unset: every model the pipelines name is served (a deployment with the GPU model).
    assert check_submit(SubmitJobRequest(pipeline="generate-vllm", prompt="Hi"), pipelines, settings)


def test_fault_drills_are_offered_only_where_enabled(pipelines: Pipelines, settings: Settings) -> None:
    drills = [name for name in pipelines.names() if pipelines.is_drill(name)]
    assert "drill-oom-always" in drills
    assert "generate" not in drills
    for name in drills:
        error = refused(SubmitJobRequest(pipeline=name, prompt="Hi"), pipelines, settings)
        assert (status_of(error), error.field) == (INVALID, "pipeline")
        assert "drill" in str(error)
    enabled = settings.model_copy(update={"drills": True})
    assert check_submit(SubmitJobRequest(pipeline="drill-oom-always", prompt="Hi"), pipelines, enabled)


def test_prompt_size_counts_utf8_bytes(pipelines: Pipelines, settings: Settings) -> None:
    assert check_submit(SubmitJobRequest(prompt="x" * 16), pipelines, settings).prompt == "x" * 16
    error = refused(SubmitJobRequest(prompt="\u00e9" * 9), pipelines, settings)  # 9 characters, 18 bytes
    assert (status_of(error), error.field) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "prompt")
    assert "18 bytes" in str(error)
    assert "16" in str(error)


@pytest.mark.parametrize("prompt", ["", " ", "\n\t  "])
def test_blank_prompt(pipelines: Pipelines, settings: Settings, prompt: str) -> None:
    error = refused(SubmitJobRequest(prompt=prompt), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "prompt")


def test_empty_input_ref(pipelines: Pipelines, settings: Settings) -> None:
    error = refused(SubmitJobRequest(input_ref=""), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "input_ref")


def test_no_input_at_all(pipelines: Pipelines, settings: Settings) -> None:
    error = refused(SubmitJobRequest(), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "prompt")
    assert "input_ref" in str(error)


@pytest.mark.parametrize("max_tokens", [-1, MAX_TOKENS_LIMIT + 1, 2**31 - 1])
def test_max_tokens_out_of_range(pipelines: Pipelines, settings: Settings, max_tokens: int) -> None:
    request = SubmitJobRequest(prompt="Hi", params=GenerationParams(max_tokens=max_tokens))
    error = refused(request, pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "params.max_tokens")


def test_top_p_and_stop_are_kept(pipelines: Pipelines, settings: Settings) -> None:
    params = GenerationParams(top_p=0.9, stop=["\n\n", "Mr. Darcy"])
    valid = check_submit(SubmitJobRequest(prompt="Hi", params=params), pipelines, settings)
    assert (valid.params.top_p, valid.params.stop) == (0.9, ("\n\n", "Mr. Darcy"))


@pytest.mark.parametrize("top_p", [0.0, -0.5, 1.01, math.nan, math.inf])
def test_top_p_out_of_range(pipelines: Pipelines, settings: Settings, top_p: float) -> None:
    error = refused(SubmitJobRequest(prompt="Hi", params=GenerationParams(top_p=top_p)), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "params.top_p")


@pytest.mark.parametrize("stop", [["a", "b", "c", "d", "e"], [""], ["x" * 65]])
def test_bad_stop_sequences(pipelines: Pipelines, settings: Settings, stop: list[str]) -> None:
    error = refused(SubmitJobRequest(prompt="Hi", params=GenerationParams(stop=stop)), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "params.stop")


@pytest.mark.parametrize("temperature", [-0.01, 2.01, math.nan, math.inf, -math.inf])
def test_temperature_out_of_range(pipelines: Pipelines, settings: Settings, temperature: float) -> None:
    request = SubmitJobRequest(prompt="Hi", params=GenerationParams(temperature=temperature))
    error = refused(request, pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "params.temperature")


@pytest.mark.parametrize("temperature", [0.0, 1.0, 2.0])
def test_temperature_bounds_are_inclusive(pipelines: Pipelines, settings: Settings, temperature: float) -> None:
    request = SubmitJobRequest(prompt="Hi", params=GenerationParams(temperature=temperature))
    assert check_submit(request, pipelines, settings).params.temperature == temperature


@pytest.mark.parametrize("key", ["k" * 129, "has space", "tab\t", "caf\u00e9", "\x7f", "trailing-newline\n"])
def test_bad_idempotency_key(pipelines: Pipelines, settings: Settings, key: str) -> None:
    error = refused(SubmitJobRequest(prompt="Hi", idempotency_key=key), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "idempotency_key")


def test_the_first_bad_field_is_reported(pipelines: Pipelines, settings: Settings) -> None:
    request = SubmitJobRequest(pipeline="nope", params=GenerationParams(max_tokens=-1), idempotency_key=" ")
    assert refused(request, pipelines, settings).field == "pipeline"


def test_job_id() -> None:
    good = "job_" + "abcdefghijklmnopqrstuvwxyz"
    assert check_job_id(good) == good
    assert check_job_id("job_" + "234567" * 4 + "ab") == "job_" + "234567" * 4 + "ab"
    for bad in [
        "",
        "job_",
        "job_" + "a" * 25,
        "job_" + "a" * 27,
        "job_" + "A" * 26,
        "job_" + "1" * 26,
        "jb_" + "a" * 27,
    ]:
        with pytest.raises(FieldError) as caught:
            check_job_id(bad)
        assert (status_of(caught.value), caught.value.field) == (INVALID, "job_id"), bad
    with pytest.raises(FieldError):
        check_job_id(good + "\n")


def test_page_size() -> None:
    assert check_page_size(0) == 20
    assert check_page_size(1) == 1
    assert check_page_size(100) == 100
    for bad in (-1, 101):
        with pytest.raises(FieldError) as caught:
            check_page_size(bad)
        assert (status_of(caught.value), caught.value.field) == (INVALID, "page_size")


def test_a_prompt_that_is_not_stream_safe_is_refused(pipelines: Pipelines, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    error = refused(SubmitJobRequest(prompt="Caf" + "e" + "\u0301" * 200), pipelines, settings)
    assert (status_of(error), error.field) == (INVALID, "prompt")
    assert "combining marks at character 4" in str(error)
    assert check_submit(SubmitJobRequest(prompt="Café e\u0301"), pipelines, settings).prompt == "Café e\u0301"


def test_a_prompt_longer_than_a_model_of_its_pipeline_takes_is_refused_naming_the_model(
    pipelines: Pipelines, tmp_path: Path
) -> None:
    roomy = Settings(state_dir=tmp_path)
    limit, model = pipelines.input_limit("generate-keywords") or (0, "")
    assert model == "keywords"
    assert check_submit(SubmitJobRequest(pipeline="generate-keywords", prompt="x" * limit), pipelines, roomy)
    with pytest.raises(FieldError) as caught:
        check_submit(SubmitJobRequest(pipeline="generate-keywords", prompt="x" * (limit + 1)), pipelines, roomy)
    assert status_of(caught.value) == INVALID
    assert caught.value.field == "prompt"
    assert f"the model keywords (pipeline generate-keywords) takes at most {limit}" in str(caught.value)


def test_metadata_is_kept_within_its_bounds(pipelines: Pipelines, settings: Settings) -> None:
    request = SubmitJobRequest(prompt="Hello", metadata={"order": "42"})
    assert check_submit(request, pipelines, settings).metadata == {"order": "42"}
    for bad in [
        {f"k{i}": "v" for i in range(17)},
        {"": "v"},
        {"k" * 65: "v"},
        {"k": "v" * 513},
    ]:
        error = refused(SubmitJobRequest(prompt="Hello", metadata=bad), pipelines, settings)
        assert (status_of(error), error.field) == (INVALID, "metadata"), bad
