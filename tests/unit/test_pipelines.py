"""jobstream/pipelines.py: the shipped file loads; a bad file fails at start-up naming the line at fault."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import TypeAdapter

from jobstream.pipelines import (
    CPU_QUEUE,
    PIPELINES_FILE,
    PipelineFileError,
    ResolvedStage,
    load_pipelines,
    model_queue,
    parse,
    parse_duration,
)

# Block style, one thing per line, so that every line number below names exactly one thing.
BASE = """\
defaults:
  cpu_stage:
    timeouts:
      schedule_to_start: 1m
      start_to_close: 30s
    retry:
      maximum_attempts: 5
      initial_interval: 500ms
      backoff_coefficient: 2.0
      maximum_interval: 10s
  model_stage:
    timeouts:
      schedule_to_start: 5m
      start_to_close: 10m
      heartbeat: 5s
    retry:
      maximum_attempts: 4
      initial_interval: 1s
      backoff_coefficient: 2.0
      maximum_interval: 20s
      non_retryable: [InvalidInput]
pipelines:
  demo:
    description: a demo
    stages:
      - name: preprocess
        kind: preprocess
      - name: generate
        kind: model
        model: tinylm
        parameters: {token_delay_ms: 0}
      - name: postprocess
        kind: postprocess
        queue: special-queue
