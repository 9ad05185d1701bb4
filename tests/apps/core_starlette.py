"""Starlette app for tests/test_frameworks.py (served as ``core_starlette:app``)."""

import asyncio

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

TASKS: list[str] = []


async def hello(request):
    return JSONResponse({"hello": "starlette"})


async def post_json(request):
    return JSONResponse({"got": await request.json()})


async def stream(request):
    async def parts():
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"part{i}\n"

    return StreamingResponse(parts(), media_type="text/plain")


async def error(request):
    raise RuntimeError("starlette-boom")


async def record(name):
    await asyncio.sleep(0.05)
    TASKS.append(name)


async def background(request):
    name = request.query_params["name"]
    return PlainTextResponse("scheduled", background=BackgroundTask(record, name))


async def tasks(request):
    return JSONResponse(TASKS)


app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/json", post_json, methods=["POST"]),
        Route("/stream", stream),
        Route("/error", error),
        Route("/bg", background),
        Route("/tasks", tasks),
    ]
)
