"""The model stage (workers/pipeline/activities/model/) in Temporal's ActivityEnvironment, with a fake model
server and an in-memory event log: the resume rule in both modes (never generate again what a client may have
seen), a restart that does not reproduce, cancel while sends are in flight, and an outage during the first
send. The stack tests run the same activity against real Triton and Kafka."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from jobstream import cursors
from jobstream.event_log import LogLocator
from jobstream.payload_store import PayloadStore
from jobstream.pipelines import Resume, load_pipelines
from jobstream.settings import Settings
from jobstream.tracing import RecordHeaders
from jobstream.v1.event_pb2 import JobEvent
from jobstream.workflow_io import GenerationParams, StageInput, StageOutput, StageProgress
from workers.pipeline.activities.model import outage
from workers.pipeline.activities.model.resume import NOT_REPRODUCIBLE, ResumePlan
from workers.pipeline.activities.model.stage import ModelActivities
from workers.pipeline.activities.model.triton_vllm import GenerationRequest, Piece

WORDS = [f" w{i}" for i in range(10)]
PROMPT = "Once upon a time"
PARTITION = 3


class FakeModel:
    """A model server whose model continues any text with WORDS (or `variant` where it differs), and records
    what it was asked; `stall_after` holds the stream after that many tokens."""

    def __init__(self, words: Sequence[str] = WORDS, stall_after: int | None = None) -> None:
        self.words = list(words)
        self.requests: list[GenerationRequest] = []
        self.stall_after = stall_after
        self.ready_answers: list[bool] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Piece]:
        self.requests.append(request)
        # A model that conditions on its input: the text it continues says where in WORDS it is.
        start = sum(1 for word in self.words if word in request.text.removeprefix(PROMPT))
        yield Piece("", "", 4)  # vLLM's first response may carry only the usage
        for n, word in enumerate(self.words[start : start + request.max_tokens]):
            if n == self.stall_after:
                await asyncio.Event().wait()
            last = n == request.max_tokens - 1
            yield Piece(word, "length" if last else "", None)

    async def ready(self, model: str) -> bool:
        return self.ready_answers.pop(0) if self.ready_answers else True

    async def close(self) -> None:
        pass


class MemoryLog:
    """The events topic in memory: offsets from 100 on one partition; `fail_first` makes the first publish
    raise as an unreachable Kafka would; `hold` leaves sends unacknowledged."""

    def __init__(self, fail_first: bool = False, hold: bool = False) -> None:
        self.events: list[JobEvent] = []
        self.fail_first = fail_first
        self.hold = hold
        self.held: list[asyncio.Future[Any]] = []
        self.published = 0  # publishes awaited for their place (the stage's first token only)
        self.five_sent = asyncio.Event()

    async def publish(self, event: JobEvent) -> LogLocator:
        if self.fail_first:
            raise KafkaConnectionError("Kafka is away")
        self.events.append(event)
        self.published += 1
        return LogLocator(PARTITION, 99 + len(self.events))

    async def send(self, event: JobEvent, headers: RecordHeaders | None = None) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.events.append(event)
        if len(self.events) >= 5:
            self.five_sent.set()
        if self.hold:
            self.held.append(future)
        else:
            future.set_result(None)
        return future

    def tokens(self) -> list[tuple[int, str]]:
        return [(event.token.index, event.token.text) for event in self.events]


def stage_input(resume: Resume = "continue", max_tokens: int = 10) -> StageInput:
    stages = load_pipelines().resolve("generate")
    index = next(n for n, stage in enumerate(stages) if stage.kind == "model")
    stage = stages[index].model_copy(update={"resume": resume})
    return StageInput(
        job_id="job_" + "a" * 26,
        stage=stage,
        stage_index=index,
        stage_count=len(stages),
        text=PROMPT,
        params=GenerationParams(max_tokens=max_tokens),
    )


class Run:
    """One attempt of run_model: attempt number and heartbeated progress as Temporal would hand them over."""

    def __init__(self, model: FakeModel, log: MemoryLog, delivered: Sequence[str] = (), attempt: int = 1) -> None:
        self.env = ActivityEnvironment()
        progress = StageProgress(tokens=len(delivered), first_offset=100, partition=PARTITION) if delivered else None
        self.env.info = dataclasses.replace(
            self.env.info, attempt=attempt, heartbeat_details=[progress.model_dump()] if progress else []
        )
        self.heartbeats: list[StageProgress] = []
        self.env.on_heartbeat = lambda *details: self.heartbeats.extend(
            StageProgress.model_validate(d) if isinstance(d, dict) else d for d in details
        )
        self.read_back_from: list[LogLocator] = []

        async def read_back(stage: StageInput, first: LogLocator) -> list[str]:
            self.read_back_from.append(first)
            return list(delivered)

        async def kafka_back() -> bool:
            return True

        self.activities = ModelActivities(
            Settings(metrics=False),
            log,
            PayloadStore.__new__(PayloadStore),  # inline texts only: never asked
            models=model,
            read_back=read_back,
            kafka_check=kafka_back,
        )

    async def __call__(self, stage: StageInput) -> StageOutput:
        return await self.env.run(self.activities.run_model, stage)


async def test_a_first_attempt_publishes_every_token_and_heartbeats_where_the_first_is() -> None:
    log = MemoryLog()
    run = Run(FakeModel(), log)
    output = await run(stage_input(max_tokens=6))
    assert log.tokens() == list(enumerate(WORDS[:6]))
    assert all(cursors.is_token_of(event.id, stage_input().stage_index) for event in log.events)
    assert (output.text, output.tokens, output.finish_reason, output.prompt_tokens) == (
        "".join(WORDS[:6]),
        6,
        "length",
        4,
    )
    # The first heartbeat names the first token's place: where a successor reads back from.
    assert run.heartbeats[0].first_offset == 100
    assert run.heartbeats[0].partition == PARTITION
    assert run.read_back_from == []


@pytest.mark.parametrize("killed_at", [1, 4, 9])
async def test_continue_resumes_after_what_was_delivered(killed_at: int) -> None:
    """Killed at token k: the retry asks the model to continue the input and the k delivered tokens, for the
    rest of the budget, and publishes from index k on."""
    model, log = FakeModel(), MemoryLog()
    run = Run(model, log, delivered=WORDS[:killed_at], attempt=2)
    output = await run(stage_input("continue"))
    (request,) = model.requests
    assert request.text == PROMPT + "".join(WORDS[:killed_at])
    assert request.max_tokens == 10 - killed_at
    assert request.parameters["attempt"] == 2
    assert log.tokens() == [(n, WORDS[n]) for n in range(killed_at, 10)]
    assert output.text == "".join(WORDS)
    assert output.tokens == 10
    assert run.read_back_from == [LogLocator(PARTITION, 100)]
    # It went on from the predecessor's first token: no publish of its own waits for a new first place.
    assert log.published == 0
    assert all(progress.first_offset == 100 for progress in run.heartbeats)


@pytest.mark.parametrize("killed_at", [1, 4, 9])
async def test_restart_regenerates_the_delivered_tokens_checks_them_and_publishes_the_rest(
    killed_at: int,
) -> None:
    model, log = FakeModel(), MemoryLog()
    output = await Run(model, log, delivered=WORDS[:killed_at], attempt=2)(stage_input("restart"))
    (request,) = model.requests
    assert (request.text, request.max_tokens) == (PROMPT, 10)
    assert log.tokens() == [(n, WORDS[n]) for n in range(killed_at, 10)]
    assert output.text == "".join(WORDS)


async def test_a_restart_that_does_not_reproduce_fails_the_stage_for_good() -> None:
    differs = [*WORDS[:2], " other", *WORDS[3:]]
    log = MemoryLog()
    with pytest.raises(ApplicationError) as raised:
        await Run(FakeModel(differs), log, delivered=WORDS[:5], attempt=2)(stage_input("restart"))
    assert raised.value.type == NOT_REPRODUCIBLE
    assert raised.value.non_retryable
    assert "' other'" in str(raised.value)
    assert log.events == []  # nothing contradicting what clients saw was published


async def test_everything_delivered_asks_the_model_for_nothing() -> None:
    for mode in ("continue", "restart"):
        model, log = FakeModel(), MemoryLog()
        output = await Run(model, log, delivered=WORDS, attempt=3)(stage_input(mode))
        assert model.requests == []
        assert log.events == []
        assert output.tokens == 10


async def test_cancel_mid_stream_waits_for_the_sends_in_flight_and_reports_what_was_delivered() -> None:
    log = MemoryLog(hold=True)
    run = Run(FakeModel(stall_after=5), log)
    running = asyncio.ensure_future(run(stage_input()))
    await asyncio.wait_for(log.five_sent.wait(), 5)
    run.env.cancel()
    await asyncio.sleep(0.05)
    assert not running.done(), "cancelled before its sends were acknowledged"
    for future in log.held:
        future.set_result(None)
    output = await asyncio.wait_for(running, 5)
    assert (output.finish_reason, output.tokens, output.text) == ("cancelled", 5, "".join(WORDS[:5]))


async def test_an_outage_during_the_first_send_waits_for_kafka_then_fails_the_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kafka unreachable at the first token: the attempt heartbeats while it waits for Kafka to answer again,
    then fails so that its retry (which reads back nothing: nothing was acknowledged) starts clean."""
    monkeypatch.setattr(outage, "CHECK_EVERY_S", 0.01)
    answers = iter([False, False, True])
    log = MemoryLog(fail_first=True)
    run = Run(FakeModel(), log)

    async def kafka_back() -> bool:
        return next(answers)

    run.activities.kafka_check = kafka_back
    with pytest.raises(KafkaConnectionError):
        await run(stage_input())
    assert next(answers, None) is None  # asked until it answered
    assert len(run.heartbeats) >= 3
    assert all(progress.first_offset == -1 for progress in run.heartbeats)


def test_the_plan_is_a_pure_function_of_what_was_delivered() -> None:
    plan = ResumePlan.of("in", ["a", "b"], "continue", 5)
    assert (plan.text, plan.budget, plan.regenerate) == ("inab", 3, 0)
    plan = ResumePlan.of("in", ["a", "b"], "restart", 5)
    assert (plan.text, plan.budget, plan.regenerate) == ("in", 5, 2)
    plan.verify("m", 1, "b")
    with pytest.raises(ApplicationError):
        plan.verify("m", 0, "b")
