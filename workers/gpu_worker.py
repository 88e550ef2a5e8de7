"""GPU worker process for one model: `python -m workers.gpu_worker --model tinylm` polls that model's queue."""

from __future__ import annotations

import argparse
import asyncio

from temporalio.client import Client
from temporalio.worker import Worker

from jobstream.event_log import EventLog
from jobstream.payload_store import PayloadStore
from jobstream.pipelines import load_pipelines, model_queue
from jobstream.settings import get_settings
from jobstream.temporal_client import connect, metrics_runtime
from workers.pipeline.activities.model.stage import ModelActivities
from workers.worker_process import run_workers, start_process, worker_options


async def main(model: str, metrics_port: int | None) -> None:
    settings = get_settings()
    start_process(f"gpu-worker-{model}", settings)
    event_log = EventLog(settings)
    await event_log.start()
    stage = ModelActivities(settings, event_log, PayloadStore(settings))

    def make(client: Client) -> list[Worker]:
        return [
            Worker(
                client,
                task_queue=model_queue(model),
                activities=[stage.run_model],
                max_concurrent_activities=256,
                **worker_options(),
            )
        ]

    try:
        port = settings.gpu_worker_metrics_port if metrics_port is None else metrics_port
        client = await connect(settings, metrics_runtime(settings, port))
        await run_workers(f"gpu-worker-{model}", client, make)
    finally:
        await stage.close()
        await event_log.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, choices=sorted(load_pipelines().models()))
    parser.add_argument(
        "--metrics-port", type=int, help="Prometheus /metrics port (default JOBSTREAM_GPU_WORKER_METRICS_PORT)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.model, args.metrics_port))
