"""`GET /v1/models`: the models this API serves. A model here is a pipeline with one model stage whose model this
deployment serves (`JOBSTREAM_MODELS`); the fault drills only where drills are on."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobstream.settings import get_settings
from sse_bridge.openai_api.create_request import BadParam, pipeline_of
from sse_bridge.openai_api.errors import not_found
from sse_bridge.openai_api.responses_api import surface_of
from sse_bridge.openai_api.surface import Surface


def served_models(surface: Surface) -> list[str]:
    drills = get_settings().drills
    names = []
    for name in surface.pipelines.names():
        try:
            pipeline_of(name, surface.pipelines, surface.served())
        except BadParam:
            continue
        if drills or not surface.pipelines.is_drill(name):
            names.append(name)
    return names


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "jobstream"}


async def list_models(request: Request) -> Response:
    surface = surface_of(request)
    caller = surface.caller(request)
    if isinstance(caller, Response):
        return caller
    return JSONResponse({"object": "list", "data": [model_object(name) for name in served_models(surface)]})


async def retrieve_model(request: Request) -> Response:
    surface = surface_of(request)
    caller = surface.caller(request)
    if isinstance(caller, Response):
        return caller
    name = request.path_params["model"]
    return JSONResponse(model_object(name)) if name in served_models(surface) else not_found("model", name[:64])


def routes() -> list[Route]:
    return [
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{model}", retrieve_model, methods=["GET"]),
    ]
