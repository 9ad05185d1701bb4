"""Raw ASGI app for tests/e2e/test_uvicorn_log_names.py: it logs as apps written for
uvicorn do, on uvicorn's own logger, and brings the health-check filter such apps' log
configs name.

/log        logs "app says hello" (INFO) and "app warns" (WARNING) on ``uvicorn.error``
/raise      raises (the server logs "Exception in ASGI application" with the traceback)
anything else: "ok"
"""

import logging

log = logging.getLogger("uvicorn.error")


class NoHealth(logging.Filter):
    """Drops the access line of /health, reading the path where uvicorn's access record
    has it: the third of its args."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.args[2] != "/health"  # type: ignore[index]


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
    if scope["path"] == "/raise":
        raise RuntimeError("boom in the app")
    if scope["path"] == "/log":
        log.info("app says %s", "hello")
        log.warning("app warns")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})
