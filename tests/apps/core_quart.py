"""Quart app for tests/test_frameworks.py (served as ``core_quart:app``)."""

import asyncio

from quart import Quart, request

app = Quart(__name__)


@app.get("/hello")
async def hello():
    return {"hello": "quart"}


@app.post("/json")
async def post_json():
    return {"got": await request.get_json()}


@app.get("/stream")
async def stream():
    async def parts():
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"part{i}\n".encode()

    return parts(), 200, {"Content-Type": "text/plain"}


@app.get("/error")
async def error():
    raise RuntimeError("quart-boom")
