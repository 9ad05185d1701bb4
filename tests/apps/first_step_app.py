"""Raw ASGI 3 app for tests/e2e/test_first_step.py: what an app sees of asyncio in its first
step (before its first real suspension) and after it, served by fastasgi and by uvicorn in
the same test. Every route answers JSON; nothing in it depends on which server runs it.

- ``/task``: the current task as Sentry's and OpenTelemetry's asyncio instrumentation read
  it: a real, initialised ``asyncio.Task`` (repr, name, loop, coroutine, done callbacks), and
  the same object after a suspension
- ``/cancel-scope``: anyio ``CancelScope().cancel()`` before the first await
- ``/move-on``: anyio ``move_on_after(0)`` around a sleep
- ``/fail-after``: anyio ``fail_after(0)`` around a sleep
- ``/task-group``: an anyio task group whose child runs and ends
- ``/asyncio-timeout``: ``asyncio.timeout(0)`` around a sleep (Python 3.11+)
- ``/self-cancel``: ``current_task().cancel()``, then an await: the CancelledError arrives
  there, and ``uncancel()`` counts it
- ``/contextvar``: a context variable set by the request; the next request must not see it
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import sys

import anyio

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("first_step_seen", default="unset")
_callbacks: list[str] = []


def _task_facts(task: asyncio.Task | None) -> dict:
    if task is None:
        return {"task": None}
    facts = {"is_task": isinstance(task, asyncio.Task), "done": task.done()}
    try:
        facts["repr_ok"] = repr(task).startswith("<Task pending name=")
    except Exception as exc:  # the failure itself is the answer
        facts["repr_ok"] = f"{type(exc).__name__}: {exc}"
    try:
        facts["name_ok"] = isinstance(task.get_name(), str) and bool(task.get_name())
        facts["loop_ok"] = task.get_loop() is asyncio.get_running_loop()
        facts["coro_ok"] = task.get_coro() is not None
        task.add_done_callback(lambda t: _callbacks.append("done"))
        facts["callback_ok"] = True
    except Exception as exc:
        facts["error"] = f"{type(exc).__name__}: {exc}"
    return facts


async def _task() -> dict:
    first = asyncio.current_task()
    out = {"first": _task_facts(first)}
    await asyncio.sleep(0)
    out["same_after_suspension"] = asyncio.current_task() is first
    out["callbacks_so_far"] = len(_callbacks)
    return out


async def _cancel_scope() -> dict:
    with anyio.CancelScope() as scope:
        scope.cancel()
        await anyio.sleep(0)
        return {"reached": True}
    return {"cancelled_caught": scope.cancelled_caught}


async def _move_on() -> dict:
    with anyio.move_on_after(0) as scope:
        await anyio.sleep(5)
    return {"cancelled_caught": scope.cancelled_caught}


async def _fail_after() -> dict:
    try:
        with anyio.fail_after(0):
            await anyio.sleep(5)
    except TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


async def _task_group() -> dict:
    ran = []

    async def child() -> None:
        await anyio.sleep(0)
        ran.append(1)

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
    return {"children_ran": len(ran)}


async def _asyncio_timeout() -> dict:
    if sys.version_info < (3, 11):
        return {"skipped": "asyncio.timeout is 3.11+"}
    try:
        async with asyncio.timeout(0):
            await asyncio.sleep(5)
    except TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


async def _self_cancel() -> dict:
    task = asyncio.current_task()
    task.cancel()
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        out = {"cancel_delivered": True, "cancelling": task.cancelling()}
        out["uncancel"] = task.uncancel()
        return out
    return {"cancel_delivered": False}


async def _contextvar() -> dict:
    before = SEEN.get()
    SEEN.set("set by a request")
    await asyncio.sleep(0)
    return {"before": before, "after": SEEN.get()}


ROUTES = {
    "/task": _task,
    "/cancel-scope": _cancel_scope,
    "/move-on": _move_on,
    "/fail-after": _fail_after,
    "/task-group": _task_group,
    "/asyncio-timeout": _asyncio_timeout,
    "/self-cancel": _self_cancel,
    "/contextvar": _contextvar,
}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    route = ROUTES.get(scope["path"])
    if route is None:
        status, body = 404, b'{"error": "no such route"}'
    else:
        status, body = 200, json.dumps(await route()).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