"""


def replace_line(number: int, text: str) -> str:
    lines = BASE.splitlines()
    assert lines[number - 1].strip(), "replacing an empty line: the fixture moved"
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


def test_base_fixture_is_valid_and_resolves_with_defaults() -> None:
    stages = parse(BASE, "demo.yaml").resolve("demo")
    assert [(s.name, s.kind, s.model, s.queue) for s in stages] == [
        ("preprocess", "preprocess", None, CPU_QUEUE),
        ("generate", "model", "tinylm", model_queue("tinylm")),
        ("postprocess", "postprocess", None, "special-queue"),
    ]
    assert stages[0].timeouts.start_to_close == timedelta(seconds=30)
    assert stages[0].timeouts.heartbeat is None
    assert stages[0].retry.initial_interval == timedelta(milliseconds=500)
    assert stages[1].timeouts.heartbeat == timedelta(seconds=5)
    assert stages[1].retry.non_retryable == ("InvalidInput",)
    assert stages[1].parameters == {"token_delay_ms": 0}


def test_shipped_file_loads_and_every_pipeline_resolves() -> None:
    pipelines = load_pipelines()
    assert load_pipelines() is pipelines  # read once per process
    assert {"generate", "generate-keywords"} <= set(pipelines.names())
    assert {"tinylm", "keywords"} <= pipelines.models()
    for name in pipelines.names():
        stages = pipelines.resolve(name)
        assert any(stage.kind == "model" for stage in stages), name
        for stage in stages:
            assert stage.queue == (model_queue(stage.model) if stage.model else CPU_QUEUE), (name, stage.name)
            assert stage.timeouts.start_to_close > timedelta(0)
            assert stage.retry.maximum_attempts >= 1
    assert PIPELINES_FILE.name == "pipelines.yaml"


def test_unknown_pipeline_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        parse(BASE).resolve("nope")


@pytest.mark.parametrize(
    ("line", "text", "expected"),
    [
        pytest.param(
            30,
            "        modle: tinylm",
            "pipelines.demo.stages.1.modle: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            8, "      initial_interval: half a second", "'half a second' is not a duration", id="bad-duration"
        ),
        pytest.param(14, "      start_to_close: 10", "start_to_close: Value error, 10 has no unit", id="bare-number"),
        pytest.param(33, "        kind: gpu", "pipelines.demo.stages.2.kind: Input should be", id="unknown-kind"),
        pytest.param(26, "      - name: Pre", "stage name 'Pre' must be lower-case", id="bad-stage-name"),
        pytest.param(17, "      maximum_attempts: 0", "greater than or equal to 1", id="zero-attempts"),
        pytest.param(27, "        kind: preprocess: now", "mapping values are not allowed here", id="yaml-syntax"),
        pytest.param(27, "\tkind: preprocess", "found character '\\t' that cannot start any token", id="yaml-tab"),
    ],
)
def test_bad_file_names_the_line(line: int, text: str, expected: str) -> None:
    with pytest.raises(PipelineFileError) as caught:
        parse(replace_line(line, text), "demo.yaml")
    message = str(caught.value)
    assert message.startswith(f"demo.yaml:{line}: "), message
    assert expected in message


def test_model_stage_without_model_points_at_the_stage() -> None:
    # Deleting `model:` leaves the stage invalid as a whole: the error names the stage's first line.
    text = replace_line(30, "        parameters: {token_delay_ms: 0}").replace(
        "        parameters: {token_delay_ms: 0}\n", "", 1
    )
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:28: pipelines\.demo\.stages\.1: .*kind is 'model'"):
        parse(text, "demo.yaml")


def test_duplicate_stage_names_point_at_the_pipeline_and_name_the_stage() -> None:
    text = replace_line(32, "      - name: generate")
    with pytest.raises(PipelineFileError) as caught:
        parse(text, "demo.yaml")
    assert str(caught.value).startswith("demo.yaml:23: pipelines.demo: "), caught.value
    assert "repeated: generate" in str(caught.value)


def test_unclosed_bracket_names_where_it_opened() -> None:
    with pytest.raises(PipelineFileError) as caught:
        parse(replace_line(21, "      non_retryable: [InvalidInput"), "demo.yaml")
    assert "at line 21" in str(caught.value), caught.value


def test_bad_pipeline_name_and_shapes() -> None:
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:23: bad pipeline name 'Demo'"):
        parse(BASE.replace("  demo:", "  Demo:"), "demo.yaml")
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:1: expected a mapping"):
        parse("- just\n- a list\n", "demo.yaml")
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:1: expected a mapping"):
        parse("", "demo.yaml")
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:23: bad pipeline name 'demo\\n'"):
        parse(BASE.replace("  demo:", '  "demo\\n":'), "demo.yaml")
    no_model = BASE.replace("        kind: model\n        model: tinylm\n", "        kind: preprocess\n")
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:23: pipelines\.demo: .*at least one model stage"):
        parse(no_model, "demo.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("10s", timedelta(seconds=10)),
        ("1.5s", timedelta(seconds=1.5)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
    ],
)
def test_go_style_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["10", "1d", "ms", "-1s", "1 s", "10S", "10s\n", "\uff11s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_resolved_stages_round_trip_through_json_unchanged() -> None:
    """A resolved stage crosses Temporal as pydantic JSON: durations travel as ISO 8601 and come back equal."""
    adapter: TypeAdapter[list[ResolvedStage]] = TypeAdapter(list[ResolvedStage])
    for name in load_pipelines().names():
        stages = load_pipelines().resolve(name)
        encoded = adapter.dump_json(stages)
        assert adapter.validate_json(encoded) == stages, name
    stage = parse(BASE).resolve("demo")[0]
    encoded_stage = stage.model_dump_json()
    assert '"initial_interval":"PT0.5S"' in encoded_stage
    assert '"start_to_close":"PT30S"' in encoded_stage
    assert ResolvedStage.model_validate_json(encoded_stage) == stage


def test_a_pipelines_input_limit_is_the_smallest_its_models_take() -> None:
    two_models = BASE.replace(
        "      - name: postprocess\n",
        "      - name: summarise\n        kind: model\n        model: keywords\n      - name: postprocess\n",
    )
    limited = "models:\n  tinylm: {max_input_bytes: 100}\n  keywords: {max_input_bytes: 40}\n" + two_models
    assert parse(limited).input_limit("demo") == (40, "keywords")
    assert parse(two_models).input_limit("demo") is None  # no model declares one: only the global limit holds
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:2: no pipeline uses the model 'gpt'"):
        parse("models:\n  gpt: {max_input_bytes: 100}\n" + BASE, "demo.yaml")
    with pytest.raises(PipelineFileError, match=r"^demo\.yaml:2: models\.tinylm\.max_input_bytes: "):
        parse("models:\n  tinylm: {max_input_bytes: 0}\n" + BASE, "demo.yaml")
