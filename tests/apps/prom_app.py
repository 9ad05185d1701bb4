"""An app with metrics of its own (prometheus_client), for the admin listener's tests.

``app``:
/            counts the request in ``app_requests_total{path="/"}``, answers the worker's PID
/block?s=N   blocks the event loop for N seconds (time.sleep), counts, answers its PID
/dir         answers PROMETHEUS_MULTIPROC_DIR as this process sees it (empty: unset)

``app_workers_up`` is 1 in each process that imported the app, summed over the live ones
(``livesum``): a dead worker's 1 must go. ``fastasgi_requests`` collides with fastasgi's
own family: the admin listener must leave it out.
"""

import os
import time

from prometheus_client import Counter, Gauge

REQUESTS = Counter("app_requests", "Requests the app answered, by path.", ["path"])
UP = Gauge("app_workers_up", "Processes that imported the app.", multiprocess_mode="livesum")
UP.set(1)
IMPOSTOR = Counter("fastasgi_requests", "Not fastasgi's: left out of /metrics.")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rpartition(".")[2]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["path"] == "/dir":
        body = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["path"] == "/block":
        time.sleep(float(scope["query_string"].decode().partition("=")[2] or 1))  # noqa: ASYNC251
    REQUESTS.labels(path=scope["path"]).inc()
    IMPOSTOR.inc(1000)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
