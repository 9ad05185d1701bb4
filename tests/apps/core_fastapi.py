"""FastAPI app for tests/test_frameworks.py (served as ``core_fastapi:app``)."""

import asyncio
import threading

from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()
EVENTS: list[str] = []


class Item(BaseModel):
    name: str
    tags: list[str] = []
    price: float


@app.get("/hello")
async def hello():
    return {"hello": "fastapi"}


@app.post("/json")
async def post_json(item: Item):
    return {"got": item.model_dump(), "double": item.price * 2}


@app.get("/stream")
async def stream():
    async def parts():
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"part{i}\n"

    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/error")
async def error():
    raise RuntimeError("fastapi-boom")


@app.get("/sync")
def sync_endpoint(q: int = 0):
    # def endpoints run in the threadpool
    return {"q": q, "in_worker_thread": threading.current_thread() is not threading.main_thread()}


async def tracked():
    EVENTS.append("enter")
    try:
        yield "dep-value"
    finally:
        EVENTS.append("exit")


@app.get("/dep")
async def with_dependency(value: str = Depends(tracked)):
    EVENTS.append("handler")
    return {"dep": value}


@app.get("/events")
async def events():
    return list(EVENTS)
